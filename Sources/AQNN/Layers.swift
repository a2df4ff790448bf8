// Layers with Hugging Face parameter layouts. Legend: N = rows, in/out = features, V = vocabulary.

/// y = x W^T + b.  weight: [out, in], bias: [out]
public final class Linear: Module {
    public let weight: Tensor
    public let bias: Tensor?
    /// Replaces the weight in the forward pass (quantization-aware training installs fake
    /// quantization here); the parameter itself stays fp32.
    public var weightTransform: ((Tensor, Tape) -> Tensor)?
    /// Applied to the input before the product (activation fake quantization).
    public var inputTransform: ((Tensor, Tape) -> Tensor)?
    /// Replaces the whole product when it returns a tensor (a packed low-bit model runs its own
    /// kernel here; a quantization-aware model evaluates exactly in integers); nil falls through
    /// to the transforms and the fp32 product.
    public var forwardOverride: ((Tensor, Tape) -> Tensor?)?

    public init(inFeatures: Int, outFeatures: Int, bias hasBias: Bool = true) {
        weight = parameter([outFeatures, inFeatures], "weight")
        bias = hasBias ? parameter([outFeatures], "bias") : nil
    }

    public var inFeatures: Int { weight.shape[1] }
    public var outFeatures: Int { weight.shape[0] }

    /// x: [..., in] -> [..., out]
    public func callAsFunction(_ x: Tensor, tape: Tape) -> Tensor {
        if let y = forwardOverride?(x, tape) { return y }
        let w = weightTransform?(weight, tape) ?? weight
        let input = inputTransform?(x, tape) ?? x
        return tape.linear(input, w, bias)
    }

    public var namedParameters: [(path: String, tensor: Tensor)] {
        [("weight", weight)] + (bias.map { [("bias", $0)] } ?? [])
    }

    /// transformers `_init_weights` for nn.Linear: weight ~ N(0, std^2), bias = 0.
    public func initialize(std: Float, generator: inout SeededGenerator) {
        for i in 0..<weight.count { weight.pointer[i] = std * generator.nextNormal() }
        bias?.storage.zero()
    }
}

/// Lookup table. weight: [V, C]
public final class Embedding: Module {
    public let weight: Tensor
    /// Row that receives no gradient (torch `padding_idx`), if any.
    public let paddingIndex: Int32?
    /// Replaces the lookup (8-bit fake quantization of the gathered rows): receives the table,
    /// the ids, the output shape and the padding index.
    public var lookupTransform: ((Tensor, [Int32], [Int], Int32?, Tape) -> Tensor)?

    public init(count: Int, dimension: Int, paddingIndex: Int? = nil) {
        weight = parameter([count, dimension], "weight")
        self.paddingIndex = paddingIndex.flatMap { $0 >= 0 && $0 < count ? Int32($0) : nil }
    }

    /// ids (N) -> [shape..., C]
    public func callAsFunction(_ ids: [Int32], shape: [Int], tape: Tape) -> Tensor {
        if let lookupTransform { return lookupTransform(weight, ids, shape, paddingIndex, tape) }
        return tape.embedding(weight, ids: ids, shape: shape, paddingIndex: paddingIndex)
    }

    public var namedParameters: [(path: String, tensor: Tensor)] { [("weight", weight)] }

    /// transformers `_init_weights` for nn.Embedding: N(0, std^2), the padding row zeroed.
    public func initialize(std: Float, paddingIndex: Int?, generator: inout SeededGenerator) {
        for i in 0..<weight.count { weight.pointer[i] = std * generator.nextNormal() }
        if let p = paddingIndex, p >= 0, p < weight.shape[0] {
            (weight.pointer + p * weight.shape[1]).update(repeating: 0, count: weight.shape[1])
        }
    }
}

/// LayerNorm over the last axis. weight, bias: [C]
public final class LayerNorm: Module {
    public let weight: Tensor
    public let bias: Tensor
    public let eps: Float

    public init(dimension: Int, eps: Float) {
        weight = parameter([dimension], "weight", filling: 1)
        bias = parameter([dimension], "bias")
        self.eps = eps
    }

    public func callAsFunction(_ x: Tensor, tape: Tape) -> Tensor {
        tape.layerNorm(x, weight: weight, bias: bias, eps: eps)
    }

    public var namedParameters: [(path: String, tensor: Tensor)] { [("weight", weight), ("bias", bias)] }
}
