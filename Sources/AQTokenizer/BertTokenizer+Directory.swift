import AQSafeTensors
import Foundation

extension BertTokenizer {
    /// Loads a Hugging Face BERT tokenizer folder.
    ///
    /// - `vocab.txt` (required): one token per line; its line number is the id.
    /// - `tokenizer_config.json` (optional): `do_lower_case` (default true), `strip_accents`
    ///   (default null = follow lower-casing), `tokenize_chinese_chars` (default true), the
    ///   special tokens, `model_max_length`, `added_tokens_decoder`.
    /// - `special_tokens_map.json` (optional): special tokens the config does not name.
    /// - `tokenizer.json` (optional): its `added_tokens`. As in transformers 5.x
    ///   `BertTokenizerFast`, its `normalizer`/`model` settings are *not* used: the
    ///   normalizer options come from `tokenizer_config.json` (or the defaults), so a
    ///   config/tokenizer.json mismatch resolves the way transformers resolves it.
    public init(directory: URL) throws {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: directory.path, isDirectory: &isDir) else {
            throw TokenizerError(.missingFile, "tokenizer directory \(directory.path) does not exist")
        }
        guard isDir.boolValue else {
            throw TokenizerError(.notADirectory, "\(directory.path) is a file, expected a tokenizer directory")
        }
        let vocabURL = directory.appendingPathComponent("vocab.txt")
        guard let vocabData = try BertTokenizer.readFile(vocabURL) else {
            throw TokenizerError(.missingFile, "missing vocab.txt in \(directory.path)")
        }
        let vocab = try BertTokenizer.parseVocabulary(vocabData, path: vocabURL.path)

        let config = try BertTokenizer.readJSONObject(directory.appendingPathComponent("tokenizer_config.json")) ?? [:]
        let specialMap = try BertTokenizer.readJSONObject(directory.appendingPathComponent("special_tokens_map.json")) ?? [:]
        let tokenizerJSONURL = directory.appendingPathComponent("tokenizer.json")
        let tokenizerJSON = try BertTokenizer.readJSONObject(tokenizerJSONURL) ?? [:]

        var options = Options()
        let configPath = directory.appendingPathComponent("tokenizer_config.json").path
        func bool(_ key: String) throws -> Bool? {
            guard let v = config[key], !(v is NSNull) else { return nil }
            guard let b = BertTokenizer.jsonBool(v) else {
                throw TokenizerError(.invalidJSON, "\(configPath): \(key) must be true, false or null")
            }
            return b
        }
        if let v = try bool("do_lower_case") { options.lowercase = v }
        if let v = try bool("strip_accents") { options.stripAccents = v }
        if let v = try bool("tokenize_chinese_chars") { options.tokenizeChineseChars = v }
        if let n = config["model_max_length"] as? NSNumber, !(config["model_max_length"] is Bool) {
            let d = n.doubleValue
            if d.isFinite && d >= 0 && d < 1e15 { options.modelMaxLength = Int(d) }
        }
        func special(_ key: String, _ current: String) -> String {
            BertTokenizer.tokenContent(config[key]) ?? BertTokenizer.tokenContent(specialMap[key]) ?? current
        }
        options.unkToken = special("unk_token", options.unkToken)
        options.clsToken = special("cls_token", options.clsToken)
        options.sepToken = special("sep_token", options.sepToken)
        options.padToken = special("pad_token", options.padToken)
        options.maskToken = special("mask_token", options.maskToken)

        // Added tokens: tokenizer.json's list, then the config's `added_tokens_decoder` (wins by id).
        // A malformed entry is an error naming it: skipping it would tokenize differently from
        // the tokenizer that wrote the file.
        var byId: [Int: AddedToken] = [:]
        let jsonPath = tokenizerJSONURL.path
        if let value = tokenizerJSON["added_tokens"], !(value is NSNull) {
            guard let list = value as? [Any] else {
                throw TokenizerError(.invalidJSON, "\(jsonPath): \"added_tokens\" must be an array")
            }
            for (i, item) in list.enumerated() {
                guard let dict = item as? [String: Any], let number = dict["id"] as? NSNumber, !StrictJSON.isBoolean(number),
                      number.doubleValue == number.doubleValue.rounded(), number.doubleValue >= 0, number.doubleValue < 1e9,
                      let token = BertTokenizer.addedToken(dict, id: number.intValue) else {
                    throw TokenizerError(.invalidJSON, "\(jsonPath): added_tokens[\(i)] needs an integer \"id\" >= 0 and a non-empty string \"content\"")
                }
                byId[number.intValue] = token
            }
        }
        if let value = config["added_tokens_decoder"], !(value is NSNull) {
            guard let decoder = value as? [String: Any] else {
                throw TokenizerError(.invalidJSON, "\(configPath): \"added_tokens_decoder\" must be an object")
            }
            for (key, value) in decoder.sorted(by: { $0.key < $1.key }) {
                guard let id = Int(key), id >= 0, id < 1_000_000_000, let dict = value as? [String: Any],
                      let token = BertTokenizer.addedToken(dict, id: id) else {
                    throw TokenizerError(.invalidJSON, "\(configPath): added_tokens_decoder[\"\(key)\"] needs an integer key >= 0 and a non-empty string \"content\"")
                }
                byId[id] = token
            }
        }
        options.addedTokens = byId.keys.sorted().compactMap { byId[$0] }
        try self.init(vocabulary: vocab, options: options, source: vocabURL.path)
    }

    // MARK: - File helpers

    /// Reads a file; nil if it does not exist; throws if it is a directory or unreadable.
    static func readFile(_ url: URL) throws -> Data? {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else { return nil }
        if isDir.boolValue {
            throw TokenizerError(.notAFile, "\(url.path) is a directory, expected a file")
        }
        do {
            return try Data(contentsOf: url)
        } catch {
            throw TokenizerError(.unreadable, "cannot read \(url.path): \(BertTokenizer.reason(error))")
        }
    }

    static func readJSONObject(_ url: URL) throws -> [String: Any]? {
        guard let data = try readFile(url) else { return nil }
        // Syntax with line and column, and duplicate keys (Foundation keeps one silently).
        if let problem = StrictJSON.problem(in: data) { throw TokenizerError(.invalidJSON, "\(url.path): \(problem)") }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data, options: [])
        } catch {
            throw TokenizerError(.invalidJSON, "invalid JSON in \(url.path): \(BertTokenizer.reason(error))")
        }
        guard let dict = object as? [String: Any] else {
            throw TokenizerError(.invalidJSON, "invalid JSON in \(url.path): expected an object at the top level")
        }
        return dict
    }

    static func reason(_ error: Error) -> String {
        let ns = error as NSError
        let detail = (ns.userInfo[NSDebugDescriptionErrorKey] as? String) ?? ns.localizedDescription
        return TokenizerError.oneLine(detail)
    }

    /// Lines split like Python's universal newlines (`\n`, `\r\n`, `\r`), each line one token
    /// (nothing else stripped, a byte order mark included, as transformers' `load_vocab`).
    static func parseVocabulary(_ data: Data, path: String) throws -> [String] {
        guard String(data: data, encoding: .utf8) != nil else {
            throw TokenizerError(.invalidVocabulary, "\(path) is not valid UTF-8")
        }
        var tokens: [String] = []
        data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let bytes = raw.bindMemory(to: UInt8.self)
            var start = 0
            var i = 0
            let n = bytes.count
            while i < n {
                let b = bytes[i]
                if b == 0x0A || b == 0x0D {
                    tokens.append(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self))
                    if b == 0x0D && i + 1 < n && bytes[i + 1] == 0x0A { i += 1 }
                    start = i + 1
                }
                i += 1
            }
            if start < n {
                tokens.append(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<n]), as: UTF8.self))
            }
        }
        if tokens.isEmpty { throw TokenizerError(.invalidVocabulary, "\(path) is empty") }
        return tokens
    }

    static func jsonBool(_ v: Any) -> Bool? {
        if let b = v as? Bool { return b }
        if let n = v as? NSNumber { return n.boolValue }
        return nil
    }

    /// A special token given as `"[CLS]"` or `{"content": "[CLS]", ...}`.
    static func tokenContent(_ v: Any?) -> String? {
        if let s = v as? String, !s.isEmpty { return s }
        if let d = v as? [String: Any], let s = d["content"] as? String, !s.isEmpty { return s }
        return nil
    }

    static func addedToken(_ d: [String: Any], id: Int) -> AddedToken? {
        guard let content = d["content"] as? String, !content.isEmpty else { return nil }
        func flag(_ key: String) -> Bool? { d[key].flatMap { jsonBool($0) } }
        let special = flag("special") ?? false
        return AddedToken(content, special: special, normalized: flag("normalized") ?? !special,
                          singleWord: flag("single_word") ?? false, lstrip: flag("lstrip") ?? false,
                          rstrip: flag("rstrip") ?? false, id: id)
    }
}
