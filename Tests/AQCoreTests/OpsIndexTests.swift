import Foundation
import XCTest

/// Docs/OPS.md is the index of the ops: every public `Tape` op in the sources has a row, and
/// every test the table names exists (so the index cannot silently go stale).
final class OpsIndexTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Swift files under `folder`, recursively.
    func swiftFiles(_ folder: String) throws -> [URL] {
        let base = Self.root.appendingPathComponent(folder)
        let walker = try XCTUnwrap(FileManager.default.enumerator(at: base, includingPropertiesForKeys: nil))
        return walker.compactMap { $0 as? URL }.filter { $0.pathExtension == "swift" }
    }

    /// `public func` names declared inside `extension Tape { ... }` blocks.
    static func tapeOps(in text: String) -> Set<String> {
        var ops = Set<String>()
        var depth = 0, inTape = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if depth == 0 && trimmed.hasPrefix("extension Tape") { inTape = true }
            if inTape, depth == 1, trimmed.hasPrefix("public func "),
               let name = trimmed.dropFirst("public func ".count).split(whereSeparator: { !($0.isLetter || $0.isNumber) }).first {
                ops.insert(String(name))
            }
            depth += line.filter { $0 == "{" }.count - line.filter { $0 == "}" }.count
            if depth == 0 { inTape = false }
        }
        return ops
    }

    func testEveryTapeOpIsListedAndEveryNamedTestExists() throws {
        let doc = try String(contentsOf: Self.root.appendingPathComponent("Docs/OPS.md"), encoding: .utf8)
        var ops = Set<String>()
        for file in try swiftFiles("Sources") { ops.formUnion(Self.tapeOps(in: try String(contentsOf: file, encoding: .utf8))) }
        XCTAssertTrue(ops.isSuperset(of: ["linear", "gelu", "layerNorm", "softmax", "fakeQuantize", "quantizedEmbedding"]),
                      "the scan found the ops: \(ops.sorted())")
        for op in ops.sorted() {
            XCTAssertTrue(doc.contains("`\(op)`"), "Docs/OPS.md has no row for Tape.\(op)")
        }
        // Every "SomethingTests.testName" the table cites is a test in that class.
        var tests: [String: String] = [:]  // class -> source text
        for file in try swiftFiles("Tests") {
            let text = try String(contentsOf: file, encoding: .utf8)
            for match in text.matches(of: try Regex(#"final class (\w+Tests)\b"#)) {
                if let name = match.output[1].substring { tests[String(name), default: ""] += text }
            }
        }
        let cited = doc.matches(of: try Regex(#"(\w+Tests)\.(test\w+)"#)).compactMap { m -> (String, String)? in
            guard let cls = m.output[1].substring, let test = m.output[2].substring else { return nil }
            return (String(cls), String(test))
        }
        XCTAssertGreaterThan(cited.count, 20)
        for (cls, test) in cited {
            XCTAssertTrue(tests[cls]?.contains("func \(test)(") ?? false, "Docs/OPS.md cites \(cls).\(test), which does not exist")
        }
    }
}
