import AQQuant
import Foundation

/// The methods `aqbert compare` runs (METHOD.md section 6), in table order.
public enum ComparisonMethod: String, Codable, CaseIterable, Sendable {
    case fp32
    case directQ = "directq"
    case uniform
    case qbert
    case random
    case aqBERT = "aq-bert"

    public var title: String {
        switch self {
        case .fp32: return "fp32"
        case .directQ: return "DirectQ (uniform, no retraining)"
        case .uniform: return "Q-BERT (uniform QAT)"
        case .qbert: return "Q-BERT-MP (Hessian mixed precision, QAT)"
        case .random: return "random plan (AQ-BERT's histograms, QAT)"
        case .aqBERT: return "AQ-BERT (searched, QAT)"
        }
    }

    /// The legend's label.
    public var shortTitle: String {
        switch self {
        case .fp32: return "fp32"
        case .directQ: return "DirectQ"
        case .uniform: return "Q-BERT (uniform QAT)"
        case .qbert: return "Q-BERT-MP"
        case .random: return "random plan"
        case .aqBERT: return "AQ-BERT"
        }
    }

    /// How the method reaches an average of `bits` per encoder weight, or nil when it cannot:
    /// uniform widths need a whole number; Q-BERT-MP's half-and-half mix 2/h averages (2 + h) / 2.
    public func setting(forBudget bits: Double) -> String? {
        switch self {
        case .fp32: return nil
        case .directQ, .uniform:
            guard bits == bits.rounded(), (1...8).contains(bits) else { return nil }
            return "\(Int(bits))-bit"
        case .qbert:
            let high = 2 * bits - 2
            guard high == high.rounded(), (3...8).contains(high) else { return nil }
            return "2/\(Int(high))"
        case .random, .aqBERT: return String(format: "%g bits", bits)
        }
    }
}

/// One finished run of a comparison.
public struct ComparisonRun: Codable, Equatable, Sendable {
    public var method: ComparisonMethod
    /// The budget in average bits (nil for fp32).
    public var budgetBits: Double?
    public var seed: UInt64
    /// Of the plan (32 for fp32); size = encoder weight bits / 8 / 2^20.
    public var averageBits: Double
    public var sizeMiB: Double
    public var prunedFraction: Double
    public var metric: Double
    /// Where the run's model or result is, relative to the comparison directory.
    public var directory: String

    public init(method: ComparisonMethod, budgetBits: Double?, seed: UInt64, averageBits: Double, sizeMiB: Double,
                prunedFraction: Double, metric: Double, directory: String) {
        self.method = method
        self.budgetBits = budgetBits
        self.seed = seed
        self.averageBits = averageBits
        self.sizeMiB = sizeMiB
        self.prunedFraction = prunedFraction
        self.metric = metric
        self.directory = directory
    }

    enum CodingKeys: String, CodingKey {
        case method, seed, metric, directory
        case budgetBits = "budget_bits", averageBits = "avg_bits", sizeMiB = "size_mib", prunedFraction = "pruned_fraction"
    }
}

/// Mean and spread of one method at one budget over seeds.
public struct ComparisonRow: Codable, Equatable, Sendable {
    public var method: ComparisonMethod
    public var budgetBits: Double?
    public var averageBits: Double
    public var sizeMiB: Double
    public var prunedFraction: Double
    public var metricMean: Double
    /// Sample standard deviation over seeds (0 with one seed).
    public var metricStd: Double
    public var seeds: Int

    enum CodingKeys: String, CodingKey {
        case method, seeds
        case budgetBits = "budget_bits", averageBits = "avg_bits", sizeMiB = "size_mib", prunedFraction = "pruned_fraction"
        case metricMean = "metric_mean", metricStd = "metric_std"
    }
}

/// `results.json` of `aqbert compare` (version 1).
public struct ComparisonResults: Codable, Equatable, Sendable {
    public static let currentVersion = 1
    public var version = ComparisonResults.currentVersion
    public var task: String
    /// The metric's key in eval_results.json (accuracy, f1).
    public var metric: String
    public var budgets: [Double]
    public var seeds: [UInt64]
    /// The resolved settings (model, data, epochs, optimiser, ...), for the record.
    public var settings: [String: String]
    /// The search's budget band (relative): a searched plan outside it is flagged in the table.
    public var tolerance = 0.02
    public var runs: [ComparisonRun]
    public var rows: [ComparisonRow]

    public init(task: String, metric: String, budgets: [Double], seeds: [UInt64], settings: [String: String], runs: [ComparisonRun]) {
        self.task = task
        self.metric = metric
        self.budgets = budgets
        self.seeds = seeds
        self.settings = settings
        self.runs = runs
        self.rows = Self.summarize(runs, budgets: budgets)
    }

    enum CodingKeys: String, CodingKey {
        case version, task, metric, budgets, seeds, settings, tolerance, runs, rows
    }

    /// fp32 first, then per budget (largest first, as the paper's Table 1) each method in order.
    static func summarize(_ runs: [ComparisonRun], budgets: [Double]) -> [ComparisonRow] {
        var keys: [(ComparisonMethod, Double?)] = [(.fp32, nil)]
        for b in budgets.sorted(by: >) { for m in ComparisonMethod.allCases where m != .fp32 { keys.append((m, b)) } }
        return keys.compactMap { method, budget in
            let rs = runs.filter { $0.method == method && $0.budgetBits == budget }
            guard !rs.isEmpty else { return nil }
            let n = Double(rs.count)
            let (mean, std) = meanAndSampleStd(rs.map(\.metric))
            return ComparisonRow(method: method, budgetBits: budget, averageBits: rs.reduce(0) { $0 + $1.averageBits } / n,
                                 sizeMiB: rs.reduce(0) { $0 + $1.sizeMiB } / n,
                                 prunedFraction: rs.reduce(0) { $0 + $1.prunedFraction } / n,
                                 metricMean: mean, metricStd: std, seeds: rs.count)
        }
    }

    /// The mean and the sample standard deviation (0 for fewer than two values).
    static func meanAndSampleStd(_ values: [Double]) -> (mean: Double, std: Double) {
        let n = Double(values.count)
        let mean = values.reduce(0, +) / n
        let std = values.count > 1 ? (values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / (n - 1)).squareRoot() : 0
        return (mean, std)
    }

    public func row(_ method: ComparisonMethod, budget: Double?) -> ComparisonRow? {
        rows.first { $0.method == method && $0.budgetBits == budget }
    }

    /// AQ-BERT's metric minus `baseline`'s, seed by seed (in seed order), over the seeds that
    /// have both at `budget`.
    public func pairedDifferences(_ baseline: ComparisonMethod, budget: Double) -> [Double] {
        let aq = runs.filter { $0.method == .aqBERT && $0.budgetBits == budget }
        return aq.sorted { $0.seed < $1.seed }.compactMap { a in
            runs.first { $0.method == baseline && $0.budgetBits == budget && $0.seed == a.seed }.map { a.metric - $0.metric }
        }
    }
}
