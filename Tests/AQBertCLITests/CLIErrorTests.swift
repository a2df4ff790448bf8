import Foundation
import XCTest

/// Every user error is one line on stderr and a non-zero exit, never a trap.
final class CLIErrorTests: XCTestCase {
    var dir: URL!
    var model: URL!
    var input: URL!

    override func setUpWithError() throws {
        dir = try Scratch.directory()
        model = try Scratch.tinyModelWithVocab()
        input = dir.appendingPathComponent("in.txt")
        try "the movie is good\nbad!\n".write(to: input, atomically: true, encoding: .utf8)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
        try? FileManager.default.removeItem(at: model)
    }

    func encode(_ modelDir: URL, input: String? = nil) throws -> CLI.Result {
        try CLI.run(["encode", "--model", modelDir.path, "--input", input ?? self.input.path,
                     "--output", dir.appendingPathComponent("out.jsonl").path])
    }

    func testEncodeWorksOnTheTinyModel() throws {
        let r = try encode(model)
        XCTAssertEqual(r.status, 0, r.stderr)
        let out = try String(contentsOf: dir.appendingPathComponent("out.jsonl"), encoding: .utf8)
        let lines = out.split(separator: "\n")
        XCTAssertEqual(lines.count, 2)
        let first = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as! [String: Any]
        XCTAssertEqual((first["embedding"] as! [Double]).count, 32)
        XCTAssertEqual(first["input_ids"] as! [Int], [2, 5, 7, 8, 9, 3])
    }

    func testMissingFile() throws {
        assertUserError(try encode(model, input: dir.appendingPathComponent("nope.txt").path), contains: "nope.txt")
        assertUserError(try encode(dir.appendingPathComponent("no-model")), contains: "no-model")
    }

    func testDirectoryInsteadOfFile() throws {
        assertUserError(try encode(model, input: dir.path), contains: "is a directory")
        assertUserError(try CLI.run(["encode", "--model", input.path, "--input", input.path, "--output", "-"]),
                        contains: "is a file, not a model directory")
        assertUserError(try CLI.run(["encode", "--model", model.path, "--input", input.path, "--output", dir.path]),
                        contains: "is a directory")
    }

    func testMissingVocab() throws {
        try FileManager.default.removeItem(at: model.appendingPathComponent("vocab.txt"))
        assertUserError(try encode(model), contains: "vocab.txt")
        assertUserError(try CLI.run(["tokenize", "--model", model.path, "--input", input.path, "--output", "-"]), contains: "vocab.txt")
    }

    func testMissingWeights() throws {
        try FileManager.default.removeItem(at: model.appendingPathComponent("model.safetensors"))
        assertUserError(try encode(model), contains: "model.safetensors")
    }

    func testTruncatedSafetensors() throws {
        let w = model.appendingPathComponent("model.safetensors")
        let data = try Data(contentsOf: w)
        try data.prefix(data.count / 2).write(to: w)
        assertUserError(try encode(model), contains: "model.safetensors")
    }

    func testCorruptHeaderJSON() throws {
        var d = Data([12, 0, 0, 0, 0, 0, 0, 0])
        d.append(Data("{\"a\": [1, 2".utf8))
        d.append(Data(repeating: 32, count: 1))
        try d.write(to: model.appendingPathComponent("model.safetensors"))
        assertUserError(try encode(model), contains: "model.safetensors")
    }

    func testHeaderLengthLargerThanFile() throws {
        var d = Data([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])
        d.append(Data("{}".utf8))
        try d.write(to: model.appendingPathComponent("model.safetensors"))
        assertUserError(try encode(model), contains: "model.safetensors")
    }

    func testUnknownDtype() throws {
        let header = "{\"embeddings.word_embeddings.weight\":{\"dtype\":\"F7\",\"shape\":[1],\"data_offsets\":[0,4]}}"
        var d = Data()
        var n = UInt64(header.utf8.count).littleEndian
        withUnsafeBytes(of: &n) { d.append(contentsOf: $0) }
        d.append(Data(header.utf8))
        d.append(Data([0, 0, 0, 0]))
        try d.write(to: model.appendingPathComponent("model.safetensors"))
        assertUserError(try encode(model), contains: "F7")
    }

    func testShapeConfigMismatch() throws {
        let c = model.appendingPathComponent("config.json")
        var object = try JSONSerialization.jsonObject(with: Data(contentsOf: c)) as! [String: Any]
        object["intermediate_size"] = 40
        try JSONSerialization.data(withJSONObject: object).write(to: c)
        assertUserError(try encode(model), contains: "intermediate.dense.weight has shape [37, 32] but the config implies [40, 32]")
    }

    func testBadConfig() throws {
        try "[1, 2]".write(to: model.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
        assertUserError(try encode(model), contains: "config.json")
        try FileManager.default.removeItem(at: model.appendingPathComponent("config.json"))
        assertUserError(try encode(model), contains: "config.json")
    }

    func testInvalidUTF8Input() throws {
        try Data([0x66, 0xff, 0xfe, 0x0a]).write(to: input)
        assertUserError(try encode(model), contains: "UTF-8")
    }

    func testBadFlags() throws {
        assertUserError(try CLI.run(["encode", "--model", model.path, "--input", input.path, "--output", "-", "--batch-size", "0"]),
                        contains: "--batch-size")
        assertUserError(try CLI.run(["encode", "--model", model.path, "--input", input.path, "--output", "-", "--pooling", "max"]),
                        contains: "max")
        assertUserError(try CLI.run(["bench", "train", "--config", "tiny", "--model", model.path]), contains: "exactly one")
        assertUserError(try CLI.run(["bench", "train", "--config", "huge"]), contains: "huge")
        assertUserError(try CLI.run(["frobnicate"]), contains: "frobnicate")
        assertUserError(try CLI.run(["tokenize", "--model", model.path, "--input", input.path, "--output", "-", "--max-length", "1"]),
                        contains: "--max-length")
    }

    /// A negative number reaches the option's own check ("--epochs must be at least 1"), written
    /// as "--epochs -1" as well as "--epochs=-1"; counts of 0 or less are refused, not clamped.
    func testNegativeAndZeroCounts() throws {
        let data = dir.appendingPathComponent("d.tsv")
        try "sentence\tlabel\ngood\t1\n".write(to: data, atomically: true, encoding: .utf8)
        let out = dir.appendingPathComponent("o").path
        let task = ["--model", model.path, "--task", "sst2"]
        let cases: [([String], String)] = [
            (["finetune"] + task + ["--train", data.path, "--dev", data.path, "--output", out, "--epochs", "-1"], "--epochs must be at least 1"),
            (["finetune"] + task + ["--train", data.path, "--dev", data.path, "--output", out, "--epochs=-1"], "--epochs must be at least 1"),
            (["finetune"] + task + ["--train", data.path, "--dev", data.path, "--output", out, "--lr", "-0.5"], "--lr must be positive"),
            (["finetune"] + task + ["--train", data.path, "--dev", data.path, "--output", out, "--save-steps", "-1"], "--save-steps"),
            (["finetune"] + task + ["--train", data.path, "--dev", data.path, "--output", out, "--log-every", "0"], "--log-every"),
            (["search"] + task + ["--train", data.path, "--target-bits", "2", "--output", out, "--batch-size", "0"], "--batch-size must be at least 1"),
            (["search"] + task + ["--train", data.path, "--target-bits", "2", "--output", out, "--temperature", "0"], "--temperature"),
            (["search"] + task + ["--train", data.path, "--target-bits", "2", "--output", out, "--groups", "-2"], "--groups must be at least 1"),
            (["evaluate"] + task + ["--data", data.path, "--batch-size", "-1"], "--batch-size must be at least 1"),
            (["predict"] + task + ["--data", data.path, "--output", out, "--batch-size", "0"], "--batch-size must be at least 1"),
            (["split", "--task", "sst2", "--data", data.path, "--held-out-percent", "-5", "--train-output", out, "--dev-output", out + "2"],
             "--held-out-percent"),
        ]
        for (args, message) in cases {
            assertUserError(try CLI.run(args), contains: message)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }

    /// A batch whose activations alone cannot fit in this machine's memory is refused before the
    /// first step allocates them (finetune, search and sensitivity), and nothing is written.
    func testATrainingBatchLargerThanMemoryIsRefused() throws {
        let data = dir.appendingPathComponent("d.tsv")
        try "sentence\tlabel\ngood\t1\nbad\t0\n".write(to: data, atomically: true, encoding: .utf8)
        let out = dir.appendingPathComponent("o").path
        let task = ["--model", model.path, "--task", "sst2"]
        let huge = ["--batch-size", "2000000000", "--max-seq-length", "40"]
        assertUserError(try CLI.run(["finetune"] + task + ["--train", data.path, "--dev", data.path, "--output", out] + huge),
                        contains: "lower --batch-size or --max-seq-length")
        assertUserError(try CLI.run(["search"] + task + ["--train", data.path, "--target-bits", "3", "--groups", "1", "--tolerance", "0.2",
                                                        "--output", out] + huge),
                        contains: "more than this machine's")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }

    /// An output that names an input (the same path, another spelling, a hard link, a file of
    /// the model directory, the model directory itself) or a FIFO is refused before any work, and
    /// every input keeps its bytes.
    func testAnOutputNeverReplacesAnInput() throws {
        let data = dir.appendingPathComponent("d.tsv")
        try "sentence\tlabel\ngood\t1\nbad\t0\n".write(to: data, atomically: true, encoding: .utf8)
        let link = dir.appendingPathComponent("link.txt")
        try FileManager.default.linkItem(at: input, to: link)
        let fifo = dir.appendingPathComponent("fifo")
        XCTAssertEqual(mkfifo(fifo.path, 0o644), 0)
        let weights = model.appendingPathComponent("model.safetensors")
        let plan = dir.appendingPathComponent("p.json")
        XCTAssertEqual(try CLI.run(["plan", "uniform", "--model", model.path, "--bits", "2", "--groups", "1", "--output", plan.path]).status, 0)
        let watched = [input!, data, weights, plan, model.appendingPathComponent("config.json")]
        let before = try watched.map { try Data(contentsOf: $0) }
        let task = ["--model", model.path, "--task", "sst2"]
        let cases: [([String], String)] = [
            (["tokenize", "--model", model.path, "--input", input.path, "--output", input.path], "is --input"),
            (["tokenize", "--model", model.path, "--input", input.path, "--output", dir.path + "/./in.txt"], "is --input"),
            (["tokenize", "--model", model.path, "--input", input.path, "--output", link.path], "is --input"),
            (["tokenize", "--model", model.path, "--input", input.path, "--output", fifo.path], "not a regular file"),
            (["encode", "--model", model.path, "--input", input.path, "--output", weights.path], "a file of --model"),
            (["predict"] + task + ["--data", data.path, "--output", data.path], "is --data"),
            (["split", "--task", "sst2", "--data", data.path, "--held-out-percent", "50", "--train-output", data.path,
              "--dev-output", dir.appendingPathComponent("b").path], "is --data"),
            (["split", "--task", "sst2", "--data", data.path, "--held-out-percent", "50", "--train-output", dir.appendingPathComponent("a").path,
              "--dev-output", dir.appendingPathComponent("a").path], "the same file"),
            (["plan", "random", "--like", plan.path, "--output", plan.path], "is --like"),
            (["inspect", "--plan", plan.path, "--bitmap", plan.path], "is --plan"),
            (["finetune"] + task + ["--train", data.path, "--dev", data.path, "--output", model.path], "is --model"),
            (["retrain"] + task + ["--plan", plan.path, "--train", data.path, "--dev", data.path, "--output", model.path + "/"], "is --model"),
            (["search"] + task + ["--train", data.path, "--target-bits", "2", "--tolerance", "0.2", "--groups", "1", "--output", model.path],
             "is --model"),
        ]
        for (args, message) in cases {
            assertUserError(try CLI.run(args), contains: message)
        }
        XCTAssertEqual(try watched.map { try Data(contentsOf: $0) }, before, "no input changed")
    }

    func testBenchRunsOnTinyShapes() throws {
        let r = try CLI.run(["bench", "train", "--model", model.path, "--batch", "2", "--seq", "8", "--steps", "1", "--warmup", "0"])
        XCTAssertEqual(r.status, 0, r.stderr)
        for key in ["median_step_seconds:", "tokens_per_second:", "gflops:", "peak_rss_mib:"] {
            XCTAssertTrue(r.stdout.contains(key), "missing \(key) in \(r.stdout)")
        }
        assertUserError(try CLI.run(["bench", "forward", "--model", model.path, "--seq", "41", "--steps", "1"]),
                        contains: "max_position_embeddings")
    }
}
