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
    public var seed: UInt64 = 42

    public init(targetMiB: Double) { self.targetMiB = targetMiB }

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
    public var trainLoss: Double
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

/// Algorithm 1 of the paper, first order: per mini-batch, an AdamW step on the weights with
/// L_train on a D_train batch (logits frozen), then from epoch N1 a step on the logits with
/// L_val = CE + lambda * L_size on a D_val batch (weights frozen). The plan is the argmax.
public final class BilevelSearch {
    public let model: BertTaskModel
    public let network: SuperNetwork
    public let configuration: SearchConfiguration
    /// Loss of the rows `indices` of the training (false) or validation (true) split.
    let lossOf: (_ indices: [Int], _ validation: Bool, _ tape: Tape) -> Tensor
    let trainCount: Int, validationCount: Int
    public private(set) var lambda: Double
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
    }

    /// Called after every `checkpointEvery` steps and at each epoch end, with the optimizers
    /// whose moments belong in the checkpoint (weights, logits).
    public var checkpoint: ((State, AdamW, AdamW) throws -> Void)?
    public var checkpointEvery = 200

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
        for i in stride(from: n - 1, to: 0, by: -1) { order.swapAt(i, Int(g.next() % UInt64(i + 1))) }
        return order
    }

    /// Runs the search (from `resume` when given); `log` receives every step's entry.
    public func run(resume: State? = nil, log: (SearchLogEntry) -> Void) throws -> BitPlan {
        let c = configuration
        guard trainCount > 0, validationCount > 0 else { throw PlanError("the search needs training and validation examples") }
        let weightParams = model.parameters
        let stepsPerEpoch = (trainCount + c.batchSize - 1) / c.batchSize
        let valPerRound = max(1, validationCount / c.batchSize)
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
                // (1) weights step, logits frozen.
                setTrainable(weights: true)
                let batch = Array(order[(b * c.batchSize)..<min(trainCount, (b + 1) * c.batchSize)])
                let tape = Tape()
                let trainLoss = lossOf(batch, false, tape)
                tape.backward(from: trainLoss)
                clipGradientNorm(weightParams, maxNorm: 1)
                weightOptimizer.update()
                // (2) architecture step from epoch N1, weights frozen.
                var valLoss: Double? = nil
                if epoch >= c.architectureStart {
                    setTrainable(weights: false)
                    network.training = false  // activation ranges follow the training split only
                    let a = state.architectureSteps
                    let valOrder = permutation(validationCount, salt: 0x5A5A, round: a / valPerRound)
                    let start = (a % valPerRound) * c.batchSize
                    let vb = Array(valOrder[start..<min(validationCount, start + c.batchSize)])
                    let vt = Tape()
                    var loss = lossOf(vb, true, vt)
                    let current = argmaxMiB
                    updateLambda(argmaxMiB: current)
                    if let size = network.sizeLoss(argmaxMiB: current, targetMiB: c.targetMiB, tolerance: c.tolerance, tape: vt) {
                        loss = vt.add(loss, vt.scale(size, by: Float(lambda)))
                    }
                    vt.backward(from: loss)
                    valLoss = Double(loss.scalar)
                    switch c.architectureOptimizer {
                    case .sgd: sgd.update()
                    case .adam: architectureOptimizer.update()
                    case .normalized: normalizedStep(rate: c.architectureLearningRate)
                    }
                    state.architectureSteps += 1
                }
                for p in weightParams { p.grad = nil }
                for t in network.logits { t.grad = nil }
                log(SearchLogEntry(epoch: epoch, step: step, trainLoss: Double(trainLoss.scalar), validationLoss: valLoss,
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
                            "hard_samples": String(c.hardSamples), "groups": String(c.groups)]
        return network.argmaxPlan(tieBreak: c.tieBreak, provenance: provenance)
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
        let v = configuration.targetMiB, eps = configuration.tolerance
        let side = c > (1 + eps) * v ? 1 : (c < (1 - eps) * v ? -1 : 0)
        if side != 0 && side == lastSide {
            lambda *= configuration.lambdaGrowth
        } else if side != 0 && lastSide != 0 && side != lastSide {
            lambda *= configuration.lambdaShrink
        }
        if side != 0 { lastSide = side }
    }
}
