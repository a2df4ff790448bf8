import AQRuns
import ArgumentParser
import Foundation

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write the packed low-bit model of a quantization-aware one (a retrain output).",
        discussion: """
            The output is a Hugging Face-style directory (Docs/PACKED_FORMAT.md): config.json with a \
            quantization_config ("packed": true), model.safetensors with each group's codes at its own \
            width, fp16 ranges, no bytes for pruned groups, 8-bit embeddings and fp32 biases, LayerNorm \
            and head; plan.json and the tokenizer files. evaluate, predict, encode and bench infer run it \
            with the packed kernels.
            """
    )
    @Option(help: "A quantization-aware model directory (aqbert retrain output).") var model: String
    @Option(help: "Output directory (must not exist yet).") var output: String

    func run() throws {
        let r = try ExportRun.run(model: model, output: output, downloadProgress: TextIO.downloadBar)
        let p = r.plan
        print(String(format: "plan: %.3f average bits, %.1f%% of groups pruned, encoder weights %.3f MiB", p.averageBits,
                     100 * p.prunedFraction, p.sizeMiB))
        print(String(format: "model.safetensors: %d bytes (%.2f MiB; predicted %d, %+.3f%%), fp32 %d bytes (%.1fx smaller)",
                     r.bytes, Double(r.bytes) / 1_048_576, r.predicted,
                     100 * Double(r.bytes - r.predicted) / Double(max(1, r.predicted)), r.fp32Bytes,
                     Double(r.fp32Bytes) / Double(max(1, r.bytes))))
        print("packed model in \(output)")
    }
}
