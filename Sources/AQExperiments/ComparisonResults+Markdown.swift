import Foundation

extension ComparisonResults {
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
}
