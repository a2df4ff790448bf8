import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Turns a `--model` argument into a local directory holding a BERT checkpoint, the way
/// transformers' `from_pretrained` does:
///
/// 1. an existing directory is used as is (it must hold `config.json`);
/// 2. otherwise the argument is a Hugging Face model id, `name` or `org/name`, optionally
///    `@revision` (a branch, tag or full commit hash; default `main`), looked up in the hub cache
///    (see `cacheDirectory`); a complete cached snapshot is used without contacting the hub;
/// 3. otherwise the files are downloaded from the hub into that cache, in huggingface_hub's own
///    layout (`CachedRepo`), so transformers finds them too — unless `HF_HUB_OFFLINE=1`.
///
/// Environment: `HF_HUB_CACHE`, `HF_HOME`, `XDG_CACHE_HOME` (cache location), `HF_HUB_OFFLINE`,
/// `HF_ENDPOINT` (default https://huggingface.co), `HF_TOKEN` (bearer token for gated/private
/// models; else the token file `huggingface-cli login` writes), `HF_HUB_ETAG_TIMEOUT` and
/// `HF_HUB_DOWNLOAD_TIMEOUT` (seconds without data before giving up, default 10).
public struct ModelLocator: Sendable {
    let settings: HubSettings
    let session: URLSession

    /// - Parameters:
    ///   - environment: where the `HF_*` variables are read (once, here).
    ///   - session: its configuration (proxies, TLS, protocol classes) is used for every request;
    ///     each request runs in a short-lived session made from it, with a delegate that streams
    ///     the body to the cache.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment, session: URLSession = .shared) {
        self.settings = HubSettings(environment: environment)
        self.session = session
    }

    /// The hub cache: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`,
    /// else `~/.cache/huggingface/hub`.
    public var cacheDirectory: URL { settings.cacheDirectory }

    /// The hub's base URL: `$HF_ENDPOINT`, else https://huggingface.co.
    public var endpoint: String { settings.endpoint }

    /// `HF_HUB_OFFLINE` (or `TRANSFORMERS_OFFLINE`) is set: only the cache is used.
    public var isOffline: Bool { settings.offline }

    /// The files `resolve` fetches from the hub: `config.json`, `vocab.txt`, the weights
    /// (`model.safetensors`, or `model.safetensors.index.json` and its shards) are required;
    /// `tokenizer_config.json`, `tokenizer.json` and `special_tokens_map.json` are taken when present.
    public static let requiredFiles = [ModelFiles.config, ModelFiles.vocabulary, ModelFiles.weights]
    public static let optionalFiles = ModelFiles.optional

    /// A directory path, or a hub id [@revision]; returns the local directory holding the files
    /// (for a hub id, `<cache>/models--org--name/snapshots/<commit>`).
    ///
    /// `progress` is called on the calling thread while files download (see `DownloadProgress`);
    /// it is never called when everything comes from the cache.
    /// - Throws: `HubError`, whose description is one line saying what to do.
    public func resolve(_ spec: String, progress: ((DownloadProgress) -> Void)? = nil) throws -> URL {
        if let directory = try localDirectory(spec) { return directory }
        guard let model = HubModelID(spec) else {
            throw HubError(.noSuchPath, "no directory \(quoted(spec)), and it is not a Hugging Face model id (org/name[@revision]): pass a model directory or a hub id")
        }
        let repo = CachedRepo(cache: cacheDirectory, id: model.id)
        if let commit = repo.commit(for: model.revision), ModelFiles.missing(in: repo.snapshot(commit)).isEmpty {
            return repo.snapshot(commit)
        }
        if settings.offline { throw offlineMiss(model, repo) }
        var download = HubDownload(locator: self, model: model, repo: repo, progress: progress)
        return try download.run()
    }

    /// The directory `spec` names, nil when nothing exists there and `spec` may be a hub id.
    private func localDirectory(_ spec: String) throws -> URL? {
        var path = spec
        let home = settings.userHome
        if path == "~" { path = home } else if path.hasPrefix("~/") { path = home + path.dropFirst(1) }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            let looksLikePath = path.hasPrefix("/") || path.hasPrefix("./") || path.hasPrefix("../")
                || path == "." || path == ".." || path.hasSuffix("/") || spec.hasPrefix("~")
            if looksLikePath {
                throw HubError(.noSuchPath, "no model directory at \(path): check the path, or pass a Hugging Face model id (org/name)")
            }
            return nil
        }
        guard isDir.boolValue else {
            throw HubError(.notADirectory, "\(path) is a file, not a model directory: pass the directory that holds config.json, model.safetensors and vocab.txt")
        }
        let directory = URL(fileURLWithPath: path, isDirectory: true).standardizedFileURL
        let config = directory.appendingPathComponent(ModelFiles.config)
        var configIsDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: config.path, isDirectory: &configIsDir), !configIsDir.boolValue else {
            throw HubError(.missingConfig, "directory \(directory.path) has no config.json: pass a Hugging Face model directory (config.json, model.safetensors, vocab.txt)")
        }
        return directory
    }

    private func offlineMiss(_ model: HubModelID, _ repo: CachedRepo) -> HubError {
        let remedy = "unset \(settings.offlineVariable) to download it, or pass a local model directory"
        let forbids = "\(settings.offlineVariable)=\(settings.offlineValue) forbids downloading"
        guard FileManager.default.fileExists(atPath: repo.root.path) else {
            return HubError(.notCachedOffline, "model \(quoted(model.id)) is not in the Hugging Face cache at \(cacheDirectory.path) and \(forbids) it: \(remedy)")
        }
        guard let commit = repo.commit(for: model.revision) else {
            return HubError(.notCachedOffline, "revision \(quoted(model.revision)) of model \(quoted(model.id)) is not in the Hugging Face cache at \(repo.root.path) and \(forbids) it: \(remedy)")
        }
        let snapshot = repo.snapshot(commit)
        let missing = ModelFiles.missing(in: snapshot).joined(separator: ", ")
        return HubError(.notCachedOffline, "the cached snapshot of \(quoted(model.id)) at \(snapshot.path) lacks \(missing) and \(forbids) them: \(remedy)")
    }
}

/// `name` or `org/name`, then an optional `@revision`. Names follow the hub's `validate_repo_id`:
/// letters, digits, `-`, `_`, `.`; no `--` or `..`; not starting or ending with `-` or `.`;
/// at most 96 characters.
struct HubModelID: Equatable {
    let id: String
    let revision: String

    static let defaultRevision = "main"

    init?(_ spec: String) {
        var id = spec
        var revision = HubModelID.defaultRevision
        if let at = spec.firstIndex(of: "@") {
            id = String(spec[..<at])
            revision = String(spec[spec.index(after: at)...])
            guard !revision.isEmpty, isSafeRelativePath(revision),
                  !revision.unicodeScalars.contains(where: { $0.value < 0x21 || $0.value == 0x7F }) else { return nil }
        }
        let parts = id.split(separator: "/", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), id.count <= 96, !id.contains("--"), !id.contains("..") else { return nil }
        for part in parts {
            guard let first = part.first, let last = part.last,
                  part.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }),
                  !"-.".contains(first), !"-.".contains(last) else { return nil }
        }
        self.id = id
        self.revision = revision
    }
}
