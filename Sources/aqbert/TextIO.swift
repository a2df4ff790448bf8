import AQFiles
import AQHub
import AQRuns
import Foundation

/// The terminal side of the subcommands: standard output, warnings and progress on standard
/// error. Input checks and loads are `RunInputs` (AQRuns).
enum TextIO {
    /// Writes bytes to standard output through stdio (in order with `print`), flushed, with a
    /// failure (a closed or full output) as an error instead of a lost write.
    static func writeStandardOutput(_ data: Data) throws {
        let written = data.withUnsafeBytes { raw in raw.count == 0 ? 0 : fwrite(raw.baseAddress, 1, raw.count, stdout) }
        if written != data.count || fflush(stdout) != 0 || ferror(stdout) != 0 {
            throw RunError("cannot write to standard output: \(errnoMessage(errno))")
        }
    }

    /// Writes text to a path atomically (temp file + rename), or to stdout for '-'.
    static func write(_ text: String, to path: String, option: String = "--output") throws {
        let data = Data(text.utf8)
        if path == "-" {
            try writeStandardOutput(data)
            return
        }
        try RunInputs.write(data, to: path, option: option)
    }

    /// A JSON number for a float (shortest round-trip form); non-finite values become null.
    static func json(_ x: Float) -> String { x.isFinite ? "\(x)" : "null" }

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

    /// A hub download's progress bar on stderr, when stderr is a terminal.
    static let downloadBar: ((DownloadProgress) -> Void)? = isatty(2) != 0 ? { p in
        FileHandle.standardError.write(Data(("\r" + p.bar(width: 30) + (p.isFinished ? "\n" : "")).utf8))
    } : nil
}

/// `--bits`-style lists: comma-separated bit-widths.
func parseBits(_ s: String) throws -> [Int] {
    let parts = s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    let bits = parts.compactMap { Int($0) }
    guard bits.count == parts.count, !bits.isEmpty else { throw RunError("bit-widths must be a comma-separated list like 0,2,4, got \"\(s)\"") }
    return bits
}
