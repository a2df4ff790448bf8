import AQSafeTensors
import Foundation
import XCTest

@testable import AQBert

/// Layer 3: tiny random BERTs and DistilBERTs against transformers (fixtures from
/// Scripts/fixtures/make_bert_goldens.py and make_distilbert_goldens.py): outputs, loss, every
/// parameter gradient at step 0, and a 10-step AdamW trajectory with clipping and a
/// warm-up/decay schedule. Both families share the tolerances.
final class GoldenParityTests: XCTestCase {
    // Named tolerances: forward values are O(1); gradients are compared relative to their scale.
    static let forwardTolerance: (atol: Float, rtol: Float) = (2e-5, 1e-4)
    static let gradientTolerance: (atol: Float, rtol: Float) = (2e-5, 5e-4)
    static let trajectoryTolerance: (atol: Float, rtol: Float) = (1e-4, 1e-3)

    struct Golden {
        let file: SafeTensorsFile
        func floats(_ n: String) throws -> [Float] { try file.floats(n) }
        func ints(_ n: String) throws -> [Int32] { try file.int64s(n).map { Int32($0) } }
        func has(_ n: String) -> Bool { file.contains(n) }
    }

    func load(_ name: String) throws -> (BertTaskModel, Golden, BertBatch) {
        let dir = Fixtures.directory(name)
        let (model, report) = try BertTaskModel.load(directory: dir)
        XCTAssertEqual(report.initialized, [], "\(name): nothing should be freshly initialised")
        let golden = Golden(file: try SafeTensorsFile(url: dir.appendingPathComponent("golden.safetensors")))
        let shape = try XCTUnwrap(golden.file.info("input_ids")?.shape)
        // DistilBERT goldens have no token_type_ids (the model has no token types).
        let types = golden.has("token_type_ids") ? try golden.ints("token_type_ids") : nil
        let batch = BertBatch(inputIds: try golden.ints("input_ids"), tokenTypeIds: types,
                              attentionMask: try golden.ints("attention_mask").map(Float.init),
                              batchSize: shape[0], sequenceLength: shape[1])
        return (model, golden, batch)
    }

    func loss(_ model: BertTaskModel, _ golden: Golden, _ batch: BertBatch, tape: Tape) throws -> (Tensor, Tensor) {
        let logits = model.forward(batch, tape: tape)
        switch model.architecture {
        case .questionAnswering:
            return (logits, model.spanLoss(logits, startPositions: try golden.ints("start_positions"),
                                           endPositions: try golden.ints("end_positions"), tape: tape))
        case .sequenceClassification, .tokenClassification:
            return (logits, model.classificationLoss(logits, labels: try golden.ints("labels"), tape: tape))
        case .base:
            // loss = sum(lhs * dlhs) (+ sum(pool * dpool) where the model has a pooler)
            let dl = Tensor(shape: logits.shape, values: try golden.floats("dlast_hidden_state"))
            let hiddenLoss = tape.sum(tape.mul(logits, dl))
            guard golden.has("dpooler_output") else { return (logits, hiddenLoss) }
            let pooled = model.bert.pool(logits, tape: tape)
            let dp = Tensor(shape: pooled.shape, values: try golden.floats("dpooler_output"))
            return (logits, tape.add(hiddenLoss, tape.sum(tape.mul(pooled, dp))))
        }
    }

    func checkStepZero(_ name: String) throws {
        let (model, golden, batch) = try load(name)
        let f = Self.forwardTolerance, g = Self.gradientTolerance
        // Encoder outputs.
        let hidden = model.bert.encode(batch, tape: .inference)
        assertClose(hidden.array, try golden.floats("last_hidden_state"), atol: f.atol, rtol: f.rtol, "\(name) last_hidden_state")
        if golden.has("pooler_output") {
            assertClose(model.bert.pool(hidden, tape: .inference).array, try golden.floats("pooler_output"),
                        atol: f.atol, rtol: f.rtol, "\(name) pooler_output")
        }
        // Head outputs, loss and gradients.
        let tape = Tape()
        let (logits, lossTensor) = try loss(model, golden, batch, tape: tape)
        switch model.architecture {
        case .questionAnswering:
            let v = logits.array
            assertClose(stride(from: 0, to: v.count, by: 2).map { v[$0] }, try golden.floats("start_logits"),
                        atol: f.atol, rtol: f.rtol, "\(name) start_logits")
            assertClose(stride(from: 1, to: v.count, by: 2).map { v[$0] }, try golden.floats("end_logits"),
                        atol: f.atol, rtol: f.rtol, "\(name) end_logits")
        case .sequenceClassification, .tokenClassification:
            assertClose(logits.array, try golden.floats("logits"), atol: f.atol, rtol: f.rtol, "\(name) logits")
        case .base: break
        }
        assertClose([lossTensor.scalar], try golden.floats("loss"), atol: f.atol, rtol: f.rtol, "\(name) loss")
        tape.backward(from: lossTensor)
        var checked = 0
        for (hf, p) in model.checkpointParameters {
            let expected = try golden.floats("grad." + hf)
            let actual = p.gradArray ?? [Float](repeating: 0, count: p.count)
            // Scale-aware: compare relative to the largest gradient entry of the tensor.
            let scale = expected.map(abs).max() ?? 0
            assertClose(actual, expected, atol: g.atol + g.rtol * scale, rtol: g.rtol, "\(name) grad.\(hf)")
            checked += 1
        }
        let expectedCount = golden.file.names.filter { $0.hasPrefix("grad.") }.count
        XCTAssertEqual(checked, expectedCount, "\(name): every parameter gradient is compared")
    }

    func checkTrajectory(_ name: String) throws {
        let (model, golden, batch) = try load(name)
        let named = model.checkpointParameters
        // Biases and every LayerNorm (DistilBERT: also sa_layer_norm / output_layer_norm) undecayed.
        let decay = named.filter { !BertCheckpointNames.isNoDecay($0.name) }.map(\.tensor)
        let noDecay = named.filter { BertCheckpointNames.isNoDecay($0.name) }.map(\.tensor)
        let opt = AdamW(groups: [ParameterGroup(decay, weightDecay: 0.01), ParameterGroup(noDecay, weightDecay: 0)],
                        learningRate: 1e-3)
        let schedule = LinearSchedule(warmupSteps: 2, totalSteps: 10)
        var losses: [Float] = [], norms: [Float] = []
        for step in 0..<10 {
            model.zeroGradients()
            let tape = Tape()
            let (_, l) = try loss(model, golden, batch, tape: tape)
            losses.append(l.scalar)
            tape.backward(from: l)
            norms.append(clipGradientNorm(model.parameters, maxNorm: 1))
            opt.learningRate = 1e-3 * schedule.factor(at: step)
            opt.update()
        }
        losses.append(try loss(model, golden, batch, tape: .inference).1.scalar)
        let t = Self.trajectoryTolerance
        assertClose(losses, try golden.floats("adamw_losses"), atol: t.atol, rtol: t.rtol, "\(name) adamw_losses")
        assertClose(norms, try golden.floats("adamw_grad_norms"), atol: t.atol, rtol: t.rtol, "\(name) adamw_grad_norms")
        for (hf, p) in named where golden.has("final." + hf) {
            assertClose(p.array, try golden.floats("final." + hf), atol: t.atol, rtol: t.rtol, "\(name) final.\(hf)")
        }
    }

    func testSequenceClassification() throws { try checkStepZero("tiny-bert-seqcls") }
    func testSequenceClassificationGeluNew() throws { try checkStepZero("tiny-bert-seqcls-gelu-new") }
    func testTokenClassification() throws { try checkStepZero("tiny-bert-tokcls") }
    func testQuestionAnswering() throws { try checkStepZero("tiny-bert-qa") }
    func testBareBertModel() throws { try checkStepZero("tiny-bertmodel") }

    func testTrajectorySequenceClassification() throws { try checkTrajectory("tiny-bert-seqcls") }
    func testTrajectoryGeluNew() throws { try checkTrajectory("tiny-bert-seqcls-gelu-new") }
    func testTrajectoryTokenClassification() throws { try checkTrajectory("tiny-bert-tokcls") }
    func testTrajectoryQuestionAnswering() throws { try checkTrajectory("tiny-bert-qa") }

    // DistilBERT (issue 5): same checks, same tolerances.
    func testDistilBertSequenceClassification() throws { try checkStepZero("distilbert/tiny-distilbert-seqcls") }
    func testDistilBertTokenClassificationRelu() throws { try checkStepZero("distilbert/tiny-distilbert-tokcls") }
    func testDistilBertQuestionAnswering() throws { try checkStepZero("distilbert/tiny-distilbert-qa") }
    func testBareDistilBertModel() throws { try checkStepZero("distilbert/tiny-distilbertmodel") }

    func testDistilBertTrajectorySequenceClassification() throws { try checkTrajectory("distilbert/tiny-distilbert-seqcls") }
    func testDistilBertTrajectoryTokenClassification() throws { try checkTrajectory("distilbert/tiny-distilbert-tokcls") }
    func testDistilBertTrajectoryQuestionAnswering() throws { try checkTrajectory("distilbert/tiny-distilbert-qa") }

    /// transformers' DistilBERT accepts token_type_ids and ignores them; so does aqbert.
    func testDistilBertIgnoresTokenTypes() throws {
        let (model, _, batch) = try load("distilbert/tiny-distilbert-seqcls")
        XCTAssertEqual(model.config.family, .distilBert)
        XCTAssertNil(model.bert.embeddings.tokenType)
        var typed = batch
        typed.tokenTypeIds = [Int32](repeating: 1, count: batch.inputIds.count)
        XCTAssertNoThrow(try typed.validate(for: model.config))
        XCTAssertEqual(model.forward(typed, tape: .inference).array, model.forward(batch, tape: .inference).array)
    }
}
