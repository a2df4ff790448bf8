import AQHub
import AQTokenizer
import Foundation

/// WordPiece ids, tokens and offsets of a text file (`tokenize`).
public enum TokenizeRun {
    /// The JSON Lines of every line of `input` ('-' = standard input), tokenized with the
    /// tokenizer of `model` (a directory with vocab.txt, or a hub id), truncated to `maxLength`
    /// (longest first) when given.
    public static func run(model spec: String, input: String, output: String, maxLength: Int?,
                           downloadProgress: ((DownloadProgress) -> Void)? = nil) throws -> Data {
        let tokenizer: BertTokenizer
        do {
            tokenizer = try BertTokenizer(directory: RunInputs.modelDirectory(spec, requireConfig: false, progress: downloadProgress))
        } catch let error as TokenizerError {
            throw RunError("cannot load tokenizer: \(error.description)")
        }
        try RunInputs.checkOutput(output, inputs: [("--input", input), ("--model", spec)])
        let lines = try TokenizerIO.splitLines(readInput(input), source: input == "-" ? "standard input" : input)
        return TokenizerIO.jsonLines(lines, tokenizer: tokenizer, maxLength: maxLength, truncation: .longestFirst)
    }

    private static func readInput(_ input: String) throws -> Data {
        if input == "-" {
            return FileHandle.standardInput.readDataToEndOfFile()
        }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: input, isDirectory: &isDir) else {
            throw RunError("input file \(input) does not exist")
        }
        if isDir.boolValue { throw RunError("input \(input) is a directory, expected a file") }
        do {
            return try Data(contentsOf: URL(fileURLWithPath: input))
        } catch {
            throw RunError("cannot read input \(input): \((error as NSError).localizedDescription)")
        }
    }
}
