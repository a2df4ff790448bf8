import AQBert
import AQQuant

/// What a search's size budget counts.
public enum SizeBudget: String, Codable, Sendable, CaseIterable {
    /// The paper's C (METHOD.md section 4): the bits of the encoder matrices' weights, in MiB.
    /// Embeddings, biases, LayerNorm, head and ranges are outside it.
    case encoder
    /// The packed `model.safetensors` `export` writes, in bytes: every group's codes and range,
    /// the embedding tables, the fp32 tensors and the header. The budget is a cap: the band is
    /// (1 - 2 eps) V ... V, so the file is never larger than asked.
    case file
}

/// The embedding tables a search plans (file budgets only).
public struct EmbeddingSearch: Codable, Sendable, Equatable {
    /// Allowed widths of an embedding group, ascending.
    public var candidates: [Int]
    /// Rows per group (the last group of a table may be shorter).
    public var rowsPerGroup: Int

    public init(candidates: [Int], rowsPerGroup: Int) {
        self.candidates = candidates
        self.rowsPerGroup = rowsPerGroup
    }

    enum CodingKeys: String, CodingKey {
        case candidates
        case rowsPerGroup = "rows_per_group"
    }
}

/// The size of every decision of a search as exact integers: per unit (the encoder matrices in
/// model order, then the planned embedding tables), per group and candidate, in bits of weights
/// (encoder budget) or bytes of the packed file (file budget), plus what no decision changes.
/// The argmax plan's size is `fixed + sum of its groups' costs`; for a file budget `fixed` is
/// taken from `PackedFormat.fileBytes` of the plan with every group at its widest candidate, so
/// the sum is that function exactly up to the header's digits (a few bytes, checked at the end).
public struct SearchSize: Sendable {
    public struct Unit: Sendable {
        public var path: String
        /// [rows, columns] of the matrix or table.
        public var shape: [Int]
        public var candidates: [Int]
        /// Rows of each group.
        public var groupRows: [Int]
        public var isEmbedding: Bool
        /// Cost of group j at candidate k: costs[j * K + k].
        public var costs: [Int]

        public var groups: Int { groupRows.count }
        /// Every group costs the same (the encoder matrices).
        public var uniformGroups: Bool { Set(groupRows).count == 1 }
        public func cost(_ j: Int, _ k: Int) -> Int { costs[j * candidates.count + k] }
    }

    public let budget: SizeBudget
    public let units: [Unit]
    /// Size of what no decision changes, in the same units.
    public let fixed: Int
    /// Units per MiB: 8 * 2^20 for bits, 2^20 for bytes.
    public let unitsPerMiB: Double
    /// The model's checkpoint tensors (name, shape) and the 8-bit width of unplanned tables, for
    /// the exact file size.
    let parameters: [(name: String, shape: [Int])]
    let embeddingBits: Int

    public init(model: BertTaskModel, candidates: [Int], groups: Int, budget: SizeBudget, embeddings: EmbeddingSearch?,
                embeddingBits: Int = 8) throws {
        try BitPlan.validateCandidates(candidates)
        if let embeddings {
            guard budget == .file else {
                throw PlanError("embedding tables are searched under a file budget only (--budget file): an encoder budget does not count them")
            }
            do { try BitPlan.validateCandidates(embeddings.candidates) } catch let e as PlanError {
                throw PlanError("embedding candidates: \(e.description)")
            }
            guard embeddings.rowsPerGroup > 0 else { throw PlanError("--embedding-rows must be positive, got \(embeddings.rowsPerGroup)") }
        }
        let parameters = model.checkpointParameters.map { (name: $0.name, shape: $0.tensor.shape) }
        var units: [Unit] = []
        for (path, w) in QuantizableMatrices.of(model) {
            guard groups > 0, w.shape[0] % groups == 0 else {
                throw PlanError("--groups \(groups) does not divide the \(w.shape[0]) rows of \(path)")
            }
            let rows = w.shape[0] / groups, columns = w.shape[1]
            let perGroup = candidates.map { b in
                budget == .encoder ? b * rows * columns : rows * PackedFormat.rowBytes(columns: columns, bits: b) + (b > 0 ? 4 : 0)
            }
            units.append(Unit(path: path, shape: w.shape, candidates: candidates, groupRows: Array(repeating: rows, count: groups),
                              isEmbedding: false, costs: Array((0..<groups).map { _ in perGroup }.joined())))
        }
        if let embeddings {
            for (path, table) in PlannableEmbeddings.of(model) {
                let shape = table.weight.shape, r = min(embeddings.rowsPerGroup, shape[0])
                let g = BitPlan.Embedding.groupCount(rows: shape[0], rowsPerGroup: r)
                let groupRows = (0..<g).map { min(shape[0], ($0 + 1) * r) - $0 * r }
                // Each kept row: its codes and its fp16 range.
                let costs = groupRows.flatMap { n in
                    embeddings.candidates.map { b in n * (PackedFormat.rowBytes(columns: shape[1], bits: b) + (b > 0 ? 4 : 0)) }
                }
                units.append(Unit(path: path, shape: shape, candidates: embeddings.candidates, groupRows: groupRows, isEmbedding: true,
                                  costs: costs))
            }
        }
        var fixed = 0
        if budget == .file {
            let widest = units.map { [Int](repeating: $0.candidates.count - 1, count: $0.groups) }
            let variable = zip(units, widest).reduce(0) { s, u in s + u.1.enumerated().reduce(0) { $0 + u.0.cost($1.offset, $1.element) } }
            let exact = try Self.exactFileBytes(plan: Self.plan(units: units, chosen: widest, provenance: .init(method: "size")),
                                                parameters: parameters, embeddingBits: embeddingBits)
            fixed = exact - variable
        }
        self.budget = budget
        self.units = units
        self.fixed = fixed
        unitsPerMiB = budget == .encoder ? 8 * 1_048_576 : 1_048_576
        self.parameters = parameters
        self.embeddingBits = embeddingBits
    }

    /// The band a plan must land in, in MiB: (1 +- eps) V for the encoder budget, (1 - 2 eps) V ... V
    /// for a file budget (a cap).
    public static func band(target v: Double, tolerance eps: Double, budget: SizeBudget) -> ClosedRange<Double> {
        budget == .encoder ? (1 - eps) * v ... (1 + eps) * v : (1 - 2 * eps) * v ... v
    }

    /// Size in units of `chosen` (candidate index per group, per unit).
    public func size(_ chosen: [[Int]]) -> Int {
        fixed + zip(units, chosen).reduce(0) { s, u in s + u.1.enumerated().reduce(0) { $0 + u.0.cost($1.offset, $1.element) } }
    }

    /// Every group at its narrowest and at its widest candidate, in MiB.
    public var smallestMiB: Double { Double(size(units.map { [Int](repeating: 0, count: $0.groups) })) / unitsPerMiB }
    public var largestMiB: Double { Double(size(units.map { [Int](repeating: $0.candidates.count - 1, count: $0.groups) })) / unitsPerMiB }

    /// The largest change one group makes moving one candidate, in MiB.
    public var largestStepMiB: Double {
        var step = 0
        for u in units {
            for j in 0..<u.groups { for k in 1..<max(1, u.candidates.count) { step = max(step, u.cost(j, k) - u.cost(j, k - 1)) } }
        }
        return Double(step) / unitsPerMiB
    }

    /// The plan of `chosen` (candidate indices), tables included.
    static func plan(units: [Unit], chosen: [[Int]], provenance: BitPlan.Provenance) -> BitPlan {
        var matrices: [String: BitPlan.Matrix] = [:], tables: [String: BitPlan.Embedding] = [:]
        var tableCandidates: [Int] = []
        for (u, c) in zip(units, chosen) {
            let bits = c.map { u.candidates[$0] }
            if u.isEmbedding {
                tables[u.path] = BitPlan.Embedding(shape: u.shape, rowsPerGroup: u.groupRows[0], bits: bits)
                tableCandidates = u.candidates
            } else {
                matrices[u.path] = BitPlan.Matrix(shape: u.shape, groups: u.groups, bits: bits)
            }
        }
        var plan = BitPlan(candidates: units.first { !$0.isEmbedding }?.candidates ?? [], matrices: matrices,
                           embeddingCandidates: tableCandidates, embeddings: tables, provenance: provenance)
        plan.provenance.achievedMiB = plan.sizeMiB
        return plan
    }

    public func plan(_ chosen: [[Int]], provenance: BitPlan.Provenance) -> BitPlan { Self.plan(units: units, chosen: chosen, provenance: provenance) }

    /// The exact size of a plan in units: its encoder bits, or the bytes of the packed file.
    public func exactSize(of plan: BitPlan) throws -> Int {
        switch budget {
        case .encoder: return plan.matrices.values.reduce(0) { $0 + $1.totalBits }
        case .file: return try Self.exactFileBytes(plan: plan, parameters: parameters, embeddingBits: embeddingBits)
        }
    }

    static func exactFileBytes(plan: BitPlan, parameters: [(name: String, shape: [Int])], embeddingBits: Int) throws -> Int {
        do { return try PackedFormat.fileBytes(plan: plan, parameters: parameters, embeddingBits: embeddingBits) } catch {
            throw PlanError("the packed size of the plan: \(error)")
        }
    }
}
