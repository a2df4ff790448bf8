import XCTest
@testable import AQCore

/// Finite-difference check of every input gradient of `f`, through the scalar
/// loss = sum(f(inputs) * dout) with a fixed random upstream gradient `dout`.
/// Central differences in fp32 with the loss accumulated in Double.
func checkGradients(_ name: String, inputs: [Tensor], eps: Float = 1e-2, rtol: Float = 2e-2, atol: Float = 2e-3,
                    file: StaticString = #filePath, line: UInt = #line,
                    _ f: (Tape, [Tensor]) -> Tensor) {
    if let failure = gradientMismatch(name, inputs: inputs, eps: eps, rtol: rtol, atol: atol, f) {
        XCTFail(failure, file: file, line: line)
    }
}

/// The first input whose analytic gradient disagrees with finite differences, described, or nil.
func gradientMismatch(_ name: String, inputs: [Tensor], eps: Float = 1e-2, rtol: Float = 2e-2, atol: Float = 2e-3,
                      _ f: (Tape, [Tensor]) -> Tensor) -> String? {
    var gen = SeededGenerator(seed: 1234)
    // Analytic.
    for x in inputs { x.requiresGrad = true; x.grad = nil }
    let tape = Tape()
    let out = f(tape, inputs)
    let dout = Tensor(normal: out.shape, std: 1, generator: &gen)
    let seeded = out.ensureGrad()
    seeded.pointer.update(from: dout.pointer, count: out.count)
    tape.runBackward()
    let analytic = inputs.map { $0.gradArray ?? [Float](repeating: 0, count: $0.count) }

    func loss() -> Double {
        let y = f(Tape.inference, inputs)
        var s = 0.0
        for i in 0..<y.count { s += Double(y.pointer[i]) * Double(dout.pointer[i]) }
        return s
    }
    for (k, x) in inputs.enumerated() {
        var worst: (Int, Float, Float) = (-1, 0, 0)
        var worstExcess: Float = 0
        for i in 0..<x.count {
            let old = x.pointer[i]
            x.pointer[i] = old + eps
            let lp = loss()
            x.pointer[i] = old - eps
            let lm = loss()
            x.pointer[i] = old
            let numeric = Float((lp - lm) / Double(2 * eps))
            let a = analytic[k][i]
            let excess = abs(a - numeric) - (atol + rtol * abs(numeric))
            if excess > worstExcess { worstExcess = excess; worst = (i, a, numeric) }
        }
        if worstExcess > 0 {
            return "\(name): input \(k) shape \(x.shape) element \(worst.0): analytic \(worst.1) vs numeric \(worst.2)"
        }
    }
    return nil
}

func randomTensor(_ shape: [Int], seed: UInt64, std: Float = 1, mean: Float = 0) -> Tensor {
    var g = SeededGenerator(seed: seed)
    return Tensor(normal: shape, mean: mean, std: std, generator: &g)
}

func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    var m: Float = 0
    for i in 0..<a.count { m = max(m, abs(a[i] - b[i])) }
    return m
}
