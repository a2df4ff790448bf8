import AQBert
import AQHub
import AQQuant
import AQTokenizer
import Foundation

/// Sentence embeddings of a model directory (`encode`).
public enum EncodeRun {
    /// The texts of `input` (one per line, '-' = standard input) embedded by the encoder at
    /// `model` (a packed one runs its low-bit kernels); `progress` hears (done, total).
    public static func run(model spec: String, input: String, output: String, pooling: Pooling, batchSize: Int, threads: Int?,
                           verify: Bool, downloadProgress: ((DownloadProgress) -> Void)? = nil,
                           progress: ((Int, Int) -> Void)? = nil) throws -> [SentenceEncoder.Output] {
        if let threads { Runtime.threads = threads }
        let texts = try RunInputs.lines(input)
        let dir = try RunInputs.modelDirectory(spec, progress: downloadProgress)
        try RunInputs.checkOutput(output, inputs: [("--input", input), ("--model", dir.path)])
        let encoder: SentenceEncoder
        if PackedBert.isPacked(dir) {
            do {
                encoder = try SentenceEncoder(model: PackedBert.load(directory: dir, architecture: .base, verify: verify).model,
                                              tokenizer: BertTokenizer(directory: dir))
            } catch { throw RunError("\(error)") }
        } else {
            encoder = try SentenceEncoder(directory: dir)
        }
        return encoder.encode(texts, pooling: pooling, batchSize: batchSize, progress: progress)
    }
}
