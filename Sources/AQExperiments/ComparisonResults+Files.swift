import AQBert
import Foundation

extension ComparisonResults {
    /// Writes results.md, size_vs_metric.svg and results.json (last: a folder with a
    /// results.json holds a finished table) into `directory`, each atomically.
    public func writeFiles(in directory: URL) throws {
        try writeAtomically(Data(markdown().utf8), to: directory.appendingPathComponent("results.md"))
        try writeAtomically(Data(sizeSVG().utf8), to: directory.appendingPathComponent("size_vs_metric.svg"))
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        try writeAtomically(try e.encode(self), to: directory.appendingPathComponent("results.json"))
    }

    /// Settings that `compare` began to record after results.json's version was fixed, with the
    /// value every comparison ran with before: a part written earlier lacks the key and ran with
    /// that value.
    static let settingsRecordedLater: [String: String] = ["search_arch_distill": "none"]

    /// A part's value of a setting: recorded, or the value it ran with before the setting was recorded.
    static func setting(_ key: String, of part: ComparisonResults) -> String? {
        part.settings[key] ?? settingsRecordedLater[key]
    }

    /// One comparison from several runs of the same comparison over different seeds (a seed per
    /// machine, or per session): the runs of every part, each run's directory prefixed with its
    /// part's `location` (where that part's comparison folder is, as the caller names it), the
    /// seeds of all parts, the rows and margins recomputed over them.
    ///
    /// The parts must agree on what was compared: task, metric, budgets, band and every recorded
    /// setting (model, data, epochs, recipe, search). A run (method, budget, seed) in two parts is
    /// an error, since the merge could not say which to keep. A setting a part did not record yet
    /// counts as the value it ran with (`settingsRecordedLater`).
    public static func merged(_ parts: [(results: ComparisonResults, location: String)]) throws -> ComparisonResults {
        guard let (first, firstLocation) = parts.first else { throw ComparisonError("nothing to merge: give at least one results.json") }
        for (other, location) in parts.dropFirst() {
            func differ(_ what: String, _ a: String, _ b: String) -> ComparisonError {
                ComparisonError("\(location) is another comparison than \(firstLocation): its \(what) is \(b), not \(a)")
            }
            if other.task != first.task { throw differ("task", first.task, other.task) }
            if other.metric != first.metric { throw differ("metric", first.metric, other.metric) }
            if Set(other.budgets) != Set(first.budgets) {
                throw differ("budgets", first.budgets.sorted().map { String(format: "%g", $0) }.joined(separator: ","),
                             other.budgets.sorted().map { String(format: "%g", $0) }.joined(separator: ","))
            }
            if other.tolerance != first.tolerance { throw differ("band", "+-\(first.tolerance)", "+-\(other.tolerance)") }
            let keys = Set(first.settings.keys).union(other.settings.keys).sorted()
            if let key = keys.first(where: { setting($0, of: first) != setting($0, of: other) }) {
                throw differ("setting \(key)", setting(key, of: first) ?? "(not set)", setting(key, of: other) ?? "(not set)")
            }
        }
        var runs: [ComparisonRun] = []
        for (part, location) in parts {
            for var run in part.runs {
                if let twin = runs.first(where: { $0.method == run.method && $0.budgetBits == run.budgetBits && $0.seed == run.seed }) {
                    let budget = run.budgetBits.map { String(format: " at %g bits", $0) } ?? ""
                    throw ComparisonError("seed \(run.seed)'s \(run.method.rawValue) run\(budget) is in two parts (\(twin.directory) and \(location)/\(run.directory)): merge each seed once")
                }
                run.directory = location + "/" + run.directory
                runs.append(run)
            }
        }
        let seeds = Array(Set(parts.flatMap(\.results.seeds))).sorted()
        var settings = first.settings
        for key in Set(parts.flatMap(\.results.settings.keys)) { settings[key] = setting(key, of: first) }
        var merged = ComparisonResults(task: first.task, metric: first.metric, budgets: first.budgets, seeds: seeds,
                                       settings: settings, runs: runs)
        merged.tolerance = first.tolerance
        return merged
    }
}
