import AQFiles
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs a target's inputs in worker processes (this aqbert's `fuzz --worker`), which report each
/// input's number before parsing it; when a worker dies (a trap or signal) or stalls past
/// `timeout`, the input it was on is the crash, and a new worker starts after it.
public struct FuzzSupervisor {
    public let executable: URL
    public let environment: [String: String]
    /// Seconds one input may take before it counts as a hang.
    public let timeout: Double
    /// A worker's arguments for a target, its first input and its scratch folder.
    public let workerArguments: (_ target: String, _ from: Int, _ scratch: URL) -> [String]

    public init(executable: URL, environment: [String: String], timeout: Double,
                workerArguments: @escaping (_ target: String, _ from: Int, _ scratch: URL) -> [String]) {
        self.executable = executable
        self.environment = environment
        self.timeout = timeout
        self.workerArguments = workerArguments
    }

    /// What one target's run found.
    public struct Report: Sendable {
        public var target: String
        public var inputs: Int
        public var accepted = 0
        public var rejected = 0
        /// Crashing inputs: number and reason (a signal, an exit status or a hang).
        public var crashes: [(input: Int, reason: String)] = []
        public var seconds = 0.0
    }

    /// Runs inputs `iterations` of `target` (workers in `scratch`); saves each crashing input as
    /// `crashes/<target>-seed<seed>-<n>.bin` when `crashes` is given.
    public func fuzz(_ target: FuzzTarget, seed: UInt64, iterations: Range<Int>, scratch: URL, crashes: URL?) throws -> Report {
        let started = Date()
        var report = Report(target: target.name, inputs: iterations.count)
        var next = iterations.lowerBound
        while next < iterations.upperBound {
            let outcome = try supervise(target: target.name, from: next, scratch: scratch)
            report.accepted += outcome.accepted
            report.rejected += outcome.rejected
            guard let failed = outcome.failed else { break }
            report.crashes.append((failed, outcome.reason))
            if let crashes {
                let file = crashes.appendingPathComponent("\(target.name)-seed\(seed)-\(failed).bin")
                try writeAtomically(Data(Fuzzer.input(target, seed: seed, iteration: failed)), toPath: file.path)
            }
            next = failed + 1
        }
        report.seconds = Date().timeIntervalSince(started)
        return report
    }

    /// Runs one worker from input `from`; returns its counts and, when it died or stalled, the
    /// input it was on.
    func supervise(target: String, from: Int, scratch: URL) throws -> (accepted: Int, rejected: Int, failed: Int?, reason: String) {
        let p = Process()
        p.executableURL = executable
        p.arguments = workerArguments(target, from, scratch)
        p.environment = environment
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
            throw FuzzSetupError("the fuzz worker for \(target) failed before its first input: \(errText.split(separator: "\n").last ?? "")")
        }
        let reason = hung ? "no answer within \(timeout) s (a hang)"
            : p.terminationReason == .uncaughtSignal ? "killed by signal \(p.terminationStatus)" : "exit \(p.terminationStatus)"
        let detail = errText.split(separator: "\n").first { $0.contains("Fatal error") || $0.contains("error") }.map { ": " + $0 } ?? ""
        return (accepted, rejected, last, reason + detail.prefix(300))
    }

    /// The worker's side: runs inputs `iterations` of `target`, writing each input's number to
    /// standard output before it runs (unbuffered, so that it is known after a crash), "a" or
    /// "r" after it, and "done <accepted> <rejected>" at the end.
    public static func work(_ target: FuzzTarget, seed: UInt64, iterations: Range<Int>) {
        let counts = Fuzzer.run(target, seed: seed, iterations: iterations, started: { i in
            let line = Array("\(i)\n".utf8)
            _ = line.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
        }, finished: { _, accepted in
            _ = write(1, accepted ? "a\n" : "r\n", 2)
        })
        let line = Array("done \(counts.accepted) \(counts.rejected)\n".utf8)
        _ = line.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
    }
}
