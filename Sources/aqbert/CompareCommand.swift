import AQBert
import AQQuant
import AQSearch
import AQTasks
import ArgumentParser
import AQFiles
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
            first seed, per matrix) and groups.svg (every group of the smallest budget's plan).
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

    func run() throws {
        let budgetList = parsedBudgets!, methodList = parsedMethods!
        let trainURL = try TextIO.existingFile(train, option: "--train"), devURL = try TextIO.existingFile(dev, option: "--dev")
        let modelDir = try TextIO.modelDirectory(model)
        try TextIO.checkOutput(output, inputs: [("--model", modelDir.path), ("--train", train), ("--dev", dev)])
        let out = URL(fileURLWithPath: output)
        do { try makeDirectories(out.path) } catch { throw CLIError("--output: \(error)") }
        let runner = StepRunner(output: out, threads: threads)
        let metricName = task == .conll2003 || task == .squad ? "f1" : "accuracy"
        // Matrix shapes for the fp32 size: from the model's config.
        let shapes = try BertConfig(contentsOf: modelDir)
        let weights = QuantizableMatrices.weightCount(shapes)
        let seedList = (0..<seeds).map { seed + UInt64($0) }
        var settings: [String: String] = [
            "model": modelDir.path, "train": trainURL.path, "dev": devURL.path, "groups": String(groups),
            "search_candidates": bits, "search_epochs": String(searchEpochs), "arch_optimizer": archOptimizer,
            "arch_lr": String(archLr), "fine_tuned_input": String(fineTuned),
            "search_weights": freezeWeights ? "frozen" : "trained", "search_distill": searchDistill.rawValue,
            "search_ranges": searchRanges.rawValue,
            "sensitivity": "\(sensitivitySubsets) subsets of \(sensitivityFraction) (at most \(sensitivityMaxRows > 0 ? String(sensitivityMaxRows) : "all") rows), <= \(sensitivityIterations) products",
        ]
        settings.merge(recipe.settings) { $1 }
        var training: [String] = []
        if let epochs { training += ["--epochs", String(epochs)]; settings["epochs"] = String(epochs) }
        if let learningRate { training += ["--lr", String(learningRate)]; settings["lr"] = String(learningRate) }
        if let batchSize { training += ["--batch-size", String(batchSize)]; settings["batch_size"] = String(batchSize) }
        if let maxSeqLength { training += ["--max-seq-length", String(maxSeqLength)]; settings["max_seq_length"] = String(maxSeqLength) }
        let data = ["--task", task.rawValue, "--train", trainURL.path, "--dev", devURL.path]

        var runs: [ComparisonRun] = []
        func publish() throws {
            var results = ComparisonResults(task: task.rawValue, metric: metricName, budgets: budgetList, seeds: seedList,
                                            settings: settings, runs: runs)
            results.tolerance = tolerance
            let e = JSONEncoder()
            e.outputFormatting = [.prettyPrinted, .sortedKeys]
            try writeAtomically(try e.encode(results), to: out.appendingPathComponent("results.json"))
            try writeAtomically(Data(results.markdown().utf8), to: out.appendingPathComponent("results.md"))
            try writeAtomically(Data(results.sizeSVG().utf8), to: out.appendingPathComponent("size_vs_metric.svg"))
            let first = seedList[0]
            let plans = try budgetList.sorted().compactMap { b -> (String, BitPlan)? in
                let url = out.appendingPathComponent("seed-\(first)/search-\(Self.tag(b))/plan.json")
                guard FileManager.default.fileExists(atPath: url.path) else { return nil }
                let p = try BitPlan(contentsOf: url)
                return (String(format: "target %g bits: %.3f bits, %.1f%% pruned", b, p.averageBits, 100 * p.prunedFraction), p)
            }
            if !plans.isEmpty {
                let top = (try? parseBits(bits))?.max() ?? 8
                try writeAtomically(Data(BitMapPicture.svg(plans, maxBits: top).utf8), to: out.appendingPathComponent("bitmap.svg"))
                try writeAtomically(Data(BitMapPicture.groupsSVG(plans[0].1, title: "AQ-BERT, seed \(first), " + plans[0].0).utf8),
                                    to: out.appendingPathComponent("groups.svg"))
            }
        }
        func record(_ method: ComparisonMethod, budget: Double?, seed: UInt64, plan: BitPlan?, metric: Double, directory: URL) throws {
            let fp32MiB = BitPlan.budgetMiB(averageBits: 32, weights: weights)
            runs.append(ComparisonRun(method: method, budgetBits: budget, seed: seed, averageBits: plan?.averageBits ?? 32,
                                      sizeMiB: plan?.sizeMiB ?? fp32MiB, prunedFraction: plan?.prunedFraction ?? 0, metric: metric,
                                      directory: String(directory.path.dropFirst(out.path.count + 1))))
            try publish()
            print(String(format: "[compare] seed %llu %@%@: %@ %.2f", seed, method.title, budget.map { String(format: " at %g bits", $0) } ?? "",
                         metricName, metric))
            fflush(stdout)
        }

        for s in seedList {
            let seedDir = out.appendingPathComponent("seed-\(s)")
            let plansDir = seedDir.appendingPathComponent("plans")
            try FileManager.default.createDirectory(at: plansDir, withIntermediateDirectories: true)
            let common = ["--seed", String(s)]
            // fp32.
            let fp32: URL
            if fineTuned {
                fp32 = modelDir
                if methodList.contains(.fp32), s == seedList[0] {
                    let result = seedDir.appendingPathComponent("fp32-eval.json")
                    let value = try runner.evaluate(["evaluate", "--model", fp32.path, "--task", task.rawValue, "--data", devURL.path],
                                                    metric: metricName, cache: result)
                    try record(.fp32, budget: nil, seed: s, plan: nil, metric: value, directory: result)
                }
            } else {
                fp32 = seedDir.appendingPathComponent("fp32")
                try runner.trainingStep(["finetune", "--model", modelDir.path] + data + training + common, directory: fp32,
                                        title: "seed \(s): fine-tune")
                if methodList.contains(.fp32) {
                    try record(.fp32, budget: nil, seed: s, plan: nil, metric: try runner.bestMetric(fp32, metricName), directory: fp32)
                }
            }
            func qat(_ method: ComparisonMethod, budget: Double, plan planURL: URL) throws {
                let dir = seedDir.appendingPathComponent("\(method.rawValue)-\(Self.tag(budget))")
                try runner.trainingStep(["retrain", "--model", fp32.path, "--plan", planURL.path] + data + training + recipe.flags + common,
                                        directory: dir, title: "seed \(s): \(method.title) at \(Self.tag(budget)) bits")
                try record(method, budget: budget, seed: s, plan: try BitPlan(contentsOf: planURL),
                           metric: try runner.bestMetric(dir, metricName), directory: dir)
            }
            // Q-BERT sensitivity, once per seed, if some budget has a Q-BERT-MP mix.
            let sensitivity = seedDir.appendingPathComponent("sensitivity.json")
            if methodList.contains(.qbert), budgetList.contains(where: { ComparisonMethod.qbert.setting(forBudget: $0) != nil }) {
                try runner.sensitivityStep(["sensitivity", "--model", fp32.path, "--task", task.rawValue, "--train", trainURL.path,
                                            "--subsets", String(sensitivitySubsets), "--fraction", String(sensitivityFraction),
                                            "--max-iterations", String(sensitivityIterations)]
                                           + (sensitivityMaxRows > 0 ? ["--max-rows", String(sensitivityMaxRows)] : [])
                                           + (maxSeqLength.map { ["--max-seq-length", String($0)] } ?? []) + common,
                                           file: sensitivity, title: "seed \(s): Q-BERT sensitivity")
            }
            for b in budgetList.sorted(by: >) {
                let tag = Self.tag(b)
                if let setting = ComparisonMethod.uniform.setting(forBudget: b), methodList.contains(.uniform) || methodList.contains(.directQ) {
                    let plan = plansDir.appendingPathComponent("uniform-\(tag).json")
                    try runner.planStep(["plan", "uniform", "--model", fp32.path, "--bits", String(Int(b)), "--groups", String(groups)],
                                        file: plan, title: "uniform \(setting) plan")
                    if methodList.contains(.directQ) {
                        let result = seedDir.appendingPathComponent("directq-\(tag).json")
                        let value = try runner.evaluate(["evaluate", "--model", fp32.path, "--task", task.rawValue, "--data", devURL.path,
                                                         "--plan", plan.path, "--calibration", trainURL.path]
                                                        + (maxSeqLength.map { ["--max-seq-length", String($0)] } ?? []),
                                                        metric: metricName, cache: result)
                        try record(.directQ, budget: b, seed: s, plan: try BitPlan(contentsOf: plan), metric: value, directory: result)
                    }
                    if methodList.contains(.uniform) { try qat(.uniform, budget: b, plan: plan) }
                }
                if let mix = ComparisonMethod.qbert.setting(forBudget: b), methodList.contains(.qbert) {
                    let plan = plansDir.appendingPathComponent("qbert-\(tag).json")
                    try runner.planStep(["plan", "qbert", "--sensitivity", sensitivity.path, "--mix", mix, "--model", fp32.path,
                                         "--groups", String(groups)], file: plan, title: "Q-BERT-MP \(mix) plan")
                    try qat(.qbert, budget: b, plan: plan)
                }
                if methodList.contains(.aqBERT) || methodList.contains(.random) {
                    let search = seedDir.appendingPathComponent("search-\(tag)")
                    var searchArgs = ["search", "--model", fp32.path, "--task", task.rawValue, "--train", trainURL.path,
                                      "--target-bits", String(b), "--bits", bits, "--groups", String(groups), "--tolerance", String(tolerance),
                                      "--epochs", String(searchEpochs), "--arch-optimizer", archOptimizer, "--arch-lr", String(archLr),
                                      "--ranges", searchRanges.rawValue]
                    searchArgs.append(freezeWeights ? "--freeze-weights" : "--train-weights")
                    if searchDistill != .none { searchArgs += ["--distill", searchDistill.rawValue] }
                    if let batchSize { searchArgs += ["--batch-size", String(batchSize)] }
                    if let maxSeqLength { searchArgs += ["--max-seq-length", String(maxSeqLength)] }
                    try runner.trainingStep(searchArgs + common, directory: search, title: "seed \(s): AQ-BERT search at \(tag) bits")
                    let searched = search.appendingPathComponent("plan.json")
                    if methodList.contains(.aqBERT) { try qat(.aqBERT, budget: b, plan: searched) }
                    if methodList.contains(.random) {
                        let plan = plansDir.appendingPathComponent("random-\(tag).json")
                        try runner.planStep(["plan", "random", "--like", searched.path, "--seed", String(s)], file: plan,
                                            title: "random control plan")
                        try qat(.random, budget: b, plan: plan)
                    }
                }
            }
        }
        print("[compare] done: \(out.path)/results.md, results.json, size_vs_metric.svg, bitmap.svg, groups.svg")
    }

    /// "2.5" -> "2.5", "2.0" -> "2".
    static func tag(_ b: Double) -> String { String(format: "%g", b) }
}

/// Runs this aqbert's subcommands as child processes, each step skipped when it has finished
/// before and resumed when a checkpoint of it exists.
struct StepRunner {
    let output: URL
    let threads: Int?

    static let doneMarker = ".compare-done"
    /// The environment variable that tells a child process its parent's pid (see main).
    static let parentVariable = "AQBERT_PARENT_PID"

    /// This process's environment plus the parent variable, for a child.
    static var childEnvironment: [String: String] {
        ProcessInfo.processInfo.environment.merging([parentVariable: String(getpid())]) { $1 }
    }

    var executable: URL {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path == "/proc/self/exe"
            ? URL(fileURLWithPath: CommandLine.arguments[0]) : URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    }

    /// Runs `arguments` (+ --threads when `threaded`); returns standard output when `capture`.
    @discardableResult
    func run(_ arguments: [String], capture: Bool = false, threaded: Bool = true) throws -> String {
        let args = arguments + (threaded ? threads.map { ["--threads", String($0)] } ?? [] : [])
        let line = ([executable.path] + args).map(Self.shellQuoted).joined(separator: " ")
        let log = output.appendingPathComponent("commands.sh")
        if !FileManager.default.fileExists(atPath: log.path) { try Data("#!/usr/bin/env bash\n".utf8).write(to: log) }
        if let h = try? FileHandle(forWritingTo: log) { h.seekToEndOfFile(); h.write(Data((line + "\n").utf8)); try? h.close() }
        let p = Process()
        p.executableURL = executable
        p.arguments = args
        p.environment = Self.childEnvironment
        let pipe = Pipe()
        if capture { p.standardOutput = pipe }
        try p.run()
        let data = capture ? pipe.fileHandleForReading.readDataToEndOfFile() : Data()
        p.waitUntilExit()
        guard p.terminationReason == .exit, p.terminationStatus == 0 else {
            throw CLIError("step failed (\(p.terminationReason == .exit ? "exit \(p.terminationStatus)" : "killed by a signal")): \(line)")
        }
        return String(decoding: data, as: UTF8.self)
    }

    static func shellQuoted(_ s: String) -> String {
        s.allSatisfy({ $0.isLetter || $0.isNumber || "-_./=,:@".contains($0) }) ? s : "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// finetune / retrain / search into `directory` (given as --output), with --resume when a
    /// checkpoint of an unfinished run is there.
    func trainingStep(_ arguments: [String], directory: URL, title: String) throws {
        let fm = FileManager.default
        if fm.fileExists(atPath: directory.appendingPathComponent(Self.doneMarker).path) { return }
        var args = arguments + ["--output", directory.path]
        if fm.fileExists(atPath: directory.appendingPathComponent("last-checkpoint.json").path) {
            args.append("--resume")
        } else if fm.fileExists(atPath: directory.path) {
            // Killed before its first checkpoint; unless a run still holds the folder.
            if let holder = OutputLock.holder(ofDirectory: directory.path) {
                throw CLIError("\(directory.path): \(holder); wait for it to end")
            }
            try fm.removeItem(at: directory)
        }
        print("[compare] \(title)")
        fflush(stdout)
        try run(args)
        try Data().write(to: directory.appendingPathComponent(Self.doneMarker))
    }

    func sensitivityStep(_ arguments: [String], file: URL, title: String) throws {
        if let r = try? SensitivityReport.read(file), r.complete { return }
        print("[compare] \(title)")
        fflush(stdout)
        try run(arguments + ["--output", file.path] + (FileManager.default.fileExists(atPath: file.path) ? ["--resume"] : []))
    }

    func planStep(_ arguments: [String], file: URL, title: String) throws {
        if FileManager.default.fileExists(atPath: file.path) { return }
        try run(arguments + ["--output", file.path], threaded: false)
    }

    /// `evaluate --json` once; the result is kept in `cache`.
    func evaluate(_ arguments: [String], metric: String, cache: URL) throws -> Double {
        if let data = try? Data(contentsOf: cache), let value = Self.metric(in: data, metric) { return value }
        let text = try run(arguments + ["--json"], capture: true)
        guard let line = text.split(separator: "\n").last, let value = Self.metric(in: Data(line.utf8), metric) else {
            throw CLIError("evaluate printed no \(metric): \(text.prefix(200))")
        }
        try writeAtomically(Data(line.utf8), to: cache)
        return value
    }

    static func metric(in data: Data, _ name: String) -> Double? {
        ((try? JSONSerialization.jsonObject(with: data)) as? [String: Any]).flatMap { ($0["metrics"] as? [String: Any])?[name] as? Double }
    }

    /// The best epoch's metric of a finetune / retrain output.
    func bestMetric(_ directory: URL, _ name: String) throws -> Double {
        let url = directory.appendingPathComponent("eval_results.json")
        guard let data = try? Data(contentsOf: url), let value = Self.metric(in: data, name) else {
            throw CLIError("\(url.path) has no \(name)")
        }
        return value
    }
}
