import Foundation

/// A task's scores as `aqbert score` and `aqbert evaluate` print them: one JSON object
/// `{"task": "sst2", "examples": 872, "metrics": {"accuracy": 91.2}}` (values on the 0-100 scale,
/// shortest round-trip doubles) or a short human table.
///
/// Metric keys: `accuracy` (sst2, mnli); `precision`, `recall`, `f1` (conll2003, entity-level
/// micro); `exact_match`, `f1` (squad). `examples` counts examples (sst2, mnli), sentences
/// (conll2003) or questions (squad).
public struct MetricReport: Sendable, Equatable {
    public struct Metric: Sendable, Equatable {
        public var name: String
        public var value: Double
        public init(_ name: String, _ value: Double) {
            self.name = name
            self.value = value
        }
    }

    /// One row of the conll2003 per-type table.
    public struct TypeRow: Sendable, Equatable {
        public var type: String
        public var counts: ConllEval.Counts
    }

    public var task: TaskName
    public var examples: Int
    /// In print order.
    public var metrics: [Metric]
    /// conll2003: per entity type, sorted by type (table only, not in the JSON object).
    public var perType: [TypeRow]

    public init(task: TaskName, examples: Int, metrics: [Metric], perType: [TypeRow] = []) {
        self.task = task
        self.examples = examples
        self.metrics = metrics
        self.perType = perType
    }

    /// sst2 / mnli.
    public static func accuracy(_ task: TaskName, examples: Int, accuracy: Double) -> MetricReport {
        MetricReport(task: task, examples: examples, metrics: [Metric("accuracy", accuracy)])
    }

    /// conll2003.
    public static func conll(_ scores: ConllEval.Scores, sentences: Int) -> MetricReport {
        let o = scores.overall
        return MetricReport(task: .conll2003, examples: sentences,
                            metrics: [Metric("precision", o.precision), Metric("recall", o.recall), Metric("f1", o.f1)],
                            perType: scores.types.map { TypeRow(type: $0, counts: scores.perType[$0]!) })
    }

    /// squad.
    public static func squad(_ scores: SquadEval.Scores) -> MetricReport {
        MetricReport(task: .squad, examples: scores.questions,
                     metrics: [Metric("exact_match", scores.exactMatch), Metric("f1", scores.f1)])
    }

    /// The metric named `name`, if present.
    public subscript(_ name: String) -> Double? { metrics.first { $0.name == name }?.value }

    /// Exactly one line, no newline: `{"task": "sst2", "examples": 872, "metrics": {"accuracy": 91.2}}`.
    public var json: String {
        let values = metrics.map { "\(jsonString($0.name)): \(jsonNumber($0.value))" }.joined(separator: ", ")
        return "{\"task\": \(jsonString(task.rawValue)), \"examples\": \(examples), \"metrics\": {\(values)}}"
    }

    /// A short table: metric names and values with 2 decimals; for conll2003 a per-type table.
    public var table: String {
        let unit = task == .conll2003 ? "sentences" : task == .squad ? "questions" : "examples"
        var lines = ["\(task.rawValue): \(examples) \(unit)"]
        let width = max(11, (metrics.map(\.name.count).max() ?? 0) + 2)
        for m in metrics { lines.append("  " + pad(m.name, width) + leftPad(format2(m.value), 7)) }
        if !perType.isEmpty {
            let typeWidth = max(6, (perType.map(\.type.count).max() ?? 0) + 2)
            lines.append("")
            lines.append("  " + pad("type", typeWidth) + ["precision", "recall", "f1", "gold", "predicted", "correct"]
                .map { leftPad($0, 10) }.joined())
            for row in perType {
                let c = row.counts
                let cells = [format2(c.precision), format2(c.recall), format2(c.f1), "\(c.gold)", "\(c.predicted)", "\(c.correct)"]
                lines.append("  " + pad(row.type.isEmpty ? "(none)" : row.type, typeWidth) + cells.map { leftPad($0, 10) }.joined())
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// A JSON number: the shortest representation that round-trips (Python's `repr`); null if not finite.
func jsonNumber(_ x: Double) -> String { x.isFinite ? "\(x)" : "null" }

/// `x` with two decimals, as conlleval's `printf "%6.2f"`.
func format2(_ x: Double) -> String { String(format: "%.2f", x) }

private func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count) }
private func leftPad(_ s: String, _ n: Int) -> String { s.count >= n ? " " + s : String(repeating: " ", count: n - s.count) + s }
