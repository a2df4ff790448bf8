import AQTasks
import ArgumentParser
import Foundation

/// `aqbert score --task sst2|mnli|conll2003|squad --data FILE --predictions FILE [--json]`
///
/// Scores predictions made anywhere with aqbert's metric code, as the official scripts do:
/// - sst2 / mnli: JSON Lines `{"index": i, "label": "...", "probabilities": [...]}`, one per
///   example in input order, labels named as in the reader's label list; accuracy.
/// - conll2003: a file laid out like the data file, line for line, the predicted tag in the last
///   column; entity-level precision / recall / F1 (conlleval semantics).
/// - squad: `predictions.json` `{question_id: answer_text}`; EM / F1 of `evaluate-v1.1.py`
///   (questions without a prediction score 0, with a warning on stderr).
///
/// Output: a short table, or with `--json` exactly one JSON object
/// `{"task": "sst2", "examples": 872, "metrics": {"accuracy": 91.2}}` (0-100 scale).
struct ScoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "score",
        abstract: "Score a predictions file against a data file with the task's official metric.",
        discussion: """
            Predictions: sst2/mnli JSON Lines {"index": i, "label": "...", "probabilities": [...]} \
            (one per example, in order); conll2003 the data file's layout with the predicted tag \
            as the last column; squad predictions.json {question_id: answer_text}.
            """
    )

    @Option(help: ArgumentHelp("The task whose metric to use.", valueName: "task"))
    var task: TaskName

    @Option(help: ArgumentHelp("The labelled data file (e.g. GLUE dev.tsv, CoNLL valid.txt, dev-v1.1.json).", valueName: "file"))
    var data: String

    @Option(help: ArgumentHelp("The predictions file (format depends on --task; see above).", valueName: "file"))
    var predictions: String

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    func run() throws {
        let result: TaskScorer.Result
        do {
            result = try TaskScorer.score(task: task, data: URL(fileURLWithPath: data),
                                          predictions: URL(fileURLWithPath: predictions))
        } catch let error as DataError {
            throw ScoreCommandError(error.description)
        }
        for w in result.warnings { FileHandle.standardError.write(Data("warning: \(w)\n".utf8)) }
        print(json ? result.report.json : result.report.table, terminator: json ? "\n" : "")
    }
}

/// A one-line error of the `score` subcommand.
struct ScoreCommandError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) {
        self.description = description.split(whereSeparator: \.isNewline).joined(separator: " ")
    }
}
