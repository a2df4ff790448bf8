import Foundation
import XCTest

@testable import AQExperiments

/// Comparisons of the same settings over different seeds, merged: the same table as one
/// comparison over all the seeds, and refusals of parts that are not the same comparison.
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
        let merged = try ComparisonResults.merged([(part([43]), "b"), (part([42]), "a"), (part([44]), "c")])
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
        XCTAssertThrowsError(try ComparisonResults.merged([(part([42]), "a"), (other, "b")])) {
            XCTAssertEqual("\($0)", "b is another comparison than a: its setting epochs is 3, not 2")
        }
        var budgets = part([43])
        budgets.budgets = [2, 3]
        XCTAssertThrowsError(try ComparisonResults.merged([(part([42]), "a"), (budgets, "b")])) {
            XCTAssertTrue("\($0)".contains("its budgets is 2,3, not 2"), "\($0)")
        }
        XCTAssertThrowsError(try ComparisonResults.merged([(part([42, 43]), "a"), (part([43]), "b")])) {
            XCTAssertTrue("\($0)".hasPrefix("seed 43's fp32 run is in two parts (a/seed-43/fp32 and b/seed-43/fp32)"), "\($0)")
        }
        XCTAssertThrowsError(try ComparisonResults.merged([])) { XCTAssertTrue("\($0)".hasPrefix("nothing to merge"), "\($0)") }
    }

    /// A results.json written before `compare` recorded search_arch_distill ran with "none": it
    /// merges with a part that records "none" and not with one that records "all".
    func testAPartWithoutALaterSettingRanWithItsEarlierValue() throws {
        var recorded = part([43])
        recorded.settings["search_arch_distill"] = "none"
        let merged = try ComparisonResults.merged([(part([42]), "a"), (recorded, "b")])
        XCTAssertEqual(merged.settings["search_arch_distill"], "none")
        XCTAssertEqual(merged.seeds, [42, 43])
        recorded.settings["search_arch_distill"] = "all"
        XCTAssertThrowsError(try ComparisonResults.merged([(part([42]), "a"), (recorded, "b")])) {
            XCTAssertEqual("\($0)", "b is another comparison than a: its setting search_arch_distill is all, not none")
        }
    }
}
