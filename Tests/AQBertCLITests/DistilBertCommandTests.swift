import AQBert
import Foundation
import XCTest

/// The whole pipeline on a tiny random DistilBERT through the executable: finetune (output
/// reloads, DistilBERT names and keys kept), plan, search, retrain, export, and evaluate /
/// predict of the packed model equal to the quantization-aware one.
final class DistilBertCommandTests: XCTestCase {
    var dir: URL!
    var model: URL!
    var train: URL!
    var dev: URL!

    override func setUpWithError() throws {
        dir = try Scratch.directory()
        model = try Scratch.tinyModelWithVocab(from: Scratch.tinyDistilBert)
        (train, dev) = try Scratch.toySST2(in: dir, seed: 11, train: 160, dev: 40)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
        try? FileManager.default.removeItem(at: model)
    }

    func json(_ s: String) throws -> [String: Any] { try JSONSerialization.jsonObject(with: Data(s.utf8)) as! [String: Any] }
    func json(_ u: URL) throws -> [String: Any] { try JSONSerialization.jsonObject(with: Data(contentsOf: u)) as! [String: Any] }
    func accuracy(_ r: CLI.Result) throws -> Double { (try json(r.stdout)["metrics"] as! [String: Double])["accuracy"]! }

    func testFinetunePlanSearchRetrainExportEvaluate() throws {
        let fp32 = dir.appendingPathComponent("fp32")
        let common = ["--task", "sst2", "--train", train.path, "--dev", dev.path, "--epochs", "2", "--batch-size", "8",
                      "--lr", "1e-3", "--threads", "1", "--seed", "5"]
        let f = try CLI.run(["finetune", "--model", model.path, "--output", fp32.path] + common)
        XCTAssertEqual(f.status, 0, f.stderr)
        XCTAssertTrue(f.stderr.contains("new DistilBertForSequenceClassification head"), f.stderr)
        XCTAssertTrue(f.stderr.contains("pre_classifier.weight"), f.stderr)
        // The output reloads with nothing missing or left over, under DistilBERT keys and names.
        let config = try json(fp32.appendingPathComponent("config.json"))
        XCTAssertEqual(config["model_type"] as? String, "distilbert")
        XCTAssertEqual(config["architectures"] as? [String], ["DistilBertForSequenceClassification"])
        XCTAssertEqual(config["dim"] as? Int, 32)
        XCTAssertNil(config["hidden_size"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: fp32.appendingPathComponent("vocab.txt").path))
        let (reloaded, report) = try BertTaskModel.load(directory: fp32)
        XCTAssertEqual(report, BertLoadReport())
        XCTAssertEqual(reloaded.className, "DistilBertForSequenceClassification")
        let best = (try json(fp32.appendingPathComponent("eval_results.json"))["metrics"] as! [String: Double])["accuracy"]!
        XCTAssertGreaterThan(best, 80, "the toy task is learnable")
        let e = try CLI.run(["evaluate", "--model", fp32.path, "--task", "sst2", "--data", dev.path, "--json"])
        XCTAssertEqual(e.status, 0, e.stderr)
        XCTAssertEqual(try accuracy(e), best, accuracy: 1e-9)

        // plan uniform and search: plans keyed by DistilBERT parameter paths.
        let uniform = dir.appendingPathComponent("uniform.json")
        let u = try CLI.run(["plan", "uniform", "--model", fp32.path, "--bits", "4", "--groups", "1", "--candidates", "0,2,4",
                             "--output", uniform.path])
        XCTAssertEqual(u.status, 0, u.stderr)
        let searched = dir.appendingPathComponent("search")
        let s = try CLI.run(["search", "--model", fp32.path, "--task", "sst2", "--train", train.path, "--target-bits", "3",
                             "--groups", "1", "--tolerance", "0.1", "--epochs", "2", "--batch-size", "8", "--threads", "1",
                             "--output", searched.path])
        XCTAssertEqual(s.status, 0, s.stderr)
        let plan = searched.appendingPathComponent("plan.json")
        let matrices = try json(plan)["matrices"] as! [String: Any]
        XCTAssertEqual(matrices.count, 12)
        XCTAssertTrue(matrices.keys.allSatisfy { $0.hasPrefix("distilbert.transformer.layer.") }, "\(matrices.keys.sorted())")
        XCTAssertNotNil(matrices["distilbert.transformer.layer.1.ffn.lin2.weight"])

        // retrain with the searched plan, export, and the packed model scores as the QAT one.
        let qat = dir.appendingPathComponent("qat")
        let r = try CLI.run(["retrain", "--model", fp32.path, "--plan", plan.path, "--output", qat.path] + common)
        XCTAssertEqual(r.status, 0, r.stderr)
        let qatConfig = try json(qat.appendingPathComponent("config.json"))
        XCTAssertEqual(qatConfig["model_type"] as? String, "distilbert")
        let ranges = (qatConfig["quantization_config"] as? [String: Any])?["activation_ranges"] as? [String: Any]
        XCTAssertNotNil(ranges?["distilbert.transformer.layer.0.attention.q_lin"], "\(ranges?.keys.sorted() ?? [])")
        let eq = try CLI.run(["evaluate", "--model", qat.path, "--task", "sst2", "--data", dev.path, "--json"])
        XCTAssertEqual(eq.status, 0, eq.stderr)
        let packed = dir.appendingPathComponent("packed")
        let x = try CLI.run(["export", "--model", qat.path, "--output", packed.path])
        XCTAssertEqual(x.status, 0, x.stderr)
        let ep = try CLI.run(["evaluate", "--model", packed.path, "--task", "sst2", "--data", dev.path, "--json"])
        XCTAssertEqual(ep.status, 0, ep.stderr)
        XCTAssertEqual(try accuracy(ep), try accuracy(eq), accuracy: 1e-9)
        let p1 = dir.appendingPathComponent("p1.jsonl"), p2 = dir.appendingPathComponent("p2.jsonl")
        XCTAssertEqual(try CLI.run(["predict", "--model", qat.path, "--task", "sst2", "--data", dev.path, "--output", p1.path]).status, 0)
        XCTAssertEqual(try CLI.run(["predict", "--model", packed.path, "--task", "sst2", "--data", dev.path, "--output", p2.path]).status, 0)
        // Integer evaluation of the QAT model is bit-identical to the packed kernel: same probabilities.
        XCTAssertEqual(try String(contentsOf: p1, encoding: .utf8), try String(contentsOf: p2, encoding: .utf8))
        let i = try CLI.run(["inspect", "--plan", plan.path, "--model", qat.path, "--json"])
        XCTAssertEqual(i.status, 0, i.stderr)
        let size = try FileManager.default.attributesOfItem(atPath: packed.appendingPathComponent("model.safetensors").path)[.size] as! Int
        XCTAssertEqual(try json(i.stdout)["file_bytes"] as? Int, size)
        let sentences = dir.appendingPathComponent("sentences.txt")
        try "the movie is good\na bad movie\n".write(to: sentences, atomically: true, encoding: .utf8)
        let enc = try CLI.run(["encode", "--model", packed.path, "--input", sentences.path, "--output", "-"])
        XCTAssertEqual(enc.status, 0, enc.stderr)
    }

    /// DistilBERT ignores token types (as transformers does), so sentence pairs train on it.
    func testSentencePairsNeedNoTokenTypes() throws {
        let mnli = dir.appendingPathComponent("mnli.jsonl")
        let row = "{\"premise\": \"the movie is good\", \"hypothesis\": \"a movie\", \"label\": \"neutral\"}\n"
        try String(repeating: row, count: 4).write(to: mnli, atomically: true, encoding: .utf8)
        let r = try CLI.run(["finetune", "--model", model.path, "--task", "mnli", "--train", mnli.path, "--dev", mnli.path,
                             "--epochs", "1", "--batch-size", "4", "--threads", "1", "--output", dir.appendingPathComponent("o").path])
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    func testBadDistilBertConfigIsOneLine() throws {
        let c = model.appendingPathComponent("config.json")
        var object = try JSONSerialization.jsonObject(with: Data(contentsOf: c)) as! [String: Any]
        object["sinusoidal_pos_embds"] = true
        try JSONSerialization.data(withJSONObject: object).write(to: c)
        assertUserError(try CLI.run(["finetune", "--model", model.path, "--task", "sst2", "--train", train.path, "--dev", dev.path,
                                     "--output", dir.appendingPathComponent("o").path]), contains: "sinusoidal_pos_embds")
    }
}
