import AQBert
import Foundation
import XCTest

/// The promises about outputs and resumed runs: one run per output folder, no model in an
/// output before its run has finished, checkpoints checked before they are trusted (pointer,
/// state, moments, the inputs' fingerprint), and output that cannot be written is an error.
final class ReliabilityTests: XCTestCase {
    var dir: URL!
    var model: URL!
    var train: URL!
    var dev: URL!

    override func setUpWithError() throws {
        dir = try Scratch.directory()
        model = try Scratch.tinyModelWithVocab()
        (train, dev) = try Scratch.toySST2(in: dir, seed: 7, train: 120, dev: 20)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
        try? FileManager.default.removeItem(at: model)
    }

    func finetuneArgs(_ out: URL, train: URL? = nil) -> [String] {
        ["finetune", "--model", model.path, "--task", "sst2", "--train", (train ?? self.train).path, "--dev", dev.path,
         "--output", out.path, "--epochs", "2", "--batch-size", "4", "--lr", "1e-3", "--save-steps", "7", "--threads", "1",
         "--seed", "3"]
    }

    /// Every regular file under `dir` (relative path -> bytes).
    func snapshot(_ dir: URL) throws -> [String: Data] {
        var files: [String: Data] = [:]
        let base = dir.standardizedFileURL.path
        for case let url as URL in FileManager.default.enumerator(at: dir, includingPropertiesForKeys: nil)! {
            guard !url.hasDirectoryPath, let data = try? Data(contentsOf: url) else { continue }
            files[String(url.standardizedFileURL.path.dropFirst(base.count))] = data
        }
        return files
    }

    /// A second run on an output folder another run holds stops at once, and changes nothing.
    func testASecondRunOnALockedOutputIsRefused() throws {
        let out = dir.appendingPathComponent("run")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        // Hold the lock as a running aqbert would.
        let fd = open(out.appendingPathComponent(".aqbert-lock").path, O_RDWR | O_CREAT, 0o644)
        XCTAssertGreaterThanOrEqual(fd, 0)
        XCTAssertEqual(flock(fd, LOCK_EX | LOCK_NB), 0)
        _ = "4242\n".withCString { write(fd, $0, 5) }
        let before = try snapshot(out)
        assertUserError(try CLI.run(finetuneArgs(out)), contains: "another aqbert run (pid 4242) is writing to it")
        assertUserError(try CLI.run(["search", "--model", model.path, "--task", "sst2", "--train", train.path, "--target-bits", "2.5",
                                     "--groups", "1", "--tolerance", "0.1", "--epochs", "1", "--threads", "1", "--output", out.path]),
                        contains: "another aqbert run")
        XCTAssertEqual(try snapshot(out), before, "the refused runs wrote nothing")
        close(fd)
        // Released (as when the first run ends, however it ends): the folder is usable again.
        let r = try CLI.run(finetuneArgs(out))
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    /// A run killed half-way leaves checkpoints but no model: evaluate and export say it is
    /// unfinished; --resume then publishes the model, and nothing is left staged.
    func testAKilledRunLeavesNoModel() throws {
        let out = dir.appendingPathComponent("killed")
        XCTAssertEqual(try CLI.killAfter(finetuneArgs(out), fileAppears: out.appendingPathComponent("last-checkpoint.json")),
                       .uncaughtSignal)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("model.safetensors").path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("config.json").path))
        assertUserError(try CLI.run(["evaluate", "--model", out.path, "--task", "sst2", "--data", dev.path]),
                        contains: "unfinished aqbert run")
        let r = try CLI.run(finetuneArgs(out) + ["--resume"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("model.safetensors").path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent(".best-model").path))
        XCTAssertEqual(try CLI.run(["evaluate", "--model", out.path, "--task", "sst2", "--data", dev.path]).status, 0)
    }

    /// Damaged or foreign checkpoint state is refused with the file and what is wrong, and the
    /// checkpoint is left as it was.
    func testTamperedCheckpointsAreRefused() throws {
        let out = dir.appendingPathComponent("run")
        XCTAssertEqual(try CLI.killAfter(finetuneArgs(out), fileAppears: out.appendingPathComponent("last-checkpoint.json")),
                       .uncaughtSignal)
        let pointer = out.appendingPathComponent("last-checkpoint.json")
        let original = try Data(contentsOf: pointer)
        let name = try XCTUnwrap((try JSONSerialization.jsonObject(with: original) as? [String: String])?["checkpoint"])
        let checkpoint = out.appendingPathComponent(name)
        let resume = finetuneArgs(out) + ["--resume"]

        // The pointer: outside the output, a missing folder, not JSON.
        for (text, needle) in [("{\"checkpoint\": \"../../etc\"}", "must name a checkpoint-<step> folder"),
                               ("{\"checkpoint\": \"checkpoint-99999\"}", "which is missing"),
                               ("{\"checkpoint\": ", "line 1, column")] {
            try Data(text.utf8).write(to: pointer)
            assertUserError(try CLI.run(resume), contains: needle)
        }
        try original.write(to: pointer)

        // The state: a position the run cannot reach, a damaged file, a missing field.
        let stateURL = checkpoint.appendingPathComponent("trainer_state.json")
        let state = try Data(contentsOf: stateURL)
        var object = try JSONSerialization.jsonObject(with: state) as! [String: Any]
        object["globalStep"] = 99_999
        try JSONSerialization.data(withJSONObject: object).write(to: stateURL)
        assertUserError(try CLI.run(resume), contains: "globalStep 99999 does not match")
        object["globalStep"] = nil
        try JSONSerialization.data(withJSONObject: object).write(to: stateURL)
        assertUserError(try CLI.run(resume), contains: "missing key \"globalStep\"")
        try Data("{\"epoch\": 1, \"epoch\": 2}".utf8).write(to: stateURL)
        assertUserError(try CLI.run(resume), contains: "duplicate key \"epoch\"")
        try state.write(to: stateURL)

        // The optimizer file of another run (moments for a parameter this model lacks).
        let moments = checkpoint.appendingPathComponent("optimizer.safetensors")
        let savedMoments = try Data(contentsOf: moments)
        try SafeTensorsWriter.write([(name: "m.nope", shape: [2], values: [1, 2]), (name: "v.nope", shape: [2], values: [1, 2])],
                                    metadata: ["format": "pt", "step": "7"], to: moments)
        assertUserError(try CLI.run(resume), contains: "not a moment of this run's parameters")
        try savedMoments.write(to: moments)

        // Other training data than the run started from.
        let otherTrain = dir.appendingPathComponent("other.tsv")
        var text = try String(contentsOf: train, encoding: .utf8)
        text += "an extra sentence\t1\n"
        try text.write(to: otherTrain, atomically: true, encoding: .utf8)
        assertUserError(try CLI.run(finetuneArgs(out, train: otherTrain) + ["--resume"]), contains: "train changed since")

        // Untouched, it resumes.
        let r = try CLI.run(resume)
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    /// The search's checkpoints get the same checks: its state's position, its recorded inputs.
    func testTamperedSearchCheckpointsAreRefused() throws {
        let fp32 = dir.appendingPathComponent("fp32")
        XCTAssertEqual(try CLI.run(finetuneArgs(fp32)).status, 0)
        func args(_ train: URL) -> [String] {
            ["search", "--model", fp32.path, "--task", "sst2", "--train", train.path, "--target-bits", "2.5", "--groups", "1",
             "--tolerance", "0.1", "--epochs", "3", "--batch-size", "8", "--save-steps", "2", "--threads", "1",
             "--output", dir.appendingPathComponent("search").path]
        }
        let out = dir.appendingPathComponent("search")
        XCTAssertEqual(try CLI.killAfter(args(train), fileAppears: out.appendingPathComponent("last-checkpoint.json")), .uncaughtSignal)
        let pointer = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("last-checkpoint.json"))) as! [String: String]
        let stateURL = out.appendingPathComponent(pointer["checkpoint"]!).appendingPathComponent("search_state.json")
        let state = try Data(contentsOf: stateURL)
        var object = try JSONSerialization.jsonObject(with: state) as! [String: Any]
        object["epoch"] = 9
        try JSONSerialization.data(withJSONObject: object).write(to: stateURL)
        assertUserError(try CLI.run(args(train) + ["--resume"]), contains: "epoch 9 is outside 0...3")
        object["epoch"] = 0
        object["lambda"] = -1
        try JSONSerialization.data(withJSONObject: object).write(to: stateURL)
        assertUserError(try CLI.run(args(train) + ["--resume"]), contains: "lambda -1.0 is not a penalty weight")
        try state.write(to: stateURL)
        let otherTrain = dir.appendingPathComponent("other.tsv")
        try (String(contentsOf: train, encoding: .utf8) + "one more good one\t1\n").write(to: otherTrain, atomically: true, encoding: .utf8)
        assertUserError(try CLI.run(args(otherTrain) + ["--resume"]), contains: "train changed since")
        let r = try CLI.run(args(train) + ["--resume"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("plan.json").path))
    }

    /// An output that cannot be created (its parent is a file) is one line naming why, for every
    /// kind of output: a run folder, a plan file, a comparison folder.
    func testAnOutputThatCannotBeCreatedIsNamed() throws {
        let file = dir.appendingPathComponent("a-file")
        try Data("x".utf8).write(to: file)
        let below = file.appendingPathComponent("out").path
        assertUserError(try CLI.run(finetuneArgs(URL(fileURLWithPath: below))), contains: "a-file is a file, not a directory")
        assertUserError(try CLI.run(["plan", "uniform", "--model", model.path, "--bits", "2", "--groups", "1", "--output", below]),
                        contains: "a-file is a file, not a directory")
        assertUserError(try CLI.run(["compare", "--model", model.path, "--task", "sst2", "--train", train.path, "--dev", dev.path,
                                     "--fine-tuned", "--output", below]),
                        contains: "a-file is a file, not a directory")
        XCTAssertEqual(try Data(contentsOf: file), Data("x".utf8), "the file in the way is untouched")
    }

    /// Output that cannot be written (stdout closed) is an error, not a lost success.
    func testAClosedStandardOutputIsAnError() throws {
        let input = dir.appendingPathComponent("in.txt")
        try "the movie is good\n".write(to: input, atomically: true, encoding: .utf8)
        for args in [["tokenize", "--model", model.path, "--input", input.path, "--output", "-"],
                     ["plan", "uniform", "--model", model.path, "--bits", "2", "--groups", "1",
                      "--output", dir.appendingPathComponent("u.json").path]] {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", "exec \"$0\" \"$@\" >&-", CLI.binary.path] + args
            let err = Pipe()
            p.standardError = err
            try p.run()
            let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            XCTAssertEqual(p.terminationReason, .exit, e)
            XCTAssertNotEqual(p.terminationStatus, 0, "\(args[0]) with a closed stdout: \(e)")
            XCTAssertTrue(e.contains("error: cannot write to standard output"), e)
        }
    }

    /// A SQuAD window setting that leaves no room is refused by every command that reads SQuAD.
    func testDocStrideWithoutRoomIsRefused() throws {
        let squad = dir.appendingPathComponent("squad.json")
        try Data(#"{"version":"1.1","data":[{"title":"t","paragraphs":[{"context":"a b c","qas":[{"id":"1","question":"a?","answers":[{"text":"b","answer_start":2}]}]}]}]}"#.utf8)
            .write(to: squad)
        assertUserError(try CLI.run(["predict", "--model", model.path, "--task", "squad", "--data", squad.path,
                                     "--max-seq-length", "40", "--doc-stride", "37", "--output", dir.appendingPathComponent("p.json").path]),
                        contains: "--doc-stride 37 leaves no room for a window in --max-seq-length 40")
        assertUserError(try CLI.run(["evaluate", "--model", model.path, "--task", "squad", "--data", squad.path,
                                     "--max-seq-length", "40", "--doc-stride", "-1"]),
                        contains: "--doc-stride must be 0 or more")
    }
}
