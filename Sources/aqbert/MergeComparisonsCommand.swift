import AQRuns
import ArgumentParser
import Foundation

struct MergeComparisonsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge-comparisons",
        abstract: "Merge compare runs of the same settings (other seeds, budgets or methods) into one table.",
        discussion: """
            Each --results is a compare output's results.json (e.g. one seed per machine: compare \
            --seed 43 --seeds 1 ...), or FILE:METHODS for only the runs of those methods (e.g. \
            r/results.json:fp32,directq,uniform,qbert). A seed's runs may come from several parts (a \
            budget run later, or one run's baselines beside another's AQ-BERT), each run from one. The parts must agree on \
            task and on every recorded setting their runs depend on (the search's settings and band \
            only where a part holds AQ-BERT or random-plan runs; the sensitivity only where it holds \
            Q-BERT-MP), and every method's runs at a budget must cover every seed. Writes \
            results.json, results.md (means, spreads and per-seed margins over all seeds) and \
            size_vs_metric.svg into --output.
            """
    )
    @Option(help: "A compare output's results.json, or FILE:METHODS (comma-separated) for only those methods' runs; repeat for each part.")
    var results: [String] = []
    @Option(help: "Output directory (created).") var output: String

    func validate() throws {
        if results.count < 2 { throw ValidationError("give at least two --results files to merge") }
    }

    func run() throws {
        let merged = try MergeRun.run(results: results, output: output)
        print("merged \(results.count) comparisons: seeds \(merged.seeds.map(String.init).joined(separator: ", ")), \(merged.runs.count) runs -> \(output)/results.md, results.json, size_vs_metric.svg")
    }
}
