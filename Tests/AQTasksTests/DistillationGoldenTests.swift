import AQBert
import Foundation
import XCTest

@testable import AQTasks

/// Layer 3 (model golden) for `Distillation`: a tiny random BERT teacher and a noisy copy as the
/// student, against PyTorch (fixture from Scripts/fixtures/make_distill_golden.py, see
/// Fixtures/distill/FIXTURES.md): every loss term, the total of mode `all`, every student
/// parameter gradient, and a teacher that never changes and never receives a gradient.
final class DistillationGoldenTests: XCTestCase {
    // Named tolerances, absolute: losses are O(1) (summed in double on both sides); gradients are
    // at most ~1.2 in this fixture.
    static let forwardTolerance: Float = 2e-5
    static let lossTolerance: Float = 1e-5
    static let gradientTolerance: Float = 2e-5

    // The hyper-parameters the fixture was generated with.
    static let alpha: Float = 0.3
    static let temperature: Float = 2
    static let hiddenWeight: Float = 0.7
    static let attentionWeight: Float = 1.3

    static var directory: URL {
        Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("distill")
    }

    struct Fixture {
        let teacher: BertTaskModel
        let student: BertTaskModel
        let golden: SafeTensorsFile
        let batch: FeatureBatch
        let features: [Feature]

        func floats(_ name: String) throws -> [Float] { try golden.floats(name) }
        func scalar(_ name: String) throws -> Float {
            let v = try golden.floats(name)
            XCTAssertEqual(v.count, 1, "\(name) is one value")
            return v[0]
        }
    }

    func load() throws -> Fixture {
        let dir = Self.directory
        let (teacher, tReport) = try BertTaskModel.load(directory: dir.appendingPathComponent("teacher"))
        let (student, sReport) = try BertTaskModel.load(directory: dir.appendingPathComponent("student"))
        XCTAssertEqual(tReport.initialized, [], "teacher: nothing freshly initialised")
        XCTAssertEqual(sReport.initialized, [], "student: nothing freshly initialised")
        XCTAssertEqual(student.architecture, .sequenceClassification)
        student.training = false  // dropouts are 0 anyway
        let golden = try SafeTensorsFile(url: dir.appendingPathComponent("golden.safetensors"))
        let shape = try XCTUnwrap(golden.info("input_ids")?.shape)
        let b = shape[0], t = shape[1]
        let ids = try golden.int64s("input_ids").map(Int.init)
        let types = try golden.int64s("token_type_ids").map(Int.init)
        let mask = try golden.int64s("attention_mask")
        let labels = try golden.int64s("labels").map(Int32.init)
        // Unpadded rows through the production batching path (right-padding with id 0).
        let features = (0..<b).map { i -> Feature in
            let n = Int(mask[(i * t)..<((i + 1) * t)].reduce(0, +))
            return Feature(inputIds: Array(ids[(i * t)..<(i * t + n)]), typeIds: Array(types[(i * t)..<(i * t + n)]),
                           label: labels[i], exampleIndex: i)
        }
        let batch = FeatureBatch(features, padId: 0)
        // The padded batch must be exactly the golden's inputs.
        XCTAssertEqual(batch.inputs.batchSize, b)
        XCTAssertEqual(batch.inputs.sequenceLength, t)
        XCTAssertEqual(batch.inputs.inputIds, ids.map(Int32.init), "input_ids")
        XCTAssertEqual(batch.inputs.tokenTypeIds, types.map(Int32.init), "token_type_ids")
        XCTAssertEqual(batch.inputs.attentionMask, mask.map(Float.init), "attention_mask")
        XCTAssertEqual(batch.labels, labels, "labels")
        return Fixture(teacher: teacher, student: student, golden: golden, batch: batch, features: features)
    }

    func distillation(_ teacher: BertTaskModel, mode: DistillMode = .all, hiddenWeight: Float = DistillationGoldenTests.hiddenWeight,
                      attentionWeight: Float = DistillationGoldenTests.attentionWeight) -> Distillation {
        Distillation(teacher: teacher, settings: DistillationSettings(mode: mode, alpha: Self.alpha, temperature: Self.temperature,
                                                                      hiddenWeight: hiddenWeight, attentionWeight: attentionWeight))
    }

    /// Fails with the tensor's name, shape and max |diff| when it exceeds `tolerance`; returns it.
    @discardableResult
    func assertMaxDiff(_ actual: [Float], _ expected: [Float], tolerance: Float, _ what: String,
                       file: StaticString = #filePath, line: UInt = #line) -> Float {
        guard actual.count == expected.count else {
            XCTFail("\(what): \(actual.count) values vs \(expected.count) expected", file: file, line: line)
            return .infinity
        }
        var maxDiff: Float = 0, worst = 0
        for i in actual.indices {
            let d = abs(actual[i] - expected[i])
            if d > maxDiff || d.isNaN { maxDiff = d; worst = i }
            if d.isNaN { break }
        }
        if !(maxDiff <= tolerance) {
            XCTFail("\(what) (\(actual.count) values): max |diff| \(maxDiff) > \(tolerance) at \(worst): \(actual[worst]) vs \(expected[worst])",
                    file: file, line: line)
        }
        return maxDiff
    }

    /// Mode `all`: the total loss and d total / d every student parameter; the teacher is untouched.
    func testTotalLossAndEveryGradient() throws {
        let f = try load()
        let teacherBefore = f.teacher.checkpointParameters.map { ($0.name, $0.tensor.array.map(\.bitPattern)) }
        let tape = Tape()
        let loss = distillation(f.teacher).loss(of: f.student, batch: f.batch, tape: tape)
        let lossDiff = assertMaxDiff([loss.scalar], try f.floats("loss_total"), tolerance: Self.lossTolerance, "loss_total")
        tape.backward(from: loss)

        var worstGrad: (Float, String) = (0, "")
        var checked = 0
        for (hf, p) in f.student.checkpointParameters {
            let expected = try f.floats("grad." + hf)
            let actual = p.gradArray ?? [Float](repeating: 0, count: p.count)
            let d = assertMaxDiff(actual, expected, tolerance: Self.gradientTolerance, "grad.\(hf) \(p.shape)")
            if d > worstGrad.0 { worstGrad = (d, hf) }
            checked += 1
        }
        XCTAssertEqual(checked, f.golden.names.filter { $0.hasPrefix("grad.") }.count, "every parameter gradient is compared")
        print("DistillationGoldenTests: loss_total max|diff| \(lossDiff); gradients max|diff| \(worstGrad.0) (grad.\(worstGrad.1)), \(checked) tensors")

        // The teacher: bit-identical weights, no gradient buffer anywhere.
        let after = f.teacher.checkpointParameters
        XCTAssertEqual(after.count, teacherBefore.count)
        for ((name, before), (_, t)) in zip(teacherBefore, after) {
            XCTAssertEqual(t.array.map(\.bitPattern), before, "teacher \(name) changed")
            XCTAssertNil(t.grad, "teacher \(name) received a gradient")
        }
    }

    /// Data parallelism: the parts of the batch over 2 and 3 processes (`BatchPart`: padded to
    /// the whole batch, task and logit terms by their share, layer terms by the whole batch's
    /// tokens and pairs), summed, give the whole batch's loss and every gradient, up to rounding;
    /// a part of a process without rows (3 processes, fewer rows) is a placeholder of weight 0.
    func testBatchPartsSumToTheWholeBatch() throws {
        let f = try load()
        let d = distillation(f.teacher)
        func lossAndGradients(_ run: (Tape) -> Tensor) -> (Float, [[Float]]) {
            for p in f.student.parameters { p.grad = nil }
            let tape = Tape()
            let loss = run(tape)
            tape.backward(from: loss)
            return (loss.scalar, f.student.parameters.map { $0.gradArray ?? [Float](repeating: 0, count: $0.count) })
        }
        let (wholeLoss, wholeGradients) = lossAndGradients { d.loss(of: f.student, batch: f.batch, tape: $0) }
        XCTAssertGreaterThanOrEqual(f.features.count, 2)
        for ranks in [2, f.features.count + 1] {
            var loss: Float = 0
            var gradients = wholeGradients.map { [Float](repeating: 0, count: $0.count) }
            var placeholders = 0
            for rank in 0..<ranks {
                let part = BatchPart(of: f.features, rank: rank, ranks: ranks, padId: 0, architecture: f.student.architecture)
                XCTAssertEqual(part.batch.inputs.sequenceLength, f.batch.inputs.sequenceLength, "padded to the whole batch")
                if part.isPlaceholder { placeholders += 1 }
                f.student.bert.batchRows = part.rows
                let (l, g) = lossAndGradients { tape in
                    let partLoss = d.loss(of: f.student, batch: part.batch, tape: tape, share: part.share)
                    return part.isPlaceholder ? tape.scale(partLoss, by: 0) : partLoss
                }
                f.student.bert.batchRows = nil
                loss += l
                for i in gradients.indices { for j in gradients[i].indices { gradients[i][j] += g[i][j] } }
            }
            XCTAssertEqual(placeholders, ranks - min(ranks, f.features.count))
            XCTAssertEqual(loss, wholeLoss, accuracy: Self.lossTolerance, "\(ranks) parts")
            for (i, (name, _)) in f.student.checkpointParameters.enumerated() {
                assertMaxDiff(gradients[i], wholeGradients[i], tolerance: Self.gradientTolerance, "\(ranks) parts: grad.\(name)")
            }
        }
    }

    /// The same objective composed by hand from the public parts (`logitLoss`, `layerLoss`) with
    /// both traces kept alive through the backward pass: checks the backward rules of the parts
    /// independently of how `loss(of:batch:tape:)` manages the teacher's trace.
    func testComposedObjectiveGradients() throws {
        let f = try load()
        let a = Self.alpha, t = Self.temperature
        let tape = Tape()
        let studentTrace = EncoderTrace(attentionScores: true), teacherTrace = EncoderTrace(attentionScores: true)
        let logits = f.student.forward(f.batch.inputs, tape: tape, trace: studentTrace)
        let hard = f.student.taskLoss(logits, batch: f.batch, tape: tape)
        let teacherLogits = f.teacher.forward(f.batch.inputs, tape: .inference, trace: teacherTrace)
        let soft = Distillation.logitLoss(student: logits, teacher: teacherLogits, architecture: f.student.architecture,
                                          labels: f.batch.labels, temperature: t, tape: tape)
        var total = tape.add(tape.scale(hard, by: 1 - a), tape.scale(soft, by: a * t * t))
        total = tape.add(total, Distillation.layerLoss(student: studentTrace, teacher: teacherTrace, batch: f.batch.inputs,
                                                       heads: f.student.config.numAttentionHeads, hiddenWeight: Self.hiddenWeight,
                                                       attentionWeight: Self.attentionWeight, tape: tape))
        let lossDiff = assertMaxDiff([total.scalar], try f.floats("loss_total"), tolerance: Self.lossTolerance, "composed loss_total")
        withExtendedLifetime((studentTrace, teacherTrace, teacherLogits)) { tape.backward(from: total) }
        var worst: (Float, String) = (0, "")
        for (hf, p) in f.student.checkpointParameters {
            let actual = p.gradArray ?? [Float](repeating: 0, count: p.count)
            let d = assertMaxDiff(actual, try f.floats("grad." + hf), tolerance: Self.gradientTolerance, "composed grad.\(hf) \(p.shape)")
            if d > worst.0 { worst = (d, hf) }
        }
        print("DistillationGoldenTests (composed): loss_total max|diff| \(lossDiff); gradients max|diff| \(worst.0) (grad.\(worst.1))")
    }

    /// Mode `logits` and its two ingredients: the hard cross-entropy and the soft cross-entropy.
    func testLogitTerms() throws {
        let f = try load()
        let logits = f.student.forward(f.batch.inputs, tape: .inference)
        let teacherLogits = f.teacher.forward(f.batch.inputs, tape: .inference)
        assertMaxDiff(logits.array, try f.floats("student_logits"), tolerance: Self.forwardTolerance, "student_logits")
        assertMaxDiff(teacherLogits.array, try f.floats("teacher_logits"), tolerance: Self.forwardTolerance, "teacher_logits")

        let ce = f.student.taskLoss(logits, batch: f.batch, tape: .inference)
        let soft = Distillation.logitLoss(student: logits, teacher: teacherLogits, architecture: f.student.architecture,
                                          labels: f.batch.labels, temperature: Self.temperature, tape: .inference)
        let ceDiff = assertMaxDiff([ce.scalar], [try f.scalar("loss_ce")], tolerance: Self.lossTolerance, "loss_ce")
        let softDiff = assertMaxDiff([soft.scalar], [try f.scalar("loss_soft")], tolerance: Self.lossTolerance, "loss_soft")

        let a = Self.alpha, t = Self.temperature
        let expected = (1 - a) * (try f.scalar("loss_ce")) + a * t * t * (try f.scalar("loss_soft"))
        let logitsOnly = distillation(f.teacher, mode: .logits).loss(of: f.student, batch: f.batch, tape: .inference)
        let modeDiff = assertMaxDiff([logitsOnly.scalar], [expected], tolerance: Self.lossTolerance, "mode logits")
        print("DistillationGoldenTests: loss_ce max|diff| \(ceDiff); loss_soft \(softDiff); mode logits \(modeDiff)")
    }

    /// The hidden-state and attention-score terms, each alone (the other weight 0), per layer,
    /// and mode `layers` (hard cross-entropy + both terms).
    func testLayerTerms() throws {
        let f = try load()
        let studentTrace = EncoderTrace(attentionScores: true), teacherTrace = EncoderTrace(attentionScores: true)
        _ = f.student.forward(f.batch.inputs, tape: .inference, trace: studentTrace)
        _ = f.teacher.forward(f.batch.inputs, tape: .inference, trace: teacherTrace)
        let layers = f.student.config.numHiddenLayers, heads = f.student.config.numAttentionHeads
        XCTAssertEqual(studentTrace.hiddenStates.count, layers + 1)
        XCTAssertEqual(studentTrace.queries.count, layers)
        XCTAssertEqual(studentTrace.keys.count, layers)

        func layerLoss(hidden: Float, attention: Float) -> Float {
            Distillation.layerLoss(student: studentTrace, teacher: teacherTrace, batch: f.batch.inputs, heads: heads,
                                   hiddenWeight: hidden, attentionWeight: attention, tape: .inference).scalar
        }
        let hiddenDiff = assertMaxDiff([layerLoss(hidden: Self.hiddenWeight, attention: 0)], [try f.scalar("loss_hidden")],
                                       tolerance: Self.lossTolerance, "loss_hidden")
        let attentionDiff = assertMaxDiff([layerLoss(hidden: 0, attention: Self.attentionWeight)], [try f.scalar("loss_attention")],
                                          tolerance: Self.lossTolerance, "loss_attention")

        // Per layer, unweighted (localises a disagreement).
        let mask = f.batch.inputs.attentionMask, t = f.batch.inputs.sequenceLength
        let tokens = mask.reduce(0, +)
        let pairs = stride(from: 0, to: mask.count, by: t).map { i -> Float in
            let n = mask[i..<(i + t)].reduce(0, +)
            return n * n
        }.reduce(0, +)
        let width = Float(f.student.config.hiddenSize)
        let hiddenLayers = zip(studentTrace.hiddenStates, teacherTrace.hiddenStates).map {
            Tape.inference.squaredError($0, target: $1, rowMask: mask, normalizer: tokens * width).scalar
        }
        // The fused term distillation uses, and the unfused composition through `attentionScores`.
        let keyMask = Tensor(shape: [f.batch.inputs.batchSize, t], values: mask)
        let s = studentTrace, q = teacherTrace
        let scoreLayers = (0..<layers).map {
            Tape.inference.attentionScoreError(query: s.queries[$0], key: s.keys[$0], targetQuery: q.queries[$0],
                                               targetKey: q.keys[$0], keyMask: keyMask, heads: heads,
                                               normalizer: pairs * Float(heads)).scalar
        }
        let unfusedScoreLayers = (0..<layers).map { l -> Float in
            let scores = Tape.inference.attentionScores(query: s.queries[l], key: s.keys[l], keyMask: keyMask, heads: heads)
            let target = Tape.inference.attentionScores(query: q.queries[l], key: q.keys[l], keyMask: keyMask, heads: heads)
            return Tape.inference.squaredError(scores, target: target, normalizer: pairs * Float(heads)).scalar
        }
        let hiddenLayerDiff = assertMaxDiff(hiddenLayers, try f.floats("loss_hidden_layers"), tolerance: Self.lossTolerance,
                                            "loss_hidden_layers")
        let scoreLayerDiff = assertMaxDiff(scoreLayers, try f.floats("loss_attention_layers"), tolerance: Self.lossTolerance,
                                           "loss_attention_layers")
        let unfusedDiff = assertMaxDiff(unfusedScoreLayers, try f.floats("loss_attention_layers"), tolerance: Self.lossTolerance,
                                        "loss_attention_layers (attentionScores + squaredError)")

        let layersOnly = distillation(f.teacher, mode: .layers).loss(of: f.student, batch: f.batch, tape: .inference)
        let expected = try f.scalar("loss_ce") + f.scalar("loss_hidden") + f.scalar("loss_attention")
        let modeDiff = assertMaxDiff([layersOnly.scalar], [expected], tolerance: Self.lossTolerance, "mode layers")
        print("DistillationGoldenTests: loss_hidden max|diff| \(hiddenDiff) (per layer \(hiddenLayerDiff)); "
              + "loss_attention \(attentionDiff) (per layer \(scoreLayerDiff), unfused \(unfusedDiff)); mode layers \(modeDiff)")
    }
}
