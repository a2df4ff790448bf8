import AQBert
import AQCore
import AQQuant
import CAQKernels
import Foundation
import XCTest

@testable import AQSearch

/// The search over embedding groups: the mixed lookup against the mixed matrix op it
/// specialises, and the file-size model against the exact packed size, with the repair under a cap.
final class EmbeddingSearchTests: XCTestCase {
    func model() throws -> BertTaskModel { try BertTaskModel.load(directory: SuperNetworkTests.tinyModel).model }

    /// With one row per group and every id gathered once, the mixed lookup is `mixedQuantize` on
    /// the table with one group per row, restricted to the gathered rows: the same values, the same
    /// table gradient on those rows, the same logit gradient for their groups and none elsewhere.
    func testMixedLookupMatchesTheMixedMatrixOpOnGatheredRows() throws {
        var g = SeededGenerator(seed: 8)
        let (v, c) = (9, 16)
        let candidates = [0, 2, 4, 8]
        let ids: [Int32] = [4, 0, 7, 2, 8]
        let upstream = Tensor(normal: [ids.count, c], std: 1, generator: &g)
        let tableValues = (0..<(v * c)).map { _ in g.nextNormal() }
        let mixingValues = (0..<(v * candidates.count)).map { _ in Float.random(in: 0.05...1, using: &g) }
        let bounds = SuperNetwork.mseBounds(of: Tensor(shape: [v, c], values: tableValues), groups: v, candidates: candidates)
        for ranges in [nil, bounds] {
            let t1 = Tensor(shape: [v, c], values: tableValues), o1 = Tensor(shape: [v, candidates.count], values: mixingValues)
            t1.requiresGrad = true
            o1.requiresGrad = true
            let tape = Tape()
            let y = tape.mixedEmbedding(t1, ids: ids, shape: [ids.count], paddingIndex: nil, mixing: o1, rowsPerGroup: 1,
                                        candidates: candidates, ranges: ranges)
            tape.backward(from: tape.sum(tape.mul(y, upstream)))

            let t2 = Tensor(shape: [v, c], values: tableValues), o2 = Tensor(shape: [v, candidates.count], values: mixingValues)
            t2.requiresGrad = true
            o2.requiresGrad = true
            let ref = Tape()
            let full = ref.mixedQuantize(t2, mixing: o2, candidates: candidates, ranges: ranges)
            var dense = [Float](repeating: 0, count: v * c)
            for (i, id) in ids.enumerated() { for j in 0..<c { dense[Int(id) * c + j] = upstream.array[i * c + j] } }
            ref.backward(from: ref.sum(ref.mul(full, Tensor(shape: [v, c], values: dense))))

            let gathered = Set(ids.map(Int.init))
            for (i, id) in ids.enumerated() {
                let r = Int(id)
                XCTAssertEqual(Array(y.array[(i * c)..<((i + 1) * c)]), Array(full.array[(r * c)..<((r + 1) * c)]), "row \(r)")
            }
            let dt1 = try XCTUnwrap(t1.gradArray), dt2 = try XCTUnwrap(t2.gradArray)
            let do1 = try XCTUnwrap(o1.gradArray), do2 = try XCTUnwrap(o2.gradArray)
            for r in 0..<v {
                for j in 0..<c {
                    XCTAssertEqual(dt1[r * c + j], gathered.contains(r) ? dt2[r * c + j] : 0, accuracy: 1e-6, "table[\(r), \(j)]")
                }
                for k in 0..<candidates.count {
                    XCTAssertEqual(do1[r * candidates.count + k], gathered.contains(r) ? do2[r * candidates.count + k] : 0,
                                   accuracy: 1e-5, "mixing[\(r), \(k)] ranges \(ranges != nil)")
                }
            }
        }
    }

    /// Rows of one group gathered several times add up into that group's logit gradient.
    func testRepeatedIdsAccumulateIntoTheirGroup() throws {
        var g = SeededGenerator(seed: 2)
        let table = Tensor(normal: [10, 8], std: 1, generator: &g)
        let o = Tensor(shape: [4, 2], values: [Float](repeating: 0.5, count: 8))
        o.requiresGrad = true
        let ids: [Int32] = [3, 3, 4, 9]  // rows 3 and 4: group 1 (3 rows per group); row 9: the short last group
        let tape = Tape()
        let y = tape.mixedEmbedding(table, ids: ids, shape: [4], paddingIndex: nil, mixing: o, rowsPerGroup: 3, candidates: [2, 4], ranges: nil)
        tape.backward(from: tape.sum(y))
        let d = try XCTUnwrap(o.gradArray)
        XCTAssertEqual(d[0], 0)
        XCTAssertEqual(d[4], 0)
        XCTAssertNotEqual(d[2], 0)
        XCTAssertNotEqual(d[6], 0)
        // Group 1's gradient at candidate 2 bits: sum over its three gathered rows of sum(Q_2(row)).
        var expected = 0.0
        for r in [3, 3, 4] {
            var q = [Float](repeating: 0, count: 8)
            table.array.withUnsafeBufferPointer { aq_fake_quantize($0.baseAddress! + r * 8, &q, 8, 2) }
            expected += q.reduce(0.0) { $0 + Double($1) }
        }
        XCTAssertEqual(Double(d[2]), expected, accuracy: 1e-4)
    }

    /// The size model of a file budget is the exact packed size up to the header's digits, and a
    /// repaired plan is at most the cap by the exact size.
    func testFileSizeModelAndTheRepairUnderACap() throws {
        let m = try model()
        let net = try SuperNetwork(model: m, candidates: [0, 2, 4], groups: 1, seed: 1, budget: .file,
                                   embeddings: EmbeddingSearch(candidates: [2, 3, 4, 8], rowsPerGroup: 7))
        let size = net.size
        XCTAssertEqual(size.units.count, 12 + 2)
        var g = SeededGenerator(seed: 3)
        for _ in 0..<20 {
            let chosen = size.units.map { u in (0..<u.groups).map { _ in Int(g.next() % UInt64(u.candidates.count)) } }
            let plan = size.plan(chosen, provenance: .init(method: "test"))
            let exact = try size.exactSize(of: plan)
            XCTAssertEqual(Double(size.size(chosen)), Double(exact), accuracy: 16, "the size model is exact up to the header's digits")
        }
        // Logits that put everything at the widest width, the tables' less decided (margin 0.5
        // against 1); a cap half-way down.
        for (t, u) in zip(net.logits, size.units) { for i in 0..<t.count { t.pointer[i] = Float(i % t.shape[1]) * (u.isEmbedding ? 0.5 : 1) } }
        let cap = (size.smallestMiB + size.largestMiB) / 2
        let (plan, repair) = try net.repairedArgmaxPlan(targetMiB: cap, tolerance: 0.05, tieBreak: .widest, provenance: .init(method: "aq-bert"))
        let exact = Double(try size.exactSize(of: plan)) / 1_048_576
        XCTAssertLessThanOrEqual(exact, cap)
        XCTAssertGreaterThanOrEqual(exact, 0.9 * cap)
        XCTAssertNotNil(repair)
        XCTAssertTrue(repair!.moves.first!.path.contains("embeddings"), "the least decided groups (the tables') move first")
        // Deterministic: the same logits give the same plan.
        let (again, _) = try net.repairedArgmaxPlan(targetMiB: cap, tolerance: 0.05, tieBreak: .widest, provenance: .init(method: "aq-bert"))
        XCTAssertEqual(again, plan)
        // Groups no example gathers are held at the narrowest nonzero width: outside the size
        // penalty's gradient, the argmax and the repair.
        let word = "bert.embeddings.word_embeddings.weight", position = "bert.embeddings.position_embeddings.weight"
        let counts = net.holdUngathered([word: [0, 1, 2, 50], position: Set(0..<10)])
        let wordUnit = try XCTUnwrap(size.units.firstIndex { $0.path == word })
        XCTAssertEqual(counts[word], size.units[wordUnit].groups - 2, "rows 0-2 and 50: groups 0 and 7 of 7 rows")
        XCTAssertEqual(counts[position], size.units.first { $0.path == position }!.groups - 2)
        let tape = Tape()
        tape.backward(from: net.expectedSize(tape: tape))
        let d = try XCTUnwrap(net.logits[wordUnit].gradArray)
        XCTAssertTrue((0..<4).allSatisfy { d[1 * 4 + $0] == 0 }, "a held group gets no size gradient")
        XCTAssertTrue((0..<4).contains { d[0 * 4 + $0] != 0 })
        let (heldPlan, heldRepair) = try net.repairedArgmaxPlan(targetMiB: cap, tolerance: 0.05, tieBreak: .widest, provenance: .init(method: "aq-bert"))
        let bits = try XCTUnwrap(heldPlan.embeddings[word]?.bits)
        XCTAssertEqual(bits.enumerated().filter { ![0, 7].contains($0.offset) }.map(\.element), Array(repeating: 2, count: bits.count - 2))
        XCTAssertFalse(heldRepair?.moves.contains { $0.path == word && ![0, 7].contains($0.group) } ?? false)
        XCTAssertLessThanOrEqual(Double(try size.exactSize(of: heldPlan)) / 1_048_576, cap)

        // Whatever the cap, a repaired plan's exact packed size is inside the band, both edges
        // (the header's digits differ between plans, which the size model does not see).
        var inside = 0
        for trial in 0..<40 {
            for t in net.logits { for i in 0..<t.count { t.pointer[i] = Float(g.next() % 1000) / 1000 } }
            let v = size.smallestMiB + (size.largestMiB - size.smallestMiB) * (0.05 + 0.9 * Double(trial) / 40)
            let band = SearchSize.band(target: v, tolerance: 0.002, budget: .file)
            guard let (p, _) = try? net.repairedArgmaxPlan(targetMiB: v, tolerance: 0.002, tieBreak: .widest,
                                                           provenance: .init(method: "aq-bert")) else { continue }
            let mib = Double(try size.exactSize(of: p)) / 1_048_576
            XCTAssertTrue(band.contains(mib), "trial \(trial): \(mib) MiB outside \(band)")
            inside += 1
        }
        XCTAssertGreaterThan(inside, 15, "most caps can be met with a 0.4% band")

        // An encoder budget does not count tables: asking for them is an error.
        XCTAssertThrowsError(try SuperNetwork(model: m, candidates: [0, 2, 4], groups: 1, seed: 1, budget: .encoder,
                                              embeddings: EmbeddingSearch(candidates: [2, 4], rowsPerGroup: 7))) {
            XCTAssertTrue("\($0)".contains("file budget only"), "\($0)")
        }
    }
}
