import AQBert
import AQSafeTensors
import Foundation
import XCTest

@testable import AQQuant

/// The quantization path on a tiny random DistilBERT: plans keyed by DistilBERT names, a few
/// quantization-aware updates, export to the packed format and a reload that computes exactly
/// what the quantization-aware model computes.
final class DistilBertQuantTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("aqbert-distil-quant-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    static var tinyDistilBert: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("AQBertTests/Fixtures/distilbert/tiny-distilbert-seqcls")
    }

    func testPlansUseDistilBertNames() throws {
        let (m, _) = try BertTaskModel.load(directory: Self.tinyDistilBert)
        let plan = try BitPlan.uniform(model: m, bits: 4, groups: 1, candidates: [0, 2, 4])
        let expected = (0..<2).flatMap { i in
            ["attention.q_lin", "attention.k_lin", "attention.v_lin", "attention.out_lin", "ffn.lin1", "ffn.lin2"]
                .map { "distilbert.transformer.layer.\(i).\($0).weight" }
        }
        XCTAssertEqual(QuantizableMatrices.of(m).map(\.path), expected)
        XCTAssertEqual(Set(plan.matrices.keys), Set(expected))
        XCTAssertEqual(plan.matrices["distilbert.transformer.layer.1.ffn.lin1.weight"]?.shape, [37, 32])
        // The same plan fits the bare encoder (plans use the prefixed names whatever the head) ...
        let (bare, _) = try BertTaskModel.load(directory: Self.tinyDistilBert.deletingLastPathComponent()
            .appendingPathComponent("tiny-distilbertmodel"))
        XCTAssertNoThrow(try plan.validate(against: bare))
        // ... but not a BERT.
        let (bert, _) = try BertTaskModel.load(directory: BitPlanTests.tinyModel)
        XCTAssertThrowsError(try plan.validate(against: bert)) { e in
            XCTAssertTrue("\(e)".contains("distilbert.transformer.layer.0.attention.k_lin.weight is not a quantizable encoder matrix"), "\(e)")
        }
    }

    /// Q-BERT-MP's plan names the same matrices: the more sensitive block gets the high width.
    func testQBertPlanUsesDistilBertNames() throws {
        let (m, _) = try BertTaskModel.load(directory: Self.tinyDistilBert)
        let plan = try BitPlan.qbert(model: m, omega: [0.5, 2], lowBits: 2, highBits: 4, groups: 1)
        XCTAssertEqual(plan.matrices["distilbert.transformer.layer.1.attention.q_lin.weight"]?.bits, [4])
        XCTAssertEqual(plan.matrices["distilbert.transformer.layer.0.ffn.lin2.weight"]?.bits, [2])
        XCTAssertNoThrow(try plan.validate(against: m))
    }

    /// plan -> QAT updates -> export -> load: the packed DistilBERT equals the quantization-aware
    /// one bit for bit (both compute the planned products exactly in integers), with the size
    /// `fileBytes` predicts; loaded as a bare encoder it ignores the head (pre_classifier too).
    func testQuantizationAwareTrainingExportAndPackedReload() throws {
        let (m, _) = try BertTaskModel.load(directory: Self.tinyDistilBert)
        var plan = try BitPlan.uniform(model: m, bits: 4, groups: 1, candidates: [0, 2, 3, 4, 8])
        let widths = [0, 2, 3, 4, 8]
        for (i, path) in plan.matrices.keys.sorted().enumerated() {
            let groups = plan.matrices[path]!.shape[0] == 37 ? 37 : 8
            plan.matrices[path]!.groups = groups
            plan.matrices[path]!.bits = (0..<groups).map { widths[(i + $0) % widths.count] }
        }
        let q = try QuantizedBert(plan: plan, model: m)
        let batch = BertBatch(sequences: [[2, 5, 6, 7, 8, 9, 3], [2, 11, 12, 3], [2, 40, 41, 42, 43, 44, 45, 46, 3]])
        let labels: [Int32] = [2, 0, 1]
        // A few quantization-aware updates: straight-through gradients reach every parameter.
        let named = m.checkpointParameters
        let opt = AdamW(groups: [ParameterGroup(named.map(\.tensor), weightDecay: 0)], learningRate: 1e-3)
        m.training = true
        q.training = true
        var losses: [Float] = []
        for _ in 0..<3 {
            m.zeroGradients()
            let tape = Tape()
            let loss = m.classificationLoss(m.forward(batch, tape: tape), labels: labels, tape: tape)
            tape.backward(from: loss)
            XCTAssertNotNil(named.first { $0.name == "distilbert.transformer.layer.0.attention.q_lin.weight" }?.tensor.gradArray)
            losses.append(loss.scalar)
            opt.update()
        }
        XCTAssertLessThan(losses.last!, losses.first!)
        m.training = false
        q.training = false
        let simulated = m.forward(batch, tape: .inference).array

        let out = dir.appendingPathComponent("packed")
        let sizes = try PackedBert.export(model: m, quantization: q, to: out)
        XCTAssertEqual(sizes.bytes, sizes.predicted)
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("config.json"))) as! [String: Any]
        XCTAssertEqual(config["model_type"] as? String, "distilbert")
        XCTAssertEqual(config["architectures"] as? [String], ["DistilBertForSequenceClassification"])
        let file = try SafeTensorsFile(url: out.appendingPathComponent("model.safetensors"))
        XCTAssertNotNil(file.info("distilbert.transformer.layer.0.attention.q_lin.weight.codes"))
        XCTAssertNotNil(file.info("distilbert.embeddings.word_embeddings.weight.codes"))
        XCTAssertNotNil(file.info("pre_classifier.weight"))

        let (p, packed) = try PackedBert.load(directory: out)
        XCTAssertEqual(p.config.family, .distilBert)
        XCTAssertEqual(packed.linears.count, 12)
        XCTAssertEqual(p.forward(batch, tape: .inference).array, simulated)
        let (encoder, _) = try PackedBert.load(directory: out, architecture: .base)
        XCTAssertEqual(encoder.forward(batch, tape: .inference).shape, [3, 9, 32])
    }
}
