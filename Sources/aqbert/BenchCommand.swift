import AQBert
import AQQuant
import AQSearch
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

        /// The model `run` benchmarks, from --model or --config (seeded random weights).
        func loadModel() throws -> (model: BertTaskModel?, config: BertConfig, label: String) {
            if let path = model {
                let dir = try TextIO.modelDirectory(path)
                let (m, _) = try BertTaskModel.load(directory: dir, architecture: .sequenceClassification, numLabels: 2)
                return (m, m.config, dir.lastPathComponent)
            }
            return (nil, config!.config, config!.rawValue)
        }

        func run(_ mode: StepBenchmark.Mode, prepare: ((BertTaskModel) throws -> [Tensor])? = nil,
                 loss: ((BertTaskModel, BertBatch, [Int32], Tape) -> Tensor)? = nil) throws {
            if let threads { Runtime.threads = threads }
            let (loaded, cfg, label) = try loadModel()
            if seq > cfg.maxPositionEmbeddings {
                throw ValidationError("--seq \(seq) exceeds max_position_embeddings \(cfg.maxPositionEmbeddings)")
            }
            let r = try StepBenchmark.run(config: cfg, model: loaded, mode: mode, batch: batch, seq: seq, steps: steps,
                                      warmup: warmup, seed: seed, prepare: prepare, loss: loss) { step, s in
                FileHandle.standardError.write("step \(step): \(String(format: "%.4f", s)) s\n".data(using: .utf8)!)
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
            print("cpu_level: \(Kernels.cpuLevel)" + (Kernels.cpuLevel == Kernels.cpuBestLevel ? "" : " (the CPU runs \(Kernels.cpuBestLevel))"))
            let core = Runtime.blasCore
            print("blas_core: \(core.inUse)" + (core.inUse == core.detected ? "" : " (OpenBLAS detected \(core.detected))"))
        }
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
        func run() throws {
            var keep: QuantizedBert?
            var distillation: Distillation?
            if let mode = distill.mode {
                // The teacher: the same checkpoint or the same seeded random weights.
                let (loaded, cfg, _) = try options.loadModel()
                let teacher = loaded ?? BertTaskModel(config: cfg, architecture: .sequenceClassification, numLabels: 2)
                if loaded == nil {
                    var g = SeededGenerator(seed: options.seed)
                    teacher.bert.initializeWeights(generator: &g)
                    teacher.head?.initialize(std: cfg.initializerRange, generator: &g)
                }
                distillation = Distillation(teacher: teacher, settings: DistillationSettings(mode: mode))
            }
            try options.run(.train, prepare: { model in
                let plan = try BitPlan.uniform(model: model, bits: 2, groups: groups, candidates: [0, 2, 4])
                keep = try QuantizedBert(plan: plan, model: model, ranges: ranges)
                keep?.training = true
                return keep?.rangeParameters.map(\.tensor) ?? []
            }, loss: distillation.map { d in
                { model, inputs, labels, tape in d.loss(of: model, batch: FeatureBatch(inputs: inputs, labels: labels), tape: tape) }
            })
            _ = keep
        }
    }

    /// One weight step of the search: Gumbel-softmax mixed weights over {0, 2, 4} on 128 row
    /// groups, logits trained too (an architecture step costs the same forward and backward).
    struct Search: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "search", abstract: "A super-network step (mixed weights over 0,2,4 bits).")
        @OptionGroup var options: Options
        @Option(help: "Row groups per matrix.") var groups: Int = 128
        func run() throws {
            var keep: SuperNetwork?
            try options.run(.train) { model in
                let net = try SuperNetwork(model: model, candidates: [0, 2, 4], groups: groups, seed: 1)
                net.temperature = 1
                keep = net
                return net.logits
            }
            _ = keep
        }
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
            if let threads { Runtime.threads = threads }
            let dir = try TextIO.modelDirectory(model)
            let loaded: BertTaskModel
            let kind: String
            do {
                if PackedBert.isPacked(dir) {
                    loaded = try PackedBert.load(directory: dir, verify: !noVerify).model
                    kind = "packed"
                } else {
                    loaded = try BertTaskModel.load(directory: dir).model
                    kind = try QuantizedBert.load(from: dir, into: loaded) == nil ? "fp32" : "qat-simulated"
                }
            } catch { throw CLIError("\(error)") }
            if seq > loaded.config.maxPositionEmbeddings {
                throw ValidationError("--seq \(seq) exceeds max_position_embeddings \(loaded.config.maxPositionEmbeddings)")
            }
            let median = StepBenchmark.median(StepBenchmark.inferenceSeconds(model: loaded, batch: batch, seq: seq, warmup: warmup, steps: steps))
            let peak = Runtime.peakResidentBytes() ?? 0
            print("implementation: aqbert \(aqbertVersion) \(kind)")
            print("config: \(dir.lastPathComponent) batch=\(batch) seq=\(seq) threads=\(Runtime.threads)")
            print("latency_ms: \(String(format: "%.3f", 1000 * median))")
            print("sequences_per_second: \(String(format: "%.2f", Double(batch) / median))")
            print("peak_rss_mib: \(String(format: "%.1f", Double(peak) / 1_048_576))")
            print("cpu_level: \(Kernels.cpuLevel)" + (Kernels.cpuLevel == Kernels.cpuBestLevel ? "" : " (the CPU runs \(Kernels.cpuBestLevel))"))
            let core = Runtime.blasCore
            print("blas_core: \(core.inUse)" + (core.inUse == core.detected ? "" : " (OpenBLAS detected \(core.detected))"))
        }
    }
}
