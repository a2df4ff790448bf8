// Matrix products. Legend: M, N, K = GEMM sizes; B = batch; `in`/`out` = Linear features.

extension Tape {
    /// Linear layer, Hugging Face layout: y = x W^T + b.
    /// x: [..., in], w: [out, in], b: [out] -> [..., out]
    public func linear(_ x: Tensor, _ w: Tensor, _ b: Tensor?) -> Tensor {
        let inF = w.shape[1], outF = w.shape[0]
        precondition(x.shape.last == inF, "linear: input \(x.shape) vs weight \(w.shape)")
        if let b { precondition(b.shape == [outF], "linear: bias \(b.shape) vs weight \(w.shape)") }
        let rows = x.count / max(1, inF)
        let tracked = tracks(x, w, b)
        let y = output(Array(x.shape.dropLast()) + [outF], tracked: tracked)
        if let b {
            // Seed C with the bias rows, then C = X W^T + C.
            Runtime.parallelFor(rows, grain: max(1, 16384 / max(1, outF))) { r in
                for i in r { (y.pointer + i * outF).update(from: b.pointer, count: outF) }
            }
        }
        BLAS.sgemm(transA: false, transB: true, m: rows, n: outF, k: inF,
                   a: x.pointer, lda: inF, b: w.pointer, ldb: inF,
                   beta: b == nil ? 0 : 1, c: y.pointer, ldc: outF)
        if tracked {
            record(y) {
                guard let dy = y.grad else { return }
                // dx += dy W        [rows, out] x [out, in]
                if x.requiresGrad {
                    BLAS.sgemm(transA: false, transB: false, m: rows, n: inF, k: outF,
                               a: dy.pointer, lda: outF, b: w.pointer, ldb: inF,
                               beta: 1, c: x.ensureGrad().pointer, ldc: inF)
                }
                // dW += dy^T x      [out, rows] x [rows, in]
                if w.requiresGrad {
                    BLAS.sgemm(transA: true, transB: false, m: outF, n: inF, k: rows,
                               a: dy.pointer, lda: outF, b: x.pointer, ldb: inF,
                               beta: 1, c: w.ensureGrad().pointer, ldc: inF)
                }
                // db += sum over rows of dy
                if let b, b.requiresGrad {
                    Kernels.sumRows(dy.pointer, into: b.ensureGrad().pointer, rows: rows, cols: outF)
                }
            }
        }
        return y
    }

    /// 2-D product with optional transposes: op(a) [M, K] x op(b) [K, N] -> [M, N].
    public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
        precondition(a.rank == 2 && b.rank == 2, "matmul: ranks \(a.shape) \(b.shape)")
        return batchedMatmul(a, b, transposeA: transposeA, transposeB: transposeB, batchRank: 0)
    }

    /// Batched product over leading dimensions: a [..., M, K], b [..., K, N] -> [..., M, N]
    /// (op() transposes the last two axes). Leading dimensions must match exactly.
    public func batchedMatmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
        precondition(a.rank >= 2 && a.rank == b.rank, "batchedMatmul: ranks \(a.shape) \(b.shape)")
        return batchedMatmul(a, b, transposeA: transposeA, transposeB: transposeB, batchRank: a.rank - 2)
    }

    private func batchedMatmul(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool, batchRank: Int) -> Tensor {
        let lead = Array(a.shape.prefix(batchRank))
        precondition(Array(b.shape.prefix(batchRank)) == lead, "batchedMatmul: batch dims \(a.shape) \(b.shape)")
        let ar = a.shape[batchRank], ac = a.shape[batchRank + 1]
        let br = b.shape[batchRank], bc = b.shape[batchRank + 1]
        let (m, k) = transposeA ? (ac, ar) : (ar, ac)
        let (k2, n) = transposeB ? (bc, br) : (br, bc)
        precondition(k == k2, "matmul: inner dimensions \(a.shape) x \(b.shape) (transposes \(transposeA), \(transposeB))")
        let batch = Tensor.count(of: lead)
        let tracked = tracks(a, b)
        let y = output(lead + [m, n], tracked: tracked)
        let aS = ar * ac, bS = br * bc, yS = m * n
        Self.forEachBatch(batch, work: m * n * k) { i, th in
            BLAS.sgemm(transA: transposeA, transB: transposeB, m: m, n: n, k: k,
                       a: a.pointer + i * aS, lda: ac, b: b.pointer + i * bS, ldb: bc,
                       c: y.pointer + i * yS, ldc: n, threads: th)
        }
        if tracked {
            record(y) {
                guard let dy = y.grad else { return }
                if a.requiresGrad {
                    let da = a.ensureGrad().pointer
                    Self.forEachBatch(batch, work: m * n * k) { i, th in
                        let g = dy.pointer + i * yS, o = b.pointer + i * bS, d = da + i * aS
                        if transposeA {
                            // a^T = dy-term: da [K, M] += op(b) ... : da += op(b) dy^T  -> (b or b^T) x dy^T
                            BLAS.sgemm(transA: transposeB, transB: true, m: k, n: m, k: n,
                                       a: o, lda: bc, b: g, ldb: n, beta: 1, c: d, ldc: ac, threads: th)
                        } else {
                            // da [M, K] += dy op(b)^T
                            BLAS.sgemm(transA: false, transB: !transposeB, m: m, n: k, k: n,
                                       a: g, lda: n, b: o, ldb: bc, beta: 1, c: d, ldc: ac, threads: th)
                        }
                    }
                }
                if b.requiresGrad {
                    let db = b.ensureGrad().pointer
                    Self.forEachBatch(batch, work: m * n * k) { i, th in
                        let g = dy.pointer + i * yS, o = a.pointer + i * aS, d = db + i * bS
                        if transposeB {
                            // db [N, K] += dy^T op(a)
                            BLAS.sgemm(transA: true, transB: transposeA, m: n, n: k, k: m,
                                       a: g, lda: n, b: o, ldb: ac, beta: 1, c: d, ldc: bc, threads: th)
                        } else {
                            // db [K, N] += op(a)^T dy
                            BLAS.sgemm(transA: !transposeA, transB: false, m: k, n: n, k: m,
                                       a: o, lda: ac, b: g, ldb: n, beta: 1, c: d, ldc: bc, threads: th)
                        }
                    }
                }
            }
        }
        return y
    }

    /// Runs `body(index, threadsPerItem)`: items in parallel when there are several, else one
    /// item with all threads inside the GEMM.
    static func forEachBatch(_ batch: Int, work: Int, _ body: (Int, Int) -> Void) {
        if batch == 1 || Runtime.threads == 1 {
            for i in 0..<batch { body(i, Runtime.threads) }
        } else {
            Runtime.parallelFor(batch, grain: 1) { r in for i in r { body(i, 1) } }
        }
    }
}
