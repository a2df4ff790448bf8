import AQBert
import AQQuant
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
        let dir = try TextIO.modelDirectory(model)
        if PackedBert.isPacked(dir) { throw CLIError("--model \(model) is packed already") }
        let outURL = URL(fileURLWithPath: output)
        if FileManager.default.fileExists(atPath: outURL.path) {
            throw CLIError("--output \(output) exists: choose a new directory (export never overwrites a model)")
        }
        let (m, _): (BertTaskModel, BertLoadReport)
        do { (m, _) = try BertTaskModel.load(directory: dir) } catch { throw CLIError("\(error)") }
        let quantization: QuantizedBert
        do {
            guard let q = try QuantizedBert.load(from: dir, into: m) else {
                throw CLIError("--model \(model) has no quantization_config: it is an fp32 model; run aqbert retrain --plan first")
            }
            quantization = q
        } catch let e as CLIError { throw e } catch { throw CLIError("\(error)") }
        let sizes: (bytes: Int, predicted: Int)
        do { sizes = try PackedBert.exportDirectory(model: m, quantization: quantization, tokenizerFrom: dir, to: outURL) } catch {
            throw CLIError("\(error)")
        }
        let fp32 = (try? FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent("model.safetensors").path)[.size] as? Int) ?? 0
        let p = quantization.plan
        print(String(format: "plan: %.3f average bits, %.1f%% of groups pruned, encoder weights %.3f MiB", p.averageBits,
                     100 * p.prunedFraction, p.sizeMiB))
        print(String(format: "model.safetensors: %d bytes (%.2f MiB; predicted %d, %+.3f%%), fp32 %d bytes (%.1fx smaller)",
                     sizes.bytes, Double(sizes.bytes) / 1_048_576, sizes.predicted,
                     100 * Double(sizes.bytes - sizes.predicted) / Double(max(1, sizes.predicted)), fp32,
                     Double(fp32) / Double(max(1, sizes.bytes))))
        print("packed model in \(output)")
    }
}
