import COpenBLAS

/// Row-major SGEMM through OpenBLAS, split across `Runtime.threads` workers.
///
/// C[m, n] = alpha * op(A)[m, k] * op(B)[k, n] + beta * C. Large products are cut into row
/// blocks of C (or column blocks when m is small); each worker calls single-threaded OpenBLAS
/// on its block, so the split never changes a result element's summation order.
public enum BLAS {
    /// Below this many multiply-adds a product runs on one thread.
    static let parallelThreshold = 1 << 18

    public static func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                             alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                             b: UnsafePointer<Float>, ldb: Int,
                             beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int,
                             threads: Int = Runtime.threads) {
        if m == 0 || n == 0 { return }
        if k == 0 {
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
            return
        }
        let workers = m * n * k >= parallelThreshold ? threads : 1
        if workers <= 1 {
            raw(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            return
        }
        if m >= 32 * workers || m >= n {
            // Row blocks of C: rows [r0, r1) of op(A).
            let block = ((m + workers - 1) / workers + 7) / 8 * 8
            let parts = (m + block - 1) / block
            Runtime.parallelFor(parts, grain: 1) { range in
                for p in range {
                    let r0 = p * block, r1 = min(m, r0 + block)
                    let aBlock = transA ? a + r0 : a + r0 * lda
                    raw(transA, transB, r1 - r0, n, k, alpha, aBlock, lda, b, ldb, beta, c + r0 * ldc, ldc)
                }
            }
        } else {
            // Column blocks of C: columns [c0, c1) of op(B).
            let block = ((n + workers - 1) / workers + 15) / 16 * 16
            let parts = (n + block - 1) / block
            Runtime.parallelFor(parts, grain: 1) { range in
                for p in range {
                    let c0 = p * block, c1 = min(n, c0 + block)
                    let bBlock = transB ? b + c0 * ldb : b + c0
                    raw(transA, transB, m, c1 - c0, k, alpha, a, lda, bBlock, ldb, beta, c + c0, ldc)
                }
            }
        }
    }

    /// Row-major C[m, n] = A[m, k] * B[n, k]^T in double precision, row blocks of C split across
    /// `Runtime.threads` workers (single-threaded OpenBLAS per block). Used where sums of
    /// integers must be exact (every partial sum below 2^53 is).
    public static func dgemmABt(m: Int, n: Int, k: Int, a: UnsafePointer<Double>, b: UnsafePointer<Double>,
                                c: UnsafeMutablePointer<Double>) {
        if m == 0 || n == 0 { return }
        if k == 0 { c.update(repeating: 0, count: m * n); return }
        let workers = m * n * k >= parallelThreshold ? min(Runtime.threads, max(1, m / 8)) : 1
        let block = (m + workers - 1) / workers
        Runtime.parallelFor(workers, grain: 1) { range in
            for p in range {
                let r0 = p * block, r1 = min(m, r0 + block)
                guard r1 > r0 else { continue }
                cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blasint(r1 - r0), blasint(n), blasint(k), 1,
                            a + r0 * k, blasint(k), b, blasint(k), 0, c + r0 * n, blasint(n))
            }
        }
    }

    @inline(__always)
    static func raw(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
                    _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                    _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
    }

    /// Naive triple loop (Double accumulation), the oracle for tests.
    public static func sgemmReference(transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                                      alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                                      b: UnsafePointer<Float>, ldb: Int,
                                      beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for p in 0..<k {
                    let av = transA ? a[p * lda + i] : a[i * lda + p]
                    let bv = transB ? b[j * ldb + p] : b[p * ldb + j]
                    s += Double(av) * Double(bv)
                }
                let prior = beta == 0 ? 0 : beta * c[i * ldc + j]
                c[i * ldc + j] = alpha * Float(s) + prior
            }
        }
    }
}
