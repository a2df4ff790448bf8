import AQBert
import AQHub
import AQQuant
import AQSearch
import AQTasks
import Foundation

/// The measurements of `bench`: training steps or forward passes on random ids, and the
/// inference of a model directory as it ships. They return values; the caller prints them.
public enum BenchmarkRuns {
    /// What a step benchmark times.
    public enum StepKind {
        /// Forward, backward and AdamW step of a sequence classifier.
        case train
        /// An inference forward pass.
        case forward
        /// A quantization-aware training step with a uniform 2-bit plan on `groups` row groups
        /// (8-bit activations and embeddings); with `.learned` ranges the groups' bounds train too,
        /// with `distill` the loss is retrain's distillation from an fp32 teacher of the same
        /// shapes (a second copy of the model, never quantized).
        case qat(groups: Int, ranges: RangeMode, distill: DistillMode?)
        /// A super-network step: Gumbel-softmax mixed weights over {0, 2, 4} on `groups` row
        /// groups, the logits trained too (an architecture step costs the same).
        case superNetwork(groups: Int)
    }

    public struct StepRequest {
        /// A model directory or hub id (its weights and shapes), or nil for `config`.
        public var model: String?
        /// Shapes for seeded random weights when `model` is nil, and their name.
        public var config: (config: BertConfig, name: String)?
        public var kind: StepKind
        public var batch: Int
        public var seq: Int
        public var steps: Int
        public var warmup: Int
        public var seed: UInt64
        public var threads: Int?

        public init(model: String?, config: (config: BertConfig, name: String)?, kind: StepKind, batch: Int, seq: Int, steps: Int,
                    warmup: Int, seed: UInt64, threads: Int?) {
            self.model = model
            self.config = config
            self.kind = kind
            self.batch = batch
            self.seq = seq
            self.steps = steps
            self.warmup = warmup
            self.seed = seed
            self.threads = threads
        }
    }

    /// Times `r.steps` steps after `r.warmup` untimed ones; `progress` hears each step's seconds.
    /// Returns the result, the shapes and a label (the directory's or the preset's name).
    public static func step(_ r: StepRequest, progress: ((Int, Double) -> Void)? = nil) throws
        -> (result: StepBenchmark.Result, config: BertConfig, label: String) {
        if let threads = r.threads { Runtime.threads = threads }
        let (loaded, cfg, label) = try stepModel(r)
        if r.seq > cfg.maxPositionEmbeddings {
            throw RunError("--seq \(r.seq) exceeds max_position_embeddings \(cfg.maxPositionEmbeddings)")
        }
        var prepare: ((BertTaskModel) throws -> [Tensor])?
        var loss: ((BertTaskModel, BertBatch, [Int32], Tape) -> Tensor)?
        var keepQuantization: QuantizedBert?
        var keepNetwork: SuperNetwork?
        let mode: StepBenchmark.Mode
        switch r.kind {
        case .train:
            mode = .train
        case .forward:
            mode = .forward
        case let .qat(groups, ranges, distill):
            mode = .train
            if let distill {
                // The teacher: the same checkpoint or the same seeded random weights.
                let (teacherLoaded, _, _) = try stepModel(r)
                let teacher = teacherLoaded ?? BertTaskModel(config: cfg, architecture: .sequenceClassification, numLabels: 2)
                if teacherLoaded == nil {
                    var g = SeededGenerator(seed: r.seed)
                    teacher.bert.initializeWeights(generator: &g)
                    teacher.head?.initialize(std: cfg.initializerRange, generator: &g)
                }
                let d = Distillation(teacher: teacher, settings: DistillationSettings(mode: distill))
                loss = { model, inputs, labels, tape in d.loss(of: model, batch: FeatureBatch(inputs: inputs, labels: labels), tape: tape) }
            }
            prepare = { model in
                let plan = try BitPlan.uniform(model: model, bits: 2, groups: groups, candidates: [0, 2, 4])
                let q = try QuantizedBert(plan: plan, model: model, ranges: ranges)
                q.training = true
                keepQuantization = q
                return q.rangeParameters.map(\.tensor)
            }
        case let .superNetwork(groups):
            mode = .train
            prepare = { model in
                let net = try SuperNetwork(model: model, candidates: [0, 2, 4], groups: groups, seed: 1)
                net.temperature = 1
                keepNetwork = net
                return net.logits
            }
        }
        let result = try StepBenchmark.run(config: cfg, model: loaded, mode: mode, batch: r.batch, seq: r.seq, steps: r.steps,
                                           warmup: r.warmup, seed: r.seed, prepare: prepare, loss: loss, progress: progress)
        withExtendedLifetime((keepQuantization, keepNetwork)) {}
        return (result, cfg, label)
    }

    private static func stepModel(_ r: StepRequest) throws -> (model: BertTaskModel?, config: BertConfig, label: String) {
        if let spec = r.model {
            let dir = try RunInputs.modelDirectory(spec)
            let (m, _) = try BertTaskModel.load(directory: dir, architecture: .sequenceClassification, numLabels: 2)
            return (m, m.config, dir.lastPathComponent)
        }
        guard let preset = r.config else { throw RunError("give exactly one of --model DIR or --config base|minilm|tiny") }
        return (nil, preset.config, preset.name)
    }

    /// An inference measurement of a model directory.
    public struct Inference {
        /// packed (the low-bit kernels), qat-simulated (fake quantization) or fp32.
        public let kind: String
        /// The directory's name.
        public let label: String
        public let medianSeconds: Double
        public let peakResidentBytes: Int
    }

    /// Median seconds of `steps` forward passes of the directory at `spec` as it ships (packed,
    /// quantization-aware or fp32) on random ids, after `warmup` untimed ones.
    public static func inference(model spec: String, verify: Bool, batch: Int, seq: Int, warmup: Int, steps: Int,
                                 threads: Int?) throws -> Inference {
        if let threads { Runtime.threads = threads }
        let dir = try RunInputs.modelDirectory(spec)
        let loaded: BertTaskModel
        let kind: String
        do {
            if PackedBert.isPacked(dir) {
                loaded = try PackedBert.load(directory: dir, verify: verify).model
                kind = "packed"
            } else {
                loaded = try BertTaskModel.load(directory: dir).model
                kind = try QuantizedBert.load(from: dir, into: loaded) == nil ? "fp32" : "qat-simulated"
            }
        } catch { throw RunError("\(error)") }
        if seq > loaded.config.maxPositionEmbeddings {
            throw RunError("--seq \(seq) exceeds max_position_embeddings \(loaded.config.maxPositionEmbeddings)")
        }
        let median = StepBenchmark.median(StepBenchmark.inferenceSeconds(model: loaded, batch: batch, seq: seq, warmup: warmup, steps: steps))
        return Inference(kind: kind, label: dir.lastPathComponent, medianSeconds: median, peakResidentBytes: Runtime.peakResidentBytes() ?? 0)
    }
}
