import AQExperiments
import AQFiles
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
            let r: ComparisonResults
            do { r = try JSONDecoder().decode(ComparisonResults.self, from: Data(contentsOf: url)) } catch {
                throw RunError("--results \(path) is not a compare results.json: \(reason(error))")
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
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        // results.json last: its presence says the merge finished.
        try RunInputs.write(Data(merged.markdown().utf8), to: out.appendingPathComponent("results.md").path)
        try RunInputs.write(Data(merged.sizeSVG().utf8), to: out.appendingPathComponent("size_vs_metric.svg").path)
        try RunInputs.write(try e.encode(merged), to: json.path)
        return merged
    }

    /// A decoding failure in a few words.
    private static func reason(_ error: Error) -> String {
        func at(_ path: [CodingKey]) -> String { path.isEmpty ? "the top level" : path.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".") }
        switch error {
        case DecodingError.keyNotFound(let key, let c): return "no \"\(key.stringValue)\" in \(at(c.codingPath))"
        case DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c): return "\(at(c.codingPath)) has the wrong type"
        case DecodingError.dataCorrupted(let c): return c.codingPath.isEmpty ? "not JSON" : "\(at(c.codingPath)): \(c.debugDescription)"
        default: return error.localizedDescription
        }
    }
}
