import AQFiles
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A finished request: status, headers (keys lower-cased), and the URL that answered.
struct HTTPAnswer {
    let status: Int
    let headers: [String: String]
    let url: URL

    func header(_ name: String) -> String? { headers[name.lowercased()] }
}

/// The request failed below HTTP (DNS, refused, reset, timeout, TLS), or the body stopped early.
struct TransportFailure: Error {
    let reason: String
    let timedOut: Bool
}

/// Blocking HEAD and GET over URLSession, with an idle timeout and body bytes streamed to a file.
///
/// Each call makes a short-lived session with the given session's configuration (so proxies and
/// protocol classes set by the caller apply) and its own delegate, waits for it on the calling
/// thread, and reports progress on the calling thread.
struct HubHTTP {
    let base: URLSession
    let token: String?
    let metadataTimeout: TimeInterval
    let downloadTimeout: TimeInterval

    /// `get_hf_file_metadata`: HEAD without following redirects, except relative ones (a renamed
    /// repository), so that the hub's own headers (X-Repo-Commit, X-Linked-Etag, X-Linked-Size,
    /// Location to the CDN) are seen rather than the CDN's.
    func head(_ url: URL) throws -> HTTPAnswer {
        var current = url
        for _ in 0..<10 {
            var request = makeRequest(current, method: "HEAD", timeout: metadataTimeout)
            request.setValue("identity", forHTTPHeaderField: "Accept-Encoding")
            let answer = try perform(request, followRedirects: false, timeout: metadataTimeout, body: nil)
            if (300...399).contains(answer.status), let location = answer.header("Location"),
               URLComponents(string: location)?.host == nil,
               let next = URL(string: location, relativeTo: current)?.absoluteURL {
                current = next
                continue
            }
            return answer
        }
        throw TransportFailure(reason: "too many redirects from \(url.absoluteString)", timedOut: false)
    }

    /// GETs `url` into the open descriptor `fd`, which already holds `resumeFrom` bytes of it: asks
    /// for the rest with a Range header, and starts over if the server sends the whole file.
    /// The authorization header goes only to the hub's own host, as in `_get_metadata_or_catch_error`
    /// (a CDN URL is signed). Non-2xx answers return without writing.
    func get(_ url: URL, hubHost: String?, into fd: Int32, resumeFrom: Int64,
             progress: (Int64) -> Void) throws -> HTTPAnswer {
        var request = makeRequest(url, method: "GET", timeout: downloadTimeout,
                                  authorize: url.host == hubHost)
        request.setValue("identity", forHTTPHeaderField: "Accept-Encoding")
        if resumeFrom > 0 { request.setValue("bytes=\(resumeFrom)-", forHTTPHeaderField: "Range") }
        let sink = FileSink(fd: fd, resumeFrom: resumeFrom)
        return try perform(request, followRedirects: true, timeout: downloadTimeout, body: sink, progress: progress)
    }

    private func makeRequest(_ url: URL, method: String, timeout: TimeInterval, authorize: Bool = true) -> URLRequest {
        var request = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: timeout)
        request.httpMethod = method
        request.setValue("aqbert; hf_hub-compatible", forHTTPHeaderField: "User-Agent")
        if authorize, let token = token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        return request
    }

    private func perform(_ request: URLRequest, followRedirects: Bool, timeout: TimeInterval,
                         body: FileSink?, progress: (Int64) -> Void = { _ in }) throws -> HTTPAnswer {
        let configuration = base.configuration
        configuration.urlCache = nil  // never keep a copy of a multi-GB body in URLCache
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        configuration.timeoutIntervalForRequest = timeout
        let transfer = Transfer(followRedirects: followRedirects, sink: body)
        let queue = OperationQueue()
        queue.maxConcurrentOperationCount = 1
        let session = URLSession(configuration: configuration, delegate: transfer, delegateQueue: queue)
        defer { session.finishTasksAndInvalidate() }
        let task = session.dataTask(with: request)
        task.resume()

        // URLSession's idle timer already bounds a silent connection; this watchdog is the backstop
        // that guarantees `resolve` never hangs whatever the transport does.
        var lastBytes: Int64 = -1
        var lastChange = Date()
        while transfer.done.wait(timeout: .now() + 0.1) == .timedOut {
            let bytes = transfer.bytesReceived
            if bytes != lastBytes {
                lastBytes = bytes
                lastChange = Date()
                if bytes > 0 { progress(bytes) }
            } else if Date().timeIntervalSince(lastChange) > timeout + 5 {
                task.cancel()
                _ = transfer.done.wait(timeout: .now() + 5)
                throw TransportFailure(reason: "no data for \(Int(timeout + 5)) s", timedOut: true)
            }
        }
        if let failure = transfer.sinkFailure { throw failure }
        if let error = transfer.error {
            let urlError = error as? URLError
            throw TransportFailure(reason: describe(error), timedOut: urlError?.code == .timedOut)
        }
        guard let response = transfer.response ?? task.response as? HTTPURLResponse else {
            throw TransportFailure(reason: "no HTTP response from \(request.url?.absoluteString ?? "?")", timedOut: false)
        }
        var headers: [String: String] = [:]
        for (key, value) in response.allHeaderFields {
            if let k = key as? String, let v = value as? String { headers[k.lowercased()] = v }
        }
        return HTTPAnswer(status: response.statusCode, headers: headers, url: response.url ?? request.url!)
    }

    private func describe(_ error: Error) -> String {
        if let urlError = error as? URLError {
            switch urlError.code {
            case .timedOut: return "timed out"
            case .cannotFindHost, .dnsLookupFailed: return "host not found"
            case .cannotConnectToHost: return "connection refused"
            case .notConnectedToInternet: return "not connected to the internet"
            case .networkConnectionLost: return "connection lost"
            case .secureConnectionFailed, .serverCertificateUntrusted, .serverCertificateHasBadDate,
                 .serverCertificateNotYetValid, .serverCertificateHasUnknownRoot:
                return "TLS failed"
            default: break
            }
        }
        return systemMessage(error)
    }
}

/// Writes a body to a descriptor, honouring (or, on a 200, discarding) the resumed prefix.
final class FileSink: Sendable {
    let fd: Int32
    let resumeFrom: Int64
    init(fd: Int32, resumeFrom: Int64) {
        self.fd = fd
        self.resumeFrom = resumeFrom
    }
}

/// The delegate of one request. URLSession calls it on its serial delegate queue; the waiting
/// thread reads `bytesReceived` under the lock and the rest only after `done` is signalled
/// (the semaphore orders those accesses), hence `@unchecked Sendable`.
private final class Transfer: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    let done = DispatchSemaphore(value: 0)
    let followRedirects: Bool
    let sink: FileSink?
    private let lock = NSLock()
    private var received: Int64 = 0
    private var writing = false
    var response: HTTPURLResponse?
    var error: Error?
    var sinkFailure: Error?

    init(followRedirects: Bool, sink: FileSink?) {
        self.followRedirects = followRedirects
        self.sink = sink
    }

    /// Bytes of the file held so far (the resumed prefix included).
    var bytesReceived: Int64 {
        lock.lock()
        defer { lock.unlock() }
        return received
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                    newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void) {
        guard followRedirects else { return completionHandler(nil) }
        var next = request
        if next.url?.host != task.originalRequest?.url?.host {
            next.setValue(nil, forHTTPHeaderField: "Authorization")
        }
        completionHandler(next)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        let http = response as? HTTPURLResponse
        self.response = http
        guard let sink = sink, let status = http?.statusCode else { return completionHandler(.allow) }
        switch status {
        case 200:
            // The whole file, from byte 0 (no Range asked, or the server ignored it).
            guard ftruncate(sink.fd, 0) == 0, lseek(sink.fd, 0, SEEK_SET) == 0 else {
                sinkFailure = HubError(.cacheWrite, "cannot truncate a partial download: \(errnoMessage(errno))")
                return completionHandler(.cancel)
            }
            setReceived(0)
        case 206:
            let range = http?.value(forHTTPHeaderField: "Content-Range") ?? ""
            guard contentRangeStart(range) == sink.resumeFrom else {
                sinkFailure = TransportFailure(reason: "the server resumed at the wrong offset (Content-Range: \(range))", timedOut: false)
                return completionHandler(.cancel)
            }
            setReceived(sink.resumeFrom)
        default:
            return completionHandler(.allow)  // an error body: read and dropped
        }
        writing = true
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        guard writing, let sink = sink, sinkFailure == nil else { return }
        let failed: Int32? = data.withUnsafeBytes { raw -> Int32? in
            guard var p = raw.baseAddress else { return nil }
            var left = raw.count
            while left > 0 {
                let n = write(sink.fd, p, left)
                if n < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                p += n
                left -= n
            }
            return nil
        }
        if let code = failed {
            sinkFailure = HubError(.cacheWrite, "cannot write a download to the Hugging Face cache: \(errnoMessage(code))")
            dataTask.cancel()
            return
        }
        lock.lock()
        received += Int64(data.count)
        lock.unlock()
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        if response == nil { response = task.response as? HTTPURLResponse }
        self.error = error
        done.signal()
    }

    private func setReceived(_ value: Int64) {
        lock.lock()
        received = value
        lock.unlock()
    }
}

/// The first byte of `Content-Range: bytes <start>-<end>/<total>`.
private func contentRangeStart(_ header: String) -> Int64? {
    let trimmed = header.trimmingCharacters(in: .whitespaces)
    guard trimmed.lowercased().hasPrefix("bytes ") else { return nil }
    let spec = trimmed.dropFirst(6)
    guard let dash = spec.firstIndex(of: "-") else { return nil }
    return Int64(spec[..<dash].trimmingCharacters(in: .whitespaces))
}
