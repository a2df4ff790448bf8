/// Entity-level precision, recall and F1 with conlleval semantics, on the 0-100 scale.
///
/// Ported from `conlleval` (Erik Tjong Kim Sang, CoNLL-2000/2003 shared tasks, version 2004-01-26):
/// `endOfChunk` / `startOfChunk` decide where chunks begin and end, so IOB1 and IOB2 tags are
/// scored alike: `I-X` after `O` (or after another type) starts a chunk, a type change ends one,
/// a sentence boundary ends one. seqeval 1.2.2's default (non-strict) mode computes the same
/// numbers for B/I/O tags (`get_entities` + set intersection per type).
///
/// Two implementations: `evaluate` extracts chunks `(type, start, end)` per sentence and
/// intersects the gold and predicted sets per type (seqeval's way); `evaluateReference` is a
/// line-by-line port of conlleval's streaming counter. Tests hold them equal.
///
/// A tag splits at its first `-` into a prefix (`B`, `I`, `O`, ...) and a type, as conlleval
/// 2004-01-26 does (`/^([^-]*)-(.*)$/`); a tag without `-` has the empty type, which is scored
/// and listed like any other (seqeval names it `_`). seqeval takes the first character as the
/// prefix; both agree on `O` / `B-TYPE` / `I-TYPE`. For `E-`/`S-` (IOBES) tags conlleval and
/// seqeval disagree; this follows conlleval.
public enum ConllEval {
    /// A chunk: its type and its words `start..<end` within the sentence.
    public struct Chunk: Hashable, Sendable {
        public var type: String
        public var start: Int
        public var end: Int
        public init(type: String, start: Int, end: Int) {
            self.type = type
            self.start = start
            self.end = end
        }
    }

    /// Chunk counts: gold chunks, predicted chunks, predicted chunks equal to a gold chunk.
    public struct Counts: Sendable, Equatable {
        public var gold = 0
        public var predicted = 0
        public var correct = 0
        public init(gold: Int = 0, predicted: Int = 0, correct: Int = 0) {
            self.gold = gold
            self.predicted = predicted
            self.correct = correct
        }

        /// 100 * correct / predicted (0 with no predicted chunk).
        public var precision: Double { 100 * fraction.precision }
        /// 100 * correct / gold (0 with no gold chunk).
        public var recall: Double { 100 * fraction.recall }
        /// 100 * 2PR / (P + R), from the fractions as seqeval computes it (0 when P + R = 0).
        public var f1: Double { 100 * fraction.f1 }

        private var fraction: (precision: Double, recall: Double, f1: Double) {
            let p = predicted == 0 ? 0 : Double(correct) / Double(predicted)
            let r = gold == 0 ? 0 : Double(correct) / Double(gold)
            let f = p + r == 0 ? 0 : 2 * p * r / (p + r)
            return (p, r, f)
        }
    }

    public struct Scores: Sendable, Equatable {
        /// Micro-averaged over all chunks.
        public var overall: Counts
        /// Per chunk type, keyed by type.
        public var perType: [String: Counts]
        /// Types in sorted order.
        public var types: [String] { perType.keys.sorted() }
    }

    // MARK: Chunk rules (conlleval's endOfChunk / startOfChunk)

    /// `(prefix, type)` of a tag: split at the first "-".
    @inline(__always)
    static func split(_ tag: String) -> (prefix: Substring, type: Substring) {
        guard let dash = tag.firstIndex(of: "-") else { return (tag[...], "") }
        return (tag[..<dash], tag[tag.index(after: dash)...])
    }

    /// Whether a chunk ended between the previous word and this one.
    static func endOfChunk(_ prevTag: Substring, _ tag: Substring, _ prevType: Substring, _ type: Substring) -> Bool {
        switch (prevTag, tag) {
        case ("B", "B"), ("B", "O"), ("I", "B"), ("I", "O"), ("E", "E"), ("E", "I"), ("E", "O"): return true
        default: break
        }
        if prevTag != "O" && prevTag != "." && prevType != type { return true }
        // conlleval 1998-12-22: "[" and "]" chunks have length 1.
        return prevTag == "]" || prevTag == "["
    }

    /// Whether a chunk started between the previous word and this one.
    static func startOfChunk(_ prevTag: Substring, _ tag: Substring, _ prevType: Substring, _ type: Substring) -> Bool {
        switch (prevTag, tag) {
        case ("B", "B"), ("I", "B"), ("O", "B"), ("O", "I"), ("E", "E"), ("E", "I"), ("O", "E"): return true
        default: break
        }
        if tag != "O" && tag != "." && prevType != type { return true }
        return tag == "[" || tag == "]"
    }

    // MARK: Set-based scoring (seqeval's way)

    /// The chunks of one sentence; the sentence is framed by `O` on both sides.
    public static func chunks(_ tags: [String]) -> [Chunk] {
        var out: [Chunk] = []
        var prevTag: Substring = "O", prevType: Substring = ""
        var begin = 0
        for i in 0...tags.count {
            let (tag, type) = i < tags.count ? split(tags[i]) : ("O", "")
            if endOfChunk(prevTag, tag, prevType, type) {
                out.append(Chunk(type: String(prevType), start: begin, end: i))
            }
            if startOfChunk(prevTag, tag, prevType, type) { begin = i }
            (prevTag, prevType) = (tag, type)
        }
        return out
    }

    /// Scores predicted tag sequences against gold ones (same sentences, same lengths).
    public static func evaluate(gold: [[String]], predicted: [[String]]) -> Scores {
        precondition(gold.count == predicted.count, "one predicted sentence per gold sentence")
        var overall = Counts()
        var perType: [String: Counts] = [:]
        for (g, p) in zip(gold, predicted) {
            precondition(g.count == p.count, "one predicted tag per word")
            let goldChunks = chunks(g), predictedChunks = Set(chunks(p))
            for c in goldChunks {
                overall.gold += 1
                perType[c.type, default: Counts()].gold += 1
                if predictedChunks.contains(c) {
                    overall.correct += 1
                    perType[c.type, default: Counts()].correct += 1
                }
            }
            for c in predictedChunks {
                overall.predicted += 1
                perType[c.type, default: Counts()].predicted += 1
            }
        }
        return Scores(overall: overall, perType: perType)
    }

    // MARK: Reference: conlleval's streaming counter

    /// A direct port of conlleval's main loop (one word at a time; a chunk counts as correct
    /// when both chunks start together with the same type and end together). The oracle for
    /// `evaluate`.
    public static func evaluateReference(gold: [[String]], predicted: [[String]]) -> Scores {
        precondition(gold.count == predicted.count, "one predicted sentence per gold sentence")
        var overall = Counts()
        var perType: [String: Counts] = [:]
        var inCorrect = false
        var lastCorrect: Substring = "O", lastCorrectType: Substring = ""
        var lastGuessed: Substring = "O", lastGuessedType: Substring = ""

        func step(_ correctTag: String, _ guessedTag: String) {
            let (correct, correctType) = split(correctTag)
            let (guessed, guessedType) = split(guessedTag)
            let endCorrect = endOfChunk(lastCorrect, correct, lastCorrectType, correctType)
            let endGuessed = endOfChunk(lastGuessed, guessed, lastGuessedType, guessedType)
            let startCorrect = startOfChunk(lastCorrect, correct, lastCorrectType, correctType)
            let startGuessed = startOfChunk(lastGuessed, guessed, lastGuessedType, guessedType)
            if inCorrect {
                if endCorrect && endGuessed && lastGuessedType == lastCorrectType {
                    inCorrect = false
                    overall.correct += 1
                    perType[String(lastCorrectType), default: Counts()].correct += 1
                } else if endCorrect != endGuessed || guessedType != correctType {
                    inCorrect = false
                }
            }
            if startCorrect && startGuessed && guessedType == correctType { inCorrect = true }
            if startCorrect {
                overall.gold += 1
                perType[String(correctType), default: Counts()].gold += 1
            }
            if startGuessed {
                overall.predicted += 1
                perType[String(guessedType), default: Counts()].predicted += 1
            }
            (lastCorrect, lastCorrectType, lastGuessed, lastGuessedType) = (correct, correctType, guessed, guessedType)
        }

        for (g, p) in zip(gold, predicted) {
            precondition(g.count == p.count, "one predicted tag per word")
            for (c, q) in zip(g, p) { step(c, q) }
            step("O", "O")  // the blank line between sentences: both tags O
        }
        if inCorrect {
            overall.correct += 1
            perType[String(lastCorrectType), default: Counts()].correct += 1
        }
        return Scores(overall: overall, perType: perType)
    }
}
