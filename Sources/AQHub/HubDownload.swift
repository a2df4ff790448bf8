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

/// Downloads the files of one model into the hub cache, one `hf_hub_download` per file
/// (huggingface_hub `file_download.py`, `_hf_hub_download_to_cache_dir`):
///
/// 1. HEAD `{endpoint}/{id}/resolve/{revision}/{file}` without following the CDN redirect:
///    `X-Repo-Commit` is the commit, `X-Linked-Etag` (LFS) or `ETag` names the blob,
///    `X-Linked-Size` or `Content-Length` is the size, `Location` is where the bytes are.
///    The first answer pins the commit; later files are asked for at that commit, so a branch
///    moving mid-download cannot mix two versions. `refs/{revision}` records the commit.
/// 2. A 404 with `X-Error-Code: EntryNotFound` is recorded as `.no_exist/{commit}/{file}`.
/// 3. Under an flock on `.locks/.../{etag}.lock`, the body goes to `blobs/{etag}.incomplete`
///    (resumed with a Range request if a previous run left one), is fsynced, checked against
///    the announced size and renamed to `blobs/{etag}`; then `snapshots/{commit}/{file}` is
///    linked to it. A killed run leaves only the `.incomplete` file and no pointer.
struct HubDownload {
    let locator: ModelLocator
    let model: HubModelID
    let repo: CachedRepo
    let progress: ((DownloadProgress) -> Void)?
    private let http: HubHTTP
    private var commit: String?

    /// Attempts per file when a transfer stops after making progress (each resumes the last).
    static let attempts = 3

    init(locator: ModelLocator, model: HubModelID, repo: CachedRepo, progress: ((DownloadProgress) -> Void)?) {
        self.locator = locator
        self.model = model
        self.repo = repo
        self.progress = progress
        let s = locator.settings
        http = HubHTTP(base: locator.session, token: s.token, metadataTimeout: s.metadataTimeout,
                       downloadTimeout: s.downloadTimeout)
        commit = isCommitHash(model.revision) ? model.revision : nil
    }

    /// Fetches config, tokenizer files, then the weights; returns `snapshots/<commit>`.
    mutating func run() throws -> URL {
        try fetch(ModelFiles.config, required: true)
        try fetch(ModelFiles.vocabulary, required: true)
        for file in ModelFiles.optional { try fetch(file, required: false) }
        if try !fetch(ModelFiles.weights, required: false) {
            guard try fetch(ModelFiles.weightIndex, required: false), let commit = commit else {
                throw HubError(.missingFile, "model \(quoted(model.id)) at revision \(quoted(model.revision)) has no model.safetensors (nor model.safetensors.index.json): aqbert reads safetensors weights only; pick a model that has them or convert its weights to safetensors")
            }
            for shard in try ModelFiles.shards(inIndex: repo.pointer(commit: commit, file: ModelFiles.weightIndex)) {
                try fetch(shard, required: true)
            }
        }
        guard let commit = commit else {  // unreachable: config.json was fetched, which pins it
            throw HubError(.badResponse, "the hub at \(locator.endpoint) named no commit for \(quoted(model.id))")
        }
        return repo.snapshot(commit)
    }

    /// One file into the cache. Returns false for a file the hub does not have (when not required).
    @discardableResult
    private mutating func fetch(_ file: String, required: Bool) throws -> Bool {
        if let commit = commit {
            if FileManager.default.fileExists(atPath: repo.pointer(commit: commit, file: file).path) { return true }
            if repo.isRecordedMissing(commit: commit, file: file) {
                if required { throw missingFile(file) }
                return false
            }
        }
        let url = resolveURL(file)
        let answer: HTTPAnswer
        do {
            answer = try http.head(url)
        } catch let failure as TransportFailure {
            throw unreachable(failure)
        }
        switch answer.status {
        case 200...399:
            break
        case 401, 403:
            throw accessDenied(answer)
        case 404:
            let code = answer.header("X-Error-Code")
            if code == "RepoNotFound" {
                throw HubError(.notFound, "no model \(quoted(model.id)) on \(locator.endpoint) (HTTP 404): check the model id")
            }
            if code == "RevisionNotFound" {
                throw HubError(.notFound, "model \(quoted(model.id)) has no revision \(quoted(model.revision)) on \(locator.endpoint) (HTTP 404): check the branch, tag or commit after @")
            }
            if let found = answer.header("X-Repo-Commit"), isCommitHash(found) {
                try pin(found)
                repo.recordMissing(commit: found, file: file)
            } else if code != "EntryNotFound" && commit == nil {
                // A bare 404 before any hub-like answer: a wrong id, or not a hub at all.
                throw HubError(.notFound, "no model \(quoted(model.id)) at \(locator.endpoint) (HTTP 404 for \(url.absoluteString)): check the model id, and that HF_ENDPOINT points at a Hugging Face hub")
            }
            if required { throw missingFile(file) }
            return false
        default:
            throw badStatus(answer.status, url)
        }

        guard let found = answer.header("X-Repo-Commit"), isCommitHash(found) else {
            throw HubError(.badResponse, "\(url.absoluteString) did not answer like a Hugging Face hub (no X-Repo-Commit header): check HF_ENDPOINT and any proxy, or set HF_HUB_OFFLINE=1 to use only the cache")
        }
        guard let etag = normalizedETag(answer.header("X-Linked-Etag") ?? answer.header("ETag")) else {
            throw HubError(.badResponse, "\(url.absoluteString) sent no ETag, so the file cannot be named in the cache: check HF_ENDPOINT and any proxy")
        }
        let size = (answer.header("X-Linked-Size") ?? answer.header("Content-Length")).flatMap { Int64($0) }
        var location = answer.url
        if (300...399).contains(answer.status) {
            guard let target = answer.header("Location").flatMap({ URL(string: $0, relativeTo: answer.url) }) else {
                throw HubError(.badResponse, "\(url.absoluteString) redirected without a Location header")
            }
            location = target.absoluteURL
        }
        try pin(found)

        let pointer = repo.pointer(commit: found, file: file)
        if FileManager.default.fileExists(atPath: pointer.path) { return true }
        let blob = repo.blob(etag: etag)
        try createDirectory(repo.blobs)
        if !FileManager.default.fileExists(atPath: blob.path) {
            let lock = try FileLock(repo.lock(etag: etag))
            // Another process may have finished the blob while this one waited for the lock.
            if !FileManager.default.fileExists(atPath: blob.path) {
                try transfer(location, to: blob, size: size, file: file)
            }
            withExtendedLifetime(lock) {}
        }
        try repo.link(commit: found, file: file, etag: etag)
        return true
    }

    /// Pins the commit of this download and records `refs/<revision>` the first time.
    private mutating func pin(_ found: String) throws {
        guard commit == nil else { return }
        commit = found
        try repo.recordRef(revision: model.revision, commit: found)
    }

    /// `hf_hub_url`: the revision is quoted entirely (`refs/pr/1` -> `refs%2Fpr%2F1`), the file
    /// name keeps its slashes.
    private func resolveURL(_ file: String) -> URL {
        var unreserved = CharacterSet.alphanumerics.intersection(CharacterSet(charactersIn: Unicode.Scalar(0)...Unicode.Scalar(127)))
        unreserved.insert(charactersIn: "-._~")
        let revision = (commit ?? model.revision).addingPercentEncoding(withAllowedCharacters: unreserved) ?? model.revision
        var pathAllowed = unreserved
        pathAllowed.insert("/")
        let name = file.addingPercentEncoding(withAllowedCharacters: pathAllowed) ?? file
        return URL(string: "\(locator.endpoint)/\(model.id)/resolve/\(revision)/\(name)")!
    }

    /// The body into `blobs/<etag>.incomplete`, then renamed to `blobs/<etag>`.
    private func transfer(_ location: URL, to blob: URL, size: Int64?, file: String) throws {
        let incomplete = URL(fileURLWithPath: blob.path + ".incomplete")
        let fd = open(incomplete.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o666)
        guard fd >= 0 else {
            throw HubError(.cacheWrite, "cannot create \(incomplete.path): \(errnoMessage(errno))")
        }
        var closed = false
        defer { if !closed { close(fd) } }
        func held() -> Int64 { Int64(lseek(fd, 0, SEEK_END)) }
        if let size = size, held() > size { _ = ftruncate(fd, 0) }

        let hubHost = URL(string: locator.endpoint)?.host
        var attempt = 0
        while size == nil || held() < size! {
            attempt += 1
            let start = held()
            progress?(DownloadProgress(file: file, bytesReceived: start, bytesExpected: size))
            let answer: HTTPAnswer
            do {
                answer = try http.get(location, hubHost: hubHost, into: fd, resumeFrom: start) { bytes in
                    progress?(DownloadProgress(file: file, bytesReceived: bytes, bytesExpected: size))
                }
            } catch let failure as TransportFailure {
                let now = held()
                if now > start && attempt < HubDownload.attempts { continue }
                if now == 0 && attempt == 1 { throw unreachable(failure, host: location.host) }
                throw interrupted(file, held: now, size: size, incomplete: incomplete, reason: failure.reason)
            }
            switch answer.status {
            case 200, 206:
                break
            case 416 where start > 0 && attempt < HubDownload.attempts:
                _ = ftruncate(fd, 0)  // the partial file no longer matches: start over
                continue
            case 401, 403:
                throw accessDenied(answer)
            case 404:
                throw missingFile(file)
            default:
                throw badStatus(answer.status, location)
            }
            if size == nil { break }  // no size to check against: the complete answer is the file
            if held() < size! {
                if attempt < HubDownload.attempts && held() > start { continue }
                throw interrupted(file, held: held(), size: size, incomplete: incomplete, reason: "the connection closed early")
            }
        }
        let final = held()
        if let size = size, final != size {
            _ = ftruncate(fd, 0)
            throw HubError(.badResponse, "\(location.absoluteString) sent \(final) bytes of \(file) where \(size) were announced: run again to download it afresh")
        }
        guard fsync(fd) == 0 else {
            throw HubError(.cacheWrite, "cannot write \(incomplete.path): \(errnoMessage(errno))")
        }
        closed = true
        close(fd)
        guard rename(incomplete.path, blob.path) == 0 else {
            throw HubError(.cacheWrite, "cannot move \(incomplete.path) into place: \(errnoMessage(errno))")
        }
        progress?(DownloadProgress(file: file, bytesReceived: final, bytesExpected: size ?? final, isFinished: true))
    }

    // MARK: errors, one line each, saying what to do

    private func missingFile(_ file: String) -> HubError {
        HubError(.missingFile, "model \(quoted(model.id)) at revision \(quoted(model.revision)) has no \(file) on \(locator.endpoint) (HTTP 404): it is not a BERT checkpoint aqbert can read; pick another model or pass a local directory")
    }

    private func accessDenied(_ answer: HTTPAnswer) -> HubError {
        let status = answer.status
        let page = "\(locator.endpoint)/\(model.id)"
        if answer.header("X-Error-Code") == "GatedRepo" {
            let token = locator.settings.token == nil
                ? "then set HF_TOKEN to an access token of that account"
                : "with the account whose token is in HF_TOKEN"
            return HubError(.accessDenied, "model \(quoted(model.id)) is gated (HTTP \(status)): accept its conditions at \(page), \(token)")
        }
        if locator.settings.token != nil {
            return HubError(.accessDenied, "the hub refused access to \(quoted(model.id)) (HTTP \(status)) with the token in HF_TOKEN: check the model id and that the token can read \(page)")
        }
        return HubError(.accessDenied, "the hub refused access to \(quoted(model.id)) (HTTP \(status)): it is private or gated, or does not exist; check the id, or set HF_TOKEN to an access token that can read it")
    }

    private func unreachable(_ failure: TransportFailure, host: String? = nil) -> HubError {
        let target = host.map { "\($0) (where \(locator.endpoint) sent the download)" } ?? "the Hugging Face hub at \(locator.endpoint)"
        return HubError(.unreachable, "could not reach \(target) to download \(quoted(model.id)) (\(failure.reason)): check the network or proxy, or set HF_HUB_OFFLINE=1 to use only the cache at \(locator.cacheDirectory.path), or pass a local model directory")
    }

    private func interrupted(_ file: String, held: Int64, size: Int64?, incomplete: URL, reason: String) -> HubError {
        let of = size.map { " of \($0)" } ?? ""
        return HubError(.interrupted, "the download of \(file) for \(quoted(model.id)) stopped after \(held)\(of) bytes (\(reason)): run again to resume it from \(incomplete.path)")
    }

    private func badStatus(_ status: Int, _ url: URL) -> HubError {
        HubError(.badResponse, "the hub answered HTTP \(status) for \(url.absoluteString): try again later, or set HF_HUB_OFFLINE=1 to use only the cache at \(locator.cacheDirectory.path)")
    }
}

/// `_normalize_etag`: `W/"abc"` and `"abc"` become `abc`. Refuses anything unfit for a file name.
func normalizedETag(_ header: String?) -> String? {
    guard var etag = header?.trimmingCharacters(in: .whitespaces) else { return nil }
    if etag.hasPrefix("W/") { etag.removeFirst(2) }
    etag = etag.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
    guard !etag.isEmpty, isSafeRelativePath(etag), !etag.contains("/") else { return nil }
    return etag
}
