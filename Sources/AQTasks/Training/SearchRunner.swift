import AQBert
import AQParallel
import AQQuant
import AQSearch
import Foundation

/// Runs the AQ-BERT search on a task's training data: D_val is carved out of the training
/// examples (METHOD.md section 5: `valFraction`, seeded; the official dev set is never used),
/// the super-network is installed on the fine-tuned model, and Algorithm 1 runs. Writes
/// `plan.json`, `search_log.jsonl` and `search_config.json` into `output`, and
/// `budget_repair.json` (every move) when the argmax plan had to be moved into the band.
///
/// Data parallel over a `ProcessGroup` as `Trainer` is: every step's training and validation
/// batches are split over the processes (`BatchPart`), the weights' and the logits' gradients
/// summed, the size penalty added once in total, the activation ranges kept on the whole batch;
/// every process holds the same weights and logits, so the argmax, lambda and the plan agree.
/// Only rank 0 writes files.
public struct SearchRunner {
    public let model: BertTaskModel
    public let pipeline: TaskPipeline
    public let configuration: SearchConfiguration
    public let validationPercent: Int
    public let padId: Int
    public let output: URL
    /// Checkpoint every this many steps (and at each epoch end).
    public var saveSteps = 200
    /// The fp32 teacher of `configuration.distillation` and `architectureDistillation` (required
    /// when either is set).
    public var teacher: BertTaskModel?
    /// The model and data files the search starts from; recorded in every checkpoint and
    /// compared on `--resume`.
    public var fingerprint: RunFingerprint?
    /// The processes searching together (see the type); `.single` for one process.
    public var group: ProcessGroup = .single
    /// With several processes: floats of gradient per all-reduce (`OverlappedGradientSum`).
    public var bucketFloats = 25 * 1_048_576 / 4

    public init(model: BertTaskModel, pipeline: TaskPipeline, configuration: SearchConfiguration, validationPercent: Int,
                padId: Int, output: URL) {
        self.model = model
        self.pipeline = pipeline
        self.configuration = configuration
        self.validationPercent = validationPercent
        self.padId = padId
        self.output = output
    }

    /// Budget checks that need the model: positive, reachable with the candidate set, and a band
    /// no single group's step can jump over.
    public static func checkBudget(_ c: SearchConfiguration, model: BertTaskModel) throws {
        try BitPlan.validateCandidates(c.candidates)
        if c.budget == .file || c.embeddings != nil { return try checkFileBudget(c, model: model) }
        let matrices = QuantizableMatrices.of(model)
        let weights = matrices.reduce(0) { $0 + $1.tensor.count }
        let smallest = BitPlan.budgetMiB(averageBits: Double(c.candidates.first!), weights: weights)
        let largest = BitPlan.budgetMiB(averageBits: Double(c.candidates.last!), weights: weights)
        guard c.tolerance.isFinite, c.tolerance > 0, c.tolerance < 1 else {
            throw PlanError("--tolerance is the band's half-width as a fraction of the budget: a number above 0 and below 1, got \(c.tolerance)")
        }
        guard c.targetMiB > 0 else { throw PlanError("the size budget must be positive, got \(c.targetMiB) MiB") }
        guard c.targetMiB <= largest * (1 + c.tolerance) else {
            throw PlanError(String(format: "a budget of %.3f MiB is above the size with every group at %d bits (%.3f MiB): nothing to search",
                                   c.targetMiB, c.candidates.last!, largest))
        }
        guard c.targetMiB >= smallest * (1 - c.tolerance) else {
            throw PlanError(String(format: "a budget of %.3f MiB is below the size with every group at %d bits (%.3f MiB)",
                                   c.targetMiB, c.candidates.first!, smallest))
        }
        for (path, t) in matrices where t.shape[0] % c.groups != 0 {
            throw PlanError("--groups \(c.groups) does not divide the \(t.shape[0]) rows of \(path)")
        }
        // The budget repair moves one group one candidate at a time; when no such step is wider
        // than the band it cannot jump over it, so every search ends inside.
        let gap = zip(c.candidates.dropFirst(), c.candidates).map { $0 - $1 }.max() ?? 0
        let band = 2 * c.tolerance * c.targetMiB
        if let (path, t) = matrices.max(by: { $0.tensor.count < $1.tensor.count }) {
            let n = t.count / c.groups, step = Double(n * gap) / 8 / 1_048_576
            guard step <= band else {
                throw PlanError(String(format: "one group of %@ (%d weights) moves the size by %.3g MiB per candidate step, more than the band %.3g MiB +- %.1f%% is wide, so no plan is sure to land inside it: use more --groups or a --tolerance of at least %.3f",
                                       path, n, step, c.targetMiB, 100 * c.tolerance, step / (2 * c.targetMiB)))
            }
        }
    }

    /// The exact size of the packed model.safetensors `export` writes for `plan` on this model.
    public func fileBytes(of plan: BitPlan) throws -> Int {
        try PackedFormat.fileBytes(plan: plan, parameters: model.checkpointParameters.map { ($0.name, $0.tensor.shape) }, embeddingBits: 8)
    }

    /// `checkBudget` for a file budget: the cap against the smallest and largest packed files
    /// the candidates allow (`SearchSize`), and no group's step wider than the band.
    static func checkFileBudget(_ c: SearchConfiguration, model: BertTaskModel) throws {
        guard c.tolerance.isFinite, c.tolerance > 0, c.tolerance < 0.5 else {
            throw PlanError("--tolerance sets the band (1 - 2 eps) V ... V of a file budget: a number above 0 and below 0.5, got \(c.tolerance)")
        }
        guard c.targetMiB.isFinite, c.targetMiB > 0 else { throw PlanError("the size budget must be positive, got \(c.targetMiB) MiB") }
        let size = try SearchSize(model: model, candidates: c.candidates, groups: c.groups, budget: c.budget ?? .encoder,
                                  embeddings: c.embeddings)
        let band = c.band, bytes = { (mib: Double) in Int((mib * 1_048_576).rounded()) }
        guard band.upperBound >= size.smallestMiB else {
            throw PlanError("a file budget of \(bytes(band.upperBound)) bytes is below the smallest packed file these candidates allow (\(bytes(size.smallestMiB)) bytes, every group at its narrowest width)")
        }
        guard band.lowerBound <= size.largestMiB else {
            throw PlanError("a file budget of \(bytes(band.upperBound)) bytes is above the packed file with every group at its widest width (\(bytes(size.largestMiB)) bytes): nothing to search")
        }
        let step = size.largestStepMiB
        guard step <= band.upperBound - band.lowerBound else {
            throw PlanError(String(format: "one group moves the file by %d bytes per candidate step, more than the band (%d bytes wide), so no plan is sure to land inside it: use more --groups, fewer --embedding-rows or a larger --tolerance",
                                   bytes(step), bytes(band.upperBound - band.lowerBound)))
        }
    }

    /// Runs the search; with `resume`, continues from the last checkpoint in `output` (same
    /// configuration required), reproducing the uninterrupted run exactly.
    public func run(dataSHA256: String?, resume: Bool = false, log: (SearchLogEntry) -> Void) throws -> BitPlan {
        try Self.checkBudget(configuration, model: model)
        let writer = group.rank == 0
        if writer { try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true) }
        for (name, t) in model.checkpointParameters { t.name = name }
        let features = pipeline.trainFeatures
        try validate(features, for: model.config)
        var train: [Feature] = [], val: [Feature] = []
        for f in features {
            if DataSplits.heldOut(index: f.exampleIndex, seed: configuration.seed, percent: validationPercent) { val.append(f) } else { train.append(f) }
        }
        guard !train.isEmpty, !val.isEmpty else {
            throw DataError("--val-fraction leaves \(train.count) training and \(val.count) validation rows: use more data or another fraction")
        }
        let network = try SuperNetwork(model: model, candidates: configuration.candidates, groups: configuration.groups,
                                       seed: configuration.seed, initialLogits: configuration.initialLogits,
                                       initialPlan: configuration.initialPlan,
                                       ranges: configuration.weightRanges ?? .minmax, budget: configuration.budget ?? .encoder,
                                       embeddings: configuration.embeddings)
        defer { network.uninstall() }
        // Planned tables: groups whose rows no example of the search's data (either split) uses
        // are held at the narrowest width (SuperNetwork.holdUngathered).
        var held: [String: Int] = [:]
        if configuration.embeddings != nil {
            var words = Set<Int>([padId]), longest = 0
            for f in features {
                words.formUnion(f.inputIds)
                longest = max(longest, f.inputIds.count)
            }
            let prefix = BertCheckpointNames.modelPrefix(model.config.family)
            held = network.holdUngathered([prefix + "embeddings.word_embeddings.weight": words,
                                           prefix + "embeddings.position_embeddings.weight": Set(0..<longest)])
        }
        func distillation(_ settings: DistillationSettings?) throws -> Distillation? {
            guard let settings else { return nil }
            guard let teacher else { throw DataError("the search distils, but no teacher model was given") }
            return Distillation(teacher: teacher, settings: settings)
        }
        let weightDistillation = try distillation(configuration.distillation)
        let architectureDistillation = try distillation(configuration.architectureDistillation)
        let group = self.group
        // The last data-parallel forward pass's layer marks and rows, for its backward pass's sums.
        var marks: [Int] = [], lastRows: [Feature] = []
        let search = BilevelSearch(model: model, network: network, configuration: configuration, trainCount: train.count,
                                   validationCount: val.count) { idx, isVal, tape in
            let rows = idx.map { (isVal ? val : train)[$0] }
            let distilled = isVal ? architectureDistillation : weightDistillation
            guard group.size > 1 else { return model.trainingLoss(FeatureBatch(rows, padId: padId), tape: tape, distillation: distilled) }
            let forward = group.forwardPart(of: rows, model: model, padId: padId, tape: tape) {
                model.trainingLoss($0.batch, tape: tape, distillation: distilled, share: $0.share)
            }
            (marks, lastRows) = (forward.marks, rows)
            return forward.loss
        }
        let wholeBatchRanges = WholeBatchRanges(Array(network.activationQuantizers.values), group: group)
        defer { wholeBatchRanges.uninstall() }
        if group.size > 1 {
            search.backwardAndSum = { tape, loss, tensors in
                try group.backwardSummingGradients(tape, from: loss, parameters: tensors, model: model, marks: marks, rows: lastRows,
                                                   padId: padId, bucketFloats: bucketFloats)
                try wholeBatchRanges.check()
            }
            search.sumLoss = { try group.sum($0) }
            search.sizePenaltyShare = 1 / Float(group.size)
        }
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        var lines = ""
        var state: BilevelSearch.State? = nil
        if resume, let (restored, log) = try loadCheckpoint(search: search, network: network) {
            state = restored
            lines = log
        }
        search.checkpointEvery = saveSteps
        search.checkpoint = { s, weights, arch in
            guard writer else { return }
            try self.saveCheckpoint(state: s, weights: weights, architecture: arch, network: network, log: lines, encoder: e)
        }
        let lineEncoder = JSONEncoder()
        lineEncoder.outputFormatting = [.sortedKeys]
        var plan = try search.run(resume: state) { entry in
            log(entry)
            if let d = try? lineEncoder.encode(entry) { lines += String(decoding: d, as: UTF8.self) + "\n" }
        }
        plan.provenance.task = pipeline.task.rawValue
        plan.provenance.dataSHA256 = dataSHA256
        plan.provenance.notes["val_percent"] = String(validationPercent)
        for (path, count) in held.sorted(by: { $0.key < $1.key }) {
            plan.provenance.notes["held_ungathered_groups." + path] = String(count)
        }
        guard writer else { return plan }
        try writeAtomically(Data(lines.utf8), to: output.appendingPathComponent("search_log.jsonl"))
        try writeAtomically(try e.encode(configuration), to: output.appendingPathComponent("search_config.json"))
        if let repair = search.repair {
            try writeAtomically(try e.encode(repair), to: output.appendingPathComponent("budget_repair.json"))
        }
        try plan.write(to: output.appendingPathComponent("plan.json"))
        return plan
    }

    /// Weights, logits, both optimizers' moments, position and the log so far (see `CheckpointFolders`).
    func saveCheckpoint(state: BilevelSearch.State, weights: AdamW, architecture: AdamW, network: SuperNetwork, log: String,
                        encoder: JSONEncoder) throws {
        try CheckpointFolders(output: output).save(step: state.step) { dir in
            try CheckpointFolders.writeTensors(model.checkpointParameters + network.logits.map { ($0.name!, $0) },
                                               to: dir.appendingPathComponent("weights.safetensors"))
            try CheckpointFolders.writeMoments(of: weights, to: dir.appendingPathComponent("optimizer.safetensors"))
            try CheckpointFolders.writeMoments(of: architecture, to: dir.appendingPathComponent("arch_optimizer.safetensors"))
            try writeAtomically(try encoder.encode(state), to: dir.appendingPathComponent("search_state.json"))
            try writeAtomically(try encoder.encode(configuration), to: dir.appendingPathComponent("search_config.json"))
            try writeAtomically(Data(log.utf8), to: dir.appendingPathComponent("search_log.jsonl"))
            if let fingerprint { try writeAtomically(try encoder.encode(fingerprint), to: dir.appendingPathComponent("run_fingerprint.json")) }
        }
    }

    /// Whether a saved search position is one a search of `epochs` epochs can reach.
    static func problem(in state: BilevelSearch.State, epochs: Int) -> String? {
        if !(0...epochs).contains(state.epoch) { return "epoch \(state.epoch) is outside 0...\(epochs)" }
        if state.batchInEpoch < 0 || state.step < 0 { return "negative position (step \(state.step), batch \(state.batchInEpoch))" }
        if !(0...state.step).contains(state.architectureSteps) {
            return "architectureSteps \(state.architectureSteps) is outside 0...\(state.step)"
        }
        if !(state.lambda.isFinite && state.lambda >= 0) { return "lambda \(state.lambda) is not a penalty weight" }
        for (name, r) in state.activationRanges where !ActivationQuantizer.isValidRange(r) {
            return "activation range of \(name) is not a finite [low, high] pair"
        }
        return nil
    }

    func loadCheckpoint(search: BilevelSearch, network: SuperNetwork) throws -> (BilevelSearch.State, String)? {
        guard let dir = try CheckpointFolders(output: output).latest() else { return nil }
        let configURL = dir.appendingPathComponent("search_config.json")
        let saved: SearchConfiguration
        do {
            saved = try JSONDecoder().decode(SearchConfiguration.self, from: Data(contentsOf: configURL))
        } catch {
            throw DataError("--resume: cannot read the search settings in \(configURL.path) (written by another aqbert version, or damaged); start again with a new --output")
        }
        guard saved == configuration else {
            throw DataError("--resume: \(output.path) holds a search with other settings; use the same flags or a new --output")
        }
        if let fingerprint {
            let url = dir.appendingPathComponent("run_fingerprint.json")
            let recorded = FileManager.default.fileExists(atPath: url.path) ? try CheckpointFolders.read(RunFingerprint.self, at: url) : nil
            if let mismatch = fingerprint.mismatch(saved: recorded, output: output) { throw DataError(mismatch) }
        }
        let stateURL = dir.appendingPathComponent("search_state.json")
        let state = try CheckpointFolders.read(BilevelSearch.State.self, at: stateURL)
        if let problem = Self.problem(in: state, epochs: configuration.epochs) {
            throw DataError("--resume: \(stateURL.path): \(problem); the checkpoint is damaged")
        }
        try CheckpointFolders.readTensors(model.checkpointParameters + network.logits.map { ($0.name!, $0) },
                                          from: dir.appendingPathComponent("weights.safetensors"))
        try CheckpointFolders.readMoments(into: search.weightOptimizer, from: dir.appendingPathComponent("optimizer.safetensors"),
                                          expectedStep: nil)
        try CheckpointFolders.readMoments(into: search.architectureOptimizer, from: dir.appendingPathComponent("arch_optimizer.safetensors"),
                                          expectedStep: nil)
        let log = (try? String(contentsOf: dir.appendingPathComponent("search_log.jsonl"), encoding: .utf8)) ?? ""
        return (state, log)
    }
}
