// Layout ops: reshape (shares storage), permute, slice, concat (copy).

extension Tape {
    /// Same elements, new shape. Shares the value storage, and the gradient buffer too, so
    /// no backward rule is needed. One dimension may be -1 (inferred).
    public func reshape(_ x: Tensor, _ shape: [Int]) -> Tensor {
        var s = shape
        if let i = s.firstIndex(of: -1) {
            let known = s.enumerated().filter { $0.offset != i }.map(\.element).reduce(1, *)
            precondition(known > 0 && x.count % known == 0, "reshape \(x.shape) -> \(shape)")
            s[i] = x.count / known
        }
        precondition(Tensor.count(of: s) == x.count, "reshape \(x.shape) -> \(shape)")
        let tracked = tracks(x)
        let y = Tensor(shape: s, storage: x.storage, requiresGrad: tracked)
        if tracked { y.grad = x.ensureGrad() }
        return y
    }

    /// Axes reordered: output axis i is input axis `order[i]`.
    public func permute(_ x: Tensor, _ order: [Int]) -> Tensor {
        precondition(order.sorted() == Array(0..<x.rank), "permute order \(order) for rank \(x.rank)")
        let outShape = order.map { x.shape[$0] }
        let tracked = tracks(x)
        let y = output(outShape, tracked: tracked)
        var inStrides = [Int](repeating: 1, count: x.rank)
        for i in stride(from: x.rank - 2, through: 0, by: -1) { inStrides[i] = inStrides[i + 1] * x.shape[i + 1] }
        let strides = order.map { inStrides[$0] }
        Self.stridedCopy(from: x.pointer, strides: strides, shape: outShape, to: y.pointer, accumulate: false, reverse: false)
        if tracked {
            record(y) {
                guard let dy = y.grad else { return }
                Self.stridedCopy(from: dy.pointer, strides: strides, shape: outShape, to: x.ensureGrad().pointer,
                                 accumulate: true, reverse: true)
            }
        }
        return y
    }

    /// Walks `shape` in row-major order; element e of the dense side pairs with the strided
    /// offset on the other side. Forward: dense[e] = src[strided]. Reverse: dst[strided] += dense[e].
    static func stridedCopy(from src: UnsafePointer<Float>, strides: [Int], shape: [Int], to dst: UnsafeMutablePointer<Float>,
                            accumulate: Bool, reverse: Bool) {
        let n = Tensor.count(of: shape)
        if n == 0 { return }
        let r = shape.count
        let inner = shape[r - 1], innerStride = strides[r - 1]
        let outer = n / inner
        var idx = [Int](repeating: 0, count: max(0, r - 1))
        var off = 0
        for o in 0..<outer {
            let dense = o * inner
            if reverse {
                for j in 0..<inner { dst[off + j * innerStride] += src[dense + j] }
            } else if accumulate {
                for j in 0..<inner { dst[dense + j] += src[off + j * innerStride] }
            } else {
                for j in 0..<inner { dst[dense + j] = src[off + j * innerStride] }
            }
            var d = r - 2
            while d >= 0 {
                idx[d] += 1
                off += strides[d]
                if idx[d] < shape[d] { break }
                off -= strides[d] * shape[d]
                idx[d] = 0
                d -= 1
            }
        }
    }

    /// Elements `range` along `axis`.
    public func slice(_ x: Tensor, axis: Int, range: Range<Int>) -> Tensor {
        precondition(axis >= 0 && axis < x.rank && range.lowerBound >= 0 && range.upperBound <= x.shape[axis],
                     "slice \(range) of axis \(axis) in \(x.shape)")
        var outShape = x.shape
        outShape[axis] = range.count
        let outer = x.shape[..<axis].reduce(1, *)
        let inner = x.shape[(axis + 1)...].reduce(1, *)
        let srcRow = x.shape[axis] * inner, dstRow = range.count * inner
        let tracked = tracks(x)
        let y = output(outShape, tracked: tracked)
        for o in 0..<outer {
            (y.pointer + o * dstRow).update(from: x.pointer + o * srcRow + range.lowerBound * inner, count: dstRow)
        }
        if tracked {
            record(y) {
                guard let dy = y.grad else { return }
                let g = x.ensureGrad().pointer
                for o in 0..<outer {
                    Kernels.axpy(1, dy.pointer + o * dstRow, g + o * srcRow + range.lowerBound * inner, count: dstRow)
                }
            }
        }
        return y
    }

    /// Tensors joined along `axis` (all other dimensions equal).
    public func concat(_ xs: [Tensor], axis: Int) -> Tensor {
        precondition(!xs.isEmpty, "concat of nothing")
        let base = xs[0].shape
        for x in xs {
            precondition(x.rank == base.count && axis < x.rank, "concat ranks")
            for d in 0..<x.rank where d != axis { precondition(x.shape[d] == base[d], "concat shapes \(x.shape) vs \(base)") }
        }
        var outShape = base
        outShape[axis] = xs.map { $0.shape[axis] }.reduce(0, +)
        let outer = base[..<axis].reduce(1, *)
        let inner = base[(axis + 1)...].reduce(1, *)
        let dstRow = outShape[axis] * inner
        let tracked = xs.contains { tracks($0) }
        let y = output(outShape, tracked: tracked)
        var start = 0
        var starts = [Int]()
        for x in xs {
            starts.append(start)
            let row = x.shape[axis] * inner
            for o in 0..<outer { (y.pointer + o * dstRow + start).update(from: x.pointer + o * row, count: row) }
            start += row
        }
        if tracked {
            record(y) {
                guard let dy = y.grad else { return }
                for (x, s) in zip(xs, starts) where x.requiresGrad {
                    let row = x.shape[axis] * inner
                    let g = x.ensureGrad().pointer
                    for o in 0..<outer { Kernels.axpy(1, dy.pointer + o * dstRow + s, g + o * row, count: row) }
                }
            }
        }
        return y
    }
}
