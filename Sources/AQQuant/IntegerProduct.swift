import AQBert
import CAQKernels

/// The float terms of a quantized product computed on integer codes, shared by the packed
/// kernel (`PackedLinear`) and the exact evaluation of a quantization-aware model
/// (`ExactQuantizedProduct`), so that both round the same way.
///
/// Activations x = q * a + lo_x (u8 codes q in 0...255, a = 1 / (255 / (hi_x - lo_x))) are
/// rewritten around an integer zero point z = round(-lo_x / a): x = (q - z) a + ea with
/// ea = lo_x + z a. A weight row w = c * s + lo (c in 0...levels) likewise around
/// zc = round(-lo / s): w = (c - zc) s + ew. For a row of K inputs and an output row:
///   y = alpha * D + beta * S' + gamma,
///   D = sum_k (q_k - z)(c_k - zc)  (exact, in integers),  S' = sum_k q_k - K z,
///   alpha = a s,  beta = a ew,  gamma = ea s (sum c - K zc) + ea ew K + bias,
/// evaluated as fmaf(alpha, Float(D), fmaf(beta, Float(S'), gamma)) (aqpacked.h's epilogue).
/// The zero points keep the float terms small, so nothing large cancels.
struct IntegerProductTerms {
    /// a, z and ea of the activation grid.
    let activationStep: Float
    let activationZero: Int32
    let activationOffset: Float

    init(activationLow lo: Float, activationHigh hi: Float) {
        let step = 1 / (Float(255) / (hi - lo))
        let z = Int32(min(max((-lo / step).rounded(.toNearestOrEven), 0), 255))
        activationStep = step
        activationZero = z
        activationOffset = lo + Float(z) * step
    }

    /// The terms of one weight row: step s, range low lo, `levels` = 2^b - 1, codeSum = sum c,
    /// `columns` = K. Returns alpha, beta, gamma and the row's zero point zc.
    func row(step: Float, low: Float, levels: Int, codeSum: Int32, columns: Int, bias: Float)
        -> (alpha: Float, beta: Float, gamma: Float, zeroPoint: Int32) {
        let zc = step > 0 ? Int32(min(max((-low / step).rounded(.toNearestOrEven), 0), Float(levels))) : 0
        let ew = low + Float(zc) * step
        let a = activationStep, ea = activationOffset
        let gamma = ea * step * Float(codeSum - Int32(columns) * zc) + ea * ew * Float(columns) + bias
        return (a * step, a * ew, gamma, zc)
    }
}

/// A quantization-aware Linear evaluated exactly: the 8-bit activation codes and the weight
/// codes of `fakeQuantize`, multiplied in integers instead of summing dequantized fp32 values.
/// The integer products go through a float GEMM whose sums are exact: fp32 (sgemm) when every
/// partial sum stays below 2^24 (K * 255 * (2^b - 1) <= 2^24: any width up to 4 bits for
/// K <= 4,386), fp64 otherwise. The result is the quantized model itself, bit for bit what the
/// packed kernel computes; the fp32 simulation differs from it by the rounding of fp32 sums,
/// which is enough to move an 8-bit rounding in a later layer. Inference only (nothing is
/// recorded on a tape).
public enum ExactQuantizedProduct {
    /// x: [..., K], weight: [O, K] fp32 (quantized here, per row group at `groupBits`, on each
    /// group's min/max range or, when given, on `ranges`: 2G effective fp16 bounds of learned
    /// ranges, `LearnedRanges.effective`), bias: [O] -> [..., O]. Activations at 8 bits (u8 codes, `aq_quantize_rows_u8`) with a
    /// non-empty range (hi > lo). `fp32Products: false` forces the fp64 GEMM (tests).
    public static func forward(_ x: Tensor, weight: Tensor, bias: Tensor?, groupBits: [Int], ranges: [Float]? = nil,
                               activationLow lo: Float, activationHigh hi: Float, fp32Products: Bool = true) -> Tensor {
        let rows = weight.shape[0], k = weight.shape[1], groups = groupBits.count
        precondition(x.shape.last == k && rows % groups == 0 && hi > lo, "ExactQuantizedProduct: shapes checked by the plan")
        let m = x.count / k, perGroup = rows / groups
        let terms = IntegerProductTerms(activationLow: lo, activationHigh: hi)

        // Weight codes per kept group (aq_quantize_codes: the ranges training uses) and row terms;
        // B holds c - zc (|value| <= 255: exact in Float).
        // Output rows of the kept groups, in order: where the epilogue writes each product column.
        let keptOutput = groupBits.enumerated().filter { $0.element > 0 }
            .flatMap { g, _ in (g * perGroup)..<((g + 1) * perGroup) }.map { Int32($0) }
        let kept = keptOutput.count
        let b = UnsafeMutablePointer<Float>.allocate(capacity: max(1, kept * k))
        let codes = UnsafeMutablePointer<UInt8>.allocate(capacity: max(1, perGroup * k))
        defer { b.deallocate(); codes.deallocate() }
        var alpha = [Float](repeating: 0, count: kept), beta = alpha, gamma = alpha
        var r = 0
        for (g, bits) in groupBits.enumerated() where bits > 0 {
            var wlo: Float = 0, whi: Float = 0
            if let ranges {
                (wlo, whi) = (ranges[2 * g], ranges[2 * g + 1])
                aq_quantize_codes_range(weight.pointer + g * perGroup * k, codes, perGroup * k, Int32(bits), wlo, whi)
            } else {
                aq_quantize_codes(weight.pointer + g * perGroup * k, codes, perGroup * k, Int32(bits), &wlo, &whi)
            }
            let step = PackedFormat.step(lo: wlo, hi: whi, bits: bits)
            for i in 0..<perGroup {
                let row = codes + i * k
                var sum: Int32 = 0
                for j in 0..<k { sum += Int32(row[j]) }
                let t = terms.row(step: step, low: wlo, levels: (1 << bits) - 1, codeSum: sum, columns: k,
                                  bias: bias?.pointer[g * perGroup + i] ?? 0)
                (alpha[r], beta[r], gamma[r]) = (t.alpha, t.beta, t.gamma)
                let out = b + r * k
                for j in 0..<k { out[j] = Float(Int32(row[j]) - t.zeroPoint) }
                r += 1
            }
        }

        // Activation codes (aq_quantize_rows_u8: the activation quantizer's rounding), q - z and S'.
        let q = UnsafeMutablePointer<UInt8>.allocate(capacity: max(1, m * k))
        let a = UnsafeMutablePointer<Float>.allocate(capacity: max(1, m * k))
        let sums = UnsafeMutablePointer<Int32>.allocate(capacity: max(1, m))
        let d = UnsafeMutablePointer<Float>.allocate(capacity: max(1, m * kept))
        defer { q.deallocate(); a.deallocate(); sums.deallocate(); d.deallocate() }
        let z = terms.activationZero
        aq_quantize_rows_u8(x.pointer, m, k, k, lo, hi, q, k, sums)
        for i in 0..<(m * k) { a[i] = Float(Int32(q[i]) - z) }
        for t in 0..<m { sums[t] -= Int32(k) * z }

        // D = A B^T: integer sums through a GEMM that keeps them exact, then as Float (the
        // rounding Float(Int32(D)) would do).
        if fp32Products && sumsFitFloat(columns: k, widestBits: groupBits.max() ?? 0) {
            BLAS.sgemm(transA: false, transB: true, m: m, n: kept, k: k, a: a, lda: k, b: b, ldb: k, c: d, ldc: kept)
        } else {
            let a64 = UnsafeMutablePointer<Double>.allocate(capacity: max(1, m * k))
            let b64 = UnsafeMutablePointer<Double>.allocate(capacity: max(1, kept * k))
            let d64 = UnsafeMutablePointer<Double>.allocate(capacity: max(1, m * kept))
            defer { a64.deallocate(); b64.deallocate(); d64.deallocate() }
            for i in 0..<(m * k) { a64[i] = Double(a[i]) }
            for i in 0..<(kept * k) { b64[i] = Double(b[i]) }
            BLAS.dgemmABt(m: m, n: kept, k: k, a: a64, b: b64, c: d64)
            for i in 0..<(m * kept) { d[i] = Float(d64[i]) }
        }

        var outShape = x.shape
        outShape[outShape.count - 1] = rows
        let y = Tensor(uninitialized: outShape)
        if kept < rows {  // pruned rows: W = 0, y = bias
            for t in 0..<m {
                let out = y.pointer + t * rows
                for o in 0..<rows { out[o] = bias?.pointer[o] ?? 0 }
            }
        }
        aq_affine_epilogue(d, sums, m, kept, alpha, beta, gamma, y.pointer, rows, keptOutput)
        return y
    }

    /// Whether every partial sum of K products (q - z)(c - zc), |q - z| <= 255 and
    /// |c - zc| <= 2^b - 1, stays within 2^24, where fp32 holds every integer exactly.
    static func sumsFitFloat(columns k: Int, widestBits b: Int) -> Bool {
        k * 255 * ((1 << b) - 1) <= 1 << 24
    }
}
