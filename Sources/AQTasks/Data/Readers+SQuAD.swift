import AQSafeTensors
import Foundation

extension TaskReaders {
    static let squadExpect = "a SQuAD JSON file such as dev-v1.1.json ({\"version\": ..., \"data\": [{\"title\", \"paragraphs\": [{\"context\", \"qas\"}]}]})"

    /// SQuAD v1.1 (or v2.0) JSON. Questions are returned in file order. Every answer is checked
    /// against its context: `answer_start` counts Unicode scalars (Python `str` indices) and the
    /// answer text must be found there. SQuAD v2 questions with `"is_impossible": true` are
    /// counted in `skippedUnanswerable` and skipped.
    public static func squad(_ url: URL) throws -> SquadDataset {
        let path = url.path
        let data = try SourceText.data(url, expect: squadExpect, suggestions: ["dev-v1.1.json", "train-v1.1.json", "dev-v2.0.json"])
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: data)
        } catch {
            let at = jsonErrorLine(error, in: data).map { ":\($0)" } ?? ""
            if let text = String(data: data.prefix(4096), encoding: .utf8) {
                let shape = FileShape.sniff(SourceText.lines(of: text))
                if shape == .tsv || shape == .conll || shape == .jsonLines {
                    throw DataError("\(path): looks like \(shape.description); squad expects \(squadExpect)")
                }
            }
            throw DataError("\(path)\(at): bad JSON (\(jsonErrorSummary(error))); expected \(squadExpect)")
        }
        guard let top = root as? [String: Any], let articles = top["data"] as? [Any] else {
            throw DataError("\(path): no \"data\" array at the top level; expected \(squadExpect)")
        }
        let version = (top["version"] as? String) ?? ((top["version"] as? NSNumber).map { "\($0)" } ?? "")
        var examples: [SquadExample] = []
        var titles: [String] = []
        var skipped = 0
        var ids = Set<String>()
        for (a, articleValue) in articles.enumerated() {
            guard let article = articleValue as? [String: Any], let paragraphs = article["paragraphs"] as? [Any] else {
                throw DataError("\(path): article \(a) has no \"paragraphs\" array; expected \(squadExpect)")
            }
            let title = (article["title"] as? String) ?? "article \(a)"
            titles.append(title)
            for (p, paragraphValue) in paragraphs.enumerated() {
                guard let paragraph = paragraphValue as? [String: Any], let context = paragraph["context"] as? String,
                      let qas = paragraph["qas"] as? [Any] else {
                    throw DataError("\(path): article \"\(title)\" paragraph \(p) lacks \"context\" or \"qas\"; expected \(squadExpect)")
                }
                let contextScalars = Array(context.unicodeScalars)
                for (q, qaValue) in qas.enumerated() {
                    guard let qa = qaValue as? [String: Any], let id = qa["id"] as? String else {
                        throw DataError("\(path): article \"\(title)\" paragraph \(p) question \(q) has no string \"id\"")
                    }
                    let at = "\(path): question \(id)"
                    guard ids.insert(id).inserted else {
                        throw DataError("\(at): duplicate question id; ids must be unique (predictions are keyed by id)")
                    }
                    guard let question = qa["question"] as? String else {
                        throw DataError("\(at): no string \"question\"")
                    }
                    if (qa["is_impossible"] as? NSNumber)?.boolValue == true {
                        skipped += 1
                        continue
                    }
                    guard let answerValues = qa["answers"] as? [Any] else {
                        throw DataError("\(at): no \"answers\" array")
                    }
                    if answerValues.isEmpty {
                        throw DataError("\(at): no answers (and not marked \"is_impossible\"); every SQuAD v1.1 question needs at least one answer")
                    }
                    var answers: [SquadExample.Answer] = []
                    for (k, answerValue) in answerValues.enumerated() {
                        guard let answer = answerValue as? [String: Any], let text = answer["text"] as? String,
                              let startNumber = answer["answer_start"] as? NSNumber, !StrictJSON.isBoolean(startNumber),
                              startNumber.doubleValue == startNumber.doubleValue.rounded(),
                              abs(startNumber.doubleValue) < 9.0e15 else {
                            throw DataError("\(at): answer \(k) needs a string \"text\" and an integer \"answer_start\"")
                        }
                        let start = startNumber.intValue
                        let textScalars = Array(text.unicodeScalars)
                        // (Written so that no sum can overflow, whatever answer_start is.)
                        guard start >= 0, textScalars.count <= contextScalars.count, start <= contextScalars.count - textScalars.count else {
                            throw DataError("\(at): answer \(k) \"\(clip(text))\" at answer_start \(start) runs outside the context (\(contextScalars.count) characters); fix answer_start (a character offset into the context)")
                        }
                        guard contextScalars[start..<(start + textScalars.count)].elementsEqual(textScalars) else {
                            let found = String(String.UnicodeScalarView(contextScalars[start..<(start + textScalars.count)]))
                            throw DataError("\(at): answer \(k) \"\(clip(text))\" is not at answer_start \(start) (the context has \"\(clip(found))\" there); fix answer_start or the answer text")
                        }
                        answers.append(.init(text: text, start: start))
                    }
                    examples.append(SquadExample(id: id, title: title, context: context, question: question, answers: answers))
                }
            }
        }
        if examples.isEmpty {
            throw DataError("\(path) has no answerable questions (\(skipped) skipped as unanswerable); expected \(squadExpect)")
        }
        return SquadDataset(examples: examples, titles: titles, skippedUnanswerable: skipped, version: version, source: path)
    }

    /// A message-sized, single-line excerpt.
    static func clip(_ s: String, _ n: Int = 40) -> String {
        let line = s.replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "\r", with: " ")
        return line.unicodeScalars.count <= n ? line : String(String.UnicodeScalarView(line.unicodeScalars.prefix(n))) + "..."
    }
}
