import Foundation
import XCTest
import AQSafeTensors

/// One test per malformed-input case: each must be a SafeTensorsError (never a trap) whose
/// message is one line naming the file (and the tensor where relevant).
final class ErrorTests: TempDirTestCase {
    /// Writes `bytes` and asserts that opening fails with `kind`.
    func assertOpenFails(_ bytes: [UInt8], _ kind: SafeTensorsError.Kind, contains: [String] = [],
                         file: StaticString = #filePath, line: UInt = #line) {
        let u: URL
        do { u = try writeBytes(bytes, to: "bad.safetensors") } catch { return XCTFail("\(error)") }
        assertSTError(kind, path: u.path, contains: contains, file: file, line: line) { try SafeTensorsFile(url: u) }
    }

    let f32x2 = #"{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
    let eightBytes = [UInt8](repeating: 0, count: 8)

    func testValidBaselineOpens() throws {
        let u = try writeBytes(rawFile(f32x2, data: eightBytes), to: "ok.safetensors")
        XCTAssertEqual(try SafeTensorsFile(url: u).floats("t"), [0, 0])
    }

    func testMissingFile() {
        let u = url("model.safetensors")
        assertSTError(.cannotOpen, path: u.path) { try SafeTensorsFile(url: u) }
        do {
            _ = try SafeTensorsFile(url: u)
        } catch {
            XCTAssertEqual("\(error)", "cannot open \(u.path): No such file or directory")
        }
    }

    func testPathIsDirectory() {
        assertSTError(.cannotOpen, path: tmp.path, contains: ["Is a directory"]) { try SafeTensorsFile(url: tmp) }
    }

    func testNotARegularFile() throws {
        assertSTError(.cannotOpen, path: "/dev/null", contains: ["not a regular file"]) {
            try SafeTensorsFile(url: URL(fileURLWithPath: "/dev/null"))
        }
    }

    func testEmptyFileAndShorterThanEightBytes() {
        assertOpenFails([], .fileTooSmall, contains: ["0 bytes"])
        assertOpenFails([1, 0, 0, 0, 0, 0, 0], .fileTooSmall, contains: ["7 bytes"])
    }

    func testHeaderSizeLargerThanFile() {
        assertOpenFails(rawFile(f32x2, data: eightBytes, declaredSize: 1000), .headerSizeExceedsFile, contains: ["1000"])
    }

    func testHeaderSizeAbsurdlyLarge() {
        assertOpenFails(rawFile("{}", declaredSize: 100_000_001), .headerTooLarge, contains: ["100000001"])
        assertOpenFails(rawFile("{}", declaredSize: .max), .headerTooLarge, contains: ["18446744073709551615"])
        assertOpenFails(rawFile("{}", declaredSize: 1 << 63), .headerTooLarge)
    }

    func testHeaderNotUTF8() {
        var bytes = rawFile(#"{"t\#u{e9}":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: eightBytes)
        bytes[11] = 0xFF  // break the é
        assertOpenFails(bytes, .invalidUTF8, contains: ["UTF-8"])
        assertOpenFails(rawFile("{\"\u{1}\":1}") .enumerated().map { $0.offset == 10 ? 0xC0 : $0.element }, .invalidUTF8)
    }

    func testHeaderNotJSON() {
        assertOpenFails(rawFile(#"{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#, data: eightBytes),
                        .invalidJSON, contains: ["not valid JSON"])
        assertOpenFails(rawFile(#"{"t": nope}"#), .invalidJSON)
        assertOpenFails(rawFile(#"{"a":1,}"#), .invalidJSON)
        assertOpenFails(rawFile("{}\u{0}\u{0}"), .invalidJSON)           // NUL padding is not whitespace
        assertOpenFails(rawFile(#"{"a":"\ud800"}"#), .invalidJSON)     // lone surrogate
        assertOpenFails(rawFile("{\"a\":" + String(repeating: "[", count: 10_000)), .invalidJSON, contains: ["nested"])
    }

    func testHeaderNotAnObject() {
        assertOpenFails(rawFile("[1, 2]   "), .headerNotObject)
        assertOpenFails(rawFile("  {}    "), .headerNotObject, contains: ["'{'"])
        assertOpenFails(rawFile(""), .headerNotObject)
    }

    func testEntryNotAnObject() {
        assertOpenFails(rawFile(#"{"t":[1,2]}"#), .invalidEntry, contains: ["\"t\"", "an array"])
    }

    func testEntryMissingFields() {
        assertOpenFails(rawFile(#"{"t":{"shape":[2],"data_offsets":[0,8]}}"#, data: eightBytes), .invalidEntry,
                        contains: ["\"t\"", "missing \"dtype\""])
        assertOpenFails(rawFile(#"{"t":{"dtype":"F32","data_offsets":[0,8]}}"#, data: eightBytes), .invalidEntry,
                        contains: ["\"t\"", "missing \"shape\""])
        assertOpenFails(rawFile(#"{"t":{"dtype":"F32","shape":[2]}}"#, data: eightBytes), .invalidEntry,
                        contains: ["\"t\"", "missing \"data_offsets\""])
    }

    func testEntryFieldsOfWrongType() {
        assertOpenFails(rawFile(#"{"t":{"dtype":32,"shape":[2],"data_offsets":[0,8]}}"#, data: eightBytes), .invalidEntry)
        assertOpenFails(rawFile(#"{"t":{"dtype":"F32","shape":2,"data_offsets":[0,8]}}"#, data: eightBytes), .invalidEntry)
        assertOpenFails(rawFile(#"{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}}"#, data: eightBytes), .invalidEntry)
        assertOpenFails(rawFile(#"{"t":{"dtype":"F32","shape":[2],"data_offsets":8}}"#, data: eightBytes), .invalidEntry)
        assertOpenFails(rawFile(#"{"t":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: eightBytes),
                        .invalidEntry, contains: ["twice"])
    }

    func testUnknownDType() {
        assertOpenFails(rawFile(#"{"t":{"dtype":"F31","shape":[2],"data_offsets":[0,8]}}"#, data: eightBytes),
                        .unknownDType, contains: ["\"t\"", "\"F31\""])
        assertOpenFails(rawFile(#"{"t":{"dtype":"f32","shape":[2],"data_offsets":[0,8]}}"#, data: eightBytes), .unknownDType)
    }

    func testFP8DTypeRejectedClearly() {
        assertOpenFails(rawFile(#"{"t":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}}"#, data: eightBytes),
                        .unsupportedDType, contains: ["\"t\"", "F8_E4M3", "not supported"])
        assertOpenFails(rawFile(#"{"t":{"dtype":"F8_E5M2","shape":[8],"data_offsets":[0,8]}}"#, data: eightBytes),
                        .unsupportedDType)
    }

    func testNegativeShape() {
        assertOpenFails(rawFile(#"{"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, data: eightBytes),
                        .invalidShape, contains: ["\"t\"", "negative", "[-2]"])
    }

    func testNonIntegerShape() {
        for dims in ["[2.0]", "[2.5]", "[2e0]", "[\"2\"]", "[true]", "[null]", "[[2]]"] {
            assertOpenFails(rawFile(#"{"t":{"dtype":"F32","shape":"# + dims + #","data_offsets":[0,8]}}"#, data: eightBytes),
                            .invalidShape, contains: ["\"t\"", "non-integer"])
        }
        assertOpenFails(rawFile(#"{"t":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,8]}}"#, data: eightBytes),
                        .invalidShape, contains: ["too large"])
    }

    func testShapeTimesDTypeSizeMismatch() {
        assertOpenFails(rawFile(#"{"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: eightBytes),
                        .sizeMismatch, contains: ["\"t\"", "12 bytes", "span 8"])
        assertOpenFails(rawFile(#"{"t":{"dtype":"F64","shape":[2],"data_offsets":[0,8]}}"#, data: eightBytes), .sizeMismatch)
    }

    func testShapeProductOverflow() {
        // 2^32 * 2^32 overflows Int64; 2^31 * 2^31 * 4 bytes overflows the byte count.
        assertOpenFails(rawFile(#"{"t":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#, data: eightBytes),
                        .sizeMismatch, contains: ["overflow"])
        assertOpenFails(rawFile(#"{"t":{"dtype":"F32","shape":[2147483648,2147483648],"data_offsets":[0,8]}}"#, data: eightBytes),
                        .sizeMismatch, contains: ["overflow"])
        // A zero dimension makes the tensor empty whatever the others are.
        let ok = rawFile(#"{"t":{"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}}"#)
        XCTAssertNoThrow(try SafeTensorsFile(url: writeBytes(ok, to: "zero.safetensors")))
    }

    func testOffsetsOutOfRange() {
        assertOpenFails(rawFile(#"{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,99999999999999999999]}}"#, data: eightBytes),
                        .invalidOffsets, contains: ["\"t\"", "out of range"])
        assertOpenFails(rawFile(#"{"t":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}}"#, data: eightBytes),
                        .invalidOffsets, contains: ["negative"])
        assertOpenFails(rawFile(#"{"t":{"dtype":"F32","shape":[2],"data_offsets":[0.0,8]}}"#, data: eightBytes),
                        .invalidOffsets, contains: ["non-integer"])
        assertOpenFails(rawFile(#"{"t":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}"#, data: eightBytes),
                        .invalidOffsets, contains: ["end before"])
        // Offsets beyond the data section (here the file simply has no data).
        assertOpenFails(rawFile(#"{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#), .dataSizeMismatch,
                        contains: ["\"t\"", "past the end"])
    }

    func testOverlappingOffsets() {
        let header = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        assertOpenFails(rawFile(header, data: [UInt8](repeating: 0, count: 12)), .invalidOffsets,
                        contains: ["\"b\"", "overlap", "\"a\""])
        let same = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        assertOpenFails(rawFile(same, data: eightBytes), .invalidOffsets, contains: ["overlap"])
    }

    func testNonContiguousOffsets() {
        let header = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#
        assertOpenFails(rawFile(header, data: [UInt8](repeating: 0, count: 12)), .invalidOffsets,
                        contains: ["\"b\"", "4-byte hole", "\"a\""])
        assertOpenFails(rawFile(#"{"t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: eightBytes),
                        .invalidOffsets, contains: ["start of the data section"])
    }

    func testOffsetsOutOfOrderInHeaderAreFine() throws {
        // Older writers ordered entries by name, not offset; only the tiling matters.
        let header = #"{"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#
        let f = try SafeTensorsFile(url: writeBytes(rawFile(header, data: [0, 0, 128, 63, 0, 0, 0, 64]), to: "ooo.safetensors"))
        XCTAssertEqual(try f.floats("a"), [1])
        XCTAssertEqual(try f.floats("b"), [2])
        XCTAssertEqual(f.tensorInfos.map(\.name), ["a", "b"])
    }

    func testTruncatedDataSection() throws {
        let u = url("trunc.safetensors")
        try SafeTensorsWriter.write([("a", [4], [1, 2, 3, 4]), ("b", [16], [Float](repeating: 1, count: 16))], to: u)
        let full = try contents(u)
        assertOpenFails(Array(full.dropLast(10)), .dataSizeMismatch, contains: ["truncated"])
        // Cut inside the header: the header no longer fits.
        assertOpenFails(Array(full.prefix(20)), .headerSizeExceedsFile)
    }

    func testTrailingBytesAfterData() throws {
        assertOpenFails(rawFile(f32x2, data: eightBytes + [0]), .dataSizeMismatch, contains: ["1 trailing bytes"])
    }

    func testDuplicateTensorName() {
        let header = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        assertOpenFails(rawFile(header, data: eightBytes), .duplicateTensor, contains: ["\"a\""])
    }

    func testBadMetadata() {
        assertOpenFails(rawFile(#"{"__metadata__":{"format":1}}"#), .invalidMetadata, contains: ["\"format\"", "a number"])
        assertOpenFails(rawFile(#"{"__metadata__":[]}"#), .invalidMetadata)
        assertOpenFails(rawFile(#"{"__metadata__":{},"__metadata__":{}}"#), .invalidMetadata, contains: ["twice"])
    }

    func testHostileTensorNameStaysOnOneLine() {
        let header = "{\"evil\\nname\\u2028\":{\"dtype\":\"F31\",\"shape\":[1],\"data_offsets\":[0,4]}}"
        assertOpenFails(rawFile(header, data: [0, 0, 0, 0]), .unknownDType, contains: [#""evil\nname\u2028""#])
    }

    func testAccessorErrors() throws {
        let u = url("acc.safetensors")
        try SafeTensorsWriter.write([.floats("f", shape: [1], [1]), .integers("i", shape: [1], [1])], to: u)
        let f = try SafeTensorsFile(url: u)
        assertSTError(.tensorNotFound, path: u.path, contains: ["\"nope\""]) { try f.floats("nope") }
        assertSTError(.tensorNotFound, path: u.path) { try f.int64s("nope") }
        assertSTError(.tensorNotFound, path: u.path) { try f.bytes("nope") }
        assertSTError(.tensorNotFound, path: u.path) { try f.withFloatBuffer("nope") { $0.count } }
        assertSTError(.wrongDType, path: u.path, contains: ["\"i\"", "I64"]) { try f.floats("i") }
        assertSTError(.wrongDType, path: u.path, contains: ["\"f\"", "F32"]) { try f.int64s("f") }
    }

    // MARK: writer errors

    func testWriterRejectsInconsistentTensorsAndWritesNothing() throws {
        let u = url("out.safetensors")
        let bad: [[SafeTensorsWriter.Tensor]] = [
            [.floats("x", shape: [2, 3], [1, 2, 3])],
            [.floats("x", shape: [-1], [])],
            [.floats("x", shape: [1], [1]), .floats("x", shape: [1], [2])],
            [.floats("x", shape: [1], [1], as: .i32)],
            [.integers("x", shape: [1], [1], as: .f32)],
            [.integers("x", shape: [1], [300], as: .u8)],
            [.integers("x", shape: [1], [-1], as: .u32)],
            [.raw("x", dtype: .f16, shape: [3], bytes: [0, 0, 0, 0])],
            [.floats("x", shape: [Int.max, 2], [])],
        ]
        for tensors in bad {
            assertSTError(.invalidArgument, path: u.path, contains: ["\"x\"", "cannot write"]) {
                try SafeTensorsWriter.write(tensors, to: u)
            }
        }
        assertSTError(.invalidArgument, path: u.path, contains: ["\"__metadata__\"", "reserved"]) {
            try SafeTensorsWriter.write([.floats("__metadata__", shape: [1], [1])], to: u)
        }
        XCTAssertEqual(try listing(), [])
    }

    func testFailedWriteLeavesExistingFileUntouchedAndNoTempFiles() throws {
        let u = url("model.safetensors")
        try SafeTensorsWriter.write([("x", [1], [1])], to: u)
        let before = try contents(u)
        assertSTError(.invalidArgument, path: u.path) { try SafeTensorsWriter.write([("x", [2], [1])], to: u) }
        XCTAssertEqual(try contents(u), before)
        XCTAssertEqual(try listing(), ["model.safetensors"])
        // A successful overwrite replaces it, again leaving no temporary file.
        try SafeTensorsWriter.write([("y", [1], [2])], to: u)
        XCTAssertEqual(try SafeTensorsFile(url: u).names, ["y"])
        XCTAssertEqual(try listing(), ["model.safetensors"])
    }

    func testWriteIntoMissingDirectory() {
        let u = url("no/such/dir/model.safetensors")
        assertSTError(.cannotWrite, path: u.path, contains: ["No such file or directory"]) {
            try SafeTensorsWriter.write([("x", [1], [1])], to: u)
        }
    }

    func testWriteOverADirectoryFailsAndCleansUp() throws {
        let d = url("model.safetensors")
        try FileManager.default.createDirectory(at: d.appendingPathComponent("sub"), withIntermediateDirectories: true)
        assertSTError(.cannotWrite, path: d.path) { try SafeTensorsWriter.write([("x", [1], [1])], to: d) }
        XCTAssertEqual(try listing(), ["model.safetensors"])
    }
}
