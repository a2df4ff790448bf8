import Foundation
import XCTest
@testable import AQCore

/// The ops whose semantics come from PyTorch against PyTorch itself (Fixtures/op_goldens.json,
/// made by Scripts/fixtures/make_op_goldens.py): outputs and the gradients of
/// sum(output * upstream) for GELU (erf and tanh), LayerNorm, BERT's masked softmax,
/// cross-entropy with an ignore index, and three AdamW steps.
final class OpGoldenTests: XCTestCase {
    struct Values: Decodable {
        let shape: [Int]
        let values: [Float]
        var tensor: Tensor { Tensor(shape: shape, values: values) }
    }

    struct Case: Decodable {
        let name: String
        let inputs: [String: Values]
        let output: Values
        let upstream: [Float]
        let gradients: [String: [Float]]
        let scale: Float?
        let key_mask: [Float]?
        let rows_per_mask: Int?
        let targets: [Int32]?
    }

    struct AdamWCase: Decodable {
        let initial: [Float]
        let gradients: [[Float]]
        let lr: Float
        let weight_decay: Float
        let after_each_step: [[Float]]
    }

    struct Goldens: Decodable {
        let cases: [Case]
        let adamw: AdamWCase
    }

    static let goldens: Goldens = {
        let url = Bundle.module.url(forResource: "Fixtures/op_goldens", withExtension: "json")!
        return try! JSONDecoder().decode(Goldens.self, from: Data(contentsOf: url))
    }()

    /// Runs `op` on the case's inputs (as leaves, in `order`), checks its output and every
    /// input gradient against PyTorch's.
    func check(_ name: String, order: [String], tolerance: Float = 2e-5, _ op: (Tape, [Tensor]) -> Tensor) throws {
        let c = try XCTUnwrap(Self.goldens.cases.first { $0.name == name }, name)
        let inputs = order.map { c.inputs[$0]!.tensor }
        for t in inputs { t.requiresGrad = true }
        let tape = Tape()
        let y = op(tape, inputs)
        XCTAssertEqual(y.count, c.output.values.count, name)
        for (i, (a, b)) in zip(y.array, c.output.values).enumerated() {
            XCTAssertEqual(a, b, accuracy: tolerance * max(1, abs(b)), "\(name) output \(i)")
        }
        tape.backward(from: tape.sum(tape.mul(y, Tensor(shape: y.shape, values: c.upstream))))
        for (key, t) in zip(order, inputs) {
            let expected = try XCTUnwrap(c.gradients[key], "\(name): no gradient for \(key)")
            let got = try XCTUnwrap(t.gradArray, "\(name): no gradient reached \(key)")
            for (i, (a, b)) in zip(got, expected).enumerated() {
                XCTAssertEqual(a, b, accuracy: tolerance * max(1, abs(b)), "\(name) d\(key)[\(i)]")
            }
        }
    }

    func testGELU() throws {
        try check("gelu", order: ["x"]) { t, i in t.gelu(i[0], approximate: false) }
        try check("gelu_tanh", order: ["x"]) { t, i in t.gelu(i[0], approximate: true) }
    }

    func testLayerNorm() throws {
        try check("layer_norm", order: ["x", "weight", "bias"]) { t, i in t.layerNorm(i[0], weight: i[1], bias: i[2], eps: 1e-12) }
    }

    func testMaskedSoftmax() throws {
        let c = try XCTUnwrap(Self.goldens.cases.first { $0.name == "masked_softmax" })
        let mask = Tensor(shape: [2, 5], values: try XCTUnwrap(c.key_mask))
        try check("masked_softmax", order: ["x"]) { t, i in
            t.softmax(i[0], scale: c.scale!, keyMask: mask, rowsPerMask: c.rows_per_mask!)
        }
    }

    func testCrossEntropyWithIgnoreIndex() throws {
        let c = try XCTUnwrap(Self.goldens.cases.first { $0.name == "cross_entropy_ignore_index" })
        try check("cross_entropy_ignore_index", order: ["logits"]) { t, i in t.crossEntropy(i[0], targets: c.targets!) }
    }

    func testAdamWSteps() {
        let g = Self.goldens.adamw
        let p = Tensor(shape: [g.initial.count], values: g.initial, requiresGrad: true)
        let opt = AdamW(groups: [ParameterGroup([p], weightDecay: g.weight_decay)], learningRate: g.lr)
        for (step, (grad, expected)) in zip(g.gradients, g.after_each_step).enumerated() {
            p.ensureGrad()
            p.grad!.pointer.update(from: grad, count: grad.count)
            opt.update()
            for (i, (a, b)) in zip(p.array, expected).enumerated() {
                XCTAssertEqual(a, b, accuracy: 1e-6 * max(1, abs(b)), "step \(step + 1) parameter \(i)")
            }
        }
    }
}
