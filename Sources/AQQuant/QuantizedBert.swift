import AQBert

/// Quantization-aware execution of a BERT with a fixed bit plan (METHOD.md sections 1, 5):
/// every planned encoder matrix is fake-quantized per row group at its bit-width (pruned groups
/// are exactly 0), the input of every quantized Linear is fake-quantized at 8 bits with a
/// running range, and the word/position/token-type embeddings are fake-quantized per row, at
/// 8 bits or, for the tables the plan lists, at the width of the row's group. Parameters stay fp32 (gradients flow straight through), so training continues normally.
/// Weight groups quantize on their min/max range, or (`ranges: .learned`) within trainable
/// clipping bounds (`LearnedRanges`), which are then parameters to train with the weights.
/// Outside training (frozen ranges, nothing recorded) the planned Linears compute exactly in
/// integers (`ExactQuantizedProduct`), which is what the packed model computes too.
public final class QuantizedBert {
    public let plan: BitPlan
    public let embeddingBits: Int
    /// Activation quantizers by Linear path (the matrix path without ".weight").
    public private(set) var activationQuantizers: [String: ActivationQuantizer] = [:]
    /// How weight groups get their ranges.
    public let rangeMode: RangeMode
    /// Learned bounds (`ranges: .learned`) by matrix path: [G, 2] (lo, hi) per group,
    /// trainable; empty for min/max ranges.
    public private(set) var weightRanges: [String: Tensor] = [:]
    private weak var model: BertTaskModel?

    /// Running ranges update while true (training); frozen otherwise.
    public var training: Bool = false {
        didSet { for q in activationQuantizers.values { q.training = training } }
    }

    /// Installs the plan's transforms on `model` (validated against it first). With
    /// `ranges: .learned` every planned matrix gets bounds initialised from its current weights
    /// by `rangeInitialization` (restore saved ones with `setWeightRanges`).
    public init(plan: BitPlan, model: BertTaskModel, embeddingBits: Int = 8, activationBits: Int = 8,
                ranges: RangeMode = .minmax, rangeInitialization: RangeInitialization = .mse) throws {
        try plan.validate(against: model)
        self.plan = plan
        self.embeddingBits = embeddingBits
        self.rangeMode = ranges
        self.model = model
        activationQuantizers = Self.installFixedParts(on: model, embeddingBits: embeddingBits, activationBits: activationBits)
        for (path, linear) in zip(QuantizableMatrices.paths(for: model.config), QuantizableMatrices.linears(model)) {
            guard let matrix = plan.matrices[path] else { continue }
            let bits = matrix.bits
            let bounds = ranges == .learned ? learnedBounds(linear.weight, groupBits: bits, path: path, from: rangeInitialization) : nil
            if let bounds {
                linear.weightTransform = { w, tape in tape.fakeQuantize(w, groupBits: bits, ranges: bounds) }
            } else {
                linear.weightTransform = { w, tape in tape.fakeQuantize(w, groupBits: bits) }
            }
            // Outside training the quantized model is evaluated exactly, in integers, as the
            // packed kernel computes it (ExactQuantizedProduct); training keeps the fp32 simulation.
            guard let quantizer = activationQuantizers[String(path.dropLast(".weight".count))] else { continue }
            linear.forwardOverride = { [unowned linear] x, tape in
                // (u8 codes: the exact path, like the packed format, is for 8-bit activations.)
                guard !quantizer.training, quantizer.initialized, quantizer.high > quantizer.low, quantizer.bits == 8,
                      !tape.tracks(x, linear.weight, linear.bias) else { return nil }
                return ExactQuantizedProduct.forward(x, weight: linear.weight, bias: linear.bias, groupBits: bits,
                                                     ranges: bounds.map(LearnedRanges.effective),
                                                     activationLow: quantizer.low, activationHigh: quantizer.high)
            }
        }
        // Planned embedding tables: each gathered row at its group's width, on its own range
        // (learned bounds per row with `ranges: .learned`, trained where batches gather the row).
        for (path, table) in PlannableEmbeddings.of(model) {
            guard let planned = plan.embeddings[path] else { continue }
            let rowBits = planned.rowBits
            let bounds = ranges == .learned ? learnedBounds(table.weight, groupBits: rowBits, path: path, from: rangeInitialization) : nil
            table.lookupTransform = { w, ids, shape, pad, tape in
                tape.quantizedEmbedding(w, ids: ids, shape: shape, rowBits: rowBits, ranges: bounds, paddingIndex: pad)
            }
        }
    }

    /// Trainable bounds of `weight`'s groups (one per entry of `groupBits`: a matrix's row groups
    /// or a table's rows), initialised by `method` and kept under `path` in `weightRanges`.
    private func learnedBounds(_ weight: Tensor, groupBits: [Int], path: String, from method: RangeInitialization) -> Tensor {
        let t = LearnedRanges.initial(weight, groupBits: groupBits, method: method)
        t.requiresGrad = true
        t.name = LearnedRanges.tensorName(path)
        weightRanges[path] = t
        return t
    }

    /// The parts of METHOD.md section 1 that are never searched: 8-bit embeddings (one range per
    /// row) and 8-bit inputs of every quantized Linear. Returns the activation quantizers by
    /// Linear path. Used by QAT and by the super-network alike.
    public static func installFixedParts(on model: BertTaskModel, embeddingBits: Int, activationBits: Int) -> [String: ActivationQuantizer] {
        var quantizers: [String: ActivationQuantizer] = [:]
        if activationBits > 0 {
            for (path, linear) in zip(QuantizableMatrices.paths(for: model.config), QuantizableMatrices.linears(model)) {
                let q = ActivationQuantizer(bits: activationBits)
                quantizers[String(path.dropLast(".weight".count))] = q
                linear.inputTransform = { x, tape in q(x, tape: tape) }
            }
        }
        if embeddingBits > 0 {
            for table in model.bert.embeddings.tables {
                table.lookupTransform = { w, ids, shape, pad, tape in
                    tape.quantizedEmbedding(w, ids: ids, shape: shape, bits: embeddingBits, paddingIndex: pad)
                }
            }
        }
        return quantizers
    }

    /// Removes every transform (the model computes in fp32 again).
    public func uninstall() {
        if let model { Self.removeTransforms(from: model) }
    }

    /// Clears every weight, input and lookup transform of `model`.
    public static func removeTransforms(from model: BertTaskModel) {
        for l in QuantizableMatrices.linears(model) {
            l.weightTransform = nil
            l.inputTransform = nil
            l.forwardOverride = nil
        }
        for t in model.bert.embeddings.tables {
            t.lookupTransform = nil
        }
    }

    /// Frozen activation ranges, for saving with the model.
    public var activationRanges: [String: [Float]] {
        activationQuantizers.compactMapValues { $0.initialized ? [$0.low, $0.high] : nil }
    }

    /// The learned bounds as trainable tensors, named `LearnedRanges.tensorName(path)`, in the
    /// plan's matrix order (for the optimizer and checkpoints); empty for min/max ranges.
    public var rangeParameters: [(name: String, tensor: Tensor)] {
        weightRanges.sorted { $0.key < $1.key }.map { (LearnedRanges.tensorName($0.key), $0.value) }
    }

    /// Restores learned bounds (keys: matrix paths, values: 2G floats), every planned matrix.
    public func setWeightRanges(_ ranges: [String: [Float]]) throws {
        guard rangeMode == .learned else { throw PlanError("weight ranges given for a model with min/max ranges") }
        for (path, t) in weightRanges {
            guard let v = ranges[path] else { throw PlanError("no learned weight ranges for \(path)") }
            guard v.count == t.count, v.allSatisfy(\.isFinite) else {
                throw PlanError("learned weight ranges of \(path): \(v.count) values (expected \(t.count), finite)")
            }
            t.assign(v)
        }
        if let extra = ranges.keys.first(where: { weightRanges[$0] == nil }) {
            throw PlanError("learned weight ranges for \(extra), which the plan does not quantize")
        }
    }

    /// Restores saved ranges (keys as `activationRanges`).
    public func setActivationRanges(_ ranges: [String: [Float]]) throws {
        for (k, v) in ranges {
            guard let q = activationQuantizers[k] else {
                throw PlanError("activation range for \(k) does not match the plan's matrices")
            }
            guard ActivationQuantizer.isValidRange(v) else {
                throw PlanError("the activation range of \(k) is not a finite [low, high] pair")
            }
            q.setRange(low: v[0], high: v[1])
        }
    }
}
