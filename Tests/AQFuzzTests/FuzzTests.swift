import AQFuzz
import Foundation
import XCTest

/// The short fuzz run of the test suite (Scripts/fuzz.sh is the long one) and the replay of every
/// input a fuzz run ever found crashing (Regressions/<target>-seed<S>-<i>.bin): each must now be
/// answered, accepted or refused, without a crash.
final class FuzzTests: XCTestCase {
    var scratch: URL!
    var model: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("aqbert-fuzz-\(UUID().uuidString)")
        model = scratch.appendingPathComponent("model")
        try FileManager.default.createDirectory(at: model, withIntermediateDirectories: true)
        let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        let tiny = here.deletingLastPathComponent().appendingPathComponent("AQBertTests/Fixtures/tiny-bertmodel")
        for f in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(at: tiny.appendingPathComponent(f), to: model.appendingPathComponent(f))
        }
        try FileManager.default.copyItem(at: here.appendingPathComponent("Fixtures/vocab.txt"), to: model.appendingPathComponent("vocab.txt"))
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: scratch) }

    func targets() throws -> [FuzzTarget] {
        try FuzzTargets.make(model: model, scratch: scratch.appendingPathComponent("targets"))
    }

    /// Every parser has a target, and its seeds are valid inputs (set-up checks that).
    func testEveryParserHasATargetWithValidSeeds() throws {
        XCTAssertEqual(try targets().map(\.name), FuzzTargets.names)
    }

    /// The same seed and number give the same input; mutations change it.
    func testInputsAreDeterministic() throws {
        let t = try targets()
        for target in t {
            XCTAssertEqual(Fuzzer.input(target, seed: 3, iteration: 17), Fuzzer.input(target, seed: 3, iteration: 17))
        }
        let changed = (0..<50).filter { i in !t[0].seeds.contains(Fuzzer.input(t[0], seed: 3, iteration: i)) }.count
        XCTAssertGreaterThan(changed, 40)
    }

    /// 300 inputs per parser in process: a crash ends the test run (which fails it).
    func testShortFuzzRun() throws {
        for target in try targets() {
            let (accepted, rejected) = Fuzzer.run(target, seed: 20261206, iterations: 0..<300) { _ in }
            XCTAssertEqual(accepted + rejected, 300, target.name)
            XCTAssertGreaterThan(rejected, 0, "\(target.name): mutations reach the checks")
        }
    }

    /// The supervisor against scripted workers: one that dies by a signal on input 7 (the crash is
    /// that input, saved as the input the mutator makes for it, and a new worker starts after it)
    /// and one that stops answering (a hang).
    func testSupervisorFindsCrashesAndHangs() throws {
        let target = try XCTUnwrap(try targets().first { $0.name == "plan" })
        let crashes = scratch.appendingPathComponent("crashes")
        try FileManager.default.createDirectory(at: crashes, withIntermediateDirectories: true)
        func supervisor(timeout: Double, _ script: @escaping (Int) -> String) -> FuzzSupervisor {
            FuzzSupervisor(executable: URL(fileURLWithPath: "/bin/sh"), environment: [:], timeout: timeout) { _, from, _ in
                ["-c", script(from)]
            }
        }
        let crashing = supervisor(timeout: 20) { from in
            from == 5 ? "printf '5\\na\\n6\\nr\\n7\\n'; kill -SEGV $$" : "printf '8\\na\\n9\\na\\ndone 2 0\\n'"
        }
        let report = try crashing.fuzz(target, seed: 4, iterations: 5..<10, scratch: scratch, crashes: crashes)
        XCTAssertEqual(report.inputs, 5)
        XCTAssertEqual(report.accepted, 3)
        XCTAssertEqual(report.rejected, 1)
        XCTAssertEqual(report.crashes.map(\.input), [7])
        XCTAssertTrue(report.crashes.first?.reason.hasPrefix("killed by signal 11") ?? false, "\(report.crashes)")
        XCTAssertEqual(try Data(contentsOf: crashes.appendingPathComponent("plan-seed4-7.bin")), Data(Fuzzer.input(target, seed: 4, iteration: 7)))

        let hanging = supervisor(timeout: 0.5) { from in from == 0 ? "printf '0\\n'; exec sleep 5" : "printf 'done 0 0\\n'" }
        let hung = try hanging.fuzz(target, seed: 4, iterations: 0..<2, scratch: scratch, crashes: nil)
        XCTAssertEqual(hung.crashes.map(\.input), [0])
        XCTAssertTrue(hung.crashes.first?.reason.contains("a hang") ?? false, "\(hung.crashes)")
        // A worker that fails before its first input is a set-up error, not a crash.
        XCTAssertThrowsError(try supervisor(timeout: 20) { _ in "echo 'error: no model' >&2; exit 1" }
            .fuzz(target, seed: 4, iterations: 0..<2, scratch: scratch, crashes: nil)) {
            XCTAssertTrue("\($0)".contains("failed before its first input"), "\($0)")
        }
    }

    /// Inputs that once crashed a parser.
    func testRegressionsAreAnswered() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Regressions")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".bin") }.sorted()
        let byName = Dictionary(uniqueKeysWithValues: try targets().map { ($0.name, $0) })
        for file in files {
            // Files are named <target>-seed<S>-<i>.bin (target names may contain '-').
            guard let target = FuzzTargets.names.filter({ file.hasPrefix($0 + "-seed") })
                .max(by: { $0.count < $1.count }).flatMap({ byName[$0] }) else {
                XCTFail("\(file): not named after a fuzz target")
                continue
            }
            _ = target.run([UInt8](try Data(contentsOf: dir.appendingPathComponent(file))))
        }
    }
}
