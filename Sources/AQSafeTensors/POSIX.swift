import AQFiles
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only descriptor of a regular file (O_NONBLOCK so a FIFO cannot block the open).
struct RegularFile {
    let fd: Int32
    let size: Int

    static func open(_ path: String) throws -> RegularFile {
        let fd = posixOpen(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        if fd < 0 {
            throw SafeTensorsError.file(.cannotOpen, path, errnoMessage(errno))
        }
        var st = stat()
        if fstat(fd, &st) != 0 {
            let code = errno
            _ = posixClose(fd)
            throw SafeTensorsError.file(.cannotOpen, path, errnoMessage(code))
        }
        let type = st.st_mode & S_IFMT
        if type == S_IFDIR {
            _ = posixClose(fd)
            throw SafeTensorsError.file(.cannotOpen, path, errnoMessage(EISDIR))
        }
        if type != S_IFREG {
            _ = posixClose(fd)
            throw SafeTensorsError.file(.cannotOpen, path, "not a regular file")
        }
        return RegularFile(fd: fd, size: Int(st.st_size))
    }

    func close() { _ = posixClose(fd) }
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
