// Losses. Legend: N = rows (examples or tokens), C = classes.

extension Tape {
    /// Mean cross-entropy of `logits` [N, C] against class indices `targets` (N), skipping
    /// targets equal to `ignoreIndex` (as torch.nn.CrossEntropyLoss). Returns shape [1].
    /// When every target is ignored the loss is 0 with zero gradient (torch returns NaN).
    /// Backward: dlogits[n] += dy * (softmax(logits[n]) - onehot(target)) / count.
    public func crossEntropy(_ logits: Tensor, targets: [Int32], ignoreIndex: Int32 = -100) -> Tensor {
        let c = logits.shape.last ?? 1, n = logits.count / max(1, c)
        precondition(targets.count == n, "crossEntropy: \(targets.count) targets for logits \(logits.shape)")
        // The soft cross-entropy with one-hot targets: the same sums, term for term.
        var oneHot = [Float](repeating: 0, count: logits.count)
        for i in 0..<n where targets[i] != ignoreIndex {
            let t = Int(targets[i])
            precondition(t >= 0 && t < c, "crossEntropy: target \(t) outside 0..<\(c)")
            oneHot[i * c + t] = 1
        }
        return softCrossEntropy(logits, targets: oneHot, rows: targets.map { $0 != ignoreIndex })
    }
}

extension Tape {
    /// Soft-target cross-entropy, the distillation loss: the mean over the rows `i` with
    /// `rows[i]` true of `-sum_j q_ij log softmax(x_i)_j`, where `q` (same shape as `logits`, each
    /// row a distribution) is the teacher's. Equal to KL(q || softmax(x)) up to q's own entropy,
    /// so the gradient is the KL's: `(softmax(x_i) - q_i) / rows`. `rows` nil = every row.
    public func softCrossEntropy(_ logits: Tensor, targets q: [Float], rows: [Bool]? = nil) -> Tensor {
        let c = logits.shape.last ?? 1, n = logits.count / max(1, c)
        precondition(q.count == logits.count, "softCrossEntropy: \(q.count) target values for logits \(logits.shape)")
        precondition(rows == nil || rows!.count == n, "softCrossEntropy: \(rows!.count) row flags for \(n) rows")
        let tracked = tracks(logits)
        let y = output([1], tracked: tracked)
        let probs = Storage(uninitializedCount: logits.count)
        Kernels.softmaxForward(logits.pointer, probs.pointer, rows: n, cols: c, scale: 1, keyMask: nil, rowsPerMask: 1)
        var total = 0.0
        var counted = 0
        for i in 0..<n where rows?[i] ?? true {
            let row = logits.pointer + i * c
            let logZ = logSumExp(row, c)
            for j in 0..<c where q[i * c + j] != 0 { total += Double(q[i * c + j]) * (logZ - Double(row[j])) }
            counted += 1
        }
        y.pointer[0] = counted == 0 ? 0 : Float(total / Double(counted))
        if tracked {
            record(y) {
                guard let dy = y.grad, counted > 0 else { return }
                let g = logits.ensureGrad().pointer
                let w = dy.pointer[0] / Float(counted)
                for i in 0..<n where rows?[i] ?? true {
                    for j in 0..<c { g[i * c + j] += w * (probs.pointer[i * c + j] - q[i * c + j]) }
                }
            }
        }
        return y
    }
}

/// log sum_j exp(row[j]) over `c` values, shifted by the max for range, summed in double.
private func logSumExp(_ row: UnsafePointer<Float>, _ c: Int) -> Double {
    var mx = -Float.infinity
    for j in 0..<c { mx = max(mx, row[j]) }
    var s = 0.0
    for j in 0..<c { s += Double(expf(row[j] - mx)) }
    return Double(mx) + Glibc.log(s)
}

#if canImport(Glibc)
import Glibc
#endif

extension Tape {
    /// The masked squared error used by layer-wise distillation:
    /// `sum_{rows r with mask[r] != 0} sum_c (x[r, c] - target[r, c])^2 / normalizer`, rows of
    /// `x.count / mask.count` values (every value when `rowMask` is nil). The target is a
    /// constant (the teacher's). Returns shape [1].
    /// Backward: dx[r, c] += dy * 2 (x - target) / normalizer on the kept rows.
    /// x, target: same shape; rowMask: R values (R divides x.count)
    public func squaredError(_ x: Tensor, target: Tensor, rowMask: [Float]? = nil, normalizer: Float) -> Tensor {
        precondition(x.count == target.count, "squaredError: \(x.shape) against target \(target.shape)")
        let rows = rowMask?.count ?? 1
        precondition(rows > 0 && x.count % rows == 0, "squaredError: \(rows) row flags for \(x.shape)")
        let width = x.count / rows
        let tracked = tracks(x)
        let y = output([1], tracked: tracked)
        let xp = x.pointer, tp = target.pointer
        var total = 0.0
        for r in 0..<rows where rowMask?[r] ?? 1 != 0 {
            var s = 0.0
            for c in (r * width)..<((r + 1) * width) {
                let d = Double(xp[c]) - Double(tp[c])
                s += d * d
            }
            total += s
        }
        y.pointer[0] = Float(total / Double(normalizer))
        if tracked {
            // The rule holds `target` itself (not only its pointer): the caller's teacher
            // tensors may be gone by the time backward runs.
            record(y) {
                guard let dy = y.grad else { return }
                let g = x.ensureGrad().pointer
                let xp = x.pointer, tp = target.pointer
                let w = 2 * dy.pointer[0] / normalizer
                for r in 0..<rows where rowMask?[r] ?? 1 != 0 {
                    for c in (r * width)..<((r + 1) * width) { g[c] += w * (xp[c] - tp[c]) }
                }
            }
        }
        return y
    }
}
