// Reductions. Legend: N = element count.

extension Tape {
    /// Sum of every element -> shape [1].
    public func sum(_ x: Tensor) -> Tensor {
        let tracked = tracks(x)
        let y = output([1], tracked: tracked)
        var s = 0.0
        for i in 0..<x.count { s += Double(x.pointer[i]) }
        y.pointer[0] = Float(s)
        if tracked {
            record(y) {
                guard let dy = y.grad else { return }
                let g = x.ensureGrad().pointer, d = dy.pointer[0]
                for i in 0..<x.count { g[i] += d }
            }
        }
        return y
    }

    /// Mean of every element -> shape [1].
    public func mean(_ x: Tensor) -> Tensor { scale(sum(x), by: 1 / Float(max(1, x.count))) }

    /// Sum over one axis (removed from the shape).
    public func sum(_ x: Tensor, axis: Int) -> Tensor {
        precondition(axis >= 0 && axis < x.rank, "sum axis \(axis) of \(x.shape)")
        var outShape = x.shape
        outShape.remove(at: axis)
        let outer = x.shape[..<axis].reduce(1, *), n = x.shape[axis], inner = x.shape[(axis + 1)...].reduce(1, *)
        let tracked = tracks(x)
        let y = Tensor(zeros: outShape)
        y.requiresGrad = tracked
        for o in 0..<outer {
            for k in 0..<n {
                Kernels.axpy(1, x.pointer + (o * n + k) * inner, y.pointer + o * inner, count: inner)
            }
        }
        if tracked {
            record(y) {
                guard let dy = y.grad else { return }
                let g = x.ensureGrad().pointer
                for o in 0..<outer {
                    for k in 0..<n { Kernels.axpy(1, dy.pointer + o * inner, g + (o * n + k) * inner, count: inner) }
                }
            }
        }
        return y
    }

    /// Mean over one axis.
    public func mean(_ x: Tensor, axis: Int) -> Tensor { scale(sum(x, axis: axis), by: 1 / Float(max(1, x.shape[axis]))) }
}
