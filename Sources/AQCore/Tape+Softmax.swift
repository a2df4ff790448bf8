// Softmax over the last axis. Legend: R = rows, C = last-axis length.

extension Tape {
    /// softmax(scale * x) over the last axis. `keyMask` (0/1, shape [R / rowsPerMask, C])
    /// gives masked entries probability exactly 0, as an additive `finfo.min` mask does in
    /// transformers; a fully masked row gives zeros.
    /// x: [..., C] -> [..., C]
    public func softmax(_ x: Tensor, scale: Float = 1, keyMask: Tensor? = nil, rowsPerMask: Int = 1) -> Tensor {
        let cols = x.shape.last ?? 1, rows = x.count / max(1, cols)
        if let keyMask {
            precondition(keyMask.count * rowsPerMask == x.count, "softmax mask \(keyMask.shape) x \(rowsPerMask) vs \(x.shape)")
        }
        let tracked = tracks(x)
        let y = output(x.shape, tracked: tracked)
        Kernels.softmaxForward(x.pointer, y.pointer, rows: rows, cols: cols, scale: scale,
                               keyMask: keyMask.map { UnsafePointer($0.pointer) }, rowsPerMask: rowsPerMask)
        if tracked {
            record(y) {
                guard let dy = y.grad else { return }
                Kernels.softmaxBackward(y.pointer, dy.pointer, x.ensureGrad().pointer, rows: rows, cols: cols, scale: scale)
            }
        }
        return y
    }

    /// log-softmax over the last axis (for losses and tests). Backward: dx += dy - softmax * sum(dy).
    public func logSoftmax(_ x: Tensor) -> Tensor {
        let cols = x.shape.last ?? 1, rows = x.count / max(1, cols)
        let tracked = tracks(x)
        let y = output(x.shape, tracked: tracked)
        for r in 0..<rows {
            let xr = x.pointer + r * cols, yr = y.pointer + r * cols
            var mx = -Float.infinity
            for j in 0..<cols { mx = max(mx, xr[j]) }
            var s = 0.0
            for j in 0..<cols { s += Double(expf(xr[j] - mx)) }
            let lse = mx + Float(Glibc.log(s))
            for j in 0..<cols { yr[j] = xr[j] - lse }
        }
        if tracked {
            record(y) {
                guard let dy = y.grad else { return }
                let g = x.ensureGrad().pointer
                for r in 0..<rows {
                    let yr = y.pointer + r * cols, gr = dy.pointer + r * cols, dr = g + r * cols
                    var s: Float = 0
                    for j in 0..<cols { s += gr[j] }
                    for j in 0..<cols { dr[j] += gr[j] - expf(yr[j]) * s }
                }
            }
        }
        return y
    }
}

#if canImport(Glibc)
import Glibc
#endif
