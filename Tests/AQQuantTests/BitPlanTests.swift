import AQBert
import Foundation
import XCTest

@testable import AQQuant

final class BitPlanTests: XCTestCase {
    static var tinyModel: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("AQBertTests/Fixtures/tiny-bert-seqcls")
    }

    func model() throws -> BertTaskModel { try BertTaskModel.load(directory: Self.tinyModel).model }

    /// The tiny model: 2 layers x (Q, K, V, O: 32x32; FFN in 37x32; FFN out 32x37).
    func testSizeFormulaAgainstAHandCount() throws {
        let m = try model()
        XCTAssertEqual(QuantizableMatrices.of(m).count, 12)
        let plan = try BitPlan.uniform(model: m, bits: 4, groups: 1, candidates: [0, 2, 4])
        let weights = 2 * (4 * 32 * 32 + 37 * 32 + 32 * 37)
        XCTAssertEqual(plan.weightCount, weights)
        XCTAssertEqual(plan.sizeMiB, Double(weights * 4) / 8 / 1_048_576)
        XCTAssertEqual(plan.averageBits, 4)
        XCTAssertEqual(plan.prunedFraction, 0)
        // Prune layer 0's query (1024 weights), set layer 1's FFN-in to 2 bits (1184 weights).
        var p = plan
        p.matrices["bert.encoder.layer.0.attention.self.query.weight"]!.bits = [0]
        p.matrices["bert.encoder.layer.1.intermediate.dense.weight"]!.bits = [2]
        let bits = (weights - 1024 - 1184) * 4 + 1184 * 2
        XCTAssertEqual(p.sizeMiB, Double(bits) / 8 / 1_048_576)
        XCTAssertEqual(p.averageBits, Double(bits) / Double(weights), accuracy: 1e-12)
        XCTAssertEqual(p.prunedFraction, 1024 / Double(weights), accuracy: 1e-12)
        // BERT-base: 84,934,656 encoder weights -> 324 MiB fp32; 2.0/2.5/3.0 bits -> 20.25/25.3/30.4 MiB.
        XCTAssertEqual(BitPlan.budgetMiB(averageBits: 32, weights: 84_934_656), 324, accuracy: 1e-9)
        XCTAssertEqual(BitPlan.budgetMiB(averageBits: 2, weights: 84_934_656), 20.25, accuracy: 1e-9)
    }

    func testRoundTripIsByteIdenticalAndShuffledControlKeepsHistograms() throws {
        let m = try model()
        // 4 groups where the rows allow it (32), 1 for the 37-row FFN matrices.
        var plan = try BitPlan.uniform(model: m, bits: 2, groups: 1, candidates: [0, 2, 4])
        for (i, path) in plan.matrices.keys.sorted().enumerated() where plan.matrices[path]!.shape[0] == 32 {
            plan.matrices[path]!.groups = 4
            plan.matrices[path]!.bits = [0, 2, 4, 2].map { i % 2 == 0 ? $0 : 4 - $0 }
        }
        try plan.validateStructure()
        let data = try plan.jsonData()
        let back = try JSONDecoder().decode(BitPlan.self, from: data)
        XCTAssertEqual(back, plan)
        XCTAssertEqual(try back.jsonData(), data)
        try back.validate(against: m)
        let control = plan.shuffledControl(seed: 9)
        XCTAssertEqual(control, plan.shuffledControl(seed: 9))
        XCTAssertNotEqual(control.matrices, plan.matrices)
        for (path, matrix) in plan.matrices { XCTAssertEqual(control.matrices[path]!.bits.sorted(), matrix.bits.sorted()) }
        XCTAssertEqual(control.sizeMiB, plan.sizeMiB)
        XCTAssertEqual(control.provenance.method, "random")
    }

    func testEveryValidationError() throws {
        let m = try model()
        let good = try BitPlan.uniform(model: m, bits: 2, groups: 1, candidates: [0, 2, 4])
        func decodeError(_ edit: (inout [String: Any]) -> Void) throws -> String {
            var object = try JSONSerialization.jsonObject(with: try good.jsonData()) as! [String: Any]
            edit(&object)
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("plan-\(UUID().uuidString).json")
            defer { try? FileManager.default.removeItem(at: url) }
            try JSONSerialization.data(withJSONObject: object).write(to: url)
            do {
                _ = try BitPlan(contentsOf: url)
                return ""
            } catch { return "\(error)" }
        }
        func matrix(_ o: inout [String: Any], _ edit: (inout [String: Any]) -> Void) {
            var ms = o["matrices"] as! [String: Any]
            var q = ms["bert.encoder.layer.0.attention.self.query.weight"] as! [String: Any]
            edit(&q)
            ms["bert.encoder.layer.0.attention.self.query.weight"] = q
            o["matrices"] = ms
        }
        XCTAssertTrue(try decodeError { $0["version"] = 7 }.contains("unknown plan version 7"))
        XCTAssertTrue(try decodeError { $0["candidates"] = [Int]() }.contains("empty"))
        XCTAssertTrue(try decodeError { $0["candidates"] = [0, 9] }.contains("outside 0...8"))
        XCTAssertTrue(try decodeError { $0["candidates"] = [4, 2] }.contains("ascending"))
        XCTAssertTrue(try decodeError { o in matrix(&o) { $0["bits"] = [3] } }.contains("bit-width 3 is not in the candidate set"))
        XCTAssertTrue(try decodeError { o in matrix(&o) { $0["groups"] = 5 } }.contains("5 groups do not divide"))
        XCTAssertTrue(try decodeError { o in matrix(&o) { $0["groups"] = 2 } }.contains("1 bit-widths for 2 groups"))
        XCTAssertTrue(try decodeError { $0.removeValue(forKey: "provenance") }.contains("missing key \"provenance\""))
        XCTAssertTrue(try decodeError { $0["matrices"] = "x" }.contains("\"matrices\": expected an object"))
        // Numbers that are not whole bit-widths or counts are named with their place.
        let q = "\"matrices.bert.encoder.layer.0.attention.self.query.weight"
        XCTAssertTrue(try decodeError { o in matrix(&o) { $0["bits"] = [2.5] } }.contains(q + ".bits\": element 0 is 2.5, not a whole number"))
        XCTAssertTrue(try decodeError { o in matrix(&o) { $0["groups"] = 1e30 } }.contains(q + ".groups\": 1e+30, not a whole number"))
        XCTAssertTrue(try decodeError { o in matrix(&o) { $0["shape"] = [1 << 40, 32] } }.contains("at most 16,777,216"))
        XCTAssertTrue(try decodeError { $0["version"] = "1" }.contains("\"version\": expected a number"))
        // What Foundation would accept or describe without a place: an empty file, bad UTF-8, a
        // syntax error, a duplicate key (Foundation keeps one silently).
        func rawError(_ bytes: [UInt8]) -> String {
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("plan-\(UUID().uuidString).json")
            defer { try? FileManager.default.removeItem(at: url) }
            do { try Data(bytes).write(to: url); _ = try BitPlan(contentsOf: url); return "" } catch { return "\(error)" }
        }
        let text = String(decoding: try good.jsonData(), as: UTF8.self)
        XCTAssertTrue(rawError([]).contains("the file is empty"))
        XCTAssertTrue(rawError([0x7B, 0x0A, 0xFF]).contains("line 2, column 1: not valid UTF-8"))
        XCTAssertTrue(rawError(Array("{\n  \"version\": 1,,\n}".utf8)).contains("line 2"), rawError(Array("{\n  \"version\": 1,,\n}".utf8)))
        let duplicated = text.replacingOccurrences(of: "\"version\" : 1", with: "\"version\" : 1, \"version\" : 1")
        XCTAssertNotEqual(duplicated, text)
        XCTAssertTrue(rawError(Array(duplicated.utf8)).contains("duplicate key \"version\""), rawError(Array(duplicated.utf8)))
        // Against the model: unknown path, wrong shape, missing matrix.
        var p = good
        p.matrices["bert.encoder.layer.9.attention.self.query.weight"] = p.matrices["bert.encoder.layer.0.attention.self.query.weight"]
        XCTAssertThrowsError(try p.validate(against: m)) { XCTAssertTrue("\($0)".contains("layer.9") && "\($0)".contains("not a quantizable")) }
        p = good
        p.matrices["bert.encoder.layer.0.attention.self.query.weight"]!.shape = [16, 64]
        XCTAssertThrowsError(try p.validate(against: m)) { XCTAssertTrue("\($0)".contains("shape [16, 64]")) }
        p = good
        p.matrices.removeValue(forKey: "bert.encoder.layer.1.output.dense.weight")
        XCTAssertThrowsError(try p.validate(against: m)) { XCTAssertTrue("\($0)".contains("no entry for bert.encoder.layer.1.output.dense.weight")) }
        XCTAssertThrowsError(try BitPlan.uniform(model: m, bits: 2, groups: 3)) { XCTAssertTrue("\($0)".contains("--groups 3 does not divide")) }
        XCTAssertThrowsError(try BitPlan.uniform(model: m, bits: 3, groups: 1, candidates: [0, 2, 4]))
    }
}

extension BitPlanTests {
    /// The config-only count equals the matrices a model holds.
    func testWeightCountFromConfig() throws {
        let m = try model()
        XCTAssertEqual(QuantizableMatrices.weightCount(m.config), QuantizableMatrices.of(m).reduce(0) { $0 + $1.tensor.count })
    }
}
