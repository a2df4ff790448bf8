import AQBert
import AQParallel
import AQQuant
import AQSearch
import AQRuns
import AQTasks
import ArgumentParser
import Foundation

extension ArchitectureOptimizer: ExpressibleByArgument {}
extension TieBreak: ExpressibleByArgument {}
extension SizeBudget: ExpressibleByArgument {}
extension SearchRanges: ExpressibleByArgument {}

/// Whether the search's weight steps run: `--freeze-weights` (the default: architecture steps
/// only, against the fine-tuned weights) or `--train-weights` (the paper's alternation).
enum SearchWeights: String, EnumerableFlag {
    case freezeWeights, trainWeights

    static func help(for value: SearchWeights) -> ArgumentHelp? {
        switch value {
        case .freezeWeights:
            return "No weight steps: every step is an architecture step against the fine-tuned weights (the default; beyond the paper, about half the step cost)."
        case .trainWeights:
            return "The paper's alternation: an AdamW step on the weights, then one on the architecture logits."
        }
    }
}

struct SearchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search",
        abstract: "AQ-BERT: search a per-group bit plan under a size budget (METHOD.md sections 3-5).",
        discussion: """
            Installs Gumbel-softmax mixed weights on the fine-tuned model and takes steps on the \
            architecture logits (validation split carved from --train; the dev set is never used). \
            The plan is the argmax, repaired into the size band when it lands outside. By default \
            the weights are frozen and each candidate quantizes with its group's MSE-optimal \
            clipping bounds (--freeze-weights --ranges mse: the setting that gave the best \
            retrained models, README "The search with the recipe"); --train-weights --ranges \
            minmax is the paper's search, which alternates AdamW steps on the weights (training \
            split) with the architecture steps. Departure from the paper: its SGD at 0.1 barely \
            moves the logits (METHOD.md section 9), so the default architecture optimiser is Adam \
            at 0.01; both are options and are recorded in the plan.
            """
    )

    @OptionGroup var common: TaskModelOptions
    @Option(help: "Training data; the validation split is carved out of it.") var train: String
    @Option(help: "Budget in MB: with --budget file (the default), the packed model.safetensors export writes, in 10^6 bytes, a cap; with --budget encoder, MiB of encoder weight bits (the paper's C).")
    var targetMb: Double?
    @Option(help: "Budget as average bits per encoder weight (the paper's; embeddings stay at 8 bits).") var targetBits: Double?
    @Option(help: "What --target-mb counts: file (every byte of the packed file; the word and position tables are searched too) or encoder.")
    var budget: SizeBudget?
    @Option(help: "Candidate widths of the embedding tables' row groups under a file budget (one width keeps them fixed).")
    var embeddingBits: String = "2,3,4,8"
    @Option(help: "Rows per embedding group under a file budget.") var embeddingRows: Int = 32
    @Option(help: "Candidate bit-widths, 0 = pruned.") var bits: String = "0,2,4"
    @Option(help: "Row groups per matrix.") var groups: Int = 128
    @Option(help: "Share of the training examples held out for the architecture steps.") var valFraction: Double = 0.1
    @Option(help: "Search epochs.") var epochs: Int = 3
    @Option(help: "N1: first epoch with architecture steps (default: 0 with frozen weights, 1 with --train-weights).") var archStart: Int?
    @Option(help: "lambda of the size penalty, or 'auto'.") var lambda: String = "auto"
    @Option(help: "eps of the budget band (1 +- eps).") var tolerance: Double = 0.02
    @Option(help: "Optimiser of the architecture logits.") var archOptimizer: ArchitectureOptimizer = .adam
    @Option(help: "Its learning rate.") var archLr: Float = 0.01
    @Option(name: .customLong("lr"), help: "AdamW rate of the weight steps.") var learningRate: Float = 2e-5
    @Flag var weights: SearchWeights = .freezeWeights
    var freezeWeights: Bool { weights == .freezeWeights }
    @Option(help: "Distil from the fp32 --model in the weight steps (--train-weights): none, logits, layers or all (retrain's defaults for alpha 0.5, T 2 and the layer weights 1).")
    var distill: DistillChoice = .none
    @Option(help: "The architecture steps' task loss: none (the cross-entropy, the paper's) or distillation from the fp32 --model (logits, layers or all, with retrain's default weights), with frozen or trained weights.")
    var archDistill: DistillChoice = .none
    @Option(help: "Quantization ranges of the candidates in the super-network: mse (each group's MSE-optimal clipping bounds per width, where retrain's learned ranges start; the default) or minmax (the paper's).")
    var ranges: SearchRanges = .mse
    @Option(help: "Examples per step.") var batchSize: Int = 32
    @Option(help: "Longest input in tokens (default: the task's).") var maxSeqLength: Int?
    @Option(help: "Initial Gumbel-softmax temperature t0.") var temperature: Float = 5
    @Option(help: "Temperature at the end of the search.") var finalTemperature: Float = 0.5
    @Flag(help: "Straight-through one-hot Gumbel samples.") var hard = false
    @Flag(help: "One-step unrolled second-order architecture gradient (Eq. 14, DARTS); about 2x the step cost.")
    var secondOrder = false
    @Option(help: "xi of Eq. 14, the virtual weight step of --second-order (default: --lr).") var unrolledLr: Float?
    @Option(help: "Starting logit of each candidate, comma-separated in --bits order (default: all 0, uniform).")
    var initialLogits: String?
    @Option(help: "A plan to start from (e.g. `plan qbert`'s, same --groups): each group's logit of its planned width starts --initial-margin above the others (added to --initial-logits).")
    var initialPlan: String?
    @Option(help: "The logit margin of --initial-plan's widths.") var initialMargin: Float = 1
    @Option(help: "Argmax tie-break: widest or first.") var tieBreak: TieBreak = .widest
    @Option(help: "Seed of the validation split, noise and batch order.") var seed: UInt64 = 42
    @Option(help: "Output directory: plan.json, search_log.jsonl, search_config.json.") var output: String
    @Option(help: "A progress line every N steps.") var logEvery: Int = 20
    @Option(help: "A resumable checkpoint every N steps (and at each epoch end).") var saveSteps: Int = 200
    @Option(help: "Under mpirun: MB of gradients per all-reduce (each started as soon as its layers' gradients are done).")
    var bucketMb: Double = 25
    @Flag(help: "Continue from the last checkpoint in --output (after a kill).") var resume = false
    @Flag(help: "Progress as one JSON object per line.") var json = false

    func validate() throws {
        if !(bucketMb > 0 && bucketMb <= 1024) { throw ValidationError("--bucket-mb must be above 0 and at most 1024") }
        if (targetMb == nil) == (targetBits == nil) { throw ValidationError("give exactly one of --target-mb or --target-bits") }
        if targetBits != nil && budget == .file {
            throw ValidationError("--target-bits is an average over the encoder's weights: a file budget is --target-mb with --budget file")
        }
        if embeddingRows < 1 { throw ValidationError("--embedding-rows must be at least 1") }
        if !(valFraction > 0 && valFraction < 1) { throw ValidationError("--val-fraction must be between 0 and 1") }
        if epochs < 1 { throw ValidationError("--epochs must be at least 1") }
        if let archStart, archStart < 0 || archStart >= epochs { throw ValidationError("--arch-start must be between 0 and --epochs - 1") }
        if freezeWeights, let archStart, archStart != 0 {
            throw ValidationError("frozen weights (the default) have no weight steps to start with: the architecture steps start at epoch 0 (drop --arch-start, or add --train-weights)")
        }
        if freezeWeights && distill != .none { throw ValidationError("--distill acts on the weight steps, and frozen weights (the default) have none: add --train-weights") }
        if freezeWeights && secondOrder { throw ValidationError("--second-order unrolls a weight step, and frozen weights (the default) have none: add --train-weights") }
        if lambda != "auto" && Double(lambda) == nil { throw ValidationError("--lambda must be a number or 'auto'") }
        if groups < 1 { throw ValidationError("--groups must be at least 1") }
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
        if logEvery < 1 { throw ValidationError("--log-every must be at least 1") }
        if saveSteps < 0 { throw ValidationError("--save-steps must be 0 (epoch ends only) or more") }
        if !(temperature > 0 && temperature.isFinite && finalTemperature > 0 && finalTemperature.isFinite) {
            throw ValidationError("--temperature and --final-temperature must be positive numbers (the Gumbel-softmax divides by them)")
        }
        if !(archLr >= 0 && archLr.isFinite) { throw ValidationError("--arch-lr must be a non-negative number") }
        if !(learningRate >= 0 && learningRate.isFinite) { throw ValidationError("--lr must be a non-negative number") }
        if let l = Double(lambda), !(l >= 0 && l.isFinite) { throw ValidationError("--lambda must be a non-negative number or 'auto'") }
        if unrolledLr != nil && !secondOrder { throw ValidationError("--unrolled-lr needs --second-order") }
        if let xi = unrolledLr, !(xi >= 0 && xi.isFinite) { throw ValidationError("--unrolled-lr must be a non-negative number") }
        if !(initialMargin > 0 && initialMargin.isFinite) { throw ValidationError("--initial-margin must be a positive number") }
    }

    /// Under `mpirun -np N` the ranks search data parallel (see `SearchRunner`): every rank checks
    /// the inputs and they agree on the first failure; rank 0 alone checks, locks and writes the
    /// output and prints; threads per rank default to the machine's cores shared by its ranks.
    func run() throws {
        // Option values are parsed before MPI starts: every rank parses the same command line, and
        // an error there is printed once (by rank 0, see main).
        let candidates = try parseBits(bits)
        var startLogits: [Float]? = nil
        if let initialLogits {
            let values = initialLogits.split(separator: ",", omittingEmptySubsequences: false).map { Float($0.trimmingCharacters(in: .whitespaces)) }
            guard values.count == candidates.count, values.allSatisfy({ $0?.isFinite == true }) else {
                throw RunError("--initial-logits needs \(candidates.count) numbers, one per candidate of --bits \(bits), got '\(initialLogits)'")
            }
            startLogits = values.compactMap { $0 }
        }
        let target: SearchRequest.Target = targetBits.map { .averageBits($0) } ?? .megabytes(targetMb ?? 0, budget ?? .file)
        var c = SearchConfiguration(targetMiB: 0)  // the run sets the budget from `target`
        c.candidates = candidates
        c.groups = groups
        c.tolerance = tolerance
        c.epochs = epochs
        c.architectureStart = archStart ?? (freezeWeights ? 0 : 1)
        c.freezeWeights = freezeWeights
        c.lambda = Double(lambda)
        c.architectureOptimizer = archOptimizer
        c.architectureLearningRate = archLr
        c.weightLearningRate = learningRate
        c.batchSize = batchSize
        c.initialTemperature = temperature
        c.finalTemperature = finalTemperature
        c.hardSamples = hard
        c.unrolledStep = secondOrder ? (unrolledLr ?? learningRate) : nil
        c.tieBreak = tieBreak
        c.initialLogits = startLogits
        c.seed = seed
        c.distillation = distill.mode.map { DistillationSettings(mode: $0) }
        c.architectureDistillation = archDistill.mode.map { DistillationSettings(mode: $0) }
        c.weightRanges = ranges == .minmax ? nil : ranges
        var request = SearchRequest(model: common.model, task: common.task, threads: common.threads, train: train, output: output,
                                    target: target, configuration: c)
        if case .megabytes(_, .file) = target { request.embeddingCandidates = try parseBits(embeddingBits) }
        request.embeddingRows = embeddingRows
        request.validationFraction = valFraction
        request.maxSeqLength = maxSeqLength
        request.saveSteps = saveSteps
        request.bucketMb = bucketMb
        request.resume = resume
        request.initialPlan = initialPlan
        request.initialMargin = initialMargin
        request.downloadProgress = TextIO.downloadBar
        let group = try ProcessGroup.world()
        let leader = group.rank == 0
        let prepared = try SearchRun.prepare(request, group: group, warn: TextIO.warn)
        let runner = prepared.runner, hash = prepared.dataSHA256
        c = prepared.configuration
        let every = logEvery, json = self.json
        let plan = try runner.run(dataSHA256: hash, resume: resume) { e in
            guard leader, e.step % every == 0 else { return }
            if json, let d = try? JSONEncoder().encode(e) {
                print(String(decoding: d, as: UTF8.self))
            } else {
                print(String(format: "epoch %d step %d train loss %@ val loss %@ E[C] %.3f MiB argmax %.3f MiB t %.2f lambda %.3g",
                             e.epoch + 1, e.step, e.trainLoss.map { String(format: "%.4f", $0) } ?? "-",
                             e.validationLoss.map { String(format: "%.4f", $0) } ?? "-",
                             e.expectedMiB, e.argmaxMiB, e.temperature, e.lambda))
            }
            fflush(stdout)
        }
        guard leader else { return }
        if let repair = plan.provenance.notes["budget_repair"] {
            print("the argmax plan was outside the band: \(repair) (\(output)/budget_repair.json)")
        }
        if c.budget == .file {
            let bytes = try runner.fileBytes(of: plan)
            let cap = Int((c.targetMiB * 1_048_576).rounded())
            print(String(format: "plan: packed file %d bytes (cap %d, band %d ... %d): %@; encoder %.3f average bits (%.1f%% pruned), embeddings %.3f average bits -> %@/plan.json",
                         bytes, cap, Int((c.band.lowerBound * 1_048_576).rounded()), cap,
                         c.band.contains(Double(bytes) / 1_048_576) ? "inside the band" : "OUTSIDE the band",
                         plan.averageBits, 100 * plan.prunedFraction, plan.embeddingAverageBits, output))
        } else {
            let inBand = c.band.contains(plan.sizeMiB)
            print(String(format: "plan: %.3f MiB (%.3f average bits, %.1f%% pruned), target %.3f MiB +- %.0f%%: %@ -> %@/plan.json",
                         plan.sizeMiB, plan.averageBits, 100 * plan.prunedFraction, c.targetMiB, 100 * c.tolerance,
                         inBand ? "inside the band" : "OUTSIDE the band", output))
        }
    }
}
