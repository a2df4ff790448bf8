import AQRuns
import ArgumentParser
import Foundation

/// `aqbert tokenize --model DIR --input FILE --output FILE [--max-length N]`
///
/// Input: UTF-8, one text per line; only `\n` ends a line (a `\r` stays in the text), an
/// empty line is an empty text, and a final `\n` does not add an empty text.
/// Output: JSON Lines, one `{"input_ids": [...], "tokens": [...], "offsets": [[s, e], ...]}`
/// per input line, in order, `[CLS]`/`[SEP]` included; offsets are Unicode scalar indices
/// into the line (Python `str` indices), (0, 0) for `[CLS]`/`[SEP]`. Nothing is truncated
/// unless `--max-length N` (longest_first, N counts `[CLS]`/`[SEP]`). `-` is stdin / stdout.
/// The output file is written atomically (temporary file in its directory + rename).
struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Tokenize a text file (one text per line) into JSON Lines of ids, tokens and offsets."
    )

    @Option(name: .long, help: ArgumentHelp("Tokenizer directory (vocab.txt, optional tokenizer_config.json, ...).", valueName: "dir"))
    var model: String

    @Option(name: .long, help: ArgumentHelp("UTF-8 text file, one text per line ('-' = stdin).", valueName: "file"))
    var input: String

    @Option(name: .long, help: ArgumentHelp("JSON Lines output file ('-' = stdout).", valueName: "file"))
    var output: String

    @Option(name: .long, help: ArgumentHelp("Truncate to N tokens including [CLS]/[SEP] (longest_first).", valueName: "n"))
    var maxLength: Int?

    func validate() throws {
        if let maxLength, maxLength < 2 {
            throw ValidationError("--max-length must be at least 2 (room for [CLS] and [SEP]), got \(maxLength)")
        }
    }

    func run() throws {
        let out = try TokenizeRun.run(model: model, input: input, output: output, maxLength: maxLength, downloadProgress: TextIO.downloadBar)
        if output == "-" {
            try TextIO.writeStandardOutput(out)
        } else {
            try RunInputs.write(out, to: output)
        }
    }
}
