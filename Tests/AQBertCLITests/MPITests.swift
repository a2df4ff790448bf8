import AQBert
import AQQuant
import Foundation
import XCTest

/// `mpirun -np 2 aqbert finetune` (data parallel, see `Trainer`) against one process on the same
/// global batch, run to run determinism, one error for a bad input, and kill -9 of one rank then
/// `--resume`. Skipped when Open MPI's `mpirun` is not installed (Scripts/setup.sh installs it).
final class MPITests: XCTestCase {
    var dir: URL!
    var model: URL!
    var train: URL!
    var dev: URL!

    override func setUpWithError() throws {
        guard let mpirun = MPI.mpirun else { throw XCTSkip("mpirun not found (install openmpi-bin: Scripts/setup.sh)") }
        // A machine where Open MPI cannot start two processes at all is not a failure of aqbert's.
        let probe = try CLI.run(MPI.arguments(ranks: 2, program: "/bin/true", []), executable: mpirun, environment: MPI.environment)
        guard probe.status == 0 else { throw XCTSkip("mpirun cannot start 2 processes here: \(probe.stderr.prefix(300))") }
        dir = try Scratch.directory()
        // The tiny BERT with dropout on, so that the ranks' dropout masks are part of the check.
        model = try Scratch.tinyModelWithVocab()
        let c = model.appendingPathComponent("config.json")
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: c)) as! [String: Any]
        config["hidden_dropout_prob"] = 0.1
        config["attention_probs_dropout_prob"] = 0.1
        try JSONSerialization.data(withJSONObject: config).write(to: c)
        (train, dev) = try Scratch.toySST2(in: dir, seed: 11, train: 483, dev: 40)
    }

    override func tearDownWithError() throws {
        if let dir { try? FileManager.default.removeItem(at: dir) }
        if let model { try? FileManager.default.removeItem(at: model) }
    }

    /// 483 rows in batches of 8: 61 updates per epoch, the last of 3 rows (one rank gets 2).
    func finetuneArgs(_ out: URL) -> [String] {
        ["finetune", "--model", model.path, "--task", "sst2", "--train", train.path, "--dev", dev.path, "--output", out.path,
         "--epochs", "2", "--batch-size", "8", "--lr", "1e-3", "--save-steps", "20", "--threads", "1", "--seed", "5"]
    }

    func tensors(_ out: URL) throws -> [String: [Float]] {
        let file = try SafeTensorsFile(url: out.appendingPathComponent("model.safetensors"))
        var all: [String: [Float]] = [:]
        for n in file.names { all[n] = try file.floats(n) }
        return all
    }

    func history(_ out: URL) throws -> [[String: Any]] {
        let r = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("eval_results.json"))) as! [String: Any]
        return r["history"] as! [[String: Any]]
    }

    func testTwoRanksMatchOneProcessAndEachOther() throws {
        let one = dir.appendingPathComponent("one"), two = dir.appendingPathComponent("two"), again = dir.appendingPathComponent("again")
        let r1 = try CLI.run(finetuneArgs(one))
        XCTAssertEqual(r1.status, 0, r1.stderr)
        // Buckets of 8 KB: the tiny model's gradients in many all-reduces, each started while
        // the backward pass runs on.
        let r2 = try MPI.run(ranks: 2, finetuneArgs(two) + ["--bucket-mb", "0.008"])
        XCTAssertEqual(r2.status, 0, r2.stderr)
        // Rank 0 alone prints: one result line.
        XCTAssertEqual(r2.stdout.components(separatedBy: "best: epoch").count, 2, r2.stdout)
        XCTAssertEqual(try MPI.run(ranks: 2, finetuneArgs(again) + ["--bucket-mb", "0.008"]).status, 0)

        // Two runs with the same number of ranks: the same bytes.
        XCTAssertEqual(try Data(contentsOf: two.appendingPathComponent("model.safetensors")),
                       try Data(contentsOf: again.appendingPathComponent("model.safetensors")))

        // Against one process on the same global batches, dropout masks included: the losses
        // agree to rounding and so do the weights after 122 updates, except the attention key
        // biases. Their true gradient is zero (softmax ignores a constant added to every score of
        // a row), so what they receive is rounding noise, which Adam's normalisation turns into
        // steps of up to the learning rate: they drift by noise in any run, one process or several.
        let h1 = try history(one), h2 = try history(two)
        XCTAssertEqual(h1.count, 2)
        for (a, b) in zip(h1, h2) {
            XCTAssertEqual(a["train_loss"] as! Double, b["train_loss"] as! Double, accuracy: 1e-6)
            XCTAssertEqual((a["metrics"] as! [String: Double])["accuracy"], (b["metrics"] as! [String: Double])["accuracy"])
        }
        let w1 = try tensors(one), w2 = try tensors(two)
        XCTAssertEqual(Set(w1.keys), Set(w2.keys))
        var worst = (difference: Float(0), name: "")
        for (name, a) in w1 where !name.hasSuffix("attention.self.key.bias") {
            let d = zip(a, w2[name]!).map { abs($0 - $1) }.max() ?? 0
            if d > worst.difference { worst = (d, name) }
        }
        XCTAssertLessThan(worst.difference, 1e-5, "largest weight difference, in \(worst.name)")
        for (name, a) in w1 where name.hasSuffix("attention.self.key.bias") {
            XCTAssertLessThan(zip(a, w2[name]!).map { abs($0 - $1) }.max() ?? 0, 0.02, name)
        }
    }

    /// Quantization-aware retraining with the default recipe (layer-wise distillation from the
    /// fp32 model, learned weight ranges) on 2 ranks against one process, on 83 rows (22
    /// updates, each epoch's last batch of 3 rows split 2 + 1). The parts of a batch sum to the
    /// whole batch's loss exactly (`DistillationGoldenTests.testBatchPartsSumToTheWholeBatch`),
    /// but not bit for bit: OpenBLAS rounds a row of a product differently in a product of
    /// another height, and the 8-bit activation grid turns a last-bit difference in a range or
    /// an activation into a whole grid step. Measured on the development machine: epoch losses
    /// within 0.2%, weights within 9e-4, activation ranges within 0.1%; the tolerances are a few
    /// times that. Two runs on 2 ranks give the same bytes.
    func testRetrainOnTwoRanksMatchesOneProcess() throws {
        let fp32 = dir.appendingPathComponent("fp32")
        XCTAssertEqual(try CLI.run(finetuneArgs(fp32)).status, 0)
        let plan = dir.appendingPathComponent("plan.json")
        XCTAssertEqual(try CLI.run(["plan", "uniform", "--model", fp32.path, "--bits", "2", "--groups", "1", "--candidates", "0,2,4",
                                    "--output", plan.path]).status, 0)
        let rows = dir.appendingPathComponent("train-83.tsv")
        try (try String(contentsOf: train, encoding: .utf8)).split(separator: "\n").prefix(84).joined(separator: "\n")
            .appending("\n").write(to: rows, atomically: true, encoding: .utf8)
        func retrainArgs(_ out: URL) -> [String] {
            var args = finetuneArgs(out)
            args[0] = "retrain"
            args[2] = fp32.path
            args[args.firstIndex(of: "--train")! + 1] = rows.path
            return args + ["--plan", plan.path]
        }
        let one = dir.appendingPathComponent("qat-one"), two = dir.appendingPathComponent("qat-two")
        let again = dir.appendingPathComponent("qat-again")
        XCTAssertEqual(try CLI.run(retrainArgs(one)).status, 0)
        let r = try MPI.run(ranks: 2, retrainArgs(two))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try MPI.run(ranks: 2, retrainArgs(again)).status, 0)
        XCTAssertEqual(try Data(contentsOf: two.appendingPathComponent("model.safetensors")),
                       try Data(contentsOf: again.appendingPathComponent("model.safetensors")))
        let training = try JSONSerialization.jsonObject(with: Data(contentsOf: two.appendingPathComponent("training_args.json"))) as! [String: Any]
        XCTAssertEqual(training["distill"] as? String, "all")
        XCTAssertEqual(training["ranges"] as? String, "learned")

        for (a, b) in zip(try history(one), try history(two)) {
            let (x, y) = (a["train_loss"] as! Double, b["train_loss"] as! Double)
            XCTAssertEqual(x, y, accuracy: 0.01 * abs(x))
        }
        let w1 = try tensors(one), w2 = try tensors(two)
        for (name, a) in w1 where !name.hasSuffix("attention.self.key.bias") {
            XCTAssertLessThan(zip(a, w2[name]!).map { abs($0 - $1) }.max() ?? 0, 5e-3, name)
        }
        func ranges(_ out: URL) throws -> [String: [Double]] {
            let config = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("config.json"))) as! [String: Any]
            return (config["quantization_config"] as! [String: Any])["activation_ranges"] as! [String: [Double]]
        }
        let a1 = try ranges(one), a2 = try ranges(two)
        XCTAssertEqual(Set(a1.keys), Set(a2.keys))
        for (k, v) in a1 { for (x, y) in zip(v, a2[k]!) { XCTAssertEqual(x, y, accuracy: 0.005 * abs(x), k) } }
    }

    /// The search on 2 ranks (frozen weights, the default, trained weights, and trained weights
    /// with the second-order architecture gradient, whose extra passes sum their gradients too:
    /// architecture steps from the first step, plain SGD on the logits and xi 0.01, so that the
    /// logged losses show the unrolled term, which at the default xi is below their tolerance): the plan of one
    /// process, the first steps' losses to rounding (later ones drift by more: the super-network
    /// quantizes, see the retraining test), and the same bytes from two runs on 2 ranks.
    func testSearchOnTwoRanksGivesTheOneProcessPlan() throws {
        let fp32 = dir.appendingPathComponent("fp32")
        XCTAssertEqual(try CLI.run(finetuneArgs(fp32)).status, 0)
        func searchArgs(_ out: URL, _ extra: [String]) -> [String] {
            ["search", "--model", fp32.path, "--task", "sst2", "--train", train.path, "--target-bits", "2.5", "--groups", "1",
             "--tolerance", "0.1", "--epochs", "2", "--batch-size", "8", "--save-steps", "10", "--threads", "1", "--output", out.path] + extra
        }
        func log(_ out: URL) throws -> [[String: Any]] {
            try String(contentsOf: out.appendingPathComponent("search_log.jsonl"), encoding: .utf8).split(separator: "\n")
                .map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        }
        for (name, extra) in [("frozen", [String]()), ("trained", ["--train-weights"]), ("second-order", ["--train-weights", "--second-order", "--unrolled-lr", "0.01", "--arch-start", "0", "--arch-optimizer", "sgd"])] {
            let one = dir.appendingPathComponent("search-one-\(name)"), two = dir.appendingPathComponent("search-two-\(name)")
            let again = dir.appendingPathComponent("search-again-\(name)")
            XCTAssertEqual(try CLI.run(searchArgs(one, extra)).status, 0)
            // 8 KB buckets: several all-reduces per pass, started while it runs.
            let r = try MPI.run(ranks: 2, searchArgs(two, extra + ["--bucket-mb", "0.008"]))
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual(r.stdout.components(separatedBy: "plan:").count, 2, "rank 0 alone prints: \(r.stdout)")
            XCTAssertEqual(try MPI.run(ranks: 2, searchArgs(again, extra + ["--bucket-mb", "0.008"])).status, 0)
            for file in ["plan.json", "search_log.jsonl"] {
                XCTAssertEqual(try Data(contentsOf: two.appendingPathComponent(file)), try Data(contentsOf: again.appendingPathComponent(file)),
                               "\(name): \(file) of two runs on 2 ranks")
            }
            let p1 = try BitPlan(contentsOf: one.appendingPathComponent("plan.json"))
            let p2 = try BitPlan(contentsOf: two.appendingPathComponent("plan.json"))
            XCTAssertEqual(p1.matrices.mapValues(\.bits), p2.matrices.mapValues(\.bits), "\(name): the plan of one process")
            let l1 = try log(one), l2 = try log(two)
            XCTAssertEqual(l1.count, l2.count)
            for (a, b) in zip(l1, l2).prefix(10) {
                for key in ["train_loss", "val_loss", "expected_mib"] {
                    if let x = a[key] as? Double { XCTAssertEqual(x, try XCTUnwrap(b[key] as? Double), accuracy: 1e-5 * max(1, abs(x)), "\(name) \(key)") }
                }
            }
        }
    }

    /// Q-BERT's sensitivity with each subset's blocks shared out over 2 and 3 ranks (3: one rank
    /// has no block of the tiny model's 2): the one-process report, byte for byte.
    func testSensitivityOnSeveralRanksIsTheOneProcessReport() throws {
        let fp32 = dir.appendingPathComponent("fp32")
        XCTAssertEqual(try CLI.run(finetuneArgs(fp32)).status, 0)
        func args(_ out: URL) -> [String] {
            ["sensitivity", "--model", fp32.path, "--task", "sst2", "--train", train.path, "--subsets", "2", "--max-rows", "16",
             "--max-iterations", "4", "--threads", "1", "--output", out.path]
        }
        let one = dir.appendingPathComponent("one.json")
        XCTAssertEqual(try CLI.run(args(one)).status, 0)
        for ranks in [2, 3] {
            let out = dir.appendingPathComponent("ranks-\(ranks).json")
            let r = try MPI.run(ranks: ranks, args(out))
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual(r.stdout.components(separatedBy: "Omega per block").count, 2, "rank 0 alone prints: \(r.stdout)")
            XCTAssertEqual(try Data(contentsOf: out), try Data(contentsOf: one), "\(ranks) ranks")
        }
    }

    /// compare on 2 ranks: the steps of one seed shared as a work queue (each a one-process
    /// aqbert, started once the steps it reads have finished: the fine-tuning first, then the
    /// uniform plan and the search side by side, then the QATs); then rank 0 finds every step
    /// finished and publishes: the results of one process.
    func testCompareSharesItsStepsAcrossRanks() throws {
        func args(_ out: URL) -> [String] {
            ["compare", "--model", model.path, "--task", "sst2", "--train", train.path, "--dev", dev.path, "--budgets", "2",
             "--methods", "fp32,uniform,aq-bert", "--seed", "1", "--seeds", "1", "--epochs", "1", "--lr", "1e-3", "--batch-size", "8",
             "--search-epochs", "1", "--groups", "1", "--tolerance", "0.1", "--threads", "1", "--output", out.path]
        }
        let one = dir.appendingPathComponent("compare-one"), two = dir.appendingPathComponent("compare-two")
        XCTAssertEqual(try CLI.run(args(one)).status, 0)
        let r = try MPI.run(ranks: 2, args(two))
        XCTAssertEqual(r.status, 0, r.stderr)
        for rank in 0..<2 { XCTAssertTrue(r.stdout.contains("[rank \(rank)] [compare] seed 1"), "rank \(rank) ran a step: \(r.stdout)") }
        XCTAssertEqual(r.stdout.components(separatedBy: "[compare] done").count, 2, "rank 0 alone publishes: \(r.stdout)")
        func runs(_ out: URL) throws -> [[String: Any]] {
            let results = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("results.json"))) as! [String: Any]
            return results["runs"] as! [[String: Any]]
        }
        let a = try runs(one), b = try runs(two)
        XCTAssertEqual(a.count, 3)
        XCTAssertEqual(a.map { "\($0["method"]!) \($0["seed"]!) \($0["metric"]!)" }, b.map { "\($0["method"]!) \($0["seed"]!) \($0["metric"]!)" })
        for file in ["fp32/model.safetensors", "search-2/plan.json", "uniform-2/model.safetensors", "aq-bert-2/model.safetensors"] {
            XCTAssertEqual(try Data(contentsOf: one.appendingPathComponent("seed-1/" + file)),
                           try Data(contentsOf: two.appendingPathComponent("seed-1/" + file)), file)
        }
    }

    /// Every rank fails the same input check: one error line, printed once, and a failure exit.
    func testABadInputIsOneErrorLine() throws {
        var args = finetuneArgs(dir.appendingPathComponent("run"))
        args[args.firstIndex(of: "--train")! + 1] = dir.appendingPathComponent("missing.tsv").path
        let r = try MPI.run(ranks: 2, args)
        XCTAssertNotEqual(r.status, 0)
        let errors = r.stderr.split(separator: "\n").filter { $0.hasPrefix("error: ") }
        XCTAssertEqual(errors.count, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("missing.tsv"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("run").path))

        // A bad flag, found before MPI starts: printed by rank 0 alone.
        let flag = try MPI.run(ranks: 2, finetuneArgs(dir.appendingPathComponent("run")) + ["--epochs", "zero"])
        XCTAssertNotEqual(flag.status, 0)
        XCTAssertEqual(flag.stderr.split(separator: "\n").filter { $0.hasPrefix("error: ") }.count, 1, flag.stderr)

        // A command that does not run data parallel is refused under mpirun, once.
        let e = try MPI.run(ranks: 2, ["evaluate", "--model", model.path, "--task", "sst2", "--data", dev.path])
        XCTAssertNotEqual(e.status, 0)
        XCTAssertEqual(e.stderr.split(separator: "\n").filter { $0.hasPrefix("error: ") }.count, 1, e.stderr)
        XCTAssertTrue(e.stderr.contains("without mpirun"), e.stderr)
    }

    /// kill -9 of one rank ends the whole job with a failure; `--resume` with the same number of
    /// ranks finishes with the bytes of an uninterrupted run.
    func testKillingOneRankEndsTheJobAndResumeFinishesIt() throws {
        let reference = dir.appendingPathComponent("reference"), killed = dir.appendingPathComponent("killed")
        XCTAssertEqual(try MPI.run(ranks: 2, finetuneArgs(reference)).status, 0)

        let job = try MPI.start(ranks: 2, finetuneArgs(killed))
        let checkpoint = killed.appendingPathComponent("last-checkpoint.json")
        let deadline = Date().addingTimeInterval(120)
        while !FileManager.default.fileExists(atPath: checkpoint.path) && job.process.isRunning && Date() < deadline { usleep(2000) }
        let ranks = MPI.children(of: job.process.processIdentifier)
        XCTAssertEqual(ranks.count, 2, "the job's two ranks")
        if let victim = ranks.max() { kill(victim, SIGKILL) }
        job.process.waitUntilExit()
        let stderr = String(decoding: job.stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertNotEqual(job.process.terminationStatus, 0, "a job with a killed rank fails: \(stderr)")
        XCTAssertFalse(stderr.isEmpty, "mpirun says why")
        XCTAssertFalse(FileManager.default.fileExists(atPath: killed.appendingPathComponent("model.safetensors").path),
                       "the killed run published no model")

        let r = try MPI.run(ranks: 2, finetuneArgs(killed) + ["--resume"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("resumed at update"), r.stdout)
        XCTAssertEqual(try Data(contentsOf: reference.appendingPathComponent("model.safetensors")),
                       try Data(contentsOf: killed.appendingPathComponent("model.safetensors")))
    }
}

/// Open MPI's launcher, with what a root user (CI containers) and a machine with fewer cores
/// than ranks need.
enum MPI {
    static var mpirun: URL? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let u = URL(fileURLWithPath: String(dir)).appendingPathComponent("mpirun")
            if FileManager.default.isExecutableFile(atPath: u.path) { return u }
        }
        return nil
    }

    static let environment = ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
                              // No cross-memory attach: containers often forbid ptrace.
                              "OMPI_MCA_btl_vader_single_copy_mechanism": "none"]

    static func arguments(ranks: Int, program: String = CLI.binary.path, _ args: [String]) -> [String] {
        ["--oversubscribe", "-np", "\(ranks)", program] + args
    }

    static func run(ranks: Int, _ args: [String]) throws -> CLI.Result {
        try CLI.run(arguments(ranks: ranks, args), executable: mpirun!, environment: environment)
    }

    static func start(ranks: Int, _ args: [String]) throws -> (process: Process, stderr: Pipe) {
        let p = Process()
        p.executableURL = mpirun!
        p.arguments = arguments(ranks: ranks, args)
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        p.standardOutput = FileHandle.nullDevice
        let err = Pipe()
        p.standardError = err
        try p.run()
        return (p, err)
    }

    /// The processes whose parent is `pid` (from /proc).
    static func children(of pid: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { name -> Int32? in
            guard let child = Int32(name), let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return nil }
            // Fields after the command name: state, ppid, ...
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && Int32(fields[1]) == pid ? child : nil
        }
    }
}
