import AQBert
import AQCore
import AQFiles
import AQParallel
import AQQuant
import AQTokenizer
import Foundation

/// What the trainer reports while it runs (the executable renders it).
public enum TrainingEvent: Sendable {
    /// One update: 1-based global step of `totalSteps`, its loss, learning rate, throughput, ETA.
    case step(epoch: Int, globalStep: Int, totalSteps: Int, loss: Float, learningRate: Float,
              examplesPerSecond: Double, etaSeconds: Double)
    case evaluation(epoch: Int, metrics: [String: Double], isBest: Bool)
    case checkpoint(path: String, globalStep: Int)
    case resumed(globalStep: Int, epoch: Int)
}

/// Thrown when `Trainer.shouldStop` asked to abandon the run.
public struct TrainingInterrupted: Error, CustomStringConvertible {
    public let globalStep: Int
    public var description: String { "training interrupted after update \(globalStep)" }
}

/// A non-finite loss or gradient: the run stops before the update is applied, so the output
/// keeps its last checkpoint and best model as they were. With data parallelism the loss and
/// the gradient are the whole batch's, so every process stops at the same update.
public struct TrainingDiverged: CollectiveError, CustomStringConvertible {
    /// 1-based number of the update that was not applied.
    public let update: Int
    public let loss: Float
    public let gradientNorm: Float
    public var description: String {
        "update \(update): the loss is \(loss) and the gradient norm \(gradientNorm): training diverged (a lower --lr usually helps); this update was not applied and the output keeps its last checkpoint"
    }
}

/// Metrics of one epoch's evaluation.
public struct EpochResult: Codable, Sendable, Equatable {
    /// 1-based.
    public var epoch: Int
    public var globalStep: Int
    public var trainLoss: Double
    public var metrics: [String: Double]

    enum CodingKeys: String, CodingKey {
        case epoch, metrics
        case globalStep = "global_step", trainLoss = "train_loss"
    }
}

/// Everything needed to continue a killed run exactly where its last checkpoint was.
struct TrainerState: Codable, Equatable {
    var epoch: Int
    var stepInEpoch: Int
    var globalStep: Int
    var lossSum: Double
    var lossCount: Int
    var bestMetric: Double?
    var bestEpoch: Int?
    var history: [EpochResult]
    var arguments: TrainingArguments
    /// Wall time spent training and evaluating, summed over resumed runs.
    var trainSeconds: Double
    /// The inputs the run was started from (checked on resume).
    var fingerprint: RunFingerprint? = nil

    /// Whether the position is one this run's shape can reach: nil when it is, else what is wrong.
    func problem(epochs: Int, stepsPerEpoch: Int) -> String? {
        if !(0...epochs).contains(epoch) { return "epoch \(epoch) is outside 0...\(epochs)" }
        if !(0..<stepsPerEpoch).contains(stepInEpoch) || (epoch == epochs && stepInEpoch != 0) {
            return "stepInEpoch \(stepInEpoch) is outside 0..<\(stepsPerEpoch)"
        }
        if globalStep != epoch * stepsPerEpoch + stepInEpoch {
            return "globalStep \(globalStep) does not match epoch \(epoch) and step \(stepInEpoch) of \(stepsPerEpoch) per epoch"
        }
        if lossCount != stepInEpoch || !lossSum.isFinite { return "the running loss (\(lossSum) over \(lossCount) steps) does not match the position" }
        if history.count != epoch { return "\(history.count) evaluated epochs for \(epoch) finished" }
        if let bestEpoch, !(1...max(1, epoch)).contains(bestEpoch) || epoch == 0 { return "best epoch \(bestEpoch) was not evaluated" }
        if (bestEpoch == nil) != (bestMetric == nil) { return "best epoch and best metric disagree" }
        if !(trainSeconds >= 0 && trainSeconds.isFinite) { return "train seconds \(trainSeconds) is not a time" }
        return nil
    }
}

/// Fine-tunes a `BertTaskModel` on a task: AdamW (no decay on biases and LayerNorm), linear
/// warm-up/decay, gradient clipping, evaluation each epoch, resumable checkpoints, and the best
/// model published in the output directory (Hugging Face layout) when the last epoch ends.
/// Deterministic: batch order comes from (seed, epoch) and each update's dropout masks from
/// (seed, step), so a resumed run reproduces an uninterrupted one.
///
/// Data parallel over a `ProcessGroup` (`mpirun -np N`): every process reads the same data and
/// starts from the same weights; each update's batch is cut into N consecutive slices, padded to
/// the whole batch's length and given the whole batch's dropout masks, so that every row is
/// computed as in one process. Each process weights its loss by its share of the batch's loss
/// terms (rows, or labelled tokens), the gradients are summed over the processes, and every
/// process applies the same update to its own copy. Only rank 0 evaluates and writes files; a
/// resumed run reads rank 0's checkpoint on every rank.
public final class Trainer {
    public let model: BertTaskModel
    public let pipeline: TaskPipeline
    public let arguments: TrainingArguments
    public let output: URL
    let tokenizerDirectory: URL
    let padId: Int
    /// Polled after every update; returning true abandons the run at once, without a checkpoint
    /// (as a crash would), throwing `TrainingInterrupted`. Tests use it to simulate `kill -9`.
    public var shouldStop: (() -> Bool)?
    /// Quantization-aware training: the fake quantization installed on `model` (its activation
    /// ranges follow the training mode, are checkpointed, and are saved with the best model).
    public var quantization: QuantizedBert?
    /// The model and data files the run starts from; recorded in every checkpoint and, on
    /// `--resume`, compared with the checkpoint's (a run never continues on other inputs).
    public var fingerprint: RunFingerprint?
    /// Knowledge distillation: the fp32 teacher whose outputs the loss also matches, as
    /// `arguments.distillation(teacher:)` sets it up; run in eval mode, no gradients.
    public var teacher: BertTaskModel?
    /// The processes training together (see the type); `.single` for one process.
    public var group: ProcessGroup = .single
    /// With several processes: floats of gradient per all-reduce (`OverlappedGradientSum`).
    public var bucketFloats = 25 * 1_048_576 / 4

    public init(model: BertTaskModel, pipeline: TaskPipeline, arguments: TrainingArguments, output: URL,
                tokenizerDirectory: URL, padId: Int) {
        self.model = model
        self.pipeline = pipeline
        self.arguments = arguments
        self.output = output
        self.tokenizerDirectory = tokenizerDirectory
        self.padId = padId
        // Optimizer state and checkpoints are keyed by the Hugging Face names.
        for (name, t) in model.checkpointParameters { t.name = name }
    }

    var folders: CheckpointFolders { CheckpointFolders(output: output) }

    /// Runs (or, with `resume`, continues) training. Returns the per-epoch results.
    @discardableResult
    public func train(resume: Bool, progress: (TrainingEvent) -> Void) throws -> [EpochResult] {
        let writer = group.rank == 0
        if writer { try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true) }
        let a = arguments
        let features = pipeline.trainFeatures
        if features.isEmpty { throw DataError("the training data has no usable examples") }
        try validate(features, for: model.config)
        if a.distillationSettings != nil && teacher == nil {
            throw DataError("the arguments ask for distillation, but the trainer has no teacher model")
        }
        let stepsPerEpoch = (features.count + a.batchSize - 1) / a.batchSize
        let totalSteps = stepsPerEpoch * a.epochs
        let schedule = LinearSchedule(warmupSteps: a.warmupSteps(totalSteps: totalSteps),
                                      totalSteps: totalSteps)
        let named = model.checkpointParameters
        let noDecay = BertCheckpointNames.isNoDecay
        // Learned quantization ranges train beside the weights, without decay, at their own rate
        // (the schedule scales both).
        let ranges = quantization?.rangeParameters.map(\.tensor) ?? []
        let optimizer = AdamW(groups: [ParameterGroup(named.filter { !noDecay($0.name) }.map(\.tensor), weightDecay: a.weightDecay),
                                       ParameterGroup(named.filter { noDecay($0.name) }.map(\.tensor), weightDecay: 0),
                                       ParameterGroup(ranges, weightDecay: 0,
                                                      learningRateScale: (a.rangeLearningRate ?? a.learningRate) / a.learningRate)],
                              learningRate: a.learningRate)
        var state = TrainerState(epoch: 0, stepInEpoch: 0, globalStep: 0, lossSum: 0, lossCount: 0, bestMetric: nil,
                                 bestEpoch: nil, history: [], arguments: a, trainSeconds: 0, fingerprint: fingerprint)
        if resume, let restored = try loadCheckpoint(optimizer: optimizer, stepsPerEpoch: stepsPerEpoch) {
            state = restored
            progress(.resumed(globalStep: state.globalStep, epoch: state.epoch))
        } else if writer {
            try copyTokenizerFiles()
            try writeJSON(a, to: output.appendingPathComponent("training_args.json"))
        }
        // Every activation range follows the whole batch's minimum and maximum.
        let wholeBatchRanges = WholeBatchRanges(quantization.map { Array($0.activationQuantizers.values) } ?? [], group: group)
        defer { wholeBatchRanges.uninstall() }
        var started = Date()
        var stepsTimed = 0
        var clock = Date()
        func tick() {
            state.trainSeconds += Date().timeIntervalSince(clock)
            clock = Date()
        }
        while state.epoch < a.epochs {
            model.training = true
            quantization?.training = true
            let batches = epochBatches(count: features.count, batchSize: a.batchSize, seed: a.seed, epoch: state.epoch, shuffle: a.shufflesBatches)
            while state.stepInEpoch < batches.count {
                let rows = batches[state.stepInEpoch].map { features[$0] }
                for p in model.parameters { p.grad = nil }
                for p in ranges { p.grad = nil }
                model.bert.generator = SeededGenerator(seed: a.seed ^ (0x9E37_79B9_7F4A_7C15 &* UInt64(state.globalStep + 1)))
                let lossValue: Float
                if group.size == 1 {
                    let batch = FeatureBatch(rows, padId: padId)
                    let tape = Tape()
                    let loss = lossOf(batch, tape: tape)
                    tape.backward(from: loss)
                    lossValue = loss.scalar
                } else {
                    lossValue = try dataParallelStep(rows, parameters: model.parameters + ranges)
                    try wholeBatchRanges.check()
                }
                // Clipping covers the weights only: the ranges have their own rate and Adam's
                // per-parameter normalisation.
                let gradientNorm = a.maxGradNorm > 0 ? clipGradientNorm(model.parameters, maxNorm: a.maxGradNorm) : 0
                guard lossValue.isFinite, gradientNorm.isFinite else {
                    throw TrainingDiverged(update: state.globalStep + 1, loss: lossValue, gradientNorm: gradientNorm)
                }
                optimizer.learningRate = a.learningRate * schedule.factor(at: state.globalStep)
                optimizer.update()
                state.globalStep += 1
                state.stepInEpoch += 1
                state.lossSum += Double(lossValue)
                state.lossCount += 1
                stepsTimed += 1
                let elapsed = Date().timeIntervalSince(started)
                let perStep = elapsed / Double(stepsTimed)
                progress(.step(epoch: state.epoch, globalStep: state.globalStep, totalSteps: totalSteps, loss: lossValue,
                               learningRate: optimizer.learningRate,
                               examplesPerSecond: Double(stepsTimed * a.batchSize) / max(elapsed, 1e-9),
                               etaSeconds: perStep * Double(totalSteps - state.globalStep)))
                if shouldStop?() == true { throw TrainingInterrupted(globalStep: state.globalStep) }
                if a.saveSteps > 0, state.globalStep % a.saveSteps == 0, state.stepInEpoch < batches.count {
                    tick()
                    if writer {
                        try saveCheckpoint(state, optimizer: optimizer)
                        progress(.checkpoint(path: output.path, globalStep: state.globalStep))
                    }
                }
            }
            // End of epoch: evaluate, keep the best model, checkpoint the position (rank 0; the
            // other ranks go on to the next epoch and wait for it at its first update).
            guard writer else {
                state.epoch += 1
                state.stepInEpoch = 0
                state.lossSum = 0
                state.lossCount = 0
                continue
            }
            model.training = false
            quantization?.training = false
            let metrics = try pipeline.evaluate(model: model, batchSize: a.evalBatchSize)
            let score = metrics[pipeline.primaryMetric] ?? -.infinity
            let isBest = state.bestMetric.map { score > $0 } ?? true
            // Epochs are numbered from 1 in results (as transformers reports them).
            let result = EpochResult(epoch: state.epoch + 1, globalStep: state.globalStep,
                                     trainLoss: state.lossSum / Double(max(1, state.lossCount)), metrics: metrics)
            state.history.append(result)
            if isBest {
                state.bestMetric = score
                state.bestEpoch = state.epoch + 1
                try FileManager.default.createDirectory(at: bestModelStaging, withIntermediateDirectories: true)
                try model.save(to: bestModelStaging, labelNames: pipeline.labelNames)
                try quantization?.save(to: bestModelStaging)
            }
            progress(.evaluation(epoch: state.epoch, metrics: metrics, isBest: isBest))
            state.epoch += 1
            state.stepInEpoch = 0
            state.lossSum = 0
            state.lossCount = 0
            tick()
            try writeEvalResults(state)
            try saveCheckpoint(state, optimizer: optimizer)
            started = Date()
            stepsTimed = 0
        }
        if writer { try publishBestModel() }
        return state.history
    }

    /// This process's part of one data-parallel update on the global batch `rows`: the forward
    /// and backward pass on its slice (padded to the batch's length, the batch's dropout masks),
    /// the loss weighted by the slice's share of the batch's loss terms, and the gradients summed
    /// over the processes into every process's `parameters`. Returns the whole batch's loss.
    func dataParallelStep(_ rows: [Feature], parameters: [Tensor]) throws -> Float {
        let tape = Tape()
        let forward = group.forwardPart(of: rows, model: model, padId: padId, tape: tape) { lossOf($0.batch, tape: tape, share: $0.share) }
        try group.backwardSummingGradients(tape, from: forward.loss, parameters: parameters, model: model, marks: forward.marks,
                                           rows: rows, padId: padId, bucketFloats: bucketFloats)
        return Float(try group.sum(forward.part.isPlaceholder ? 0 : Double(forward.loss.scalar)))
    }


    /// Where the best model so far is kept during a run. It moves into the output only when the
    /// last epoch has finished, so a run that fails or is killed leaves no model in the output
    /// that `evaluate` or `export` would take for a finished one.
    var bestModelStaging: URL { output.appendingPathComponent(".best-model") }

    /// Moves the staged best model's files into the output (each by rename(2), replacing), then
    /// removes the staging folder. Idempotent: a resumed run killed half-way through this moves
    /// what is left; a run published already finds nothing to move.
    func publishBestModel() throws {
        let fm = FileManager.default
        guard fileExists(bestModelStaging.path).isDirectory else { return }
        for name in try fm.contentsOfDirectory(atPath: bestModelStaging.path).sorted() {
            let from = bestModelStaging.appendingPathComponent(name).path, to = output.appendingPathComponent(name).path
            if rename(from, to) != 0 {
                throw DataError("cannot move the best model's \(name) into \(output.path): \(errnoMessage(errno))")
            }
        }
        try fm.removeItem(at: bestModelStaging)
    }

    /// The training loss of `batch`, or with `share` its part of the whole batch's (see
    /// `Distillation.loss`).
    func lossOf(_ batch: FeatureBatch, tape: Tape, share: BatchShare? = nil) -> Tensor {
        model.trainingLoss(batch, tape: tape, distillation: teacher.flatMap { arguments.distillation(teacher: $0) }, share: share)
    }

    /// Every trained tensor a checkpoint holds: the model's parameters and learned ranges.
    var checkpointTensors: [(name: String, tensor: Tensor)] {
        model.checkpointParameters + (quantization?.rangeParameters ?? [])
    }

    // MARK: - Files

    func writeJSON<T: Encodable>(_ value: T, to url: URL) throws {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        try writeAtomically(try e.encode(value), to: url)
    }

    func writeEvalResults(_ state: TrainerState) throws {
        struct EvalResults: Encodable {
            let task: String
            let bestEpoch: Int?
            let metrics: [String: Double]
            let examples: Int
            let history: [EpochResult]
            let trainSeconds: Double
            enum CodingKeys: String, CodingKey {
                case task, metrics, examples, history
                case bestEpoch = "best_epoch", trainSeconds = "train_seconds"
            }
        }
        let best = state.bestEpoch.flatMap { e in state.history.first { $0.epoch == e } }
        try writeJSON(EvalResults(task: pipeline.task.rawValue, bestEpoch: state.bestEpoch, metrics: best?.metrics ?? [:],
                                  examples: pipeline.evaluationExampleCount, history: state.history,
                                  trainSeconds: state.trainSeconds),
                      to: output.appendingPathComponent("eval_results.json"))
    }

    func copyTokenizerFiles() throws {
        let fm = FileManager.default
        for f in ["vocab.txt", "tokenizer_config.json", "tokenizer.json", "special_tokens_map.json"] {
            let src = tokenizerDirectory.appendingPathComponent(f)
            guard fm.fileExists(atPath: src.path) else { continue }
            let dst = output.appendingPathComponent(f)
            if src.standardizedFileURL == dst.standardizedFileURL { continue }
            try writeAtomically(try Data(contentsOf: src), to: dst)
        }
    }

    /// Weights, optimizer moments, position and activation ranges (see `CheckpointFolders`).
    func saveCheckpoint(_ state: TrainerState, optimizer: AdamW) throws {
        try folders.save(step: state.globalStep) { dir in
            try CheckpointFolders.writeTensors(checkpointTensors, to: dir.appendingPathComponent("model.safetensors"))
            try CheckpointFolders.writeMoments(of: optimizer, to: dir.appendingPathComponent("optimizer.safetensors"))
            try writeJSON(state, to: dir.appendingPathComponent("trainer_state.json"))
            if let quantization { try writeJSON(quantization.activationRanges, to: dir.appendingPathComponent("activation_ranges.json")) }
        }
    }

    /// The last checkpoint, checked before anything is trusted: the arguments and the inputs'
    /// fingerprint must be this run's, the position one this run can reach, and the tensors and
    /// optimizer moments this model's (see `CheckpointFolders`).
    func loadCheckpoint(optimizer: AdamW, stepsPerEpoch: Int) throws -> TrainerState? {
        guard let dir = try folders.latest() else { return nil }
        let stateURL = dir.appendingPathComponent("trainer_state.json")
        let state = try CheckpointFolders.read(TrainerState.self, at: stateURL)
        guard state.arguments == arguments else {
            throw DataError("--resume: \(output.path) was trained with other arguments; use the same flags or a new --output")
        }
        if let fingerprint, let mismatch = fingerprint.mismatch(saved: state.fingerprint, output: output) { throw DataError(mismatch) }
        if let problem = state.problem(epochs: arguments.epochs, stepsPerEpoch: stepsPerEpoch) {
            throw DataError("--resume: \(stateURL.path): \(problem); the checkpoint is damaged")
        }
        try CheckpointFolders.readTensors(checkpointTensors, from: dir.appendingPathComponent("model.safetensors"))
        try CheckpointFolders.readMoments(into: optimizer, from: dir.appendingPathComponent("optimizer.safetensors"),
                                          expectedStep: state.globalStep)
        if let quantization {
            let url = dir.appendingPathComponent("activation_ranges.json")
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw DataError("--resume: \(dir.path) lacks activation_ranges.json, which a quantization-aware run writes; the checkpoint is damaged")
            }
            do { try quantization.setActivationRanges(try CheckpointFolders.read([String: [Float]].self, at: url)) } catch let e as DataError {
                throw e
            } catch { throw DataError("--resume: \(url.path): \(error)") }
        }
        return state
    }
}
