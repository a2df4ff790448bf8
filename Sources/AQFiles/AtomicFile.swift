import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The one implementation of "write a file so that a killed run never leaves half of it": every
// output of aqbert (checkpoints, plans, JSON, caches) goes through `AtomicFile`.

/// A failed write: which file, and why (strerror or the check that failed).
public struct FileWriteError: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let reason: String
    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }
    public var description: String { "cannot write \(path): \(reason)" }
}

/// strerror(3) of an errno value.
public func errnoMessage(_ code: Int32) -> String {
    guard let p = strerror(code) else { return "error \(code)" }
    return String(cString: p)
}

/// `mkdir -p`: creates `path` and its missing parents (0755); an error says which component
/// failed and why (strerror), e.g. a parent that is a file.
/// Returns the directories it created, outermost first.
@discardableResult
public func makeDirectories(_ path: String) throws -> [String] {
    if fileExists(path).isDirectory { return [] }
    let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
    var current = ""
    var created: [String] = []
    for component in absolute.split(separator: "/", omittingEmptySubsequences: true) {
        current += "/" + component
        let state = fileExists(current)
        if state.isDirectory { continue }
        if state.exists { throw FileWriteError(path: path, reason: "\(current) is a file, not a directory") }
        if mkdir(current, 0o755) != 0 {
            if errno == EEXIST { continue }
            throw FileWriteError(path: path, reason: "cannot create \(current): \(errnoMessage(errno))")
        }
        created.append(current)
    }
    return created
}

/// The directory a new file `path` goes into must exist and be a directory; the error says which
/// it is not. Returns that directory.
@discardableResult
public func requireParentDirectory(of path: String) throws -> String {
    let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
    let parent = fileExists(directory)
    guard parent.isDirectory else {
        throw FileWriteError(path: path, reason: parent.exists ? "\(directory) is a file, not a directory"
                                                                 : "directory \(directory) does not exist")
    }
    return directory
}

/// Whether `path` exists (stat(2), following links) and is a directory.
public func fileExists(_ path: String) -> (exists: Bool, isDirectory: Bool) {
    var st = stat()
    guard stat(path, &st) == 0 else { return (false, false) }
    return (true, (st.st_mode & S_IFMT) == S_IFDIR)
}

/// open(2), close(2) and write(2) under names that do not clash with methods called `open`.
@inline(__always) public func posixOpen(_ path: String, _ flags: Int32, _ mode: mode_t = 0) -> Int32 {
    #if canImport(Glibc)
    return Glibc.open(path, flags, mode)
    #else
    return Darwin.open(path, flags, mode)
    #endif
}

@inline(__always) public func posixClose(_ fd: Int32) -> Int32 {
    #if canImport(Glibc)
    return Glibc.close(fd)
    #else
    return Darwin.close(fd)
    #endif
}

@inline(__always) func posixWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(fd, p, n)
    #else
    return Darwin.write(fd, p, n)
    #endif
}

/// Appends `line` and a newline to the log at `path` in one write(2) with O_APPEND, so that
/// lines of several processes appending to one log never overwrite each other; a log this call
/// creates starts with `header`. Best effort: a log that cannot be written is skipped.
public func appendLogLine(_ line: String, path: String, header: String) {
    var text = line + "\n"
    var fd = posixOpen(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL, 0o644)
    if fd >= 0 { text = header + "\n" + text } else { fd = posixOpen(path, O_WRONLY | O_APPEND) }
    guard fd >= 0 else { return }
    _ = text.utf8CString.withUnsafeBufferPointer { posixWrite(fd, $0.baseAddress!, $0.count - 1) }
    _ = posixClose(fd)
}

/// Writes a file atomically: everything goes to a temporary file in the destination directory,
/// which is fsync'ed and then rename(2)d over the destination. Until `commit()` succeeds the
/// destination is untouched; `abort()` (called on any error by `withAtomicFile`) removes the
/// temporary file.
public final class AtomicFile {
    public let path: String
    let tempPath: String
    private var fd: Int32
    private var buffer: [UInt8] = []
    private let bufferCapacity = 1 << 20
    public private(set) var bytesWritten = 0

    public init(path: String) throws {
        self.path = path
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        let suffix = String(UInt64.random(in: 0...UInt64.max), radix: 36)
        tempPath = directory + "/." + url.lastPathComponent + ".tmp-\(getpid())-" + suffix
        let fd = posixOpen(tempPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if fd < 0 { throw FileWriteError(path: path, reason: errnoMessage(errno)) }
        self.fd = fd
        buffer.reserveCapacity(bufferCapacity)
    }

    deinit {
        if fd >= 0 {
            _ = posixClose(fd)
            _ = unlink(tempPath)
        }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard bytes.count > 0 else { return }
        bytesWritten += bytes.count
        if buffer.count + bytes.count <= bufferCapacity {
            buffer.append(contentsOf: bytes)
            return
        }
        try flush()
        if bytes.count >= bufferCapacity {
            try writeFully(bytes)
        } else {
            buffer.append(contentsOf: bytes)
        }
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    private func flush() throws {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBytes { try writeFully($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    private func writeFully(_ bytes: UnsafeRawBufferPointer) throws {
        guard let base = bytes.baseAddress else { return }
        var done = 0
        while done < bytes.count {
            let n = posixWrite(fd, base + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw FileWriteError(path: path, reason: errnoMessage(errno))
            }
            if n == 0 { throw FileWriteError(path: path, reason: "write returned 0 bytes") }
            done += n
        }
    }

    public func commit() throws {
        try flush()
        if fsync(fd) != 0 { throw FileWriteError(path: path, reason: errnoMessage(errno)) }
        let rc = posixClose(fd)
        fd = -1
        if rc != 0 {
            let code = errno
            _ = unlink(tempPath)
            throw FileWriteError(path: path, reason: errnoMessage(code))
        }
        if rename(tempPath, path) != 0 {
            let code = errno
            _ = unlink(tempPath)
            throw FileWriteError(path: path, reason: errnoMessage(code))
        }
        // Make the rename itself durable; not every filesystem supports fsync on a directory.
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        let dfd = posixOpen(directory, O_RDONLY | O_CLOEXEC)
        if dfd >= 0 {
            _ = fsync(dfd)
            _ = posixClose(dfd)
        }
    }

    public func abort() {
        if fd >= 0 {
            _ = posixClose(fd)
            fd = -1
        }
        _ = unlink(tempPath)
    }
}

/// Runs `body` on a new `AtomicFile` for `path` and commits it; on any error nothing is left.
public func withAtomicFile(_ path: String, _ body: (AtomicFile) throws -> Void) throws {
    let file = try AtomicFile(path: path)
    do {
        try body(file)
        try file.commit()
    } catch {
        file.abort()
        throw error
    }
}

/// Writes `data` to `path` atomically, with one-line reasons for the usual mistakes (the path
/// is a directory, its directory does not exist).
public func writeAtomically(_ data: Data, toPath path: String) throws {
    if fileExists(path).isDirectory {
        throw FileWriteError(path: path, reason: "it is a directory, expected a file")
    }
    try requireParentDirectory(of: path)
    try withAtomicFile(path) { file in
        try data.withUnsafeBytes { try file.write($0) }
    }
}

// MARK: - Outputs that must not be inputs

/// (device, inode) of `path` following links, or nil when it does not exist: two paths name the
/// same file exactly when these agree (other spellings, symbolic and hard links included).
public func fileIdentity(_ path: String) -> (device: UInt64, inode: UInt64)? {
    var st = stat()
    guard stat(path, &st) == 0 else { return nil }
    return (UInt64(st.st_dev), UInt64(st.st_ino))
}

/// Whether `path` exists and is something other than a regular file or a directory (a device
/// node, a FIFO, a socket): writing an output there would replace it with a regular file.
public func isSpecialFile(_ path: String) -> Bool {
    var st = stat()
    guard stat(path, &st) == 0 else { return false }
    let kind = st.st_mode & S_IFMT
    return kind != S_IFREG && kind != S_IFDIR
}

/// The reason an output at `output` would destroy one of `inputs` (label, path), or nil. An
/// output names an input when it is the same file or directory; an input directory (a model)
/// also counts every regular file directly inside it, so an output file may not be its
/// `model.safetensors` either. An existing special file (device, FIFO) is refused too.
public func outputConflict(_ output: String, inputs: [(label: String, path: String)]) -> String? {
    if isSpecialFile(output) { return "\(output) is not a regular file (a device, FIFO or socket); write to a file" }
    guard let out = fileIdentity(output) else { return nil }
    for (label, path) in inputs {
        guard let id = fileIdentity(path) else { continue }
        if id == out { return "\(output) is \(label) (\(path)): an output never replaces an input; choose another path" }
        guard fileExists(path).isDirectory, let names = try? FileManager.default.contentsOfDirectory(atPath: path) else { continue }
        for name in names {
            let inner = path + "/" + name
            if let id = fileIdentity(inner), id == out, !fileExists(inner).isDirectory {
                return "\(output) is \(inner), a file of \(label): an output never replaces an input; choose another path"
            }
        }
    }
    return nil
}

// MARK: - One run per output

/// An exclusive lock on an output for the life of the process: flock(2) on a hidden lock file,
/// taken without waiting, so a second run pointed at the same output stops at once with a clear
/// error instead of interleaving its files with the first one's. The kernel drops the lock when
/// the process ends, however it ends (kill -9 included), so a stale lock file is harmless.
public enum OutputLock {
    /// A lock this process holds: the open lock file and the directories taking it created.
    private struct Held {
        var fd: Int32
        var file: String
        var createdDirectories: [String]
        /// The lock file's content before this run, when it was there already (a killed run's).
        var previous: [UInt8]?
    }
    /// Locks held, kept for the life of the process (or until `releaseAll`).
    nonisolated(unsafe) private static var held: [String: Held] = [:]
    private static let guardLock = NSLock()

    /// Locks the output directory `directory` (created if missing), through `directory/.aqbert-lock`.
    public static func lockDirectory(_ directory: String) throws {
        let created = try makeDirectories(directory)
        do { try lock(file: directory + "/.aqbert-lock", output: directory, created: created) } catch {
            removeEmpty(created)
            throw error
        }
    }

    /// Locks the output file `file`, through a hidden `.NAME.aqbert-lock` beside it.
    public static func lockFile(_ file: String) throws {
        let directory = try requireParentDirectory(of: file)
        try lock(file: directory + "/." + URL(fileURLWithPath: file).lastPathComponent + ".aqbert-lock", output: file, created: [])
    }

    /// Ends every lock this process holds: the lock files are removed (while still held, so that
    /// no other run can be holding them) and closed. After a failed run (`succeeded` false) a
    /// lock file that was there before keeps its old content, and the output directories that
    /// taking the locks created are removed again when nothing else was written into them, so a
    /// run refused before its work leaves no trace.
    public static func releaseAll(succeeded: Bool) {
        guardLock.lock()
        defer { guardLock.unlock() }
        for (_, h) in held.sorted(by: { $0.key < $1.key }) {
            if !succeeded, let previous = h.previous {
                if ftruncate(h.fd, 0) == 0 { _ = previous.withUnsafeBytes { pwrite(h.fd, $0.baseAddress, $0.count, 0) } }
            } else {
                _ = unlink(h.file)
            }
            _ = posixClose(h.fd)
            if !succeeded { removeEmpty(h.createdDirectories) }
        }
        held = [:]
    }

    /// rmdir of `directories` innermost first, stopping at the first one that is not empty.
    private static func removeEmpty(_ directories: [String]) {
        for d in directories.reversed() where rmdir(d) != 0 { return }
    }

    /// "another aqbert run (pid N) is writing to it" when a process holds the lock of output
    /// directory `directory`, else nil (no lock file, or nobody holds it).
    public static func holder(ofDirectory directory: String) -> String? {
        let file = directory + "/.aqbert-lock"
        let fd = posixOpen(file, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { _ = posixClose(fd) }
        if flock(fd, LOCK_EX | LOCK_NB) == 0 {
            _ = flock(fd, LOCK_UN)
            return nil
        }
        return "another aqbert run\(owner(fd)) is writing to it"
    }

    /// " (pid N)" from a lock file's content, or "".
    private static func owner(_ fd: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 31, 0) }
        guard n > 0, let pid = Int(String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            return ""
        }
        return " (pid \(pid))"
    }

    /// True when the open `fd` is the file at `path` now (the holder before us may have removed
    /// the file between our open and our flock: then the lock we got protects nothing).
    private static func isCurrent(_ fd: Int32, _ path: String) -> Bool {
        var a = stat(), b = stat()
        return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino
    }

    private static func lock(file: String, output: String, created: [String]) throws {
        guardLock.lock()
        defer { guardLock.unlock() }
        let key = URL(fileURLWithPath: file).standardizedFileURL.path
        if held[key] != nil { return }
        for _ in 0..<100 {
            var fd = posixOpen(file, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            let existed = fd < 0 && errno == EEXIST
            if existed { fd = posixOpen(file, O_RDWR | O_CLOEXEC) }
            if fd < 0 && errno == ENOENT { continue }  // removed between the two opens
            if fd < 0 { throw FileWriteError(path: output, reason: "cannot create the lock file \(file): \(errnoMessage(errno))") }
            if flock(fd, LOCK_EX | LOCK_NB) != 0 {
                let code = errno
                let owner = owner(fd)
                _ = posixClose(fd)
                if code == EWOULDBLOCK || code == EAGAIN {
                    throw FileWriteError(path: output, reason: "another aqbert run\(owner) is writing to it; wait for it to end or choose another output")
                }
                throw FileWriteError(path: output, reason: "cannot lock \(file): \(errnoMessage(code))")
            }
            guard isCurrent(fd, file) else {
                _ = posixClose(fd)
                continue
            }
            var previous: [UInt8]? = nil
            if existed {
                var buffer = [UInt8](repeating: 0, count: 64)
                let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 64, 0) }
                previous = Array(buffer[0..<max(0, n)])
            }
            // The holder's pid, for the message a second run prints.
            let text = Array("\(getpid())\n".utf8)
            if ftruncate(fd, 0) == 0 { _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) } }
            held[key] = Held(fd: fd, file: file, createdDirectories: created, previous: previous)
            return
        }
        throw FileWriteError(path: output, reason: "cannot lock \(file): it keeps being replaced")
    }
}
