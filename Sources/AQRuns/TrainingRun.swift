import AQBert
import AQHub
import AQParallel
import AQQuant
import AQTasks
import Foundation

/// What `finetune` and `retrain` are asked to do: the parsed options.
public struct TrainingRequest {
    public var model: String
    public var task: TaskName
    /// Worker threads (nil: all cores, or under mpirun the cores shared by the ranks).
    public var threads: Int?
    public var train: String
    public var dev: String
    public var output: String
    /// The task's defaults with the user's overrides (`TrainingArguments.defaults(for:)`); the
    /// run sets `threads` and validates them.
    public var arguments: TrainingArguments
    /// retrain's bit plan (nil: fp32 fine-tuning).
    public var plan: String?
    public var resume = false
    /// Under mpirun: MB of gradients per all-reduce.
    public var bucketMb: Double = 25
    /// Hears a hub download's progress.
    public var downloadProgress: ((DownloadProgress) -> Void)?

    public init(model: String, task: TaskName, threads: Int?, train: String, dev: String, output: String, arguments: TrainingArguments) {
        self.model = model
        self.task = task
        self.threads = threads
        self.train = train
        self.dev = dev
        self.output = output
        self.arguments = arguments
    }
}

/// A training run ready to start: its trainer, pipeline and validated arguments, and the bit
/// plan of a quantization-aware one.
public struct PreparedTraining {
    public let trainer: Trainer
    public let pipeline: RunnableTask
    public let arguments: TrainingArguments
    public let plan: BitPlan?
}

/// Fine-tuning, or with a plan quantization-aware retraining (METHOD.md section 5).
public enum TrainingRun {
    /// Checks the inputs, loads the model (and the distillation teacher, and the quantization of
    /// a plan) and builds the trainer. Under `mpirun -np N` every rank prepares and they agree on
    /// the first failure; rank 0 alone checks and locks the output. `warn` hears, on rank 0,
    /// what the user should know (a head initialised afresh).
    public static func prepare(_ r: TrainingRequest, group: ProcessGroup, warn: (String) -> Void) throws -> PreparedTraining {
        let leader = group.rank == 0
        return try group.agree { () throws -> PreparedTraining in
            RunInputs.setThreads(r.threads, group: group)
            var a = r.arguments
            a.threads = Runtime.threads
            do { try a.validate() } catch { throw RunError("\(error)") }
            let trainURL = try RunInputs.existingFile(r.train, option: "--train")
            let devURL = try RunInputs.existingFile(r.dev, option: "--dev")
            if leader {
                try RunInputs.checkOutput(r.output, inputs: [("--model", r.model), ("--train", r.train), ("--dev", r.dev), ("--plan", r.plan)])
                try RunInputs.lockOutput(r.output)
            }
            let outputURL = URL(fileURLWithPath: r.output)
            if !r.resume, FileManager.default.fileExists(atPath: outputURL.appendingPathComponent("last-checkpoint.json").path) {
                throw RunError("--output \(r.output) holds a run already: add --resume to continue it, or choose a new directory")
            }
            let modelDir = try RunInputs.modelDirectory(r.model, progress: r.downloadProgress)
            let tokenizer = try RunInputs.loadTokenizer(modelDir)
            let pipeline = try TaskPipelines.make(task: r.task, tokenizer: tokenizer, arguments: a, train: trainURL, evaluation: devURL)
            let (model, report) = try BertTaskModel.load(directory: modelDir, architecture: pipeline.architecture,
                                                         numLabels: pipeline.labelNames?.count, seed: a.seed)
            if !report.initialized.isEmpty && leader {
                warn("new \(model.className) head, initialised (seed \(a.seed)): \(report.initialized.joined(separator: ", "))")
            }
            do { try model.config.checkTrainingMemory(batch: a.batchSize, sequence: a.maxSeqLength) } catch { throw RunError("\(error)") }
            let trainer = Trainer(model: model, pipeline: pipeline, arguments: a, output: outputURL, tokenizerDirectory: modelDir,
                                  padId: tokenizer.padTokenId)
            if a.distillationSettings != nil {
                trainer.teacher = try RunInputs.teacher(spec: r.model, modelDir: modelDir, student: model, report: report,
                                                        pipeline: pipeline, seed: a.seed)
            }
            var plan: BitPlan?
            if let planPath = r.plan {
                let p = try RunInputs.loadPlan(planPath)
                do {
                    trainer.quantization = try QuantizedBert(plan: p, model: model, ranges: a.ranges ?? .minmax,
                                                             rangeInitialization: a.rangeInitialization ?? .mse)
                } catch { throw RunError("--plan \(planPath): \(error)") }
                plan = p
            }
            trainer.fingerprint = try RunInputs.fingerprint(modelDirectory: modelDir,
                                                            inputs: [("train", trainURL), ("dev", devURL)]
                                                                + (r.plan.map { [("plan", URL(fileURLWithPath: $0))] } ?? []))
            trainer.group = group
            trainer.bucketFloats = max(1, Int(r.bucketMb * 1_048_576 / 4))
            return PreparedTraining(trainer: trainer, pipeline: pipeline, arguments: a, plan: plan)
        }
    }
}
