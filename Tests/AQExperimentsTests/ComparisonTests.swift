import AQBert
import AQQuant
import Foundation
import XCTest

@testable import AQExperiments

/// compare's summary: means and sample spreads over seeds, table order, margins, flags, pictures.
final class ComparisonTests: XCTestCase {
    func run(_ m: ComparisonMethod, _ b: Double?, seed: UInt64, bits: Double, metric: Double) -> ComparisonRun {
        ComparisonRun(method: m, budgetBits: b, seed: seed, averageBits: bits, sizeMiB: bits, prunedFraction: 0, metric: metric,
                      directory: "x")
    }

    func testSummaryTableAndMargins() {
        let runs = [
            run(.fp32, nil, seed: 1, bits: 32, metric: 90),
            run(.uniform, 2, seed: 1, bits: 2, metric: 50), run(.uniform, 2, seed: 2, bits: 2, metric: 54),
            run(.aqBERT, 2, seed: 1, bits: 2.01, metric: 80), run(.aqBERT, 2, seed: 2, bits: 1.99, metric: 84),
            run(.random, 2, seed: 1, bits: 2.01, metric: 79), run(.random, 2, seed: 2, bits: 1.99, metric: 81),
            run(.aqBERT, 3, seed: 1, bits: 2.5, metric: 85),
            run(.qbert, 3, seed: 1, bits: 3, metric: 86),
        ]
        let r = ComparisonResults(task: "sst2", metric: "accuracy", budgets: [2, 3], seeds: [1, 2],
                                  settings: ["arch_optimizer": "adam", "arch_lr": "0.01"], runs: runs)
        XCTAssertEqual(r.rows.map(\.method), [.fp32, .qbert, .aqBERT, .uniform, .random, .aqBERT], "fp32, then budgets largest first")
        let u = r.row(.uniform, budget: 2)!
        XCTAssertEqual(u.metricMean, 52)
        XCTAssertEqual(u.metricStd, 8.0.squareRoot(), accuracy: 1e-12, "sample standard deviation")
        XCTAssertEqual(r.row(.aqBERT, budget: 3)!.metricStd, 0)
        let md = r.markdown()
        XCTAssertTrue(md.contains("| AQ-BERT (searched, QAT) | 2 | 2.000 | 2.000 | 0.0% | 82.00 ± 2.83 | 2 |"), md)
        XCTAssertTrue(md.contains("| 2 | Q-BERT (uniform QAT) | +30.00 |"), md)
        XCTAssertTrue(md.contains("| 2 | random plan (AQ-BERT's histograms, QAT) | +2.00 | +1.00, +3.00 (sd 1.41) |"), md)
        XCTAssertTrue(md.contains("| 3 | Q-BERT-MP (Hessian mixed precision, QAT) | -1.00 | -1.00 |"), md)
        XCTAssertEqual(r.pairedDifferences(.uniform, budget: 2), [30, 30])
        XCTAssertEqual(r.pairedDifferences(.random, budget: 3), [], "no random run at 3 bits: nothing to pair")
        XCTAssertTrue(md.contains("Note: the AQ-BERT plans at 3 bits average 2.500 bits"), md)
        XCTAssertFalse(md.contains("plans at 2 bits"), "inside the band: no note")
        XCTAssertTrue(md.hasSuffix("\nSeeds: 1, 2. Settings: arch_lr 0.01; arch_optimizer adam.\n"), md)
        let svg = r.sizeSVG()
        XCTAssertTrue(svg.hasPrefix("<svg") && svg.hasSuffix("</svg>\n"))
        XCTAssertTrue(svg.contains("fp32 (32.0 MiB): 90.00"))
        XCTAssertFalse(svg.contains("nan"))
    }

    func testMethodSettingsPerBudget() {
        XCTAssertEqual(ComparisonMethod.uniform.setting(forBudget: 2), "2-bit")
        XCTAssertNil(ComparisonMethod.uniform.setting(forBudget: 2.5))
        XCTAssertEqual(ComparisonMethod.qbert.setting(forBudget: 2.5), "2/3")
        XCTAssertEqual(ComparisonMethod.qbert.setting(forBudget: 3), "2/4")
        XCTAssertNil(ComparisonMethod.qbert.setting(forBudget: 2))
        XCTAssertNil(ComparisonMethod.qbert.setting(forBudget: 2.25))
        XCTAssertEqual(ComparisonMethod.aqBERT.setting(forBudget: 2.25), "2.25 bits")
    }

    func testGroupMapDrawsEveryGroup() throws {
        var c = BertConfig.tiny
        c.numHiddenLayers = 2
        let model = BertTaskModel(config: c, architecture: .base)
        var plan = try BitPlan.uniform(model: model, bits: 2, groups: 4, candidates: [0, 2, 4])
        plan.matrices["bert.encoder.layer.1.attention.self.key.weight"]!.bits = [0, 4, 2, 0]
        let svg = BitMapPicture.groupsSVG(plan, title: "t")
        XCTAssertEqual(svg.components(separatedBy: "<rect").count - 1, 1 + 11 + 4 + 3,
                       "background, 11 uniform matrices as one run each, 4 runs for [0, 4, 2, 0], legend")
        XCTAssertEqual(svg.components(separatedBy: "fill=\"#ffffff\" stroke=\"#bbb\"").count - 1, 2, "the two pruned groups")
        XCTAssertTrue(svg.contains(">block 1 K<"))
    }

    func testBitMapCellsByPath() {
        XCTAssertEqual(BitMapPicture.cell(of: "bert.encoder.layer.3.attention.self.query.weight")?.column, 0)
        XCTAssertEqual(BitMapPicture.cell(of: "bert.encoder.layer.3.attention.output.dense.weight")?.column, 3)
        XCTAssertEqual(BitMapPicture.cell(of: "bert.encoder.layer.3.output.dense.weight")?.column, 5)
        XCTAssertEqual(BitMapPicture.cell(of: "bert.encoder.layer.11.intermediate.dense.weight")?.block, 11)
        XCTAssertEqual(BitMapPicture.cell(of: "distilbert.transformer.layer.2.ffn.lin1.weight")?.column, 4)
        XCTAssertEqual(BitMapPicture.cell(of: "distilbert.transformer.layer.2.attention.out_lin.weight")?.column, 3)
        XCTAssertNil(BitMapPicture.cell(of: "bert.pooler.dense.weight"))
    }
}
