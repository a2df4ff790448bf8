/// A set of parameters sharing optimizer hyper-parameters (as torch param groups).
public struct ParameterGroup {
    public var parameters: [Tensor]
    public var weightDecay: Float
    /// The group's rate is the optimizer's `learningRate` times this.
    public var learningRateScale: Float
    public init(_ parameters: [Tensor], weightDecay: Float, learningRateScale: Float = 1) {
        self.parameters = parameters
        self.weightDecay = weightDecay
        self.learningRateScale = learningRateScale
    }
}

/// AdamW with decoupled weight decay and bias correction, the same update as
/// `torch.optim.AdamW` (torch/optim/adamw.py): see `aq_adamw_step`.
public final class AdamW {
    public var groups: [ParameterGroup]
    public var learningRate: Float
    public let beta1: Float, beta2: Float, eps: Float
    public private(set) var step = 0
    private var moments: [ObjectIdentifier: (m: Storage, v: Storage)] = [:]

    public init(groups: [ParameterGroup], learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8) {
        self.groups = groups
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
    }

    /// One update of every parameter that has a gradient, at `learningRate`.
    public func update() {
        step += 1
        let bc1 = 1 - Float(Double(beta1).power(step))
        let bc2Sqrt = Float((1 - Double(beta2).power(step)).squareRoot())
        for group in groups {
            for p in group.parameters {
                guard let g = p.grad else { continue }
                let state = moments[ObjectIdentifier(p)] ?? (Storage(zeros: p.count), Storage(zeros: p.count))
                moments[ObjectIdentifier(p)] = state
                Kernels.adamwStep(parameter: p.pointer, gradient: g.pointer, firstMoment: state.m.pointer,
                                  secondMoment: state.v.pointer, count: p.count, lr: learningRate * group.learningRateScale, beta1: beta1,
                                  beta2: beta2, eps: eps, weightDecay: group.weightDecay,
                                  biasCorrection1: bc1, biasCorrection2Sqrt: bc2Sqrt)
            }
        }
    }

    /// Moment buffers for checkpointing, keyed by parameter name.
    public func state() -> (step: Int, moments: [String: (m: [Float], v: [Float])]) {
        var out: [String: (m: [Float], v: [Float])] = [:]
        for group in groups {
            for p in group.parameters {
                guard let name = p.name, let s = moments[ObjectIdentifier(p)] else { continue }
                out[name] = (Array(s.m.buffer), Array(s.v.buffer))
            }
        }
        return (step, out)
    }

    /// Restores `state()` output (parameters matched by name).
    public func restore(step: Int, moments saved: [String: (m: [Float], v: [Float])]) {
        self.step = step
        for group in groups {
            for p in group.parameters {
                guard let name = p.name, let s = saved[name], s.m.count == p.count, s.v.count == p.count else { continue }
                moments[ObjectIdentifier(p)] = (Storage(s.m), Storage(s.v))
            }
        }
    }
}

/// SGD with momentum (and optional Nesterov, dampening, L2 weight decay), the same update as
/// `torch.optim.SGD`: g += wd*p; buf = g on the first step, else buf = mu*buf + (1-dampening)*g;
/// p -= lr * (nesterov ? g + mu*buf : buf).
public final class SGD {
    public var groups: [ParameterGroup]
    public var learningRate: Float
    public let momentum: Float, dampening: Float, nesterov: Bool
    private var buffers: [ObjectIdentifier: Storage] = [:]

    public init(groups: [ParameterGroup], learningRate: Float, momentum: Float = 0, dampening: Float = 0, nesterov: Bool = false) {
        self.groups = groups
        self.learningRate = learningRate
        self.momentum = momentum
        self.dampening = dampening
        self.nesterov = nesterov
    }

    public func update() {
        for group in groups {
            for p in group.parameters {
                guard let gs = p.grad else { continue }
                let n = p.count, pp = p.pointer, g = gs.pointer
                let wd = group.weightDecay
                if momentum == 0 {
                    for i in 0..<n { pp[i] -= learningRate * (g[i] + wd * pp[i]) }
                    continue
                }
                let key = ObjectIdentifier(p)
                if let buf = buffers[key] {
                    let b = buf.pointer
                    for i in 0..<n {
                        let gi = g[i] + wd * pp[i]
                        b[i] = momentum * b[i] + (1 - dampening) * gi
                        pp[i] -= learningRate * (nesterov ? gi + momentum * b[i] : b[i])
                    }
                } else {
                    let buf = Storage(uninitializedCount: n)
                    let b = buf.pointer
                    for i in 0..<n {
                        let gi = g[i] + wd * pp[i]
                        b[i] = gi
                        pp[i] -= learningRate * (nesterov ? gi + momentum * b[i] : b[i])
                    }
                    buffers[key] = buf
                }
            }
        }
    }
}

/// Linear warm-up then linear decay to 0, as transformers' `get_linear_schedule_with_warmup`:
/// factor(step) = step / warmup for step < warmup, else max(0, (total - step) / (total - warmup)).
public struct LinearSchedule: Sendable, Equatable {
    public let warmupSteps: Int, totalSteps: Int
    public init(warmupSteps: Int, totalSteps: Int) {
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
    }

    /// Multiplier of the base learning rate for the update with index `step` (0-based).
    public func factor(at step: Int) -> Float {
        if step < warmupSteps { return Float(step) / Float(max(1, warmupSteps)) }
        return max(0, Float(totalSteps - step) / Float(max(1, totalSteps - warmupSteps)))
    }
}

/// Scales every gradient so their global L2 norm is at most `maxNorm`, as
/// `torch.nn.utils.clip_grad_norm_` (coefficient maxNorm / (norm + 1e-6), applied only when < 1).
/// Returns the norm before clipping.
@discardableResult
public func clipGradientNorm(_ parameters: [Tensor], maxNorm: Float) -> Float {
    var sq = 0.0
    for p in parameters { if let g = p.grad { sq += Kernels.sumOfSquares(g.pointer, count: p.count) } }
    let norm = Float(sq.squareRoot())
    let coef = maxNorm / (norm + 1e-6)
    if coef < 1 {
        for p in parameters { if let g = p.grad { Kernels.scale(g.pointer, by: coef, count: p.count) } }
    }
    return norm
}

extension Double {
    @inline(__always) func power(_ n: Int) -> Double {
        var r = 1.0
        for _ in 0..<n { r *= self }
        return r
    }
}
