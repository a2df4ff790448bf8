import Foundation

/// One progress report of a file being downloaded. `resolve` reports on the calling thread: once
/// when a transfer starts (`bytesReceived` is the resumed prefix, often 0), at most ten times a
/// second while bytes arrive, and once when the file is complete (`isFinished`).
public struct DownloadProgress: Sendable, Equatable {
    /// The file's name in the repository, e.g. `model.safetensors`.
    public var file: String
    public var bytesReceived: Int64
    /// The file's size from the hub (`X-Linked-Size` / `Content-Length`), when it sent one.
    public var bytesExpected: Int64?
    /// The file is complete and in the cache; the last report for it.
    public var isFinished: Bool

    public init(file: String, bytesReceived: Int64, bytesExpected: Int64?, isFinished: Bool = false) {
        self.file = file
        self.bytesReceived = bytesReceived
        self.bytesExpected = bytesExpected
        self.isFinished = isFinished
    }

    /// Completed fraction in 0...1, when the size is known.
    public var fraction: Double? {
        guard let total = bytesExpected, total > 0 else { return nil }
        return min(1, max(0, Double(bytesReceived) / Double(total)))
    }

    /// A one-line bar for a terminal, e.g.
    /// `model.safetensors [##########          ]  50% 219.9 MB / 439.8 MB`.
    /// The library never prints; the executable writes this (after a `\r`) to stderr.
    public func bar(width: Int = 24) -> String {
        let received = DownloadProgress.formatBytes(bytesReceived)
        guard let fraction = fraction, let total = bytesExpected else {
            return "\(file) \(received)"
        }
        let filled = Int((fraction * Double(width)).rounded(.down))
        let bar = String(repeating: "#", count: filled) + String(repeating: " ", count: max(0, width - filled))
        let percent = String(Int((fraction * 100).rounded(.down)))
        let pad = String(repeating: " ", count: max(0, 3 - percent.count))
        return "\(file) [\(bar)] \(pad)\(percent)% \(received) / \(DownloadProgress.formatBytes(total))"
    }

    /// Decimal units as `huggingface_hub`'s tqdm bars show them (kB, MB, GB).
    public static func formatBytes(_ bytes: Int64) -> String {
        let units = ["B", "kB", "MB", "GB", "TB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1000 && unit < units.count - 1 {
            value /= 1000
            unit += 1
        }
        return unit == 0 ? "\(bytes) B" : String(format: "%.1f", value) + " " + units[unit]
    }
}
