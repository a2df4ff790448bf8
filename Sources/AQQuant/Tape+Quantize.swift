import AQBert
import CAQKernels

// Quantization ops on the autodiff tape. Legend: O = output rows of a weight, I = its input
// features, G = row groups (O % G == 0), n = (O / G) * I weights per group, K = candidates.

extension Tape {
    /// Fake quantization of each row group at its own bit-width, with the straight-through
    /// estimator (METHOD.md Eq. 9-10): forward Q_b(W[j]); backward dW[j] += dY[j] for b >= 1,
    /// nothing for pruned (b = 0) groups, whose output is the constant 0.
    /// w: [O, I], groupBits: G values -> [O, I]
    public func fakeQuantize(_ w: Tensor, groupBits: [Int]) -> Tensor {
        let g = groupBits.count
        precondition(w.rank == 2 && g > 0 && w.shape[0] % g == 0, "fakeQuantize: \(g) groups for \(w.shape)")
        let n = w.count / g
        let tracked = tracks(w)
        let y = Tensor(uninitialized: w.shape)
        y.requiresGrad = tracked
        Runtime.parallelFor(g, grain: max(1, 32768 / max(1, n))) { r in
            for j in r { aq_fake_quantize(w.pointer + j * n, y.pointer + j * n, n, Int32(groupBits[j])) }
        }
        if tracked {
            record(y) {
                guard let dy = y.grad else { return }
                let dw = w.ensureGrad().pointer
                for j in 0..<g where groupBits[j] > 0 {
                    Kernels.axpy(1, dy.pointer + j * n, dw + j * n, count: n)
                }
            }
        }
        return y
    }

    /// Fake quantization of each row group at its own bit-width within learned clipping bounds
    /// (LSQ, Esser et al. 2020, with a learned offset): group j is quantized on the grid of
    /// `ranges[j] = (lo, hi)` rounded to fp16 (`aq_learned_range`), values outside it clamp to
    /// the bounds. Backward (`aq_fake_quantize_range_backward`): dW = dY inside the bounds and 0
    /// where clamped; d lo and d hi by LSQ's straight-through rules. Pruned groups output 0 and
    /// pass no gradient.
    /// w: [O, I], groupBits: G values, ranges: [G, 2] -> [O, I]
    public func fakeQuantize(_ w: Tensor, groupBits: [Int], ranges: Tensor) -> Tensor {
        let g = groupBits.count
        precondition(w.rank == 2 && g > 0 && w.shape[0] % g == 0 && ranges.shape == [g, 2],
                     "fakeQuantize: \(g) groups, ranges \(ranges.shape) for \(w.shape)")
        let n = w.count / g
        let tracked = tracks(w, ranges)
        let y = Tensor(uninitialized: w.shape)
        y.requiresGrad = tracked
        let bounds = LearnedRanges.effective(ranges)
        Runtime.parallelFor(g, grain: max(1, 32768 / max(1, n))) { r in
            for j in r {
                if groupBits[j] > 0 {
                    aq_fake_quantize_range(w.pointer + j * n, y.pointer + j * n, n, Int32(groupBits[j]), bounds[2 * j], bounds[2 * j + 1])
                } else {
                    (y.pointer + j * n).update(repeating: 0, count: n)
                }
            }
        }
        if tracked {
            record(y) {
                guard let dy = y.grad else { return }
                let dw = w.requiresGrad ? w.ensureGrad().pointer : nil
                let dr = ranges.requiresGrad ? ranges.ensureGrad().pointer : nil
                Runtime.parallelFor(g, grain: max(1, 32768 / max(1, n))) { r in
                    for j in r where groupBits[j] > 0 {
                        var dlo = 0.0, dhi = 0.0
                        aq_fake_quantize_range_backward(w.pointer + j * n, dy.pointer + j * n, dw.map { $0 + j * n }, n,
                                                        Int32(groupBits[j]), bounds[2 * j], bounds[2 * j + 1], &dlo, &dhi)
                        if let dr {
                            dr[2 * j] += Float(dlo)
                            dr[2 * j + 1] += Float(dhi)
                        }
                    }
                }
            }
        }
        return y
    }

    /// The super-network's mixed weight (METHOD.md section 3):
    /// W_eff[j] = sum_k O[j, k] * Q_{b_k}(W[j]), computed group by group (no per-candidate copies).
    /// Q_b is min/max quantization, or with `ranges` the clamped quantizer at fixed bounds
    /// (ranges[(j K + k) 2 ...] = lo, hi of group j at candidate k, as `aq_learned_range` gives them).
    /// Backward: dW[j] += sum_{k: b_k > 0} O[j, k] * dW_eff[j]   (straight-through per candidate;
    ///           with ranges only where W[j] lies inside candidate k's bounds)
    ///           dO[j, k] += <dW_eff[j], Q_{b_k}(W[j])>           (quantized copies recomputed)
    /// w: [O, I], mixing: [G, K], candidates: K bit-widths, ranges: G * K * 2 or nil -> [O, I]
    public func mixedQuantize(_ w: Tensor, mixing o: Tensor, candidates: [Int], ranges: [Float]? = nil) -> Tensor {
        let g = o.shape[0], k = candidates.count
        precondition(w.rank == 2 && o.rank == 2 && o.shape[1] == k && w.shape[0] % g == 0 && (ranges?.count ?? g * k * 2) == g * k * 2,
                     "mixedQuantize: mixing \(o.shape) for weight \(w.shape) and \(k) candidates, \(ranges?.count ?? 0) bounds")
        let n = w.count / g
        let tracked = tracks(w, o)
        let y = Tensor(zeros: w.shape)
        y.requiresGrad = tracked
        Runtime.parallelFor(g, grain: max(1, 32768 / max(1, n * k))) { r in
            for j in r {
                for (c, b) in candidates.enumerated() {
                    if let ranges {
                        aq_fake_quantize_range_accumulate(w.pointer + j * n, y.pointer + j * n, n, Int32(b), ranges[(j * k + c) * 2],
                                                          ranges[(j * k + c) * 2 + 1], o.pointer[j * k + c])
                    } else {
                        aq_fake_quantize_accumulate(w.pointer + j * n, y.pointer + j * n, n, Int32(b), o.pointer[j * k + c])
                    }
                }
            }
        }
        if tracked {
            record(y) {
                guard let dy = y.grad else { return }
                let dw = w.requiresGrad ? w.ensureGrad().pointer : nil
                let dO = o.requiresGrad ? o.ensureGrad().pointer : nil
                Runtime.parallelFor(g, grain: max(1, 32768 / max(1, n * k))) { r in
                    for j in r {
                        let x = w.pointer + j * n, d = dy.pointer + j * n
                        if let dw {
                            Self.mixedStraightThrough(x, d, dw + j * n, n, candidates: candidates, mixing: o.pointer + j * k,
                                                      bounds: ranges, at: j * k * 2)
                        }
                        if let dO {
                            for (c, b) in candidates.enumerated() {
                                let dot = ranges.map { aq_fake_quantize_range_dot(x, d, n, Int32(b), $0[(j * k + c) * 2], $0[(j * k + c) * 2 + 1]) }
                                    ?? aq_fake_quantize_dot(x, d, n, Int32(b))
                                dO[j * k + c] += Float(dot)
                            }
                        }
                    }
                }
            }
        }
        return y
    }
}

extension Tape {
    /// The straight-through weight gradient of one mixed group or row (`mixedQuantize`,
    /// `mixedEmbedding`): dx += sum over candidates k with b_k > 0 of mixing[k] * dy; with
    /// `bounds` (lo, hi of candidate k at bounds[at + 2k], bounds[at + 2k + 1]) only where x lies
    /// inside candidate k's bounds.
    static func mixedStraightThrough(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ n: Int,
                                     candidates: [Int], mixing: UnsafePointer<Float>, bounds: [Float]?, at base: Int) {
        if let bounds {
            for (c, b) in candidates.enumerated() where b > 0 {
                aq_range_pass_accumulate(x, dy, dx, n, Int32(b), bounds[base + 2 * c], bounds[base + 2 * c + 1], mixing[c])
            }
        } else {
            var keep: Float = 0
            for (c, b) in candidates.enumerated() where b > 0 { keep += mixing[c] }
            aq_axpy(keep, dy, dx, n)
        }
    }

    /// Fake quantization of an activation on a fixed range (an `ActivationQuantizer`'s):
    /// y = round_half_even(s (clamp(x, low, high) - low)) / s + low, s = (2^bits - 1) / (high - low).
    /// Backward: dx += dy where low <= x <= high, nothing where x was clamped (PyTorch
    /// `FakeQuantize`). high must exceed low.
    /// x: any shape -> same shape
    public func fakeQuantizeActivation(_ x: Tensor, low lo: Float, high hi: Float, bits: Int) -> Tensor {
        precondition(hi > lo, "fakeQuantizeActivation: range [\(lo), \(hi)]")
        let s = Float((1 << bits) - 1) / (hi - lo)
        let tracked = tracks(x)
        let y = Tensor(uninitialized: x.shape)
        y.requiresGrad = tracked
        let xp = x.pointer, yp = y.pointer
        Runtime.parallelFor(x.count, grain: 1 << 16) { r in
            for i in r {
                let v = min(max(xp[i], lo), hi)
                yp[i] = (s * (v - lo)).rounded(.toNearestOrEven) / s + lo
            }
        }
        if tracked {
            record(y) {
                guard let dy = y.grad else { return }
                let dx = x.ensureGrad().pointer
                for i in 0..<x.count where xp[i] >= lo && xp[i] <= hi { dx[i] += dy.pointer[i] }
            }
        }
        return y
    }
}

extension Tape {
    /// Embedding lookup with each gathered row fake-quantized at `bits` (asymmetric, one range
    /// per row): the same result as quantizing the whole table, at the cost of the rows used.
    /// Backward: straight-through scatter-add into the table (rows of `paddingIndex` excluded).
    /// table: [V, C], ids: N -> [shape..., C]
    public func quantizedEmbedding(_ table: Tensor, ids: [Int32], shape: [Int], bits: Int, paddingIndex: Int32?) -> Tensor {
        let gathered = embedding(table, ids: ids, shape: shape, paddingIndex: paddingIndex)
        let c = table.shape[1], rows = ids.count
        let tracked = tracks(gathered)
        let y = Tensor(uninitialized: gathered.shape)
        y.requiresGrad = tracked
        Runtime.parallelFor(rows, grain: max(1, 16384 / max(1, c))) { r in
            for i in r { aq_fake_quantize(gathered.pointer + i * c, y.pointer + i * c, c, Int32(bits)) }
        }
        if tracked {
            record(y) {
                guard let dy = y.grad else { return }
                Kernels.axpy(1, dy.pointer, gathered.ensureGrad().pointer, count: gathered.count)
            }
        }
        return y
    }
}

extension Tape {
    /// Embedding lookup for a planned table: each gathered row fake-quantized at the width of its
    /// group (`rowBits[id]`) on the row's own range, its min/max or, with `ranges` ([V, 2]), its
    /// learned bounds rounded to fp16 (values outside clamp). Rows at 0 bits are 0. The same
    /// result as quantizing the whole table, at the cost of the rows used.
    /// Backward: straight-through scatter-add into the table (inside the bounds with `ranges`;
    /// nothing for 0-bit rows and `paddingIndex`), and LSQ's gradients into the gathered rows'
    /// bounds (`aq_fake_quantize_range_backward`).
    /// table: [V, C], ids: N, rowBits: V values, ranges: [V, 2] or nil -> [shape..., C]
    public func quantizedEmbedding(_ table: Tensor, ids: [Int32], shape: [Int], rowBits: [Int], ranges: Tensor?,
                                   paddingIndex: Int32?) -> Tensor {
        precondition(rowBits.count == table.shape[0] && (ranges?.shape ?? [table.shape[0], 2]) == [table.shape[0], 2],
                     "quantizedEmbedding: \(rowBits.count) row widths, ranges \(ranges?.shape ?? []) for table \(table.shape)")
        let gathered = embedding(table, ids: ids, shape: shape, paddingIndex: paddingIndex)
        let c = table.shape[1], rows = ids.count
        let tracked = tracks(gathered) || (ranges.map { tracks($0) } ?? false)
        let y = Tensor(uninitialized: gathered.shape)
        y.requiresGrad = tracked
        // The fp16 bounds of every gathered row (learned ranges only).
        var bounds = [Float](repeating: 0, count: ranges == nil ? 0 : 2 * rows)
        if let ranges {
            for (i, id) in ids.enumerated() {
                var lo: Float = 0, hi: Float = 0
                aq_learned_range(ranges.pointer[2 * Int(id)], ranges.pointer[2 * Int(id) + 1], &lo, &hi)
                (bounds[2 * i], bounds[2 * i + 1]) = (lo, hi)
            }
        }
        let grain = max(1, 16384 / max(1, c))
        bounds.withUnsafeBufferPointer { bp in
            Runtime.parallelFor(rows, grain: grain) { r in
                for i in r {
                    let b = rowBits[Int(ids[i])], x = gathered.pointer + i * c, out = y.pointer + i * c
                    if b == 0 {
                        out.update(repeating: 0, count: c)
                    } else if ranges != nil {
                        aq_fake_quantize_range(x, out, c, Int32(b), bp[2 * i], bp[2 * i + 1])
                    } else {
                        aq_fake_quantize(x, out, c, Int32(b))
                    }
                }
            }
        }
        if tracked {
            record(y) {
                guard let dy = y.grad else { return }
                let dx = gathered.requiresGrad ? gathered.ensureGrad().pointer : nil
                guard let ranges else {
                    if let dx { for i in 0..<rows where rowBits[Int(ids[i])] > 0 { Kernels.axpy(1, dy.pointer + i * c, dx + i * c, count: c) } }
                    return
                }
                // Per gathered row, then summed into the table's bounds in id order (ids repeat).
                var dBounds = [Double](repeating: 0, count: 2 * rows)
                dBounds.withUnsafeMutableBufferPointer { db in
                    bounds.withUnsafeBufferPointer { bp in
                        Runtime.parallelFor(rows, grain: grain) { r in
                            for i in r {
                                let b = rowBits[Int(ids[i])]
                                guard b > 0 else { continue }
                                aq_fake_quantize_range_backward(gathered.pointer + i * c, dy.pointer + i * c, dx.map { $0 + i * c }, c,
                                                                Int32(b), bp[2 * i], bp[2 * i + 1], &db[2 * i], &db[2 * i + 1])
                            }
                        }
                    }
                }
                if ranges.requiresGrad {
                    let dr = ranges.ensureGrad().pointer
                    for (i, id) in ids.enumerated() where rowBits[Int(id)] > 0 {
                        dr[2 * Int(id)] += Float(dBounds[2 * i])
                        dr[2 * Int(id) + 1] += Float(dBounds[2 * i + 1])
                    }
                }
            }
        }
        return y
    }
}

extension Tape {
    /// The super-network's lookup of a planned table: each gathered row x of group j = id / R is
    /// replaced by sum_k O[j, k] * Q_{b_k}(x), quantized on the row's own range (min/max, or with
    /// `ranges` the fixed bounds of row `id` at candidate k at [(id K + k) 2 ...]). Only the
    /// gathered rows are computed.
    /// Backward: dx += sum_{k: b_k > 0} O[j, k] * dy (straight-through per candidate; with ranges
    ///           only inside candidate k's bounds), scattered into the table (not `paddingIndex`);
    ///           dO[j, k] += <dy, Q_{b_k}(x)> over the gathered rows of group j.
    /// table: [V, C], ids: N, mixing: [G, K] with G = ceil(V / R) -> [shape..., C]
    public func mixedEmbedding(_ table: Tensor, ids: [Int32], shape: [Int], paddingIndex: Int32?, mixing o: Tensor,
                               rowsPerGroup r: Int, candidates: [Int], ranges: [Float]?) -> Tensor {
        let k = candidates.count, v = table.shape[0]
        precondition(o.rank == 2 && o.shape == [(v + r - 1) / r, k] && (ranges?.count ?? v * k * 2) == v * k * 2,
                     "mixedEmbedding: mixing \(o.shape) for table \(table.shape), \(r) rows per group, \(k) candidates")
        let gathered = embedding(table, ids: ids, shape: shape, paddingIndex: paddingIndex)
        let c = table.shape[1], rows = ids.count
        let tracked = tracks(gathered, o)
        let y = Tensor(zeros: gathered.shape)
        y.requiresGrad = tracked
        let grain = max(1, 16384 / max(1, c * k))
        Runtime.parallelFor(rows, grain: grain) { span in
            for i in span {
                let id = Int(ids[i]), j = id / r
                let x = gathered.pointer + i * c, out = y.pointer + i * c
                for (q, b) in candidates.enumerated() {
                    if let ranges {
                        aq_fake_quantize_range_accumulate(x, out, c, Int32(b), ranges[(id * k + q) * 2], ranges[(id * k + q) * 2 + 1],
                                                          o.pointer[j * k + q])
                    } else {
                        aq_fake_quantize_accumulate(x, out, c, Int32(b), o.pointer[j * k + q])
                    }
                }
            }
        }
        if tracked {
            record(y) {
                guard let dy = y.grad else { return }
                let dx = gathered.requiresGrad ? gathered.ensureGrad().pointer : nil
                // Per gathered row, then summed into the groups in row order (ids repeat).
                var dots = [Double](repeating: 0, count: o.requiresGrad ? rows * k : 0)
                dots.withUnsafeMutableBufferPointer { dp in
                    Runtime.parallelFor(rows, grain: grain) { span in
                        for i in span {
                            let id = Int(ids[i]), j = id / r
                            let x = gathered.pointer + i * c, d = dy.pointer + i * c
                            if let dx {
                                Self.mixedStraightThrough(x, d, dx + i * c, c, candidates: candidates, mixing: o.pointer + j * k,
                                                          bounds: ranges, at: id * k * 2)
                            }
                            guard !dp.isEmpty else { continue }
                            for (q, b) in candidates.enumerated() {
                                dp[i * k + q] = ranges.map { aq_fake_quantize_range_dot(x, d, c, Int32(b), $0[(id * k + q) * 2], $0[(id * k + q) * 2 + 1]) }
                                    ?? aq_fake_quantize_dot(x, d, c, Int32(b))
                            }
                        }
                    }
                }
                if o.requiresGrad {
                    let dO = o.ensureGrad().pointer
                    for i in 0..<rows {
                        let j = Int(ids[i]) / r
                        for q in 0..<k { dO[j * k + q] += Float(dots[i * k + q]) }
                    }
                }
            }
        }
        return y
    }
}
