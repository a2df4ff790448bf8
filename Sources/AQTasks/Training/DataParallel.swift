import AQBert
import AQParallel
import AQQuant

/// What the data-parallel runs (`Trainer`, `SearchRunner` under `mpirun`) share: summing the
/// gradients over the processes (`OverlappedGradientSum`) and keeping the activation ranges on
/// the whole batch (`WholeBatchRanges`).
extension ProcessGroup {
    /// Floats per all-reduce when gradients are summed: 25 MB, PyTorch DDP's bucket size.
    static let bucketFloats = 25 * 1_048_576 / 4

    /// The sum over the processes of one value (a loss's parts).
    func sum(_ value: Double) throws -> Double {
        var v = [value]
        try allReduceSum(&v)
        return v[0]
    }

    /// This process's forward pass on its part of the batch `rows` (`BatchPart`): the model given
    /// the part's place in the batch for the dropout masks and recording its layer marks while
    /// `loss` runs on `tape`. Returns the part, its loss (weight 0 for a placeholder) and the marks.
    func forwardPart(of rows: [Feature], model: BertTaskModel, padId: Int, tape: Tape,
                     loss: (BatchPart) -> Tensor) -> (part: BatchPart, loss: Tensor, marks: [Int]) {
        let part = BatchPart(of: rows, rank: rank, ranks: size, padId: padId, architecture: model.architecture)
        model.bert.batchRows = part.rows
        model.bert.layerMarks = []
        defer { (model.bert.batchRows, model.bert.layerMarks) = (nil, nil) }
        let value = loss(part)
        return (part, part.isPlaceholder ? tape.scale(value, by: 0) : value, model.bert.layerMarks ?? [])
    }

    /// The backward pass from `loss` on `tape`, with the gradients of `parameters` summed over
    /// the processes in buckets started while it runs (`OverlappedGradientSum`; readiness from
    /// the forward pass's layer `marks`, the word table summed over the rows `rows` gather).
    func backwardSummingGradients(_ tape: Tape, from loss: Tensor, parameters: [Tensor], model: BertTaskModel, marks: [Int],
                                  rows: [Feature], padId: Int, bucketFloats: Int) throws {
        let sums = OverlappedGradientSum(group: self, parameters: parameters,
                                         readiness: gradientReadiness(of: parameters, model: model, marks: marks),
                                         rows: [ObjectIdentifier(model.bert.embeddings.word.weight): gatheredIds(rows, padId: padId)],
                                         bucketFloats: bucketFloats)
        tape.afterRule = { sums.ruleDone(remaining: $0) }
        defer { tape.afterRule = nil }
        tape.backward(from: loss)
        try sums.finish()
    }
}

/// Keeps activation quantizers' running ranges on the whole batch under data parallelism: while
/// installed, each quantizer's batch minimum and maximum are combined over the processes
/// (`ActivationQuantizer.combineBatchRange`). A failed all-reduce is kept in `error`, to be
/// thrown after the step (the quantizer's callback cannot throw).
final class WholeBatchRanges {
    private let quantizers: [ActivationQuantizer]
    private(set) var error: Error?

    init(_ quantizers: [ActivationQuantizer], group: ProcessGroup) {
        self.quantizers = group.size > 1 ? quantizers : []
        for q in self.quantizers {
            q.combineBatchRange = { [unowned self] low, high in
                var v = [-Double(low), Double(high)]
                do { try group.allReduceMax(&v) } catch { self.error = self.error ?? error }
                (low, high) = (Float(-v[0]), Float(v[1]))
            }
        }
    }

    /// Throws the first failed all-reduce, if any.
    func check() throws { if let error { throw error } }

    /// Restores the quantizers' own batch ranges.
    func uninstall() { for q in quantizers { q.combineBatchRange = nil } }
}

/// Sums gradients over the processes while the backward pass runs, as PyTorch DDP does: the
/// parameters go into buckets of up to `ProcessGroup.bucketFloats`, the top layers' first, and
/// a bucket's sum starts (`MPI_Iallreduce`) as soon as the backward pass has left behind every
/// rule that writes its gradients (`readiness`: the rules still to run when a parameter's
/// gradient is complete, from `BertModel.layerMarks`), so that it travels while the lower
/// layers' gradients are computed. `finish` starts what is left (the embeddings' last), waits,
/// and writes the sums back. Every process builds the same buckets and starts them in the same
/// order. A parameter without a gradient on every process gets none (as without the sums); one
/// with a gradient on some process gets the sum on all.
final class OverlappedGradientSum {
    private struct Bucket {
        var items: [(tensor: Tensor, rows: [Int]?, floats: Int)] = []
        var floats = 0
        /// Ready once this many rules or fewer are left.
        var readiness = Int.max
        var buffer: UnsafeMutablePointer<Float>?
        var pending: ProcessGroup.PendingSum?
    }

    private let group: ProcessGroup
    private let parameters: [Tensor]
    private var buckets: [Bucket] = []
    private var next = 0
    private var error: Error?

    /// The rules left when each bucket started, in bucket order (0: at the end of the pass).
    private(set) var startedAt: [Int] = []

    /// `readiness[i]`: the number of rules left when `parameters[i]`'s gradient is complete (0:
    /// at the end). `rows`: for an embedding table, the rows whose gradient can be nonzero.
    init(group: ProcessGroup, parameters: [Tensor], readiness: [Int], rows: [ObjectIdentifier: [Int]],
         bucketFloats: Int = ProcessGroup.bucketFloats) {
        self.group = group
        self.parameters = parameters
        let order = parameters.indices.sorted { (readiness[$0], $1) > (readiness[$1], $0) }
        var bucket = Bucket()
        for i in order {
            let p = parameters[i]
            let selected = rows[ObjectIdentifier(p)]
            let count = selected.map { $0.count * (p.count / max(1, p.shape.first ?? 1)) } ?? p.count
            if bucket.floats > 0 && bucket.floats + count > bucketFloats {
                buckets.append(bucket)
                bucket = Bucket()
            }
            bucket.items.append((p, selected, count))
            bucket.floats += count
            bucket.readiness = min(bucket.readiness, readiness[i])
        }
        if !bucket.items.isEmpty { buckets.append(bucket) }
    }

    deinit { for b in buckets { b.buffer?.deallocate() } }

    /// The tape's `afterRule`: starts every bucket that is ready and moves the started ones on.
    func ruleDone(remaining: Int) {
        guard error == nil else { return }
        do {
            while next < buckets.count && remaining <= buckets[next].readiness {
                startedAt.append(remaining)
                try start(next)
            }
            for b in buckets[..<next] { try b.pending?.test() }
        } catch { self.error = error }
    }

    private func start(_ index: Int) throws {
        next = index + 1
        var b = buckets[index]
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: max(1, b.floats))
        b.buffer = buffer
        var offset = 0
        for item in b.items {
            let g = item.tensor.grad?.pointer
            let width = item.tensor.count / max(1, item.tensor.shape.first ?? 1)
            if let rows = item.rows {
                for (i, r) in rows.enumerated() {
                    if let g { (buffer + offset + i * width).update(from: g + r * width, count: width) } else {
                        (buffer + offset + i * width).update(repeating: 0, count: width)
                    }
                }
            } else if let g {
                (buffer + offset).update(from: g, count: item.floats)
            } else {
                (buffer + offset).update(repeating: 0, count: item.floats)
            }
            offset += item.floats
        }
        b.pending = try group.startSum(buffer, count: b.floats)
        buckets[index] = b
    }

    /// Starts the buckets not started yet, waits for every sum, and writes them back.
    func finish() throws {
        if let error { throw error }
        var presence = parameters.map { Int64($0.grad == nil ? 0 : 1) }
        while next < buckets.count {
            startedAt.append(0)
            try start(next)
        }
        for b in buckets { try b.pending?.wait() }
        try group.allReduceMax(&presence)
        let present = Set(parameters.indices.filter { presence[$0] == 1 }.map { ObjectIdentifier(parameters[$0]) })
        for b in buckets {
            guard let buffer = b.buffer else { continue }
            var offset = 0
            for item in b.items {
                defer { offset += item.floats }
                guard present.contains(ObjectIdentifier(item.tensor)) else {
                    item.tensor.grad = nil
                    continue
                }
                let g = item.tensor.ensureGrad().pointer
                let width = item.tensor.count / max(1, item.tensor.shape.first ?? 1)
                if let rows = item.rows {
                    for (i, r) in rows.enumerated() { (g + r * width).update(from: buffer + offset + i * width, count: width) }
                } else {
                    g.update(from: buffer + offset, count: item.floats)
                }
            }
        }
    }
}

/// For each of `parameters`, the number of rules left in the backward pass when its gradient is
/// complete, from the forward pass's `BertModel.layerMarks` (L + 1 marks for L layers): mark l
/// for layer l's parameters and for the tensors used only inside layer l and named after one of
/// its matrices (learned ranges `...layer.l....ranges`, the search's logits `theta....layer.l...`),
/// the last mark for the pooler and the task head, 0 (the end of the pass) for the embeddings and
/// anything else.
func gradientReadiness(of parameters: [Tensor], model: BertTaskModel, marks: [Int]) -> [Int] {
    let layers = model.bert.layers
    guard marks.count == layers.count + 1 else { return parameters.map { _ in 0 } }
    var mark: [ObjectIdentifier: Int] = [:]
    for (l, layer) in layers.enumerated() { for p in layer.parameters { mark[ObjectIdentifier(p)] = marks[l] } }
    for p in (model.head?.parameters ?? []) + (model.bert.pooler?.parameters ?? []) { mark[ObjectIdentifier(p)] = marks[layers.count] }
    return parameters.map { p in
        if let m = mark[ObjectIdentifier(p)] { return m }
        let parts = (p.name ?? "").split(separator: ".")
        if let i = parts.firstIndex(of: "layer"), i + 1 < parts.count, let l = Int(parts[i + 1]), layers.indices.contains(l) {
            return marks[l]
        }
        return 0
    }
}
