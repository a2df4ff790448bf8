import Foundation

/// Readers of the task data files (METHOD.md section 7). Each reader validates as it parses and
/// throws a `DataError` whose one-line message names the file and the line (or question id) and
/// says what was expected.
///
/// - `sst2(_:)`: GLUE SST-2 TSV (`sentence<TAB>label`, or the unlabelled test file
///   `index<TAB>sentence`); labels 0/1 = negative/positive.
/// - `mnli(_:)`: GLUE MNLI TSV (`train.tsv`, `dev_matched.tsv`, `dev_mismatched.tsv`; columns
///   found by the header names `sentence1`, `sentence2`, `gold_label`) or JSON Lines
///   (`premise`, `hypothesis`, `label`).
/// - `conll2003(_:)`: CoNLL-2003 `word POS chunk NER` lines.
/// - `squad(_:)`: SQuAD v1.1 / v2.0 JSON.
///
/// In `Readers+GLUE.swift`, `Readers+CoNLL.swift`, `Readers+SQuAD.swift`; prediction files (the
/// `score` command's inputs) in `Readers+Predictions.swift`.
public enum TaskReaders {
    /// Label names in class-id order (the id a model is trained with).
    public static let sst2Labels = ["negative", "positive"]
    public static let mnliLabels = ["entailment", "neutral", "contradiction"]

    /// Reads any task's classification data (sst2 or mnli).
    public static func classification(_ task: TaskName, _ url: URL) throws -> ClassificationDataset {
        switch task {
        case .sst2: return try sst2(url)
        case .mnli: return try mnli(url)
        case .conll2003, .squad:
            throw DataError("\(task.rawValue) is not a sentence-classification task; use TaskReaders.\(task == .squad ? "squad" : "conll2003")")
        }
    }
}

// MARK: - Source text

/// A data file's text split into lines (`SourceText.lines(of:)`: LF or CRLF ends a line), after
/// the checks every reader shares: the path exists, is a file, is not empty, is UTF-8.
struct SourceText {
    let path: String
    /// Line `i` is source line `i + 1`.
    let lines: [Substring]
    let text: String

    /// `expect` completes "expected ..." in messages (e.g. "a GLUE SST-2 TSV such as dev.tsv").
    static func load(_ url: URL, expect: String, suggestions: [String] = []) throws -> SourceText {
        let data = try SourceText.data(url, expect: expect, suggestions: suggestions)
        var bytes = data
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes = bytes.dropFirst(3) }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw DataError("\(url.path):\(firstInvalidUTF8Line(bytes)): not valid UTF-8; save the file as UTF-8")
        }
        var lines = lines(of: text)
        if lines.last == "" { lines.removeLast() }
        return SourceText(path: url.path, lines: lines, text: text)
    }

    /// `text` split at LF and CRLF (Windows files such as GLUE TSVs saved on Windows), a "\r"
    /// left at a line's end dropped. Swift reads "\r\n" as one Character, so splitting at the
    /// Character "\n" alone would leave a CRLF file as one line.
    static func lines(of text: String) -> [Substring] {
        text.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" }
            .map { $0.hasSuffix("\r") ? $0.dropLast() : $0 }
    }

    /// The file's bytes, with one-line errors for a missing file, a directory and an empty file.
    static func data(_ url: URL, expect: String, suggestions: [String] = []) throws -> Data {
        let path = url.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw DataError("\(path): no such file; expected \(expect)")
        }
        if isDirectory.boolValue {
            let found = suggestions.filter { FileManager.default.fileExists(atPath: url.appendingPathComponent($0).path) }
            let hint = found.isEmpty ? "" : " (found \(found.map { url.appendingPathComponent($0).path }.joined(separator: ", ")))"
            throw DataError("\(path) is a directory; pass the file itself\(hint), expected \(expect)")
        }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw DataError("\(path): cannot read (\((error as NSError).localizedDescription)); expected \(expect)")
        }
        if data.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            throw DataError("\(path) is empty; expected \(expect)")
        }
        return data
    }

    /// 1-based line of the first invalid UTF-8 sequence.
    static func firstInvalidUTF8Line(_ bytes: Data) -> Int {
        var line = 1
        var start = bytes.startIndex
        while start < bytes.endIndex {
            let end = bytes[start...].firstIndex(of: 0x0A) ?? bytes.endIndex
            if String(validating: bytes[start..<end], as: UTF8.self) == nil { return line }
            line += 1
            start = end < bytes.endIndex ? bytes.index(after: end) : end
        }
        return line
    }

    /// "path:line".
    func at(_ index: Int) -> String { "\(path):\(index + 1)" }
}

/// What a file looks like, for "looks like ..." messages when a file is passed to the wrong reader.
enum FileShape {
    case tsv, conll, jsonLines, json, unknown

    static func sniff(_ lines: [Substring]) -> FileShape {
        guard let first = lines.first(where: { !$0.allSatisfy(\.isWhitespace) }) else { return .unknown }
        if first.hasPrefix("-DOCSTART-") { return .conll }
        let fields = first.split(separator: " ")
        if !first.contains("\t"), fields.count >= 2, let tag = fields.last,
           tag == "O" || tag.hasPrefix("B-") || tag.hasPrefix("I-") {
            return .conll
        }
        let trimmed = first.trimmingCharacters(in: .whitespaces)
        if trimmed.hasPrefix("{") {
            // One complete object per line is JSON Lines; a pretty-printed document is JSON.
            return trimmed.hasSuffix("}") ? .jsonLines : .json
        }
        if trimmed.hasPrefix("[") { return .json }
        if first.contains("\t") { return .tsv }
        return .unknown
    }

    var description: String {
        switch self {
        case .tsv: return "a TSV file"
        case .conll: return "a CoNLL file (space-separated `word POS chunk NER` lines)"
        case .jsonLines: return "a JSON Lines file"
        case .json: return "a JSON file"
        case .unknown: return "an unknown format"
        }
    }
}

// MARK: - Splits of read datasets

extension ClassificationDataset {
    /// Splits by the held-out rule of `DataSplits.heldOut` over example positions (0-based, file
    /// order): `heldOut` gets example `i` when `splitmix64(seed ^ i) % 100 < percent`. MNLI uses
    /// it for the 80/20 split of dev_matched (percent 20); the same rule in Python selects the
    /// same examples.
    public func split(heldOutPercent percent: Int, seed: UInt64) -> (kept: ClassificationDataset, heldOut: ClassificationDataset) {
        precondition((0...100).contains(percent), "heldOutPercent must be in 0...100")
        var kept = self, held = self
        kept.examples = []
        held.examples = []
        for (i, e) in examples.enumerated() {
            if DataSplits.heldOut(index: i, seed: seed, percent: percent) { held.examples.append(e) } else { kept.examples.append(e) }
        }
        return (kept, held)
    }
}

extension SquadDataset {
    /// The questions of the first `count` articles in file order (the order of `titles`).
    public func articles(first count: Int) -> SquadDataset {
        selecting(titles: Array(titles.prefix(max(0, count))))
    }

    /// The questions of the last `count` articles in file order.
    public func articles(last count: Int) -> SquadDataset {
        selecting(titles: Array(titles.suffix(max(0, count))))
    }

    private func selecting(titles chosen: [String]) -> SquadDataset {
        let keep = Set(chosen)
        var out = self
        out.titles = chosen
        out.examples = examples.filter { keep.contains($0.title) }
        return out
    }
}
