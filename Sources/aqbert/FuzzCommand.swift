import AQFiles
import AQFuzz
import AQRuns
import ArgumentParser
import Foundation

/// `aqbert fuzz`: the seeded mutation fuzzer over every parser of user files (`FuzzSupervisor`:
/// each target in worker processes, this command with --worker; a crashing input is made again
/// from its number and saved under --crashes). Prints one line per target.
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
        let modelDir = try RunInputs.modelDirectory(model, progress: TextIO.downloadBar)
        do {
            return try FuzzTargets.make(model: modelDir, scratch: directory).filter { selected.contains($0.name) }
        } catch { throw RunError("cannot set up the fuzz targets from \(model): \(error)") }
    }

    func run() throws {
        if worker { return try runWorker() }
        // Scratch in memory where there is a tmpfs: every input is written to a file.
        let base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : NSTemporaryDirectory()
        let work = URL(fileURLWithPath: base).appendingPathComponent("aqbert-fuzz-\(getpid())")
        defer { try? FileManager.default.removeItem(at: work) }
        let targets = try makeTargets(in: work.appendingPathComponent("supervisor"))
        if let replay {
            let input = [UInt8](try Data(contentsOf: try RunInputs.existingFile(replay, option: "--replay")))
            switch targets[0].run(input) {
            case .success: print("\(targets[0].name): accepted")
            case .failure(let e): print("\(targets[0].name): rejected: \("\(e)".prefix(300))")
            }
            return
        }
        if let crashes {
            do { try makeDirectories(crashes) } catch { throw RunError("--crashes: \(error)") }
        }
        let supervisor = FuzzSupervisor(executable: StepRunner.executable, environment: StepRunner.childEnvironment, timeout: timeout) {
            [model, iterations, seed] target, from, scratch in
            ["fuzz", "--worker", "--model", model, "--targets", target, "--iterations", String(iterations),
             "--seed", String(seed), "--from", String(from), "--scratch", scratch.path]
        }
        var totalCrashes = 0
        for target in targets {
            let report: FuzzSupervisor.Report
            do {
                report = try supervisor.fuzz(target, seed: seed, iterations: from..<iterations, scratch: work.appendingPathComponent("w-\(target.name)"),
                                             crashes: crashes.map { URL(fileURLWithPath: $0) })
            } catch let e as FuzzSetupError { throw RunError(e.description) }
            totalCrashes += report.crashes.count
            print(target.name.padding(toLength: 17, withPad: " ", startingAt: 0)
                  + String(format: " inputs %ld  accepted %ld  rejected %ld  crashes %ld  (%.0f inputs/s)",
                           report.inputs, report.accepted, report.rejected, report.crashes.count, Double(report.inputs) / max(report.seconds, 1e-9)))
            for (i, reason) in report.crashes { print("  crash at input \(i): \(reason)") }
            fflush(stdout)
        }
        if totalCrashes > 0 { throw RunError("\(totalCrashes) crashing input(s)\(crashes.map { "; saved in \($0)" } ?? "")") }
    }

    func runWorker() throws {
        guard let scratch else { throw RunError("--worker needs --scratch") }
        let targets = try makeTargets(in: URL(fileURLWithPath: scratch))
        guard let target = targets.first else { throw RunError("no target") }
        FuzzSupervisor.work(target, seed: seed, iterations: from..<iterations)
    }
}
