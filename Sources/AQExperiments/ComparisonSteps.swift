import AQFiles
import AQTasks
import Foundation

/// Runs one aqbert command for the comparison. `ProcessCommandRunner` starts this aqbert as a
/// child process; tests pass a fake that writes what the command would.
public protocol CommandRunner {
    /// Runs aqbert with `arguments`; returns what it printed when `capture`. Throws when the
    /// command fails.
    func run(_ arguments: [String], capture: Bool) throws -> String
}

/// A failed comparison step or an unusable result of one; one line.
public struct ComparisonError: Error, CustomStringConvertible, Equatable, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The resume rules of the comparison's steps, over a `CommandRunner`: a finished step is
/// skipped (a `.compare-done` marker in its folder, a complete sensitivity file, an existing plan
/// file, a cached evaluation), a step killed after a checkpoint is resumed (`--resume`), and one
/// killed before its first checkpoint is started again in a clean folder, unless another run
/// still holds that folder.
public struct ComparisonSteps {
    public let runner: CommandRunner
    /// Worker threads of every threaded step (nil: the step's default).
    public let threads: Int?
    /// Receives a line per step started.
    public let progress: (String) -> Void

    public static let doneMarker = ".compare-done"

    public init(runner: CommandRunner, threads: Int?, progress: @escaping (String) -> Void) {
        self.runner = runner
        self.threads = threads
        self.progress = progress
    }

    @discardableResult
    func run(_ arguments: [String], capture: Bool = false, threaded: Bool = true) throws -> String {
        try runner.run(arguments + (threaded ? threads.map { ["--threads", String($0)] } ?? [] : []), capture: capture)
    }

    /// finetune / retrain / search into `directory` (given as --output), with --resume when a
    /// checkpoint of an unfinished run is there.
    public func training(_ arguments: [String], directory: URL, title: String) throws {
        let fm = FileManager.default
        if fm.fileExists(atPath: directory.appendingPathComponent(Self.doneMarker).path) { return }
        var args = arguments + ["--output", directory.path]
        if fm.fileExists(atPath: directory.appendingPathComponent("last-checkpoint.json").path) {
            args.append("--resume")
        } else if fm.fileExists(atPath: directory.path) {
            // Killed before its first checkpoint; unless a run still holds the folder.
            if let holder = OutputLock.holder(ofDirectory: directory.path) {
                throw ComparisonError("\(directory.path): \(holder); wait for it to end")
            }
            try fm.removeItem(at: directory)
        }
        progress("[compare] \(title)")
        try run(args)
        try Data().write(to: directory.appendingPathComponent(Self.doneMarker))
    }

    public func sensitivity(_ arguments: [String], file: URL, title: String) throws {
        if let r = try? SensitivityReport.read(file), r.complete { return }
        progress("[compare] \(title)")
        try run(arguments + ["--output", file.path] + (FileManager.default.fileExists(atPath: file.path) ? ["--resume"] : []))
    }

    public func plan(_ arguments: [String], file: URL) throws {
        if FileManager.default.fileExists(atPath: file.path) { return }
        try run(arguments + ["--output", file.path], threaded: false)
    }

    /// `evaluate --json` once; the result is kept in `cache`.
    public func evaluate(_ arguments: [String], metric: String, cache: URL) throws -> Double {
        if let data = try? Data(contentsOf: cache), let value = Self.metric(in: data, metric) { return value }
        let text = try run(arguments + ["--json"], capture: true)
        guard let line = text.split(separator: "\n").last, let value = Self.metric(in: Data(line.utf8), metric) else {
            throw ComparisonError("evaluate printed no \(metric): \(text.prefix(200))")
        }
        try writeAtomically(Data(line.utf8), toPath: cache.path)
        return value
    }

    static func metric(in data: Data, _ name: String) -> Double? {
        ((try? JSONSerialization.jsonObject(with: data)) as? [String: Any]).flatMap { ($0["metrics"] as? [String: Any])?[name] as? Double }
    }

    /// The best epoch's metric of a finetune / retrain output.
    public func bestMetric(_ directory: URL, _ name: String) throws -> Double {
        let url = directory.appendingPathComponent("eval_results.json")
        guard let data = try? Data(contentsOf: url), let value = Self.metric(in: data, name) else {
            throw ComparisonError("\(url.path) has no \(name)")
        }
        return value
    }
}

/// Runs this aqbert's subcommands as child processes (each appended to OUTPUT/commands.sh), each
/// told the parent's pid (`parentVariable`) so that it ends when the comparison does.
public struct ProcessCommandRunner: CommandRunner {
    public let executable: URL
    /// The comparison's output folder (for commands.sh).
    public let output: URL
    public let environment: [String: String]

    public init(executable: URL, output: URL, environment: [String: String]) {
        self.executable = executable
        self.output = output
        self.environment = environment
    }

    public func run(_ args: [String], capture: Bool) throws -> String {
        let line = ([executable.path] + args).map(Self.shellQuoted).joined(separator: " ")
        appendLogLine(line, path: output.appendingPathComponent("commands.sh").path, header: "#!/usr/bin/env bash")
        let p = Process()
        p.executableURL = executable
        p.arguments = args
        p.environment = environment
        let pipe = Pipe()
        if capture { p.standardOutput = pipe }
        try p.run()
        let data = capture ? pipe.fileHandleForReading.readDataToEndOfFile() : Data()
        p.waitUntilExit()
        guard p.terminationReason == .exit, p.terminationStatus == 0 else {
            throw ComparisonError("step failed (\(p.terminationReason == .exit ? "exit \(p.terminationStatus)" : "killed by a signal")): \(line)")
        }
        return String(decoding: data, as: UTF8.self)
    }

    static func shellQuoted(_ s: String) -> String {
        s.allSatisfy({ $0.isLetter || $0.isNumber || "-_./=,:@".contains($0) }) ? s : "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
