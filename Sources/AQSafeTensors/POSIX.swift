import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// strerror(3) of an errno value.
func errnoMessage(_ code: Int32) -> String {
    guard let p = strerror(code) else { return "error \(code)" }
    return String(cString: p)
}

/// A read-only descriptor of a regular file (O_NONBLOCK so a FIFO cannot block the open).
struct RegularFile {
    let fd: Int32
    let size: Int

    static func open(_ path: String) throws -> RegularFile {
        let fd = sysOpen(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        if fd < 0 {
            throw SafeTensorsError.file(.cannotOpen, path, errnoMessage(errno))
        }
        var st = stat()
        if fstat(fd, &st) != 0 {
            let code = errno
            _ = sysClose(fd)
            throw SafeTensorsError.file(.cannotOpen, path, errnoMessage(code))
        }
        let type = st.st_mode & S_IFMT
        if type == S_IFDIR {
            _ = sysClose(fd)
            throw SafeTensorsError.file(.cannotOpen, path, errnoMessage(EISDIR))
        }
        if type != S_IFREG {
            _ = sysClose(fd)
            throw SafeTensorsError.file(.cannotOpen, path, "not a regular file")
        }
        return RegularFile(fd: fd, size: Int(st.st_size))
    }

    func close() { _ = sysClose(fd) }
}

@inline(__always) private func sysOpen(_ path: String, _ flags: Int32) -> Int32 {
    #if canImport(Glibc)
    return Glibc.open(path, flags)
    #else
    return Darwin.open(path, flags)
    #endif
}

@inline(__always) private func sysClose(_ fd: Int32) -> Int32 {
    #if canImport(Glibc)
    return Glibc.close(fd)
    #else
    return Darwin.close(fd)
    #endif
}

/// Reads a whole (small) regular file, refusing files above `limit` bytes.
func readWholeFile(_ path: String, limit: Int, kindIfTooLarge: SafeTensorsError.Kind) throws -> [UInt8] {
    let file = try RegularFile.open(path)
    defer { file.close() }
    if file.size > limit {
        throw SafeTensorsError.file(kindIfTooLarge, path, "file is \(file.size) bytes, over the \(limit)-byte limit")
    }
    var out = [UInt8](repeating: 0, count: file.size)
    var done = 0
    while done < file.size {
        let n = out.withUnsafeMutableBytes { buf -> Int in
            guard let base = buf.baseAddress else { return 0 }
            return pread(file.fd, base + done, file.size - done, off_t(done))
        }
        if n < 0 {
            if errno == EINTR || errno == EAGAIN { continue }
            throw SafeTensorsError.file(.cannotOpen, path, errnoMessage(errno))
        }
        if n == 0 { break }  // shrank under us
        done += n
    }
    if done < out.count { out.removeLast(out.count - done) }
    return out
}

func fileExists(_ path: String) -> (exists: Bool, isDirectory: Bool) {
    var st = stat()
    guard stat(path, &st) == 0 else { return (false, false) }
    return (true, (st.st_mode & S_IFMT) == S_IFDIR)
}

/// Writes a file atomically: everything goes to a temporary file in the destination directory,
/// which is fsync'ed and then rename(2)d over the destination. Until `commit()` succeeds the
/// destination is untouched; `abort()` (called on any error by `withAtomicFile`) removes the
/// temporary file.
final class AtomicFile {
    let path: String
    let tempPath: String
    private var fd: Int32
    private var buffer: [UInt8] = []
    private let bufferCapacity = 1 << 20
    private(set) var bytesWritten = 0

    init(path: String) throws {
        self.path = path
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        let suffix = String(UInt64.random(in: 0...UInt64.max), radix: 36)
        tempPath = directory + "/." + url.lastPathComponent + ".tmp-\(getpid())-" + suffix
        let fd = sysOpenCreate(tempPath)
        if fd < 0 {
            throw SafeTensorsError.file(.cannotWrite, path, errnoMessage(errno))
        }
        self.fd = fd
        buffer.reserveCapacity(bufferCapacity)
    }

    deinit {
        if fd >= 0 {
            _ = sysClose(fd)
            _ = unlink(tempPath)
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
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

    func write(_ bytes: [UInt8]) throws {
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
            let n = sysWrite(fd, base + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw SafeTensorsError.file(.cannotWrite, path, errnoMessage(errno))
            }
            if n == 0 { throw SafeTensorsError.file(.cannotWrite, path, "write returned 0 bytes") }
            done += n
        }
    }

    func commit() throws {
        try flush()
        if fsync(fd) != 0 {
            throw SafeTensorsError.file(.cannotWrite, path, errnoMessage(errno))
        }
        let rc = sysClose(fd)
        fd = -1
        if rc != 0 {
            let code = errno
            _ = unlink(tempPath)
            throw SafeTensorsError.file(.cannotWrite, path, errnoMessage(code))
        }
        if rename(tempPath, path) != 0 {
            let code = errno
            _ = unlink(tempPath)
            throw SafeTensorsError.file(.cannotWrite, path, errnoMessage(code))
        }
        // Make the rename itself durable; not every filesystem supports fsync on a directory.
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        let dfd = sysOpen(directory, O_RDONLY | O_CLOEXEC)
        if dfd >= 0 {
            _ = fsync(dfd)
            _ = sysClose(dfd)
        }
    }

    func abort() {
        if fd >= 0 {
            _ = sysClose(fd)
            fd = -1
        }
        _ = unlink(tempPath)
    }
}

func withAtomicFile(_ path: String, _ body: (AtomicFile) throws -> Void) throws {
    let file = try AtomicFile(path: path)
    do {
        try body(file)
        try file.commit()
    } catch {
        file.abort()
        throw error
    }
}

@inline(__always) private func sysOpenCreate(_ path: String) -> Int32 {
    #if canImport(Glibc)
    return Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    #else
    return Darwin.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    #endif
}

@inline(__always) private func sysWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(fd, p, n)
    #else
    return Darwin.write(fd, p, n)
    #endif
}
