import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

#if canImport(Glibc)
private let streamSocketType = Int32(SOCK_STREAM.rawValue)
#else
private let streamSocketType = SOCK_STREAM
#endif

/// A model repository the fake hub serves.
struct FakeRepo {
    struct File {
        var bytes: [UInt8]
        /// Stored in LFS: the hub answers the resolve URL with a 302 to the CDN and names the blob
        /// by its sha256 in `X-Linked-Etag`; otherwise a 200 whose `ETag` is the git sha1.
        var lfs: Bool
        var etag: String
    }

    var id: String
    var commit: String
    var files: [String: File]
    /// Gated: 401 `GatedRepo` without `Authorization: Bearer <token>`.
    var token: String? = nil
}

/// The hub's HTTP surface, as huggingface_hub sees it, on 127.0.0.1 with a kernel-chosen port:
/// `HEAD/GET /{id}/resolve/{revision}/{file}` with `X-Repo-Commit`, `ETag`, `X-Linked-Etag`,
/// `X-Linked-Size`, `Content-Length` and `X-Error-Code` headers as the hub sends them, LFS files
/// redirected (302) to `/blob/{sha256}` as the hub redirects to its CDN, Range requests on blobs.
///
/// One connection at a time, `Connection: close` on every answer. The accept loop polls and ends
/// by itself after `lifetime` seconds even if `stop()` is never called.
final class FakeHubServer: @unchecked Sendable {
    struct Request {
        var method: String
        var path: String
        var headers: [String: String]
    }

    let port: UInt16
    var baseURL: String { "http://127.0.0.1:\(port)" }
    /// Where LFS redirects point (default: this server under the same host name).
    var cdnBaseURL: String {
        get { locked { cdn } }
        set { locked { cdn = newValue } }
    }
    private var cdn: String

    private var repos: [String: FakeRepo] = [:]
    private let lock = NSLock()
    private var stopped = false
    private var log: [Request] = []
    private let finished = DispatchSemaphore(value: 0)
    private let listenFD: Int32

    // Misbehaviours, each counted down per blob GET.
    /// Send only this many body bytes of a blob, then close, this many times.
    private var truncations: (bytes: Int, times: Int)? = nil
    /// Accept connections and never answer.
    private var silent = false
    /// Answer everything with a bare 404, as a web server that is no hub does.
    private var notAHub = false

    init(lifetime: TimeInterval = 15) throws {
        let fd = socket(AF_INET, streamSocketType, 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            close(fd)
            throw POSIXError(.EADDRINUSE)
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        listenFD = fd
        port = UInt16(bigEndian: address.sin_port)
        cdn = "http://127.0.0.1:\(port)"
        let deadline = Date().addingTimeInterval(lifetime)
        let thread = Thread { [self] in
            serve(until: deadline)
            finished.signal()
        }
        thread.start()
    }

    func add(_ repo: FakeRepo) { locked { repos[repo.id] = repo } }

    func truncateBlobs(after bytes: Int, times: Int) { locked { truncations = (bytes, times) } }

    func beSilent() { locked { silent = true } }

    func beNoHub() { locked { notAHub = true } }

    var requests: [Request] { locked { log } }

    /// Ends the accept loop and waits for it (at most a couple of seconds).
    func stop() {
        let wasStopped: Bool = locked {
            defer { stopped = true }
            return stopped
        }
        guard !wasStopped else { return }
        _ = finished.wait(timeout: .now() + 3)
        close(listenFD)
    }

    deinit { stop() }

    private func locked<T>(_ body: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }

    private var isStopped: Bool { locked { stopped } }

    // MARK: the accept loop

    private func serve(until deadline: Date) {
        while !isStopped && Date() < deadline {
            var poller = pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 50) > 0 else { continue }
            let connection = accept(listenFD, nil, nil)
            guard connection >= 0 else { continue }
            handle(connection, deadline: deadline)
            close(connection)
        }
    }

    private func handle(_ fd: Int32, deadline: Date) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard let request = readRequest(fd) else { return }
        locked { log.append(request) }
        if locked({ silent }) {
            while !isStopped && Date() < deadline { usleep(20_000) }
            return
        }
        let (head, body, cut) = respond(to: request)
        send(fd, Array(head.utf8))
        if request.method != "HEAD" {
            send(fd, cut.map { Array(body.prefix($0)) } ?? body)
        }
    }

    private func readRequest(_ fd: Int32) -> Request? {
        var buffer = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 4096)
        while buffer.count < 65536 {
            let n = recv(fd, &chunk, chunk.count, 0)
            guard n > 0 else { return nil }
            buffer += chunk[0..<n]
            if let text = String(bytes: buffer, encoding: .utf8), let end = text.range(of: "\r\n\r\n") {
                let lines = text[..<end.lowerBound].components(separatedBy: "\r\n")
                let parts = lines[0].split(separator: " ")
                guard parts.count >= 2 else { return nil }
                var headers: [String: String] = [:]
                for line in lines.dropFirst() {
                    guard let colon = line.firstIndex(of: ":") else { continue }
                    headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                }
                return Request(method: String(parts[0]), path: String(parts[1]), headers: headers)
            }
        }
        return nil
    }

    private func send(_ fd: Int32, _ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { sendNoSignal(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { return }
            offset += n
        }
    }

    // MARK: the hub's answers

    /// Status line and headers, the full body, and (for a truncated transfer) how much of it to send.
    private func respond(to request: Request) -> (String, [UInt8], Int?) {
        func answer(_ status: Int, _ reason: String, _ headers: [(String, String)], _ body: [UInt8] = [],
                    cut: Int? = nil) -> (String, [UInt8], Int?) {
            var head = "HTTP/1.1 \(status) \(reason)\r\n"
            for (k, v) in headers { head += "\(k): \(v)\r\n" }
            head += "Content-Length: \(body.count)\r\nConnection: close\r\n\r\n"
            return (head, body, cut)
        }
        if locked({ notAHub }) { return answer(404, "Not Found", []) }
        let path = request.path.removingPercentEncoding ?? request.path
        let parts = path.split(separator: "/").map(String.init)

        if parts.count == 2, parts[0] == "blob" {
            guard let file = locked({ repos.values.flatMap { $0.files.values }.first { $0.etag == parts[1] } }) else {
                return answer(404, "Not Found", [])
            }
            let cut: Int? = locked {
                guard let t = truncations, t.times > 0 else { return nil }
                truncations = (t.bytes, t.times - 1)
                return t.bytes
            }
            if let range = request.headers["range"], range.hasPrefix("bytes="),
               let start = Int(range.dropFirst(6).split(separator: "-").first ?? "") {
                guard start < file.bytes.count else {
                    return answer(416, "Range Not Satisfiable", [("Content-Range", "bytes */\(file.bytes.count)")])
                }
                let rest = Array(file.bytes[start...])
                return answer(206, "Partial Content",
                              [("Content-Range", "bytes \(start)-\(file.bytes.count - 1)/\(file.bytes.count)")], rest, cut: cut)
            }
            return answer(200, "OK", [("ETag", "\"\(file.etag)\"")], file.bytes, cut: cut)
        }

        guard let resolve = parts.firstIndex(of: "resolve"), resolve >= 1, resolve + 2 < parts.count else {
            return answer(404, "Not Found", [])
        }
        let id = parts[..<resolve].joined(separator: "/")
        let revision = parts[resolve + 1]
        let name = parts[(resolve + 2)...].joined(separator: "/")
        let authorization = request.headers["authorization"]
        guard let repo = locked({ repos[id] }) else {
            // Like the hub: an unknown repo is a 401 to anonymous callers, a 404 to logged-in ones.
            return authorization == nil
                ? answer(401, "Unauthorized", [("X-Error-Code", "RepoNotFound"), ("X-Error-Message", "Repository not found")])
                : answer(404, "Not Found", [("X-Error-Code", "RepoNotFound")])
        }
        if let token = repo.token, authorization != "Bearer \(token)" {
            return answer(authorization == nil ? 401 : 403, "Unauthorized",
                          [("X-Error-Code", "GatedRepo"), ("X-Error-Message", "Access to model \(id) is restricted.")])
        }
        guard revision == "main" || revision == repo.commit else {
            return answer(404, "Not Found", [("X-Error-Code", "RevisionNotFound")])
        }
        guard let file = repo.files[name] else {
            return answer(404, "Not Found", [("X-Error-Code", "EntryNotFound"), ("X-Repo-Commit", repo.commit)])
        }
        if file.lfs {
            return answer(302, "Found", [
                ("Location", "\(cdnBaseURL)/blob/\(file.etag)"),
                ("X-Repo-Commit", repo.commit),
                ("ETag", "\"\(String(repeating: "e", count: 40))\""),  // the LFS pointer's git sha1
                ("X-Linked-Etag", "\"\(file.etag)\""),
                ("X-Linked-Size", "\(file.bytes.count)"),
            ])
        }
        return answer(200, "OK", [("ETag", "\"\(file.etag)\""), ("X-Repo-Commit", repo.commit)], file.bytes)
    }
}

/// send(2) that reports EPIPE instead of raising SIGPIPE when the client has gone.
private func sendNoSignal(_ fd: Int32, _ p: UnsafeRawPointer?, _ count: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.send(fd, p, count, Int32(MSG_NOSIGNAL))
    #else
    var one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, socklen_t(MemoryLayout<Int32>.size))
    return Darwin.send(fd, p, count, 0)
    #endif
}

/// A port on 127.0.0.1 where nothing listens (bound, then closed).
func closedLocalPort() -> UInt16 {
    let fd = socket(AF_INET, streamSocketType, 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    _ = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return UInt16(bigEndian: address.sin_port)
}
