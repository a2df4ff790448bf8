import AQNN
import Foundation

/// Times training steps (forward, backward, AdamW) or forward passes of a BERT sequence
/// classifier on random ids. Reports values; the executable prints them.
public struct StepBenchmark {
    public enum Mode: String, Sendable, CaseIterable { case train, forward }

    public struct Result: Sendable {
        /// Seconds of each timed step, in order.
        public var stepSeconds: [Double]
        /// Matmul FLOPs of one step (bench/README.md formula).
        public var flopsPerStep: Double
        public var tokensPerStep: Int
        public var peakResidentBytes: Int?
        public var lastLoss: Float

        public var medianSeconds: Double { StepBenchmark.median(stepSeconds) }
        public var tokensPerSecond: Double { Double(tokensPerStep) / medianSeconds }
        public var gflops: Double { flopsPerStep / medianSeconds / 1e9 }
    }

    /// The median (the mean of the middle two for an even count; NaN for none).
    public static func median(_ values: [Double]) -> Double {
        let s = values.sorted()
        guard !s.isEmpty else { return .nan }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    /// Seconds of each of `steps` inference forward passes of `model` (after `warmup` untimed
    /// ones) on a `batch` x `seq` batch of the ids bench/hf_infer.py feeds: id = (1000 + 7919 i) %
    /// vocab, no padding. `seq` must fit max_position_embeddings.
    public static func inferenceSeconds(model: BertTaskModel, batch: Int, seq: Int, warmup: Int, steps: Int) -> [Double] {
        let vocab = model.config.vocabSize
        let ids = (0..<(batch * seq)).map { Int32((1000 + 7919 * $0) % vocab) }
        let data = BertBatch(inputIds: ids, batchSize: batch, sequenceLength: seq)
        model.training = false
        var times: [Double] = []
        for step in 0..<(warmup + steps) {
            let start = DispatchTime.now().uptimeNanoseconds
            _ = model.forward(data, tape: .inference)
            if step >= warmup { times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9) }
        }
        return times
    }

    /// Matmul FLOPs of one forward pass: per layer tokens*(2*H*3H + 2*H*H + 2*2*H*I) + 4*B*T*T*H,
    /// plus pooler 2*B*H*H and classifier 2*B*H*L. A training step counts 3x.
    public static func forwardFlops(config c: BertConfig, batch: Int, seq: Int, labels: Int) -> Double {
        let h = Double(c.hiddenSize), i = Double(c.intermediateSize), b = Double(batch), t = Double(seq)
        let tokens = b * t
        let perLayer = tokens * (2 * h * 3 * h + 2 * h * h + 2 * 2 * h * i) + 4 * b * t * t * h
        return Double(c.numHiddenLayers) * perLayer + 2 * b * h * Double(labels) + 2 * b * h * h
    }

    /// GFLOP/s of a plain SGEMM C[m, n] = A[m, k] B[k, n] through the same threaded BLAS path,
    /// median of `repeats` runs: the ceiling a step's GEMMs are measured against.
    public static func sgemmRate(m: Int, n: Int, k: Int, repeats: Int = 5) -> Double {
        var g = SeededGenerator(seed: 1)
        let a = Tensor(normal: [m, k], std: 1, generator: &g), b = Tensor(normal: [k, n], std: 1, generator: &g)
        let c = Tensor(zeros: [m, n])
        var times: [Double] = []
        for _ in 0..<(repeats + 1) {
            let start = DispatchTime.now().uptimeNanoseconds
            BLAS.sgemm(transA: false, transB: false, m: m, n: n, k: k, a: a.pointer, lda: k, b: b.pointer, ldb: n,
                       c: c.pointer, ldc: n)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        let t = times.dropFirst().sorted()[repeats / 2]
        return 2 * Double(m) * Double(n) * Double(k) / t / 1e9
    }

    /// Runs `warmup` untimed then `steps` timed steps. `model` defaults to a randomly
    /// initialised BertForSequenceClassification with 2 labels.
    /// `prepare` runs once on the model before timing (e.g. installs fake quantization or a
    /// super-network) and returns extra parameters AdamW also updates (e.g. architecture logits,
    /// learned ranges). `loss` replaces the cross-entropy of a training step (e.g. distillation):
    /// (model, batch, labels, tape) -> [1].
    public static func run(config: BertConfig, model existing: BertTaskModel? = nil, mode: Mode, batch: Int, seq: Int,
                           steps: Int, warmup: Int = 2, seed: UInt64 = 0,
                           prepare: ((BertTaskModel) throws -> [Tensor])? = nil,
                           loss customLoss: ((BertTaskModel, BertBatch, [Int32], Tape) -> Tensor)? = nil,
                           progress: ((Int, Double) -> Void)? = nil) rethrows -> Result {
        var g = SeededGenerator(seed: seed)
        let model: BertTaskModel
        if let existing {
            model = existing
        } else {
            model = BertTaskModel(config: config, architecture: .sequenceClassification, numLabels: 2)
            model.bert.initializeWeights(generator: &g)
            model.head?.initialize(std: config.initializerRange, generator: &g)
        }
        let vocab = model.config.vocabSize
        let ids = (0..<(batch * seq)).map { _ in Int32(g.next() % UInt64(vocab)) }
        let labels = (0..<batch).map { _ in Int32(g.next() % UInt64(max(1, model.numLabels))) }
        let data = BertBatch(inputIds: ids, batchSize: batch, sequenceLength: seq)
        let extra = try prepare?(model) ?? []
        let optimizer = AdamW(groups: [ParameterGroup(model.parameters + extra, weightDecay: 0.01)], learningRate: 2e-5)
        model.training = mode == .train
        model.bert.generator = SeededGenerator(seed: seed &+ 1)
        var times: [Double] = []
        var lastLoss: Float = .nan
        for step in 0..<(warmup + steps) {
            let start = DispatchTime.now().uptimeNanoseconds
            switch mode {
            case .train:
                for p in model.parameters + extra { p.grad = nil }  // torch zero_grad(set_to_none=True)
                let tape = Tape()
                let loss: Tensor
                if let customLoss {
                    loss = customLoss(model, data, labels, tape)
                } else {
                    let logits = model.forward(data, tape: tape)
                    loss = model.architecture == .sequenceClassification
                        ? model.classificationLoss(logits, labels: labels, tape: tape)
                        : tape.mean(logits)
                }
                tape.backward(from: loss)
                optimizer.update()
                lastLoss = loss.scalar
            case .forward:
                let logits = model.forward(data, tape: .inference)
                lastLoss = logits.pointer[0]
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if step >= warmup { times.append(seconds) }
            progress?(step, seconds)
        }
        let flops = forwardFlops(config: model.config, batch: batch, seq: seq, labels: max(1, model.numLabels))
        return Result(stepSeconds: times, flopsPerStep: mode == .train ? 3 * flops : flops, tokensPerStep: batch * seq,
                      peakResidentBytes: Runtime.peakResidentBytes(), lastLoss: lastLoss)
    }
}
