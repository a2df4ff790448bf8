@_exported import AQCore

/// Something with trainable parameters, addressed by dotted paths relative to itself
/// ("weight", "bias", "layer.0.attention.self.query.weight", ...).
public protocol Module: AnyObject {
    /// Every parameter with its relative path, in a fixed order.
    var namedParameters: [(path: String, tensor: Tensor)] { get }
}

extension Module {
    public var parameters: [Tensor] { namedParameters.map(\.tensor) }

    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.count } }

    public func zeroGradients() { for p in parameters { p.zeroGrad() } }

    /// Child parameters with `prefix.` prepended.
    public func prefixed(_ prefix: String) -> [(path: String, tensor: Tensor)] {
        namedParameters.map { (prefix + "." + $0.path, $0.tensor) }
    }
}

/// A trainable tensor (requiresGrad, named).
public func parameter(_ shape: [Int], _ name: String, filling value: Float = 0) -> Tensor {
    let t = value == 0 ? Tensor(shape: shape, storage: Storage(lazyZeros: Tensor.count(of: shape)))
                       : Tensor(filling: value, shape: shape)
    t.requiresGrad = true
    t.name = name
    return t
}
