import AQBert
import AQHub
import AQParallel
import AQQuant
import AQSearch
import AQTasks
import Foundation

/// What `search` is asked to do: the parsed options.
public struct SearchRequest {
    /// The budget as the user gave it.
    public enum Target {
        /// Average bits per encoder weight (the paper's; the tables stay at 8 bits).
        case averageBits(Double)
        /// MB: with `.file` the packed model.safetensors `export` writes, in 10^6 bytes, a cap;
        /// with `.encoder` MiB of encoder weight bits (the paper's C).
        case megabytes(Double, SizeBudget)
    }

    public var model: String
    public var task: TaskName
    public var threads: Int?
    public var train: String
    public var output: String
    public var target: Target
    /// Every setting but the budget (`targetMiB`, `budget`, `embeddings` come from `target`).
    public var configuration: SearchConfiguration
    /// Under a file budget: candidate widths and rows per group of the word and position tables.
    public var embeddingCandidates = [2, 3, 4, 8]
    public var embeddingRows = 32
    /// Share of the training examples held out for the architecture steps.
    public var validationFraction = 0.1
    public var maxSeqLength: Int?
    /// A resumable checkpoint every N steps (and at each epoch end).
    public var saveSteps = 200
    /// Under mpirun: MB of gradients per all-reduce.
    public var bucketMb: Double = 25
    public var resume = false
    /// A plan file to start the search from (`InitialPlan`), and its logit margin.
    public var initialPlan: String?
    public var initialMargin: Float = 1
    public var downloadProgress: ((DownloadProgress) -> Void)?

    public init(model: String, task: TaskName, threads: Int?, train: String, output: String, target: Target,
                configuration: SearchConfiguration) {
        self.model = model
        self.task = task
        self.threads = threads
        self.train = train
        self.output = output
        self.target = target
        self.configuration = configuration
    }
}

/// A search ready to start: its runner, its configuration with the budget in MiB, and the
/// training data's SHA-256 (recorded in the plan's provenance).
public struct PreparedSearch {
    public let runner: SearchRunner
    public let configuration: SearchConfiguration
    public let dataSHA256: String
}

/// The AQ-BERT search (METHOD.md sections 3-5).
public enum SearchRun {
    /// Checks the inputs and the budget (an impossible one fails before any data is read), loads
    /// the model and data (and the teacher of a distilling search) and builds the runner. Under
    /// `mpirun -np N` every rank prepares and they agree on the first failure; rank 0 alone
    /// checks and locks the output and hears `warn`.
    public static func prepare(_ r: SearchRequest, group: ProcessGroup, warn: (String) -> Void) throws -> PreparedSearch {
        let leader = group.rank == 0
        return try group.agree { () throws -> PreparedSearch in
            RunInputs.setThreads(r.threads, group: group)
            var c = r.configuration
            do { try BitPlan.validateCandidates(c.candidates) } catch { throw RunError("--bits: \(error)") }
            var args = TrainingArguments.defaults(for: r.task)
            if let maxSeqLength = r.maxSeqLength { args.maxSeqLength = maxSeqLength }
            let trainURL = try RunInputs.existingFile(r.train, option: "--train")
            let modelDir = try RunInputs.modelDirectory(r.model, progress: r.downloadProgress)
            if leader { try RunInputs.checkOutput(r.output, inputs: [("--model", modelDir.path), ("--train", r.train)]) }
            // An impossible budget fails at once, before any data is read: shapes from config.json.
            let shapes: BertConfig
            do { shapes = try BertConfig(contentsOf: modelDir) } catch { throw RunError("\(error)") }
            switch r.target {
            case .averageBits(let bits):
                c.targetMiB = BitPlan.budgetMiB(averageBits: bits, weights: QuantizableMatrices.weightCount(shapes))
                c.budget = nil
                c.embeddings = nil
            case .megabytes(let mb, .file):
                // A file budget is in MB of 10^6 bytes (what a file listing shows); the search works in MiB.
                c.targetMiB = mb * 1_000_000 / 1_048_576
                c.budget = .file
                do { try BitPlan.validateCandidates(r.embeddingCandidates) } catch { throw RunError("--embedding-bits: \(error)") }
                c.embeddings = EmbeddingSearch(candidates: r.embeddingCandidates, rowsPerGroup: r.embeddingRows)
            case .megabytes(let mb, .encoder):
                c.targetMiB = mb
                c.budget = nil
                c.embeddings = nil
            }
            let architecture = shapes.architectures?.compactMap(BertArchitecture.init(className:)).first ?? .base
            let shaped = BertTaskModel(config: shapes, architecture: architecture)
            do { try SearchRunner.checkBudget(c, model: shaped) } catch { throw RunError("\(error)") }
            if let path = r.initialPlan {
                let plan = try RunInputs.loadPlan(path, option: "--initial-plan")
                let hash = try SHA256.hex(contentsOf: URL(fileURLWithPath: path))
                let start = InitialPlan(plan: plan, margin: r.initialMargin,
                                        source: "\(URL(fileURLWithPath: path).lastPathComponent) (sha256 \(hash))")
                do { _ = try start.choices(model: shaped, candidates: c.candidates, groups: c.groups) } catch {
                    throw RunError("--initial-plan \(path): \(error)")
                }
                c.initialPlan = start
            }
            let (tokenizer, pipeline, model, report) = try RunInputs.trainingData(task: r.task, modelDir: modelDir, train: trainURL,
                                                                                  arguments: args)
            do { try model.config.checkTrainingMemory(batch: c.batchSize, sequence: args.maxSeqLength) } catch { throw RunError("\(error)") }
            if !report.initialized.isEmpty && leader {
                warn("searching on a model without a fine-tuned head (\(report.initialized.joined(separator: ", "))): fine-tune it first for a meaningful search")
            }
            var runner = SearchRunner(model: model, pipeline: pipeline, configuration: c,
                                      validationPercent: Int((r.validationFraction * 100).rounded()), padId: tokenizer.padTokenId,
                                      output: URL(fileURLWithPath: r.output))
            runner.saveSteps = r.saveSteps
            if c.distillation != nil || c.architectureDistillation != nil {
                runner.teacher = try RunInputs.teacher(spec: r.model, modelDir: modelDir, student: model, report: report,
                                                       pipeline: pipeline, seed: c.seed, option: c.distillation != nil ? "--distill" : "--arch-distill")
            }
            if leader { try RunInputs.lockOutput(r.output) }
            if !r.resume, FileManager.default.fileExists(atPath: URL(fileURLWithPath: r.output).appendingPathComponent("last-checkpoint.json").path) {
                throw RunError("--output \(r.output) holds a search already: add --resume to continue it, or choose a new directory")
            }
            let fingerprint = try RunInputs.fingerprint(modelDirectory: modelDir, inputs: [("train", trainURL)])
            runner.fingerprint = fingerprint
            let hash = try fingerprint.files["train"] ?? SHA256.hex(contentsOf: trainURL)
            runner.group = group
            runner.bucketFloats = max(1, Int(r.bucketMb * 1_048_576 / 4))
            return PreparedSearch(runner: runner, configuration: c, dataSHA256: hash)
        }
    }
}
