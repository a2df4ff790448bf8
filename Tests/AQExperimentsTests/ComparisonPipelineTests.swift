import AQBert
import AQQuant
import AQTasks
import Foundation
import XCTest

@testable import AQExperiments

/// The comparison pipeline with a fake command runner that writes what each aqbert command
/// would: the order of the steps, skipping what is finished, resuming a killed step, and a
/// failing step.
final class ComparisonPipelineTests: XCTestCase {
    static let tinyModel = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("AQBertTests/Fixtures/tiny-bert-seqcls")

    /// Records every command and writes its outputs; `failing` makes a command containing it fail.
    final class FakeRunner: CommandRunner {
        var commands: [[String]] = []
        var failing: String?
        let planJSON: Data

        init() throws {
            let (m, _) = try BertTaskModel.load(directory: ComparisonPipelineTests.tinyModel)
            planJSON = try BitPlan.uniform(model: m, bits: 2, groups: 1, candidates: [0, 2, 4]).jsonData()
        }

        func run(_ arguments: [String], capture: Bool) throws -> String {
            commands.append(arguments)
            if let failing, arguments.joined(separator: " ").contains(failing) { throw ComparisonError("step failed: \(arguments[0])") }
            let output = arguments.firstIndex(of: "--output").map { URL(fileURLWithPath: arguments[$0 + 1]) }
            // A metric that tells the steps apart: 60 + the step's folder name length.
            let metric = 60 + Double(output?.lastPathComponent.count ?? 0)
            switch arguments[0] {
            case "evaluate":
                return "{\"metrics\":{\"accuracy\":\(arguments.contains("--plan") ? 55.5 : 81.25)}}\n"
            case "plan":
                try planJSON.write(to: output!)
            case "search":
                try FileManager.default.createDirectory(at: output!, withIntermediateDirectories: true)
                try planJSON.write(to: output!.appendingPathComponent("plan.json"))
            case "finetune", "retrain":
                try FileManager.default.createDirectory(at: output!, withIntermediateDirectories: true)
                try Data("{\"metrics\":{\"accuracy\":\(metric)}}".utf8).write(to: output!.appendingPathComponent("eval_results.json"))
            default:
                XCTFail("unexpected command \(arguments)")
            }
            return ""
        }
    }

    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("aqbert-pipeline-\(UUID().uuidString)")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func pipeline(_ runner: FakeRunner, methods: [ComparisonMethod] = [.fp32, .directQ, .uniform, .random, .aqBERT]) -> ComparisonPipeline {
        var s = ComparisonSettings(model: Self.tinyModel, task: .sst2, train: dir.appendingPathComponent("train.tsv"),
                                   dev: dir.appendingPathComponent("dev.tsv"), budgets: [2.0], seeds: [7, 8], methods: methods,
                                   fineTuned: true)
        s.search = ["--bits", "0,2,4", "--groups", "1"]
        s.recipe = ["--distill", "all"]
        s.groups = 1
        return ComparisonPipeline(settings: s, output: dir, steps: ComparisonSteps(runner: runner, threads: 1, progress: { _ in }),
                                  progress: { _ in })
    }

    func testRunsEachStepOnceInOrderAndSkipsWhatIsFinished() throws {
        let runner = try FakeRunner()
        let results = try pipeline(runner).run()
        let kinds = runner.commands.map { $0[0] == "plan" ? "plan " + $0[1] : $0[0] }
        // Seed 7: fp32 evaluated once, then per seed: uniform plan, DirectQ, uniform QAT, search,
        // AQ-BERT QAT, random plan, random QAT.
        let perSeed = ["plan uniform", "evaluate", "retrain", "search", "retrain", "plan random", "retrain"]
        XCTAssertEqual(kinds, ["evaluate"] + perSeed + perSeed)
        XCTAssertTrue(runner.commands.filter { $0[0] == "retrain" }.allSatisfy { $0.contains("--distill") && $0.suffix(2) == ["--threads", "1"] },
                      "every QAT gets the recipe and the threads")
        XCTAssertEqual(runner.commands.first { $0[0] == "search" }.map { Array($0[7...]) },
                       ["--target-bits", "2.0", "--bits", "0,2,4", "--groups", "1", "--seed", "7", "--output",
                        dir.appendingPathComponent("seed-7/search-2").path, "--threads", "1"])
        XCTAssertEqual(results.runs.count, 1 + 2 * 4)
        XCTAssertEqual(results.row(.fp32, budget: nil)?.metricMean, 81.25)
        XCTAssertEqual(results.row(.directQ, budget: 2)?.metricMean, 55.5)
        XCTAssertEqual(results.row(.uniform, budget: 2)?.metricMean, 60 + Double("uniform-2".count))
        XCTAssertEqual(results.row(.aqBERT, budget: 2)?.seeds, 2)
        let written = try JSONDecoder().decode(ComparisonResults.self, from: Data(contentsOf: dir.appendingPathComponent("results.json")))
        XCTAssertEqual(written, results)
        for file in ["results.md", "size_vs_metric.svg", "bitmap.svg", "groups.svg"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent(file).path), file)
        }
        // Everything is finished: a second run runs nothing and gives the same results.
        let again = try FakeRunner()
        XCTAssertEqual(try pipeline(again).run(), results)
        XCTAssertEqual(again.commands, [])
    }

    func testAKilledStepResumesOrStartsAgainClean() throws {
        let runner = try FakeRunner()
        // The uniform QAT of seed 7 was killed after a checkpoint, the search of seed 8 before its first.
        let killed = dir.appendingPathComponent("seed-7/uniform-2"), early = dir.appendingPathComponent("seed-8/search-2")
        for d in [killed, early] { try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true) }
        try Data("{\"checkpoint\":\"checkpoint-4\"}".utf8).write(to: killed.appendingPathComponent("last-checkpoint.json"))
        try Data("partial".utf8).write(to: early.appendingPathComponent("stale.txt"))
        try pipeline(runner, methods: [.uniform, .aqBERT]).run()
        let uniform = try XCTUnwrap(runner.commands.first { $0.contains(killed.path) })
        XCTAssertEqual(Array(uniform.suffix(3)), ["--resume", "--threads", "1"])
        let search = try XCTUnwrap(runner.commands.first { $0.contains(early.path) })
        XCTAssertFalse(search.contains("--resume"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: early.appendingPathComponent("stale.txt").path), "started again in a clean folder")
    }

    func testAFailingStepStopsTheComparisonAndKeepsWhatFinished() throws {
        let runner = try FakeRunner()
        runner.failing = "seed-8/search-2"
        XCTAssertThrowsError(try pipeline(runner).run()) { XCTAssertEqual($0 as? ComparisonError, ComparisonError("step failed: search")) }
        let written = try JSONDecoder().decode(ComparisonResults.self, from: Data(contentsOf: dir.appendingPathComponent("results.json")))
        // fp32, and seed 7 complete; seed 8 up to its uniform QAT.
        XCTAssertEqual(written.runs.map(\.method), [.fp32, .directQ, .uniform, .aqBERT, .random, .directQ, .uniform])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("seed-8/search-2/\(ComparisonSteps.doneMarker)").path))
        // Fixed, the run continues where it stopped.
        let rerun = try FakeRunner()
        try pipeline(rerun).run()
        XCTAssertEqual(rerun.commands.map { $0[0] == "plan" ? "plan " + $0[1] : $0[0] }, ["search", "retrain", "plan random", "retrain"])
    }

    /// The jobs of a work queue: what each reads, and a queue that runs them in another order
    /// (the last ready job first, as a rank free at another time would) leaves the files of a
    /// sequential run, so that the publishing run afterwards runs nothing and gives its results.
    func testJobsRunInAnyOrderTheirDependenciesAllow() throws {
        let p = pipeline(try FakeRunner())
        let jobs = try p.jobs()
        XCTAssertEqual(jobs.map(\.name), [7, 8].flatMap { seed in
            ["seed \(seed): fp32", "seed \(seed): uniform plan and DirectQ at 2 bits", "seed \(seed): uniform QAT at 2 bits",
             "seed \(seed): AQ-BERT search at 2 bits", "seed \(seed): AQ-BERT QAT at 2 bits", "seed \(seed): random plan QAT at 2 bits"]
        })
        XCTAssertEqual(jobs.map(\.dependencies), [[], [0], [1], [0], [3], [3], [], [6], [7], [6], [9], [9]])

        let sequentialDir = dir!
        let sequential = try p.run()
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("aqbert-pipeline-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let runner = try FakeRunner()
        var order: [Int] = []
        try pipeline(runner).runJobs { dependencies, run in
            var done = Set<Int>()
            while done.count < dependencies.count {
                let j = try XCTUnwrap(dependencies.indices.last { !done.contains($0) && dependencies[$0].allSatisfy(done.contains) })
                try run(j)
                done.insert(j)
                order.append(j)
            }
        }
        XCTAssertEqual(order, [6, 9, 11, 10, 7, 8, 0, 3, 5, 4, 1, 2])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("results.json").path), "the queue publishes nothing")
        let publishing = try FakeRunner()
        XCTAssertEqual(try pipeline(publishing).run().runs.map(\.metric), sequential.runs.map(\.metric))
        XCTAssertEqual(publishing.commands, [])
        for file in ["seed-8/plans/random-2.json", "seed-7/aq-bert-2/eval_results.json", "seed-8/directq-2.json"] {
            XCTAssertEqual(try Data(contentsOf: dir.appendingPathComponent(file)), try Data(contentsOf: sequentialDir.appendingPathComponent(file)), file)
        }
        try? FileManager.default.removeItem(at: sequentialDir)
    }
}
