import AQBert
import AQNN
import Foundation

/// The bit-width of every row group of every quantized encoder matrix (METHOD.md section 1),
/// and optionally of the row groups of the word and position embedding tables.
///
/// Keyed by Hugging Face parameter path (`bert.encoder.layer.3.attention.self.query.weight`).
/// Encoded with sorted keys so diffs are stable; decoding validates everything it can without a
/// model (version, candidate set, group counts, bits in the set), and `validate(against:)`
/// checks paths and shapes against a model.
///
/// Version 1 plans cover the encoder matrices only (the embedding tables then stay at the model's
/// `embedding_bits`, 8). Version 2 adds `embeddings` and `embedding_candidates`; a plan without
/// planned tables is still written as version 1, so that it stays readable by older builds.
public struct BitPlan: Codable, Sendable, Equatable {
    /// The newest version this build reads and writes.
    public static let currentVersion = 2
    /// Versions this build reads.
    public static let readableVersions = 1...2

    /// One matrix: `groups` contiguous row groups of a `[out, in]` weight, bits per group.
    public struct Matrix: Codable, Sendable, Equatable {
        public var shape: [Int]
        public var groups: Int
        public var bits: [Int]

        public init(shape: [Int], groups: Int, bits: [Int]) {
            self.shape = shape
            self.groups = groups
            self.bits = bits
        }

        enum CodingKeys: String, CodingKey { case shape, groups, bits }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            shape = try BitPlan.wholeNumbers(c, .shape)
            groups = try BitPlan.wholeNumbers(c, .groups, single: true)[0]
            bits = try BitPlan.wholeNumbers(c, .bits)
        }

        public var rowsPerGroup: Int { shape[0] / groups }
        /// Weights in one group.
        public var groupSize: Int { rowsPerGroup * shape[1] }
        public var weightCount: Int { shape[0] * shape[1] }
        /// Bits of the argmax assignment (the paper's C, before /8/2^20).
        public var totalBits: Int { bits.reduce(0) { $0 + $1 * groupSize } }
    }

    /// Where a plan came from (reported by `inspect`, kept for reproduction).
    public struct Provenance: Codable, Sendable, Equatable {
        /// "uniform", "random", "aq-bert", "q-bert".
        public var method: String
        public var task: String?
        public var seed: UInt64?
        public var targetMiB: Double?
        public var achievedMiB: Double?
        /// sha256 of the training data the plan was searched on.
        public var dataSHA256: String?
        /// Free-form facts: architecture optimiser and rate, lambda, source plan, ...
        public var notes: [String: String]

        public init(method: String, task: String? = nil, seed: UInt64? = nil, targetMiB: Double? = nil,
                    achievedMiB: Double? = nil, dataSHA256: String? = nil, notes: [String: String] = [:]) {
            self.method = method
            self.task = task
            self.seed = seed
            self.targetMiB = targetMiB
            self.achievedMiB = achievedMiB
            self.dataSHA256 = dataSHA256
            self.notes = notes
        }
    }

    /// One embedding table `[V, C]`: contiguous groups of `rowsPerGroup` rows (the last one
    /// shorter when R does not divide V), one bit-width per group. Unlike an encoder group, every
    /// row keeps its own quantization range (as the 8-bit tables always had): the group only sets
    /// the width. Token ids are ordered roughly by frequency in BERT vocabularies, so a group is a
    /// band of similar frequencies.
    public struct Embedding: Codable, Sendable, Equatable {
        public var shape: [Int]
        public var rowsPerGroup: Int
        public var bits: [Int]

        public init(shape: [Int], rowsPerGroup: Int, bits: [Int]) {
            self.shape = shape
            self.rowsPerGroup = rowsPerGroup
            self.bits = bits
        }

        enum CodingKeys: String, CodingKey {
            case shape, bits
            case rowsPerGroup = "rows_per_group"
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            shape = try BitPlan.wholeNumbers(c, .shape)
            rowsPerGroup = try BitPlan.wholeNumbers(c, .rowsPerGroup, single: true)[0]
            bits = try BitPlan.wholeNumbers(c, .bits)
        }

        /// Groups of a `rows`-row table at `rowsPerGroup` rows each.
        public static func groupCount(rows: Int, rowsPerGroup: Int) -> Int { (rows + rowsPerGroup - 1) / rowsPerGroup }
        public var groups: Int { Self.groupCount(rows: shape[0], rowsPerGroup: rowsPerGroup) }
        /// The rows of group `g`.
        public func rows(ofGroup g: Int) -> Range<Int> { g * rowsPerGroup ..< min(shape[0], (g + 1) * rowsPerGroup) }
        /// The bit-width of every row, in row order.
        public var rowBits: [Int] { (0..<shape[0]).map { bits[$0 / rowsPerGroup] } }
        public var weightCount: Int { shape[0] * shape[1] }
        public var totalBits: Int { bits.indices.reduce(0) { $0 + bits[$1] * rows(ofGroup: $1).count * shape[1] } }
    }

    public var version: Int
    /// Allowed bit-widths, ascending, within 0...8 (0 = pruned).
    public var candidates: [Int]
    public var matrices: [String: Matrix]
    /// Allowed bit-widths of embedding groups (version 2; empty without planned tables).
    public var embeddingCandidates: [Int]
    /// Planned embedding tables by path (`bert.embeddings.word_embeddings.weight`); tables not
    /// listed are quantized at the model's `embedding_bits`.
    public var embeddings: [String: Embedding]
    public var provenance: Provenance

    public init(candidates: [Int], matrices: [String: Matrix], embeddingCandidates: [Int] = [],
                embeddings: [String: Embedding] = [:], provenance: Provenance) {
        version = embeddings.isEmpty ? 1 : 2
        self.candidates = candidates
        self.matrices = matrices
        self.embeddingCandidates = embeddings.isEmpty ? [] : embeddingCandidates
        self.embeddings = embeddings
        self.provenance = provenance
    }

    enum CodingKeys: String, CodingKey {
        case version, candidates, matrices, provenance, embeddings
        case embeddingCandidates = "embedding_candidates"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        version = try Self.wholeNumbers(c, .version, single: true)[0]
        guard Self.readableVersions.contains(version) else {
            throw PlanError("unknown plan version \(version) (this aqbert reads versions \(Self.readableVersions.lowerBound) to \(Self.readableVersions.upperBound))")
        }
        candidates = try Self.wholeNumbers(c, .candidates)
        matrices = try c.decode([String: Matrix].self, forKey: .matrices)
        provenance = try c.decode(Provenance.self, forKey: .provenance)
        if version >= 2 {
            embeddingCandidates = try Self.wholeNumbers(c, .embeddingCandidates)
            embeddings = try c.decode([String: Embedding].self, forKey: .embeddings)
        } else {
            if c.contains(.embeddings) || c.contains(.embeddingCandidates) {
                throw PlanError("a version 1 plan has no embeddings (planned embedding tables need version 2)")
            }
            embeddingCandidates = []
            embeddings = [:]
        }
        try validateStructure()
    }

    /// Written as the lowest version that holds the plan: 2 with planned tables, else 1 (so a
    /// plan whose tables were added or removed after it was made is written as what it is).
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(embeddings.isEmpty ? 1 : 2, forKey: .version)
        try c.encode(candidates, forKey: .candidates)
        try c.encode(matrices, forKey: .matrices)
        try c.encode(provenance, forKey: .provenance)
        if !embeddings.isEmpty {
            try c.encode(embeddingCandidates, forKey: .embeddingCandidates)
            try c.encode(embeddings, forKey: .embeddings)
        }
    }

    /// The integers at `key` (one, or an array), read as numbers first so that `2.5`, `1e30`
    /// or `-0.5` get a message naming the value instead of Foundation's "not valid JSON".
    static func wholeNumbers<K: CodingKey>(_ c: KeyedDecodingContainer<K>, _ key: K, single: Bool = false) throws -> [Int] {
        let values = single ? [try c.decode(Double.self, forKey: key)] : try c.decode([Double].self, forKey: key)
        for (i, v) in values.enumerated() where !(v.rounded() == v && abs(v) <= 1e15) {
            let place = single ? "" : "element \(i) is "
            throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "\(place)\(v), not a whole number in range")
        }
        return values.map { Int($0) }
    }

    // MARK: - Size (METHOD.md section 4)

    /// Weights covered by the plan.
    public var weightCount: Int { matrices.values.reduce(0) { $0 + $1.weightCount } }
    /// C = sum n_ij * b_ij / 8 / 2^20 (MiB of weight bits; embeddings, biases, LayerNorm and head excluded).
    public var sizeMiB: Double { Double(matrices.values.reduce(0) { $0 + $1.totalBits }) / 8 / 1_048_576 }
    public var averageBits: Double { Double(matrices.values.reduce(0) { $0 + $1.totalBits }) / Double(max(1, weightCount)) }
    /// Bits of the planned embedding tables.
    public var embeddingTotalBits: Int { embeddings.values.reduce(0) { $0 + $1.totalBits } }
    /// Weights in the planned embedding tables.
    public var embeddingWeightCount: Int { embeddings.values.reduce(0) { $0 + $1.weightCount } }
    /// Average bits over the planned embedding tables (0 without any).
    public var embeddingAverageBits: Double { Double(embeddingTotalBits) / Double(max(1, embeddingWeightCount)) }
    /// Share of weights in 0-bit groups.
    public var prunedFraction: Double {
        Double(matrices.values.reduce(0) { $0 + $1.bits.filter { $0 == 0 }.count * $1.groupSize }) / Double(max(1, weightCount))
    }

    /// The size budget `V` for an average bit-width over `weights` encoder weights.
    public static func budgetMiB(averageBits: Double, weights: Int) -> Double { Double(weights) * averageBits / 8 / 1_048_576 }

    // MARK: - Validation

    /// Checks that need no model.
    public func validateStructure() throws {
        guard Self.readableVersions.contains(version) else {
            throw PlanError("unknown plan version \(version) (this aqbert reads versions \(Self.readableVersions.lowerBound) to \(Self.readableVersions.upperBound))")
        }
        try Self.validateCandidates(candidates)
        if version >= 2 {
            if embeddings.isEmpty { throw PlanError("a version 2 plan lists its embedding tables (write version 1 without any)") }
            do { try Self.validateCandidates(embeddingCandidates) } catch let e as PlanError {
                throw PlanError("embedding_candidates: \(e.description)")
            }
        }
        for (path, e) in embeddings.sorted(by: { $0.key < $1.key }) {
            guard e.shape.count == 2, e.shape.allSatisfy({ $0 > 0 && $0 <= 1 << 24 }) else {
                throw PlanError("\(path): shape \(e.shape) is not a positive [rows, columns] pair of at most 16,777,216 each")
            }
            guard e.rowsPerGroup > 0, e.rowsPerGroup <= e.shape[0] else {
                throw PlanError("\(path): rows_per_group \(e.rowsPerGroup) is not within 1...\(e.shape[0]) (the table's rows)")
            }
            guard e.bits.count == e.groups else {
                throw PlanError("\(path): \(e.bits.count) bit-widths for \(e.groups) groups of \(e.rowsPerGroup) rows")
            }
            if let bad = e.bits.first(where: { !embeddingCandidates.contains($0) }) {
                throw PlanError("\(path): bit-width \(bad) is not in the embedding candidate set \(embeddingCandidates)")
            }
        }
        if matrices.isEmpty { throw PlanError("the plan has no matrices") }
        for (path, m) in matrices.sorted(by: { $0.key < $1.key }) {
            guard m.shape.count == 2, m.shape.allSatisfy({ $0 > 0 && $0 <= 1 << 24 }) else {
                throw PlanError("\(path): shape \(m.shape) is not a positive [out, in] pair of at most 16,777,216 each")
            }
            guard m.groups > 0, m.shape[0] % m.groups == 0 else {
                throw PlanError("\(path): \(m.groups) groups do not divide its \(m.shape[0]) rows")
            }
            guard m.bits.count == m.groups else {
                throw PlanError("\(path): \(m.bits.count) bit-widths for \(m.groups) groups")
            }
            if let bad = m.bits.first(where: { !candidates.contains($0) }) {
                throw PlanError("\(path): bit-width \(bad) is not in the candidate set \(candidates)")
            }
        }
    }

    public static func validateCandidates(_ c: [Int]) throws {
        if c.isEmpty { throw PlanError("the candidate bit-width set is empty") }
        if let bad = c.first(where: { !(0...8).contains($0) }) { throw PlanError("bit-width \(bad) outside 0...8") }
        if Set(c).count != c.count { throw PlanError("duplicate bit-widths in the candidate set \(c)") }
        if c != c.sorted() { throw PlanError("candidate bit-widths must be ascending, got \(c)") }
    }

    /// Paths and shapes against the quantizable matrices of a model.
    public func validate(against model: BertTaskModel) throws {
        let expected = QuantizableMatrices.of(model)
        let known = Dictionary(uniqueKeysWithValues: expected.map { ($0.path, $0.tensor.shape) })
        for (path, m) in matrices.sorted(by: { $0.key < $1.key }) {
            guard let shape = known[path] else {
                throw PlanError("\(path) is not a quantizable encoder matrix of this model (\(model.config.numHiddenLayers) layers)")
            }
            guard shape == m.shape else { throw PlanError("\(path): the plan says shape \(m.shape), the model has \(shape)") }
        }
        if let missing = expected.first(where: { matrices[$0.path] == nil }) {
            throw PlanError("the plan has no entry for \(missing.path)")
        }
        let tables = Dictionary(uniqueKeysWithValues: PlannableEmbeddings.of(model).map { ($0.path, $0.table.weight.shape) })
        for (path, e) in embeddings.sorted(by: { $0.key < $1.key }) {
            guard let shape = tables[path] else {
                throw PlanError("\(path) is not a plannable embedding table of this model (\(tables.keys.sorted().joined(separator: ", ")))")
            }
            guard shape == e.shape else { throw PlanError("\(path): the plan says shape \(e.shape), the model has \(shape)") }
        }
    }

    // MARK: - Files

    /// Reads and validates a plan file.
    public init(contentsOf url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw PlanError("cannot read plan \(url.path): \(error.localizedDescription)") }
        if let problem = StrictJSON.problem(in: data) { throw PlanError("\(url.path): not a bit plan: \(problem)") }
        do { self = try JSONDecoder().decode(BitPlan.self, from: data) } catch let e as PlanError {
            throw PlanError("\(url.path): \(e.description)")
        } catch {
            throw PlanError("\(url.path): \(StrictJSON.describe(error))")
        }
    }

    /// Pretty JSON with sorted keys (stable diffs, byte-identical for identical plans).
    public func jsonData() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try e.encode(self)
    }

    public func write(to url: URL) throws { try writeAtomically(try jsonData(), to: url) }
}

/// A bit-plan failure; one line.
public struct PlanError: Error, CustomStringConvertible, Equatable, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The dense encoder matrices AQ-BERT quantizes: Q, K, V, attention output, FFN in, FFN out of
/// every block (METHOD.md section 1). Plans always name them by the prefixed Hugging Face path
/// of the task layout (`bert.encoder...` for `BertFor*`, `distilbert.transformer...` for
/// `DistilBertFor*`), whatever the model's architecture, so a plan made on a bare encoder
/// applies to its fine-tuned task models.
public enum QuantizableMatrices {
    public static func of(_ model: BertTaskModel) -> [(path: String, tensor: Tensor)] {
        zip(paths(for: model.config), linears(model)).map { ($0, $1.weight) }
    }

    /// Weights in those matrices, from the config alone (Q, K, V, attention output: H x H each;
    /// FFN in and out: H x I each, per block).
    public static func weightCount(_ config: BertConfig) -> Int {
        config.numHiddenLayers * (4 * config.hiddenSize * config.hiddenSize + 2 * config.hiddenSize * config.intermediateSize)
    }

    public static func paths(for config: BertConfig) -> [String] {
        BertCheckpointNames.denseWeightNames(layers: config.numHiddenLayers, family: config.family, prefixed: true)
    }

    /// The Linear layers, in the order of `paths`.
    public static func linears(_ model: BertTaskModel) -> [Linear] { model.bert.layers.flatMap(\.denseLayers) }
}

/// The embedding tables a plan may give row groups: word and position embeddings (the
/// token-type table has a handful of rows and stays at `embedding_bits`). Named like the
/// matrices, by the prefixed Hugging Face path of the task layout.
public enum PlannableEmbeddings {
    public static func of(_ model: BertTaskModel) -> [(path: String, table: AQNN.Embedding)] {
        let prefix = BertCheckpointNames.modelPrefix(model.config.family)
        let e = model.bert.embeddings
        return [(prefix + "embeddings.word_embeddings.weight", e.word), (prefix + "embeddings.position_embeddings.weight", e.position)]
    }
}

extension BitPlan {
    /// The plan with the word and position tables at `bits` in groups of `rowsPerGroup` rows.
    public func withEmbeddings(model: BertTaskModel, bits: Int, rowsPerGroup: Int, candidates: [Int]? = nil) throws -> BitPlan {
        let cands = candidates ?? [bits]
        try Self.validateCandidates(cands)
        guard cands.contains(bits) else { throw PlanError("embedding bit-width \(bits) is not in the candidate set \(cands)") }
        guard rowsPerGroup > 0 else { throw PlanError("--embedding-rows must be positive, got \(rowsPerGroup)") }
        var tables: [String: Embedding] = [:]
        for (path, table) in PlannableEmbeddings.of(model) {
            let shape = table.weight.shape, r = min(rowsPerGroup, shape[0])
            tables[path] = Embedding(shape: shape, rowsPerGroup: r,
                                     bits: [Int](repeating: bits, count: Embedding.groupCount(rows: shape[0], rowsPerGroup: r)))
        }
        var out = BitPlan(candidates: self.candidates, matrices: matrices, embeddingCandidates: cands, embeddings: tables, provenance: provenance)
        out.provenance.achievedMiB = out.sizeMiB
        return out
    }

    /// Every group of every matrix at `bits`.
    public static func uniform(model: BertTaskModel, bits: Int, groups: Int, candidates: [Int]? = nil) throws -> BitPlan {
        let cands = candidates ?? [bits]
        try validateCandidates(cands)
        guard cands.contains(bits) else { throw PlanError("bit-width \(bits) is not in the candidate set \(cands)") }
        var m: [String: Matrix] = [:]
        for (path, t) in QuantizableMatrices.of(model) {
            guard groups > 0, t.shape[0] % groups == 0 else {
                throw PlanError("--groups \(groups) does not divide the \(t.shape[0]) rows of \(path)")
            }
            m[path] = Matrix(shape: t.shape, groups: groups, bits: [Int](repeating: bits, count: groups))
        }
        var plan = BitPlan(candidates: cands, matrices: m, provenance: Provenance(method: "uniform"))
        plan.provenance.achievedMiB = plan.sizeMiB
        return plan
    }

    /// The control of METHOD.md section 9: every matrix keeps its bit-width histogram, the
    /// groups are shuffled (seeded).
    public func shuffledControl(seed: UInt64) -> BitPlan {
        var g = SeededGenerator(seed: seed)
        var out = self
        for path in matrices.keys.sorted() {
            g.shuffle(&out.matrices[path]!.bits)
        }
        // Embedding groups shuffle among the full ones (a shorter last group keeps its width, so
        // the size stays exactly the plan's).
        for path in embeddings.keys.sorted() {
            let e = embeddings[path]!  // iterating its own keys
            let full = e.shape[0] % e.rowsPerGroup == 0 ? e.groups : e.groups - 1
            var head = Array(e.bits[0..<full])
            g.shuffle(&head)
            out.embeddings[path]!.bits.replaceSubrange(0..<full, with: head)
        }
        out.provenance = Provenance(method: "random", task: provenance.task, seed: seed, targetMiB: provenance.targetMiB,
                                    achievedMiB: out.sizeMiB, dataSHA256: nil,
                                    notes: ["histogram_of": provenance.method])
        return out
    }
}

extension BitPlan {
    /// Q-BERT-MP (METHOD.md section 6): the encoder blocks sorted by sensitivity `omega`
    /// (one value per block, descending; ties keep block order), the top half (rounded down)
    /// at `highBits`, the rest at `lowBits`, every group of a block's matrices alike.
    public static func qbert(model: BertTaskModel, omega: [Double], lowBits: Int, highBits: Int, groups: Int) throws -> BitPlan {
        let layers = model.config.numHiddenLayers
        guard omega.count == layers else {
            throw PlanError("the sensitivity file has \(omega.count) blocks, the model \(layers) encoder layers")
        }
        guard lowBits < highBits else { throw PlanError("the mix needs a low width below the high one, got \(lowBits)/\(highBits)") }
        guard omega.allSatisfy(\.isFinite) else { throw PlanError("the sensitivity file has a non-finite Omega") }
        var plan = try uniform(model: model, bits: lowBits, groups: groups, candidates: [lowBits, highBits])
        let order = (0..<layers).sorted { omega[$0] != omega[$1] ? omega[$0] > omega[$1] : $0 < $1 }
        let high = Set(order.prefix(layers / 2))
        let paths = QuantizableMatrices.paths(for: model.config)
        let perLayer = paths.count / layers
        for (i, path) in paths.enumerated() where high.contains(i / perLayer) {
            plan.matrices[path]!.bits = [Int](repeating: highBits, count: groups)  // every path is in the uniform plan
        }
        plan.provenance = Provenance(method: "q-bert", achievedMiB: plan.sizeMiB, notes: [
            "mix": "\(lowBits)/\(highBits)",
            "high_blocks": order.prefix(layers / 2).sorted().map(String.init).joined(separator: ","),
            "omega": omega.map { String(format: "%.6g", $0) }.joined(separator: ","),
        ])
        return plan
    }
}
