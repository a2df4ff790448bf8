import AQBert
import AQParallel
import AQQuant
import AQRuns
import AQSearch
import AQTasks
import Foundation
import XCTest

/// The commands' library calls, without the executable: what a request turns into, and the
/// one-line errors of bad requests.
final class RunsTests: XCTestCase {
    private var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("aqbert-runs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: scratch) }

    /// The tiny random BERT fixture (hidden 32, FFN 37, 2 layers, no task head) with a 99-token vocabulary.
    private func tinyModel() throws -> URL {
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("AQBertTests/Fixtures/tiny-bertmodel")
        let dir = scratch.appendingPathComponent("model")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for f in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(at: source.appendingPathComponent(f), to: dir.appendingPathComponent(f))
        }
        var vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "movie", "is", "good", "bad", ",", ".", "!"]
        while vocab.count < 99 { vocab.append("[unused\(vocab.count)]") }
        try (vocab.joined(separator: "\n") + "\n").write(to: dir.appendingPathComponent("vocab.txt"), atomically: true, encoding: .utf8)
        return dir
    }

    private func toyData() throws -> URL {
        var rows = "sentence\tlabel\n"
        for i in 0..<40 { rows += i % 2 == 0 ? "the movie is good .\t1\n" : "a movie is bad .\t0\n" }
        let url = scratch.appendingPathComponent("train.tsv")
        try rows.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    private func searchRequest(_ target: SearchRequest.Target, model: URL, train: URL, output: String) -> SearchRequest {
        var c = SearchConfiguration(targetMiB: 0)
        c.groups = 1
        c.tolerance = 0.2
        return SearchRequest(model: model.path, task: .sst2, threads: 1, train: train.path,
                             output: scratch.appendingPathComponent(output).path, target: target, configuration: c)
    }

    func testSearchTurnsEachKindOfBudgetIntoTheSearchsMiB() throws {
        let model = try tinyModel(), train = try toyData()
        var warnings: [String] = []
        let bits = try SearchRun.prepare(searchRequest(.averageBits(3), model: model, train: train, output: "s1"), group: .single) {
            warnings.append($0)
        }
        let weights = QuantizableMatrices.weightCount(bits.runner.model.config)
        XCTAssertEqual(weights, 2 * (4 * 32 * 32 + 2 * 37 * 32))
        XCTAssertEqual(bits.configuration.targetMiB, 3 * Double(weights) / 8 / 1_048_576, accuracy: 1e-12)
        XCTAssertNil(bits.configuration.budget)
        XCTAssertNil(bits.configuration.embeddings)
        XCTAssertEqual(warnings.count, 1)
        XCTAssertTrue(warnings[0].contains("without a fine-tuned head"), warnings[0])

        // A file budget: MB of 10^6 bytes of the packed file, the tables searched too. The cap is the
        // file of a 2-bit plan with 3-bit tables, which lies inside what the candidates can reach.
        let planPath = scratch.appendingPathComponent("u2.json").path
        let uniform = try PlanRuns.uniform(model: model.path, bits: 2, groups: 1, candidates: [0, 2, 4], embeddingBits: 3,
                                           embeddingRows: 1, output: planPath)
        try uniform.jsonData().write(to: URL(fileURLWithPath: planPath))
        let inspected = try PlanRuns.inspect(plan: planPath, model: model.path, bitmap: nil, groupMap: nil)
        let bytes = try XCTUnwrap(inspected.fileBytes)
        var request = searchRequest(.megabytes(Double(bytes) / 1e6, .file), model: model, train: train, output: "s2")
        request.embeddingCandidates = [2, 3, 4, 8]
        request.embeddingRows = 1
        let file = try SearchRun.prepare(request, group: .single) { _ in }
        XCTAssertEqual(file.configuration.targetMiB, Double(bytes) / 1_048_576, accuracy: 1e-12)
        XCTAssertEqual(file.configuration.budget, .file)
        XCTAssertEqual(file.configuration.embeddings?.candidates, [2, 3, 4, 8])
        XCTAssertEqual(file.configuration.embeddings?.rowsPerGroup, 1)
        // The data's hash is recorded in the plan: the training file's SHA-256.
        XCTAssertEqual(file.dataSHA256.count, 64)
        // A distilled architecture loss needs a fine-tuned teacher, and this model has no task head.
        var distilled = searchRequest(.averageBits(3), model: model, train: train, output: "s3")
        distilled.configuration.architectureDistillation = DistillationSettings(mode: .all)
        XCTAssertThrowsError(try SearchRun.prepare(distilled, group: .single) { _ in }) {
            XCTAssertTrue("\($0)".contains("--arch-distill needs a fine-tuned teacher"), "\($0)")
        }
    }

    func testAnImpossibleBudgetFailsBeforeTheDataIsRead() throws {
        let model = try tinyModel()
        // The training file is malformed: reading it would fail with another message.
        let train = scratch.appendingPathComponent("bad.tsv")
        try "no header here\n".write(to: train, atomically: true, encoding: .utf8)
        for (target, needle) in [(SearchRequest.Target.averageBits(5), "above the size with every group at 4 bits"),
                                 (.averageBits(0.01), "no plan is sure to land inside it")] {
            XCTAssertThrowsError(try SearchRun.prepare(searchRequest(target, model: model, train: train, output: "s-\(needle.count)"),
                                                       group: .single) { _ in }) { error in
                XCTAssertTrue(error is RunError, "\(error)")
                XCTAssertTrue("\(error)".contains(needle), "\(error)")
            }
        }
    }

    func testTrainingInstallsThePlanAndRefusesAnOutputHoldingARun() throws {
        let model = try tinyModel(), train = try toyData()
        var a = TrainingArguments.defaults(for: .sst2)
        a.maxSeqLength = 16
        a.epochs = 1
        let planPath = scratch.appendingPathComponent("u2.json").path
        try PlanRuns.uniform(model: model.path, bits: 2, groups: 1, candidates: nil, embeddingBits: nil, embeddingRows: 32,
                             output: planPath).jsonData().write(to: URL(fileURLWithPath: planPath))

        var warnings: [String] = []
        var request = TrainingRequest(model: model.path, task: .sst2, threads: 1, train: train.path, dev: train.path,
                                      output: scratch.appendingPathComponent("ft").path, arguments: a)
        let fp32 = try TrainingRun.prepare(request, group: .single) { warnings.append($0) }
        XCTAssertNil(fp32.plan)
        XCTAssertNil(fp32.trainer.quantization)
        XCTAssertEqual(fp32.arguments.threads, 1)
        XCTAssertEqual(warnings.count, 1)
        XCTAssertTrue(warnings[0].hasPrefix("new BertForSequenceClassification head"), warnings[0])

        request.output = scratch.appendingPathComponent("qat").path
        request.plan = planPath
        let qat = try TrainingRun.prepare(request, group: .single) { _ in }
        XCTAssertEqual(qat.plan?.averageBits, 2)
        XCTAssertNotNil(qat.trainer.quantization)

        // An output folder holding a killed run's checkpoint needs --resume.
        let held = scratch.appendingPathComponent("held")
        try FileManager.default.createDirectory(at: held, withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: held.appendingPathComponent("last-checkpoint.json"))
        request.output = held.path
        XCTAssertThrowsError(try TrainingRun.prepare(request, group: .single) { _ in }) { error in
            XCTAssertTrue("\(error)".contains("holds a run already: add --resume"), "\(error)")
        }
        // Distillation needs a fine-tuned teacher; this model has no task head.
        request.output = scratch.appendingPathComponent("distil").path
        request.arguments.distill = .logits
        request.arguments.distillAlpha = 0.5
        request.arguments.distillTemperature = 2
        XCTAssertThrowsError(try TrainingRun.prepare(request, group: .single) { _ in }) { error in
            XCTAssertTrue("\(error)".contains("--distill needs a fine-tuned teacher"), "\(error)")
        }
    }

    func testEvaluationNeedsAFineTunedHeadAndNamesTheOptionAtFault() throws {
        let model = try tinyModel(), data = try toyData()
        XCTAssertThrowsError(try EvaluationRun.load(EvaluationRequest(model: model.path, task: .sst2, threads: 1, data: data.path)) { _ in }) {
            XCTAssertTrue("\($0)".contains("has no fine-tuned BertForSequenceClassification head"), "\($0)")
        }
        XCTAssertThrowsError(try EvaluationRun.load(EvaluationRequest(model: model.path, task: .sst2, threads: 1,
                                                                      data: scratch.appendingPathComponent("none.tsv").path)) { _ in }) {
            XCTAssertTrue("\($0)".hasPrefix("--data "), "\($0)")
        }
        XCTAssertThrowsError(try PlanRuns.random(like: scratch.appendingPathComponent("none.json").path, seed: 1,
                                                 output: scratch.appendingPathComponent("r.json").path)) {
            XCTAssertTrue("\($0)".hasPrefix("--like "), "\($0)")
        }
    }
}
