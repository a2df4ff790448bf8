import AQBert
import Foundation
import XCTest

@testable import AQTasks

/// A synthetic sequence-classification task on the tiny BERT fixture: the label is whether
/// token 7 occurs in the row. Evaluation = accuracy and the mean logit (a sensitive number).
struct SyntheticPipeline: TaskPipeline {
    let task = TaskName.sst2
    let architecture = BertArchitecture.sequenceClassification
    let labelNames: [String]? = ["no", "yes", "unused"]
    let trainFeatures: [Feature]
    let evalFeatures: [Feature]
    var evaluationExampleCount: Int { evalFeatures.count }
    let primaryMetric = "accuracy"

    init(seed: UInt64, train: Int, eval: Int) {
        var g = SeededGenerator(seed: seed)
        func make(_ i: Int) -> Feature {
            let n = 4 + Int(g.next() % 8)
            let ids = [2] + (0..<n).map { _ in 5 + Int(g.next() % 20) } + [3]
            return Feature(inputIds: ids, typeIds: [Int](repeating: 0, count: ids.count), label: ids.contains(7) ? 1 : 0,
                           tokenLabels: nil, startPosition: nil, endPosition: nil, exampleIndex: i)
        }
        trainFeatures = (0..<train).map(make)
        evalFeatures = (0..<eval).map(make)
    }

    func evaluate(model: BertTaskModel, batchSize: Int) throws -> [String: Double] {
        let logits = try featureLogits(model: model, features: evalFeatures, batchSize: batchSize, padId: 0)
        var correct = 0
        var sum = 0.0
        for (f, l) in zip(evalFeatures, logits) {
            let pred = l.indices.max { l[$0] < l[$1] }!
            if Int32(pred) == f.label { correct += 1 }
            sum += l.reduce(0) { $0 + Double($1) }
        }
        return ["accuracy": 100 * Double(correct) / Double(evalFeatures.count), "mean_logit": sum / Double(evalFeatures.count)]
    }
}

final class TrainerTests: XCTestCase {
    static var tinyModel: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("AQBertTests/Fixtures/tiny-bert-seqcls")
    }

    func scratch() throws -> URL {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("aqbert-trainer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        return u
    }

    func arguments() -> TrainingArguments {
        var a = TrainingArguments.defaults(for: .sst2)
        a.epochs = 2
        a.batchSize = 8
        a.learningRate = 1e-3
        a.saveSteps = 3
        a.seed = 11
        return a
    }

    /// The tiny sequence classifier with dropout 0.1 on its hidden states and attention.
    static func tinyModelWithDropout() throws -> BertTaskModel {
        let (model, _) = try BertTaskModel.load(directory: tinyModel)
        var c = model.config
        c.hiddenDropoutProb = 0.1
        c.attentionProbsDropoutProb = 0.1
        let fresh = BertTaskModel(config: c, architecture: .sequenceClassification, numLabels: 3)
        for ((_, a), (_, b)) in zip(fresh.checkpointParameters, model.checkpointParameters) { a.assign(b.array) }
        return fresh
    }

    func makeTrainer(output: URL) throws -> Trainer {
        // Dropout on, so the per-step dropout seeds are exercised by the resume test.
        let model = try Self.tinyModelWithDropout()
        return Trainer(model: model, pipeline: SyntheticPipeline(seed: 5, train: 60, eval: 30), arguments: arguments(),
                       output: output, tokenizerDirectory: Self.tinyModel, padId: 0)
    }

    /// Distillation: alpha 0 is the plain loss; a student equal to its teacher (no dropout) has
    /// soft loss T^2 H(q), so alpha 1 leaves only that, and its gradient vanishes.
    func testDistillationLoss() throws {
        var args = arguments()
        args.distillAlpha = 0
        args.distillTemperature = 2
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (student, _) = try BertTaskModel.load(directory: Self.tinyModel)
        let (teacher, _) = try BertTaskModel.load(directory: Self.tinyModel)
        student.training = false
        let pipeline = SyntheticPipeline(seed: 5, train: 16, eval: 4)
        let batch = FeatureBatch(pipeline.trainFeatures, padId: 0)
        func loss(_ a: TrainingArguments, distil: Bool) -> (Float, Float) {
            let t = Trainer(model: student, pipeline: pipeline, arguments: a, output: dir, tokenizerDirectory: Self.tinyModel, padId: 0)
            if distil { t.teacher = teacher }
            for p in student.parameters { p.requiresGrad = true; p.grad = nil }
            let tape = Tape()
            let l = t.lossOf(batch, tape: tape)
            tape.backward(from: l)
            let g = student.parameters.compactMap(\.grad).map { $0.buffer.map { abs($0) }.max() ?? 0 }.max() ?? 0
            for p in student.parameters { p.grad = nil }
            return (l.scalar, g)
        }
        let plain = loss(args, distil: false)
        XCTAssertEqual(loss(args, distil: true).0, plain.0, accuracy: 1e-6)
        args.distillAlpha = 1
        let (soft, grad) = loss(args, distil: true)
        XCTAssertGreaterThan(plain.1, 1e-4)
        XCTAssertLessThan(grad, 1e-5, "student = teacher: no gradient from the soft loss")
        // T^2 * mean entropy of softmax(teacher / T).
        let logits = teacher.forward(batch.inputs, tape: .inference)
        let q = Tape.inference.softmax(logits, scale: 0.5).array
        let c = logits.shape.last!, rows = q.count / c
        var h = 0.0
        for i in 0..<rows { for j in 0..<c where q[i * c + j] > 0 { h -= Double(q[i * c + j]) * log(Double(q[i * c + j])) } }
        XCTAssertEqual(Double(soft), 4 * h / Double(rows), accuracy: 1e-4)
        // Layer terms: a student equal to its teacher matches every hidden state and score map.
        args.distill = .layers
        args.distillAlpha = nil
        args.distillTemperature = nil
        let (layers, layerGrad) = loss(args, distil: true)
        XCTAssertEqual(layers, plain.0, accuracy: 1e-6, "layers: CE plus zero layer terms")
        XCTAssertEqual(layerGrad, plain.1, accuracy: 1e-5)
    }

    /// Warm-up length as transformers rounds it (math.ceil of total * ratio in Python floats).
    func testWarmupStepsMatchPython() {
        var a = arguments()
        a.warmupRatio = 0.1
        XCTAssertEqual(a.warmupSteps(totalSteps: 10), 1)
        XCTAssertEqual(a.warmupSteps(totalSteps: 94), 10)
        XCTAssertEqual(a.warmupSteps(totalSteps: 980), 98)
        XCTAssertEqual(a.warmupSteps(totalSteps: 6315), 632)
        a.warmupRatio = 0.06
        XCTAssertEqual(a.warmupSteps(totalSteps: 100), 6)
        a.warmupRatio = 0
        XCTAssertEqual(a.warmupSteps(totalSteps: 100), 0)
    }

    func testTrainingIsDeterministicAndResumesExactly() throws {
        let dirA = try scratch(), dirB = try scratch(), dirC = try scratch()
        defer { for d in [dirA, dirB, dirC] { try? FileManager.default.removeItem(at: d) } }

        let uninterrupted = try makeTrainer(output: dirA).train(resume: false) { _ in }
        XCTAssertEqual(uninterrupted.count, 2)
        XCTAssertLessThan(uninterrupted[1].trainLoss, uninterrupted[0].trainLoss + 0.5)

        // Same seed, same numbers.
        let again = try makeTrainer(output: dirB).train(resume: false) { _ in }
        XCTAssertEqual(again, uninterrupted)

        // Abandoned mid-epoch (after update 10 of 16; last checkpoint at update 9), then resumed
        // by a fresh process-like trainer: identical history and weights.
        let first = try makeTrainer(output: dirC)
        var updates = 0
        first.shouldStop = { updates += 1; return updates == 10 }
        XCTAssertThrowsError(try first.train(resume: false) { _ in })
        var resumedAt = -1
        let resumed = try makeTrainer(output: dirC).train(resume: true) { event in
            if case .resumed(let step, _) = event { resumedAt = step }
        }
        XCTAssertEqual(resumedAt, 9)
        XCTAssertEqual(resumed, uninterrupted)
        let wa = try SafeTensorsFile(url: dirA.appendingPathComponent("model.safetensors"))
        let wc = try SafeTensorsFile(url: dirC.appendingPathComponent("model.safetensors"))
        for n in wa.names { XCTAssertEqual(try wa.floats(n), try wc.floats(n), n) }

        // The output directory is a Hugging Face model directory.
        let (reloaded, report) = try BertTaskModel.load(directory: dirA)
        XCTAssertEqual(report, BertLoadReport())
        XCTAssertEqual(reloaded.config.id2label?[1], "yes")
        for f in ["config.json", "model.safetensors", "training_args.json", "eval_results.json", "last-checkpoint.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dirA.appendingPathComponent(f).path), f)
        }
        let results = try JSONSerialization.jsonObject(with: Data(contentsOf: dirA.appendingPathComponent("eval_results.json"))) as! [String: Any]
        XCTAssertEqual(results["task"] as? String, "sst2")
        XCTAssertNotNil((results["metrics"] as? [String: Double])?["accuracy"])
    }

    /// `--no-shuffle`: file order every epoch; the default is a seeded permutation per epoch.
    /// `training_args.json` files written before the option existed still load (as shuffled).
    func testBatchOrderWithAndWithoutShuffle() throws {
        for epoch in 0..<2 {
            XCTAssertEqual(epochBatches(count: 10, batchSize: 4, seed: 3, epoch: epoch, shuffle: false),
                           [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]])
        }
        let e0 = epochBatches(count: 10, batchSize: 4, seed: 3, epoch: 0, shuffle: true)
        let e1 = epochBatches(count: 10, batchSize: 4, seed: 3, epoch: 1, shuffle: true)
        XCTAssertEqual(e0.flatMap { $0 }.sorted(), Array(0..<10))
        XCTAssertNotEqual(e0.flatMap { $0 }, Array(0..<10))
        XCTAssertNotEqual(e0, e1)

        var a = arguments()
        XCTAssertTrue(a.shufflesBatches)
        var json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(a)) as! [String: Any]
        XCTAssertNil(json["shuffle"], "the default writes no key, as files from before the option")
        a.shuffle = false
        json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(a)) as! [String: Any]
        XCTAssertEqual(json["shuffle"] as? Bool, false)
        XCTAssertFalse(try JSONDecoder().decode(TrainingArguments.self, from: JSONEncoder().encode(a)).shufflesBatches)

        // The trainer follows the option: the first update of a file-order run sees rows 0..<8.
        func firstLosses(shuffle: Bool) throws -> [Float] {
            let dir = try scratch()
            defer { try? FileManager.default.removeItem(at: dir) }
            var a = arguments()
            a.shuffle = shuffle
            a.epochs = 1
            let (model, _) = try BertTaskModel.load(directory: Self.tinyModel)
            let t = Trainer(model: model, pipeline: SyntheticPipeline(seed: 5, train: 60, eval: 30), arguments: a,
                            output: dir, tokenizerDirectory: Self.tinyModel, padId: 0)
            var losses: [Float] = []
            t.shouldStop = { losses.count == 2 }
            _ = try? t.train(resume: false) { if case let .step(_, _, _, loss, _, _, _) = $0 { losses.append(loss) } }
            return losses
        }
        let (model, _) = try BertTaskModel.load(directory: Self.tinyModel)
        model.training = false
        let rows = Array(SyntheticPipeline(seed: 5, train: 60, eval: 30).trainFeatures[0..<8])
        let batch = FeatureBatch(rows, padId: 0)
        let expected = model.taskLoss(model.forward(batch.inputs, tape: .inference), batch: batch, tape: .inference).scalar
        let ordered = try firstLosses(shuffle: false)
        XCTAssertEqual(ordered.first ?? .nan, expected, accuracy: 1e-6, "the tiny fixture has no dropout")
        XCTAssertNotEqual(try firstLosses(shuffle: true).first, ordered.first)
    }

    func testResumeWithOtherArgumentsIsRefused() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let t = try makeTrainer(output: dir)
        var n = 0
        t.shouldStop = { n += 1; return n == 4 }
        XCTAssertThrowsError(try t.train(resume: false) { _ in })
        var other = arguments()
        other.learningRate = 5e-4
        let (model, _) = try BertTaskModel.load(directory: Self.tinyModel)
        let t2 = Trainer(model: model, pipeline: SyntheticPipeline(seed: 5, train: 60, eval: 30), arguments: other,
                         output: dir, tokenizerDirectory: Self.tinyModel, padId: 0)
        XCTAssertThrowsError(try t2.train(resume: true) { _ in }) { XCTAssertTrue("\($0)".contains("other arguments"), "\($0)") }
    }
}

