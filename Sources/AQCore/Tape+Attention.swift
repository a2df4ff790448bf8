// Fused multi-head scaled dot-product attention on [B, T, H] projections, without
// materialising per-head permuted copies: head h of sequence b is the strided [T, D] block
// starting at b*T*H + h*D with row stride H, which cblas handles through lda.
// Legend: B = batch, T = sequence, H = hidden = NH * D, NH = heads, D = head size.
//
// Forward (per b, h):   S = Q K^T;  P = softmax(S / sqrt(D), key mask);  P' = dropout(P);  O = P' V
// Backward:             dP' = dO V^T;  dV += P'^T dO;  dP = dP' * dropmask;
//                       dS = P * (dP - rowsum(dP * P)) / sqrt(D);  dQ += dS K;  dK += dS^T Q
// Equal to the composition reshape/permute/batchedMatmul/softmax/dropout (tested).

extension Tape {
    /// q, k, v: [B, T, H]; keyMask: [B, T] of 0/1 (nil = attend everywhere) -> [B, T, H]
    public func attention(query q: Tensor, key k: Tensor, value v: Tensor, keyMask: Tensor?, heads: Int,
                          dropout p: Float = 0, generator: inout SeededGenerator, rows: BatchRows? = nil) -> Tensor {
        precondition(q.rank == 3 && q.shape == k.shape && q.shape == v.shape, "attention shapes \(q.shape) \(k.shape) \(v.shape)")
        let b = q.shape[0], t = q.shape[1], h = q.shape[2]
        precondition(heads > 0 && h % heads == 0, "hidden \(h) not divisible by \(heads) heads")
        if let keyMask { precondition(keyMask.count == b * t, "attention mask \(keyMask.shape) vs \(q.shape)") }
        let d = h / heads
        let scale = 1 / Float(d).squareRoot()
        let tracked = tracks(q, k, v)
        let y = output(q.shape, tracked: tracked)
        let tt = t * t
        let probs = Storage(uninitializedCount: b * heads * tt)
        // Dropout keep-mask (one byte per probability) drawn from the generator before the
        // parallel section; the dropped probabilities are recomputed in backward, not stored.
        var dropMask: ByteBuffer? = nil
        let keepScale = p > 0 ? 1 / (1 - p) : 1
        if p > 0 {
            dropMask = keepMask(count: b * heads * tt, rows: b, slice: rows, dropProbability: p, generator: &generator)
        }
        let workersF = min(Runtime.threads, b * heads)
        let dropScratch = dropMask.map { _ in Storage(uninitializedCount: workersF * tt) }
        let chunkF = (b * heads + workersF - 1) / workersF
        let qp = q.pointer, kp = k.pointer, vp = v.pointer, yp = y.pointer
        let maskPtr = keyMask?.pointer
        Runtime.parallelFor(workersF, grain: 1) { wr in
            for w in wr {
            for bh in (w * chunkF)..<min(b * heads, (w + 1) * chunkF) {
                let bi = bh / heads, hi = bh % heads
                let off = bi * t * h + hi * d
                let s = probs.pointer + bh * tt
                BLAS.sgemm(transA: false, transB: true, m: t, n: t, k: d, a: qp + off, lda: h, b: kp + off, ldb: h,
                           c: s, ldc: t, threads: 1)
                Kernels.softmaxRows(s, s, rows: t, cols: t, scale: scale, keyMask: maskPtr.map { $0 + bi * t })
                var pv = UnsafePointer(s)
                if let dropMask, let dropScratch {
                    let pd = dropScratch.pointer + w * tt
                    aq_dropout_forward(s, dropMask.pointer + bh * tt, pd, tt, keepScale)
                    pv = UnsafePointer(pd)
                }
                BLAS.sgemm(transA: false, transB: false, m: t, n: d, k: t, a: pv, lda: t, b: vp + off, ldb: h,
                           c: yp + off, ldc: h, threads: 1)
            }
            }
        }
        if tracked {
            record(y) {
                guard let dy = y.grad else { return }
                let dq = q.requiresGrad ? q.ensureGrad().pointer : nil
                let dk = k.requiresGrad ? k.ensureGrad().pointer : nil
                let dv = v.requiresGrad ? v.ensureGrad().pointer : nil
                let workers = min(Runtime.threads, b * heads)
                let scratch = Storage(uninitializedCount: workers * 3 * tt)
                let chunk = (b * heads + workers - 1) / workers
                Runtime.parallelFor(workers, grain: 1) { wr in
                    for w in wr {
                        let dP = scratch.pointer + w * 3 * tt, dS = dP + tt, pDropped = dS + tt
                        for bh in (w * chunk)..<min(b * heads, (w + 1) * chunk) {
                            let bi = bh / heads, hi = bh % heads
                            let off = bi * t * h + hi * d
                            let pr = probs.pointer + bh * tt
                            var pUsed = UnsafePointer(pr)
                            if let dropMask {
                                aq_dropout_forward(pr, dropMask.pointer + bh * tt, pDropped, tt, keepScale)
                                pUsed = UnsafePointer(pDropped)
                            }
                            // (1) dP' = dO V^T
                            BLAS.sgemm(transA: false, transB: true, m: t, n: t, k: d, a: dy.pointer + off, lda: h,
                                       b: vp + off, ldb: h, c: dP, ldc: t, threads: 1)
                            // (2) dV += P'^T dO
                            if let dv {
                                BLAS.sgemm(transA: true, transB: false, m: t, n: d, k: t, a: pUsed, lda: t,
                                           b: dy.pointer + off, ldb: h, beta: 1, c: dv + off, ldc: h, threads: 1)
                            }
                            if dq == nil && dk == nil { continue }
                            // (3) through the dropout mask
                            if let dropMask {
                                dS.update(repeating: 0, count: tt)
                                aq_dropout_backward(dP, dropMask.pointer + bh * tt, dS, tt, keepScale)
                                dP.update(from: dS, count: tt)
                            }
                            // (4) softmax backward (with the 1/sqrt(D) scale) into dS
                            dS.update(repeating: 0, count: tt)
                            Kernels.softmaxBackwardRows(pr, dP, dS, rows: t, cols: t, scale: scale)
                            // (5) dQ += dS K ; dK += dS^T Q
                            if let dq {
                                BLAS.sgemm(transA: false, transB: false, m: t, n: d, k: t, a: dS, lda: t,
                                           b: kp + off, ldb: h, beta: 1, c: dq + off, ldc: h, threads: 1)
                            }
                            if let dk {
                                BLAS.sgemm(transA: true, transB: false, m: t, n: d, k: t, a: dS, lda: t,
                                           b: qp + off, ldb: h, beta: 1, c: dk + off, ldc: h, threads: 1)
                            }
                        }
                    }
                }
            }
        }
        return y
    }
}

extension Kernels {
    /// Single-threaded softmax over `rows` rows sharing one key-mask row (used inside parallel loops).
    @inline(__always)
    static func softmaxRows(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int, cols: Int, scale: Float,
                            keyMask: UnsafePointer<Float>?) {
        aq_softmax_forward(x, y, rows, cols, scale, keyMask, max(1, rows))
    }

    @inline(__always)
    static func softmaxBackwardRows(_ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                                    rows: Int, cols: Int, scale: Float) {
        aq_softmax_backward(y, dy, dx, rows, cols, scale)
    }
}

import CAQKernels

extension Tape {
    /// The scaled attention scores of every head, `S = Q K^T / sqrt(D)` before the softmax (what
    /// TinyBERT and TernaryBERT distil), with every position whose query or key is padding set
    /// to 0 (constant, no gradient), so both sides of a distillation loss agree there.
    /// Backward: dQ += dS K / sqrt(D);  dK += dS^T Q / sqrt(D)  (dS zero at masked positions).
    /// q, k: [B, T, H]; keyMask: [B, T] of 0/1 (nil = no padding) -> [B, NH, T, T]
    public func attentionScores(query q: Tensor, key k: Tensor, keyMask: Tensor?, heads: Int) -> Tensor {
        precondition(q.rank == 3 && q.shape == k.shape, "attentionScores shapes \(q.shape) \(k.shape)")
        let b = q.shape[0], t = q.shape[1], h = q.shape[2]
        precondition(heads > 0 && h % heads == 0, "hidden \(h) not divisible by \(heads) heads")
        if let keyMask { precondition(keyMask.count == b * t, "attention mask \(keyMask.shape) vs \(q.shape)") }
        let d = h / heads, tt = t * t
        let scale = 1 / Float(d).squareRoot()
        let tracked = tracks(q, k)
        let y = output([b, heads, t, t], tracked: tracked)
        let qp = q.pointer, kp = k.pointer, yp = y.pointer
        func applyMask(_ s: UnsafeMutablePointer<Float>, _ bi: Int, _ keyMask: Tensor?) {
            zeroPaddedPairs(s, t: t, flags: keyMask.map { UnsafePointer($0.pointer + bi * t) })
        }
        Runtime.parallelFor(b * heads, grain: 1) { r in
            for bh in r {
                let bi = bh / heads, hi = bh % heads
                let off = bi * t * h + hi * d
                BLAS.sgemm(transA: false, transB: true, m: t, n: t, k: d, alpha: scale, a: qp + off, lda: h, b: kp + off, ldb: h,
                           c: yp + bh * tt, ldc: t, threads: 1)
                applyMask(yp + bh * tt, bi, keyMask)
            }
        }
        if tracked {
            record(y) { [q, k, keyMask] in
                guard let dy = y.grad else { return }
                let dq = q.requiresGrad ? q.ensureGrad().pointer : nil
                let dk = k.requiresGrad ? k.ensureGrad().pointer : nil
                let workers = min(Runtime.threads, b * heads)
                let scratch = Storage(uninitializedCount: workers * tt)
                let chunk = (b * heads + workers - 1) / workers
                Runtime.parallelFor(workers, grain: 1) { wr in
                    for w in wr {
                        let ds = scratch.pointer + w * tt
                        for bh in (w * chunk)..<min(b * heads, (w + 1) * chunk) {
                            let bi = bh / heads, hi = bh % heads
                            let off = bi * t * h + hi * d
                            ds.update(from: dy.pointer + bh * tt, count: tt)
                            applyMask(ds, bi, keyMask)
                            if let dq {
                                BLAS.sgemm(transA: false, transB: false, m: t, n: d, k: t, alpha: scale, a: ds, lda: t,
                                           b: kp + off, ldb: h, beta: 1, c: dq + off, ldc: h, threads: 1)
                            }
                            if let dk {
                                BLAS.sgemm(transA: true, transB: false, m: t, n: d, k: t, alpha: scale, a: ds, lda: t,
                                           b: qp + off, ldb: h, beta: 1, c: dk + off, ldc: h, threads: 1)
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
    /// The attention-score term of layer-wise distillation, fused:
    /// `sum_{b, head, i, j real} (S[b, head, i, j] - S_t[b, head, i, j])^2 / normalizer` with
    /// `S = Q K^T / sqrt(D)` (the student's scores) and `S_t = Q_t K_t^T / sqrt(D)` (the
    /// teacher's, constant), over the (query, key) pairs of real tokens. Equal to
    /// `squaredError(attentionScores(q, k), target: attentionScores(tq, tk))` (tested), but it
    /// keeps only the [B, T, H] projections alive instead of two [B, NH, T, T] score maps: each
    /// block is recomputed in backward.
    /// Backward: dS = 2 dy (S - S_t) / normalizer on real pairs;  dQ += dS K / sqrt(D);
    ///           dK += dS^T Q / sqrt(D).
    /// q, k, tq, tk: [B, T, H]; keyMask: [B, T] of 0/1 (nil = no padding) -> [1]
    public func attentionScoreError(query q: Tensor, key k: Tensor, targetQuery tq: Tensor, targetKey tk: Tensor,
                                    keyMask: Tensor?, heads: Int, normalizer: Float) -> Tensor {
        precondition(q.rank == 3 && q.shape == k.shape && q.shape == tq.shape && q.shape == tk.shape,
                     "attentionScoreError shapes \(q.shape) \(k.shape) \(tq.shape) \(tk.shape)")
        let b = q.shape[0], t = q.shape[1], h = q.shape[2]
        precondition(heads > 0 && h % heads == 0, "hidden \(h) not divisible by \(heads) heads")
        if let keyMask { precondition(keyMask.count == b * t, "attention mask \(keyMask.shape) vs \(q.shape)") }
        let d = h / heads, tt = t * t, blocks = b * heads
        let scale = 1 / Float(d).squareRoot()
        let tracked = tracks(q, k)
        let y = output([1], tracked: tracked)
        // S - S_t of block bh into `diff` (`other` holds S_t), 0 where masked.
        func difference(_ bh: Int, _ diff: UnsafeMutablePointer<Float>, _ other: UnsafeMutablePointer<Float>,
                        _ q: Tensor, _ k: Tensor, _ tq: Tensor, _ tk: Tensor, _ keyMask: Tensor?) {
            scoreDifference(block: bh, heads: heads, t: t, h: h, d: d, scale: scale, q: q.pointer, k: k.pointer, tq: tq.pointer,
                            tk: tk.pointer, keyMask: keyMask?.pointer, diff: diff, other: other)
        }
        // Per-block sums in Double, added in block order: the result does not depend on threads.
        let partial = UnsafeMutablePointer<Double>.allocate(capacity: blocks)
        defer { partial.deallocate() }
        let workers = min(Runtime.threads, blocks)
        let chunk = (blocks + workers - 1) / workers
        let scratch = Storage(uninitializedCount: workers * 2 * tt)
        Runtime.parallelFor(workers, grain: 1) { wr in
            for w in wr {
                let diff = scratch.pointer + w * 2 * tt, other = diff + tt
                for bh in (w * chunk)..<min(blocks, (w + 1) * chunk) {
                    difference(bh, diff, other, q, k, tq, tk, keyMask)
                    // Row sums in Float (t terms), the rows added in Double.
                    var s = 0.0
                    for i in 0..<t {
                        let row = diff + i * t
                        var r: Float = 0
                        for j in 0..<t { r += row[j] * row[j] }
                        s += Double(r)
                    }
                    partial[bh] = s
                }
            }
        }
        var total = 0.0
        for bh in 0..<blocks { total += partial[bh] }
        y.pointer[0] = Float(total / Double(normalizer))
        if tracked {
            // The inputs are captured explicitly: backward recomputes every score block from them.
            record(y) { [q, k, tq, tk, keyMask] in
                guard let dy = y.grad else { return }
                let dq = q.requiresGrad ? q.ensureGrad().pointer : nil
                let dk = k.requiresGrad ? k.ensureGrad().pointer : nil
                let w2 = 2 * dy.pointer[0] / normalizer * scale
                let scratch = Storage(uninitializedCount: workers * 2 * tt)
                Runtime.parallelFor(workers, grain: 1) { wr in
                    for w in wr {
                        let diff = scratch.pointer + w * 2 * tt, other = diff + tt
                        for bh in (w * chunk)..<min(blocks, (w + 1) * chunk) {
                            let off = (bh / heads) * t * h + (bh % heads) * d
                            difference(bh, diff, other, q, k, tq, tk, keyMask)
                            if let dq {
                                BLAS.sgemm(transA: false, transB: false, m: t, n: d, k: t, alpha: w2, a: diff, lda: t,
                                           b: k.pointer + off, ldb: h, beta: 1, c: dq + off, ldc: h, threads: 1)
                            }
                            if let dk {
                                BLAS.sgemm(transA: true, transB: false, m: t, n: d, k: t, alpha: w2, a: diff, lda: t,
                                           b: q.pointer + off, ldb: h, beta: 1, c: dk + off, ldc: h, threads: 1)
                            }
                        }
                    }
                }
            }
        }
        return y
    }
}

/// S - S_t of one (batch, head) block of `attentionScoreError` into `diff` (`other` receives
/// S_t), 0 at every pair whose query or key is padding.
private func scoreDifference(block bh: Int, heads: Int, t: Int, h: Int, d: Int, scale: Float, q: UnsafePointer<Float>,
                             k: UnsafePointer<Float>, tq: UnsafePointer<Float>, tk: UnsafePointer<Float>,
                             keyMask: UnsafePointer<Float>?, diff: UnsafeMutablePointer<Float>, other: UnsafeMutablePointer<Float>) {
    let bi = bh / heads, off = bi * t * h + (bh % heads) * d
    BLAS.sgemm(transA: false, transB: true, m: t, n: t, k: d, alpha: scale, a: q + off, lda: h, b: k + off, ldb: h,
               c: diff, ldc: t, threads: 1)
    BLAS.sgemm(transA: false, transB: true, m: t, n: t, k: d, alpha: scale, a: tq + off, lda: h, b: tk + off, ldb: h,
               c: other, ldc: t, threads: 1)
    for i in 0..<(t * t) { diff[i] -= other[i] }
    zeroPaddedPairs(diff, t: t, flags: keyMask.map { $0 + bi * t })
}

/// Sets the (query i, key j) entries of a [T, T] score block to 0 where token i or token j is
/// padding (`flags`: the sequence's 0/1 mask; nil = no padding).
private func zeroPaddedPairs(_ s: UnsafeMutablePointer<Float>, t: Int, flags m: UnsafePointer<Float>?) {
    guard let m else { return }
    for i in 0..<t {
        let row = s + i * t
        if m[i] == 0 {
            row.update(repeating: 0, count: t)
        } else {
            for j in 0..<t where m[j] == 0 { row[j] = 0 }
        }
    }
}
