import AQBert
import AQFiles
import AQQuant
import AQTasks
import Foundation

/// What one comparison runs (the command line of `aqbert compare`, resolved).
public struct ComparisonSettings: Sendable {
    /// The starting model: pre-trained (each seed fine-tunes it) or, with `fineTuned`, fine-tuned.
    public var model: URL
    public var task: TaskName
    public var train: URL
    public var dev: URL
    /// Average bits per encoder weight.
    public var budgets: [Double]
    public var seeds: [UInt64]
    public var methods: [ComparisonMethod]
    public var fineTuned: Bool
    /// Flags of the fine-tuning and of every QAT (epochs, rate, batch size, sequence length).
    public var training: [String] = []
    public var maxSeqLength: Int?
    public var batchSize: Int?
    /// The search's flags besides the budget and the seed (candidates, groups, band, epochs,
    /// optimiser, ranges, weights, distillation).
    public var search: [String] = []
    /// Q-BERT sensitivity's flags besides model, data and seed.
    public var sensitivity: [String] = []
    /// retrain's recipe flags, the same for every QAT.
    public var recipe: [String] = []
    public var groups: Int = 128
    /// The search's candidate widths (the top of the bit map's colour scale).
    public var candidates: [Int] = [0, 2, 4]
    public var tolerance: Double = 0.02
    /// Recorded in results.json and under the table.
    public var record: [String: String] = [:]

    public init(model: URL, task: TaskName, train: URL, dev: URL, budgets: [Double], seeds: [UInt64], methods: [ComparisonMethod],
                fineTuned: Bool) {
        self.model = model
        self.task = task
        self.train = train
        self.dev = dev
        self.budgets = budgets
        self.seeds = seeds
        self.methods = methods
        self.fineTuned = fineTuned
    }
}

/// One unit of a comparison's work: a step, or a few short steps that belong together (a plan
/// and the QAT on it), run in one process after the jobs it depends on.
public struct ComparisonJob {
    /// What it runs, e.g. "seed 1: AQ-BERT search at 2.5 bits".
    public let name: String
    /// The earlier jobs whose outputs it reads (indices into the job list).
    public let dependencies: [Int]
    let body: () throws -> Void
}

/// The comparison of METHOD.md section 6: per seed, fine-tune (unless the model is fine-tuned),
/// Q-BERT's sensitivity, then at each budget DirectQ and uniform QAT (whole-bit budgets),
/// Q-BERT-MP (mix 2/h), the AQ-BERT search and its QAT, and the random plan with the searched
/// plan's histograms; every QAT with the same recipe. Each step is a command of `steps`, skipped
/// when finished, so running it again resumes method by method. After every finished run it
/// publishes results.json, results.md, size_vs_metric.svg, bitmap.svg and groups.svg in `output`.
///
/// The steps are grouped into jobs with their dependencies (`jobs`), so that several processes
/// can share a comparison as a work queue (`runJobs`): every job writes only its own files under
/// `seed-S`, and one process then runs the whole pipeline, finding every step finished, and
/// publishes.
public struct ComparisonPipeline {
    public let settings: ComparisonSettings
    public let output: URL
    public let steps: ComparisonSteps
    /// Receives a line per finished run.
    public let progress: (String) -> Void
    /// Whether finished runs are published (results.json, results.md, pictures).
    public var publishes = true

    public init(settings: ComparisonSettings, output: URL, steps: ComparisonSteps, progress: @escaping (String) -> Void) {
        self.settings = settings
        self.output = output
        self.steps = steps
        self.progress = progress
    }

    /// "2.5" -> "2.5", "2.0" -> "2".
    public static func tag(_ b: Double) -> String { String(format: "%g", b) }

    /// Runs every step not finished yet, job by job in order; returns the results.
    @discardableResult
    public func run() throws -> ComparisonResults {
        let (jobs, results) = try plannedJobs()
        for job in jobs { try job.body() }
        return results()
    }

    /// The jobs in the order `run` runs them; each depends only on earlier ones.
    public func jobs() throws -> [ComparisonJob] { try plannedJobs().jobs }

    /// Runs the jobs as `schedule` deals them: it is given each job's dependencies and calls
    /// `run(j)` for the jobs this process runs, each after its dependencies have finished
    /// (in this process or another). Publishes nothing.
    public func runJobs(schedule: (_ dependencies: [[Int]], _ run: @escaping (Int) throws -> Void) throws -> Void) throws {
        var quiet = self
        quiet.publishes = false
        let jobs = try quiet.jobs()
        try schedule(jobs.map(\.dependencies)) { try jobs[$0].body() }
    }

    private func plannedJobs() throws -> (jobs: [ComparisonJob], results: () -> ComparisonResults) {
        let s = settings, out = output, metricName = s.task.primaryMetric
        try makeDirectories(out.path)
        // Matrix shapes for the fp32 size: from the model's config.
        let weights = QuantizableMatrices.weightCount(try BertConfig(contentsOf: s.model))
        let data = ["--task", s.task.rawValue, "--train", s.train.path, "--dev", s.dev.path]
        let seqFlags = s.maxSeqLength.map { ["--max-seq-length", String($0)] } ?? []
        let steps = self.steps, publishes = self.publishes, progress = self.progress
        var runs: [ComparisonRun] = []

        func results() -> ComparisonResults {
            var r = ComparisonResults(task: s.task.rawValue, metric: metricName, budgets: s.budgets, seeds: s.seeds,
                                      settings: s.record, runs: runs)
            r.tolerance = s.tolerance
            return r
        }
        func publish() throws {
            guard publishes else { return }
            try results().writeFiles(in: out)
            let first = s.seeds[0]
            let plans = try s.budgets.sorted().compactMap { b -> (String, BitPlan)? in
                let url = out.appendingPathComponent("seed-\(first)/search-\(Self.tag(b))/plan.json")
                guard FileManager.default.fileExists(atPath: url.path) else { return nil }
                let p = try BitPlan(contentsOf: url)
                return (String(format: "target %g bits: %.3f bits, %.1f%% pruned", b, p.averageBits, 100 * p.prunedFraction), p)
            }
            if !plans.isEmpty {
                try writeAtomically(Data(BitMapPicture.svg(plans, maxBits: s.candidates.max() ?? 8).utf8), to: out.appendingPathComponent("bitmap.svg"))
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
            progress(String(format: "[compare] seed %llu %@%@: %@ %.2f", seed, method.title, budget.map { String(format: " at %g bits", $0) } ?? "",
                            metricName, metric))
        }

        var jobs: [ComparisonJob] = []
        func add(_ name: String, after dependencies: [Int], _ body: @escaping () throws -> Void) -> Int {
            jobs.append(ComparisonJob(name: name, dependencies: dependencies, body: body))
            return jobs.count - 1
        }
        for seed in s.seeds {
            let seedDir = out.appendingPathComponent("seed-\(seed)")
            let plansDir = seedDir.appendingPathComponent("plans")
            let common = ["--seed", String(seed)]
            // fp32: the seed's first job, which every other job of the seed reads.
            let fp32 = s.fineTuned ? s.model : seedDir.appendingPathComponent("fp32")
            let start = add("seed \(seed): fp32", after: []) {
                try FileManager.default.createDirectory(at: plansDir, withIntermediateDirectories: true)
                if s.fineTuned {
                    if s.methods.contains(.fp32), seed == s.seeds[0] {
                        let result = seedDir.appendingPathComponent("fp32-eval.json")
                        let value = try steps.evaluate(["evaluate", "--model", fp32.path, "--task", s.task.rawValue, "--data", s.dev.path],
                                                       metric: metricName, cache: result)
                        try record(.fp32, budget: nil, seed: seed, plan: nil, metric: value, directory: result)
                    }
                } else {
                    try steps.training(["finetune", "--model", s.model.path] + data + s.training + common, directory: fp32,
                                       title: "seed \(seed): fine-tune")
                    if s.methods.contains(.fp32) {
                        try record(.fp32, budget: nil, seed: seed, plan: nil, metric: try steps.bestMetric(fp32, metricName), directory: fp32)
                    }
                }
            }
            func qat(_ method: ComparisonMethod, budget: Double, plan planURL: URL) throws {
                let dir = seedDir.appendingPathComponent("\(method.rawValue)-\(Self.tag(budget))")
                try steps.training(["retrain", "--model", fp32.path, "--plan", planURL.path] + data + s.training + s.recipe + common,
                                   directory: dir, title: "seed \(seed): \(method.title) at \(Self.tag(budget)) bits")
                try record(method, budget: budget, seed: seed, plan: try BitPlan(contentsOf: planURL),
                           metric: try steps.bestMetric(dir, metricName), directory: dir)
            }
            // Q-BERT sensitivity, once per seed, if some budget has a Q-BERT-MP mix.
            let sensitivity = seedDir.appendingPathComponent("sensitivity.json")
            var sensitivityJob = start
            if s.methods.contains(.qbert), s.budgets.contains(where: { ComparisonMethod.qbert.setting(forBudget: $0) != nil }) {
                sensitivityJob = add("seed \(seed): Q-BERT sensitivity", after: [start]) {
                    try steps.sensitivity(["sensitivity", "--model", fp32.path, "--task", s.task.rawValue, "--train", s.train.path]
                                          + s.sensitivity + seqFlags + common,
                                          file: sensitivity, title: "seed \(seed): Q-BERT sensitivity")
                }
            }
            for b in s.budgets.sorted(by: >) {
                let tag = Self.tag(b)
                if ComparisonMethod.uniform.setting(forBudget: b) != nil, s.methods.contains(.uniform) || s.methods.contains(.directQ) {
                    let plan = plansDir.appendingPathComponent("uniform-\(tag).json")
                    let planned = add("seed \(seed): uniform plan and DirectQ at \(tag) bits", after: [start]) {
                        try steps.plan(["plan", "uniform", "--model", fp32.path, "--bits", String(Int(b)), "--groups", String(s.groups)], file: plan)
                        if s.methods.contains(.directQ) {
                            let result = seedDir.appendingPathComponent("directq-\(tag).json")
                            let value = try steps.evaluate(["evaluate", "--model", fp32.path, "--task", s.task.rawValue, "--data", s.dev.path,
                                                            "--plan", plan.path, "--calibration", s.train.path] + seqFlags,
                                                           metric: metricName, cache: result)
                            try record(.directQ, budget: b, seed: seed, plan: try BitPlan(contentsOf: plan), metric: value, directory: result)
                        }
                    }
                    if s.methods.contains(.uniform) {
                        _ = add("seed \(seed): uniform QAT at \(tag) bits", after: [planned]) { try qat(.uniform, budget: b, plan: plan) }
                    }
                }
                if let mix = ComparisonMethod.qbert.setting(forBudget: b), s.methods.contains(.qbert) {
                    _ = add("seed \(seed): Q-BERT-MP at \(tag) bits", after: [sensitivityJob]) {
                        let plan = plansDir.appendingPathComponent("qbert-\(tag).json")
                        try steps.plan(["plan", "qbert", "--sensitivity", sensitivity.path, "--mix", mix, "--model", fp32.path,
                                        "--groups", String(s.groups)], file: plan)
                        try qat(.qbert, budget: b, plan: plan)
                    }
                }
                if s.methods.contains(.aqBERT) || s.methods.contains(.random) {
                    let search = seedDir.appendingPathComponent("search-\(tag)")
                    let searched = search.appendingPathComponent("plan.json")
                    let searchJob = add("seed \(seed): AQ-BERT search at \(tag) bits", after: [start]) {
                        var searchArgs = ["search", "--model", fp32.path, "--task", s.task.rawValue, "--train", s.train.path,
                                          "--target-bits", String(b)] + s.search
                        if let batchSize = s.batchSize { searchArgs += ["--batch-size", String(batchSize)] }
                        searchArgs += seqFlags
                        try steps.training(searchArgs + common, directory: search, title: "seed \(seed): AQ-BERT search at \(tag) bits")
                    }
                    if s.methods.contains(.aqBERT) {
                        _ = add("seed \(seed): AQ-BERT QAT at \(tag) bits", after: [searchJob]) { try qat(.aqBERT, budget: b, plan: searched) }
                    }
                    if s.methods.contains(.random) {
                        _ = add("seed \(seed): random plan QAT at \(tag) bits", after: [searchJob]) {
                            let plan = plansDir.appendingPathComponent("random-\(tag).json")
                            try steps.plan(["plan", "random", "--like", searched.path, "--seed", String(seed)], file: plan)
                            try qat(.random, budget: b, plan: plan)
                        }
                    }
                }
            }
        }
        return (jobs, results)
    }
}
