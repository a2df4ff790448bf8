import Foundation
import XCTest

/// `aqbert merge-comparisons`: compare runs over different seeds as one table, and its refusals.
final class MergeComparisonsCommandTests: XCTestCase {
    /// A compare results.json of one seed (fp32, uniform and AQ-BERT at 2 bits).
    func writePart(in dir: URL, seed: Int, aqBERT: Double, uniform: Double, epochs: String = "2") throws -> URL {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        func run(_ method: String, _ budget: String, _ bits: Double, _ metric: Double) -> String {
            "{\"method\": \"\(method)\", \"budget_bits\": \(budget), \"seed\": \(seed), \"avg_bits\": \(bits), \"size_mib\": \(bits), \"pruned_fraction\": 0, \"metric\": \(metric), \"directory\": \"seed-\(seed)/\(method)\"}"
        }
        let json = """
            {"version": 1, "task": "sst2", "metric": "accuracy", "budgets": [2], "seeds": [\(seed)], "tolerance": 0.02,
             "settings": {"epochs": "\(epochs)"}, "rows": [],
             "runs": [\(run("fp32", "null", 32, 85.55)), \(run("uniform", "2", 2, uniform)), \(run("aq-bert", "2", 2.01, aqBERT))]}
            """
        let url = dir.appendingPathComponent("results.json")
        try json.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    func testMergesSeedsIntoOneTableWithPerSeedMargins() throws {
        let dir = try Scratch.directory()
        let a = try writePart(in: dir.appendingPathComponent("a"), seed: 42, aqBERT: 84, uniform: 82)
        let b = try writePart(in: dir.appendingPathComponent("b"), seed: 43, aqBERT: 83, uniform: 83.5)
        let out = dir.appendingPathComponent("merged")
        let r = try CLI.run(["merge-comparisons", "--results", a.path, "--results", b.path, "--output", out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("seeds 42, 43, 6 runs"), r.stdout)
        let md = try String(contentsOf: out.appendingPathComponent("results.md"), encoding: .utf8)
        XCTAssertTrue(md.contains("| AQ-BERT (searched, QAT) | 2 | 2.010 | 2.010 | 0.0% | 83.50 ± 0.71 | 2 |"), md)
        XCTAssertTrue(md.contains("| 2 | Q-BERT (uniform QAT) | +0.75 | +2.00, -0.50 (sd 1.77) |"), md)
        let merged = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("results.json"))) as? [String: Any]
        XCTAssertEqual(merged?["seeds"] as? [Int], [42, 43])
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("size_vs_metric.svg").path))

        // Merging again into the same folder, a part of other settings, a file that is not a results.json: refused.
        assertUserError(try CLI.run(["merge-comparisons", "--results", a.path, "--results", b.path, "--output", out.path]),
                        contains: "holds a results.json already")
        let c = try writePart(in: dir.appendingPathComponent("c"), seed: 44, aqBERT: 80, uniform: 80, epochs: "3")
        assertUserError(try CLI.run(["merge-comparisons", "--results", a.path, "--results", c.path, "--output", dir.appendingPathComponent("m2").path]),
                        contains: "its setting epochs is 3, not 2")
        let bad = dir.appendingPathComponent("bad.json")
        try "{\"version\": 1}".write(to: bad, atomically: true, encoding: .utf8)
        assertUserError(try CLI.run(["merge-comparisons", "--results", a.path, "--results", bad.path, "--output", dir.appendingPathComponent("m3").path]),
                        contains: "is not a compare results.json")
        assertUserError(try CLI.run(["merge-comparisons", "--results", a.path, "--results", a.path, "--output", dir.appendingPathComponent("m4").path]),
                        contains: "is in two parts")
    }

    /// FILE:METHODS takes only those methods' runs of a part: a seed's baselines from one compare
    /// run and its AQ-BERT run from another.
    func testAPartCanGiveOnlySomeMethods() throws {
        let dir = try Scratch.directory()
        let a = try writePart(in: dir.appendingPathComponent("a"), seed: 42, aqBERT: 84, uniform: 82)
        let b = try writePart(in: dir.appendingPathComponent("b"), seed: 43, aqBERT: 70, uniform: 83.5)
        let c = try writePart(in: dir.appendingPathComponent("c"), seed: 43, aqBERT: 83, uniform: 60)
        let out = dir.appendingPathComponent("merged")
        let r = try CLI.run(["merge-comparisons", "--results", a.path, "--results", b.path + ":fp32,uniform",
                             "--results", c.path + ":aq-bert", "--output", out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let md = try String(contentsOf: out.appendingPathComponent("results.md"), encoding: .utf8)
        XCTAssertTrue(md.contains("| 2 | Q-BERT (uniform QAT) | +0.75 | +2.00, -0.50 (sd 1.77) |"), md)

        assertUserError(try CLI.run(["merge-comparisons", "--results", a.path, "--results", b.path + ":fp32,uniform",
                                     "--output", dir.appendingPathComponent("m1").path]),
                        contains: "no part holds seed 43's aq-bert run at 2 bits")
        assertUserError(try CLI.run(["merge-comparisons", "--results", a.path, "--results", b.path + ":fp32,uniforme",
                                     "--output", dir.appendingPathComponent("m2").path]),
                        contains: "after ':' give methods from")
        assertUserError(try CLI.run(["merge-comparisons", "--results", a.path, "--results", b.path + ":qbert",
                                     "--output", dir.appendingPathComponent("m3").path]),
                        contains: "holds no qbert run")
    }
}
