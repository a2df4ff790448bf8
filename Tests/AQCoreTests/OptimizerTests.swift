import XCTest
@testable import AQCore

final class OptimizerTests: XCTestCase {
    /// Three AdamW steps against the update written out in Double (torch/optim/adamw.py).
    func testAdamWMatchesTorchFormula() {
        let p = Tensor(shape: [3], values: [0.5, -1.0, 2.0], requiresGrad: true)
        let grads: [[Float]] = [[0.1, -0.2, 0.3], [0.05, 0.4, -0.1], [-0.3, 0.0, 0.2]]
        let opt = AdamW(groups: [ParameterGroup([p], weightDecay: 0.01)], learningRate: 1e-2)
        var ref = p.array.map(Double.init), m = [Double](repeating: 0, count: 3), v = m
        for (s, g) in grads.enumerated() {
            p.ensureGrad(); p.grad!.pointer.update(from: g, count: 3)
            opt.update()
            let step = Double(s + 1)
            for i in 0..<3 {
                ref[i] *= 1 - 1e-2 * 0.01
                m[i] = 0.9 * m[i] + 0.1 * Double(g[i])
                v[i] = 0.999 * v[i] + 0.001 * Double(g[i]) * Double(g[i])
                let denom = v[i].squareRoot() / (1 - pow(0.999, step)).squareRoot() + 1e-8
                ref[i] -= 1e-2 / (1 - pow(0.9, step)) * m[i] / denom
            }
        }
        for i in 0..<3 { XCTAssertEqual(Double(p.pointer[i]), ref[i], accuracy: 1e-6) }
    }

    func testSGDMomentumMatchesTorchFormula() {
        let p = Tensor(shape: [2], values: [1, -1], requiresGrad: true)
        let opt = SGD(groups: [ParameterGroup([p], weightDecay: 0)], learningRate: 0.1, momentum: 0.9)
        var ref: [Double] = [1, -1], buf: [Double] = [0, 0]
        for s in 0..<3 {
            let g: [Float] = [Float(s) + 0.5, -0.25]
            p.ensureGrad(); p.grad!.pointer.update(from: g, count: 2)
            opt.update()
            for i in 0..<2 {
                buf[i] = s == 0 ? Double(g[i]) : 0.9 * buf[i] + Double(g[i])
                ref[i] -= 0.1 * buf[i]
            }
        }
        for i in 0..<2 { XCTAssertEqual(Double(p.pointer[i]), ref[i], accuracy: 1e-6) }
    }

    func testLinearScheduleMatchesTransformers() {
        let s = LinearSchedule(warmupSteps: 2, totalSteps: 10)
        XCTAssertEqual((0..<11).map { s.factor(at: $0) },
                       [0, 0.5, 1, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125, 0])
    }

    func testClipGradientNorm() {
        let a = Tensor(shape: [2], values: [3, 0], requiresGrad: true), b = Tensor(shape: [1], values: [0], requiresGrad: true)
        a.ensureGrad(); a.grad!.pointer.update(from: [3, 0], count: 2)
        b.ensureGrad(); b.grad!.pointer.update(from: [4], count: 1)
        let norm = clipGradientNorm([a, b], maxNorm: 1)
        XCTAssertEqual(norm, 5, accuracy: 1e-6)
        XCTAssertEqual(a.gradArray![0], 3 / (5 + 1e-6), accuracy: 1e-6)
        XCTAssertEqual(b.gradArray![0], 4 / (5 + 1e-6), accuracy: 1e-6)
        XCTAssertEqual(clipGradientNorm([a, b], maxNorm: 10), 1, accuracy: 1e-5)  // no change below the limit
    }
}
