import AQBert
import CAQKernels

/// How the weight groups of a quantization-aware model get their quantization ranges.
public enum RangeMode: String, Codable, Sendable, CaseIterable {
    /// The group's min and max (METHOD.md section 2), recomputed from the weights at every step.
    case minmax
    /// Trainable clipping bounds per group (LSQ with a learned offset), `LearnedRanges`.
    case learned
}

/// Where learned ranges start.
public enum RangeInitialization: String, Codable, Sendable, CaseIterable {
    /// The group's min/max range (fp16-rounded outward, as `minmax`).
    case minmax
    /// The bounds with the least squared quantization error (`aq_mse_range`).
    case mse
}

/// Learned clipping bounds of the weight groups (LSQ, Esser et al. 2020, "Learned Step Size
/// Quantization", with the learned offset of LSQ+, Bhalgat et al. 2020). Each kept group of a
/// planned matrix has a trainable pair (lo, hi), stored as a `[G, 2]` tensor per matrix
/// (pruned groups keep a placeholder pair that nothing reads). The quantizer uses the pair
/// rounded to fp16 (`aq_learned_range`), which is exactly what the packed format stores, so a
/// packed model computes what the quantization-aware one did. Gradients follow LSQ's
/// straight-through rules (`Tape.fakeQuantize(_:groupBits:ranges:)`); LSQ's gradient scale
/// 1/sqrt(n Q_p) is left out because the bounds are trained with Adam, which normalises each
/// parameter's step and would only see the scale through epsilon.
public enum LearnedRanges {
    /// The name of a matrix's bounds tensor in checkpoints and `weight_ranges.safetensors`.
    public static func tensorName(_ matrixPath: String) -> String { matrixPath + ".ranges" }

    /// The bounds the quantizer uses: each (lo, hi) of `ranges` ([G, 2]) rounded to fp16 with
    /// hi > lo. -> 2G values
    public static func effective(_ ranges: Tensor) -> [Float] {
        var out = [Float](repeating: 0, count: ranges.count)
        let p = ranges.pointer
        for j in 0..<(ranges.count / 2) {
            var lo: Float = 0, hi: Float = 0
            aq_learned_range(p[2 * j], p[2 * j + 1], &lo, &hi)
            (out[2 * j], out[2 * j + 1]) = (lo, hi)
        }
        return out
    }

    /// Initial bounds of the groups of `weight` ([O, K], G = groupBits.count row groups).
    /// A pruned group, or a constant one, gets its min/max pair. -> [G, 2]
    public static func initial(_ weight: Tensor, groupBits: [Int], method: RangeInitialization) -> Tensor {
        let g = groupBits.count, n = weight.count / g
        let out = Tensor(zeros: [g, 2])
        let o = out.pointer
        Runtime.parallelFor(g, grain: 1) { r in
            for j in r {
                let x = weight.pointer + j * n
                var lo: Float = 0, hi: Float = 0
                if method == .mse && groupBits[j] > 0 {
                    aq_mse_range(x, n, Int32(groupBits[j]), &lo, &hi)
                } else {
                    aq_group_range(x, n, &lo, &hi)
                }
                if !(hi > lo) { aq_learned_range(lo, hi, &lo, &hi) }  // a constant group: a one-step range
                o[2 * j] = lo
                o[2 * j + 1] = hi
            }
        }
        return out
    }
}
