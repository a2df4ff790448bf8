import CAQKernels

// Elementwise ops. Legend: N = element count; broadcasting follows NumPy rules.

/// Element offsets into two broadcast operands for every output element (general path).
struct Broadcast {
    let shape: [Int]
    let aOffsets: [Int]
    let bOffsets: [Int]

    static func shape(_ a: [Int], _ b: [Int]) -> [Int]? {
        let r = max(a.count, b.count)
        let pa = Array(repeating: 1, count: r - a.count) + a
        let pb = Array(repeating: 1, count: r - b.count) + b
        var out = [Int]()
        for i in 0..<r {
            if pa[i] == pb[i] || pb[i] == 1 { out.append(pa[i]) } else if pa[i] == 1 { out.append(pb[i]) } else { return nil }
        }
        return out
    }

    init(_ a: [Int], _ b: [Int]) {
        guard let s = Broadcast.shape(a, b) else { preconditionFailure("cannot broadcast \(a) with \(b)") }
        shape = s
        func offsets(_ x: [Int]) -> [Int] {
            let px = Array(repeating: 1, count: s.count - x.count) + x
            var strides = [Int](repeating: 0, count: s.count)
            var acc = 1
            for i in stride(from: s.count - 1, through: 0, by: -1) {
                strides[i] = px[i] == 1 ? 0 : acc
                acc *= px[i]
            }
            let n = Tensor.count(of: s)
            var out = [Int](repeating: 0, count: n)
            var idx = [Int](repeating: 0, count: s.count)
            var off = 0
            for e in 0..<n {
                out[e] = off
                var d = s.count - 1
                while d >= 0 {
                    idx[d] += 1
                    off += strides[d]
                    if idx[d] < s[d] { break }
                    off -= strides[d] * s[d]
                    idx[d] = 0
                    d -= 1
                }
            }
            return out
        }
        aOffsets = offsets(a)
        bOffsets = offsets(b)
    }
}

/// True when `small` equals the trailing dimensions of `big` (a bias-like row broadcast).
@inline(__always)
func isRowBroadcast(_ big: [Int], _ small: [Int]) -> Bool {
    small.count <= big.count && Array(big.suffix(small.count)) == small && !small.isEmpty
}

extension Tape {
    /// a + b with broadcasting.
    public func add(_ a: Tensor, _ b: Tensor) -> Tensor {
        let tracked = tracks(a, b)
        if a.shape == b.shape {
            let y = output(a.shape, tracked: tracked)
            Kernels.add(a.pointer, b.pointer, y.pointer, count: y.count)
            if tracked {
                record(y) {
                    guard let dy = y.grad else { return }
                    if a.requiresGrad { Kernels.axpy(1, dy.pointer, a.ensureGrad().pointer, count: y.count) }
                    if b.requiresGrad { Kernels.axpy(1, dy.pointer, b.ensureGrad().pointer, count: y.count) }
                }
            }
            return y
        }
        if isRowBroadcast(a.shape, b.shape) || isRowBroadcast(b.shape, a.shape) {
            let (big, row) = isRowBroadcast(a.shape, b.shape) ? (a, b) : (b, a)
            let cols = row.count, rows = big.count / max(1, cols)
            let y = output(big.shape, tracked: tracked)
            Kernels.addRows(big.pointer, row.pointer, y.pointer, rows: rows, cols: cols)
            if tracked {
                record(y) {
                    guard let dy = y.grad else { return }
                    if big.requiresGrad { Kernels.axpy(1, dy.pointer, big.ensureGrad().pointer, count: y.count) }
                    if row.requiresGrad { Kernels.sumRows(dy.pointer, into: row.ensureGrad().pointer, rows: rows, cols: cols) }
                }
            }
            return y
        }
        let bc = Broadcast(a.shape, b.shape)
        let y = output(bc.shape, tracked: tracked)
        for e in 0..<y.count { y.pointer[e] = a.pointer[bc.aOffsets[e]] + b.pointer[bc.bOffsets[e]] }
        if tracked {
            record(y) {
                guard let dy = y.grad else { return }
                if a.requiresGrad { let g = a.ensureGrad().pointer; for e in 0..<y.count { g[bc.aOffsets[e]] += dy.pointer[e] } }
                if b.requiresGrad { let g = b.ensureGrad().pointer; for e in 0..<y.count { g[bc.bOffsets[e]] += dy.pointer[e] } }
            }
        }
        return y
    }

    /// a * b with broadcasting.
    public func mul(_ a: Tensor, _ b: Tensor) -> Tensor {
        let tracked = tracks(a, b)
        if a.shape == b.shape {
            let y = output(a.shape, tracked: tracked)
            Kernels.mul(a.pointer, b.pointer, y.pointer, count: y.count)
            if tracked {
                record(y) {
                    guard let dy = y.grad else { return }
                    if a.requiresGrad { Kernels.fmaAccumulate(dy.pointer, b.pointer, a.ensureGrad().pointer, count: y.count) }
                    if b.requiresGrad { Kernels.fmaAccumulate(dy.pointer, a.pointer, b.ensureGrad().pointer, count: y.count) }
                }
            }
            return y
        }
        let bc = Broadcast(a.shape, b.shape)
        let y = output(bc.shape, tracked: tracked)
        for e in 0..<y.count { y.pointer[e] = a.pointer[bc.aOffsets[e]] * b.pointer[bc.bOffsets[e]] }
        if tracked {
            record(y) {
                guard let dy = y.grad else { return }
                if a.requiresGrad {
                    let g = a.ensureGrad().pointer
                    for e in 0..<y.count { g[bc.aOffsets[e]] += dy.pointer[e] * b.pointer[bc.bOffsets[e]] }
                }
                if b.requiresGrad {
                    let g = b.ensureGrad().pointer
                    for e in 0..<y.count { g[bc.bOffsets[e]] += dy.pointer[e] * a.pointer[bc.aOffsets[e]] }
                }
            }
        }
        return y
    }

    /// a - b with broadcasting.
    public func sub(_ a: Tensor, _ b: Tensor) -> Tensor { add(a, scale(b, by: -1)) }

    /// alpha * x
    public func scale(_ x: Tensor, by alpha: Float) -> Tensor {
        let tracked = tracks(x)
        let y = output(x.shape, tracked: tracked)
        y.pointer.update(from: x.pointer, count: x.count)
        Kernels.scale(y.pointer, by: alpha, count: y.count)
        if tracked {
            record(y) {
                guard let dy = y.grad else { return }
                Kernels.axpy(alpha, dy.pointer, x.ensureGrad().pointer, count: y.count)
            }
        }
        return y
    }

    /// GELU: exact erf form (HF "gelu") or the tanh approximation (HF "gelu_new").
    public func gelu(_ x: Tensor, approximate: Bool = false) -> Tensor {
        let tracked = tracks(x)
        let y = output(x.shape, tracked: tracked)
        Kernels.geluForward(x.pointer, y.pointer, count: x.count, approximate: approximate)
        if tracked {
            record(y) {
                guard let dy = y.grad else { return }
                Kernels.geluBackward(x.pointer, dy.pointer, x.ensureGrad().pointer, count: x.count, approximate: approximate)
            }
        }
        return y
    }

    /// tanh (the BERT pooler's activation). Backward: dx += dy * (1 - y^2).
    public func tanh(_ x: Tensor) -> Tensor {
        let tracked = tracks(x)
        let y = output(x.shape, tracked: tracked)
        for i in 0..<x.count { y.pointer[i] = tanhf(x.pointer[i]) }
        if tracked {
            record(y) {
                guard let dy = y.grad else { return }
                let g = x.ensureGrad().pointer
                for i in 0..<x.count { let t = y.pointer[i]; g[i] += dy.pointer[i] * (1 - t * t) }
            }
        }
        return y
    }

    /// ReLU. Backward: dx += dy where x > 0.
    public func relu(_ x: Tensor) -> Tensor {
        let tracked = tracks(x)
        let y = output(x.shape, tracked: tracked)
        for i in 0..<x.count { y.pointer[i] = x.pointer[i] > 0 ? x.pointer[i] : 0 }
        if tracked {
            record(y) {
                guard let dy = y.grad else { return }
                let g = x.ensureGrad().pointer
                for i in 0..<x.count where x.pointer[i] > 0 { g[i] += dy.pointer[i] }
            }
        }
        return y
    }

    /// Inverted dropout: zeroes each element with probability p and scales the rest by 1/(1-p).
    /// The mask (one byte per element) is drawn from `generator`, so a seed fixes it; with
    /// `rows`, x's leading dimension is a slice of a larger batch and gets that slice of the
    /// whole batch's mask. p == 0 returns x itself.
    public func dropout(_ x: Tensor, probability p: Float, generator: inout SeededGenerator, rows: BatchRows? = nil) -> Tensor {
        precondition(p >= 0 && p < 1, "dropout probability \(p) outside [0, 1)")
        if p == 0 { return x }
        let tracked = tracks(x)
        let keep = 1 / (1 - p)
        let mask = keepMask(count: x.count, rows: x.shape.first ?? 1, slice: rows, dropProbability: p, generator: &generator)
        let y = output(x.shape, tracked: tracked)
        Kernels.dropoutForward(x.pointer, keep: mask.pointer, y.pointer, count: x.count, scale: keep)
        if tracked {
            record(y) {
                guard let dy = y.grad else { return }
                Kernels.dropoutBackward(dy.pointer, keep: mask.pointer, x.ensureGrad().pointer, count: x.count, scale: keep)
            }
        }
        return y
    }
}

#if canImport(Glibc)
import Glibc
#endif

extension Tape {
    /// Natural logarithm (inputs must be positive). Backward: dx += dy / x.
    public func log(_ x: Tensor) -> Tensor {
        let tracked = tracks(x)
        let y = output(x.shape, tracked: tracked)
        for i in 0..<x.count { y.pointer[i] = logf(x.pointer[i]) }
        if tracked {
            record(y) {
                guard let dy = y.grad else { return }
                let g = x.ensureGrad().pointer
                for i in 0..<x.count { g[i] += dy.pointer[i] / x.pointer[i] }
            }
        }
        return y
    }

    /// Forward: the one-hot of each row's argmax (first maximum); backward: identity, so the
    /// gradient of the soft input is used (straight-through "hard" Gumbel-softmax).
    /// x: [R, C] -> [R, C]
    public func straightThroughOneHot(_ x: Tensor) -> Tensor {
        let c = x.shape.last ?? 1, rows = x.count / max(1, c)
        let tracked = tracks(x)
        let y = Tensor(zeros: x.shape)
        y.requiresGrad = tracked
        for r in 0..<rows {
            var best = 0
            for j in 1..<max(1, c) where x.pointer[r * c + j] > x.pointer[r * c + best] { best = j }
            y.pointer[r * c + best] = 1
        }
        if tracked {
            record(y) {
                guard let dy = y.grad else { return }
                Kernels.axpy(1, dy.pointer, x.ensureGrad().pointer, count: x.count)
            }
        }
        return y
    }
}

/// Where the rows of a batch sit in a larger batch split across processes (data parallelism):
/// rows `offset ..< offset + count` of `total`. Random masks are drawn for all `total` rows and
/// cut to the slice, so that every row gets the mask a single process would give it.
public struct BatchRows: Sendable, Equatable {
    public var offset: Int
    public var total: Int
    public init(offset: Int, total: Int) {
        self.offset = offset
        self.total = total
    }
}

extension Tape {
    /// A dropout keep-mask of `count` bytes for a tensor of `rows` leading rows, drawn from
    /// `generator`; with `slice`, drawn for the whole batch and cut to this one's rows.
    func keepMask(count: Int, rows: Int, slice: BatchRows?, dropProbability p: Float,
                  generator: inout SeededGenerator) -> ByteBuffer {
        guard let slice, rows > 0, slice.total != rows else {
            let mask = ByteBuffer(count: count)
            generator.fillKeepMask(mask.pointer, count: count, dropProbability: p)
            return mask
        }
        let perRow = count / rows
        precondition(slice.offset >= 0 && slice.offset + rows <= slice.total, "BatchRows \(slice) for \(rows) rows")
        let mask = ByteBuffer(count: count, capacity: slice.total * perRow, offset: slice.offset * perRow)
        generator.fillKeepMask(mask.base, count: mask.capacity, dropProbability: p)
        return mask
    }
}
