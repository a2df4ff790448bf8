import CAQKernels

/// Swift entry points to the C kernels, split across `Runtime.threads` workers by rows or
/// elements. Each has the same contract as its C function (backward ones accumulate).
public enum Kernels {
    /// Elements per worker below which a kernel runs inline.
    static let grain = 1 << 15

    /// The kernels' instruction level now (cpu.c: the CPU's best, capped by AQBERT_CPU or a test).
    public static var cpuLevel: String { String(cString: aq_cpu_level_name(aq_cpu_level())) }
    /// The best level this CPU runs.
    public static var cpuBestLevel: String { String(cString: aq_cpu_level_name(aq_cpu_best_level())) }
    /// True when the CPU has AVX2+FMA (the fast paths of the elementwise kernels exist).
    public static var cpuHasAVX2: Bool { aq_cpu_supports(Int32(AQ_CPU_AVX2)) != 0 }
    /// Caps the kernels' level by name ("portable", "avx2", "avx-vnni", "avx512-vnni"; the highest
    /// supported level below it runs); nil restores the default. For tests and benchmarks that
    /// compare paths; returns false for an unknown name.
    @discardableResult
    public static func setCPULevel(_ name: String?) -> Bool {
        guard let name else {
            aq_cpu_set_level(-1)
            return true
        }
        guard let level = (0...Int32(AQ_CPU_MAX)).first(where: { String(cString: aq_cpu_level_name($0)) == name }) else { return false }
        aq_cpu_set_level(level)
        return true
    }

    public static func geluForward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int, approximate: Bool) {
        Runtime.parallelFor(count, grain: grain / 4) { r in
            aq_gelu_forward(x + r.lowerBound, y + r.lowerBound, r.count, approximate ? 1 : 0)
        }
    }

    public static func geluBackward(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                                    count: Int, approximate: Bool) {
        Runtime.parallelFor(count, grain: grain / 4) { r in
            aq_gelu_backward(x + r.lowerBound, dy + r.lowerBound, dx + r.lowerBound, r.count, approximate ? 1 : 0)
        }
    }

    /// keyMask: [rows / rowsPerMask, cols] of 0/1 or nil.
    public static func softmaxForward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int, cols: Int,
                                      scale: Float, keyMask: UnsafePointer<Float>?, rowsPerMask: Int) {
        Runtime.parallelFor(rows, grain: max(1, grain / max(1, cols))) { r in
            for row in r {
                let m = keyMask.map { $0 + (row / rowsPerMask) * cols }
                aq_softmax_forward(x + row * cols, y + row * cols, 1, cols, scale, m, 1)
            }
        }
    }

    public static func softmaxBackward(_ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                                       rows: Int, cols: Int, scale: Float) {
        Runtime.parallelFor(rows, grain: max(1, grain / max(1, cols))) { r in
            let o = r.lowerBound * cols
            aq_softmax_backward(y + o, dy + o, dx + o, r.count, cols, scale)
        }
    }

    public static func layerNormForward(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                                        _ y: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>?,
                                        rstd: UnsafeMutablePointer<Float>?, rows: Int, cols: Int, eps: Float) {
        Runtime.parallelFor(rows, grain: max(1, grain / max(1, cols))) { r in
            let o = r.lowerBound * cols
            aq_layernorm_forward(x + o, w, b, y + o, mean.map { $0 + r.lowerBound }, rstd.map { $0 + r.lowerBound },
                                 r.count, cols, eps)
        }
    }

    /// dw and db are accumulated per worker in scratch and summed in a fixed order, so the
    /// result does not depend on scheduling.
    public static func layerNormBackward(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, mean: UnsafePointer<Float>,
                                         rstd: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                                         dw: UnsafeMutablePointer<Float>?, db: UnsafeMutablePointer<Float>?, rows: Int, cols: Int) {
        let workers = min(Runtime.threads, max(1, rows * cols / grain))
        if workers <= 1 {
            aq_layernorm_backward(x, w, mean, rstd, dy, dx, dw, db, rows, cols)
            return
        }
        let chunk = (rows + workers - 1) / workers
        let scratch = Storage(zeros: workers * 2 * cols)
        Runtime.parallelFor(workers, grain: 1) { wr in
            for wi in wr {
                let lo = wi * chunk, hi = min(rows, lo + chunk)
                guard lo < hi else { continue }
                let sdw = scratch.pointer + wi * 2 * cols
                aq_layernorm_backward(x + lo * cols, w, mean + lo, rstd + lo, dy + lo * cols, dx + lo * cols,
                                      sdw, sdw + cols, hi - lo, cols)
            }
        }
        for wi in 0..<workers {
            let sdw = scratch.pointer + wi * 2 * cols
            if let dw { aq_axpy(1, sdw, dw, cols) }
            if let db { aq_axpy(1, sdw + cols, db, cols) }
        }
    }

    /// acc[c] += sum over rows of x[r, c]   (x: [rows, cols]); per-worker partials, fixed order.
    public static func sumRows(_ x: UnsafePointer<Float>, into acc: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
        let workers = min(Runtime.threads, max(1, rows * cols / grain))
        if workers <= 1 {
            aq_sum_rows(x, acc, rows, cols)
            return
        }
        let chunk = (rows + workers - 1) / workers
        let scratch = Storage(zeros: workers * cols)
        Runtime.parallelFor(workers, grain: 1) { wr in
            for wi in wr {
                let lo = wi * chunk, hi = min(rows, lo + chunk)
                if lo < hi { aq_sum_rows(x + lo * cols, scratch.pointer + wi * cols, hi - lo, cols) }
            }
        }
        for wi in 0..<workers { aq_axpy(1, scratch.pointer + wi * cols, acc, cols) }
    }

    public static func add(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        Runtime.parallelFor(count, grain: grain * 4) { r in
            aq_add(a + r.lowerBound, b + r.lowerBound, y + r.lowerBound, r.count)
        }
    }

    public static func mul(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        Runtime.parallelFor(count, grain: grain * 4) { r in
            aq_mul(a + r.lowerBound, b + r.lowerBound, y + r.lowerBound, r.count)
        }
    }

    /// y += alpha * x
    public static func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        Runtime.parallelFor(count, grain: grain * 4) { r in
            aq_axpy(alpha, x + r.lowerBound, y + r.lowerBound, r.count)
        }
    }

    /// y += a * b
    public static func fmaAccumulate(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        Runtime.parallelFor(count, grain: grain * 4) { r in
            aq_fma_accumulate(a + r.lowerBound, b + r.lowerBound, y + r.lowerBound, r.count)
        }
    }

    /// y = x + row (row broadcast over rows).
    public static func addRows(_ x: UnsafePointer<Float>, _ row: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
        Runtime.parallelFor(rows, grain: max(1, grain * 4 / max(1, cols))) { r in
            let o = r.lowerBound * cols
            aq_add_rows(x + o, row, y + o, r.count, cols)
        }
    }

    public static func dropoutForward(_ x: UnsafePointer<Float>, keep: UnsafePointer<UInt8>, _ y: UnsafeMutablePointer<Float>,
                                      count: Int, scale: Float) {
        Runtime.parallelFor(count, grain: grain * 4) { r in
            aq_dropout_forward(x + r.lowerBound, keep + r.lowerBound, y + r.lowerBound, r.count, scale)
        }
    }

    public static func dropoutBackward(_ dy: UnsafePointer<Float>, keep: UnsafePointer<UInt8>, _ dx: UnsafeMutablePointer<Float>,
                                       count: Int, scale: Float) {
        Runtime.parallelFor(count, grain: grain * 4) { r in
            aq_dropout_backward(dy + r.lowerBound, keep + r.lowerBound, dx + r.lowerBound, r.count, scale)
        }
    }

    public static func sumOfSquares(_ x: UnsafePointer<Float>, count: Int) -> Double { aq_sum_squares(x, count) }

    public static func scale(_ x: UnsafeMutablePointer<Float>, by alpha: Float, count: Int) {
        Runtime.parallelFor(count, grain: grain * 4) { r in aq_scale(x + r.lowerBound, alpha, r.count) }
    }

    public static func adamwStep(parameter p: UnsafeMutablePointer<Float>, gradient g: UnsafePointer<Float>,
                                 firstMoment m: UnsafeMutablePointer<Float>, secondMoment v: UnsafeMutablePointer<Float>,
                                 count: Int, lr: Float, beta1: Float, beta2: Float, eps: Float, weightDecay: Float,
                                 biasCorrection1: Float, biasCorrection2Sqrt: Float) {
        Runtime.parallelFor(count, grain: grain * 2) { r in
            let o = r.lowerBound
            aq_adamw_step(p + o, g + o, m + o, v + o, r.count, lr, beta1, beta2, eps, weightDecay,
                          biasCorrection1, biasCorrection2Sqrt)
        }
    }
}
