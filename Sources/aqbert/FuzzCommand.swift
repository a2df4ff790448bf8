import AQFiles
import AQFuzz
import ArgumentParser
import Foundation

/// `aqbert fuzz`: the seeded mutation fuzzer over every parser of user files. A supervising
/// process runs each target in a worker process (this command with --worker), which reports
/// each input's number before parsing it; when a worker dies (a trap or signal) or stalls past
/// --timeout, the supervisor makes that input again from its number, saves it under --crashes,
/// and starts a new worker after it. Prints one line per target.
struct FuzzCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fuzz",
        abstract: "Mutation-fuzz aqbert's parsers of user files (a developer tool; see Scripts/fuzz.sh).",
        discussion: "Targets: \(FuzzTargets.names.joined(separator: ", ")). Seeds come from --model (config.json, model.safetensors, vocab.txt) and small built-in files."
    )

    @Option(help: "A model directory with config.json, model.safetensors and vocab.txt (the seeds).") var model: String
    @Option(help: "Comma-separated targets (default: all).") var targets: String?
    @Option(help: "Inputs per target.") var iterations: Int = 1000
    @Option(help: "Run seed (the inputs are a function of seed, target and input number).") var seed: UInt64 = 1
    @Option(help: "Directory for crashing inputs (one file each); default: not saved.") var crashes: String?
    @Option(help: "Seconds one input may take before it counts as a hang.") var timeout: Double = 20
    @Option(help: "Replay this input file on the (single) target instead of fuzzing.") var replay: String?
    @Flag(help: .hidden) var worker = false
    @Option(help: .hidden) var from: Int = 0
    @Option(help: .hidden) var scratch: String?

    func validate() throws {
        if iterations < 1 { throw ValidationError("--iterations must be at least 1") }
        if !(timeout > 0) { throw ValidationError("--timeout must be positive") }
        if from < 0 { throw ValidationError("--from must be 0 or more") }
        for name in selected where !FuzzTargets.names.contains(name) {
            throw ValidationError("unknown target \(name); targets: \(FuzzTargets.names.joined(separator: ", "))")
        }
        if replay != nil && selected.count != 1 { throw ValidationError("--replay needs exactly one target in --targets") }
    }

    var selected: [String] {
        targets.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } } ?? FuzzTargets.names
    }

    func makeTargets(in directory: URL) throws -> [FuzzTarget] {
        let modelDir = try TextIO.modelDirectory(model)
        do {
            return try FuzzTargets.make(model: modelDir, scratch: directory).filter { selected.contains($0.name) }
        } catch { throw CLIError("cannot set up the fuzz targets from \(model): \(error)") }
    }

    func run() throws {
        if worker { return try runWorker() }
        // Scratch in memory where there is a tmpfs: every input is written to a file.
        let base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : NSTemporaryDirectory()
        let work = URL(fileURLWithPath: base).appendingPathComponent("aqbert-fuzz-\(getpid())")
        defer { try? FileManager.default.removeItem(at: work) }
        let targets = try makeTargets(in: work.appendingPathComponent("supervisor"))
        if let replay {
            let input = [UInt8](try Data(contentsOf: try TextIO.existingFile(replay, option: "--replay")))
            switch targets[0].run(input) {
            case .success: print("\(targets[0].name): accepted")
            case .failure(let e): print("\(targets[0].name): rejected: \("\(e)".prefix(300))")
            }
            return
        }
        if let crashes {
            do { try makeDirectories(crashes) } catch { throw CLIError("--crashes: \(error)") }
        }
        var totalCrashes = 0
        for target in targets {
            let started = Date()
            var next = from, accepted = 0, rejected = 0
            var found: [(Int, String)] = []
            while next < iterations {
                let outcome = try supervise(target: target.name, from: next, scratch: work.appendingPathComponent("w-\(target.name)"))
                accepted += outcome.accepted
                rejected += outcome.rejected
                guard let failed = outcome.failed else { break }
                found.append((failed, outcome.reason))
                if let crashes {
                    let file = URL(fileURLWithPath: crashes).appendingPathComponent("\(target.name)-seed\(seed)-\(failed).bin")
                    try writeAtomically(Data(Fuzzer.input(target, seed: seed, iteration: failed)), toPath: file.path)
                }
                next = failed + 1
            }
            totalCrashes += found.count
            let seconds = Date().timeIntervalSince(started)
            print(target.name.padding(toLength: 17, withPad: " ", startingAt: 0)
                  + String(format: " inputs %ld  accepted %ld  rejected %ld  crashes %ld  (%.0f inputs/s)",
                           iterations - from, accepted, rejected, found.count, Double(iterations - from) / max(seconds, 1e-9)))
            for (i, reason) in found { print("  crash at input \(i): \(reason)") }
            fflush(stdout)
        }
        if totalCrashes > 0 { throw CLIError("\(totalCrashes) crashing input(s)\(crashes.map { "; saved in \($0)" } ?? "")") }
    }

    /// Runs one worker from input `from`; returns its counts and, when it died or stalled, the
    /// input it was on.
    func supervise(target: String, from: Int, scratch: URL) throws -> (accepted: Int, rejected: Int, failed: Int?, reason: String) {
        let p = Process()
        p.executableURL = StepRunner.executable
        p.arguments = ["fuzz", "--worker", "--model", model, "--targets", target, "--iterations", String(iterations),
                       "--seed", String(seed), "--from", String(from), "--scratch", scratch.path]
        p.environment = StepRunner.childEnvironment
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let fd = out.fileHandleForReading.fileDescriptor
        var buffer: [UInt8] = [], last = from - 1, summary: (Int, Int)? = nil, hung = false
        var accepted = 0, rejected = 0
        var chunk = [UInt8](repeating: 0, count: 65536)
        reading: while true {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, Int32(timeout * 1000))
            if ready == 0 { hung = true; kill(p.processIdentifier, SIGKILL); break }
            if ready < 0 { if errno == EINTR { continue }; break }
            let n = read(fd, &chunk, chunk.count)
            if n <= 0 { break }
            buffer += chunk[0..<n]
            var consumed = 0
            defer { buffer.removeSubrange(..<consumed) }
            while let newline = buffer[consumed...].firstIndex(of: 0x0A) {
                let line = String(decoding: buffer[consumed..<newline], as: UTF8.self)
                consumed = newline + 1
                if line.hasPrefix("done ") {
                    let parts = line.split(separator: " ").compactMap { Int($0) }
                    if parts.count == 2 { summary = (parts[0], parts[1]) }
                    break reading
                } else if line == "a" {
                    accepted += 1
                } else if line == "r" {
                    rejected += 1
                } else if let i = Int(line) {
                    last = i
                }
            }
        }
        let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        if let summary, p.terminationReason == .exit, p.terminationStatus == 0 {
            return (summary.0, summary.1, nil, "")
        }
        guard last >= from else {
            throw CLIError("the fuzz worker for \(target) failed before its first input: \(errText.split(separator: "\n").last ?? "")")
        }
        let reason = hung ? "no answer within \(timeout) s (a hang)"
            : p.terminationReason == .uncaughtSignal ? "killed by signal \(p.terminationStatus)" : "exit \(p.terminationStatus)"
        let detail = errText.split(separator: "\n").first { $0.contains("Fatal error") || $0.contains("error") }.map { ": " + $0 } ?? ""
        return (accepted, rejected, last, reason + detail.prefix(300))
    }

    func runWorker() throws {
        guard let scratch else { throw CLIError("--worker needs --scratch") }
        let targets = try makeTargets(in: URL(fileURLWithPath: scratch))
        guard let target = targets.first else { throw CLIError("no target") }
        // Each input's number goes out before it runs, unbuffered, so that it is known after a crash.
        let counts = Fuzzer.run(target, seed: seed, iterations: from..<iterations, started: { i in
            let line = Array("\(i)\n".utf8)
            _ = line.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
        }, finished: { _, accepted in
            _ = write(1, accepted ? "a\n" : "r\n", 2)
        })
        let line = Array("done \(counts.accepted) \(counts.rejected)\n".utf8)
        _ = line.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
    }
}
