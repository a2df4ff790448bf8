import AQBert
import AQParallel
import AQQuant
import AQRuns
import AQTasks
import ArgumentParser
import Foundation

/// Options shared by finetune / evaluate / predict.
struct TaskModelOptions: ParsableArguments {
    @Option(help: "A Hugging Face BERT directory or hub id (org/name[@revision]).")
    var model: String
    @Option(help: "Task: \(TaskName.allCases.map(\.rawValue).joined(separator: ", ")).")
    var task: TaskName
    @Option(help: "Worker threads (default: all cores).")
    var threads: Int?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }
}

struct FinetuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "finetune",
        abstract: "Fine-tune a BERT on a task; the output is a Hugging Face model directory.",
        discussion: """
            Defaults (METHOD.md section 7): sst2/mnli 3 epochs, lr 2e-5, batch 32, seq 128; \
            conll2003 3 epochs, lr 5e-5, batch 32, seq 128; squad 2 epochs, lr 3e-5, batch 12, \
            seq 384, doc stride 128. AdamW (no decay on biases and LayerNorm), warm-up ratio 0.1 \
            then linear decay, gradient clipping at 1.0. The best epoch's model is kept.
            """
    )

    @OptionGroup var common: TaskModelOptions
    @Option(help: "Training data in the task's original format.") var train: String
    @Option(help: "Evaluation data, scored after every epoch.") var dev: String
    @Option(help: "Output directory (created).") var output: String
    @Option(help: "Epochs.") var epochs: Int?
    @Option(name: .customLong("lr"), help: "Peak learning rate.") var learningRate: Float?
    @Option(help: "Examples per update.") var batchSize: Int?
    @Option(help: "Longest input in tokens.") var maxSeqLength: Int?
    @Option(help: "SQuAD: tokens shared by consecutive windows of a long context.") var docStride: Int?
    @Option(help: "Seed of initialisation, batch order and dropout.") var seed: UInt64?
    @Option(help: "Share of updates spent warming up.") var warmupRatio: Float?
    @Option(help: "Weight decay (not on biases and LayerNorm).") var weightDecay: Float?
    @Option(help: "A resumable checkpoint every N updates (0: epoch ends only).") var saveSteps: Int?
    @Option(help: "A progress line every N updates.") var logEvery: Int = 50
    @Flag(help: "Take the training examples in file order every epoch (default: a seeded shuffle per epoch).")
    var noShuffle = false
    @Flag(help: "Continue from the last checkpoint in --output (after a kill).") var resume = false
    @Flag(help: "Progress as one JSON object per line.") var json = false
    @Option(help: "Under mpirun: MB of gradients per all-reduce (each started as soon as its layers' gradients are done).")
    var bucketMb: Double = 25

    func validate() throws {
        if !(bucketMb > 0 && bucketMb <= 1024) { throw ValidationError("--bucket-mb must be above 0 and at most 1024") }
        if let saveSteps, saveSteps < 0 { throw ValidationError("--save-steps must be 0 (epoch ends only) or more") }
        if logEvery < 1 { throw ValidationError("--log-every must be at least 1") }
    }

    func run() throws { try train(plan: nil) }

    /// Fine-tuning, or with `plan` quantization-aware retraining (METHOD.md section 5);
    /// `configure` sets retrain's own arguments (distillation from the fp32 starting model,
    /// weight ranges).
    ///
    /// Under `mpirun -np N` the ranks train data parallel (see `Trainer`): every rank checks the
    /// inputs and they agree on the first failure, rank 0 alone checks, locks and writes the output
    /// and prints, and the threads per rank default to the machine's cores shared by its ranks.
    func train(plan planPath: String?, configure: (inout TrainingArguments) -> Void = { _ in }) throws {
        let group = try ProcessGroup.world()
        let leader = group.rank == 0
        let json = self.json, logEvery = self.logEvery
        var a = TrainingArguments.defaults(for: common.task)
        if let epochs { a.epochs = epochs }
        if let learningRate { a.learningRate = learningRate }
        if let batchSize { a.batchSize = batchSize }
        if let maxSeqLength { a.maxSeqLength = maxSeqLength }
        if let docStride { a.docStride = docStride }
        if let seed { a.seed = seed }
        if let warmupRatio { a.warmupRatio = warmupRatio }
        if let weightDecay { a.weightDecay = weightDecay }
        if let saveSteps { a.saveSteps = saveSteps }
        configure(&a)
        if noShuffle { a.shuffle = false }
        var request = TrainingRequest(model: common.model, task: common.task, threads: common.threads, train: train, dev: dev,
                                      output: output, arguments: a)
        request.plan = planPath
        request.resume = resume
        request.bucketMb = bucketMb
        request.downloadProgress = TextIO.downloadBar
        let run = try TrainingRun.prepare(request, group: group, warn: TextIO.warn)
        if let plan = run.plan, let planPath, !json && leader {
            let a = run.arguments
            print(String(format: "quantization-aware training with %@: %.3f MiB, %.3f average bits, %.1f%% pruned",
                         planPath, plan.sizeMiB, plan.averageBits, 100 * plan.prunedFraction))
            let ranges = a.ranges == .learned ? "learned (from \((a.rangeInitialization ?? .mse).rawValue), lr \(a.rangeLearningRate ?? a.learningRate))" : "min/max"
            let distill = a.distill.map { "\($0.rawValue) (alpha \(a.distillAlpha ?? 0.5), T \(a.distillTemperature ?? 2), hidden \(a.distillHiddenWeight ?? 1), attention \(a.distillAttentionWeight ?? 1))" } ?? "none"
            print("weight ranges \(ranges); distillation \(distill)")
        }
        let history = try run.trainer.train(resume: resume) { event in
            guard leader else { return }
            switch event {
            case let .step(epoch, step, total, loss, lr, rate, eta):
                guard step % logEvery == 0 || step == total else { return }
                if json {
                    print("{\"event\":\"step\",\"epoch\":\(epoch),\"step\":\(step),\"total_steps\":\(total),\"loss\":\(TextIO.json(loss)),\"learning_rate\":\(TextIO.json(lr)),\"examples_per_second\":\(String(format: "%.2f", rate)),\"eta_seconds\":\(Int(eta))}")
                } else {
                    print("epoch \(epoch + 1) step \(step)/\(total) loss \(String(format: "%.4f", loss)) lr \(String(format: "%.2e", lr)) \(String(format: "%.1f", rate)) ex/s ETA \(TextIO.duration(eta))")
                }
            case let .evaluation(epoch, metrics, isBest):
                let m = metrics.sorted { $0.key < $1.key }
                if json {
                    print("{\"event\":\"evaluation\",\"epoch\":\(epoch),\"best\":\(isBest),\"metrics\":{\(m.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ","))}}")
                } else {
                    print("epoch \(epoch + 1) dev " + m.map { "\($0.key) \(String(format: "%.2f", $0.value))" }.joined(separator: " ") + (isBest ? " (best)" : ""))
                }
            case let .checkpoint(_, step):
                if json { print("{\"event\":\"checkpoint\",\"step\":\(step)}") }
            case let .resumed(step, epoch):
                if json { print("{\"event\":\"resumed\",\"step\":\(step),\"epoch\":\(epoch)}") } else { print("resumed at update \(step) (epoch \(epoch + 1))") }
            }
            fflush(stdout)
        }
        let primary = run.pipeline.primaryMetric
        if !json, let best = history.max(by: { ($0.metrics[primary] ?? 0) < ($1.metrics[primary] ?? 0) }) {
            print("best: epoch \(best.epoch) " + best.metrics.sorted { $0.key < $1.key }.map { "\($0.key) \(String(format: "%.2f", $0.value))" }.joined(separator: " ") + "; model in \(output)")
        }
    }
}

struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Score a fine-tuned model on a labelled data file.",
        discussion: "With --json: {\"task\": \"sst2\", \"examples\": 872, \"metrics\": {\"accuracy\": 91.2}} (0-100 scale)."
    )
    @OptionGroup var common: TaskModelOptions
    @Option(help: "Labelled data in the task's original format.") var data: String
    @Option(help: "Examples per forward pass.") var batchSize: Int = 64
    @Option(help: "Longest input in tokens (default: the task's).") var maxSeqLength: Int?
    @Option(help: "SQuAD window overlap in tokens (default 128).") var docStride: Int?
    @Option(help: "Apply this bit plan to an fp32 model first (no retraining: DirectQ).") var plan: String?
    @Option(help: "With --plan: training data whose first rows calibrate the 8-bit activation ranges.") var calibration: String?
    @Option(help: "Rows of --calibration used.") var calibrationRows: Int = 1024
    @Flag(help: "Print one JSON object.") var json = false
    @Flag(help: "Load a packed model without verifying its tensors' checksum.") var noVerify = false

    func validate() throws {
        if calibration != nil && plan == nil { throw ValidationError("--calibration needs --plan (a quantization-aware model has its ranges)") }
        if calibrationRows < 1 { throw ValidationError("--calibration-rows must be at least 1") }
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
    }

    func run() throws {
        var request = EvaluationRequest(model: common.model, task: common.task, threads: common.threads, data: data)
        request.maxSeqLength = maxSeqLength
        request.docStride = docStride
        request.plan = plan
        request.calibration = calibration.map { ($0, calibrationRows) }
        request.verify = !noVerify
        request.downloadProgress = TextIO.downloadBar
        let (model, pipeline, _) = try EvaluationRun.load(request, warn: TextIO.warn)
        let report = try pipeline.report(model: model, batchSize: batchSize)
        print(json ? report.json : report.table)
    }
}

struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Write per-example predictions of a fine-tuned model, in input order.",
        discussion: """
            sst2/mnli: JSON Lines {"index": i, "label": "...", "probabilities": [...]}; conll2003: JSON \
            Lines of tokens, tags and entity spans, or with --format conll the data layout with the \
            predicted tag as last column (what `score` reads); squad: predictions.json {id: answer}.
            """
    )
    @OptionGroup var common: TaskModelOptions
    @Option(help: "Data in the task's original format (labels not needed).") var data: String
    @Option(help: "Output file ('-' = standard output).") var output: String
    @Option(help: "json, or conll (conll2003 only).") var format: PredictionFormat = .json
    @Option(help: "Examples per forward pass.") var batchSize: Int = 64
    @Option(help: "Longest input in tokens (default: the task's).") var maxSeqLength: Int?
    @Option(help: "SQuAD window overlap in tokens (default 128).") var docStride: Int?
    @Flag(help: "Load a packed model without verifying its tensors' checksum.") var noVerify = false

    func validate() throws {
        if format == .conll && common.task != .conll2003 { throw ValidationError("--format conll applies to --task conll2003 only") }
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
    }

    func run() throws {
        try RunInputs.checkOutput(output, inputs: [("--data", data), ("--model", common.model)])
        var request = EvaluationRequest(model: common.model, task: common.task, threads: common.threads, data: data)
        request.maxSeqLength = maxSeqLength
        request.docStride = docStride
        request.verify = !noVerify
        request.downloadProgress = TextIO.downloadBar
        let (model, pipeline, _) = try EvaluationRun.load(request, warn: TextIO.warn)
        try TextIO.write(try pipeline.predictions(model: model, batchSize: batchSize, format: format), to: output)
    }
}

extension PredictionFormat: ExpressibleByArgument {}

/// `--distill none` or a `DistillMode`.
enum DistillChoice: String, ExpressibleByArgument, CaseIterable {
    case none, logits, layers, all

    var mode: DistillMode? { DistillMode(rawValue: rawValue) }
}

extension RangeMode: ExpressibleByArgument {}
extension RangeInitialization: ExpressibleByArgument {}

/// The quantization-aware training recipe: distillation from the fp32 model and the weight
/// ranges. Shared by `retrain` and `compare` (which passes it to every QAT it runs, so every
/// method trains the same way).
struct QATRecipeOptions: ParsableArguments {
    @Option(help: "Distil from the fp32 --model (a fine-tuned teacher): none, logits, layers (hidden states and attention scores) or all.")
    var distill: DistillChoice = .all
    @Option(help: "alpha of the logit term of --distill logits|all (default 0.5).") var distillAlpha: Float?
    @Option(help: "Temperature T of the logit term (default 2).") var distillTemperature: Float?
    @Option(help: "Weight of the hidden-state MSE of --distill layers|all (default 1).") var distillHiddenWeight: Float?
    @Option(help: "Weight of the attention-score MSE of --distill layers|all (default 1).") var distillAttentionWeight: Float?
    @Option(help: "Weight group ranges: minmax (the group's min/max) or learned (trainable clipping bounds, LSQ).")
    var ranges: RangeMode = .learned
    @Option(help: "Where learned ranges start: mse (least squared error) or minmax (default mse).") var rangeInit: RangeInitialization?
    @Option(name: .customLong("range-lr"), help: "Learning rate of learned ranges (default: --lr).") var rangeLearningRate: Float?

    func validate() throws {
        if distill.mode == nil && [distillAlpha, distillTemperature, distillHiddenWeight, distillAttentionWeight].contains(where: { $0 != nil }) {
            throw ValidationError("--distill-alpha, --distill-temperature, --distill-hidden-weight and --distill-attention-weight need --distill logits|layers|all")
        }
        if distill == .logits && (distillHiddenWeight != nil || distillAttentionWeight != nil) {
            throw ValidationError("--distill-hidden-weight and --distill-attention-weight need --distill layers or all")
        }
        if distill == .layers && (distillAlpha != nil || distillTemperature != nil) {
            throw ValidationError("--distill-alpha and --distill-temperature need --distill logits or all")
        }
        if ranges == .minmax && (rangeInit != nil || rangeLearningRate != nil) {
            throw ValidationError("--range-init and --range-lr need --ranges learned")
        }
    }

    /// Writes the recipe into the run's arguments (validated there, with the other ranges).
    func apply(to a: inout TrainingArguments) {
        if let mode = distill.mode {
            a.distill = mode
            if mode.matchesLogits {
                a.distillAlpha = distillAlpha ?? 0.5
                a.distillTemperature = distillTemperature ?? 2
            }
            if mode.matchesLayers {
                a.distillHiddenWeight = distillHiddenWeight ?? 1
                a.distillAttentionWeight = distillAttentionWeight ?? 1
            }
        }
        if ranges == .learned {
            a.ranges = .learned
            a.rangeInitialization = rangeInit ?? .mse
            a.rangeLearningRate = rangeLearningRate
        }
    }

    /// The recipe as explicit `retrain` flags (every default spelled out) and as settings to record.
    var flags: [String] {
        var f = ["--distill", distill.rawValue, "--ranges", ranges.rawValue]
        if let mode = distill.mode {
            if mode.matchesLogits {
                f += ["--distill-alpha", String(distillAlpha ?? 0.5), "--distill-temperature", String(distillTemperature ?? 2)]
            }
            if mode.matchesLayers {
                f += ["--distill-hidden-weight", String(distillHiddenWeight ?? 1),
                      "--distill-attention-weight", String(distillAttentionWeight ?? 1)]
            }
        }
        if ranges == .learned {
            f += ["--range-init", (rangeInit ?? .mse).rawValue]
            if let rangeLearningRate { f += ["--range-lr", String(rangeLearningRate)] }
        }
        return f
    }

    var settings: [String: String] {
        var out: [String: String] = [:]
        var key: String?
        for item in flags {
            if let k = key {
                out["qat_" + k] = item
                key = nil
            } else {
                key = String(item.dropFirst(2)).replacingOccurrences(of: "-", with: "_")
            }
        }
        return out
    }
}

struct RetrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retrain",
        abstract: "Quantization-aware fine-tuning with a fixed bit plan (METHOD.md section 5).",
        discussion: """
            Starts from the fp32 checkpoint, fake-quantizes every planned matrix per row group (0-bit \
            groups are exactly 0), 8-bit embeddings and Linear inputs, and fine-tunes with straight-through \
            gradients and the finetune options. --distill matches the fp32 --model as a teacher: logits \
            ((1 - alpha) CE + alpha T^2 soft CE), layers (CE + MSE of every hidden state and attention \
            score map), or all (both). --ranges learned trains each group's clipping bounds (LSQ) \
            from --range-init. The output records plan.json, the learned ranges and a \
            quantization_config in config.json; evaluate, predict and export apply them.
            """
    )
    @Option(help: "The bit plan (aqbert plan / search).") var plan: String
    @OptionGroup var recipe: QATRecipeOptions
    @OptionGroup var finetune: FinetuneCommand

    func run() throws {
        try finetune.train(plan: plan) { recipe.apply(to: &$0) }
    }
}
