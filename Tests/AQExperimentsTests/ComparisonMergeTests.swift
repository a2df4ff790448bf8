import Foundation
import XCTest

@testable import AQExperiments

/// Comparisons of the same settings over different seeds (or a seed's budgets and methods in
/// several parts), merged: the same table as one comparison over all the seeds, and refusals of
/// parts that are not the same comparison or leave a seed out.
final class ComparisonMergeTests: XCTestCase {
    func run(_ m: ComparisonMethod, _ b: Double?, seed: UInt64, metric: Double, directory: String = "x") -> ComparisonRun {
        ComparisonRun(method: m, budgetBits: b, seed: seed, averageBits: b ?? 32, sizeMiB: b ?? 32, prunedFraction: 0.1, metric: metric,
                      directory: directory)
    }

    func seedRuns(_ seed: UInt64, _ offset: Double) -> [ComparisonRun] {
        [run(.fp32, nil, seed: seed, metric: 85.55, directory: "seed-\(seed)/fp32"),
         run(.uniform, 2, seed: seed, metric: 80 + offset, directory: "seed-\(seed)/uniform-2"),
         run(.aqBERT, 2, seed: seed, metric: 82 + 2 * offset, directory: "seed-\(seed)/aq-bert-2"),
         run(.random, 2, seed: seed, metric: 79 - offset, directory: "seed-\(seed)/random-2")]
    }

    let settings = ["epochs": "2", "model": "/m"]

    func part(_ seeds: [UInt64]) -> ComparisonResults {
        var r = ComparisonResults(task: "sst2", metric: "accuracy", budgets: [2], seeds: seeds, settings: settings,
                                  runs: seeds.flatMap { seedRuns($0, Double($0 - 42)) })
        r.tolerance = 0.02
        return r
    }

    func testMergedPartsGiveTheTableOfOneComparisonOverAllSeeds() throws {
        let whole = part([42, 43, 44])
        let merged = try ComparisonResults.merged([(part([43]), "b/results.json"), (part([42]), "a/results.json"), (part([44]), "c/results.json")])
        XCTAssertEqual(merged.seeds, [42, 43, 44])
        XCTAssertEqual(merged.rows, whole.rows)
        XCTAssertEqual(merged.markdown(), whole.markdown())
        XCTAssertEqual(merged.pairedDifferences(.uniform, budget: 2), [2, 3, 4])
        XCTAssertEqual(merged.runs.first { $0.seed == 42 && $0.method == .aqBERT }?.directory, "a/seed-42/aq-bert-2",
                       "each run's directory says which part it came from")
        XCTAssertEqual(merged.runs.count, 12)
    }

    func testPartsOfAnotherComparisonOrWithTheSameRunAreRefused() {
        var other = part([43])
        other.settings["epochs"] = "3"
        XCTAssertThrowsError(try ComparisonResults.merged([(part([42]), "a/results.json"), (other, "b/results.json")])) {
            XCTAssertEqual("\($0)", "b/results.json is another comparison than a/results.json: its setting epochs is 3, not 2")
        }
        var lacking = part([43])
        lacking.runs.removeAll { $0.method == .uniform }
        XCTAssertThrowsError(try ComparisonResults.merged([(part([42]), "a/results.json"), (lacking, "b/results.json")])) {
            XCTAssertEqual("\($0)", "no part holds seed 43's uniform run at 2 bits, which the other seeds have: add the part that holds it, or leave uniform out")
        }
        XCTAssertThrowsError(try ComparisonResults.merged([(part([42, 43]), "a/results.json"), (part([43]), "b/results.json")])) {
            XCTAssertTrue("\($0)".hasPrefix("seed 43's fp32 run is in two parts (a/seed-43/fp32 and b/seed-43/fp32)"), "\($0)")
        }
        XCTAssertThrowsError(try ComparisonResults.merged([])) { XCTAssertTrue("\($0)".hasPrefix("nothing to merge"), "\($0)") }
    }

    /// A results.json written before `compare` recorded search_arch_distill ran with "none": it
    /// merges with a part that records "none" and not with one that records "all".
    func testAPartWithoutALaterSettingRanWithItsEarlierValue() throws {
        var recorded = part([43])
        recorded.settings["search_arch_distill"] = "none"
        let merged = try ComparisonResults.merged([(part([42]), "a/results.json"), (recorded, "b/results.json")])
        XCTAssertEqual(merged.settings["search_arch_distill"], "none")
        XCTAssertEqual(merged.seeds, [42, 43])
        recorded.settings["search_arch_distill"] = "all"
        XCTAssertThrowsError(try ComparisonResults.merged([(part([42]), "a/results.json"), (recorded, "b/results.json")])) {
            XCTAssertEqual("\($0)", "b/results.json is another comparison than a/results.json: its setting search_arch_distill is all, not none")
        }
    }

    /// A seed's runs from several parts: the baselines of a run that searched otherwise, AQ-BERT
    /// and the random control at each budget from their own runs. The table is the one comparison's.
    func testASeedsRunsFromSeveralPartsGiveTheWholeTable() throws {
        func twoBudgets(_ seeds: [UInt64]) -> ComparisonResults {
            var r = ComparisonResults(task: "sst2", metric: "accuracy", budgets: [2, 3], seeds: seeds, settings: settings,
                                      runs: seeds.flatMap { s in
                                          seedRuns(s, Double(s - 42)) + seedRuns(s, Double(s - 42) + 1).filter { $0.method != .fp32 }
                                              .map { var r = $0; r.budgetBits = 3; r.directory += "-3"; return r }
                                      })
            r.tolerance = 0.02
            return r
        }
        var whole = twoBudgets([42, 43])
        whole.settings["search_arch_distill"] = "none"
        var baselines = twoBudgets([43])
        baselines.settings["search_arch_distill"] = "all"
        baselines.tolerance = 0.05
        baselines = baselines.keeping([.fp32, .uniform])
        var atTwo = twoBudgets([43])
        atTwo.runs.removeAll { $0.budgetBits != 2 || $0.method == .uniform || $0.method == .fp32 }
        atTwo.budgets = [2]
        var atThree = twoBudgets([43])
        atThree.runs.removeAll { $0.budgetBits != 3 || $0.method == .uniform || $0.method == .fp32 }
        atThree.budgets = [3]
        let parts = [(twoBudgets([42]), "a/results.json"), (atThree, "d/results.json"), (baselines, "b/results.json"), (atTwo, "c/results.json")]
        let merged = try ComparisonResults.merged(parts)
        XCTAssertEqual(merged.budgets, [2, 3])
        XCTAssertEqual(merged.rows, whole.rows)
        XCTAssertEqual(merged.markdown(), whole.markdown())
        XCTAssertEqual(merged.settings["search_arch_distill"], "none", "the setting of the part whose AQ-BERT runs were left out is not the table's")
        XCTAssertEqual(merged.tolerance, 0.02)
        XCTAssertEqual(merged.runs.first { $0.seed == 43 && $0.method == .random && $0.budgetBits == 3 }?.directory, "d/seed-43/random-2-3")

        // The same parts with the searched runs of the otherwise-searched part: refused.
        var searched = twoBudgets([43])
        searched.settings["search_arch_distill"] = "all"
        searched.runs.removeAll { $0.budgetBits != 2 || $0.method != .aqBERT }
        atTwo.runs.removeAll { $0.method == .aqBERT }
        XCTAssertThrowsError(try ComparisonResults.merged(Array(parts.dropLast()) + [(atTwo, "c/results.json"), (searched, "e/results.json")])) {
            XCTAssertEqual("\($0)", "e/results.json is another comparison than a/results.json: its setting search_arch_distill is all, not none")
        }
        // The sensitivity binds only parts holding Q-BERT-MP runs.
        XCTAssertEqual(ComparisonResults.methods(dependingOn: "sensitivity"), [.qbert])
        XCTAssertEqual(ComparisonResults.methods(dependingOn: "search_candidates"), [.aqBERT, .random])
        XCTAssertEqual(ComparisonResults.methods(dependingOn: "epochs"), Set(ComparisonMethod.allCases))
    }
}
