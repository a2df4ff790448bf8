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

    /// The paper's Table 1 layout (method, size, average bits, metric), then AQ-BERT's margin
    /// over uniform QAT, Q-BERT-MP and the random control at each budget.
    public func markdown() -> String {
        var s = "| method | budget | size (MiB) | avg bits | pruned | \(task) \(metric) | seeds |\n|---|---:|---:|---:|---:|---:|---:|\n"
        for r in rows {
            let value = r.seeds > 1 ? String(format: "%.2f ± %.2f", r.metricMean, r.metricStd) : String(format: "%.2f", r.metricMean)
            s += "| \(r.method.title) | \(r.budgetBits.map { String(format: "%g", $0) } ?? "-") | "
                + String(format: "%.3f | %.3f | %.1f%% | ", r.sizeMiB, r.averageBits, 100 * r.prunedFraction)
                + "\(value) | \(r.seeds) |\n"
        }
        // A searched plan that missed its budget is not a comparison at that size: say so.
        let missed = rows.filter { r in r.method == .aqBERT && r.budgetBits.map { abs(r.averageBits - $0) > tolerance * $0 } == true }
        for r in missed {
            s += String(format: "\nNote: the AQ-BERT plans at %g bits average %.3f bits, outside the +-%.0f%% band (too few search steps?): their row is not at that size.\n",
                        r.budgetBits!, r.averageBits, 100 * tolerance)
        }
        var margins: [String] = []
        for b in budgets.sorted(by: >) {
            guard let aq = row(.aqBERT, budget: b) else { continue }
            for other in [ComparisonMethod.uniform, .qbert, .random, .directQ] {
                guard let o = row(other, budget: b) else { continue }
                let paired = pairedDifferences(other, budget: b)
                var perSeed = paired.map { String(format: "%+.2f", $0) }.joined(separator: ", ")
                if paired.count > 1 { perSeed += String(format: " (sd %.2f)", Self.meanAndSampleStd(paired).std) }
                margins.append(String(format: "| %g | %@ | %+.2f | %@ |", b, other.title, aq.metricMean - o.metricMean, perSeed))
            }
        }
        if !margins.isEmpty {
            s += "\nAQ-BERT minus each baseline at the same budget: the difference of the means over seeds, and per seed "
                + "(both runs of a seed share its data order), with the spread of those differences:\n\n"
            s += "| budget (bits) | baseline | AQ-BERT - baseline | per seed |\n|---:|---|---:|---|\n"
                + margins.joined(separator: "\n") + "\n"
        }
        // What produced the numbers (the search's architecture optimiser and rate among them).
        s += "\nSeeds: " + seeds.map(String.init).joined(separator: ", ") + "."
        if !settings.isEmpty {
            s += " Settings: " + settings.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: "; ") + "."
        }
        return s + "\n"
    }

    /// Metric against encoder-weight size, one colour per method, error bars = spread over
    /// seeds; fp32 (far to the right) as a dashed horizontal line.
    public func sizeSVG() -> String {
        let quantized = rows.filter { $0.method != .fp32 }
        let fp32 = row(.fp32, budget: nil)
        let width = 720.0, height = 440.0, left = 70.0, right = 250.0, top = 40.0, bottom = 60.0
        let xs = quantized.map(\.sizeMiB), ys = quantized.flatMap { [$0.metricMean - $0.metricStd, $0.metricMean + $0.metricStd] }
            + (fp32.map { [$0.metricMean] } ?? [])
        let (x0, x1, xStep) = Plot.niceRange(xs.min() ?? 0, xs.max() ?? 1)
        let (y0, y1, yStep) = Plot.niceRange(ys.min() ?? 0, ys.max() ?? 100)
        func px(_ x: Double) -> Double { left + (x - x0) / (x1 - x0) * (width - left - right) }
        func py(_ y: Double) -> Double { height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom) }
        var s = Plot.header(width: width, height: height)
        s += Plot.text(x: left, y: 24, "\(task): \(metric) against encoder weight size (mean ± std over seeds)", size: 15, anchor: "start")
        s += Plot.axes(left: left, right: width - right, top: top, bottom: height - bottom,
                       xTicks: Plot.ticks(x0, x1, xStep).map { (px($0), String(format: "%g", $0)) },
                       yTicks: Plot.ticks(y0, y1, yStep).map { (py($0), String(format: "%g", $0)) },
                       xLabel: "encoder weights (MiB)", yLabel: metric)
        if let f = fp32 {
            s += "<line x1=\"\(Plot.f(left))\" y1=\"\(Plot.f(py(f.metricMean)))\" x2=\"\(Plot.f(width - right))\" y2=\"\(Plot.f(py(f.metricMean)))\" stroke=\"#444\" stroke-dasharray=\"6 4\"/>\n"
        }
        var legendY = top + 10
        for (i, method) in ComparisonMethod.allCases.enumerated() {
            let color = Plot.palette[i % Plot.palette.count]
            let points = quantized.filter { $0.method == method }.sorted { $0.sizeMiB < $1.sizeMiB }
            if method == .fp32 {
                guard let f = fp32 else { continue }
                s += "<line x1=\"\(Plot.f(width - right + 16))\" y1=\"\(Plot.f(legendY))\" x2=\"\(Plot.f(width - right + 36))\" y2=\"\(Plot.f(legendY))\" stroke=\"#444\" stroke-dasharray=\"6 4\"/>\n"
                s += Plot.text(x: width - right + 42, y: legendY + 4, String(format: "fp32 (%.1f MiB): %.2f", f.sizeMiB, f.metricMean), size: 11, anchor: "start")
                legendY += 20
                continue
            }
            guard !points.isEmpty else { continue }
            if points.count > 1 {
                let path = points.map { "\(Plot.f(px($0.sizeMiB))),\(Plot.f(py($0.metricMean)))" }.joined(separator: " ")
                s += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\" opacity=\"0.6\"/>\n"
            }
            for p in points {
                let x = px(p.sizeMiB)
                if p.metricStd > 0 {
                    s += "<line x1=\"\(Plot.f(x))\" y1=\"\(Plot.f(py(p.metricMean - p.metricStd)))\" x2=\"\(Plot.f(x))\" y2=\"\(Plot.f(py(p.metricMean + p.metricStd)))\" stroke=\"\(color)\" stroke-width=\"1.5\"/>\n"
                }
                s += Plot.marker(index: i, x: x, y: py(p.metricMean), color: color)
            }
            s += Plot.marker(index: i, x: width - right + 26, y: legendY, color: color)
            s += Plot.text(x: width - right + 42, y: legendY + 4, method.shortTitle, size: 11, anchor: "start")
            legendY += 20
        }
        return s + "</svg>\n"
    }
}

/// A bit plan drawn as a heat map: encoder blocks down, the six matrices of a block across;
/// colour = the matrix's average bits, the number in the cell the same, and the share of
/// pruned groups under it.
public enum BitMapPicture {
    /// Short column names by the end of a Hugging Face matrix path (BERT and DistilBERT).
    static let columns: [(suffix: [String], label: String)] = [
        (["attention.self.query.weight", "attention.q_lin.weight"], "Q"),
        (["attention.self.key.weight", "attention.k_lin.weight"], "K"),
        (["attention.self.value.weight", "attention.v_lin.weight"], "V"),
        (["attention.output.dense.weight", "attention.out_lin.weight"], "attn out"),
        (["intermediate.dense.weight", "ffn.lin1.weight"], "FFN in"),
        (["output.dense.weight", "ffn.lin2.weight"], "FFN out"),
    ]

    /// (block, column) of a matrix path, nil if it is not an encoder matrix.
    static func cell(of path: String) -> (block: Int, column: Int)? {
        let parts = path.split(separator: ".")
        guard let i = parts.firstIndex(of: "layer"), i + 1 < parts.count, let block = Int(parts[i + 1]) else { return nil }
        let rest = parts[(i + 2)...].joined(separator: ".")
        // "output.dense" would also match "attention.output.dense": test the longer ones first.
        guard let c = columns.firstIndex(where: { col in col.suffix.contains { rest == $0 } }) else { return nil }
        return (block, c)
    }

    /// plans: (title, plan) side by side. maxBits: the top of the colour scale.
    public static func svg(_ plans: [(title: String, plan: BitPlan)], maxBits: Int) -> String {
        let cellW = 62.0, cellH = 34.0, gap = 40.0, left = 70.0, top = 70.0
        let blocks = plans.map { p in (p.plan.matrices.keys.compactMap { cell(of: $0)?.block }.max() ?? -1) + 1 }.max() ?? 0
        let panelW = cellW * Double(columns.count)
        let width = left + Double(plans.count) * (panelW + gap) + 80, height = top + Double(blocks) * cellH + 90
        var s = Plot.header(width: width, height: height)
        s += Plot.text(x: left, y: 22, "AQ-BERT bit map: average bits per matrix (pruned share below)", size: 15, anchor: "start")
        for (pi, entry) in plans.enumerated() {
            let x0 = left + Double(pi) * (panelW + gap)
            s += Plot.text(x: x0 + panelW / 2, y: top - 28, entry.title, size: 12, anchor: "middle")
            for (c, col) in columns.enumerated() {
                s += Plot.text(x: x0 + (Double(c) + 0.5) * cellW, y: top - 8, col.label, size: 11, anchor: "middle")
            }
            for b in 0..<blocks where pi == 0 {
                s += Plot.text(x: left - 8, y: top + (Double(b) + 0.6) * cellH, "block \(b)", size: 11, anchor: "end")
            }
            for (path, m) in entry.plan.matrices.sorted(by: { $0.key < $1.key }) {
                guard let (b, c) = cell(of: path) else { continue }
                let avg = Double(m.bits.reduce(0, +)) / Double(max(1, m.bits.count))
                let pruned = Double(m.bits.filter { $0 == 0 }.count) / Double(max(1, m.bits.count))
                let x = x0 + Double(c) * cellW, y = top + Double(b) * cellH
                let t = min(1, max(0, avg / Double(max(1, maxBits))))
                s += "<rect x=\"\(Plot.f(x))\" y=\"\(Plot.f(y))\" width=\"\(Plot.f(cellW - 2))\" height=\"\(Plot.f(cellH - 2))\" fill=\"\(Plot.viridis(t))\"/>\n"
                let ink = t > 0.55 ? "#000" : "#fff"
                s += Plot.text(x: x + cellW / 2 - 1, y: y + 14, String(format: "%.2f", avg), size: 11, anchor: "middle", color: ink)
                s += Plot.text(x: x + cellW / 2 - 1, y: y + 27, String(format: "%.0f%% pruned", 100 * pruned), size: 9, anchor: "middle", color: ink)
            }
        }
        // Colour scale.
        let barY = top + Double(blocks) * cellH + 30
        for i in 0..<100 {
            let t = Double(i) / 99
            s += "<rect x=\"\(Plot.f(left + Double(i) * 3))\" y=\"\(Plot.f(barY))\" width=\"3.2\" height=\"12\" fill=\"\(Plot.viridis(t))\"/>\n"
        }
        s += Plot.text(x: left, y: barY + 28, "0 bits", size: 10, anchor: "start")
        s += Plot.text(x: left + 300, y: barY + 28, "\(maxBits) bits", size: 10, anchor: "end")
        // Planned embedding tables: their average width under each panel.
        for (pi, entry) in plans.enumerated() where !entry.plan.embeddings.isEmpty {
            let text = entry.plan.embeddings.sorted { $0.key > $1.key }.map { path, e in
                String(format: "%@ %.2f bits", path.contains("word") ? "word emb" : "position emb", Double(e.totalBits) / Double(e.weightCount))
            }.joined(separator: ", ")
            s += Plot.text(x: left + Double(pi) * (panelW + gap), y: barY + 46, text, size: 10, anchor: "start")
        }
        return s + "</svg>\n"
    }
}

extension BitMapPicture {
    /// Every group of every encoder matrix: one row per matrix (block order, then Q, K, V, attn
    /// out, FFN in, FFN out), one cell per row group in group order, coloured by its bit-width
    /// (0 = pruned, drawn white with a grey edge).
    /// Planned embedding tables follow as one row each (their groups scaled to the same width).
    public static func groupsSVG(_ plan: BitPlan, title: String) -> String {
        let matrixRows = plan.matrices.compactMap { path, m in cell(of: path).map { (key: $0.block * columns.count + $0.column, cell: $0, matrix: m) } }
            .sorted { $0.key < $1.key }
        let tableLabels = ["word_embeddings": "word emb", "position_embeddings": "position emb"]
        let rows: [(label: String, bits: [Int])] = matrixRows.map { ("block \($0.cell.block) \(columns[$0.cell.column].label)", $0.matrix.bits) }
            + plan.embeddings.sorted { $0.key > $1.key }.map { path, e in
                (tableLabels.first { path.contains($0.key) }?.value ?? path, e.bits)
            }
        let widths = Array(Set(plan.candidates + plan.embeddingCandidates).filter { $0 > 0 }).sorted()
        let maxBits = max(1, (plan.candidates + plan.embeddingCandidates).max() ?? 8)
        func fill(_ bits: Int) -> String { bits == 0 ? "#ffffff" : Plot.viridis(Double(bits) / Double(maxBits)) }
        let groups = matrixRows.map(\.matrix.groups).max() ?? 1
        let cellW = max(2, min(8, 640 / Double(groups))), cellH = 11.0, left = 120.0, top = 50.0
        let width = left + cellW * Double(groups) + 30, height = top + cellH * Double(rows.count) + 70
        var s = Plot.header(width: width, height: height)
        s += Plot.text(x: 10, y: 22, title, size: 14, anchor: "start")
        s += Plot.text(x: left, y: top - 8, "row groups 0 ... \(groups - 1) of each matrix" + (plan.embeddings.isEmpty ? "" : "; every group of each table"),
                       size: 10, anchor: "start")
        for (r, row) in rows.enumerated() {
            let y = top + Double(r) * cellH
            s += Plot.text(x: left - 6, y: y + cellH - 2, row.label, size: 9, anchor: "end")
            let w = cellW * Double(groups) / Double(row.bits.count)
            // One rectangle per run of equal widths (keeps the file small).
            var g = 0
            let bits = row.bits
            while g < bits.count {
                var end = g + 1
                while end < bits.count && bits[end] == bits[g] { end += 1 }
                let b = bits[g], x = left + Double(g) * w
                s += "<rect x=\"\(Plot.f(x))\" y=\"\(Plot.f(y))\" width=\"\(Plot.f(w * Double(end - g)))\" height=\"\(Plot.f(cellH - 1))\" fill=\"\(fill(b))\"\(b == 0 ? " stroke=\"#bbb\" stroke-width=\"0.3\"" : "")/>\n"
                g = end
            }
        }
        // Legend: one swatch per width.
        var x = left
        let y = top + cellH * Double(rows.count) + 20
        for b in [0] + widths {
            s += "<rect x=\"\(Plot.f(x))\" y=\"\(Plot.f(y))\" width=\"14\" height=\"10\" fill=\"\(fill(b))\" stroke=\"#888\" stroke-width=\"0.5\"/>\n"
            s += Plot.text(x: x + 18, y: y + 9, b == 0 ? "0 bits (pruned)" : "\(b) bits", size: 10, anchor: "start")
            x += b == 0 ? 110 : 60
        }
        return s + "</svg>\n"
    }
}

/// Small SVG helpers (no dependencies).
enum Plot {
    static let palette = ["#444444", "#8c564b", "#1f77b4", "#9467bd", "#7f7f7f", "#d62728"]

    static func f(_ x: Double) -> String { String(format: "%.1f", x) }

    static func header(width: Double, height: Double) -> String {
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(f(width))\" height=\"\(f(height))\" viewBox=\"0 0 \(f(width)) \(f(height))\" font-family=\"Helvetica, Arial, sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n"
    }

    static func escaped(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    static func text(x: Double, y: Double, _ s: String, size: Double, anchor: String, color: String = "#000") -> String {
        "<text x=\"\(f(x))\" y=\"\(f(y))\" font-size=\"\(f(size))\" text-anchor=\"\(anchor)\" fill=\"\(color)\">\(escaped(s))</text>\n"
    }

    /// A distinct marker shape per series: circle, square, triangle, diamond, ...
    static func marker(index: Int, x: Double, y: Double, color: String) -> String {
        switch index % 4 {
        case 0: return "<circle cx=\"\(f(x))\" cy=\"\(f(y))\" r=\"5\" fill=\"\(color)\"/>\n"
        case 1: return "<rect x=\"\(f(x - 4.5))\" y=\"\(f(y - 4.5))\" width=\"9\" height=\"9\" fill=\"\(color)\"/>\n"
        case 2: return "<polygon points=\"\(f(x)),\(f(y - 6)) \(f(x - 5.5)),\(f(y + 4)) \(f(x + 5.5)),\(f(y + 4))\" fill=\"\(color)\"/>\n"
        default: return "<polygon points=\"\(f(x)),\(f(y - 6)) \(f(x + 6)),\(f(y)) \(f(x)),\(f(y + 6)) \(f(x - 6)),\(f(y))\" fill=\"\(color)\"/>\n"
        }
    }

    static func axes(left: Double, right: Double, top: Double, bottom: Double, xTicks: [(Double, String)], yTicks: [(Double, String)],
                     xLabel: String, yLabel: String) -> String {
        var s = "<line x1=\"\(f(left))\" y1=\"\(f(bottom))\" x2=\"\(f(right))\" y2=\"\(f(bottom))\" stroke=\"#000\"/>\n"
        s += "<line x1=\"\(f(left))\" y1=\"\(f(top))\" x2=\"\(f(left))\" y2=\"\(f(bottom))\" stroke=\"#000\"/>\n"
        for (x, label) in xTicks {
            s += "<line x1=\"\(f(x))\" y1=\"\(f(bottom))\" x2=\"\(f(x))\" y2=\"\(f(bottom + 5))\" stroke=\"#000\"/>\n"
            s += text(x: x, y: bottom + 19, label, size: 11, anchor: "middle")
        }
        for (y, label) in yTicks {
            s += "<line x1=\"\(f(left - 5))\" y1=\"\(f(y))\" x2=\"\(f(right))\" y2=\"\(f(y))\" stroke=\"#ddd\"/>\n"
            s += text(x: left - 8, y: y + 4, label, size: 11, anchor: "end")
        }
        s += text(x: (left + right) / 2, y: bottom + 42, xLabel, size: 12, anchor: "middle")
        s += "<text x=\"\(f(left - 48))\" y=\"\(f((top + bottom) / 2))\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 \(f(left - 48)) \(f((top + bottom) / 2)))\">\(escaped(yLabel))</text>\n"
        return s
    }

    /// A range covering [lo, hi] with round ends and a round tick step (about 5 ticks).
    static func niceRange(_ lo: Double, _ hi: Double) -> (Double, Double, Double) {
        var (a, b) = (lo, hi)
        if !(b > a) { a -= 1; b += 1 }
        let raw = (b - a) / 5
        let magnitude = pow(10, (log10(raw)).rounded(.down))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        return ((a / step).rounded(.down) * step, (b / step).rounded(.up) * step, step)
    }

    static func ticks(_ lo: Double, _ hi: Double, _ step: Double) -> [Double] {
        stride(from: lo, through: hi + step * 1e-9, by: step).map { $0 }
    }

    /// Viridis at t in [0, 1] (linear between 5 stops of matplotlib's map).
    static func viridis(_ t: Double) -> String {
        let stops: [(Double, Double, Double)] = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)]
        let x = min(1, max(0, t)) * Double(stops.count - 1)
        let i = min(stops.count - 2, Int(x)), u = x - Double(i)
        let (a, b) = (stops[i], stops[i + 1])
        let c = [a.0 + (b.0 - a.0) * u, a.1 + (b.1 - a.1) * u, a.2 + (b.2 - a.2) * u].map { Int($0.rounded()) }
        return String(format: "#%02x%02x%02x", c[0], c[1], c[2])
    }
}
