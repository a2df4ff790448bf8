import Foundation
import XCTest

/// Fixtures of `Scripts/fixtures/make_metric_fixtures.py` and the shared data directory.
enum MetricFixtures {
    static var root: URL {
        Bundle.module.resourceURL!.appendingPathComponent("Fixtures")
    }

    static func json(_ name: String) throws -> [String: Any] {
        let url = root.appendingPathComponent("metrics").appendingPathComponent(name)
        let data = try Data(contentsOf: url)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any], name)
    }

    static func decode<T: Decodable>(_ type: T.Type, _ name: String) throws -> T {
        let url = root.appendingPathComponent("metrics").appendingPathComponent(name)
        return try JSONDecoder().decode(T.self, from: Data(contentsOf: url))
    }

    /// The real data (`$AQBERT_DATA`, `/work/shared/data`, or `../shared/data` next to the
    /// repository); tests that need it skip when it is absent.
    static func dataDirectory(file: StaticString = #filePath) throws -> URL {
        var candidates: [String] = []
        if let env = ProcessInfo.processInfo.environment["AQBERT_DATA"] { candidates.append(env) }
        candidates.append("/work/shared/data")
        let repo = URL(fileURLWithPath: "\(file)").deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(repo.deletingLastPathComponent().appendingPathComponent("shared/data").path)
        for c in candidates where FileManager.default.fileExists(atPath: c + "/squad11/dev-v1.1.json") {
            return URL(fileURLWithPath: c)
        }
        throw XCTSkip("real data not found (set AQBERT_DATA, or put it at ../shared/data): tried \(candidates.joined(separator: ", "))")
    }

    static func temporaryDirectory() throws -> URL {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("aqtasks-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        return u
    }

    @discardableResult
    static func write(_ text: String, _ name: String, in dir: URL) throws -> URL {
        let u = dir.appendingPathComponent(name)
        try Data(text.utf8).write(to: u)
        return u
    }
}

/// |actual - expected| <= 1e-9 * max(1, |expected|): the fixtures' numbers are reproduced, not
/// approximated.
func assertMetric(_ actual: Double, _ expected: Double, _ what: @autoclosure () -> String,
                file: StaticString = #filePath, line: UInt = #line) {
    let tolerance = 1e-9 * max(1, abs(expected))
    if !(abs(actual - expected) <= tolerance) {
        XCTFail("\(what()): \(actual) vs expected \(expected) (diff \(actual - expected))", file: file, line: line)
    }
}

/// Runs the built `aqbert` executable (next to the test bundle, or `$AQBERT_BIN`); skips when absent.
enum ScoreCLI {
    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    static func binary() throws -> URL {
        if let p = ProcessInfo.processInfo.environment["AQBERT_BIN"] { return URL(fileURLWithPath: p) }
        let candidates = [Bundle.main.bundleURL, Bundle.main.bundleURL.deletingLastPathComponent()]
            + Bundle.allBundles.map { $0.bundleURL.deletingLastPathComponent() }
        for c in candidates {
            let u = c.appendingPathComponent("aqbert")
            if FileManager.default.isExecutableFile(atPath: u.path) { return u }
        }
        throw XCTSkip("aqbert executable not built next to the tests (set AQBERT_BIN)")
    }

    static func run(_ args: [String]) throws -> Result {
        let p = Process()
        p.executableURL = try binary()
        p.arguments = args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                      stderr: String(decoding: e, as: UTF8.self))
    }

    /// The one JSON object printed with `--json`.
    static func json(_ r: Result, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        XCTAssertEqual(r.status, 0, r.stderr, file: file, line: line)
        let lines = r.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, "one line of JSON: \(r.stdout)", file: file, line: line)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], file: file, line: line)
    }
}
