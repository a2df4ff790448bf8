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

    /// The runs `setting` changes: the search's settings (and its size band) only AQ-BERT's and the
    /// random control's, which take AQ-BERT's histograms; the Q-BERT sensitivity only Q-BERT-MP's;
    /// every other setting (model, data, epochs, recipe) every method's.
    static func methods(dependingOn setting: String) -> Set<ComparisonMethod> {
        if setting.hasPrefix("search_") || setting.hasPrefix("arch_") || setting == "tolerance" { return [.aqBERT, .random] }
        if setting == "sensitivity" { return [.qbert] }
        return Set(ComparisonMethod.allCases)
    }

    /// This comparison with only the runs of `methods` (rows recomputed): the part of a
    /// comparison to merge when its other runs are of another setting, or are in another part.
    public func keeping(_ methods: Set<ComparisonMethod>) -> ComparisonResults {
        var kept = ComparisonResults(task: task, metric: metric, budgets: budgets, seeds: seeds, settings: settings,
                                     runs: runs.filter { methods.contains($0.method) })
        kept.tolerance = tolerance
        return kept
    }

    /// One comparison from several runs of the same comparison: over different seeds (a seed per
    /// machine, or per session), and for a seed over different budgets or methods (a budget run
    /// later). Each part is a results.json as `file` names it; its runs' directories are prefixed
    /// with the file's folder. The seeds and budgets are those of all parts; the rows and margins
    /// are recomputed over them.
    ///
    /// The parts must agree on task, metric and every setting their runs depend on
    /// (`methods(dependingOn:)`): a part without AQ-BERT runs may have searched otherwise. A setting
    /// a part did not record yet counts as the value it ran with (`settingsRecordedLater`). A run
    /// (method, budget, seed) in two parts is an error, since the merge could not say which to
    /// keep, and so is a method whose runs at a budget do not cover every seed: its mean would
    /// be over other seeds than the rest of the table.
    public static func merged(_ parts: [(results: ComparisonResults, file: String)]) throws -> ComparisonResults {
        guard let (first, firstFile) = parts.first else { throw ComparisonError("nothing to merge: give at least one results.json") }
        for (other, file) in parts.dropFirst() {
            func differ(_ what: String, _ a: String, _ b: String) -> ComparisonError {
                ComparisonError("\(file) is another comparison than \(firstFile): its \(what) is \(b), not \(a)")
            }
            if other.task != first.task { throw differ("task", first.task, other.task) }
            if other.metric != first.metric { throw differ("metric", first.metric, other.metric) }
        }
        var settings: [String: String] = [:]
        let keys = Set(parts.flatMap(\.results.settings.keys)).union(["tolerance"]).sorted()
        for key in keys {
            let affected = methods(dependingOn: key)
            func value(_ part: ComparisonResults) -> String? {
                key == "tolerance" ? "+-\(part.tolerance)" : setting(key, of: part)
            }
            let bound = parts.filter { $0.results.runs.contains { affected.contains($0.method) } }
            if let (a, aFile) = bound.first, let (b, bFile) = bound.first(where: { value($0.results) != value(a) }) {
                let what = key == "tolerance" ? "band" : "setting \(key)"
                throw ComparisonError("\(bFile) is another comparison than \(aFile): its \(what) is \(value(b) ?? "(not set)"), not \(value(a) ?? "(not set)")")
            }
            if key != "tolerance", let v = value((bound.first ?? parts[0]).results) { settings[key] = v }
        }
        let tolerance = (parts.first { $0.results.runs.contains { $0.method == .aqBERT || $0.method == .random } } ?? parts[0]).results.tolerance
        var runs: [ComparisonRun] = []
        for (part, file) in parts {
            let folder = (file as NSString).deletingLastPathComponent
            for var run in part.runs {
                run.directory = folder.isEmpty ? run.directory : folder + "/" + run.directory
                if let twin = runs.first(where: { $0.method == run.method && $0.budgetBits == run.budgetBits && $0.seed == run.seed }) {
                    throw ComparisonError("seed \(run.seed)'s \(run.method.rawValue) run\(describe(run.budgetBits)) is in two parts (\(twin.directory) and \(run.directory)): merge each run once, leaving it out of one part")
                }
                runs.append(run)
            }
        }
        let seeds = Array(Set(parts.flatMap(\.results.seeds))).sorted()
        let budgets = Array(Set(parts.flatMap(\.results.budgets))).sorted()
        var cells: [(ComparisonMethod, Double?)] = []
        for run in runs where !cells.contains(where: { $0 == (run.method, run.budgetBits) }) { cells.append((run.method, run.budgetBits)) }
        for (method, budget) in cells {
            let covered = Set(runs.filter { $0.method == method && $0.budgetBits == budget }.map(\.seed))
            if let missing = seeds.first(where: { !covered.contains($0) }) {
                throw ComparisonError("no part holds seed \(missing)'s \(method.rawValue) run\(describe(budget)), which the other seeds have: add the part that holds it, or leave \(method.rawValue) out")
            }
        }
        var merged = ComparisonResults(task: first.task, metric: first.metric, budgets: budgets, seeds: seeds,
                                       settings: settings, runs: runs)
        merged.tolerance = tolerance
        return merged
    }

    private static func describe(_ budget: Double?) -> String {
        budget.map { String(format: " at %g bits", $0) } ?? ""
    }
}
