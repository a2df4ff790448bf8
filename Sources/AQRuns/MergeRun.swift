import AQExperiments
import AQFiles
import AQSafeTensors
import Foundation

/// Several comparisons of the same settings over different seeds as one (`merge-comparisons`).
public enum MergeRun {
    /// Reads each results.json of `results`, merges them (`ComparisonResults.merged`; each run's
    /// directory prefixed with its part's folder) and writes results.json, results.md and
    /// size_vs_metric.svg into `output` (created; a folder holding a results.json is refused).
    public static func run(results paths: [String], output: String) throws -> ComparisonResults {
        var parts: [(results: ComparisonResults, location: String)] = []
        for path in paths {
            let url = try RunInputs.existingFile(path, option: "--results")
            let data: Data
            do { data = try Data(contentsOf: url) } catch { throw RunError("cannot read --results \(path): \(error.localizedDescription)") }
            if let problem = StrictJSON.problem(in: data) { throw RunError("--results \(path) is not a compare results.json: \(problem)") }
            let r: ComparisonResults
            do { r = try JSONDecoder().decode(ComparisonResults.self, from: data) } catch {
                throw RunError("--results \(path) is not a compare results.json: \(StrictJSON.describe(error))")
            }
            if r.version != ComparisonResults.currentVersion {
                throw RunError("--results \(path) is version \(r.version) of results.json; this aqbert reads version \(ComparisonResults.currentVersion)")
            }
            parts.append((r, url.deletingLastPathComponent().path))
        }
        try RunInputs.checkOutput(output, inputs: paths.map { ("--results", $0) })
        let merged: ComparisonResults
        do { merged = try ComparisonResults.merged(parts) } catch let e as ComparisonError { throw RunError(e.description) }
        let out = URL(fileURLWithPath: output)
        do { try makeDirectories(out.path) } catch { throw RunError("--output: \(error)") }
        try RunInputs.lockOutput(output)
        let json = out.appendingPathComponent("results.json")
        if FileManager.default.fileExists(atPath: json.path) {
            throw RunError("--output \(output) holds a results.json already: choose a new directory")
        }
        do { try merged.writeFiles(in: out) } catch { throw RunError("--output: \(error)") }
        return merged
    }
}
