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

/// Per-group architecture logits over the candidate bit-widths, installed on a model so that
/// every planned matrix computes with its Gumbel-softmax mixed weight.
public final class SuperNetwork {
    public let candidates: [Int]
    /// Matrix paths, logits [G, K] per matrix (trainable), in model order.
    public let paths: [String]
    public let logits: [Tensor]
    let shapes: [[Int]]
    /// How each candidate's range is set.
    public let ranges: SearchRanges
    /// With `.mse`: per matrix, the bounds (lo, hi) of group j at candidate k at [(j K + k) 2 ...].
    public let bounds: [[Float]]?
    /// Gumbel-softmax temperature t (METHOD.md Eq. 12).
    public var temperature: Float = 5
    /// Straight-through one-hot samples in the forward pass ("hard" Gumbel-softmax).
    public var hard = false
    /// Gumbel noise on (training); off gives the deterministic softmax(theta / t).
    public var noise = true
    /// Source of the Gumbel noise.
    public var generator: SeededGenerator
    private weak var model: BertTaskModel?

    /// The fixed 8-bit activation quantizers (their ranges follow `training`).
    public private(set) var activationQuantizers: [String: ActivationQuantizer] = [:]
    public var training = false {
        didSet { for q in activationQuantizers.values { q.training = training } }
    }

    /// Installs mixed weights on every encoder matrix of `model`, `groups` row groups each, and
    /// the fixed parts (8-bit embeddings and Linear inputs) unless their bits are 0.
    /// `initialLogits` (one per candidate, the same for every group) start the logits; nil or
    /// all equal is the uniform start of METHOD.md section 3.
    /// With `ranges` `.mse` the bounds come from the model's weights at this moment.
    public init(model: BertTaskModel, candidates: [Int], groups: Int, seed: UInt64, initialLogits: [Float]? = nil,
                ranges: SearchRanges = .minmax, embeddingBits: Int = 8, activationBits: Int = 8) throws {
        try BitPlan.validateCandidates(candidates)
        if let initialLogits {
            guard initialLogits.count == candidates.count, initialLogits.allSatisfy(\.isFinite) else {
                throw PlanError("initial logits: \(initialLogits.count) values for \(candidates.count) candidates (one finite value per candidate)")
            }
        }
        self.candidates = candidates
        generator = SeededGenerator(seed: seed)
        self.model = model
        let matrices = QuantizableMatrices.of(model)
        var paths: [String] = [], logits: [Tensor] = [], shapes: [[Int]] = []
        for (path, w) in matrices {
            guard groups > 0, w.shape[0] % groups == 0 else {
                throw PlanError("--groups \(groups) does not divide the \(w.shape[0]) rows of \(path)")
            }
            let theta = Tensor(zeros: [groups, candidates.count], requiresGrad: true)
            if let initialLogits {
                for j in 0..<groups { for k in 0..<candidates.count { theta.pointer[j * candidates.count + k] = initialLogits[k] } }
            }
            theta.name = "theta." + path
            paths.append(path)
            logits.append(theta)
            shapes.append(w.shape)
        }
        self.paths = paths
        self.logits = logits
        self.shapes = shapes
        self.ranges = ranges
        bounds = ranges == .mse ? matrices.map { Self.mseBounds(of: $0.tensor, groups: groups, candidates: candidates) } : nil
        for (i, linear) in QuantizableMatrices.linears(model).enumerated() where i < logits.count {
            let theta = logits[i], matrixBounds = bounds?[i]
            linear.weightTransform = { [unowned self] w, tape in
                tape.mixedQuantize(w, mixing: self.mixing(theta, tape: tape), candidates: self.candidates, ranges: matrixBounds)
            }
        }
        activationQuantizers = QuantizedBert.installFixedParts(on: model, embeddingBits: embeddingBits, activationBits: activationBits)
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

    /// E[C] = sum_{i,j} n_ij * sum_k p_k b_k / 8 / 2^20 with p = softmax(theta), no noise -> [1] (MiB).
    public func expectedSize(tape: Tape) -> Tensor {
        var terms: [Tensor] = []
        for (theta, shape) in zip(logits, shapes) {
            let g = theta.shape[0]
            let n = Float(shape[0] / g * shape[1])
            let p = tape.softmax(theta)
            let cost = Tensor(shape: [candidates.count], values: candidates.map { Float($0) * n / 8 / 1_048_576 })
            terms.append(tape.sum(tape.mul(p, cost)))
        }
        return terms.dropFirst().reduce(terms[0]) { tape.add($0, $1) }
    }

    /// Bit-width chosen for group `j` of `theta` [G, K] (argmax with `tieBreak`).
    func choice(_ theta: Tensor, group j: Int, tieBreak: TieBreak) -> Int {
        candidates[choiceIndex(theta, group: j, tieBreak: tieBreak)]
    }

    /// Index into `candidates` of the argmax of row `j` of `theta`.
    func choiceIndex(_ theta: Tensor, group j: Int, tieBreak: TieBreak) -> Int {
        let k = candidates.count
        let row = theta.pointer + j * k
        var best = 0
        for c in 1..<k where tieBreak == .widest ? row[c] >= row[best] : row[c] > row[best] { best = c }
        return best
    }

    /// C of the argmax assignment in MiB, without building a plan.
    public func argmaxSizeMiB(tieBreak: TieBreak) -> Double {
        var bits = 0
        for (theta, shape) in zip(logits, shapes) {
            let g = theta.shape[0], n = shape[0] / g * shape[1]
            for j in 0..<g { bits += choice(theta, group: j, tieBreak: tieBreak) * n }
        }
        return Double(bits) / 8 / 1_048_576
    }

    /// The argmax assignment as a bit plan.
    public func argmaxPlan(tieBreak: TieBreak, provenance: BitPlan.Provenance) -> BitPlan {
        var matrices: [String: BitPlan.Matrix] = [:]
        for (path, (theta, shape)) in zip(paths, zip(logits, shapes)) {
            let g = theta.shape[0]
            matrices[path] = BitPlan.Matrix(shape: shape, groups: g, bits: (0..<g).map { choice(theta, group: $0, tieBreak: tieBreak) })
        }
        var plan = BitPlan(candidates: candidates, matrices: matrices, provenance: provenance)
        plan.provenance.achievedMiB = plan.sizeMiB
        return plan
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

    /// The argmax plan, brought inside the band (1 +- eps) V when it lands outside it: above the
    /// band, the group whose logit margin theta[chosen] - theta[next narrower] is smallest moves one
    /// candidate down, and so on until the size is inside; below, the same upwards. Ties go to
    /// the earlier matrix (model order), then the lower group index, so the repair is a function
    /// of the logits alone. A move that would jump over the whole band is skipped. Returns the
    /// plan and the repair (nil when the argmax was inside); throws when no sequence of such
    /// moves reaches the band (a group's step is wider than the band).
    public func repairedArgmaxPlan(targetMiB v: Double, tolerance eps: Double, tieBreak: TieBreak,
                                   provenance: BitPlan.Provenance) throws -> (BitPlan, BudgetRepair?) {
        let k = candidates.count
        let upper = (1 + eps) * v * 8 * 1_048_576, lower = (1 - eps) * v * 8 * 1_048_576  // in bits
        // Chosen candidate index per (matrix, group) and the weights per group.
        var chosen: [[Int]] = [], perGroup: [Int] = []
        var bits = 0
        for (theta, shape) in zip(logits, shapes) {
            let g = theta.shape[0], n = shape[0] / g * shape[1]
            let row = (0..<g).map { choiceIndex(theta, group: $0, tieBreak: tieBreak) }
            bits += row.reduce(0) { $0 + candidates[$1] * n }
            chosen.append(row)
            perGroup.append(n)
        }
        let argmaxBits = bits
        var moves: [RepairMove] = []
        while Double(bits) > upper || Double(bits) < lower {
            let step = Double(bits) > upper ? -1 : 1
            var best: (m: Int, j: Int, margin: Float)? = nil
            for (m, theta) in logits.enumerated() {
                let n = perGroup[m]
                for j in 0..<theta.shape[0] {
                    let c = chosen[m][j], next = c + step
                    guard next >= 0, next < k else { continue }
                    let after = Double(bits + (candidates[next] - candidates[c]) * n)
                    guard step < 0 ? after >= lower : after <= upper else { continue }
                    let margin = theta.pointer[j * k + c] - theta.pointer[j * k + next]
                    if best == nil || margin < best!.margin { best = (m, j, margin) }
                }
            }
            guard let best else {
                throw PlanError(String(format: "the searched plan (%.4f MiB) cannot be moved inside the band %.4f MiB +- %.1f%% one group at a time (a group's step is wider than the band): widen --tolerance or use more --groups",
                                       Double(argmaxBits) / 8 / 1_048_576, v, 100 * eps))
            }
            let c = chosen[best.m][best.j]
            moves.append(RepairMove(path: paths[best.m], group: best.j, fromBits: candidates[c], toBits: candidates[c + step],
                                    margin: best.margin))
            bits += (candidates[c + step] - candidates[c]) * perGroup[best.m]
            chosen[best.m][best.j] = c + step
        }
        var matrices: [String: BitPlan.Matrix] = [:]
        for (m, path) in paths.enumerated() {
            matrices[path] = BitPlan.Matrix(shape: shapes[m], groups: chosen[m].count, bits: chosen[m].map { candidates[$0] })
        }
        var plan = BitPlan(candidates: candidates, matrices: matrices, provenance: provenance)
        plan.provenance.achievedMiB = plan.sizeMiB
        guard !moves.isEmpty else { return (plan, nil) }
        let repair = BudgetRepair(argmaxMiB: Double(argmaxBits) / 8 / 1_048_576, repairedMiB: plan.sizeMiB, moves: moves)
        plan.provenance.notes["budget_repair"] = repair.summary
        return (plan, repair)
    }

    /// L_size (METHOD.md Eq. 4) on the argmax size C: log E[C] above (1 + eps) V, -log E[C]
    /// below (1 - eps) V, nothing inside the band. Returns nil inside the band.
    public func sizeLoss(argmaxMiB c: Double, targetMiB v: Double, tolerance eps: Double, tape: Tape) -> Tensor? {
        if c > (1 + eps) * v { return tape.log(expectedSize(tape: tape)) }
        if c < (1 - eps) * v { return tape.scale(tape.log(expectedSize(tape: tape)), by: -1) }
        return nil
    }
}
