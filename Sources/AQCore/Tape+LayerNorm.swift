// LayerNorm over the last axis. Legend: R = rows, C = normalised width.

extension Tape {
    /// y = (x - mean) / sqrt(var + eps) * w + b   (biased variance, as torch.nn.LayerNorm)
    /// x: [..., C], w: [C], b: [C] -> [..., C]
    public func layerNorm(_ x: Tensor, weight w: Tensor, bias b: Tensor, eps: Float) -> Tensor {
        let cols = w.count, rows = x.count / max(1, cols)
        precondition(x.shape.last == cols && b.count == cols, "layerNorm: \(x.shape) with weight \(w.shape)")
        let tracked = tracks(x, w, b)
        let y = output(x.shape, tracked: tracked)
        let stats = tracked ? Storage(uninitializedCount: 2 * rows) : nil
        Kernels.layerNormForward(x.pointer, w.pointer, b.pointer, y.pointer, mean: stats?.pointer,
                                 rstd: stats.map { $0.pointer + rows }, rows: rows, cols: cols, eps: eps)
        if tracked, let stats {
            record(y) {
                guard let dy = y.grad else { return }
                // dx is needed for the chain even when x is a leaf without requiresGrad: use scratch then.
                let dx = x.requiresGrad ? x.ensureGrad() : Storage(zeros: x.count)
                Kernels.layerNormBackward(x.pointer, w.pointer, mean: stats.pointer, rstd: stats.pointer + rows,
                                          dy.pointer, dx.pointer,
                                          dw: w.requiresGrad ? w.ensureGrad().pointer : nil,
                                          db: b.requiresGrad ? b.ensureGrad().pointer : nil, rows: rows, cols: cols)
            }
        }
        return y
    }
}
