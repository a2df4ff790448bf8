import AQSafeTensors
import Foundation

// GLUE SST-2 and MNLI. GLUE TSVs are read as the GLUE/transformers processors read them:
// split on tabs with no quoting (`csv.reader(f, delimiter="\t", quotechar=None)`), columns found
// by header name. Blank lines are skipped.

extension TaskReaders {
    static let sst2Expect = "a GLUE SST-2 TSV with the header `sentence<TAB>label` (or `index<TAB>sentence` for test.tsv)"
    static let mnliExpect = "a GLUE MNLI TSV (header with `sentence1`, `sentence2`, `gold_label`) or JSON Lines of {\"premise\", \"hypothesis\", \"label\"}"

    /// GLUE SST-2: `sentence<TAB>label` with labels 0 (negative) / 1 (positive); the test file
    /// `index<TAB>sentence` has no labels (`label == nil`). Sentences are kept verbatim.
    public static func sst2(_ url: URL) throws -> ClassificationDataset {
        let source = try SourceText.load(url, expect: sst2Expect, suggestions: ["dev.tsv", "train.tsv", "test.tsv"])
        let header = try tsvHeader(source, required: ["sentence"], task: "sst2", expect: sst2Expect)
        let sentence = header.columns["sentence"]!
        let label = header.columns["label"]
        var examples: [SentenceExample] = []
        examples.reserveCapacity(source.lines.count)
        for i in (header.line + 1)..<source.lines.count {
            let line = source.lines[i]
            if line.allSatisfy(\.isWhitespace) { continue }
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            try checkColumns(fields, header, source, i)
            var id: Int?
            if let label {
                switch fields[label] {
                case "0": id = 0
                case "1": id = 1
                case let other:
                    throw DataError("\(source.at(i)): unknown SST-2 label \"\(other)\"; labels are 0 (negative) and 1 (positive)")
                }
            }
            examples.append(SentenceExample(text: String(fields[sentence]), label: id, line: i + 1))
        }
        if examples.isEmpty { throw DataError("\(source.path) has a header but no examples; expected \(sst2Expect)") }
        return ClassificationDataset(task: .sst2, labels: sst2Labels, examples: examples, source: source.path)
    }

    /// MNLI as a GLUE TSV (columns `sentence1`, `sentence2`, `gold_label` found by name; the test
    /// files have no `gold_label` -> `label == nil`) or as JSON Lines. A file whose first
    /// non-blank character is `{` is read as JSON Lines.
    ///
    /// JSON Lines: `{"premise": ..., "hypothesis": ..., "label": ...}` where `label` is a name
    /// ("entailment", "neutral", "contradiction"), a class id 0...2 (the Hugging Face `glue/mnli`
    /// ids, same order), or -1 / null / absent for unlabelled data.
    public static func mnli(_ url: URL) throws -> ClassificationDataset {
        let source = try SourceText.load(url, expect: mnliExpect,
                                         suggestions: ["dev_matched.tsv", "dev_mismatched.tsv", "dev_matched.jsonl", "train.tsv"])
        if FileShape.sniff(source.lines) == .jsonLines { return try mnliJSONLines(source) }
        let header = try tsvHeader(source, required: ["sentence1", "sentence2"], task: "mnli", expect: mnliExpect)
        let (s1, s2) = (header.columns["sentence1"]!, header.columns["sentence2"]!)
        let gold = header.columns["gold_label"]
        var examples: [SentenceExample] = []
        examples.reserveCapacity(source.lines.count)
        for i in (header.line + 1)..<source.lines.count {
            let line = source.lines[i]
            if line.allSatisfy(\.isWhitespace) { continue }
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            try checkColumns(fields, header, source, i)
            var id: Int?
            if let gold {
                guard let k = mnliLabels.firstIndex(of: String(fields[gold])) else {
                    throw DataError("\(source.at(i)): unknown MNLI gold_label \"\(fields[gold])\"; labels are \(mnliLabels.joined(separator: ", "))")
                }
                id = k
            }
            examples.append(SentenceExample(text: String(fields[s1]), pair: String(fields[s2]), label: id, line: i + 1))
        }
        if examples.isEmpty { throw DataError("\(source.path) has a header but no examples; expected \(mnliExpect)") }
        return ClassificationDataset(task: .mnli, labels: mnliLabels, examples: examples, source: source.path)
    }

    private static func mnliJSONLines(_ source: SourceText) throws -> ClassificationDataset {
        var examples: [SentenceExample] = []
        examples.reserveCapacity(source.lines.count)
        for (i, line) in source.lines.enumerated() {
            if line.allSatisfy(\.isWhitespace) { continue }
            let object = try jsonObject(line, source, i)
            func text(_ key: String) throws -> String {
                guard let s = object[key] as? String else {
                    throw DataError("\(source.at(i)): missing string field \"\(key)\"; MNLI JSON Lines need \"premise\", \"hypothesis\" and \"label\"")
                }
                return s
            }
            let premise = try text("premise"), hypothesis = try text("hypothesis")
            var id: Int?
            switch object["label"] {
            case nil, is NSNull: id = nil
            case let name as String:
                guard let k = mnliLabels.firstIndex(of: name) else {
                    throw DataError("\(source.at(i)): unknown MNLI label \"\(name)\"; labels are \(mnliLabels.joined(separator: ", "))")
                }
                id = k
            case let n as NSNumber where !StrictJSON.isBoolean(n) && n.doubleValue == n.doubleValue.rounded():
                let k = n.intValue
                guard (-1...2).contains(k) else {
                    throw DataError("\(source.at(i)): MNLI label \(k) out of range; use 0 (entailment), 1 (neutral), 2 (contradiction) or -1 (unlabelled)")
                }
                id = k < 0 ? nil : k
            case let other?:
                throw DataError("\(source.at(i)): MNLI label \(other) is neither a label name nor a class id; labels are \(mnliLabels.joined(separator: ", "))")
            }
            examples.append(SentenceExample(text: premise, pair: hypothesis, label: id, line: i + 1))
        }
        return ClassificationDataset(task: .mnli, labels: mnliLabels, examples: examples, source: source.path)
    }

    // MARK: TSV and JSON helpers

    struct TSVHeader {
        /// 0-based index of the header line.
        var line: Int
        var count: Int
        var columns: [String: Int]
    }

    /// The header: the first non-blank line, which must name the `required` columns. A file of
    /// another shape (CoNLL, JSON) is named in the message.
    static func tsvHeader(_ source: SourceText, required: [String], task: String, expect: String) throws -> TSVHeader {
        guard let line = source.lines.firstIndex(where: { !$0.allSatisfy(\.isWhitespace) }) else {
            throw DataError("\(source.path) is empty; expected \(expect)")
        }
        let names = source.lines[line].split(separator: "\t", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces) }
        var columns: [String: Int] = [:]
        for (k, name) in names.enumerated() where columns[name] == nil { columns[name] = k }
        let missing = required.filter { columns[$0] == nil }
        if !missing.isEmpty {
            let shape = FileShape.sniff(source.lines)
            if shape == .conll || shape == .jsonLines || shape == .json {
                throw DataError("\(source.at(line)): looks like \(shape.description); \(task) expects \(expect)")
            }
            let found = String(source.lines[line].prefix(80)).replacingOccurrences(of: "\t", with: "<TAB>")
            throw DataError("\(source.at(line)): header lacks column \(missing.map { "`\($0)`" }.joined(separator: ", ")) (found \"\(found)\"); \(task) expects \(expect)")
        }
        return TSVHeader(line: line, count: names.count, columns: columns)
    }

    static func checkColumns(_ fields: [Substring], _ header: TSVHeader, _ source: SourceText, _ i: Int) throws {
        if fields.count != header.count {
            throw DataError("\(source.at(i)): \(fields.count) tab-separated column\(fields.count == 1 ? "" : "s"), the header has \(header.count); each line needs one value per header column")
        }
    }

    /// One JSON Lines record as an object, with the line in the error.
    static func jsonObject(_ line: Substring, _ source: SourceText, _ i: Int) throws -> [String: Any] {
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: Data(line.utf8), options: [.fragmentsAllowed])
        } catch {
            throw DataError("\(source.at(i)): bad JSON (\(jsonErrorSummary(error))); each line must be one JSON object")
        }
        guard let object = parsed as? [String: Any] else {
            throw DataError("\(source.at(i)): a JSON value that is not an object; each line must be one JSON object")
        }
        return object
    }

    /// A short, single-line reason from a JSONSerialization error.
    static func jsonErrorSummary(_ error: Error) -> String {
        let ns = error as NSError
        let detail = (ns.userInfo[NSDebugDescriptionErrorKey] as? String) ?? ns.localizedDescription
        return detail.split(whereSeparator: \.isNewline).joined(separator: " ")
    }

    /// The 1-based line of a JSONSerialization error that says "around character N" (a byte
    /// offset into `data`), if it does.
    static func jsonErrorLine(_ error: Error, in data: Data) -> Int? {
        let detail = ((error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String) ?? ""
        guard let r = detail.range(of: "character ") else { return nil }
        let digits = detail[r.upperBound...].prefix(while: \.isNumber)
        guard let offset = Int(digits) else { return nil }
        return 1 + data.prefix(offset).reduce(0) { $1 == 0x0A ? $0 + 1 : $0 }
    }
}
