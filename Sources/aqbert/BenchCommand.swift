import AQBert
import AQQuant
import AQRuns
import AQTasks
import ArgumentParser
import CAQKernels
import Dispatch
import Foundation

/// Shapes for benchmarks without a checkpoint.
enum ConfigPreset: String, ExpressibleByArgument, CaseIterable {
    case base, minilm, tiny
    var config: BertConfig {
        switch self {
        case .base: return .base
        case .minilm: return .miniLM
        case .tiny: return .tiny
        }
    }
}

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure training steps or forward passes (one figure per line).",
        subcommands: [Train.self, Forward.self, QAT.self, Search.self, Infer.self]
    )

    /// The size checks every benchmark shares.
    static func validateRun(batch: Int, seq: Int, steps: Int, warmup: Int, threads: Int?) throws {
        if batch < 1 || seq < 1 || steps < 1 || warmup < 0 { throw ValidationError("--batch, --seq and --steps must be at least 1") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    struct Options: ParsableArguments {
        @Option(help: "A Hugging Face BERT directory or hub id (its weights and shapes).")
        var model: String?
        @Option(help: "Random weights with these shapes instead of --model.")
        var config: ConfigPreset?
        @Option(help: "Sequences per step.") var batch: Int = 8
        @Option(help: "Tokens per sequence.") var seq: Int = 128
        @Option(help: "Worker threads (default: all cores).") var threads: Int?
        @Option(help: "Timed steps (after 2 warm-up steps).") var steps: Int = 5
        @Option(help: "Untimed warm-up steps.") var warmup: Int = 2
        @Option(help: "Seed for weights, ids and dropout.") var seed: UInt64 = 0

        func validate() throws {
            if (model == nil) == (config == nil) { throw ValidationError("give exactly one of --model DIR or --config base|minilm|tiny") }
            try BenchCommand.validateRun(batch: batch, seq: seq, steps: steps, warmup: warmup, threads: threads)
        }

        /// Times `kind`'s steps and prints one figure per line.
        func run(_ kind: BenchmarkRuns.StepKind) throws {
            let request = BenchmarkRuns.StepRequest(model: model, config: config.map { ($0.config, $0.rawValue) }, kind: kind,
                                                    batch: batch, seq: seq, steps: steps, warmup: warmup, seed: seed, threads: threads)
            let (r, cfg, label) = try BenchmarkRuns.step(request) { step, s in
                FileHandle.standardError.write(Data("step \(step): \(String(format: "%.4f", s)) s\n".utf8))
            }
            print("implementation: aqbert \(aqbertVersion)")
            print("config: \(label) batch=\(batch) seq=\(seq) threads=\(Runtime.threads)")
            print("median_step_seconds: \(String(format: "%.6f", r.medianSeconds))")
            print("tokens_per_second: \(String(format: "%.1f", r.tokensPerSecond))")
            print("gflops: \(String(format: "%.1f", r.gflops))")
            print("peak_rss_mib: \(String(format: "%.1f", Double(r.peakResidentBytes ?? 0) / 1_048_576))")
            // The FFN-in GEMM of this configuration, alone: the rate the step is measured against.
            let sgemm = StepBenchmark.sgemmRate(m: batch * seq, n: cfg.intermediateSize, k: cfg.hiddenSize)
            print("reference_sgemm_gflops: \(String(format: "%.1f", sgemm))")
            BenchCommand.printMachine()
        }
    }

    /// The CPU level the kernels run and OpenBLAS's core.
    static func printMachine() {
        print("cpu_level: \(Kernels.cpuLevel)" + (Kernels.cpuLevel == Kernels.cpuBestLevel ? "" : " (the CPU runs \(Kernels.cpuBestLevel))"))
        let core = Runtime.blasCore
        print("blas_core: \(core.inUse)" + (core.inUse == core.detected ? "" : " (OpenBLAS detected \(core.detected))"))
    }

    struct Train: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Forward, backward and AdamW step of a sequence classifier.")
        @OptionGroup var options: Options
        func run() throws { try options.run(.train) }
    }

    /// Quantization-aware training step: uniform 2-bit plan on 128 row groups (8-bit
    /// activations and embeddings), everything else as `train`; with `--ranges learned` the
    /// groups' bounds train too, with `--distill` the loss is retrain's distillation from an fp32
    /// teacher of the same shapes (a second copy of the model, never quantized).
    struct QAT: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "qat", abstract: "A quantization-aware training step (uniform 2-bit plan).")
        @OptionGroup var options: Options
        @Option(help: "Row groups per matrix.") var groups: Int = 128
        @Option(help: "Weight group ranges: minmax or learned.") var ranges: RangeMode = .minmax
        @Option(help: "Distillation from an fp32 teacher: none, logits, layers or all.") var distill: DistillChoice = .none
        func run() throws { try options.run(.qat(groups: groups, ranges: ranges, distill: distill.mode)) }
    }

    /// One weight step of the search: Gumbel-softmax mixed weights over {0, 2, 4} on 128 row
    /// groups, logits trained too (an architecture step costs the same forward and backward).
    struct Search: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "search", abstract: "A super-network step (mixed weights over 0,2,4 bits).")
        @OptionGroup var options: Options
        @Option(help: "Row groups per matrix.") var groups: Int = 128
        func run() throws { try options.run(.superNetwork(groups: groups)) }
    }

    struct Forward: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Inference forward pass of a sequence classifier.")
        @OptionGroup var options: Options
        func run() throws { try options.run(.forward) }
    }

    /// Inference of a model directory as it ships: packed (aqbert export) runs the low-bit
    /// kernels, a quantization-aware fp32 directory its fake quantization, anything else fp32.
    struct Infer: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Inference latency, throughput and peak memory of a model directory (packed, QAT or fp32).")
        @Option(help: "A model directory (packed, quantization-aware or fp32).") var model: String
        @Option(help: "Sequences per forward pass.") var batch: Int = 1
        @Option(help: "Tokens per sequence.") var seq: Int = 128
        @Option(help: "Worker threads (default: all cores).") var threads: Int?
        @Option(help: "Timed forward passes.") var steps: Int = 20
        @Option(help: "Untimed warm-up passes.") var warmup: Int = 3
        @Flag(help: "Load a packed model without verifying its tensors' checksum.") var noVerify = false

        func validate() throws {
            try BenchCommand.validateRun(batch: batch, seq: seq, steps: steps, warmup: warmup, threads: threads)
        }

        func run() throws {
            let r = try BenchmarkRuns.inference(model: model, verify: !noVerify, batch: batch, seq: seq, warmup: warmup, steps: steps,
                                                threads: threads)
            print("implementation: aqbert \(aqbertVersion) \(r.kind)")
            print("config: \(r.label) batch=\(batch) seq=\(seq) threads=\(Runtime.threads)")
            print("latency_ms: \(String(format: "%.3f", 1000 * r.medianSeconds))")
            print("sequences_per_second: \(String(format: "%.2f", Double(batch) / r.medianSeconds))")
            print("peak_rss_mib: \(String(format: "%.1f", Double(r.peakResidentBytes) / 1_048_576))")
            BenchCommand.printMachine()
        }
    }
}
