import AQTokenizer
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
        let tokenizer: BertTokenizer
        do {
            tokenizer = try BertTokenizer(directory: RunInputs.modelDirectory(model, requireConfig: false, progress: TextIO.downloadBar))
        } catch let error as TokenizerError {
            throw TokenizeCommandError("cannot load tokenizer: \(error.description)")
        }
        try RunInputs.checkOutput(output, inputs: [("--input", input), ("--model", model)])
        let data = try readInput()
        let lines = try TokenizerIO.splitLines(data, source: input == "-" ? "standard input" : input)
        let out = TokenizerIO.jsonLines(lines, tokenizer: tokenizer, maxLength: maxLength, truncation: .longestFirst)
        if output == "-" {
            try TextIO.writeStandardOutput(out)
        } else {
            try TokenizerIO.writeAtomically(out, toPath: output)
        }
    }

    private func readInput() throws -> Data {
        if input == "-" {
            return FileHandle.standardInput.readDataToEndOfFile()
        }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: input, isDirectory: &isDir) else {
            throw TokenizeCommandError("input file \(input) does not exist")
        }
        if isDir.boolValue { throw TokenizeCommandError("input \(input) is a directory, expected a file") }
        do {
            return try Data(contentsOf: URL(fileURLWithPath: input))
        } catch {
            throw TokenizeCommandError("cannot read input \(input): \((error as NSError).localizedDescription)")
        }
    }
}

/// A one-line error of the `tokenize` subcommand.
struct TokenizeCommandError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) {
        self.description = String(String.UnicodeScalarView(description.unicodeScalars.map {
            $0 == "\n" || $0 == "\r" ? " " : $0
        }))
    }
}
