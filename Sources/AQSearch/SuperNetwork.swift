import AQBert
import AQQuant
import Foundation

// The relaxed super-network of METHOD.md section 3. Legend: G = groups of a matrix,
// K = candidate bit-widths, n_j = weights of group j.

/// How the argmax breaks ties between equal logits (at initialisation every logit is 0, and
/// "first candidate" would mean 0 bits everywhere: METHOD.md section 9).
public enum TieBreak: String, Codable, Sendable, CaseIterable {
    /// The widest candidate among the tied ones.
    case widest
    /// The first (narrowest) candidate, as a plain argmax.
    case first
}

/// The quantization range each candidate of a group computes with in the super-network.
public enum SearchRanges: String, Codable, Sendable, CaseIterable {
    /// The group's min/max at every width (METHOD.md section 2, the paper's).
    case minmax
    /// Per group and candidate width, the clipping bounds with the least squared quantization
    /// error of the weights the search starts from (`aq_mse_range`, where `retrain --ranges
    /// learned` starts its bounds), fixed for the search. The search then judges a width by
    /// what it costs with the ranges the retraining will give it rather than with min/max,
    /// which at 2 bits spends the 4 levels on a group's outliers.
    case mse
}

/// A warm start of the search: the width of every encoder group in a plan (matrix path -> one
/// width per row group) and the logit margin its candidate starts with over the others.
public struct InitialPlan: Codable, Sendable, Equatable {
    public var bits: [String: [Int]]
    public var margin: Float
    /// Where the plan came from (its file and SHA-256, or its provenance), for the record.
    public var source: String

    public init(bits: [String: [Int]], margin: Float, source: String) {
        self.bits = bits
        self.margin = margin
        self.source = source
    }

    /// The encoder widths of `plan` (its tables are not used: they start uniform).
    public init(plan: BitPlan, margin: Float, source: String) {
        self.init(bits: plan.matrices.mapValues(\.bits), margin: margin, source: source)
    }

    /// Checks the plan against the searched matrices of `model` (`groups` row groups each) and
    /// `candidates`: the same matrices, the same groups, every width a candidate, a finite
    /// positive margin. Returns, per matrix in model order, the candidate index of every group.
    public func choices(model: BertTaskModel, candidates: [Int], groups: Int) throws -> [[Int]] {
        guard margin.isFinite, margin > 0 else { throw PlanError("the initial plan's margin must be a positive number, got \(margin)") }
        let matrices = QuantizableMatrices.of(model)
        let paths = Set(matrices.map(\.path))
        if let extra = bits.keys.sorted().first(where: { !paths.contains($0) }) {
            throw PlanError("the initial plan has a matrix \(extra) that the model does not search")
        }
        return try matrices.map { m in
            guard let widths = bits[m.path] else { throw PlanError("the initial plan has no widths for \(m.path)") }
            guard widths.count == groups else {
                throw PlanError("the initial plan splits \(m.path) into \(widths.count) groups, the search into \(groups) (--groups)")
            }
            return try widths.map { b in
                guard let c = candidates.firstIndex(of: b) else {
                    throw PlanError("the initial plan gives \(m.path) \(b)-bit groups, which are not among the candidates \(candidates.map(String.init).joined(separator: ",")) (--bits)")
                }
                return c
            }
        }
    }
}

/// Per-group architecture logits over the candidate bit-widths, installed on a model so that
/// every planned matrix computes with its Gumbel-softmax mixed weight, and, with `embeddings`,
/// every gathered row of the word and position tables with its group's mixed row.
public final class SuperNetwork {
    /// The encoder matrices' candidates (the tables' are in `size.units`).
    public let candidates: [Int]
    /// Unit paths (matrices in model order, then planned tables), logits [G, K] per unit (trainable).
    public let paths: [String]
    public let logits: [Tensor]
    /// What the budget counts and each (group, candidate) costs.
    public let size: SearchSize
    /// How each candidate's range is set.
    public let ranges: SearchRanges
    /// With `.mse`: per unit, the bounds (lo, hi) of group j (for a table: row j) at candidate k
    /// at [(j K + k) 2 ...].
    public let bounds: [[Float]]?
    /// Gumbel-softmax temperature t (METHOD.md Eq. 12).
    public var temperature: Float = 5
    /// Straight-through one-hot samples in the forward pass ("hard" Gumbel-softmax).
    public var hard = false
    /// Gumbel noise on (training); off gives the deterministic softmax(theta / t).
    public var noise = true
    /// Source of the Gumbel noise.
    public var generator: SeededGenerator
    /// Table groups held at a fixed candidate (index) by `holdUngathered`, per unit: they take no
    /// part in the size penalty's gradient, the argmax or the repair.
    public private(set) var held: [Int: [Int: Int]] = [:]
    /// The cost tensors of `expectedSize` per unit (held groups zeroed), and the held groups' size.
    private var costTensors: [Tensor] = []
    private var heldUnits = 0
    private weak var model: BertTaskModel?

    /// The fixed 8-bit activation quantizers (their ranges follow `training`).
    public private(set) var activationQuantizers: [String: ActivationQuantizer] = [:]
    public var training = false {
        didSet { for q in activationQuantizers.values { q.training = training } }
    }

    /// Installs mixed weights on every encoder matrix of `model`, `groups` row groups each, and
    /// the fixed parts (8-bit embeddings and Linear inputs) unless their bits are 0; with
    /// `embeddings` (a file `budget` only) the word and position tables get row groups with logits
    /// of their own instead of 8 bits.
    /// `initialLogits` (one per candidate, the same for every group) start the matrices' logits;
    /// nil or all equal is the uniform start of METHOD.md section 3 (tables always start uniform).
    /// `initialPlan` then raises each matrix group's logit of its planned width by its margin.
    /// With `ranges` `.mse` the bounds come from the model's weights at this moment.
    public init(model: BertTaskModel, candidates: [Int], groups: Int, seed: UInt64, initialLogits: [Float]? = nil,
                initialPlan: InitialPlan? = nil, ranges: SearchRanges = .minmax, budget: SizeBudget = .encoder, embeddings: EmbeddingSearch? = nil,
                embeddingBits: Int = 8, activationBits: Int = 8) throws {
        try BitPlan.validateCandidates(candidates)
        if let initialLogits {
            guard initialLogits.count == candidates.count, initialLogits.allSatisfy(\.isFinite) else {
                throw PlanError("initial logits: \(initialLogits.count) values for \(candidates.count) candidates (one finite value per candidate)")
            }
        }
        let planned = try initialPlan?.choices(model: model, candidates: candidates, groups: groups)
        self.candidates = candidates
        generator = SeededGenerator(seed: seed)
        self.model = model
        let size = try SearchSize(model: model, candidates: candidates, groups: groups, budget: budget, embeddings: embeddings,
                                  embeddingBits: embeddingBits)
        self.size = size
        var logits: [Tensor] = []
        for (u, unit) in size.units.enumerated() {
            let k = unit.candidates.count
            let theta = Tensor(zeros: [unit.groups, k], requiresGrad: true)
            if let initialLogits, !unit.isEmbedding {
                for j in 0..<unit.groups { for c in 0..<k { theta.pointer[j * k + c] = initialLogits[c] } }
            }
            if let planned, let initialPlan, !unit.isEmbedding {
                for (j, c) in planned[u].enumerated() { theta.pointer[j * k + c] += initialPlan.margin }
            }
            theta.name = "theta." + unit.path
            logits.append(theta)
        }
        paths = size.units.map(\.path)
        self.logits = logits
        self.ranges = ranges
        costTensors = Self.costTensors(size, held: [:])
        let matrices = QuantizableMatrices.of(model)
        let tables = PlannableEmbeddings.of(model).filter { t in size.units.contains { $0.isEmbedding && $0.path == t.path } }
        bounds = ranges == .mse
            ? matrices.map { Self.mseBounds(of: $0.tensor, groups: groups, candidates: candidates) }
                + tables.map { Self.mseBounds(of: $0.table.weight, groups: $0.table.weight.shape[0], candidates: embeddings?.candidates ?? []) }
            : nil
        for (i, linear) in QuantizableMatrices.linears(model).enumerated() where i < matrices.count {
            let theta = logits[i], matrixBounds = bounds?[i]
            linear.weightTransform = { [unowned self] w, tape in
                tape.mixedQuantize(w, mixing: self.mixing(theta, tape: tape), candidates: self.candidates, ranges: matrixBounds)
            }
        }
        activationQuantizers = QuantizedBert.installFixedParts(on: model, embeddingBits: embeddingBits, activationBits: activationBits)
        for (t, (_, table)) in tables.enumerated() {
            let u = matrices.count + t, unit = size.units[u], theta = logits[u], rowBounds = bounds?[u]
            table.lookupTransform = { [unowned self] w, ids, shape, pad, tape in
                tape.mixedEmbedding(w, ids: ids, shape: shape, paddingIndex: pad, mixing: self.mixing(theta, tape: tape),
                                    rowsPerGroup: unit.groupRows[0], candidates: unit.candidates, ranges: rowBounds)
            }
        }
    }

    /// The MSE-optimal bounds of every (group, candidate) of `w` ([O, I], `groups` row groups),
    /// as `retrain --ranges learned` starts them (`LearnedRanges.initial`, fp16), laid out as
    /// `Tape.mixedQuantize` reads them; a pruned candidate's pair is never read.
    static func mseBounds(of w: Tensor, groups: Int, candidates: [Int]) -> [Float] {
        let k = candidates.count
        var out = [Float](repeating: 0, count: groups * k * 2)
        for (c, b) in candidates.enumerated() where b > 0 {
            let pairs = LearnedRanges.effective(LearnedRanges.initial(w, groupBits: Array(repeating: b, count: groups), method: .mse))
            for j in 0..<groups {
                out[(j * k + c) * 2] = pairs[2 * j]
                out[(j * k + c) * 2 + 1] = pairs[2 * j + 1]
            }
        }
        return out
    }

    public var activationRanges: [String: [Float]] {
        activationQuantizers.compactMapValues { $0.initialized ? [$0.low, $0.high] : nil }
    }

    public func setActivationRanges(_ ranges: [String: [Float]]) throws {
        for (k, v) in ranges {
            guard let q = activationQuantizers[k] else { throw PlanError("activation range for unknown \(k)") }
            guard ActivationQuantizer.isValidRange(v) else { throw PlanError("the activation range of \(k) is not a finite [low, high] pair") }
            q.setRange(low: v[0], high: v[1])
        }
    }

    /// O = softmax((theta + g) / t), g = -log(-log u) (METHOD.md Eq. 11); straight-through
    /// one-hot of it when `hard`. theta: [G, K] -> [G, K]
    public func mixing(_ theta: Tensor, tape: Tape) -> Tensor {
        var input = theta
        if noise {
            let g = Tensor(uninitialized: theta.shape)
            for i in 0..<g.count {
                var u = generator.nextDouble()
                while u <= 0 { u = generator.nextDouble() }
                g.pointer[i] = Float(-Foundation.log(-Foundation.log(u)))
            }
            input = tape.add(theta, g)
        }
        let soft = tape.softmax(input, scale: 1 / temperature)
        return hard ? tape.straightThroughOneHot(soft) : soft
    }

    /// Removes the mixed weights and fixed parts (the model is fp32 again).
    public func uninstall() {
        if let model { QuantizedBert.removeTransforms(from: model) }
    }

    // MARK: - Size (METHOD.md section 4)

    /// The per-unit cost tensors of `expectedSize` in MiB: [K] when every group costs the same,
    /// else [G, K]; a held group's row is 0 (its size is a constant).
    static func costTensors(_ size: SearchSize, held: [Int: [Int: Int]]) -> [Tensor] {
        let perMiB = Float(size.unitsPerMiB)
        return size.units.enumerated().map { u, unit in
            let k = unit.candidates.count
            if unit.uniformGroups && held[u] == nil {
                return Tensor(shape: [k], values: (0..<k).map { Float(unit.cost(0, $0)) / perMiB })
            }
            var values = unit.costs.map { Float($0) / perMiB }
            for (j, _) in held[u] ?? [:] { for c in 0..<k { values[j * k + c] = 0 } }
            return Tensor(shape: [unit.groups, k], values: values)
        }
    }

    /// Holds every group of a planned table that none of `gatheredRows` (row indices the search's
    /// data uses, per table path) falls in at the narrowest nonzero candidate of the table: the
    /// data says nothing about what such a row needs, and the size penalty alone would move it
    /// to the narrowest width above the budget (0 would prune a token the dev set may use) and to
    /// the widest below it. Returns the number of held groups per table path.
    @discardableResult
    public func holdUngathered(_ gatheredRows: [String: Set<Int>]) -> [String: Int] {
        var counts: [String: Int] = [:]
        for (u, unit) in size.units.enumerated() where unit.isEmbedding {
            let rows = gatheredRows[unit.path] ?? []
            let r = unit.groupRows[0]
            var seen = [Bool](repeating: false, count: unit.groups)
            for row in rows where row >= 0 && row / r < unit.groups { seen[row / r] = true }
            let floor = unit.candidates.firstIndex { $0 > 0 } ?? 0
            var groups: [Int: Int] = [:]
            for j in 0..<unit.groups where !seen[j] { groups[j] = floor }
            held[u] = groups.isEmpty ? nil : groups
            counts[unit.path] = groups.count
        }
        heldUnits = held.reduce(0) { s, e in s + e.value.reduce(0) { $0 + size.units[e.key].cost($1.key, $1.value) } }
        costTensors = Self.costTensors(size, held: held)
        return counts
    }

    /// E[C] = fixed + held groups + sum over the other groups of sum_k p_k cost_k with
    /// p = softmax(theta), no noise, in MiB; for the encoder budget cost_k = n_j b_k bits (the
    /// paper's C). -> [1]
    public func expectedSize(tape: Tape) -> Tensor {
        var terms: [Tensor] = []
        for (theta, cost) in zip(logits, costTensors) {
            terms.append(tape.sum(tape.mul(tape.softmax(theta), cost)))
        }
        let total = terms.dropFirst().reduce(terms[0]) { tape.add($0, $1) }
        let constant = size.fixed + heldUnits
        guard constant != 0 else { return total }
        return tape.add(total, Tensor(shape: total.shape, values: [Float](repeating: Float(Double(constant) / size.unitsPerMiB), count: total.count)))
    }

    /// Index into unit `u`'s candidates of the argmax of row `j` of its logits (ties by `tieBreak`).
    func choiceIndex(unit u: Int, group j: Int, tieBreak: TieBreak) -> Int {
        let k = size.units[u].candidates.count
        let row = logits[u].pointer + j * k
        var best = 0
        for c in 1..<k where tieBreak == .widest ? row[c] >= row[best] : row[c] > row[best] { best = c }
        return best
    }

    /// The argmax candidate index of every group of every unit.
    func argmaxChoices(tieBreak: TieBreak) -> [[Int]] {
        size.units.indices.map { u in (0..<size.units[u].groups).map { held[u]?[$0] ?? choiceIndex(unit: u, group: $0, tieBreak: tieBreak) } }
    }

    /// C of the argmax assignment in MiB, without building a plan.
    public func argmaxSizeMiB(tieBreak: TieBreak) -> Double {
        Double(size.size(argmaxChoices(tieBreak: tieBreak))) / size.unitsPerMiB
    }

    /// The argmax assignment as a bit plan.
    public func argmaxPlan(tieBreak: TieBreak, provenance: BitPlan.Provenance) -> BitPlan {
        size.plan(argmaxChoices(tieBreak: tieBreak), provenance: provenance)
    }

    // MARK: - Budget repair

    /// One group moved one candidate by `repairedArgmaxPlan`.
    public struct RepairMove: Codable, Sendable, Equatable {
        public var path: String
        public var group: Int
        public var fromBits: Int
        public var toBits: Int
        /// theta[from] - theta[to] at the time of the move (how decided the group was).
        public var margin: Float

        enum CodingKeys: String, CodingKey {
            case path, group, margin
            case fromBits = "from_bits", toBits = "to_bits"
        }
    }

    /// What `repairedArgmaxPlan` changed: the argmax size, the size after, and every move in order.
    public struct BudgetRepair: Codable, Sendable, Equatable {
        public var argmaxMiB: Double
        public var repairedMiB: Double
        public var moves: [RepairMove]

        enum CodingKeys: String, CodingKey {
            case moves
            case argmaxMiB = "argmax_mib", repairedMiB = "repaired_mib"
        }

        /// One line: how many groups moved which way, and the sizes.
        public var summary: String {
            let down = moves.first.map { $0.toBits < $0.fromBits } ?? true
            return String(format: "%d group%@ moved one candidate %@ (least decided first): %.4f -> %.4f MiB",
                          moves.count, moves.count == 1 ? "" : "s", down ? "down" : "up", argmaxMiB, repairedMiB)
        }
    }

    /// The argmax plan, brought inside the band (`SearchSize.band`) when it lands outside it:
    /// above the band, the group whose logit margin theta[chosen] - theta[next narrower] is
    /// smallest moves one candidate down, and so on until the size is inside; below, the same
    /// upwards. Ties go to the earlier unit (model order, tables last), then the lower group
    /// index, so the repair is a function of the logits alone. A move that would jump over the
    /// whole band is skipped. For a file budget the plan's exact packed size is checked at the
    /// end and the repair continues while it is outside the band (the header's digits can differ
    /// from the size model by a few bytes). Returns the plan and the repair (nil when the argmax
    /// was inside); throws when no sequence of such moves reaches the band.
    public func repairedArgmaxPlan(targetMiB v: Double, tolerance eps: Double, tieBreak: TieBreak,
                                   provenance: BitPlan.Provenance) throws -> (BitPlan, BudgetRepair?) {
        let band = SearchSize.band(target: v, tolerance: eps, budget: size.budget)
        var upper = band.upperBound * size.unitsPerMiB, lower = band.lowerBound * size.unitsPerMiB
        var chosen = argmaxChoices(tieBreak: tieBreak)
        var units = size.size(chosen)
        let argmaxUnits = units
        var moves: [RepairMove] = []
        var plan: BitPlan
        func fail() -> PlanError {
            PlanError(String(format: "the searched plan (%.4f MiB) cannot be moved inside the band %.4f ... %.4f MiB one group at a time (a group's step is wider than the band): widen --tolerance or use more --groups",
                             Double(argmaxUnits) / size.unitsPerMiB, band.lowerBound, band.upperBound))
        }
        while true {
            while Double(units) > upper || Double(units) < lower {
                let step = Double(units) > upper ? -1 : 1
                var best: (u: Int, j: Int, margin: Float)? = nil
                for (u, theta) in logits.enumerated() {
                    let unit = size.units[u], k = unit.candidates.count
                    for j in 0..<unit.groups where held[u]?[j] == nil {
                        let c = chosen[u][j], next = c + step
                        guard next >= 0, next < k else { continue }
                        let after = Double(units + unit.cost(j, next) - unit.cost(j, c))
                        guard step < 0 ? after >= lower : after <= upper else { continue }
                        let margin = theta.pointer[j * k + c] - theta.pointer[j * k + next]
                        if best == nil || margin < best!.margin { best = (u, j, margin) }
                    }
                }
                guard let best else { throw fail() }
                let unit = size.units[best.u], c = chosen[best.u][best.j]
                moves.append(RepairMove(path: paths[best.u], group: best.j, fromBits: unit.candidates[c], toBits: unit.candidates[c + step],
                                        margin: best.margin))
                units += unit.cost(best.j, c + step) - unit.cost(best.j, c)
                chosen[best.u][best.j] = c + step
            }
            // The size model against the exact size (identical for the encoder budget; for a file
            // the header's digits can differ by a few bytes): narrow the model's band by the
            // difference and go on until the exact size is inside.
            plan = size.plan(chosen, provenance: provenance)
            let exact = Double(try size.exactSize(of: plan))
            let exactUpper = band.upperBound * size.unitsPerMiB, exactLower = band.lowerBound * size.unitsPerMiB
            if exact > exactUpper {
                upper -= exact - exactUpper
            } else if exact < exactLower {
                lower += exactLower - exact
            } else {
                break
            }
            guard upper >= lower else { throw fail() }
        }
        guard !moves.isEmpty else { return (plan, nil) }
        let repair = BudgetRepair(argmaxMiB: Double(argmaxUnits) / size.unitsPerMiB, repairedMiB: Double(units) / size.unitsPerMiB,
                                  moves: moves)
        plan.provenance.notes["budget_repair"] = repair.summary
        return (plan, repair)
    }

    /// L_size (METHOD.md Eq. 4) on the argmax size C: log E[C] above the band, -log E[C] below it,
    /// nothing inside (`SearchSize.band`). Returns nil inside the band.
    public func sizeLoss(argmaxMiB c: Double, targetMiB v: Double, tolerance eps: Double, tape: Tape) -> Tensor? {
        let band = SearchSize.band(target: v, tolerance: eps, budget: size.budget)
        if c > band.upperBound { return tape.log(expectedSize(tape: tape)) }
        if c < band.lowerBound { return tape.scale(tape.log(expectedSize(tape: tape)), by: -1) }
        return nil
    }
}
