import Foundation

extension TaskReaders {
    static let conllExpect = "CoNLL-2003 lines of 4 space-separated columns `word POS chunk NER`, a blank line between sentences"

    /// CoNLL-2003: one `word POS chunk NER` line per word, a blank line between sentences,
    /// `-DOCSTART-` lines (document boundaries) skipped. NER tags are kept as in the file
    /// (`O`, `B-TYPE`, `I-TYPE`); the scheme is IOB1 when some chunk starts with `I-` (at a
    /// sentence start, after `O` or after another type), else IOB2.
    public static func conll2003(_ url: URL) throws -> TaggingDataset {
        let source = try SourceText.load(url, expect: conllExpect, suggestions: ["valid.txt", "test.txt", "train.txt"])
        let shape = FileShape.sniff(source.lines)
        if shape == .tsv || shape == .jsonLines || shape == .json {
            let first = source.lines.firstIndex(where: { !$0.allSatisfy(\.isWhitespace) }) ?? 0
            throw DataError("\(source.at(first)): looks like \(shape.description); conll2003 expects \(conllExpect)")
        }
        var sentences: [TaggedSentence] = []
        var current = TaggedSentence(words: [], tags: [])
        func flush() {
            if !current.words.isEmpty { sentences.append(current) }
            current = TaggedSentence(words: [], tags: [])
        }
        for (i, line) in source.lines.enumerated() {
            if line.contains("\t") {
                throw DataError("\(source.at(i)): tab character; conll2003 expects \(conllExpect) (a TSV file is not CoNLL)")
            }
            let fields = line.split(separator: " ")
            if fields.isEmpty { flush(); continue }
            if fields[0] == "-DOCSTART-" { flush(); continue }
            guard fields.count == 4 else {
                throw DataError("\(source.at(i)): \(fields.count) column\(fields.count == 1 ? "" : "s"); conll2003 expects 4 space-separated columns `word POS chunk NER`")
            }
            let tag = String(fields[3])
            guard isIOBTag(tag) else {
                throw DataError("\(source.at(i)): NER tag \"\(tag)\" is not O, B-TYPE or I-TYPE; the last column must be the NER tag")
            }
            current.words.append(String(fields[0]))
            current.tags.append(tag)
            current.columns.append(fields[1..<3].map(String.init))
            current.lines.append(i + 1)
        }
        flush()
        if sentences.isEmpty { throw DataError("\(source.path) has no sentences; expected \(conllExpect)") }
        var seen = Set<String>()
        for s in sentences { seen.formUnion(s.tags) }
        let labels = ["O"] + seen.subtracting(["O"]).sorted()
        return TaggingDataset(sentences: sentences, labels: labels, scheme: detectScheme(sentences.map(\.tags)), source: source.path)
    }

    /// IOB1 if some chunk begins with `I-` (first tag, after `O`, or after another type), else IOB2.
    public static func detectScheme(_ sentences: [[String]]) -> TagScheme {
        for tags in sentences {
            var previousType: Substring? = nil
            for tag in tags {
                if tag.hasPrefix("I-") {
                    let type = tag.dropFirst(2)
                    if previousType != type { return .iob1 }
                }
                previousType = tag == "O" ? nil : tag.dropFirst(2)
            }
        }
        return .iob2
    }

    static func isIOBTag(_ tag: String) -> Bool {
        tag == "O" || ((tag.hasPrefix("B-") || tag.hasPrefix("I-")) && tag.count > 2)
    }
}
