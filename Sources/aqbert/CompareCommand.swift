import AQBert
import AQParallel
import AQSearch
import AQExperiments
import AQTasks
import AQRuns
import ArgumentParser
import Foundation

extension ComparisonMethod: ExpressibleByArgument {}

struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Rebuild the paper's comparison on your model and task: fp32, DirectQ, uniform QAT, Q-BERT-MP, the random-plan control and AQ-BERT at each budget.",
        discussion: """
            Per seed: fine-tune (unless --fine-tuned), Q-BERT sensitivity, then at each budget: \
            DirectQ and uniform QAT (whole-bit budgets), Q-BERT-MP (mix 2/h, h = 2 * budget - 2), \
            the AQ-BERT search and its QAT, and the random plan with the searched plan's \
            per-matrix histograms. Every QAT uses the same epochs and hyper-parameters. Each step \
            runs this aqbert as a subprocess (its command is appended to OUTPUT/commands.sh), and is \
            skipped when already finished, so running the same command again resumes method by \
            method. After every step: OUTPUT/results.json, results.md (the paper's Table 1 layout \
            plus AQ-BERT's margins), size_vs_metric.svg, bitmap.svg (the AQ-BERT plans of the \
            first seed, per matrix) and groups.svg (every group of the smallest budget's plan). \
            Under mpirun -np N the steps are a work queue over the ranks (each started once the \
            steps it reads have finished), OUTPUT on a file system every rank sees; rank 0 publishes.
            """
    )
    @Option(help: "A Hugging Face BERT directory (pre-trained, or fine-tuned with --fine-tuned).") var model: String
    @Option(help: "Task: \(TaskName.allCases.map(\.rawValue).joined(separator: ", ")).") var task: TaskName
    @Option(help: "Training data (also the search's validation split and the calibration data).") var train: String
    @Option(help: "Evaluation data.") var dev: String
    @Option(help: "Budgets in average bits per encoder weight, comma-separated.") var budgets: String = "2.0,2.5,3.0"
    @Option(help: "Seeds per method (seed, seed + 1, ...).") var seeds: Int = 1
    @Option(help: "First seed.") var seed: UInt64 = 42
    @Option(help: "Methods to run, comma-separated (default all): \(ComparisonMethod.allCases.map(\.rawValue).joined(separator: ","))")
    var methods: String = ComparisonMethod.allCases.map(\.rawValue).joined(separator: ",")
    @Flag(help: "--model is already fine-tuned on the task: no fine-tuning, the same fp32 model for every seed.") var fineTuned = false
    @Option(help: "Epochs of fine-tuning and of every QAT (default: the task's).") var epochs: Int?
    @Option(name: .customLong("lr"), help: "Learning rate of fine-tuning and QAT (default: the task's).") var learningRate: Float?
    @Option(help: "Examples per update (default: the task's).") var batchSize: Int?
    @Option(help: "Longest input in tokens (default: the task's).") var maxSeqLength: Int?
    @Option(help: "AQ-BERT search epochs.") var searchEpochs: Int = 3
    @Option(help: "AQ-BERT candidate bit-widths.") var bits: String = "0,2,4"
    @Option(help: "Row groups per matrix (every method).") var groups: Int = 128
    @Option(help: "eps of the search's size band (1 +- eps) (search --tolerance).") var tolerance: Double = 0.02
    @Option(help: "Architecture optimiser of the search: \(ArchitectureOptimizer.allCases.map(\.rawValue).joined(separator: ", ")).")
    var archOptimizer: String = "adam"
    @Option(help: "Its learning rate.") var archLr: Float = 0.01
    /// The AQ-BERT search's weights (search --freeze-weights, the default, or --train-weights).
    @Flag var searchWeights: SearchWeights = .freezeWeights
    var freezeWeights: Bool { searchWeights == .freezeWeights }
    @Option(help: "AQ-BERT search: distil in the weight steps (search --distill, with --train-weights): none, logits, layers or all.")
    var searchDistill: DistillChoice = .none
    @Option(help: "AQ-BERT search: the architecture steps' loss (search --arch-distill): none (the cross-entropy) or distillation from the fp32 model (logits, layers or all).")
    var searchArchDistill: DistillChoice = .none
    @Option(help: "AQ-BERT search: the candidates' ranges in the super-network (search --ranges): mse (the default) or minmax.")
    var searchRanges: SearchRanges = .mse
    @Option(help: "Q-BERT sensitivity: random subsets.") var sensitivitySubsets: Int = 10
    @Option(help: "Q-BERT sensitivity: share of the training rows per subset.") var sensitivityFraction: Double = 0.1
    @Option(help: "Q-BERT sensitivity: at most this many rows per subset (0: no cap). Each Hessian-vector product is two gradient passes over the subset (MiniLM, SST-2: ~22 ms of CPU per row).")
    var sensitivityMaxRows: Int = 256
    @Option(help: "Q-BERT sensitivity: most Hessian-vector products per eigenvalue.") var sensitivityIterations: Int = 30
    @OptionGroup(title: "The QAT recipe of every method") var recipe: QATRecipeOptions
    @Option(help: "Worker threads of every step (default: all cores).") var threads: Int?
    @Option(help: "Output directory.") var output: String

    func validate() throws {
        if freezeWeights && searchDistill != .none {
            throw ValidationError("--search-distill acts on the search's weight steps, and frozen weights (the default) have none: add --train-weights")
        }
        if !(tolerance > 0 && tolerance < 1) { throw ValidationError("--tolerance must be above 0 and below 1 (0.02 is a band of +-2%)") }
        if seeds < 1 { throw ValidationError("--seeds must be at least 1") }
        if parsedBudgets == nil { throw ValidationError("--budgets must be positive numbers separated by commas, e.g. 2.0,2.5,3.0") }
        if parsedMethods == nil {
            throw ValidationError("--methods takes names from \(ComparisonMethod.allCases.map(\.rawValue).joined(separator: ", ")), comma-separated")
        }
        if ArchitectureOptimizer(rawValue: archOptimizer) == nil {
            throw ValidationError("--arch-optimizer must be one of \(ArchitectureOptimizer.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    var parsedBudgets: [Double]? {
        let values = budgets.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ $0 != nil && $0! > 0 && $0! <= 8 }) else { return nil }
        return values.map { $0! }
    }

    var parsedMethods: [ComparisonMethod]? {
        let values = methods.split(separator: ",").map { ComparisonMethod(rawValue: $0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ $0 != nil }) else { return nil }
        return ComparisonMethod.allCases.filter { m in values.contains { $0 == m } }
    }

    /// Under `mpirun -np N` the ranks share the comparison's jobs as a work queue (fine-tunings,
    /// searches, QATs, each a one-process aqbert started once the jobs it reads have finished),
    /// then rank 0 runs the whole comparison, finding every step finished, and publishes the
    /// results; every rank checks the inputs and they agree on the first failure.
    func run() throws {
        let group = try ProcessGroup.world()
        let (s, out) = try group.agree { () throws -> (ComparisonSettings, URL) in
            let budgetList = parsedBudgets!, methodList = parsedMethods!
            let (modelDir, trainURL, devURL, out) = try CompareRun.inputs(model: model, train: train, dev: dev, output: output,
                                                                         downloadProgress: TextIO.downloadBar)
            var s = ComparisonSettings(model: modelDir, task: task, train: trainURL, dev: devURL, budgets: budgetList,
                                       seeds: (0..<seeds).map { seed + UInt64($0) }, methods: methodList, fineTuned: fineTuned)
            s.record = [
                "model": modelDir.path, "train": trainURL.path, "dev": devURL.path, "groups": String(groups),
                "search_candidates": bits, "search_epochs": String(searchEpochs), "arch_optimizer": archOptimizer,
                "arch_lr": String(archLr), "fine_tuned_input": String(fineTuned),
                "search_weights": freezeWeights ? "frozen" : "trained", "search_distill": searchDistill.rawValue,
                "search_ranges": searchRanges.rawValue, "search_arch_distill": searchArchDistill.rawValue,
                "sensitivity": "\(sensitivitySubsets) subsets of \(sensitivityFraction) (at most \(sensitivityMaxRows > 0 ? String(sensitivityMaxRows) : "all") rows), <= \(sensitivityIterations) products",
            ]
            s.record.merge(recipe.settings) { $1 }
            if let epochs { s.training += ["--epochs", String(epochs)]; s.record["epochs"] = String(epochs) }
            if let learningRate { s.training += ["--lr", String(learningRate)]; s.record["lr"] = String(learningRate) }
            if let batchSize { s.training += ["--batch-size", String(batchSize)]; s.record["batch_size"] = String(batchSize) }
            if let maxSeqLength { s.training += ["--max-seq-length", String(maxSeqLength)]; s.record["max_seq_length"] = String(maxSeqLength) }
            s.maxSeqLength = maxSeqLength
            s.batchSize = batchSize
            s.search = ["--bits", bits, "--groups", String(groups), "--tolerance", String(tolerance), "--epochs", String(searchEpochs),
                        "--arch-optimizer", archOptimizer, "--arch-lr", String(archLr), "--ranges", searchRanges.rawValue,
                        freezeWeights ? "--freeze-weights" : "--train-weights"]
                + (searchDistill != .none ? ["--distill", searchDistill.rawValue] : [])
                + (searchArchDistill != .none ? ["--arch-distill", searchArchDistill.rawValue] : [])
            s.sensitivity = ["--subsets", String(sensitivitySubsets), "--fraction", String(sensitivityFraction),
                             "--max-iterations", String(sensitivityIterations)]
                + (sensitivityMaxRows > 0 ? ["--max-rows", String(sensitivityMaxRows)] : [])
            s.recipe = recipe.flags
            s.groups = groups
            s.candidates = (try? parseBits(bits)) ?? [8]
            s.tolerance = tolerance
            return (s, out)
        }
        let label = group.size > 1 ? "[rank \(group.rank)] " : ""
        let print: (String) -> Void = { line in
            Swift.print(label + line)
            fflush(stdout)
        }
        let stepThreads = threads ?? (group.size > 1 ? group.defaultThreads(cores: Runtime.threads) : nil)
        guard try CompareRun.run(settings: s, output: out, executable: StepRunner.executable, environment: StepRunner.childEnvironment,
                                 threads: stepThreads, group: group, progress: print) else { return }
        print("[compare] done: \(out.path)/results.md, results.json, size_vs_metric.svg, bitmap.svg, groups.svg")
    }
}

/// How compare starts its steps: this executable, with the parent's pid in the environment
/// (see main: a step ends when its compare does).
enum StepRunner {
    /// The environment variable that tells a child process its parent's pid.
    static let parentVariable = "AQBERT_PARENT_PID"

    /// This process's environment plus the parent variable, for a child; without the MPI
    /// launcher's variables, so that a step of a compare under mpirun runs as one process.
    static var childEnvironment: [String: String] {
        ProcessInfo.processInfo.environment.filter { key, _ in !["OMPI_", "PMIX_", "OPAL_", "PRTE_"].contains { key.hasPrefix($0) } }
            .merging([parentVariable: String(getpid())]) { $1 }
    }

    static var executable: URL {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path == "/proc/self/exe"
            ? URL(fileURLWithPath: CommandLine.arguments[0]) : URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    }
}
