import Foundation

/// The environment variables `huggingface_hub` reads, interpreted as it does
/// (`huggingface_hub/constants.py`): same names, same precedence, same truthy spellings.
struct HubSettings: Sendable {
    /// `$HF_HUB_CACHE`, else `$HUGGINGFACE_HUB_CACHE` (the older name), else `$HF_HOME/hub`,
    /// else `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`.
    let cacheDirectory: URL
    /// `$HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`.
    let home: URL
    /// `$HF_ENDPOINT` without a trailing slash, else `https://huggingface.co`.
    let endpoint: String
    /// `HF_HUB_OFFLINE` (or transformers' `TRANSFORMERS_OFFLINE`) is 1/ON/YES/TRUE.
    let offline: Bool
    /// The variable that turned offline mode on, and its value, for messages.
    let offlineVariable: String
    let offlineValue: String
    /// `$HOME`, for `~` in paths.
    let userHome: String
    /// `$HF_TOKEN` (or the older `$HUGGING_FACE_HUB_TOKEN`), else the file `huggingface-cli login`
    /// writes (`$HF_TOKEN_PATH`, else `$HF_HOME/token`).
    let token: String?
    /// Seconds without any byte before a request fails: `HF_HUB_ETAG_TIMEOUT` for metadata,
    /// `HF_HUB_DOWNLOAD_TIMEOUT` for bodies, 10 by default as in huggingface_hub.
    let metadataTimeout: TimeInterval
    let downloadTimeout: TimeInterval

    static let defaultEndpoint = "https://huggingface.co"
    static let defaultTimeout: TimeInterval = 10

    init(environment env: [String: String]) {
        func value(_ name: String) -> String? {
            guard let v = env[name]?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return nil }
            return v
        }
        let userHome = value("HOME") ?? NSHomeDirectory()
        self.userHome = userHome
        func expand(_ path: String, isDirectory: Bool) -> URL {
            var p = path
            if p == "~" { p = userHome } else if p.hasPrefix("~/") { p = userHome + p.dropFirst(1) }
            return URL(fileURLWithPath: p, isDirectory: isDirectory).standardizedFileURL
        }
        func directory(_ path: String) -> URL { expand(path, isDirectory: true) }
        let xdgCache = value("XDG_CACHE_HOME").map(directory) ?? directory("~/.cache")
        home = value("HF_HOME").map(directory) ?? xdgCache.appendingPathComponent("huggingface", isDirectory: true)
        cacheDirectory = (value("HF_HUB_CACHE") ?? value("HUGGINGFACE_HUB_CACHE")).map(directory)
            ?? home.appendingPathComponent("hub", isDirectory: true)

        var endpoint = value("HF_ENDPOINT") ?? HubSettings.defaultEndpoint
        while endpoint.hasSuffix("/") { endpoint.removeLast() }
        self.endpoint = endpoint

        func truthy(_ name: String) -> Bool {
            guard let v = value(name) else { return false }
            return ["1", "ON", "YES", "TRUE"].contains(v.uppercased())
        }
        let offlineVariable = truthy("HF_HUB_OFFLINE") || !truthy("TRANSFORMERS_OFFLINE") ? "HF_HUB_OFFLINE" : "TRANSFORMERS_OFFLINE"
        offline = truthy(offlineVariable)
        self.offlineVariable = offlineVariable
        offlineValue = value(offlineVariable) ?? "1"

        if let t = value("HF_TOKEN") ?? value("HUGGING_FACE_HUB_TOKEN") {
            token = t
        } else {
            let file = value("HF_TOKEN_PATH").map { expand($0, isDirectory: false) } ?? home.appendingPathComponent("token")
            let text = (try? String(contentsOf: file, encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines)
            token = (text?.isEmpty ?? true) ? nil : text
        }

        func seconds(_ name: String) -> TimeInterval {
            guard let v = value(name), let s = Double(v), s > 0 else { return HubSettings.defaultTimeout }
            return s
        }
        metadataTimeout = seconds("HF_HUB_ETAG_TIMEOUT")
        downloadTimeout = seconds("HF_HUB_DOWNLOAD_TIMEOUT")
    }
}
