import AQRuns
import ArgumentParser
import Foundation

struct MergeComparisonsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge-comparisons",
        abstract: "Merge compare runs of the same settings over different seeds into one table.",
        discussion: """
            Each --results is a compare output's results.json (e.g. one seed per machine: compare \
            --seed 43 --seeds 1 ...). The parts must agree on task, budgets, band and every recorded \
            setting, and hold each (method, budget, seed) once. Writes results.json, results.md (means, \
            spreads and per-seed margins over all seeds) and size_vs_metric.svg into --output.
            """
    )
    @Option(help: "A compare output's results.json (repeat for each part).") var results: [String] = []
    @Option(help: "Output directory (created).") var output: String

    func validate() throws {
        if results.count < 2 { throw ValidationError("give at least two --results files to merge") }
    }

    func run() throws {
        let merged = try MergeRun.run(results: results, output: output)
        print("merged \(results.count) comparisons: seeds \(merged.seeds.map(String.init).joined(separator: ", ")), \(merged.runs.count) runs -> \(output)/results.md, results.json, size_vs_metric.svg")
    }
}
