import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import XCTest
import AQSafeTensors

/// A fresh temporary directory per test, removed afterwards.
class TempDirTestCase: XCTestCase {
    var tmp: URL!

    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory
            .appendingPathComponent("aqst-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if let tmp { try? FileManager.default.removeItem(at: tmp) }
    }

    func url(_ name: String) -> URL { tmp.appendingPathComponent(name) }

    func writeBytes(_ bytes: [UInt8], to name: String) throws -> URL {
        let u = url(name)
        try writeFile(bytes, to: u)
        return u
    }

    func contents(_ u: URL) throws -> [UInt8] { [UInt8](try Data(contentsOf: u)) }

    func listing() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: tmp.path).sorted()
    }

    /// Asserts that `body` throws a SafeTensorsError of `kind` whose message is a single line naming
    /// `path` (and containing each of `contains`).
    func assertSTError<T>(_ kind: SafeTensorsError.Kind, path: String, contains: [String] = [],
                          file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> T) {
        do {
            _ = try body()
            XCTFail("expected \(kind) error, got success", file: file, line: line)
        } catch let e as SafeTensorsError {
            if ProcessInfo.processInfo.environment["AQST_PRINT_ERRORS"] != nil { print("[\(e.kind)] \(e)") }
            XCTAssertEqual(e.kind, kind, "message: \(e.description)", file: file, line: line)
            XCTAssertTrue(e.description.contains(path), "message does not name \(path): \(e.description)", file: file, line: line)
            XCTAssertFalse(e.description.contains("\n") || e.description.contains("\r"),
                           "message is not one line: \(e.description)", file: file, line: line)
            XCTAssertEqual(e.errorDescription, e.description, file: file, line: line)
            for s in contains {
                XCTAssertTrue(e.description.contains(s), "message lacks \(s): \(e.description)", file: file, line: line)
            }
        } catch {
            XCTFail("unexpected error type \(type(of: error)): \(error)", file: file, line: line)
        }
    }
}

/// Plain open/write/close (Foundation's Data.write fsyncs, which makes the fuzz loop I/O bound).
func writeFile(_ bytes: [UInt8], to u: URL) throws {
    let fd = open(u.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw CocoaError(.fileWriteUnknown) }
    defer { close(fd) }
    let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    guard n == bytes.count else { throw CocoaError(.fileWriteUnknown) }
}

/// Builds a safetensors byte image by hand: the 8-byte size (`declaredSize`, default the header's
/// real length), the header text verbatim, then `data`.
func rawFile(_ header: String, data: [UInt8] = [], declaredSize: UInt64? = nil) -> [UInt8] {
    let h = Array(header.utf8)
    let n = declaredSize ?? UInt64(h.count)
    var out: [UInt8] = (0..<8).map { UInt8(truncatingIfNeeded: n >> (8 * UInt64($0))) }
    out += h
    out += data
    return out
}

func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }

/// Deterministic xorshift64* generator.
struct TestRNG {
    var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }
}
