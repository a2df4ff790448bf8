import Foundation
import XCTest

/// Runs the built `aqbert` executable (next to the test bundle, or `$AQBERT_BIN`).
struct CLI {
    struct Result {
        let status: Int32
        let exited: Bool   // false when killed by a signal (a trap)
        let stdout: String
        let stderr: String
    }

    static var binary: URL {
        if let p = ProcessInfo.processInfo.environment["AQBERT_BIN"] { return URL(fileURLWithPath: p) }
        // On Linux the test bundle runs from the build products folder.
        let candidates = [Bundle.main.bundleURL, Bundle.main.bundleURL.deletingLastPathComponent()]
            + Bundle.allBundles.map { $0.bundleURL.deletingLastPathComponent() }
        for c in candidates {
            let u = c.appendingPathComponent("aqbert")
            if FileManager.default.isExecutableFile(atPath: u.path) { return u }
        }
        return Bundle.main.bundleURL.appendingPathComponent("aqbert")
    }

    /// Runs `aqbert args` (or `executable args`, with `environment` added to this process's).
    @discardableResult
    static func run(_ args: [String], stdin: String? = nil, executable: URL? = nil, environment: [String: String] = [:]) throws -> Result {
        let p = Process()
        p.executableURL = executable ?? binary
        p.arguments = args
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let out = Pipe(), err = Pipe(), inp = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = inp
        try p.run()
        if let stdin { inp.fileHandleForWriting.write(Data(stdin.utf8)) }
        try inp.fileHandleForWriting.close()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, exited: p.terminationReason == .exit,
                      stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }
}

extension CLI {
    /// Starts `aqbert args`, waits until `file` exists (a first checkpoint), then SIGKILLs it.
    /// Returns how the process ended (`.uncaughtSignal` when it was killed mid-run).
    static func killAfter(_ args: [String], fileAppears file: URL, timeout: TimeInterval = 60) throws -> Process.TerminationReason {
        let p = Process()
        p.executableURL = binary
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        let deadline = Date().addingTimeInterval(timeout)
        while !FileManager.default.fileExists(atPath: file.path) && p.isRunning && Date() < deadline { usleep(2000) }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        return p.terminationReason
    }
}

/// Asserts a clean failure: a normal non-zero exit (no trap) with exactly one error line on
/// stderr containing `needle` (warnings before it are allowed), and that the refused run changed
/// no file: every scratch directory of this test process (its inputs and outputs) holds the same
/// entries with the same bytes after the run as before it, except under `startedIn`: the output
/// folder of a run that failed after its work began (it keeps what it wrote, checkpoints
/// included, but never a finished model; the test says what it may hold).
func assertUserError(_ run: @autoclosure () throws -> CLI.Result, contains needle: String, startedIn: URL? = nil,
                     file: StaticString = #filePath, line: UInt = #line) {
    let exempt = startedIn.map { $0.standardizedFileURL.path }
    func watched(_ s: [String: Data]) -> [String: Data] {
        guard let exempt else { return s }
        return s.filter { $0.key != exempt && !$0.key.hasPrefix(exempt + "/") }
    }
    let before = watched(Scratch.snapshot())
    let r: CLI.Result
    do { r = try run() } catch {
        XCTFail("the command did not run: \(error)", file: file, line: line)
        return
    }
    XCTAssertTrue(r.exited, "killed by a signal (trap): \(r.stderr)", file: file, line: line)
    XCTAssertNotEqual(r.status, 0, "exit status", file: file, line: line)
    let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: true).filter { !$0.hasPrefix("warning: ") }
    XCTAssertEqual(lines.count, 1, "one error line, got: \(r.stderr)", file: file, line: line)
    XCTAssertTrue(r.stderr.contains(needle), "stderr \"\(r.stderr)\" lacks \"\(needle)\"", file: file, line: line)
    let after = watched(Scratch.snapshot())
    let added = Set(after.keys).subtracting(before.keys).sorted(), removed = Set(before.keys).subtracting(after.keys).sorted()
    let changed = before.keys.filter { after[$0] != nil && after[$0] != before[$0] }.sorted()
    XCTAssertTrue(added.isEmpty && removed.isEmpty && changed.isEmpty,
                  "the refused run changed files: added \(added), removed \(removed), changed \(changed) (\(needle))", file: file, line: line)
}

enum Scratch {
    /// The scratch directories this test process made (tests run one at a time).
    nonisolated(unsafe) static var made: [URL] = []

    static func directory() throws -> URL {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("aqbert-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        made.append(u)
        return u
    }

    /// Every entry under the scratch directories that still exist: a directory maps to an empty
    /// Data, a file to its bytes, a symbolic link to its target.
    static func snapshot() -> [String: Data] {
        let fm = FileManager.default
        var out: [String: Data] = [:]
        made.removeAll { !fm.fileExists(atPath: $0.path) }
        for root in made {
            guard let walker = fm.enumerator(atPath: root.path) else { continue }
            while let relative = walker.nextObject() as? String {
                let path = root.path + "/" + relative
                if let target = try? fm.destinationOfSymbolicLink(atPath: path) {
                    out[path] = Data(("-> " + target).utf8)
                    continue
                }
                var isDirectory: ObjCBool = false
                guard fm.fileExists(atPath: path, isDirectory: &isDirectory) else { continue }
                out[path] = isDirectory.boolValue ? Data() : (fm.contents(atPath: path) ?? Data("unreadable".utf8))
            }
        }
        return out
    }

    /// The repository's tiny BERT fixture, found relative to this source file.
    static var tinyModel: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("AQBertTests/Fixtures/tiny-bertmodel")
    }

    static var tokenizerFixture: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("AQTokenizerTests/Fixtures")
    }

    /// The tiny random DistilBERT (bare DistilBertModel, Scripts/fixtures/make_distilbert_goldens.py).
    static var tinyDistilBert: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("AQBertTests/Fixtures/distilbert/tiny-distilbertmodel")
    }

    /// A learnable toy SST-2 in GLUE TSV (header, then `sentence<TAB>label`): "good" -> 1,
    /// "bad" -> 0, between filler words, drawn from a seeded LCG. Writes `train.tsv` (`train`
    /// rows) and `dev.tsv` (`dev` rows) into `dir`.
    static func toySST2(in dir: URL, seed: UInt64, train: Int, dev: Int) throws -> (train: URL, dev: URL) {
        var g = seed
        func next() -> UInt64 { g = g &* 6364136223846793005 &+ 1442695040888963407; return g >> 33 }
        let filler = ["the", "movie", "is", "a", "the movie", "a movie is"]
        func rows(_ n: Int) -> String {
            var s = "sentence\tlabel\n"
            for _ in 0..<n {
                let good = next() % 2 == 0
                s += "\(filler[Int(next() % 6)]) \(good ? "good" : "bad") \(filler[Int(next() % 6)]) .\t\(good ? 1 : 0)\n"
            }
            return s
        }
        let trainURL = dir.appendingPathComponent("train.tsv"), devURL = dir.appendingPathComponent("dev.tsv")
        try rows(train).write(to: trainURL, atomically: true, encoding: .utf8)
        try rows(dev).write(to: devURL, atomically: true, encoding: .utf8)
        return (trainURL, devURL)
    }

    /// A model directory: the tiny BERT's (or `source`'s) config/weights plus a vocabulary of 99 tokens.
    static func tinyModelWithVocab(from source: URL = tinyModel) throws -> URL {
        let dir = try directory()
        for f in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(at: source.appendingPathComponent(f), to: dir.appendingPathComponent(f))
        }
        var vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "movie", "is", "good", "bad", ",", ".", "!"]
        for c in "abcdefghijklmnopqrstuvwxyz" { vocab.append(String(c)); vocab.append("##" + String(c)) }
        while vocab.count < 99 { vocab.append("[unused\(vocab.count)]") }
        try (vocab.joined(separator: "\n") + "\n").write(to: dir.appendingPathComponent("vocab.txt"), atomically: true, encoding: .utf8)
        return dir
    }
}
