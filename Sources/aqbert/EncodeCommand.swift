import AQBert
import AQRuns
import ArgumentParser
import Foundation

struct EncodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encode",
        abstract: "Embed texts with a BERT encoder: JSON Lines {\"input_ids\": [...], \"embedding\": [...]}."
    )

    @Option(help: "A Hugging Face BERT directory (config.json, model.safetensors, vocab.txt) or a hub id (org/name[@revision]) found in the local Hugging Face cache or downloaded.")
    var model: String
    @Option(help: "UTF-8 text, one text per line ('-' = standard input).")
    var input: String
    @Option(help: "JSON Lines output, one object per input line ('-' = standard output).")
    var output: String
    @Option(help: "cls: last hidden state at [CLS]; mean: attention-masked mean of the last hidden states.")
    var pooling: Pooling = .cls
    @Option(help: "Texts per forward pass.")
    var batchSize: Int = 32
    @Option(help: "Worker threads (default: all cores).")
    var threads: Int?

    func validate() throws {
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    @Flag(help: "Load a packed model without verifying its tensors' checksum.") var noVerify = false

    func run() throws {
        let results = try EncodeRun.run(model: model, input: input, output: output, pooling: pooling, batchSize: batchSize,
                                        threads: threads, verify: !noVerify, downloadProgress: TextIO.downloadBar) { done, total in
            TextIO.progress("encoded \(done)/\(total)")
        }
        var out = ""
        out.reserveCapacity(results.count * 4096)
        for r in results {
            out += "{\"input_ids\": [" + r.inputIds.map(String.init).joined(separator: ", ") + "], \"embedding\": ["
            out += r.embedding.map { TextIO.json($0) }.joined(separator: ", ") + "]}\n"
        }
        try TextIO.write(out, to: output)
    }
}

extension Pooling: ExpressibleByArgument {}
