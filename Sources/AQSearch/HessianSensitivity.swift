import AQBert

/// Q-BERT's Hessian sensitivity (METHOD.md section 6): the top eigenvalue of the loss Hessian
/// restricted to one encoder block's parameters, by power iteration on Hessian-vector products.
///
/// The Hessian-vector product is a central difference of gradients,
///     H v ~ (g(theta + eps v) - g(theta - eps v)) / (2 eps),   ||v|| = 1,
/// eps = `relativeStep` * max(1, ||theta||) (theta: the block's parameters), accurate to
/// O(eps^2) and exact for a quadratic loss. The parameters are restored bit for bit after
/// each product. A block vector is the concatenation of the block's tensors, in their order.
public struct HessianBlock {
    /// The block's parameters (a product perturbs these only).
    public let parameters: [Tensor]
    /// The gradient of the loss with respect to `parameters` at their current values,
    /// concatenated (deterministic: eval mode, fixed data).
    public let gradient: () -> [Float]

    public init(parameters: [Tensor], gradient: @escaping () -> [Float]) {
        self.parameters = parameters
        self.gradient = gradient
    }

    public var dimension: Int { parameters.reduce(0) { $0 + $1.count } }

    /// eps for a unit direction.
    public func step(relativeStep: Float) -> Float {
        let norm = parameters.reduce(0.0) { $0 + Kernels.sumOfSquares($1.pointer, count: $1.count) }.squareRoot()
        return relativeStep * Float(max(1, norm))
    }

    /// H v for a unit vector v (by central differences with step `eps`).
    public func hessianVectorProduct(_ v: [Float], eps: Float) -> [Float] {
        precondition(v.count == dimension, "HessianBlock: vector of \(v.count) for \(dimension) parameters")
        let saved = parameters.map { $0.storage.copy() }
        func shifted(_ sign: Float) -> [Float] {
            var offset = 0
            for (p, s) in zip(parameters, saved) {
                p.pointer.update(from: s.pointer, count: p.count)
                v.withUnsafeBufferPointer { Kernels.axpy(sign * eps, $0.baseAddress! + offset, p.pointer, count: p.count) }
                offset += p.count
            }
            return gradient()
        }
        let plus = shifted(1), minus = shifted(-1)
        for (p, s) in zip(parameters, saved) { p.pointer.update(from: s.pointer, count: p.count) }
        let scale = 1 / (2 * eps)
        return (0..<v.count).map { (plus[$0] - minus[$0]) * scale }
    }
}

/// The result of one power iteration.
public struct TopEigenvalue: Codable, Equatable, Sendable {
    /// The Rayleigh quotient v^T H v at the last iterate (the eigenvalue of largest magnitude).
    public var eigenvalue: Double
    public var iterations: Int
    /// Whether the relative change fell below the tolerance before `maxIterations`.
    public var converged: Bool

    public init(eigenvalue: Double, iterations: Int, converged: Bool) {
        self.eigenvalue = eigenvalue
        self.iterations = iterations
        self.converged = converged
    }
}

public enum HessianSensitivity {
    /// Power iteration from a seeded random unit vector: lambda_t = v_t^T H v_t,
    /// v_{t+1} = H v_t / ||H v_t||, stopped when |lambda_t - lambda_{t-1}| <= tolerance * |lambda_{t-1}|
    /// (PyHessian's rule, as Q-BERT used) or after `maxIterations` products.
    public static func topEigenvalue(of block: HessianBlock, seed: UInt64, tolerance: Double, maxIterations: Int,
                                     relativeStep: Float = 1e-3) -> TopEigenvalue {
        var g = SeededGenerator(seed: seed)
        var v = (0..<block.dimension).map { _ in g.nextNormal() }
        normalize(&v)
        let eps = block.step(relativeStep: relativeStep)
        var previous: Double? = nil
        var lambda = 0.0
        for t in 1...max(1, maxIterations) {
            let hv = block.hessianVectorProduct(v, eps: eps)
            lambda = dot(v, hv)
            v = hv
            let norm = normalize(&v)
            if let p = previous, abs(lambda - p) <= tolerance * abs(p) { return TopEigenvalue(eigenvalue: lambda, iterations: t, converged: true) }
            if norm == 0 { return TopEigenvalue(eigenvalue: 0, iterations: t, converged: true) }  // H v = 0: a flat block
            previous = lambda
        }
        return TopEigenvalue(eigenvalue: lambda, iterations: max(1, maxIterations), converged: false)
    }

    /// Q-BERT's Omega = |mean(lambda)| + std(lambda) over the subsets (population standard
    /// deviation, numpy's default).
    public static func omega(_ eigenvalues: [Double]) -> Double {
        guard !eigenvalues.isEmpty else { return 0 }
        let n = Double(eigenvalues.count)
        let mean = eigenvalues.reduce(0, +) / n
        let variance = eigenvalues.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / n
        return abs(mean) + variance.squareRoot()
    }

    static func dot(_ a: [Float], _ b: [Float]) -> Double {
        var s = 0.0
        for i in 0..<a.count { s += Double(a[i]) * Double(b[i]) }
        return s
    }

    /// Scales `v` to unit norm (unless it is 0); returns the norm it had.
    @discardableResult
    static func normalize(_ v: inout [Float]) -> Double {
        let norm = dot(v, v).squareRoot()
        if norm > 0 { let s = Float(1 / norm); for i in 0..<v.count { v[i] *= s } }
        return norm
    }
}
