import AQBert
import AQSafeTensors
import Foundation
import XCTest

@testable import AQQuant

/// The packed format end to end on the tiny BERT: export a quantization-aware model with a plan
/// mixing every width (0, 2, 3, 4, 5, 8 bits; a 37-row matrix with one group per row), load it
/// back, and compare with the simulated model; then corrupt the file in the ways the format
/// document promises to catch.
final class PackedModelTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("aqbert-packed-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// A calibrated quantization-aware tiny model with a mixed plan.
    func quantized() throws -> (BertTaskModel, QuantizedBert, BertBatch) {
        let (m, _) = try BertTaskModel.load(directory: BitPlanTests.tinyModel)
        var plan = try BitPlan.uniform(model: m, bits: 4, groups: 1, candidates: [0, 2, 3, 4, 5, 8])
        let widths = [0, 2, 3, 4, 5, 8]
        for (i, path) in plan.matrices.keys.sorted().enumerated() {
            let rows = plan.matrices[path]!.shape[0]
            let groups = rows == 37 ? 37 : 8
            plan.matrices[path]!.groups = groups
            plan.matrices[path]!.bits = (0..<groups).map { widths[(i + $0) % widths.count] }
        }
        let q = try QuantizedBert(plan: plan, model: m)
        let batch = BertBatch(sequences: [[2, 5, 6, 7, 8, 9, 3], [2, 11, 12, 3], [2, 40, 41, 42, 43, 44, 45, 46, 3]])
        q.training = true
        _ = m.forward(batch, tape: .inference)
        q.training = false
        return (m, q, batch)
    }

    func testPackedModelMatchesTheSimulatedOneAndItsPredictedSize() throws {
        let (m, q, batch) = try quantized()
        let simulated = m.forward(batch, tape: .inference).array
        let out = dir.appendingPathComponent("packed")
        let sizes = try PackedBert.export(model: m, quantization: q, to: out)
        XCTAssertEqual(sizes.bytes, sizes.predicted, "file_bytes is exact")
        XCTAssertTrue(PackedBert.isPacked(out))
        let (p, packed) = try PackedBert.load(directory: out)
        XCTAssertEqual(packed.linears.count, 12)
        let logits = p.forward(batch, tape: .inference).array
        // The quantization-aware model evaluates in integers (ExactQuantizedProduct), the packed
        // one in its int8 kernel: the same numbers, bit for bit.
        XCTAssertEqual(logits, simulated)
        // The fp32 simulation (the training forward) agrees to rounding.
        q.uninstall()
        let q2 = try QuantizedBert(plan: q.plan, model: m)
        try q2.setActivationRanges(q.activationRanges)
        for l in QuantizableMatrices.linears(m) { l.forwardOverride = nil }
        let fp32 = m.forward(batch, tape: .inference).array
        let scale = fp32.map { abs($0) }.max()!
        for (a, b) in zip(logits, fp32) { XCTAssertEqual(a, b, accuracy: 1e-4 * max(1, scale)) }
        // The fp32 parameters a packed matrix replaces are never filled.
        let query = p.checkpointParameters.first { $0.name == "bert.encoder.layer.0.attention.self.query.weight" }!.tensor
        XCTAssertTrue(query.array.allSatisfy { $0 == 0 })
        // Every matrix's pruned groups cost no bytes.
        let file = try SafeTensorsFile(url: out.appendingPathComponent("model.safetensors"))
        for (path, matrix) in q.plan.matrices {
            XCTAssertEqual(file.info(path + ".codes")?.shape, [PackedFormat.codeBytes(matrix, columns: matrix.shape[1])])
            XCTAssertEqual(file.info(path + ".ranges")?.shape, [matrix.bits.filter { $0 > 0 }.count, 2])
        }
    }

    /// The dequantized weights of a packed matrix equal the simulation's quantizer on the same
    /// fp16-rounded range, row by row (the format document's formula).
    func testCodesDequantizeAsDocumented() throws {
        let values: [Float] = (0..<96).map { Float(sin(Double($0) * 0.7)) * 0.37 + 0.01 }
        for bits in 1...8 {
            let (codes, lo16, hi16) = try values.withUnsafeBufferPointer { try PackedFormat.encode($0, bits: bits) }
            let lo = halfBitsToFloat(lo16), hi = halfBitsToFloat(hi16)
            XCTAssertLessThanOrEqual(lo, values.min()!)
            XCTAssertGreaterThanOrEqual(hi, values.max()!)
            let step = PackedFormat.step(lo: lo, hi: hi, bits: bits)
            for (v, c) in zip(values, codes) {
                XCTAssertLessThan(Int(c), 1 << bits)
                XCTAssertLessThanOrEqual(abs(Float(c) * step + lo - v), step / 2 * 1.0001, "bits \(bits)")
            }
        }
        let constant = [Float](repeating: 0.25, count: 10)
        let (codes, lo, hi) = try constant.withUnsafeBufferPointer { try PackedFormat.encode($0, bits: 3) }
        XCTAssertEqual(lo, hi)
        XCTAssertEqual(codes, [UInt8](repeating: 0, count: 10))
        XCTAssertEqual(halfBitsToFloat(lo), 0.25)
    }

    /// Rewrites model.safetensors with `edit` applied to its tensors.
    func rewrite(_ out: URL, _ edit: (inout [SafeTensorsWriter.Tensor], SafeTensorsFile) throws -> Void) throws {
        let url = out.appendingPathComponent("model.safetensors")
        let file = try SafeTensorsFile(url: url)
        var tensors = try file.names.map { n -> SafeTensorsWriter.Tensor in
            let i = file.info(n)!
            return .raw(n, dtype: i.dtype, shape: i.shape, bytes: try file.bytes(n))
        }
        try edit(&tensors, file)
        try SafeTensorsWriter.write(tensors, metadata: file.metadata.filter { $0.key != PackedFormat.checksumKey }, to: url)
    }

    /// Export records the tensors' checksum; a damaged byte anywhere in the data fails the load
    /// (unless verification is off), and an unknown format version is refused.
    func testChecksumAndVersionAreChecked() throws {
        let (m, q, _) = try quantized()
        let out = dir.appendingPathComponent("packed")
        try PackedBert.export(model: m, quantization: q, to: out)
        let url = out.appendingPathComponent("model.safetensors")
        let file = try SafeTensorsFile(url: url)
        let recorded = try XCTUnwrap(file.metadata[PackedFormat.checksumKey])
        XCTAssertEqual(recorded.count, 64)
        XCTAssertEqual(try PackedFormat.checksum(names: file.names) { name, body in try file.withRawBytes(name, body) }, recorded)
        let original = try Data(contentsOf: url)
        let codes = try XCTUnwrap(file.names.first { $0.hasSuffix(".codes") && file.info($0)!.byteRange.count > 0 })
        let fp32 = try XCTUnwrap(file.names.first { file.info($0)!.dtype == .f32 })
        for name in [codes, fp32] {
            var damaged = original
            let at = file.dataOffset + file.info(name)!.byteRange.lowerBound
            damaged[at] ^= 0x10
            try damaged.write(to: url)
            XCTAssertThrowsError(try PackedBert.load(directory: out)) { XCTAssertTrue("\($0)".contains("checksum does not match"), "\($0)") }
            XCTAssertNoThrow(try PackedBert.load(directory: out, verify: false), "--no-verify loads it")
        }
        try original.write(to: url)
        XCTAssertNoThrow(try PackedBert.load(directory: out))
        // Another format version (the tensors and checksum unchanged).
        var tensors = try file.names.map { n -> SafeTensorsWriter.Tensor in
            let i = file.info(n)!
            return .raw(n, dtype: i.dtype, shape: i.shape, bytes: try file.bytes(n))
        }
        tensors.sort { $0.name < $1.name }
        var metadata = file.metadata
        metadata["version"] = "7"
        try SafeTensorsWriter.write(tensors, metadata: metadata, to: url)
        XCTAssertThrowsError(try PackedBert.load(directory: out)) { XCTAssertTrue("\($0)".contains("version \"7\" is not one this aqbert reads"), "\($0)") }
    }

    /// A packed model whose config lacks a planned matrix's activation range (or has a broken
    /// one) is refused: it would not compute what the quantization-aware model did.
    func testMissingActivationRangeIsRefused() throws {
        let (m, q, _) = try quantized()
        let out = dir.appendingPathComponent("packed")
        try PackedBert.export(model: m, quantization: q, to: out)
        let configURL = out.appendingPathComponent("config.json")
        let original = try Data(contentsOf: configURL)
        let path = try XCTUnwrap(q.plan.matrices.keys.sorted().first)
        let key = String(path.dropLast(".weight".count))
        for value: Any? in [nil, [1.0], [2.0, 1.0]] {
            var config = try XCTUnwrap(JSONSerialization.jsonObject(with: original) as? [String: Any])
            var qc = try XCTUnwrap(config["quantization_config"] as? [String: Any])
            var ranges = try XCTUnwrap(qc["activation_ranges"] as? [String: Any])
            XCTAssertNotNil(ranges[key], "the export recorded \(key)'s range")
            ranges[key] = value
            qc["activation_ranges"] = ranges
            config["quantization_config"] = qc
            try JSONSerialization.data(withJSONObject: config).write(to: configURL)
            XCTAssertThrowsError(try PackedBert.load(directory: out), "\(String(describing: value))") {
                XCTAssertTrue("\($0)".contains("activation range"), "\($0)")
            }
        }
        try original.write(to: configURL)
        XCTAssertNoThrow(try PackedBert.load(directory: out))
    }

    func testWrongWidthsAndTruncationFailLoudly() throws {
        let (m, q, _) = try quantized()
        let source = dir.appendingPathComponent("packed")
        try PackedBert.export(model: m, quantization: q, to: source)
        let path = "bert.encoder.layer.0.attention.self.query.weight"
        func copy(_ name: String) throws -> URL {
            let u = dir.appendingPathComponent(name)
            try FileManager.default.copyItem(at: source, to: u)
            return u
        }
        func assertFails(_ u: URL, _ needle: String, line: UInt = #line) {
            XCTAssertThrowsError(try PackedBert.load(directory: u), line: line) { e in
                XCTAssertTrue("\(e)".contains(needle), "\(e)", line: line)
            }
        }
        // Codes one byte short (a truncated tensor).
        let short = try copy("short")
        try rewrite(short) { t, f in
            let i = t.firstIndex { $0.name == path + ".codes" }!
            let bytes = try f.bytes(path + ".codes")
            t[i] = .raw(path + ".codes", dtype: .u8, shape: [bytes.count - 1], bytes: Array(bytes.dropLast()))
        }
        assertFails(short, path + ".codes")
        // Bit-widths that disagree with the plan (codes written at another width).
        let wide = try copy("wide")
        try rewrite(wide) { t, f in
            let i = t.firstIndex { $0.name == path + ".bits" }!
            var bits = try f.bytes(path + ".bits")
            bits[1] = bits[1] == 4 ? 2 : 4
            t[i] = .raw(path + ".bits", dtype: .u8, shape: [bits.count], bytes: bits)
        }
        assertFails(wide, path + ".bits")
        // A plan whose widths differ from the stored codes: the codes' size no longer matches.
        let replanned = try copy("replanned")
        var plan = try BitPlan(contentsOf: replanned.appendingPathComponent("plan.json"))
        let kept = plan.matrices[path]!.bits.firstIndex { $0 == 2 }!
        plan.matrices[path]!.bits[kept] = 3
        try plan.write(to: replanned.appendingPathComponent("plan.json"))
        assertFails(replanned, "disagree")
        // The file cut short.
        let cut = try copy("cut")
        let url = cut.appendingPathComponent("model.safetensors")
        let data = try Data(contentsOf: url)
        try data.prefix(data.count - 100).write(to: url)
        assertFails(cut, "model.safetensors")
        // A range with hi < lo.
        let inverted = try copy("inverted")
        try rewrite(inverted) { t, f in
            let i = t.firstIndex { $0.name == path + ".ranges" }!
            var r = try f.bytes(path + ".ranges")
            (r[0], r[1], r[2], r[3]) = (r[2], r[3], r[0], r[1])  // swap lo and hi of the first kept group
            t[i] = .raw(path + ".ranges", dtype: .f16, shape: t[i].shape, bytes: r)
        }
        assertFails(inverted, "range")
        // A wrong dtype.
        let dtype = try copy("dtype")
        try rewrite(dtype) { t, f in
            let i = t.firstIndex { $0.name == path + ".ranges" }!
            let r = try f.floats(path + ".ranges")
            t[i] = .floats(path + ".ranges", shape: [r.count / 2, 2], r)
        }
        assertFails(dtype, "F32")
    }
}
