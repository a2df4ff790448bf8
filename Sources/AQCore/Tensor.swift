/// A dense, contiguous, row-major fp32 tensor.
///
/// Tensors never alias strided views: `reshape` shares storage (same element order), every
/// other layout change (`permute`, `slice`) copies. Gradients live beside the value in `grad`,
/// allocated on first accumulation and zeroed by `zeroGrad()`.
public final class Tensor: @unchecked Sendable {
    public let shape: [Int]
    public let storage: Storage
    /// Accumulated gradient of the loss with respect to this tensor (same shape), if any.
    public var grad: Storage?
    /// Whether operations on a recording tape propagate gradients to this tensor.
    public var requiresGrad: Bool
    /// Optional name (parameters carry their Hugging Face path here).
    public var name: String?

    public init(shape: [Int], storage: Storage, requiresGrad: Bool = false, name: String? = nil) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        precondition(Tensor.count(of: shape) <= storage.count, "storage too small for \(shape)")
        self.shape = shape
        self.storage = storage
        self.requiresGrad = requiresGrad
        self.name = name
    }

    /// Uninitialised tensor (callers overwrite every element).
    public convenience init(uninitialized shape: [Int]) {
        self.init(shape: shape, storage: Storage(uninitializedCount: Tensor.count(of: shape)))
    }

    public convenience init(zeros shape: [Int], requiresGrad: Bool = false) {
        self.init(shape: shape, storage: Storage(zeros: Tensor.count(of: shape)), requiresGrad: requiresGrad)
    }

    public convenience init(shape: [Int], values: [Float], requiresGrad: Bool = false, name: String? = nil) {
        precondition(values.count == Tensor.count(of: shape), "\(values.count) values for shape \(shape)")
        self.init(shape: shape, storage: Storage(values), requiresGrad: requiresGrad, name: name)
    }

    public convenience init(filling value: Float, shape: [Int]) {
        self.init(uninitialized: shape)
        storage.buffer.update(repeating: value)
    }

    /// Values drawn from N(mean, std^2) with the given generator.
    public convenience init(normal shape: [Int], mean: Float = 0, std: Float, generator: inout SeededGenerator,
                            requiresGrad: Bool = false) {
        self.init(uninitialized: shape)
        let buf = storage.buffer
        for i in 0..<buf.count { buf[i] = mean + std * generator.nextNormal() }
        self.requiresGrad = requiresGrad
    }

    @inline(__always) public static func count(of shape: [Int]) -> Int { shape.reduce(1, *) }

    @inline(__always) public var count: Int { Tensor.count(of: shape) }
    @inline(__always) public var rank: Int { shape.count }
    @inline(__always) public var pointer: UnsafeMutablePointer<Float> { storage.pointer }
    public var values: UnsafeMutableBufferPointer<Float> { .init(start: storage.pointer, count: count) }

    public var array: [Float] { Array(values) }
    public var gradArray: [Float]? { grad.map { Array(UnsafeBufferPointer(start: $0.pointer, count: count)) } }

    /// The single value of a one-element tensor.
    public var scalar: Float {
        precondition(count == 1, "scalar of a tensor with shape \(shape)")
        return storage.pointer[0]
    }

    /// The gradient buffer, allocated (zeroed) on first use.
    @discardableResult
    public func ensureGrad() -> Storage {
        if let g = grad { return g }
        let g = Storage(zeros: count)
        grad = g
        return g
    }

    public func zeroGrad() { grad?.zero() }

    /// A tensor sharing this one's values, without gradient tracking.
    public func detached() -> Tensor { Tensor(shape: shape, storage: storage) }

    /// A copy of the values.
    public func copy() -> Tensor { Tensor(shape: shape, storage: storage.copy(), requiresGrad: requiresGrad, name: name) }

    /// Overwrites the values (same element count).
    public func assign(_ values: [Float]) {
        precondition(values.count == count, "assigning \(values.count) values to shape \(shape)")
        values.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: count) }
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let head = values.prefix(8).map { String($0) }.joined(separator: ", ")
        return "Tensor(\(shape), [\(head)\(count > 8 ? ", ..." : "")])"
    }
}
