import AQBert
import AQQuant
import AQSearch
import Foundation
import XCTest

/// finetune / evaluate / predict / score on the tiny model, and --resume after kill -9.
final class FinetuneCommandTests: XCTestCase {
    var dir: URL!
    var model: URL!
    var train: URL!
    var dev: URL!

    override func setUpWithError() throws {
        dir = try Scratch.directory()
        model = try Scratch.tinyModelWithVocab()
        (train, dev) = try Scratch.toySST2(in: dir, seed: 7, train: 240, dev: 40)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
        try? FileManager.default.removeItem(at: model)
    }

    func finetuneArgs(_ out: URL) -> [String] {
        ["finetune", "--model", model.path, "--task", "sst2", "--train", train.path, "--dev", dev.path, "--output", out.path,
         "--epochs", "2", "--batch-size", "4", "--lr", "1e-3", "--save-steps", "7", "--threads", "1", "--seed", "3"]
    }

    /// A rate that makes the loss non-finite stops the run at that update with one line, and
    /// no model is written.
    func testDivergingRunStopsWithAClearError() throws {
        let out = dir.appendingPathComponent("diverged")
        var args = finetuneArgs(out)
        args[args.firstIndex(of: "1e-3")!] = "1e30"
        assertUserError(try CLI.run(args), contains: "training diverged", startedIn: out)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("model.safetensors").path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent(".aqbert-lock").path), "the lock ends with the run")
        // The search likewise: no plan from a diverged run.
        let fp32 = dir.appendingPathComponent("fp32")
        XCTAssertEqual(try CLI.run(finetuneArgs(fp32)).status, 0)
        let search = dir.appendingPathComponent("search")
        assertUserError(try CLI.run(["search", "--model", fp32.path, "--task", "sst2", "--train", train.path, "--target-bits", "2.5",
                                     "--groups", "1", "--tolerance", "0.1", "--epochs", "2", "--train-weights", "--lr", "1e30",
                                     "--batch-size", "8", "--threads", "1", "--output", search.path]),
                        contains: "the search diverged")
        XCTAssertFalse(FileManager.default.fileExists(atPath: search.appendingPathComponent("plan.json").path))
    }

    func results(_ out: URL) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("eval_results.json"))) as! [String: Any]
    }

    func testFinetuneEvaluatePredictScore() throws {
        let out = dir.appendingPathComponent("run")
        let r = try CLI.run(finetuneArgs(out) + ["--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        // Progress: one JSON object per line.
        for line in r.stdout.split(separator: "\n") {
            XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(line.utf8)), String(line))
        }
        let best = (try results(out)["metrics"] as! [String: Double])["accuracy"]!
        XCTAssertGreaterThan(best, 80, "the toy task is learnable")

        let e = try CLI.run(["evaluate", "--model", out.path, "--task", "sst2", "--data", dev.path, "--json"])
        XCTAssertEqual(e.status, 0, e.stderr)
        let report = try JSONSerialization.jsonObject(with: Data(e.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(report["task"] as? String, "sst2")
        XCTAssertEqual(report["examples"] as? Int, 40)
        XCTAssertEqual((report["metrics"] as! [String: Double])["accuracy"]!, best, accuracy: 1e-9)

        let predictions = dir.appendingPathComponent("pred.jsonl")
        let p = try CLI.run(["predict", "--model", out.path, "--task", "sst2", "--data", dev.path, "--output", predictions.path])
        XCTAssertEqual(p.status, 0, p.stderr)
        let first = try JSONSerialization.jsonObject(with: Data(String(contentsOf: predictions, encoding: .utf8).split(separator: "\n")[0].utf8)) as! [String: Any]
        XCTAssertEqual(first["index"] as? Int, 0)
        XCTAssertTrue(["negative", "positive"].contains(first["label"] as? String ?? ""))
        XCTAssertEqual((first["probabilities"] as! [Double]).reduce(0, +), 1, accuracy: 1e-5)
        let s = try CLI.run(["score", "--task", "sst2", "--data", dev.path, "--predictions", predictions.path, "--json"])
        XCTAssertEqual(s.status, 0, s.stderr)
        let scored = try JSONSerialization.jsonObject(with: Data(s.stdout.utf8)) as! [String: Any]
        XCTAssertEqual((scored["metrics"] as! [String: Double])["accuracy"]!, best, accuracy: 1e-9)
    }

    func testResumeAfterKillMinus9GivesTheSameResult() throws {
        let reference = dir.appendingPathComponent("reference"), killed = dir.appendingPathComponent("killed")
        XCTAssertEqual(try CLI.run(finetuneArgs(reference)).status, 0)

        // Start, wait for the first checkpoint, SIGKILL mid-epoch.
        XCTAssertEqual(try CLI.killAfter(finetuneArgs(killed), fileAppears: killed.appendingPathComponent("last-checkpoint.json")),
                       .uncaughtSignal, "killed mid-run (the run must not have finished)")
        let partial = (try? results(killed))?["history"] as? [Any]
        XCTAssertNotEqual(partial?.count, 2, "the run was killed before its last epoch")

        // Without --resume the directory is refused; with it the run finishes identically.
        assertUserError(try CLI.run(finetuneArgs(killed)), contains: "--resume")
        let r = try CLI.run(finetuneArgs(killed) + ["--resume"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("resumed at update"), r.stdout)
        let a = try results(reference), b = try results(killed)
        XCTAssertEqual(a["metrics"] as! [String: Double], b["metrics"] as! [String: Double])
        XCTAssertEqual(NSArray(array: a["history"] as! [Any]), NSArray(array: b["history"] as! [Any]))
        XCTAssertEqual(try Data(contentsOf: reference.appendingPathComponent("model.safetensors")),
                       try Data(contentsOf: killed.appendingPathComponent("model.safetensors")))
    }

    /// plan uniform -> retrain (QAT) -> evaluate applies the recorded quantization; the plan and
    /// quantization_config are in the output; evaluate --plan on fp32 is DirectQ.
    func testRetrainWithAPlan() throws {
        let fp32 = dir.appendingPathComponent("fp32"), qat = dir.appendingPathComponent("qat")
        XCTAssertEqual(try CLI.run(finetuneArgs(fp32)).status, 0)
        let plan = dir.appendingPathComponent("plan.json")
        let p = try CLI.run(["plan", "uniform", "--model", fp32.path, "--bits", "2", "--groups", "1", "--candidates", "0,2,4",
                             "--output", plan.path])
        XCTAssertEqual(p.status, 0, p.stderr)
        var args = finetuneArgs(qat)
        args[0] = "retrain"
        args[2] = fp32.path
        let r = try CLI.run(args + ["--plan", plan.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: qat.appendingPathComponent("plan.json").path))
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: qat.appendingPathComponent("config.json"))) as! [String: Any]
        let q = try XCTUnwrap(config["quantization_config"] as? [String: Any])
        XCTAssertEqual(q["quant_method"] as? String, "aq-bert")
        XCTAssertEqual((q["activation_ranges"] as? [String: Any])?.count, 12)
        let best = (try results(qat)["metrics"] as! [String: Double])["accuracy"]!
        let e = try CLI.run(["evaluate", "--model", qat.path, "--task", "sst2", "--data", dev.path, "--json"])
        XCTAssertEqual(e.status, 0, e.stderr)
        let report = try JSONSerialization.jsonObject(with: Data(e.stdout.utf8)) as! [String: Any]
        XCTAssertEqual((report["metrics"] as! [String: Double])["accuracy"]!, best, accuracy: 1e-9, "evaluate applies the quantization")
        let direct = try CLI.run(["evaluate", "--model", fp32.path, "--task", "sst2", "--data", dev.path, "--plan", plan.path, "--json"])
        XCTAssertEqual(direct.status, 0, direct.stderr)
        let i = try CLI.run(["inspect", "--plan", qat.appendingPathComponent("plan.json").path, "--model", qat.path, "--json"])
        XCTAssertEqual(i.status, 0, i.stderr)
        let inspected = try JSONSerialization.jsonObject(with: Data(i.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(inspected["avg_bits"] as? Double, 2)
        XCTAssertEqual((inspected["matrices"] as? [String: Any])?.count, 12)

        // --distill all with learned ranges: the fp32 model teaches; the settings are recorded;
        // the learned ranges are saved, and evaluate and export apply them; an untrained
        // teacher is refused.
        let distilled = dir.appendingPathComponent("qat-distilled")
        var dargs = finetuneArgs(distilled)
        dargs[0] = "retrain"
        dargs[2] = fp32.path
        let d = try CLI.run(dargs + ["--plan", plan.path, "--distill", "all", "--distill-alpha", "0.7", "--distill-attention-weight", "0.5",
                                     "--ranges", "learned", "--range-lr", "0.001", "--no-shuffle"])
        XCTAssertEqual(d.status, 0, d.stderr)
        let targs = try JSONSerialization.jsonObject(with: Data(contentsOf: distilled.appendingPathComponent("training_args.json"))) as! [String: Any]
        XCTAssertEqual(try XCTUnwrap(targs["distillAlpha"] as? Double), 0.7, accuracy: 1e-6)
        XCTAssertEqual(targs["distill"] as? String, "all")
        XCTAssertEqual(try XCTUnwrap(targs["distillHiddenWeight"] as? Double), 1, accuracy: 1e-9)
        XCTAssertEqual(try XCTUnwrap(targs["distillAttentionWeight"] as? Double), 0.5, accuracy: 1e-9)
        XCTAssertEqual(targs["ranges"] as? String, "learned")
        XCTAssertEqual(targs["rangeInitialization"] as? String, "mse")
        XCTAssertEqual(try XCTUnwrap(targs["rangeLearningRate"] as? Double), 0.001, accuracy: 1e-9)
        XCTAssertEqual(targs["shuffle"] as? Bool, false, "--no-shuffle is recorded")
        XCTAssertTrue(FileManager.default.fileExists(atPath: distilled.appendingPathComponent("weight_ranges.safetensors").path))
        let distilledBest = (try results(distilled)["metrics"] as! [String: Double])["accuracy"]!
        func evaluatedAccuracy(_ model: URL) throws -> Double? {
            let r = try CLI.run(["evaluate", "--model", model.path, "--task", "sst2", "--data", dev.path, "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let report = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
            return (report?["metrics"] as? [String: Double])?["accuracy"]
        }
        XCTAssertEqual(try XCTUnwrap(try evaluatedAccuracy(distilled)), distilledBest, accuracy: 1e-9, "evaluate applies the learned ranges")
        let dpacked = dir.appendingPathComponent("packed-distilled")
        let dx = try CLI.run(["export", "--model", distilled.path, "--output", dpacked.path])
        XCTAssertEqual(dx.status, 0, dx.stderr)
        XCTAssertEqual(try XCTUnwrap(try evaluatedAccuracy(dpacked)), distilledBest, accuracy: 1e-9, "the packed model keeps the learned ranges")
        var untrained = finetuneArgs(dir.appendingPathComponent("qat-untrained"))
        untrained[0] = "retrain"
        assertUserError(try CLI.run(untrained + ["--plan", plan.path, "--distill", "logits"]), contains: "fine-tune it first")
        assertUserError(try CLI.run(untrained + ["--plan", plan.path, "--distill-alpha", "0.3"]), contains: "--distill")
        assertUserError(try CLI.run(untrained + ["--plan", plan.path, "--ranges", "minmax", "--range-lr", "0.1"]), contains: "--ranges learned")
        assertUserError(try CLI.run(untrained + ["--plan", plan.path]), contains: "--distill none")
        assertUserError(try CLI.run(untrained + ["--plan", plan.path, "--distill", "layers", "--distill-hidden-weight", "nan"]),
                        contains: "--distill-hidden-weight")

        // export: the packed model scores and predicts as the simulated one, has the size
        // inspect predicts, and encode / bench infer run it.
        let packed = dir.appendingPathComponent("packed")
        let x = try CLI.run(["export", "--model", qat.path, "--output", packed.path])
        XCTAssertEqual(x.status, 0, x.stderr)
        let ep = try CLI.run(["evaluate", "--model", packed.path, "--task", "sst2", "--data", dev.path, "--json"])
        XCTAssertEqual(ep.status, 0, ep.stderr)
        let packedReport = try JSONSerialization.jsonObject(with: Data(ep.stdout.utf8)) as! [String: Any]
        XCTAssertEqual((packedReport["metrics"] as! [String: Double])["accuracy"]!, best, accuracy: 1e-9)
        let size = try FileManager.default.attributesOfItem(atPath: packed.appendingPathComponent("model.safetensors").path)[.size] as! Int
        XCTAssertEqual(inspected["file_bytes"] as? Int, size, "inspect predicts the packed file's size")
        let p1 = dir.appendingPathComponent("p1.jsonl"), p2 = dir.appendingPathComponent("p2.jsonl")
        XCTAssertEqual(try CLI.run(["predict", "--model", qat.path, "--task", "sst2", "--data", dev.path, "--output", p1.path]).status, 0)
        XCTAssertEqual(try CLI.run(["predict", "--model", packed.path, "--task", "sst2", "--data", dev.path, "--output", p2.path]).status, 0)
        func labels(_ u: URL) throws -> [String] {
            try String(contentsOf: u, encoding: .utf8).split(separator: "\n").map {
                (try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any])["label"] as! String
            }
        }
        XCTAssertEqual(try labels(p1), try labels(p2))
        let sentences = dir.appendingPathComponent("sentences.txt")
        try "the movie is good\na bad movie\n".write(to: sentences, atomically: true, encoding: .utf8)
        let enc = try CLI.run(["encode", "--model", packed.path, "--input", sentences.path, "--output", "-"])
        XCTAssertEqual(enc.status, 0, enc.stderr)
        XCTAssertEqual(enc.stdout.split(separator: "\n").count, 2)
        let bench = try CLI.run(["bench", "infer", "--model", packed.path, "--batch", "2", "--seq", "8", "--steps", "1", "--warmup", "0"])
        XCTAssertEqual(bench.status, 0, bench.stderr)
        XCTAssertTrue(bench.stdout.contains("implementation: aqbert") && bench.stdout.contains("packed") && bench.stdout.contains("latency_ms:"),
                      bench.stdout)
        assertUserError(try CLI.run(["export", "--model", qat.path, "--output", packed.path]), contains: "exists")
        assertUserError(try CLI.run(["export", "--model", fp32.path, "--output", dir.appendingPathComponent("packed2").path]),
                        contains: "retrain")
        assertUserError(try CLI.run(["evaluate", "--model", packed.path, "--task", "sst2", "--data", dev.path, "--plan", plan.path]),
                        contains: "packed")
    }

    /// A whole-file budget: the search plans the word and position tables too, lands inside the
    /// band under the cap, and retrain, inspect and export agree on the file: export writes
    /// exactly inspect's file_bytes, at most the cap, and the packed model scores what the
    /// quantization-aware one does.
    func testFileBudgetSearchPlansTheTablesAndTheFileHoldsTheCap() throws {
        let fp32 = dir.appendingPathComponent("fp32")
        XCTAssertEqual(try CLI.run(finetuneArgs(fp32)).status, 0)
        let (m, _) = try BertTaskModel.load(directory: fp32)
        let size = try SearchSize(model: m, candidates: [0, 2, 4], groups: 1, budget: .file,
                                  embeddings: EmbeddingSearch(candidates: [2, 3, 4, 8], rowsPerGroup: 10))
        let cap = Int(((size.smallestMiB + size.largestMiB) / 2 * 1_048_576).rounded())
        let out = dir.appendingPathComponent("search-file")
        func args(_ out: URL, mb: Double) -> [String] {
            ["search", "--model", fp32.path, "--task", "sst2", "--train", train.path, "--target-mb", String(mb), "--groups", "1",
             "--embedding-rows", "10", "--tolerance", "0.1", "--epochs", "2", "--batch-size", "8", "--threads", "1", "--output", out.path]
        }
        let r = try CLI.run(args(out, mb: Double(cap) / 1e6))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("inside the band"), r.stdout)
        let planURL = out.appendingPathComponent("plan.json")
        let plan = try BitPlan(contentsOf: planURL)
        XCTAssertEqual(plan.version, 2)
        XCTAssertEqual(plan.embeddings.keys.sorted(), ["bert.embeddings.position_embeddings.weight", "bert.embeddings.word_embeddings.weight"])
        XCTAssertEqual(plan.embeddingCandidates, [2, 3, 4, 8])
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("search_config.json"))) as? [String: Any]
        XCTAssertEqual(config?["budget"] as? String, "file")

        let qat = dir.appendingPathComponent("qat-file")
        var retrain = finetuneArgs(qat)
        retrain[0] = "retrain"
        retrain[2] = fp32.path
        retrain[retrain.firstIndex(of: "2")!] = "1"  // one epoch
        let q = try CLI.run(retrain + ["--plan", planURL.path])
        XCTAssertEqual(q.status, 0, q.stderr)
        let inspect = try CLI.run(["inspect", "--plan", planURL.path, "--model", qat.path, "--json"])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [String: Any])
        let fileBytes = try XCTUnwrap(report["file_bytes"] as? Int)
        XCTAssertNotNil(report["embeddings"] as? [String: Any])
        XCTAssertEqual(report["version"] as? Int, 2)
        XCTAssertLessThanOrEqual(fileBytes, cap)
        XCTAssertGreaterThanOrEqual(Double(fileBytes), 0.8 * Double(cap), "inside the band (1 - 2 eps) V ... V")
        let packed = dir.appendingPathComponent("packed-file")
        let x = try CLI.run(["export", "--model", qat.path, "--output", packed.path])
        XCTAssertEqual(x.status, 0, x.stderr)
        let written = try XCTUnwrap(try FileManager.default.attributesOfItem(atPath: packed.appendingPathComponent("model.safetensors").path)[.size] as? Int)
        XCTAssertEqual(written, fileBytes, "export writes exactly inspect's file_bytes")
        func predictions(_ model: URL) throws -> String {
            let o = dir.appendingPathComponent("pred-\(model.lastPathComponent).jsonl")
            let r = try CLI.run(["predict", "--model", model.path, "--task", "sst2", "--data", dev.path, "--output", o.path])
            XCTAssertEqual(r.status, 0, r.stderr)
            return try String(contentsOf: o, encoding: .utf8)
        }
        XCTAssertEqual(try predictions(packed), try predictions(qat), "the packed model computes what the quantization-aware one does")

        // Budgets a file budget cannot meet, and flags that do not go together: one line each.
        assertUserError(try CLI.run(args(dir.appendingPathComponent("s1"), mb: 0.5 * size.smallestMiB * 1.048576)),
                        contains: "below the smallest packed file")
        assertUserError(try CLI.run(args(dir.appendingPathComponent("s2"), mb: 2 * size.largestMiB * 1.048576)),
                        contains: "nothing to search")
        assertUserError(try CLI.run(args(dir.appendingPathComponent("s3"), mb: 0.04) + ["--embedding-bits", "2,9"]), contains: "--embedding-bits")
        assertUserError(try CLI.run(["search", "--model", fp32.path, "--task", "sst2", "--train", train.path, "--target-bits", "2",
                                     "--budget", "file", "--output", dir.appendingPathComponent("s4").path]), contains: "--target-bits")
    }

    /// search on the fine-tuned tiny model writes plan.json / search_log.jsonl, is deterministic,
    /// and `--resume` after kill -9 gives the byte-identical plan.
    func testSearchAndResumeAfterKill() throws {
        let fp32 = dir.appendingPathComponent("fp32")
        XCTAssertEqual(try CLI.run(finetuneArgs(fp32)).status, 0)
        // The paper's search (trained weights, architecture steps from epoch 1) unless `frozen`
        // (the default search).
        func args(_ out: URL, frozen: Bool = false) -> [String] {
            ["search", "--model", fp32.path, "--task", "sst2", "--train", train.path, "--target-bits", "2.5", "--groups", "1", "--tolerance", "0.1",
             "--epochs", "3", "--batch-size", "8", "--save-steps", "4", "--threads", "1", "--output", out.path]
                + (frozen ? [] : ["--train-weights", "--arch-start", "1"])
        }
        let a = dir.appendingPathComponent("search-a"), b = dir.appendingPathComponent("search-b")
        let r = try CLI.run(args(a))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("inside the band"), r.stdout)
        let plan = try Data(contentsOf: a.appendingPathComponent("plan.json"))
        // A repaired plan says so in its notes, on stdout and in budget_repair.json; else none of them.
        let notesA = try XCTUnwrap(((JSONSerialization.jsonObject(with: plan) as? [String: Any])?["provenance"] as? [String: Any])?["notes"] as? [String: String])
        let repairFile = FileManager.default.fileExists(atPath: a.appendingPathComponent("budget_repair.json").path)
        XCTAssertEqual(notesA["budget_repair"] != nil, repairFile)
        XCTAssertEqual(r.stdout.contains("the argmax plan was outside the band"), repairFile)
        // Logits that start far on 4 bits and a rate that cannot move them: the argmax stays at 4
        // bits everywhere and the repair brings it down into the 2.5-bit band.
        let rep = dir.appendingPathComponent("search-r")
        let repaired = try CLI.run(["search", "--model", fp32.path, "--task", "sst2", "--train", train.path, "--target-bits", "2.5",
                                    "--groups", "1", "--tolerance", "0.1", "--epochs", "2", "--initial-logits", "0,0,50", "--arch-lr", "1e-9",
                                    "--batch-size", "8",
                                    "--threads", "1", "--output", rep.path])
        XCTAssertEqual(repaired.status, 0, repaired.stderr)
        XCTAssertTrue(repaired.stdout.contains("moved one candidate down"), repaired.stdout)
        let repairJSON = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: rep.appendingPathComponent("budget_repair.json"))) as? [String: Any])
        let repairedPlan = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: rep.appendingPathComponent("plan.json"))) as? [String: Any])
        let provenance = try XCTUnwrap(repairedPlan["provenance"] as? [String: Any])
        let target = try XCTUnwrap(provenance["targetMiB"] as? Double), achieved = try XCTUnwrap(provenance["achievedMiB"] as? Double)
        XCTAssertEqual(achieved, target, accuracy: 0.1 * target)
        XCTAssertEqual(try XCTUnwrap(repairJSON["argmax_mib"] as? Double), 1.6 * target, accuracy: 1e-9 * target, "4 bits for a 2.5-bit budget")
        XCTAssertEqual(repairJSON["repaired_mib"] as? Double, achieved)
        let moves = try XCTUnwrap(repairJSON["moves"] as? [[String: Any]])
        XCTAssertFalse(moves.isEmpty)
        let steps = moves.map { "\($0["from_bits"] ?? "-")->\($0["to_bits"] ?? "-")" }
        XCTAssertTrue(steps.allSatisfy { $0 == "4->2" || $0 == "2->0" }, "\(steps)")
        XCTAssertNotNil((provenance["notes"] as? [String: String])?["budget_repair"])
        let log = try String(contentsOf: a.appendingPathComponent("search_log.jsonl"), encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(log.count, 3 * 27, "one entry per step (216 training rows / 8)")
        let first = try JSONSerialization.jsonObject(with: Data(log[0].utf8)) as! [String: Any]
        for key in ["train_loss", "expected_mib", "argmax_mib", "temperature", "lambda"] { XCTAssertNotNil(first[key], key) }

        XCTAssertEqual(try CLI.killAfter(args(b), fileAppears: b.appendingPathComponent("last-checkpoint.json")), .uncaughtSignal)
        assertUserError(try CLI.run(args(b)), contains: "--resume")
        let resumed = try CLI.run(args(b) + ["--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        let planB = try Data(contentsOf: b.appendingPathComponent("plan.json"))
        let differing = zip(String(decoding: plan, as: UTF8.self).split(separator: "\n"),
                            String(decoding: planB, as: UTF8.self).split(separator: "\n")).first { $0.0 != $0.1 }
        XCTAssertEqual(planB, plan, "first differing line: \(differing.map { "\($0.0) vs \($0.1)" } ?? "-")")
        XCTAssertEqual(try Data(contentsOf: b.appendingPathComponent("search_log.jsonl")),
                       try Data(contentsOf: a.appendingPathComponent("search_log.jsonl")))
        // A checkpoint whose settings lack a key (an older aqbert's) is a one-line error, not a trap.
        let pointer = try JSONSerialization.jsonObject(with: Data(contentsOf: b.appendingPathComponent("last-checkpoint.json"))) as? [String: String]
        let config = b.appendingPathComponent(try XCTUnwrap(pointer?["checkpoint"])).appendingPathComponent("search_config.json")
        var settings = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: config)) as? [String: Any])
        XCTAssertNotNil(settings.removeValue(forKey: "freezeWeights"))
        try JSONSerialization.data(withJSONObject: settings).write(to: config)
        assertUserError(try CLI.run(args(b) + ["--resume"]), contains: "cannot read the search settings")

        // The second-order variant through the CLI: a plan that says how it was searched.
        let c = dir.appendingPathComponent("search-c")
        let second = try CLI.run(args(c) + ["--second-order", "--unrolled-lr", "1e-3"])
        XCTAssertEqual(second.status, 0, second.stderr)
        let planC = try JSONSerialization.jsonObject(with: Data(contentsOf: c.appendingPathComponent("plan.json"))) as? [String: Any]
        let notes = (planC?["provenance"] as? [String: Any])?["notes"] as? [String: String]
        XCTAssertEqual(notes?["gradient"], "second order (xi 0.001)")
        assertUserError(try CLI.run(args(dir.appendingPathComponent("search-d")) + ["--unrolled-lr", "0.1"]),
                        contains: "--second-order")
        // Distilled weight steps and MSE ranges: recorded in the settings and the plan; frozen
        // weights have no weight steps to distil.
        let f = dir.appendingPathComponent("search-f")
        let distilled = try CLI.run(args(f) + ["--distill", "all", "--ranges", "mse"])
        XCTAssertEqual(distilled.status, 0, distilled.stderr)
        let planF = try JSONSerialization.jsonObject(with: Data(contentsOf: f.appendingPathComponent("plan.json"))) as? [String: Any]
        let notesF = (planF?["provenance"] as? [String: Any])?["notes"] as? [String: String]
        XCTAssertEqual(notesF?["weight_loss"], "distilled (all)")
        XCTAssertEqual(notesF?["weight_ranges"], "mse")
        let configF = try JSONSerialization.jsonObject(with: Data(contentsOf: f.appendingPathComponent("search_config.json"))) as? [String: Any]
        XCTAssertEqual((configF?["distillation"] as? [String: Any])?["mode"] as? String, "all")
        XCTAssertEqual(configF?["weightRanges"] as? String, "mse")
        assertUserError(try CLI.run(args(dir.appendingPathComponent("search-h")) + ["--ranges", "learned"]), contains: "--ranges")
        assertUserError(try CLI.run(args(dir.appendingPathComponent("search-g"), frozen: true) + ["--distill", "all"]),
                        contains: "add --train-weights")
        assertUserError(try CLI.run(args(dir.appendingPathComponent("search-g"), frozen: true) + ["--second-order"]),
                        contains: "add --train-weights")
        assertUserError(try CLI.run(args(dir.appendingPathComponent("search-e")) + ["--initial-logits", "0,1"]),
                        contains: "--initial-logits needs 3 numbers")
        assertUserError(try CLI.run(args(dir.appendingPathComponent("search-f")) + ["--initial-logits", "0,x,1"]),
                        contains: "--initial-logits needs 3 numbers")

        // A warm start from a plan inside the band, with a rate that cannot move the logits:
        // the searched plan is the starting one, and the plan says where it started.
        let uniformPlan = dir.appendingPathComponent("uniform-2.json"), startPlan = dir.appendingPathComponent("start.json")
        XCTAssertEqual(try CLI.run(["plan", "uniform", "--model", fp32.path, "--bits", "2", "--groups", "1", "--output", uniformPlan.path]).status, 0)
        var startJSON = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: uniformPlan)) as? [String: Any])
        var matrices = try XCTUnwrap(startJSON["matrices"] as? [String: [String: Any]])
        // Both FFN matrices of block 0 and its query at 4 bits: 2.525 average bits.
        for name in ["intermediate.dense", "output.dense", "attention.self.query"] {
            let key = "bert.encoder.layer.0.\(name).weight"
            XCTAssertNotNil(matrices[key], key)
            matrices[key]?["bits"] = [4]
        }
        startJSON["matrices"] = matrices
        startJSON["candidates"] = [2, 4]
        try JSONSerialization.data(withJSONObject: startJSON).write(to: startPlan)
        let w = dir.appendingPathComponent("search-w")
        let warm = try CLI.run(args(w, frozen: true) + ["--initial-plan", startPlan.path, "--initial-margin", "2", "--arch-lr", "1e-9"])
        XCTAssertEqual(warm.status, 0, warm.stderr)
        let planW = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: w.appendingPathComponent("plan.json"))) as? [String: Any])
        let bitsW = try XCTUnwrap(planW["matrices"] as? [String: [String: Any]]).mapValues { $0["bits"] as? [Int] }
        XCTAssertEqual(bitsW, matrices.mapValues { $0["bits"] as? [Int] })
        XCTAssertEqual(bitsW.values.filter { $0 == [4] }.count, 3)
        let notesW = try XCTUnwrap((planW["provenance"] as? [String: Any])?["notes"] as? [String: String])
        XCTAssertTrue(notesW["initial_plan"]?.hasPrefix("start.json (sha256 ") == true, "\(notesW)")
        XCTAssertTrue(notesW["initial_plan"]?.hasSuffix("(margin 2.0)") == true, "\(notesW)")
        assertUserError(try CLI.run(args(dir.appendingPathComponent("search-x"), frozen: true) + ["--initial-plan", dir.appendingPathComponent("none.json").path]),
                        contains: "--initial-plan")
        assertUserError(try CLI.run(args(dir.appendingPathComponent("search-x"), frozen: true) + ["--initial-plan", startPlan.path, "--bits", "0,3,4"]),
                        contains: "not among the candidates 0,3,4")
        assertUserError(try CLI.run(args(dir.appendingPathComponent("search-x"), frozen: true) + ["--initial-plan", startPlan.path, "--initial-margin", "0"]),
                        contains: "--initial-margin")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("search-x").path))

        // The default search: frozen weights and MSE ranges, architecture steps from the first
        // step, no training loss in the log; --freeze-weights says the same explicitly.
        let g = dir.appendingPathComponent("search-g")
        let frozen = try CLI.run(args(g, frozen: true))
        XCTAssertEqual(frozen.status, 0, frozen.stderr)
        let planG = try JSONSerialization.jsonObject(with: Data(contentsOf: g.appendingPathComponent("plan.json"))) as? [String: Any]
        let notesG = (planG?["provenance"] as? [String: Any])?["notes"] as? [String: String]
        XCTAssertEqual(notesG?["weights"], "frozen")
        XCTAssertEqual(notesG?["weight_ranges"], "mse")
        let explicit = dir.appendingPathComponent("search-i")
        XCTAssertEqual(try CLI.run(args(explicit, frozen: true) + ["--freeze-weights", "--ranges", "mse"]).status, 0)
        XCTAssertEqual(try Data(contentsOf: explicit.appendingPathComponent("plan.json")), try Data(contentsOf: g.appendingPathComponent("plan.json")))
        let frozenLog = try String(contentsOf: g.appendingPathComponent("search_log.jsonl"), encoding: .utf8).split(separator: "\n")
        let entry = try JSONSerialization.jsonObject(with: Data(frozenLog[0].utf8)) as! [String: Any]
        XCTAssertNil(entry["train_loss"])
        XCTAssertNotNil(entry["val_loss"], "an architecture step at step 0")
        // The architecture steps on the distilled loss (the fp32 --model as teacher): the same first
        // batch and noise, so its loss is the cross-entropy plus the layer terms, larger.
        let d = dir.appendingPathComponent("search-ad")
        let archDistilled = try CLI.run(args(d, frozen: true) + ["--arch-distill", "layers"])
        XCTAssertEqual(archDistilled.status, 0, archDistilled.stderr)
        let planD = try JSONSerialization.jsonObject(with: Data(contentsOf: d.appendingPathComponent("plan.json"))) as? [String: Any]
        XCTAssertEqual(((planD?["provenance"] as? [String: Any])?["notes"] as? [String: String])?["architecture_loss"], "distilled (layers)")
        XCTAssertEqual(notesG?["architecture_loss"], "cross-entropy")
        let configD = try JSONSerialization.jsonObject(with: Data(contentsOf: d.appendingPathComponent("search_config.json"))) as? [String: Any]
        XCTAssertEqual((configD?["architectureDistillation"] as? [String: Any])?["mode"] as? String, "layers")
        let distilledLog = try String(contentsOf: d.appendingPathComponent("search_log.jsonl"), encoding: .utf8).split(separator: "\n")
        let firstDistilled = try JSONSerialization.jsonObject(with: Data(distilledLog[0].utf8)) as! [String: Any]
        let ce = try XCTUnwrap(entry["val_loss"] as? Double), distilledLoss = try XCTUnwrap(firstDistilled["val_loss"] as? Double)
        XCTAssertGreaterThan(distilledLoss, ce + 1e-3)
        assertUserError(try CLI.run(args(dir.appendingPathComponent("search-h"), frozen: true) + ["--arch-start", "1"]), contains: "drop --arch-start")
    }

    /// Q-BERT end to end: sensitivity (resumable per subset, byte-identical after a kill),
    /// plan qbert from it, and DirectQ (evaluate --plan) of that plan.
    func testSensitivityQBERTPlanAndDirectQ() throws {
        let fp32 = dir.appendingPathComponent("fp32")
        XCTAssertEqual(try CLI.run(finetuneArgs(fp32)).status, 0)
        func args(_ out: URL) -> [String] {
            ["sensitivity", "--model", fp32.path, "--task", "sst2", "--train", train.path, "--subsets", "3", "--fraction", "0.1", "--max-rows", "20",
             "--max-iterations", "4", "--batch-size", "8", "--threads", "1", "--output", out.path]
        }
        let a = dir.appendingPathComponent("sens-a.json"), b = dir.appendingPathComponent("sens-b.json")
        let r = try CLI.run(args(a))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("Omega per block"), r.stdout)
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: a)) as! [String: Any]
        XCTAssertEqual(report["version"] as? Int, 1)
        XCTAssertEqual(report["complete"] as? Bool, true)
        XCTAssertEqual(report["subset_rows"] as? Int, 20, "10% of 240 rows, capped at 20")
        let eigen = report["eigenvalues"] as! [[[String: Any]]]
        XCTAssertEqual(eigen.count, 3)
        XCTAssertTrue(eigen.allSatisfy { $0.count == 2 }, "two encoder blocks")
        let omega = report["omega"] as! [Double]
        XCTAssertEqual(omega.count, 2)
        XCTAssertTrue(omega.allSatisfy { $0.isFinite && $0 > 0 }, "\(omega)")

        // Killed once the first subset is written, resumed: the same file.
        XCTAssertEqual(try CLI.killAfter(args(b), fileAppears: b), .uncaughtSignal)
        let partial = try JSONSerialization.jsonObject(with: Data(contentsOf: b)) as! [String: Any]
        XCTAssertEqual(partial["complete"] as? Bool, false)
        assertUserError(try CLI.run(args(b)), contains: "--resume")
        let resumed = try CLI.run(args(b) + ["--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(try Data(contentsOf: b), try Data(contentsOf: a))
        assertUserError(try CLI.run(args(b).map { $0 == "4" ? "5" : $0 } + ["--resume"]), contains: "another configuration")

        // plan qbert: the block with the larger Omega at 3 bits, the other at 2.
        let plan = dir.appendingPathComponent("qbert.json")
        let p = try CLI.run(["plan", "qbert", "--sensitivity", a.path, "--mix", "2/3", "--model", fp32.path, "--groups", "1",
                             "--output", plan.path])
        XCTAssertEqual(p.status, 0, p.stderr)
        let planObject = try JSONSerialization.jsonObject(with: Data(contentsOf: plan)) as! [String: Any]
        let matrices = planObject["matrices"] as! [String: [String: Any]]
        let high = omega[1] > omega[0] ? 1 : 0
        for (path, m) in matrices {
            XCTAssertEqual(m["bits"] as? [Int], [path.contains("layer.\(high).") ? 3 : 2], path)
        }
        assertUserError(try CLI.run(["plan", "qbert", "--sensitivity", a.path, "--mix", "3/2", "--model", fp32.path,
                                     "--output", plan.path]), contains: "--mix")
        assertUserError(try CLI.run(["plan", "qbert", "--sensitivity", train.path, "--mix", "2/3", "--model", fp32.path,
                                     "--output", plan.path]), contains: "not a sensitivity file")

        // DirectQ: the plan applied to the fp32 model, ranges calibrated on training data.
        let e = try CLI.run(["evaluate", "--model", fp32.path, "--task", "sst2", "--data", dev.path, "--plan", plan.path,
                             "--calibration", train.path, "--json"])
        XCTAssertEqual(e.status, 0, e.stderr)
        func accuracy(_ r: CLI.Result) throws -> Double {
            try XCTUnwrap(((try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["metrics"] as? [String: Double])?["accuracy"])
        }
        let direct = try accuracy(e)
        // Deterministic, and the calibration data matters: ranges calibrated on the evaluation
        // inputs instead give the same plan other activation ranges (the warning says so).
        XCTAssertEqual(try accuracy(try CLI.run(["evaluate", "--model", fp32.path, "--task", "sst2", "--data", dev.path, "--plan", plan.path,
                                                  "--calibration", train.path, "--json"])), direct)
        let onDev = try CLI.run(["evaluate", "--model", fp32.path, "--task", "sst2", "--data", dev.path, "--plan", plan.path, "--json"])
        XCTAssertTrue(onDev.stderr.contains("calibrating the activation ranges on the evaluation inputs"), onDev.stderr)
        XCTAssertTrue((0...100).contains(try accuracy(onDev)))
    }

    /// compare: every method at a whole and a half budget, the tables and pictures, and a second
    /// run that resumes (re-runs nothing).
    func testCompareRunsEveryMethodAndResumes() throws {
        let out = dir.appendingPathComponent("compare")
        let args = ["compare", "--model", model.path, "--task", "sst2", "--train", train.path, "--dev", dev.path,
                    "--budgets", "2,2.5", "--epochs", "1", "--lr", "1e-3", "--batch-size", "8", "--search-epochs", "2",
                    "--groups", "1", "--tolerance", "0.1", "--sensitivity-subsets", "2", "--sensitivity-iterations", "3", "--threads", "1",
                    "--output", out.path]
        let r = try CLI.run(args)
        XCTAssertEqual(r.status, 0, r.stderr)
        let results = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("results.json"))) as! [String: Any]
        let rows = try XCTUnwrap(results["rows"] as? [[String: Any]])
        let keys = rows.map { "\($0["method"]!)@\(($0["budget_bits"] as? Double).map { String($0) } ?? "-")" }
        XCTAssertEqual(keys, ["fp32@-", "qbert@2.5", "random@2.5", "aq-bert@2.5", "directq@2.0", "uniform@2.0", "random@2.0", "aq-bert@2.0"])
        // Every run's metric is the one its step wrote: the best epoch of its QAT (or fine-tuning),
        // the cached evaluation of fp32 and DirectQ.
        let runs = try XCTUnwrap(results["runs"] as? [[String: Any]])
        XCTAssertEqual(runs.count, 8)
        for run in runs {
            let place = out.appendingPathComponent(try XCTUnwrap(run["directory"] as? String))
            let file = place.pathExtension == "json" ? place : place.appendingPathComponent("eval_results.json")
            let written = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any])
            XCTAssertEqual((written["metrics"] as? [String: Double])?["accuracy"], run["metric"] as? Double, "\(run)")
        }
        let qbert = try XCTUnwrap(rows.first { $0["method"] as? String == "qbert" })
        XCTAssertEqual(qbert["avg_bits"] as? Double ?? 0, 2.5, accuracy: 1e-9)
        let uniform = try XCTUnwrap(rows.first { $0["method"] as? String == "uniform" })
        XCTAssertEqual(uniform["avg_bits"] as? Double ?? 0, 2, accuracy: 1e-9)
        let md = try String(contentsOf: out.appendingPathComponent("results.md"), encoding: .utf8)
        XCTAssertTrue(md.contains("| AQ-BERT (searched, QAT) | 2 |"), md)
        XCTAssertTrue(md.contains("AQ-BERT minus each baseline"), md)
        for picture in ["size_vs_metric.svg", "bitmap.svg", "groups.svg"] {
            let svg = try String(contentsOf: out.appendingPathComponent(picture), encoding: .utf8)
            XCTAssertTrue(svg.hasPrefix("<svg") && svg.hasSuffix("</svg>\n"), picture)
        }
        let bitmap = try String(contentsOf: out.appendingPathComponent("bitmap.svg"), encoding: .utf8)
        XCTAssertTrue(bitmap.contains("block 1") && bitmap.contains("FFN out"), bitmap)
        let commands = try String(contentsOf: out.appendingPathComponent("commands.sh"), encoding: .utf8)
        XCTAssertTrue(commands.contains(" retrain ") && commands.contains(" sensitivity ") && commands.contains(" search "), commands)
        XCTAssertTrue(commands.contains(" --ranges mse") && commands.contains(" --freeze-weights"),
                      "the search's settings are passed explicitly: \(commands)")
        XCTAssertEqual((results["settings"] as? [String: Any])?["search_ranges"] as? String, "mse")
        XCTAssertEqual((results["settings"] as? [String: Any])?["search_weights"] as? String, "frozen")
        XCTAssertEqual((results["settings"] as? [String: Any])?["search_arch_distill"] as? String, "none")
        XCTAssertFalse(commands.contains("--arch-distill"), commands)

        // Run again: every step is finished, nothing runs, the same results.
        let again = try CLI.run(args)
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertEqual(try String(contentsOf: out.appendingPathComponent("commands.sh"), encoding: .utf8), commands)
        let results2 = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("results.json"))) as! [String: Any]
        XCTAssertEqual((results2["rows"] as! [[String: Any]]).count, rows.count)
        // The search's distilled architecture loss is passed on to the search.
        let distilledOut = dir.appendingPathComponent("compare-ad")
        let distilled = try CLI.run(args.map { $0 == out.path ? distilledOut.path : $0 == "2,2.5" ? "2" : $0 }
                                    + ["--methods", "aq-bert", "--search-arch-distill", "layers"])
        XCTAssertEqual(distilled.status, 0, distilled.stderr)
        let distilledCommands = try String(contentsOf: distilledOut.appendingPathComponent("commands.sh"), encoding: .utf8)
        XCTAssertTrue(distilledCommands.contains(" search ") && distilledCommands.contains(" --arch-distill layers"), distilledCommands)
        assertUserError(try CLI.run(args.map { $0 == "2,2.5" ? "2,x" : $0 }), contains: "--budgets")
        assertUserError(try CLI.run(args + ["--methods", "fp32,qbrt"]), contains: "--methods")
    }

    /// Sentence pairs on a model with one token type: a clear error, not a trap in the kernel.
    func testPairsOnASingleTokenTypeModelAreRefused() throws {
        let c = model.appendingPathComponent("config.json")
        var object = try JSONSerialization.jsonObject(with: Data(contentsOf: c)) as! [String: Any]
        object["type_vocab_size"] = 1
        try JSONSerialization.data(withJSONObject: object).write(to: c)
        let w = model.appendingPathComponent("model.safetensors")
        let file = try SafeTensorsFile(url: w)
        var tensors: [(name: String, shape: [Int], values: [Float])] = []
        for n in file.names {
            var shape = file.info(n)!.shape, values = try file.floats(n)
            if n.hasSuffix("token_type_embeddings.weight") { shape = [1, shape[1]]; values = Array(values.prefix(shape[1])) }
            tensors.append((n, shape, values))
        }
        try SafeTensorsWriter.write(tensors, to: w)
        let mnli = dir.appendingPathComponent("mnli.jsonl")
        try "{\"premise\": \"the movie is good\", \"hypothesis\": \"a movie\", \"label\": \"neutral\"}\n".write(to: mnli, atomically: true, encoding: .utf8)
        assertUserError(try CLI.run(["finetune", "--model", model.path, "--task", "mnli", "--train", mnli.path, "--dev", mnli.path,
                                     "--output", dir.appendingPathComponent("o").path]), contains: "type_vocab_size")
    }

    func testNewUserMistakes() throws {
        let out = dir.appendingPathComponent("x").path
        assertUserError(try CLI.run(["finetune", "--model", model.path, "--task", "sst3", "--train", train.path, "--dev", dev.path,
                                     "--output", out]), contains: "sst3")
        // A TSV passed as CoNLL.
        assertUserError(try CLI.run(["finetune", "--model", model.path, "--task", "conll2003", "--train", train.path,
                                     "--dev", dev.path, "--output", out]), contains: "TSV")
        let empty = dir.appendingPathComponent("empty.tsv")
        try Data().write(to: empty)
        assertUserError(try CLI.run(["finetune", "--model", model.path, "--task", "sst2", "--train", empty.path, "--dev", dev.path,
                                     "--output", out]), contains: "empty")
        assertUserError(try CLI.run(["finetune", "--model", model.path, "--task", "sst2", "--train", train.path,
                                     "--dev", dir.appendingPathComponent("missing-dev.tsv").path, "--output", out]),
                        contains: "missing-dev.tsv")
        assertUserError(try CLI.run(["evaluate", "--model", model.path, "--task", "sst2", "--data", dev.path]),
                        contains: "fine-tune it first")
    }
}
