import AQBert
import AQParallel
import AQSearch
import Foundation

/// How Q-BERT's sensitivity is measured (METHOD.md section 6).
public struct SensitivityConfiguration: Codable, Equatable, Sendable {
    /// Random subsets of the training rows, each `fraction` of them (at least one row).
    public var subsets = 10
    public var fraction = 0.1
    /// At most this many rows per subset (nil: no cap): each Hessian-vector product costs two
    /// gradient passes over the subset, per block and iteration.
    public var maxRows: Int?
    public var seed: UInt64 = 42
    /// Power iteration stops when the eigenvalue changes by at most this fraction.
    public var tolerance = 1e-3
    public var maxIterations = 30
    /// Rows per forward pass when summing a subset's gradient (does not change the result
    /// beyond float rounding).
    public var batchSize = 32
    /// Finite-difference step of the Hessian-vector product, relative to max(1, ||block||).
    public var relativeStep: Float = 1e-3

    public init() {}

    enum CodingKeys: String, CodingKey {
        case subsets, fraction, seed, tolerance
        case maxIterations = "max_iterations", batchSize = "batch_size", relativeStep = "relative_step", maxRows = "max_rows"
    }

    public func validate() throws {
        guard subsets >= 1 else { throw DataError("--subsets must be at least 1, got \(subsets)") }
        guard fraction > 0, fraction <= 1 else { throw DataError("--fraction must be in (0, 1], got \(fraction)") }
        if let maxRows, maxRows < 1 { throw DataError("--max-rows must be at least 1, got \(maxRows)") }
        guard tolerance > 0 else { throw DataError("--tolerance must be positive, got \(tolerance)") }
        guard maxIterations >= 1 else { throw DataError("--max-iterations must be at least 1, got \(maxIterations)") }
        guard batchSize >= 1 else { throw DataError("--batch-size must be at least 1, got \(batchSize)") }
        guard relativeStep > 0 else { throw DataError("the finite-difference step must be positive") }
    }
}

/// The sensitivity file `aqbert sensitivity` writes (version 1): per subset and encoder block
/// the top Hessian eigenvalue, and per block Omega over the finished subsets.
public struct SensitivityReport: Codable, Equatable, Sendable {
    public static let currentVersion = 1
    public var version = SensitivityReport.currentVersion
    public var task: String
    public var configuration: SensitivityConfiguration
    public var dataSHA256: String?
    public var trainRows: Int
    public var subsetRows: Int
    public var blocks: Int
    /// eigenvalues[s][b]: subset s, encoder block b, in subset order (only finished subsets).
    public var eigenvalues: [[TopEigenvalue]]
    /// Omega per block over the finished subsets.
    public var omega: [Double]
    public var complete: Bool

    enum CodingKeys: String, CodingKey {
        case version, task, configuration, blocks, eigenvalues, omega, complete
        case dataSHA256 = "data_sha256", trainRows = "train_rows", subsetRows = "subset_rows"
    }

    public static func read(_ url: URL) throws -> SensitivityReport {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw DataError("\(url.path): cannot read (\(error.localizedDescription))") }
        let r: SensitivityReport
        do { r = try JSONDecoder().decode(SensitivityReport.self, from: data) } catch {
            throw DataError("\(url.path): not a sensitivity file (\(error))")
        }
        guard r.version == currentVersion else { throw DataError("\(url.path): sensitivity version \(r.version), this aqbert reads \(currentVersion)") }
        guard r.blocks > 0, r.omega.count == r.blocks, r.eigenvalues.allSatisfy({ $0.count == r.blocks }) else {
            throw DataError("\(url.path): eigenvalues and omega do not match \(r.blocks) blocks")
        }
        return r
    }

    public func write(to url: URL) throws {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        try writeAtomically(try e.encode(self), to: url)
    }
}

/// Measures Q-BERT's per-block sensitivity of a fine-tuned model on a task's training data:
/// for each of `subsets` seeded random subsets and each encoder block, the top eigenvalue of
/// the Hessian of the mean training loss (eval mode: no dropout) with respect to all of that
/// block's parameters. Writes the report after every subset, so `resume` continues after the
/// last finished one.
///
/// Over a `ProcessGroup` (`mpirun -np N`), the blocks of each subset are shared out (block b on
/// rank b mod N) and their results gathered: each eigenvalue is computed as in one process, so
/// the report is the one-process report, bit for bit. Rank 0 writes it.
public struct SensitivityRunner {
    public let model: BertTaskModel
    public let pipeline: TaskPipeline
    public let configuration: SensitivityConfiguration
    public let padId: Int
    public let output: URL
    /// The processes sharing the work (see the type); `.single` for one process.
    public var group: ProcessGroup = .single

    public init(model: BertTaskModel, pipeline: TaskPipeline, configuration: SensitivityConfiguration, padId: Int, output: URL) {
        self.model = model
        self.pipeline = pipeline
        self.configuration = configuration
        self.padId = padId
        self.output = output
    }

    /// The rows of subset `s`: a seeded shuffle of all rows, the first `size`, in row order.
    public static func subset(_ s: Int, rows: Int, size: Int, seed: UInt64) -> [Int] {
        var order = Array(0..<rows)
        var g = SeededGenerator(seed: seed &+ 0x9E37_79B9_7F4A_7C15 &* UInt64(s + 1))
        g.shuffle(&order)
        return order.prefix(size).sorted()
    }

    /// `progress(subset, block, result)` after each eigenvalue (with several processes, after
    /// each subset, for all its blocks).
    public func run(dataSHA256: String?, resume: Bool, progress: (Int, Int, TopEigenvalue) -> Void) throws -> SensitivityReport {
        try configuration.validate()
        let features = pipeline.trainFeatures
        try validate(features, for: model.config)
        guard !features.isEmpty else { throw DataError("no training rows to measure the Hessian on") }
        let size = min(configuration.maxRows ?? .max, max(1, Int((Double(features.count) * configuration.fraction).rounded())))
        let blocks = model.bert.layers.count
        var report = SensitivityReport(task: pipeline.task.rawValue, configuration: configuration, dataSHA256: dataSHA256,
                                       trainRows: features.count, subsetRows: size, blocks: blocks, eigenvalues: [],
                                       omega: [Double](repeating: 0, count: blocks), complete: false)
        if resume, FileManager.default.fileExists(atPath: output.path) {
            let saved = try SensitivityReport.read(output)
            guard saved.configuration == configuration, saved.task == report.task, saved.trainRows == report.trainRows,
                  saved.dataSHA256 == dataSHA256, saved.blocks == blocks else {
                throw DataError("--resume: \(output.path) was made with another configuration, task or data; use another --output")
            }
            report = saved
        }
        let wasTraining = model.training
        let flags = model.parameters.map(\.requiresGrad)
        defer {
            model.training = wasTraining
            for (p, f) in zip(model.parameters, flags) { p.requiresGrad = f; p.grad = nil }
        }
        model.training = false
        for s in report.eigenvalues.count..<configuration.subsets {
            let rows = Self.subset(s, rows: features.count, size: size, seed: configuration.seed)
            let batches = stride(from: 0, to: rows.count, by: configuration.batchSize).map {
                FeatureBatch(rows[$0..<min(rows.count, $0 + configuration.batchSize)].map { features[$0] }, padId: padId)
            }
            var row: [TopEigenvalue] = []
            for b in 0..<blocks where b % group.size == group.rank {
                let block = blockProblem(b, batches: batches, rows: rows.count)
                let seed = configuration.seed &+ UInt64(s * blocks + b) &* 0x2545_F491_4F6C_DD1D
                let result = HessianSensitivity.topEigenvalue(of: block, seed: seed, tolerance: configuration.tolerance,
                                                              maxIterations: configuration.maxIterations,
                                                              relativeStep: configuration.relativeStep)
                if group.size == 1 { progress(s, b, result) }
                row.append(result)
            }
            if group.size > 1 {
                row = try gather(row, blocks: blocks)
                for (b, result) in row.enumerated() { progress(s, b, result) }
            }
            report.eigenvalues.append(row)
            report.omega = (0..<blocks).map { b in HessianSensitivity.omega(report.eigenvalues.map { $0[b].eigenvalue }) }
            report.complete = report.eigenvalues.count == configuration.subsets
            if group.rank == 0 { try report.write(to: output) }
        }
        return report
    }

    /// Every block's result on every rank, from each rank's own blocks (`b mod N == rank`, in
    /// order): a sum over the ranks of vectors that are zero outside each rank's blocks, which
    /// adds each value to zeros only, so the values arrive unchanged.
    func gather(_ mine: [TopEigenvalue], blocks: Int) throws -> [TopEigenvalue] {
        var values = [Double](repeating: 0, count: 3 * blocks)
        for (i, b) in stride(from: group.rank, to: blocks, by: group.size).enumerated() {
            values[3 * b] = mine[i].eigenvalue
            values[3 * b + 1] = Double(mine[i].iterations)
            values[3 * b + 2] = mine[i].converged ? 1 : 0
        }
        try group.allReduceSum(&values)
        return (0..<blocks).map {
            TopEigenvalue(eigenvalue: values[3 * $0], iterations: Int(values[3 * $0 + 1]), converged: values[3 * $0 + 2] != 0)
        }
    }

    /// Block b's parameters and the gradient of the subset's mean loss with respect to them
    /// (batch losses weighted by their share of rows); nothing else requires a gradient, so the
    /// layers below the block run without a tape.
    func blockProblem(_ b: Int, batches: [FeatureBatch], rows: Int) -> HessianBlock {
        let parameters = model.bert.layers[b].parameters
        let ids = Set(parameters.map { ObjectIdentifier($0) })
        for p in model.parameters { p.requiresGrad = ids.contains(ObjectIdentifier(p)); p.grad = nil }
        let model = self.model
        return HessianBlock(parameters: parameters) {
            for p in parameters { p.grad = nil }
            for batch in batches {
                let tape = Tape()
                let loss = model.taskLoss(model.forward(batch.inputs, tape: tape), batch: batch, tape: tape)
                tape.backward(from: loss, seed: Float(batch.inputs.batchSize) / Float(rows))
            }
            var g = [Float]()
            g.reserveCapacity(parameters.reduce(0) { $0 + $1.count })
            for p in parameters {
                if let grad = p.grad { g.append(contentsOf: UnsafeBufferPointer(start: grad.pointer, count: p.count)) } else {
                    g.append(contentsOf: repeatElement(0, count: p.count))
                }
                p.grad = nil
            }
            return g
        }
    }
}
