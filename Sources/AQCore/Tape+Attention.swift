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
                          dropout p: Float = 0, generator: inout SeededGenerator) -> Tensor {
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
            let m = ByteBuffer(count: b * heads * tt)
            generator.fillKeepMask(m.pointer, count: m.count, dropProbability: p)
            dropMask = m
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
