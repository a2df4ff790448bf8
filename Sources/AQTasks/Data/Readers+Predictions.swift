import AQFiles
import AQSafeTensors
import Foundation

/// Prediction files, the inputs of `aqbert score` (and what `evaluate` writes), so predictions
/// made anywhere are scored by the same metric code:
///
/// - sst2 / mnli: JSON Lines, one `{"index": i, "label": "positive", "probabilities": [...]}` per
///   example in input order (`index` = 0-based position, `label` a name of the dataset's label
///   list, `probabilities` optional, one per label).
/// - conll2003: the data file's layout line for line, the predicted tag in the last column of each
///   word line (the data file with a 5th column is also what `conlleval` reads).
/// - squad: `predictions.json`, an object `{question_id: answer_text}` (the official script's input).
public enum PredictionFiles {
    static let classificationExpect = "JSON Lines of {\"index\": i, \"label\": \"...\", \"probabilities\": [...]}, one per example in input order"

    // MARK: sst2 / mnli

    /// Predicted class ids, one per example of the data, checked against the label list.
    public static func classification(_ url: URL, labels: [String], count: Int) throws -> [Int] {
        let source = try SourceText.load(url, expect: classificationExpect)
        var out: [Int] = []
        out.reserveCapacity(count)
        for (i, line) in source.lines.enumerated() {
            if line.allSatisfy(\.isWhitespace) { continue }
            if out.isEmpty && !line.drop(while: \.isWhitespace).hasPrefix("{") {
                throw DataError("\(source.at(i)): looks like \(FileShape.sniff(source.lines).description); predictions must be \(classificationExpect)")
            }
            let object = try TaskReaders.jsonObject(line, source, i)
            guard let indexNumber = object["index"] as? NSNumber, !StrictJSON.isBoolean(indexNumber) else {
                throw DataError("\(source.at(i)): no integer \"index\"; predictions must be \(classificationExpect)")
            }
            guard indexNumber.intValue == out.count, indexNumber.doubleValue == Double(out.count) else {
                throw DataError("\(source.at(i)): index \(indexNumber) where \(out.count) was expected; write one prediction per example, in input order")
            }
            guard out.count < count else {
                throw DataError("\(source.at(i)): more predictions than the \(count) examples of the data")
            }
            guard let label = object["label"] as? String else {
                throw DataError("\(source.at(i)): no string \"label\"; use a label name: \(labels.joined(separator: ", "))")
            }
            guard let id = labels.firstIndex(of: label) else {
                throw DataError("\(source.at(i)): unknown label \"\(label)\"; labels are \(labels.joined(separator: ", "))")
            }
            if let p = object["probabilities"], !(p is NSNull) {
                guard let values = p as? [Any], values.count == labels.count,
                      values.allSatisfy({ ($0 as? NSNumber).map { !StrictJSON.isBoolean($0) } ?? false }) else {
                    throw DataError("\(source.at(i)): \"probabilities\" must be an array of \(labels.count) numbers (one per label: \(labels.joined(separator: ", ")))")
                }
            }
            out.append(id)
        }
        guard out.count == count else {
            throw DataError("\(source.path) has \(out.count) predictions, the data has \(count) examples; write one prediction per example, in input order")
        }
        return out
    }

    /// One line of a classification prediction file (without the newline).
    public static func classificationLine(index: Int, label: String, probabilities: [Float]? = nil) -> String {
        var s = "{\"index\": \(index), \"label\": \(jsonString(label))"
        if let probabilities {
            s += ", \"probabilities\": [" + probabilities.map { $0.isFinite ? "\($0)" : "null" }.joined(separator: ", ") + "]"
        }
        return s + "}"
    }

    // MARK: conll2003

    static let conllExpect = "the data file's layout line for line, with the predicted tag as the last column of each word line"

    /// Predicted tags, one array per sentence of `data`, from a file laid out like `data`'s source
    /// file: the same words on the same lines (blank and `-DOCSTART-` lines where the data has
    /// them), the predicted tag in the last column.
    public static func tags(_ url: URL, matching data: TaggingDataset) throws -> [[String]] {
        let source = try SourceText.load(url, expect: conllExpect)
        // Source line (1-based) -> (sentence, word).
        var position: [Int: (Int, Int)] = [:]
        var lastWordLine = 0
        for (s, sentence) in data.sentences.enumerated() {
            for (w, line) in sentence.lines.enumerated() {
                position[line] = (s, w)
                lastWordLine = max(lastWordLine, line)
            }
        }
        var predicted = data.sentences.map { [String](repeating: "", count: $0.words.count) }
        for (i, line) in source.lines.enumerated() {
            if line.contains("\t") {
                throw DataError("\(source.at(i)): tab character; predictions must be space-separated, \(conllExpect) (\(data.source))")
            }
            let fields = line.split(separator: " ")
            let isWordLine = !fields.isEmpty && fields[0] != "-DOCSTART-"
            let expected = position[i + 1]
            switch (isWordLine, expected) {
            case (false, nil):
                continue
            case (false, let (s, w)?):
                throw DataError("\(source.at(i)): \(fields.isEmpty ? "blank line" : "-DOCSTART- line") where \(data.source):\(i + 1) has the word \"\(data.sentences[s].words[w])\"; predictions must follow the data file line for line")
            case (true, nil):
                throw DataError("\(source.at(i)): word \"\(fields[0])\" where \(data.source):\(i + 1) has \(i + 1 > lastWordLine ? "no more words" : "no word"); predictions must follow the data file line for line")
            case (true, let (s, w)?):
                let word = data.sentences[s].words[w]
                guard fields[0] == word else {
                    throw DataError("\(source.at(i)): word \"\(fields[0])\" where \(data.source):\(i + 1) has \"\(word)\"; predictions must follow the data file line for line")
                }
                guard fields.count >= 2 else {
                    throw DataError("\(source.at(i)): no predicted tag after \"\(word)\"; the last column must be the predicted tag")
                }
                predicted[s][w] = String(fields[fields.count - 1])
            }
        }
        if source.lines.count < lastWordLine {
            let (s, w) = position[source.lines.count + 1] ?? position[lastWordLine]!
            throw DataError("\(source.path) ends at line \(source.lines.count) but \(data.source) continues (word \"\(data.sentences[s].words[w])\" at line \(data.sentences[s].lines[w])); predictions must follow the data file line for line")
        }
        return predicted
    }

    /// The data file with the predicted tag appended to each word line (`word POS chunk NER
    /// predicted`, the conlleval input layout), other lines unchanged.
    public static func conllText(data: TaggingDataset, predicted: [[String]]) throws -> String {
        precondition(predicted.count == data.sentences.count, "one predicted sentence per sentence")
        let source = try SourceText.load(URL(fileURLWithPath: data.source), expect: TaskReaders.conllExpect)
        var tagAt: [Int: String] = [:]
        for (sentence, tags) in zip(data.sentences, predicted) {
            precondition(tags.count == sentence.lines.count, "one predicted tag per word")
            for (line, tag) in zip(sentence.lines, tags) { tagAt[line] = tag }
        }
        var out = ""
        for (i, line) in source.lines.enumerated() {
            out += line
            if let tag = tagAt[i + 1] { out += " " + tag }
            out += "\n"
        }
        return out
    }

    // MARK: squad

    static let squadExpect = "a JSON object {\"question_id\": \"answer text\", ...} (the official SQuAD predictions.json)"

    /// `predictions.json`: question id -> answer text.
    public static func squad(_ url: URL) throws -> [String: String] {
        let data = try SourceText.data(url, expect: squadExpect)
        let root: Any
        do { root = try JSONSerialization.jsonObject(with: data) } catch {
            if let text = String(data: data.prefix(4096), encoding: .utf8) {
                let lines = SourceText.lines(of: text).filter { !$0.isEmpty }
                let shape = FileShape.sniff(lines)
                // One broken single-line object is bad JSON, not JSON Lines.
                if (shape == .jsonLines && lines.count > 1) || shape == .tsv || shape == .conll {
                    throw DataError("\(url.path): looks like \(shape.description); squad predictions must be \(squadExpect)")
                }
            }
            let at = TaskReaders.jsonErrorLine(error, in: data).map { ":\($0)" } ?? ""
            throw DataError("\(url.path)\(at): bad JSON (\(TaskReaders.jsonErrorSummary(error))); predictions must be \(squadExpect)")
        }
        guard let object = root as? [String: Any] else {
            throw DataError("\(url.path): not a JSON object; predictions must be \(squadExpect)")
        }
        var out: [String: String] = [:]
        out.reserveCapacity(object.count)
        for (id, value) in object {
            guard let text = value as? String else {
                throw DataError("\(url.path): prediction for question \(id) is not a string; predictions must be \(squadExpect)")
            }
            out[id] = text
        }
        return out
    }

    /// `predictions.json` text, keys sorted.
    public static func squadJSON(_ predictions: [String: String]) -> String {
        let body = predictions.keys.sorted().map { "  \(jsonString($0)): \(jsonString(predictions[$0]!))" }
        return body.isEmpty ? "{}\n" : "{\n" + body.joined(separator: ",\n") + "\n}\n"
    }
}

/// A JSON string literal (quotes, backslash and control characters escaped; the rest verbatim UTF-8).
func jsonString(_ s: String) -> String { JSONText.quoted(s) }
