import Foundation
import XCTest
import AQSafeTensors

final class RoundTripTests: TempDirTestCase {
    func testF32RoundTripIsBitExact() throws {
        let values: [Float] = [
            0, -0.0, 1, -1, 0.1, 3.4028235e38, -3.4028235e38, .leastNonzeroMagnitude, -.leastNonzeroMagnitude,
            .leastNormalMagnitude, Float(bitPattern: 0x0001_16C2), .infinity, -.infinity, .nan,
            Float(bitPattern: 0x7FA0_0001), 123456.789, -1e-30,
        ]
        let u = url("f32.safetensors")
        try SafeTensorsWriter.write([("w", [values.count], values)], to: u)
        let f = try SafeTensorsFile(url: u)
        XCTAssertEqual(f.names, ["w"])
        XCTAssertEqual(f.info("w")?.dtype, .f32)
        XCTAssertEqual(f.info("w")?.shape, [values.count])
        XCTAssertEqual(try f.floats("w").map(\.bitPattern), values.map(\.bitPattern))
        XCTAssertEqual(f.metadata, ["format": "pt"])
        XCTAssertNil(f.info("nope"))
    }

    /// Known IEEE binary16 encodings, including rounding ties, overflow and subnormals.
    static let halfCases: [(Float, UInt16)] = [
        (1.0, 0x3C00), (-2.0, 0xC000), (0.5, 0x3800), (-0.0, 0x8000), (0.0, 0x0000),
        (65504, 0x7BFF), (65519, 0x7BFF), (65520, 0x7C00), (1e6, 0x7C00), (-1e6, 0xFC00),
        (0x1p-14, 0x0400), (0x1p-24, 0x0001), (0x1p-25, 0x0000), (0x1.8p-25, 0x0001), (0x1p-15, 0x0200),
        (0x1.ff8p-15, 0x03FF), (0x1.ffcp-15, 0x0400), (1.0 / 3.0, 0x3555), (3.140625, 0x4248),
        (1 + 0x1p-11, 0x3C00), (1 + 3 * 0x1p-11, 0x3C02), (1 + 0x1p-11 + 0x1p-20, 0x3C01),
        (Float(bitPattern: 0x0001_16C2), 0x0000), (.infinity, 0x7C00), (-.infinity, 0xFC00), (.nan, 0x7E00),
    ]

    func testF16KnownBitPatternsAndRoundTrip() throws {
        let values = Self.halfCases.map(\.0)
        let u = url("f16.safetensors")
        try SafeTensorsWriter.write([("h", [values.count], values)], dtype: .f16, to: u)
        let f = try SafeTensorsFile(url: u)
        let info = try XCTUnwrap(f.info("h"))
        XCTAssertEqual(info.dtype, .f16)
        XCTAssertEqual(info.byteRange.count, values.count * 2)
        let raw = try f.bytes("h")
        for (i, (v, bits)) in Self.halfCases.enumerated() {
            let got = UInt16(raw[2 * i]) | UInt16(raw[2 * i + 1]) << 8
            XCTAssertEqual(got, bits, "fp16 of \(v): got 0x\(String(got, radix: 16))")
        }
        let back = try f.floats("h")
        for (i, (_, bits)) in Self.halfCases.enumerated() {
            let expected = halfBitsToFloat(bits)
            if expected.isNaN { XCTAssertTrue(back[i].isNaN) } else { XCTAssertEqual(back[i].bitPattern, expected.bitPattern) }
        }
        XCTAssertEqual(back[0], 1.0)
        XCTAssertEqual(back[5], 65504)
        XCTAssertEqual(back[11], 0x1p-24)  // smallest subnormal survives exactly
        XCTAssertEqual(back[23], .infinity)
        XCTAssertEqual(back[24], -.infinity)
    }

    func testHalfConversionsAgainstFloat16() throws {
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        for h in 0...UInt16.max {
            let mine = halfBitsToFloat(h)
            let reference = Float(Float16(bitPattern: h))
            if reference.isNaN {
                XCTAssertTrue(mine.isNaN)
                XCTAssertEqual(floatToHalfBits(mine) & 0x7C00, 0x7C00)
                XCTAssertNotEqual(floatToHalfBits(mine) & 0x03FF, 0)
            } else {
                XCTAssertEqual(mine.bitPattern, reference.bitPattern, "half 0x\(String(h, radix: 16))")
                XCTAssertEqual(floatToHalfBits(mine), h, "round trip of half 0x\(String(h, radix: 16))")
            }
        }
        var rng = TestRNG(seed: 42)
        for i in 0..<300_000 {
            // Mix fully random bit patterns with values concentrated in the half range.
            let bits: UInt32 = i % 2 == 0 ? UInt32(truncatingIfNeeded: rng.next())
                : UInt32(0x3300_0000 + rng.below(0x1500_0000)) | (UInt32(rng.below(2)) << 31)
            let x = Float(bitPattern: bits)
            let reference = Float16(x)
            if x.isNaN { XCTAssertTrue(halfBitsToFloat(floatToHalfBits(x)).isNaN); continue }
            XCTAssertEqual(floatToHalfBits(x), reference.bitPattern, "float 0x\(String(bits, radix: 16))")
        }
        #else
        throw XCTSkip("Float16 is unavailable on Intel macOS")
        #endif
    }

    func testBF16RoundingAndRoundTrip() throws {
        let cases: [(Float, UInt16)] = [
            (1.0, 0x3F80), (-1.5, 0xBFC0), (3.140625, 0x4049), (-0.0, 0x8000),
            (1 + 0x1p-8, 0x3F80), (1 + 3 * 0x1p-8, 0x3F82), (1 + 0x1p-8 + 0x1p-20, 0x3F81),
            (.greatestFiniteMagnitude, 0x7F80), (.infinity, 0x7F80), (-.infinity, 0xFF80), (.nan, 0x7FC0),
            (Float(bitPattern: 0x0001_16C2), 0x0001), (.leastNonzeroMagnitude, 0x0000),
        ]
        let u = url("bf16.safetensors")
        try SafeTensorsWriter.write([("b", [cases.count], cases.map(\.0))], dtype: .bf16, to: u)
        let f = try SafeTensorsFile(url: u)
        XCTAssertEqual(f.info("b")?.dtype, .bf16)
        let raw = try f.bytes("b")
        for (i, (v, bits)) in cases.enumerated() {
            XCTAssertEqual(UInt16(raw[2 * i]) | UInt16(raw[2 * i + 1]) << 8, bits, "bf16 of \(v)")
        }
        let back = try f.floats("b")
        for (i, (_, bits)) in cases.enumerated() {
            let expected = Float(bitPattern: UInt32(bits) << 16)
            if expected.isNaN { XCTAssertTrue(back[i].isNaN) } else { XCTAssertEqual(back[i].bitPattern, expected.bitPattern) }
        }
        // BF16 -> fp32 -> BF16 is the identity on every non-NaN pattern.
        for b in 0...UInt16.max {
            let x = bfloat16BitsToFloat(b)
            if !x.isNaN { XCTAssertEqual(floatToBFloat16Bits(x), b) }
        }
    }

    func testF64Storage() throws {
        let values: [Float] = [0.1, -2.5, .infinity, Float(bitPattern: 0x0001_16C2)]
        let u = url("f64.safetensors")
        try SafeTensorsWriter.write([("d", [2, 2], values)], dtype: .f64, to: u)
        let f = try SafeTensorsFile(url: u)
        XCTAssertEqual(f.info("d")?.dtype, .f64)
        XCTAssertEqual(f.info("d")?.byteRange.count, 32)
        XCTAssertEqual(try f.floats("d").map(\.bitPattern), values.map(\.bitPattern))
    }

    func testIntegerTensors() throws {
        let i64: [Int64] = [.min, -1, 0, 1, 1 << 40, .max]
        let u = url("ints.safetensors")
        try SafeTensorsWriter.write([
            .integers("embeddings.position_ids", shape: [1, 6], i64),
            .integers("i32", shape: [3], [-7, 0, Int64(Int32.max)], as: .i32),
            .integers("i8", shape: [2], [-128, 127], as: .i8),
            .integers("u16", shape: [2], [0, 65535], as: .u16),
            .integers("mask", shape: [3], [1, 0, 1], as: .bool),
            .raw("codes", dtype: .u8, shape: [2, 3], bytes: [0, 1, 2, 253, 254, 255]),
            .raw("big", dtype: .u64, shape: [1], bytes: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]),
        ], to: u)
        let f = try SafeTensorsFile(url: u)
        XCTAssertEqual(f.info("embeddings.position_ids")?.dtype, .i64)
        XCTAssertEqual(try f.int64s("embeddings.position_ids"), i64)
        XCTAssertEqual(try f.int64s("i32"), [-7, 0, Int64(Int32.max)])
        XCTAssertEqual(f.info("i32")?.dtype, .i32)
        XCTAssertEqual(try f.int64s("i8"), [-128, 127])
        XCTAssertEqual(try f.int64s("u16"), [0, 65535])
        XCTAssertEqual(try f.int64s("mask"), [1, 0, 1])
        XCTAssertEqual(f.info("mask")?.dtype, .bool)
        XCTAssertEqual(try f.bytes("codes"), [0, 1, 2, 253, 254, 255])
        XCTAssertEqual(try f.int64s("codes"), [0, 1, 2, 253, 254, 255])
        XCTAssertEqual(f.info("codes")?.shape, [2, 3])
        XCTAssertEqual(try f.withRawBytes("codes") { Array($0) }, [0, 1, 2, 253, 254, 255])
        assertSTError(.valueOutOfRange, path: u.path, contains: ["\"big\""]) { try f.int64s("big") }
        assertSTError(.wrongDType, path: u.path, contains: ["\"codes\"", "U8"]) { try f.floats("codes") }
        assertSTError(.wrongDType, path: u.path, contains: ["\"i32\""]) { try f.withFloatBuffer("i32") { $0.count } }
    }

    func testMetadataRoundTrip() throws {
        let meta = ["format": "pt", "weird": "a\"b\\c\nd\u{1}é/\u{2028}\t", "": "empty key", "z": ""]
        let u = url("meta.safetensors")
        try SafeTensorsWriter.write([("x", [1], [1])], metadata: meta, to: u)
        XCTAssertEqual(try SafeTensorsFile(url: u).metadata, meta)

        // Empty metadata: no __metadata__ entry at all, like safetensors' save(metadata=None).
        let v = url("nometa.safetensors")
        try SafeTensorsWriter.write([("x", [1], [1])], metadata: [:], to: v)
        let bytes = try contents(v)
        XCTAssertFalse(String(decoding: bytes, as: UTF8.self).contains("__metadata__"))
        XCTAssertEqual(try SafeTensorsFile(url: v).metadata, [:])
    }

    func testEmptyAndScalarTensors() throws {
        let u = url("shapes.safetensors")
        try SafeTensorsWriter.write([
            .floats("empty", shape: [0, 3], []),
            .floats("empty2", shape: [3, 0, 2], [], as: .f16),
            .floats("scalar", shape: [], [2.5]),
            .integers("iscalar", shape: [], [-3]),
            .floats("after", shape: [2], [1, 2]),
        ], to: u)
        let f = try SafeTensorsFile(url: u)
        XCTAssertEqual(f.names, ["after", "empty", "empty2", "iscalar", "scalar"])
        XCTAssertEqual(f.info("empty")?.shape, [0, 3])
        XCTAssertEqual(f.info("empty")?.elementCount, 0)
        XCTAssertEqual(f.info("empty")?.byteRange.count, 0)
        XCTAssertEqual(try f.floats("empty"), [])
        XCTAssertEqual(try f.floats("empty2"), [])
        XCTAssertEqual(try f.withFloatBuffer("empty") { $0.count }, 0)
        XCTAssertEqual(f.info("scalar")?.shape, [])
        XCTAssertEqual(f.info("scalar")?.elementCount, 1)
        XCTAssertEqual(try f.floats("scalar"), [2.5])
        XCTAssertEqual(try f.int64s("iscalar"), [-3])
        XCTAssertEqual(try f.floats("after"), [1, 2])
    }

    func testNoTensorsAtAll() throws {
        // Same bytes as the Rust library's test_empty: `{}` padded to 8.
        let bytes = try SafeTensorsWriter.serialize([], metadata: [:])
        XCTAssertEqual(bytes, [8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32])
        let u = try writeBytes(bytes, to: "empty.safetensors")
        let f = try SafeTensorsFile(url: u)
        XCTAssertEqual(f.names, [])
        XCTAssertEqual(f.headerSize, 8)
    }

    func testWithFloatBufferIsZeroCopyForF32AndConvertsOtherwise() throws {
        let values: [Float] = (0..<1000).map { Float($0) * 0.25 - 7 }
        let u = url("zc.safetensors")
        try SafeTensorsWriter.write([.floats("w", shape: [10, 100], values), .floats("h", shape: [1000], values, as: .f16),
                                     .floats("odd", shape: [3], [1, 2, 3], as: .bf16)], to: u)
        let f = try SafeTensorsFile(url: u)
        let p1 = try f.withFloatBuffer("w") { buf -> Int in
            XCTAssertEqual(Array(buf), values)
            return Int(bitPattern: buf.baseAddress)
        }
        let p2 = try f.withFloatBuffer("w") { Int(bitPattern: $0.baseAddress) }
        XCTAssertEqual(p1, p2, "F32 buffer should come straight from the mapping")
        XCTAssertEqual(p1 % 8, 0)
        let info = try XCTUnwrap(f.info("w"))
        XCTAssertEqual(info.byteRange.lowerBound % 8, 0)
        XCTAssertEqual(try f.withFloatBuffer("h") { Array($0) }, values)  // exactly representable in fp16
        XCTAssertEqual(try f.withFloatBuffer("odd") { Array($0) }, [1, 2, 3])
    }

    func testUnalignedF32FromForeignWriterIsCopied() throws {
        // A writer that does not pad the header: data starts at an odd offset.
        var header = #"{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        while (8 + header.utf8.count) % 4 != 1 { header += " " }
        let u = try writeBytes(rawFile(header, data: [0, 0, 128, 63, 0, 0, 0, 192]), to: "odd.safetensors")
        let f = try SafeTensorsFile(url: u)
        XCTAssertEqual(f.info("t")?.byteRange.lowerBound, 8 + header.utf8.count)
        XCTAssertEqual((8 + header.utf8.count) % 4, 1)
        XCTAssertEqual(try f.withFloatBuffer("t") { buf -> [Float] in
            XCTAssertEqual(Int(bitPattern: buf.baseAddress) % 4, 0)
            return Array(buf)
        }, [1, -2])
        XCTAssertEqual(try f.floats("t"), [1, -2])
    }

    func testLargeTensorStreamsThroughChunks() throws {
        // Larger than the writer's conversion chunk and I/O buffer.
        let n = 300_000
        let values: [Float] = (0..<n).map { Float($0 % 2048) - 1024 }
        let u = url("big.safetensors")
        try SafeTensorsWriter.write([("a", [n], values), ("b", [n / 2, 2], values)], dtype: .f16, to: u)
        let f = try SafeTensorsFile(url: u)
        XCTAssertEqual(try f.floats("a"), values)
        XCTAssertEqual(try f.floats("b"), values)
        let v = url("big32.safetensors")
        try SafeTensorsWriter.write([("a", [n], values)], to: v)
        XCTAssertEqual(try SafeTensorsFile(url: v).floats("a"), values)
        XCTAssertEqual(try SafeTensorsFile(url: v).fileSize, 8 + (try SafeTensorsFile(url: v).headerSize) + 4 * n)
    }

    func testConcurrentReads() throws {
        let values: [Float] = (0..<4096).map { Float($0) }
        let u = url("conc.safetensors")
        try SafeTensorsWriter.write([("w", [4096], values)], dtype: .bf16, to: u)
        let f = try SafeTensorsFile(url: u)
        final class Results: @unchecked Sendable {
            let lock = NSLock()
            var ok = [Bool](repeating: false, count: 8)
        }
        let results = Results()
        let expected = values.map { bfloat16BitsToFloat(floatToBFloat16Bits($0)) }
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            let good = (try? f.floats("w")) == expected
            results.lock.lock()
            results.ok[i] = good
            results.lock.unlock()
        }
        XCTAssertEqual(results.ok, [Bool](repeating: true, count: 8))
    }
}
