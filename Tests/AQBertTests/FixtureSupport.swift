import AQSafeTensors
import Foundation
import XCTest

@testable import AQBert

enum Fixtures {
    static var root: URL {
        Bundle.module.resourceURL!.appendingPathComponent("Fixtures")
    }

    static func directory(_ name: String) -> URL { root.appendingPathComponent(name) }

    /// The all-MiniLM-L6-v2 directory: `$AQBERT_MINILM`, else the default download location.
    static func miniLM() -> URL? {
        let env = ProcessInfo.processInfo.environment
        var candidates: [String] = []
        if let p = env["AQBERT_MINILM"] { candidates.append(p) }
        let home = env["HOME"] ?? "/root"
        candidates.append(env["AQBERT_HOME"].map { $0 + "/models/all-MiniLM-L6-v2" } ?? home + "/.cache/aqbert/models/all-MiniLM-L6-v2")
        for c in candidates where FileManager.default.fileExists(atPath: c + "/model.safetensors") {
            return URL(fileURLWithPath: c)
        }
        return nil
    }
}

/// Compares `actual` with `expected` elementwise: |a - e| <= atol + rtol * |e|, reporting the
/// shape and the worst element (llm.c `check_tensor`, tinygrad `helper_test_op`).
func assertClose(_ actual: [Float], _ expected: [Float], atol: Float, rtol: Float, _ what: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    guard actual.count == expected.count else {
        XCTFail("\(what): \(actual.count) values vs \(expected.count) expected", file: file, line: line)
        return
    }
    var worst = -1
    var worstExcess: Float = 0
    var maxDiff: Float = 0
    for i in 0..<actual.count {
        let d = abs(actual[i] - expected[i])
        maxDiff = max(maxDiff, d)
        let excess = d - (atol + rtol * abs(expected[i]))
        if excess > worstExcess || !(d == d) { worstExcess = excess; worst = i }
    }
    if worst >= 0 {
        XCTFail("\(what): max |diff| \(maxDiff); worst element \(worst): \(actual[worst]) vs \(expected[worst]) (atol \(atol), rtol \(rtol), \(actual.count) values)",
                file: file, line: line)
    }
}
