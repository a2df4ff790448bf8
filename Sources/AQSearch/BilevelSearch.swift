import AQBert
import AQQuant
import Foundation

/// The optimiser of the architecture logits. The paper uses SGD at 0.1, which barely moves the
/// logits (METHOD.md section 9: per-logit gradients of 1e-6..1e-4). Adam normalises every
/// logit's step on its own, so groups that share the size gradient's sign move in lockstep;
/// `normalized` is SGD on each matrix's gradient divided by that matrix's RMS gradient, which
/// keeps the differences between a matrix's groups and makes the rate scale-free.
public enum ArchitectureOptimizer: String, Codable, Sendable, CaseIterable { case sgd, adam, normalized }

/// Everything a search run is configured by (written beside the plan).
public struct SearchConfiguration: Codable, Sendable, Equatable {
    public var candidates: [Int] = [0, 2, 4]
    public var groups: Int = 128
    /// Size budget V in MiB of weight bits.
    public var targetMiB: Double
    /// eps of the band (1 +- eps) V.
    public var tolerance: Double = 0.02
    public var epochs: Int = 3
    /// N1: first epoch with architecture steps.
    public var architectureStart: Int = 1
    /// Fixed lambda, or nil for the automatic one (grows while the argmax size stays on one side
    /// of the band, halves when it jumps across).
    public var lambda: Double? = nil
    public var initialLambda: Double = 0.1
    /// Automatic lambda: factor per architecture step while the argmax size stays outside the
    /// band on one side, and factor when it jumps to the other side.
    public var lambdaGrowth: Double = 1.1
    public var lambdaShrink: Double = 0.5
    public var architectureOptimizer: ArchitectureOptimizer = .adam
    public var architectureLearningRate: Float = 0.01
    public var weightLearningRate: Float = 2e-5
    public var batchSize: Int = 32
    /// t0 and the final temperature (eta is set so t reaches it at the end).
    public var initialTemperature: Float = 5
    public var finalTemperature: Float = 0.5
    /// Temperature updated every step (else per epoch).
    public var temperaturePerStep: Bool = true
    /// Straight-through one-hot samples.
    public var hardSamples: Bool = false
    public var tieBreak: TieBreak = .widest
    /// Starting logit of each candidate (every group alike); nil = all 0, the uniform start.
    public var initialLogits: [Float]? = nil
    /// A plan the search starts from (a warm start, e.g. Q-BERT-MP's): each encoder group's
    /// logit of its planned width is raised by the margin (`SuperNetwork`); nil = no warm start
    /// (absent in configurations written before the option).
    public var initialPlan: InitialPlan? = nil
    public var seed: UInt64 = 42
    /// xi of Eq. 14: when set, the logits take the one-step unrolled second-order gradient with
    /// this virtual weight step (DARTS uses the weight learning rate); nil = first order.
    public var unrolledStep: Float? = nil
    /// No weight steps: every step is an architecture step on a D_val batch against the
    /// fine-tuned weights as they are (a [choice] beyond the paper; needs architectureStart 0 and
    /// first order). An epoch is still as many steps as D_train has batches, and the activation
    /// ranges follow the architecture batches (D_val, carved from the training data).
    public var freezeWeights: Bool = false
    /// Distillation from the fp32 fine-tuned model in the weight steps (`L_train` becomes the
    /// distilled loss; the architecture steps' task loss is `architectureDistillation`'s); nil =
    /// the paper's cross-entropy. Absent in configurations written before the option.
    public var distillation: DistillationSettings? = nil
    /// Distillation from the fp32 model as the architecture steps' task loss (`L_val` becomes
    /// the distilled loss + lambda L_size): the logits are then judged by how far each layer of
    /// the quantized network lands from the fp32 one, what the distilled QAT goes on to
    /// minimise, rather than by the cross-entropy on rows the fp32 model was fine-tuned on; nil
    /// = the cross-entropy, the paper's (absent in configurations written before the option).
    public var architectureDistillation: DistillationSettings? = nil
    /// The candidates' quantization ranges in the super-network (`SuperNetwork(ranges:)`, which
    /// must agree); nil = min/max, the paper's (absent in configurations written before the option).
    public var weightRanges: SearchRanges? = nil
    /// What `targetMiB` counts; nil = the encoder's weight bits, the paper's (absent in
    /// configurations written before the option).
    public var budget: SizeBudget? = nil
    /// The embedding tables' row groups and candidates (file budgets only); nil = 8-bit tables.
    public var embeddings: EmbeddingSearch? = nil

    public init(targetMiB: Double) { self.targetMiB = targetMiB }

    /// The band the plan must land in, in MiB (`SearchSize.band`).
    public var band: ClosedRange<Double> { SearchSize.band(target: targetMiB, tolerance: tolerance, budget: budget ?? .encoder) }

    /// METHOD.md Eq. 12 with N0 = architectureStart: t = t0 exp(-eta max(0, e - N0)).
    public func temperature(atEpoch e: Double) -> Float {
        let span = Double(max(1, epochs - architectureStart))
        let eta = Foundation.log(Double(initialTemperature / finalTemperature)) / span
        return initialTemperature * Float(Foundation.exp(-eta * max(0, e - Double(architectureStart))))
    }
}

/// What a search reports as it goes (one `search_log.jsonl` line per logged step).
public struct SearchLogEntry: Codable, Sendable, Equatable {
    public var epoch: Int
    public var step: Int
    /// nil when the weights are frozen (no training pass).
    public var trainLoss: Double?
    public var validationLoss: Double?
    public var expectedMiB: Double
    public var argmaxMiB: Double
    public var temperature: Double
    public var lambda: Double

    enum CodingKeys: String, CodingKey {
        case epoch, step, temperature, lambda
        case trainLoss = "train_loss", validationLoss = "val_loss", expectedMiB = "expected_mib", argmaxMiB = "argmax_mib"
    }
}

/// Algorithm 1 of the paper. First order (the default): per mini-batch, an AdamW step on the weights with
/// L_train on a D_train batch (logits frozen), then from epoch N1 a step on the logits with
/// L_val = CE + lambda * L_size on a D_val batch (weights frozen; the distilled loss instead of CE
/// with `architectureDistillation`). With `unrolledStep` set the logits'
/// gradient is Eq. 14's one-step unrolled one, taken at the weights before their step (see
/// `unrolledArchitectureGradient`); the weight step then uses the same training gradient.
/// With `freezeWeights` there is no training pass at all: every step is an architecture step
/// against the weights the search started from. The plan is the argmax, repaired into the
/// size band when it lands outside it (`SuperNetwork.repairedArgmaxPlan`).
public final class BilevelSearch {
    public let model: BertTaskModel
    public let network: SuperNetwork
    public let configuration: SearchConfiguration
    /// Loss of the rows `indices` of the training (false) or validation (true) split.
    let lossOf: (_ indices: [Int], _ validation: Bool, _ tape: Tape) -> Tensor
    let trainCount: Int, validationCount: Int
    public private(set) var lambda: Double
    /// What `run` moved to bring the argmax plan inside the band (nil: it was inside).
    public private(set) var repair: SuperNetwork.BudgetRepair?
    private(set) var lastSide = 0

    public init(model: BertTaskModel, network: SuperNetwork, configuration: SearchConfiguration, trainCount: Int,
                validationCount: Int, lossOf: @escaping (_ indices: [Int], _ validation: Bool, _ tape: Tape) -> Tensor) {
        self.model = model
        self.network = network
        self.configuration = configuration
        self.trainCount = trainCount
        self.validationCount = validationCount
        self.lossOf = lossOf
        lambda = configuration.lambda ?? configuration.initialLambda
    }

    /// Argmax size now.
    public var argmaxMiB: Double { network.argmaxSizeMiB(tieBreak: configuration.tieBreak) }

    /// Where a search stands; with the weights, logits and optimizer moments it is a complete
    /// checkpoint (batch order, validation batches and noise are functions of the seed and step).
    public struct State: Codable, Sendable, Equatable {
        public var epoch = 0
        public var batchInEpoch = 0
        public var step = 0
        public var architectureSteps = 0
        public var lambda: Double
        public var lastSide = 0
        /// Running ranges of the fixed 8-bit activation quantizers.
        public var activationRanges: [String: [Float]] = [:]

        public init(lambda: Double) { self.lambda = lambda }
    }

    /// Called after every `checkpointEvery` steps and at each epoch end, with the optimizers
    /// whose moments belong in the checkpoint (weights, logits).
    public var checkpoint: ((State, AdamW, AdamW) throws -> Void)?
    public var checkpointEvery = 200
    /// Data parallelism (several processes, each `lossOf` a part of every batch): runs the
    /// backward pass from a loss on its tape and sums the gradients of the given tensors (the
    /// weights' in a weight step, the logits' in an architecture step) over the processes, while
    /// the pass runs where it can. nil: one process, `Tape.backward` alone.
    public var backwardAndSum: ((Tape, Tensor, [Tensor]) throws -> Void)?
    /// Data parallelism: sums a loss's parts over the processes (for the log and the divergence
    /// check, which every process then takes alike).
    public var sumLoss: ((Double) throws -> Double)?
    /// This process's share of the size penalty: each process adds `share * lambda * L_size` to
    /// its part of L_val, so that the parts sum to L_val (1 / processes; 1 for one process).
    public var sizePenaltyShare: Float = 1

    /// The optimizers, created on first use (so a resume can restore their moments first).
    public private(set) lazy var weightOptimizer = AdamW(groups: [ParameterGroup(model.parameters, weightDecay: 0.01)],
                                                         learningRate: configuration.weightLearningRate)
    public private(set) lazy var architectureOptimizer = AdamW(groups: [ParameterGroup(network.logits, weightDecay: 0)],
                                                               learningRate: configuration.architectureLearningRate)
    private lazy var sgd = SGD(groups: [ParameterGroup(network.logits, weightDecay: 0)],
                               learningRate: configuration.architectureLearningRate)

    /// A seeded permutation of 0..<n for `round`.
    func permutation(_ n: Int, salt: UInt64, round: Int) -> [Int] {
        var g = SeededGenerator(seed: configuration.seed ^ salt &+ 0x9E37_79B9 &* UInt64(round + 1))
        var order = Array(0..<n)
        g.shuffle(&order)
        return order
    }

    /// Runs the search (from `resume` when given); `log` receives every step's entry.
    public func run(resume: State? = nil, log: (SearchLogEntry) -> Void) throws -> BitPlan {
        let c = configuration
        guard trainCount > 0, validationCount > 0 else { throw PlanError("the search needs training and validation examples") }
        guard network.size.budget == c.budget ?? .encoder else {
            throw PlanError("the super-network counts a \(network.size.budget.rawValue) budget, the configuration says \((c.budget ?? .encoder).rawValue)")
        }
        guard network.ranges == c.weightRanges ?? .minmax else {
            throw PlanError("the super-network computes with \(network.ranges.rawValue) ranges, the configuration says \((c.weightRanges ?? .minmax).rawValue)")
        }
        if c.freezeWeights {
            guard c.architectureStart == 0 else { throw PlanError("frozen weights: the architecture steps start at epoch 0 (N1 = 0)") }
            guard c.unrolledStep == nil else { throw PlanError("frozen weights have no weight step to unroll: drop the second-order gradient") }
        }
        let weightParams = model.parameters
        let stepsPerEpoch = (trainCount + c.batchSize - 1) / c.batchSize
        var state = resume ?? State(lambda: lambda)
        lambda = state.lambda
        lastSide = state.lastSide
        if resume != nil { try network.setActivationRanges(state.activationRanges) }
        while state.epoch < c.epochs {
            let order = permutation(trainCount, salt: 0xA5A5, round: state.epoch)
            while state.batchInEpoch < stepsPerEpoch {
                let b = state.batchInEpoch, epoch = state.epoch, step = state.step
                let e = c.temperaturePerStep ? Double(epoch) + Double(b) / Double(stepsPerEpoch) : Double(epoch)
                network.temperature = c.temperature(atEpoch: e)
                network.hard = c.hardSamples
                network.generator = SeededGenerator(seed: c.seed ^ (0xC2B2_AE3D_27D4_EB4F &* UInt64(step + 1)))
                model.training = true
                network.training = true
                model.bert.generator = SeededGenerator(seed: c.seed ^ (0x9E37_79B9_7F4A_7C15 &* UInt64(step + 1)))
                // (1) weights gradient on a D_train batch, logits frozen (no training pass when the
                // weights are frozen).
                var trainLoss: Double? = nil
                var valLoss: Double? = nil
                let architectureStep = epoch >= c.architectureStart
                if !c.freezeWeights {
                    setTrainable(weights: true)
                    let batch = Array(order[(b * c.batchSize)..<min(trainCount, (b + 1) * c.batchSize)])
                    let trainNoise = network.generator, trainDropout = model.bert.generator
                    let tape = Tape()
                    let loss = lossOf(batch, false, tape)
                    try backward(tape, from: loss, summing: weightParams)
                    trainLoss = Double(loss.scalar)
                    if architectureStep, let xi = c.unrolledStep {
                        // (2') Eq. 14 before the weights move: the unrolled gradient needs w and
                        // the training gradient at w, which the weight step below then uses.
                        let trainGradients = weightParams.map { p -> Storage? in defer { p.grad = nil }; return p.grad }
                        network.training = false
                        valLoss = try unrolledArchitectureGradient(trainBatch: batch, trainGradients: trainGradients,
                                                               validationBatch: validationBatch(state.architectureSteps),
                                                               xi: xi,
                                                               trainNoise: trainNoise, trainDropout: trainDropout)
                        for (p, g) in zip(weightParams, trainGradients) { p.grad = g }
                    }
                    clipGradientNorm(weightParams, maxNorm: 1)
                    weightOptimizer.update()
                }
                // (2) architecture step from epoch N1, weights frozen (first order: at the new weights).
                if architectureStep {
                    if c.unrolledStep == nil {
                        setTrainable(weights: false)
                        // Activation ranges follow the training split only: the training pass's
                        // batches, or with frozen weights (no training pass) these, carved from it.
                        network.training = c.freezeWeights
                        let vt = Tape()
                        let loss = validationObjective(validationBatch(state.architectureSteps), tape: vt)
                        try backward(vt, from: loss, summing: network.logits)
                        valLoss = Double(loss.scalar)
                    }
                    switch c.architectureOptimizer {
                    case .sgd: sgd.update()
                    case .adam: architectureOptimizer.update()
                    case .normalized: normalizedStep(rate: c.architectureLearningRate)
                    }
                    state.architectureSteps += 1
                }
                for p in weightParams { p.grad = nil }
                for t in network.logits { t.grad = nil }
                if let sumLoss {
                    trainLoss = try trainLoss.map(sumLoss)
                    valLoss = try valLoss.map(sumLoss)
                }
                for (name, value) in [("training", trainLoss), ("validation", valLoss)] {
                    if let value, !value.isFinite {
                        throw PlanError("step \(step + 1): the \(name) loss is \(value): the search diverged (a lower --lr or --arch-lr usually helps); no plan was written")
                    }
                }
                log(SearchLogEntry(epoch: epoch, step: step, trainLoss: trainLoss, validationLoss: valLoss,
                                   expectedMiB: Double(network.expectedSize(tape: .inference).scalar), argmaxMiB: argmaxMiB,
                                   temperature: Double(network.temperature), lambda: lambda))
                state.step += 1
                state.batchInEpoch += 1
                state.lambda = lambda
                state.lastSide = lastSide
                state.activationRanges = network.activationRanges
                if let checkpoint, checkpointEvery > 0, state.step % checkpointEvery == 0, state.batchInEpoch < stepsPerEpoch {
                    setTrainable(weights: true)
                    try checkpoint(state, weightOptimizer, architectureOptimizer)
                }
            }
            state.epoch += 1
            state.batchInEpoch = 0
            setTrainable(weights: true)
            try checkpoint?(state, weightOptimizer, architectureOptimizer)
        }
        setTrainable(weights: true)
        model.training = false
        network.training = false
        var provenance = BitPlan.Provenance(method: "aq-bert", seed: c.seed, targetMiB: c.targetMiB)
        provenance.notes = ["architecture_optimizer": c.architectureOptimizer.rawValue,
                            "architecture_lr": String(c.architectureLearningRate),
                            "lambda": c.lambda.map { String($0) } ?? "auto (final \(lambda))",
                            "tie_break": c.tieBreak.rawValue, "temperature": "\(c.initialTemperature) -> \(c.finalTemperature)",
                            "hard_samples": String(c.hardSamples), "groups": String(c.groups),
                            "initial_logits": c.initialLogits.map { $0.map { String($0) }.joined(separator: ",") } ?? "0 (uniform)",
                            "initial_plan": c.initialPlan.map { "\($0.source) (margin \($0.margin))" } ?? "none",
                            "gradient": c.unrolledStep.map { "second order (xi \($0))" } ?? "first order",
                            "weights": c.freezeWeights ? "frozen" : "trained (AdamW \(c.weightLearningRate))",
                            "weight_loss": c.distillation.map { "distilled (\($0.mode.rawValue))" } ?? "cross-entropy",
                            "architecture_loss": c.architectureDistillation.map { "distilled (\($0.mode.rawValue))" } ?? "cross-entropy",
                            "weight_ranges": network.ranges.rawValue]
        let (plan, repair) = try network.repairedArgmaxPlan(targetMiB: c.targetMiB, tolerance: c.tolerance, tieBreak: c.tieBreak,
                                                            provenance: provenance)
        self.repair = repair
        return plan
    }

    /// The backward pass from `loss`, with the gradients of `tensors` summed over the processes
    /// under data parallelism (`backwardAndSum`).
    func backward(_ tape: Tape, from loss: Tensor, summing tensors: [Tensor]) throws {
        if let backwardAndSum { try backwardAndSum(tape, loss, tensors) } else { tape.backward(from: loss) }
    }

    /// The D_val batch of architecture step `a`: a seeded permutation per round through D_val.
    func validationBatch(_ a: Int) -> [Int] {
        let size = configuration.batchSize
        let perRound = max(1, validationCount / size)
        let order = permutation(validationCount, salt: 0x5A5A, round: a / perRound)
        let start = (a % perRound) * size
        return Array(order[start..<min(validationCount, start + size)])
    }

    /// L_val = CE (or the distilled loss) + lambda * L_size on a D_val batch; moves the automatic
    /// lambda first (once per architecture step).
    func validationObjective(_ batch: [Int], tape: Tape) -> Tensor {
        var loss = lossOf(batch, true, tape)
        let current = argmaxMiB
        updateLambda(argmaxMiB: current)
        if let size = network.sizeLoss(argmaxMiB: current, targetMiB: configuration.targetMiB,
                                       tolerance: configuration.tolerance, tape: tape) {
            loss = tape.add(loss, tape.scale(size, by: Float(lambda) * sizePenaltyShare))
        }
        return loss
    }

    /// The one-step unrolled architecture gradient of Eq. 14, as DARTS computes it:
    /// with w' = w - xi g (g = grad_w L_train(w, theta), given in `trainGradients`),
    ///     grad_theta L_val(w', theta) - xi [grad_theta L_train(w+, theta) - grad_theta L_train(w-, theta)] / (2 r),
    /// w+- = w +- r grad_w' L_val(w', theta), r = 0.01 / ||grad_w' L_val(w', theta)|| (the Hessian-vector
    /// product by central differences). The two L_train passes reuse the training pass's Gumbel
    /// noise and dropout masks, so the difference is in w only. Leaves the result in the logits'
    /// gradients and the weights exactly as they were (restored from a copy); returns L_val.
    /// Costs two forward/backward passes more than first order; memory: one copy of the weights
    /// and of their two gradient vectors, independent of the number of candidates. Under data
    /// parallelism every gradient it takes is summed over the processes (`backward`), so every
    /// process computes the same r and the same result.
    func unrolledArchitectureGradient(trainBatch: [Int], trainGradients: [Storage?], validationBatch: [Int], xi: Float,
                                      trainNoise: SeededGenerator, trainDropout: SeededGenerator) throws -> Double {
        let weights = model.parameters
        let saved = weights.map { $0.storage.copy() }
        for t in network.logits { t.grad = nil }
        // w' = w - xi g
        for (p, g) in zip(weights, trainGradients) {
            if let g { Kernels.axpy(-xi, g.pointer, p.pointer, count: p.count) }
        }
        // grad of L_val at w' with respect to theta and w'.
        for p in weights { p.requiresGrad = true; p.grad = nil }
        for t in network.logits { t.requiresGrad = true }
        let vt = Tape()
        let loss = validationObjective(validationBatch, tape: vt)
        try backward(vt, from: loss, summing: weights + network.logits)
        let valueGradient = network.logits.map { $0.grad?.copy() }
        let direction = weights.map { p -> Storage? in defer { p.grad = nil }; return p.grad }
        let norm = direction.reduce(0.0) { $0 + ($1.map { Kernels.sumOfSquares($0.pointer, count: $0.count) } ?? 0) }.squareRoot()
        for t in network.logits { t.grad = nil }
        for p in weights { p.requiresGrad = false }
        guard norm > 0 else {
            restore(weights, from: saved)
            for (t, g) in zip(network.logits, valueGradient) { t.grad = g }
            return Double(loss.scalar)
        }
        let r = Float(0.01 / norm)
        // grad_theta L_train at w +- r v, same noise and dropout as the training pass.
        func trainLogitGradients(sign: Float) throws -> [Storage?] {
            restore(weights, from: saved)
            for (p, v) in zip(weights, direction) {
                if let v { Kernels.axpy(sign * r, v.pointer, p.pointer, count: p.count) }
            }
            network.generator = trainNoise
            model.bert.generator = trainDropout
            let t = Tape()
            try backward(t, from: lossOf(trainBatch, false, t), summing: network.logits)
            return network.logits.map { theta -> Storage? in defer { theta.grad = nil }; return theta.grad }
        }
        let plus = try trainLogitGradients(sign: 1)
        let minus = try trainLogitGradients(sign: -1)
        restore(weights, from: saved)
        let scale = -xi / (2 * r)
        for (i, theta) in network.logits.enumerated() {
            let out = valueGradient[i] ?? Storage(zeros: theta.count)
            if let gp = plus[i] { Kernels.axpy(scale, gp.pointer, out.pointer, count: theta.count) }
            if let gm = minus[i] { Kernels.axpy(-scale, gm.pointer, out.pointer, count: theta.count) }
            theta.grad = out
        }
        return Double(loss.scalar)
    }

    func restore(_ weights: [Tensor], from saved: [Storage]) {
        for (p, s) in zip(weights, saved) { p.pointer.update(from: s.pointer, count: p.count) }
    }

    /// theta -= rate * g / rms(g) per matrix (no step for a matrix without gradient).
    func normalizedStep(rate: Float) {
        for theta in network.logits {
            guard let g = theta.grad else { continue }
            let rms = (Kernels.sumOfSquares(g.pointer, count: theta.count) / Double(theta.count)).squareRoot()
            guard rms > 0 else { continue }
            Kernels.axpy(-rate / Float(rms), g.pointer, theta.pointer, count: theta.count)
        }
    }

    func setTrainable(weights: Bool) {
        for p in model.parameters { p.requiresGrad = weights }
        for t in network.logits { t.requiresGrad = !weights }
    }

    /// Automatic lambda: x1.1 per step while the argmax size stays outside the band on the same
    /// side, x0.5 when it jumps to the other side.
    func updateLambda(argmaxMiB c: Double) {
        guard configuration.lambda == nil else { return }
        let band = configuration.band
        let side = c > band.upperBound ? 1 : (c < band.lowerBound ? -1 : 0)
        if side != 0 && side == lastSide {
            lambda *= configuration.lambdaGrowth
        } else if side != 0 && lastSide != 0 && side != lastSide {
            lambda *= configuration.lambdaShrink
        }
        if side != 0 { lastSide = side }
    }
}
