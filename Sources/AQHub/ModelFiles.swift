import Foundation

/// The files of a BERT checkpoint that `resolve` fetches and checks for.
enum ModelFiles {
    static let config = "config.json"
    static let vocabulary = "vocab.txt"
    static let weights = "model.safetensors"
    static let weightIndex = "model.safetensors.index.json"
    /// Fetched when present; a 404 is fine.
    static let optional = ["tokenizer_config.json", "tokenizer.json", "special_tokens_map.json"]

    /// What a snapshot directory still lacks to be loadable (empty when complete): config.json,
    /// vocab.txt, and either model.safetensors or the index with every shard it names. A
    /// dangling symlink (blob deleted) counts as missing.
    static func missing(in directory: URL) -> [String] {
        func has(_ name: String) -> Bool {
            var isDir: ObjCBool = false
            return FileManager.default.fileExists(atPath: directory.appendingPathComponent(name).path,
                                                  isDirectory: &isDir) && !isDir.boolValue
        }
        var missing = [config, vocabulary].filter { !has($0) }
        if !has(weights) {
            if has(weightIndex), let shards = try? shards(inIndex: directory.appendingPathComponent(weightIndex)) {
                missing += shards.filter { !has($0) }
            } else {
                missing.append(weights)
            }
        }
        return missing
    }

    /// The shard file names of a `model.safetensors.index.json` (`weight_map` values), sorted and
    /// unique. A name that would leave the snapshot directory is refused.
    static func shards(inIndex url: URL) throws -> [String] {
        let invalid = HubError(.badResponse, "\(url.path) is not a valid safetensors index: expected a \"weight_map\" object of shard file names")
        guard let data = try? Data(contentsOf: url),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let map = object["weight_map"] as? [String: Any] else { throw invalid }
        var names = Set<String>()
        for value in map.values {
            guard let name = value as? String, isSafeRelativePath(name) else { throw invalid }
            names.insert(name)
        }
        guard !names.isEmpty else { throw invalid }
        return names.sorted()
    }
}

/// A relative path of plain components: no absolute path, no "." or "..", no empty component.
func isSafeRelativePath(_ path: String) -> Bool {
    guard !path.isEmpty, !path.hasPrefix("/"), !path.contains("\\"), !path.contains("\0") else { return false }
    return path.split(separator: "/", omittingEmptySubsequences: false).allSatisfy {
        !$0.isEmpty && $0 != "." && $0 != ".."
    }
}
