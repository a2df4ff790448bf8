// Greedy longest-match-first WordPiece over a scalar trie (same result as the classic
// "try the longest substring, then shorter" loop, without building candidate strings).

struct WordPieceModel: Sendable {
    /// Edges keyed by `node << 21 | scalar`.
    private let edges: [UInt64: Int32]
    /// Vocabulary id of the token ending at each node, or -1.
    private let terminal: [Int32]
    let unkId: Int
    let maxInputCharsPerWord: Int

    static let wordRoot: Int32 = 0
    static let continuationRoot: Int32 = 1

    /// Token `i` of `vocabulary` has id `i`; of exact duplicates the last wins, as in the
    /// reference loaders.
    init(vocabulary: [String], continuingSubwordPrefix: String, unkId: Int, maxInputCharsPerWord: Int) {
        var edges: [UInt64: Int32] = [:]
        edges.reserveCapacity(vocabulary.count * 3)
        var terminal: [Int32] = [-1, -1]
        let prefix = Array(continuingSubwordPrefix.unicodeScalars.map { $0.value })

        func insert(_ scalars: ArraySlice<UInt32>, root: Int32, id: Int) {
            var node = root
            for s in scalars {
                let key = UInt64(UInt32(bitPattern: node)) << 21 | UInt64(s)
                if let next = edges[key] {
                    node = next
                } else {
                    let next = Int32(terminal.count)
                    terminal.append(-1)
                    edges[key] = next
                    node = next
                }
            }
            terminal[Int(node)] = Int32(truncatingIfNeeded: id)
        }
        for (id, token) in vocabulary.enumerated() {
            let scalars = token.unicodeScalars.map { $0.value }
            if scalars.isEmpty { continue }
            insert(scalars[...], root: WordPieceModel.wordRoot, id: id)
            if !prefix.isEmpty, scalars.count > prefix.count, scalars.starts(with: prefix) {
                insert(scalars[prefix.count...], root: WordPieceModel.continuationRoot, id: id)
            }
        }
        self.edges = edges
        self.terminal = terminal
        self.unkId = unkId
        self.maxInputCharsPerWord = maxInputCharsPerWord
    }

    /// Tokenizes `chars[lo..<hi]` (one pre-tokenized word), calling `emit(id, pieceLo, pieceHi)`
    /// for every piece; an unknown or over-long word is one `[UNK]` covering the whole word.
    @inline(__always)
    func tokenize(_ chars: [UInt32], _ lo: Int, _ hi: Int, _ emit: (Int, Int, Int) -> Void) {
        if hi - lo > maxInputCharsPerWord {
            emit(unkId, lo, hi)
            return
        }
        // Fast path: most words are a single piece or a few; collect then emit.
        var pieces: [(Int32, Int32, Int32)] = []
        var start = lo
        while start < hi {
            var node = start == lo ? WordPieceModel.wordRoot : WordPieceModel.continuationRoot
            var best: Int32 = -1
            var bestEnd = start
            var i = start
            while i < hi {
                let key = UInt64(UInt32(bitPattern: node)) << 21 | UInt64(chars[i])
                guard let next = edges[key] else { break }
                node = next
                i += 1
                let t = terminal[Int(node)]
                if t >= 0 { best = t; bestEnd = i }
            }
            if best < 0 {
                emit(unkId, lo, hi)
                return
            }
            pieces.append((best, Int32(start), Int32(bestEnd)))
            start = bestEnd
        }
        for (id, a, b) in pieces { emit(Int(id), Int(a), Int(b)) }
    }
}
