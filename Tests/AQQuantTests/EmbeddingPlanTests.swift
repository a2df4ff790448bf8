import AQBert
import AQCore
import AQSafeTensors
import Foundation
import XCTest

@testable import AQQuant

/// Embedding tables in the bit plan on the tiny BERT (vocabulary 99 x 32, positions 40 x 32):
/// the plan's version 2 round trip, the quantized lookup and its straight-through gradients on
/// the gathered rows, and the packed model with planned tables (the same numbers as the
/// quantization-aware model, and the size `fileBytes` predicts).
final class EmbeddingPlanTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("aqbert-embplan-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    static let word = "bert.embeddings.word_embeddings.weight", position = "bert.embeddings.position_embeddings.weight"

    func model() throws -> BertTaskModel { try BertTaskModel.load(directory: BitPlanTests.tinyModel).model }

    /// An encoder plan at 4 bits (one group per matrix) with the tables in groups of 10 rows at
    /// widths cycling through `widths` (the word table's last group has 9 rows).
    func plan(_ m: BertTaskModel, widths: [Int] = [0, 2, 3, 4, 8]) throws -> BitPlan {
        var p = try BitPlan.uniform(model: m, bits: 4, groups: 1, candidates: [0, 2, 4])
            .withEmbeddings(model: m, bits: 8, rowsPerGroup: 10, candidates: [0, 2, 3, 4, 8])
        for path in [Self.word, Self.position] {
            p.embeddings[path]!.bits = p.embeddings[path]!.bits.indices.map { widths[($0 + (path == Self.word ? 0 : 2)) % widths.count] }
        }
        return p
    }

    func testPlanVersionsRoundTripAndValidation() throws {
        let m = try model()
        let v1 = try BitPlan.uniform(model: m, bits: 4, groups: 1, candidates: [0, 2, 4])
        XCTAssertEqual(v1.version, 1)
        let v1JSON = String(decoding: try v1.jsonData(), as: UTF8.self)
        XCTAssertFalse(v1JSON.contains("embedding"), "a plan without tables is written as version 1, as before")
        let p = try plan(m)
        XCTAssertEqual(p.version, 2)
        XCTAssertEqual(p.embeddings[Self.word]?.groups, 10)
        XCTAssertEqual(p.embeddings[Self.word]?.rows(ofGroup: 9), 90..<99)
        XCTAssertEqual(p.embeddings[Self.position]?.groups, 4)
        let data = try p.jsonData()
        let back = try JSONDecoder().decode(BitPlan.self, from: data)
        XCTAssertEqual(back, p)
        XCTAssertEqual(try back.jsonData(), data)
        try back.validate(against: m)
        // The encoder's average and size are the paper's (tables excluded); the tables count apart.
        XCTAssertEqual(p.averageBits, v1.averageBits)
        let wordBits = (0..<10).reduce(0) { $0 + [0, 2, 3, 4, 8][$1 % 5] * (($1 == 9 ? 9 : 10) * 32) }
        let positionBits = (0..<4).reduce(0) { $0 + [0, 2, 3, 4, 8][($1 + 2) % 5] * 10 * 32 }
        XCTAssertEqual(p.embeddingTotalBits, wordBits + positionBits)
        XCTAssertEqual(p.embeddingWeightCount, 99 * 32 + 40 * 32)

        // The random control shuffles full groups only: same size, same histogram.
        let control = p.shuffledControl(seed: 3)
        XCTAssertEqual(control.embeddingTotalBits, p.embeddingTotalBits)
        XCTAssertEqual(control.embeddings[Self.word]!.bits.last, p.embeddings[Self.word]!.bits.last)
        XCTAssertEqual(control.embeddings[Self.word]!.bits.sorted(), p.embeddings[Self.word]!.bits.sorted())

        // Malformed plans: each a one-line PlanError naming the problem.
        func refused(_ edit: (inout [String: Any]) -> Void, _ message: String, file: StaticString = #filePath, line: UInt = #line) throws {
            var object = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
            edit(&object)
            let url = dir.appendingPathComponent("plan.json")
            try JSONSerialization.data(withJSONObject: object).write(to: url)
            XCTAssertThrowsError(try BitPlan(contentsOf: url), file: file, line: line) {
                XCTAssertTrue("\($0)".contains(message), "\($0)", file: file, line: line)
            }
        }
        func table(_ o: inout [String: Any], _ edit: (inout [String: Any]) -> Void) {
            var tables = o["embeddings"] as! [String: Any]
            var t = tables[Self.word] as! [String: Any]
            edit(&t)
            tables[Self.word] = t
            o["embeddings"] = tables
        }
        try refused({ $0["version"] = 1 }, "a version 1 plan has no embeddings")
        try refused({ $0["embeddings"] = [String: Any]() }, "a version 2 plan lists its embedding tables")
        try refused({ $0["version"] = 3 }, "unknown plan version 3")
        try refused({ $0["embedding_candidates"] = [2, 2] }, "embedding_candidates: duplicate")
        try refused({ table(&$0) { $0["bits"] = [Int](repeating: 5, count: 10) } }, "bit-width 5 is not in the embedding candidate set")
        try refused({ table(&$0) { $0["bits"] = [Int](repeating: 2, count: 9) } }, "9 bit-widths for 10 groups of 10 rows")
        try refused({ table(&$0) { $0["rows_per_group"] = 0 } }, "rows_per_group 0 is not within 1...99")
        try refused({ table(&$0) { $0["rows_per_group"] = 2.5 } }, "not a whole number")
        var wrong = p
        wrong.embeddings[Self.word]!.shape = [98, 32]
        wrong.embeddings[Self.word]!.bits = [Int](repeating: 2, count: 10)
        XCTAssertThrowsError(try wrong.validate(against: m)) { XCTAssertTrue("\($0)".contains("the plan says shape [98, 32], the model has [99, 32]"), "\($0)") }
        var unknown = p
        unknown.embeddings["bert.embeddings.token_type_embeddings.weight"] = BitPlan.Embedding(shape: [2, 32], rowsPerGroup: 1, bits: [2, 2])
        XCTAssertThrowsError(try unknown.validate(against: m)) { XCTAssertTrue("\($0)".contains("is not a plannable embedding table"), "\($0)") }
    }

    /// The lookup equals quantizing every row of the table at its width and gathering; the
    /// gradient reaches the gathered rows straight through (inside the learned bounds), never a
    /// 0-bit row or the padding row, and the bounds of a row gathered twice get both shares.
    func testQuantizedLookupAndItsStraightThroughGradients() throws {
        var g = SeededGenerator(seed: 5)
        let (v, c) = (12, 8)
        let table = Tensor(shape: [v, c], values: (0..<(v * c)).map { _ in g.nextNormal() })
        table.requiresGrad = true
        let rowBits = [0, 2, 3, 4, 8, 2, 2, 3, 0, 4, 8, 2]
        let ids: [Int32] = [3, 1, 0, 3, 7, 8, 11, 5]
        let padding: Int32 = 5
        let upstream = (0..<(ids.count * c)).map { _ in g.nextNormal() }
        for learned in [false, true] {
            table.grad = nil
            let ranges: Tensor? = learned ? LearnedRanges.initial(table, groupBits: rowBits, method: .mse) : nil
            ranges?.requiresGrad = true
            let tape = Tape()
            let y = tape.quantizedEmbedding(table, ids: ids, shape: [2, 4], rowBits: rowBits, ranges: ranges, paddingIndex: padding)
            XCTAssertEqual(y.shape, [2, 4, c])
            // Reference: the whole table fake-quantized with one group per row.
            let ref = Tape.inference
            let full = ranges.map { ref.fakeQuantize(table, groupBits: rowBits, ranges: $0) } ?? ref.fakeQuantize(table, groupBits: rowBits)
            for (i, id) in ids.enumerated() {
                XCTAssertEqual(Array(y.array[(i * c)..<((i + 1) * c)]), Array(full.array[(Int(id) * c)..<((Int(id) + 1) * c)]), "row \(id)")
            }
            tape.backward(from: tape.sum(tape.mul(y, Tensor(shape: y.shape, values: upstream))))
            // Expected table gradient: each gathered row's upstream, masked where clamped.
            var expected = [Float](repeating: 0, count: v * c)
            var expectedBounds = [Float](repeating: 0, count: 2 * v)
            for (i, id) in ids.enumerated() where rowBits[Int(id)] > 0 && id != padding {
                let r = Int(id)
                if let ranges {
                    var lo: Float = 0, hi: Float = 0
                    let b = LearnedRanges.effective(ranges)
                    (lo, hi) = (b[2 * r], b[2 * r + 1])
                    let s = Float((1 << rowBits[r]) - 1) / (hi - lo)
                    for j in 0..<c {
                        let u = s * (table.array[r * c + j] - lo)
                        if u >= 0 && u <= Float((1 << rowBits[r]) - 1) { expected[r * c + j] += upstream[i * c + j] }
                    }
                } else {
                    for j in 0..<c { expected[r * c + j] += upstream[i * c + j] }
                }
            }
            let dTable = table.gradArray ?? []
            for k in 0..<(v * c) { XCTAssertEqual(dTable[k], expected[k], accuracy: 1e-6, "learned \(learned), element \(k)") }
            if let ranges {
                // Bounds: the gathered rows' LSQ gradients (row 3 twice), nothing elsewhere.
                let dr = try XCTUnwrap(ranges.gradArray)
                let per = Tape()
                let w = Tensor(shape: [v, c], values: table.array)
                let r2 = Tensor(shape: [v, 2], values: ranges.array)
                r2.requiresGrad = true
                w.requiresGrad = true
                // Scatter the upstream onto a full table (padding rows too: bounds train for every gathered row).
                var dense = [Float](repeating: 0, count: v * c)
                for (i, id) in ids.enumerated() { for j in 0..<c { dense[Int(id) * c + j] += upstream[i * c + j] } }
                let fq = per.fakeQuantize(w, groupBits: rowBits, ranges: r2)
                per.backward(from: per.sum(per.mul(fq, Tensor(shape: [v, c], values: dense))))
                expectedBounds = try XCTUnwrap(r2.gradArray)
                for k in 0..<(2 * v) { XCTAssertEqual(dr[k], expectedBounds[k], accuracy: 1e-5, "bound \(k)") }
                for r in [0, 2, 4, 6, 8, 9, 10] { XCTAssertEqual(dr[2 * r], 0); XCTAssertEqual(dr[2 * r + 1], 0) }
            }
        }
    }

    /// The lookup of the tables a plan leaves out (every row at `embedding_bits`, min/max per row)
    /// is the planned lookup with every row at that width: the same values and table gradient.
    func testFixedWidthLookupIsThePlannedOneAtOneWidth() throws {
        var g = SeededGenerator(seed: 6)
        let table = Tensor(shape: [10, 12], values: (0..<120).map { _ in g.nextNormal() })
        let ids: [Int32] = [1, 4, 4, 9, 0]
        let upstream = Tensor(normal: [5, 12], std: 1, generator: &g)
        var results: [([Float], [Float])] = []
        for planned in [false, true] {
            table.grad = nil
            table.requiresGrad = true
            let tape = Tape()
            let y = planned
                ? tape.quantizedEmbedding(table, ids: ids, shape: [5], rowBits: [Int](repeating: 8, count: 10), ranges: nil, paddingIndex: 0)
                : tape.quantizedEmbedding(table, ids: ids, shape: [5], bits: 8, paddingIndex: 0)
            tape.backward(from: tape.sum(tape.mul(y, upstream)))
            results.append((y.array, try XCTUnwrap(table.gradArray)))
        }
        XCTAssertEqual(results[0].0, results[1].0)
        XCTAssertEqual(results[0].1, results[1].1)
        XCTAssertTrue(results[0].1[0..<12].allSatisfy { $0 == 0 }, "the padding row gets no gradient")
        XCTAssertNotEqual(results[0].0, Tape.inference.embedding(table, ids: ids).array, "the rows are quantized")
    }

    /// A calibrated quantization-aware tiny model with planned tables.
    func quantized(_ ranges: RangeMode) throws -> (BertTaskModel, QuantizedBert, BertBatch) {
        let m = try model()
        let q = try QuantizedBert(plan: try plan(m), model: m, ranges: ranges)
        // Ids in every word group (0-bit ones included) and positions up to 10.
        let batch = BertBatch(sequences: [[2, 5, 16, 27, 38, 49, 3], [2, 61, 72, 3], [2, 83, 94, 98, 40, 41, 1, 12, 3]])
        q.training = true
        _ = m.forward(batch, tape: .inference)
        q.training = false
        return (m, q, batch)
    }

    func testPackedModelWithPlannedTablesMatchesTheQuantizationAwareOne() throws {
        for ranges in [RangeMode.minmax, .learned] {
            let (m, q, batch) = try quantized(ranges)
            if ranges == .learned {
                // Move the bounds off their starting point, as training would.
                for (_, t) in q.rangeParameters { for i in 0..<t.count { t.pointer[i] *= i % 2 == 0 ? 0.9 : 0.8 } }
            }
            let simulated = m.forward(batch, tape: .inference).array
            let out = dir.appendingPathComponent("packed-\(ranges.rawValue)")
            let sizes = try PackedBert.export(model: m, quantization: q, to: out)
            XCTAssertEqual(sizes.bytes, sizes.predicted, "file_bytes is exact")
            let (p, _) = try PackedBert.load(directory: out)
            XCTAssertEqual(p.forward(batch, tape: .inference).array, simulated, "\(ranges): packed = quantization-aware, bit for bit")
            let file = try SafeTensorsFile(url: out.appendingPathComponent("model.safetensors"))
            XCTAssertEqual(file.metadata["version"], "2")
            // Hand count of the word table: groups of 10 rows at 0, 2, 3, 4, 8, 0, 2, 3, 4, 8 bits
            // (the last 9 rows): 32 codes per row; a range (4 bytes) per kept row.
            let rowBytes = [0: 0, 2: 8, 3: 12, 4: 16, 8: 32]
            let codeBytes = (0..<10).reduce(0) { $0 + ($1 == 9 ? 9 : 10) * rowBytes[[0, 2, 3, 4, 8][$1 % 5]]! }
            XCTAssertEqual(file.info(Self.word + ".codes")?.shape, [codeBytes])
            XCTAssertEqual(file.info(Self.word + ".ranges")?.shape, [99 - 20, 2])
            XCTAssertEqual(file.info(Self.word + ".bits")?.shape, [10])
            XCTAssertNil(file.info(Self.word), "the fp32 table is not stored")
            // The quantization-aware directory round-trips too (plan v2 and per-row learned bounds).
            let saved = dir.appendingPathComponent("qat-\(ranges.rawValue)")
            try m.save(to: saved)
            try q.save(to: saved)
            let m2 = try model()
            let q2 = try XCTUnwrap(try QuantizedBert.load(from: saved, into: m2))
            _ = q2
            XCTAssertEqual(m2.forward(batch, tape: .inference).array, simulated)
        }
    }
}
