import AQBert
import AQParallel
import AQQuant

/// What the data-parallel runs (`Trainer`, `SearchRunner` under `mpirun`) share: summing the
/// gradients over the processes and keeping the activation ranges on the whole batch.
extension ProcessGroup {
    /// Floats per all-reduce when gradients are summed: 25 MB, PyTorch DDP's bucket size.
    static let bucketFloats = 25 * 1_048_576 / 4

    /// Sums the gradients of `parameters` over the processes. A parameter with a gradient on any
    /// process gets one on every process (zeros where its slice gave none), so that the sums and
    /// the optimizer's steps agree everywhere. A tensor in `rows` (an embedding table: the ids
    /// the whole batch gathers, sorted, each once) has a zero gradient outside those rows on
    /// every process, so only those rows are summed. The sums go in buckets: consecutive tensors
    /// (or their rows) packed into one buffer of up to `bucketFloats` (a larger whole tensor
    /// alone, in place), one all-reduce per bucket, so that a step makes a few calls rather than
    /// one per tensor (each call pays the network's latency once per hop).
    func sumGradients(of parameters: [Tensor], rows: [ObjectIdentifier: [Int]] = [:]) throws {
        guard size > 1 else { return }
        var present = parameters.map { Int64($0.grad == nil ? 0 : 1) }
        try allReduceMax(&present)
        // (tensor, the rows summed or nil for all, floats)
        var bucket: [(tensor: Tensor, rows: [Int]?, floats: Int)] = [], floats = 0
        func copy(_ item: (tensor: Tensor, rows: [Int]?, floats: Int), _ buffer: UnsafeMutablePointer<Float>, toBuffer: Bool) {
            let g = item.tensor.ensureGrad().pointer
            guard let rows = item.rows else {
                if toBuffer { buffer.update(from: g, count: item.floats) } else { g.update(from: buffer, count: item.floats) }
                return
            }
            let width = item.tensor.count / max(1, item.tensor.shape.first ?? 1)
            for (i, r) in rows.enumerated() {
                if toBuffer { (buffer + i * width).update(from: g + r * width, count: width) } else {
                    (g + r * width).update(from: buffer + i * width, count: width)
                }
            }
        }
        func flush() throws {
            defer { (bucket, floats) = ([], 0) }
            if bucket.count == 1, bucket[0].rows == nil { return try allReduceSum(bucket[0].tensor.ensureGrad().pointer, count: floats) }
            guard !bucket.isEmpty else { return }
            let buffer = UnsafeMutablePointer<Float>.allocate(capacity: floats)
            defer { buffer.deallocate() }
            var offset = 0
            for item in bucket {
                copy(item, buffer + offset, toBuffer: true)
                offset += item.floats
            }
            try allReduceSum(buffer, count: floats)
            offset = 0
            for item in bucket {
                copy(item, buffer + offset, toBuffer: false)
                offset += item.floats
            }
        }
        for (p, flag) in zip(parameters, present) where flag == 1 {
            let selected = rows[ObjectIdentifier(p)]
            let count = selected.map { $0.count * (p.count / max(1, p.shape.first ?? 1)) } ?? p.count
            if floats > 0 && floats + count > Self.bucketFloats { try flush() }
            bucket.append((p, selected, count))
            floats += count
        }
        try flush()
    }

    /// The sum over the processes of one value (a loss's parts).
    func sum(_ value: Double) throws -> Double {
        var v = [value]
        try allReduceSum(&v)
        return v[0]
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
