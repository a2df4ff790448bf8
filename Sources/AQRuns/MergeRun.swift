import AQExperiments
import AQFiles
import AQSafeTensors
import Foundation

/// Several comparisons of the same settings (other seeds, or a seed's other budgets or methods) as one (`merge-comparisons`).
public enum MergeRun {
    /// Reads each part of `results` (a results.json, or `FILE:METHODS` for only the runs of those
    /// methods, comma-separated), merges them (`ComparisonResults.merged`; each run's directory
    /// prefixed with its file's folder) and writes results.json, results.md and size_vs_metric.svg
    /// into `output` (created; a folder holding a results.json is refused).
    public static func run(results specs: [String], output: String) throws -> ComparisonResults {
        var parts: [(results: ComparisonResults, file: String)] = []
        var paths: [String] = []
        for spec in specs {
            let (path, methods) = try part(spec)
            let url = try RunInputs.existingFile(path, option: "--results")
            let data: Data
            do { data = try Data(contentsOf: url) } catch { throw RunError("cannot read --results \(path): \(error.localizedDescription)") }
            if let problem = StrictJSON.problem(in: data) { throw RunError("--results \(path) is not a compare results.json: \(problem)") }
            var r: ComparisonResults
            do { r = try JSONDecoder().decode(ComparisonResults.self, from: data) } catch {
                throw RunError("--results \(path) is not a compare results.json: \(StrictJSON.describe(error))")
            }
            if r.version != ComparisonResults.currentVersion {
                throw RunError("--results \(path) is version \(r.version) of results.json; this aqbert reads version \(ComparisonResults.currentVersion)")
            }
            if let methods {
                if let absent = methods.first(where: { m in !r.runs.contains { $0.method == m } }) {
                    throw RunError("--results \(spec): \(path) holds no \(absent.rawValue) run")
                }
                r = r.keeping(methods)
            }
            parts.append((r, path))
            paths.append(path)
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

    /// A `--results` value: a file, or `FILE:METHODS` when the file does not exist as written and
    /// the text after its last ':' names methods.
    static func part(_ spec: String) throws -> (path: String, methods: Set<ComparisonMethod>?) {
        guard !FileManager.default.fileExists(atPath: spec), let colon = spec.lastIndex(of: ":") else { return (spec, nil) }
        let names = spec[spec.index(after: colon)...].split(separator: ",", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces) }
        let methods = names.compactMap(ComparisonMethod.init(rawValue:))
        guard methods.count == names.count, !methods.isEmpty else {
            if names.contains(where: { ComparisonMethod(rawValue: $0) != nil }) {
                throw RunError("--results \(spec): after ':' give methods from \(ComparisonMethod.allCases.map(\.rawValue).joined(separator: ", ")), comma-separated")
            }
            return (spec, nil)
        }
        return (String(spec[..<colon]), Set(methods))
    }
}
