import AQBert
import AQFiles
import AQHub
import AQQuant
import AQTasks
import AQTokenizer
import Foundation

/// File and terminal plumbing shared by the subcommands. Every failure is a `CLIError`
/// with a one-line message.
enum TextIO {
    /// Lines of a UTF-8 file ('-' = stdin), split as the tokenize contract says
    /// (`TokenizerIO.splitLines`: only "\n" ends a line).
    static func readLines(_ path: String) throws -> [String] {
        let data: Data
        if path == "-" {
            data = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            try existingFile(path, option: "--input")
            do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
                throw CLIError("cannot read \(path): \(error.localizedDescription)")
            }
        }
        do { return try TokenizerIO.splitLines(data, source: path == "-" ? "standard input" : path) } catch {
            throw CLIError("\(error)")
        }
    }

    @discardableResult
    static func existingFile(_ path: String, option: String) throws -> URL {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw CLIError("\(option) \(path): no such file")
        }
        if isDir.boolValue { throw CLIError("\(option) \(path) is a directory, expected a file") }
        return URL(fileURLWithPath: path)
    }

    /// `--model`: a directory, or a Hugging Face id resolved from the local cache or the hub
    /// (with a progress bar on a terminal).
    /// `requireConfig: false` accepts any existing directory (a tokenizer needs only vocab.txt).
    static func modelDirectory(_ spec: String, requireConfig: Bool = true) throws -> URL {
        var isDir: ObjCBool = false
        if !requireConfig, FileManager.default.fileExists(atPath: spec, isDirectory: &isDir), isDir.boolValue {
            return URL(fileURLWithPath: spec)
        }
        let tty = isatty(2) != 0
        do {
            let url = try ModelLocator().resolve(spec) { p in
                guard tty else { return }
                FileHandle.standardError.write(Data(("\r" + p.bar(width: 30) + (p.isFinished ? "\n" : "")).utf8))
            }
            return url
        } catch let e as HubError {
            // A finetune / retrain output whose run has not finished holds checkpoints but no model.
            let fm = FileManager.default
            if fm.fileExists(atPath: spec + "/last-checkpoint.json") && !fm.fileExists(atPath: spec + "/model.safetensors") {
                throw CLIError("--model \(spec) is an unfinished aqbert run (checkpoints, no model yet): finish it by running its command again with --resume")
            }
            throw CLIError("--model \(spec): \(e.description)")
        }
    }

    /// Refuses (one line, before any work) an `option` output path that names one of `inputs`
    /// (option, path) or a device/FIFO (`outputConflict`); '-' (standard output) passes.
    static func checkOutput(_ output: String, option: String = "--output", inputs: [(String, String?)]) throws {
        guard output != "-" else { return }
        let named = inputs.compactMap { label, path in path.flatMap { $0 == "-" ? nil : (label: label, path: $0) } }
        if let conflict = outputConflict(output, inputs: named) { throw CLIError("\(option) \(conflict)") }
    }

    /// Takes the run's exclusive lock on its output folder (or, with `directory: false`, its
    /// output file) for the life of the process: a second run on the same output fails here.
    static func lockOutput(_ output: String, directory: Bool = true) throws {
        do {
            if directory { try OutputLock.lockDirectory(output) } else { try OutputLock.lockFile(output) }
        } catch { throw CLIError("--output: \(error)") }
    }

    /// The SHA-256 of a run's model and input files, recorded in its checkpoints.
    static func fingerprint(modelDirectory: URL, inputs: [(String, URL)]) throws -> RunFingerprint {
        do { return try RunFingerprint.of(modelDirectory: modelDirectory, inputs: inputs.map { (label: $0.0, url: $0.1) }) } catch {
            throw CLIError("cannot read the run's inputs to fingerprint them: \(error.localizedDescription)")
        }
    }

    /// Writes bytes to standard output through stdio (in order with `print`), flushed, with a
    /// failure (a closed or full output) as an error instead of a lost write.
    static func writeStandardOutput(_ data: Data) throws {
        let written = data.withUnsafeBytes { raw in raw.count == 0 ? 0 : fwrite(raw.baseAddress, 1, raw.count, stdout) }
        if written != data.count || fflush(stdout) != 0 || ferror(stdout) != 0 {
            throw CLIError("cannot write to standard output: \(errnoMessage(errno))")
        }
    }

    /// Writes text to a path atomically (temp file + rename), or to stdout for '-'.
    static func write(_ text: String, to path: String) throws {
        let data = Data(text.utf8)
        if path == "-" {
            try writeStandardOutput(data)
            return
        }
        do { try TokenizerIO.writeAtomically(data, toPath: path) } catch { throw CLIError("--output: \(error)") }
    }

    /// A JSON number for a float (shortest round-trip form); non-finite values become null.
    static func json(_ x: Float) -> String { x.isFinite ? "\(x)" : "null" }

    /// A model directory's weights (any architecture its config names).
    static func loadModel(_ dir: URL) throws -> BertTaskModel {
        do {
            if PackedBert.isPacked(dir) { return try PackedBert.load(directory: dir).model }
            return try BertTaskModel.load(directory: dir).model
        } catch { throw CLIError("\(error)") }
    }

    /// A bit plan file, validated.
    static func loadPlan(_ path: String) throws -> BitPlan {
        let url = try existingFile(path, option: "--plan")
        do { return try BitPlan(contentsOf: url) } catch { throw CLIError("\(error)") }
    }

    /// The tokenizer of a model directory, as a one-line error.
    static func loadTokenizer(_ dir: URL) throws -> BertTokenizer {
        do { return try BertTokenizer(directory: dir) } catch { throw CLIError("\(error)") }
    }

    /// A warning line on stderr.
    static func warn(_ line: String) {
        FileHandle.standardError.write(Data("warning: \(line)\n".utf8))
    }

    /// "1h02m", "3m05s", "12s".
    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        let s = Int(seconds.rounded())
        if s >= 3600 { return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60) }
        if s >= 60 { return String(format: "%dm%02ds", s / 60, s % 60) }
        return "\(s)s"
    }

    /// One progress line on stderr, only when stderr is a terminal.
    static func progress(_ line: String) {
        guard isatty(2) != 0 else { return }
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}

/// A user-facing error: ArgumentParser prints "Error: <description>" and exits non-zero.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
