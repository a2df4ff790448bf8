/// The reverse-mode autodiff tape.
///
/// Every op is a method on `Tape`. When the tape records and an input requires a gradient,
/// the op appends its hand-written backward rule (a closure that reads the output's `grad`
/// and accumulates into the inputs' `grad`). `backward(from:)` replays the rules in reverse.
/// A non-recording tape (`Tape.inference`) runs forward only and keeps nothing alive.
public final class Tape {
    public let isRecording: Bool
    private var rules: [(output: Tensor, rule: () -> Void)] = []
    /// Called during the backward pass after each rule, with the number of rules still to run
    /// (data parallelism starts summing the gradients that are complete: see `recordedCount`).
    public var afterRule: ((Int) -> Void)?

    public init(recording: Bool = true) {
        self.isRecording = recording
    }

    /// A fresh non-recording tape.
    public static var inference: Tape { Tape(recording: false) }

    public var recordedCount: Int { rules.count }

    /// True when `inputs` need a backward rule on this tape.
    @inline(__always)
    public func tracks(_ inputs: Tensor?...) -> Bool {
        guard isRecording else { return false }
        for t in inputs where t?.requiresGrad == true { return true }
        return false
    }

    /// Appends the backward rule of an op whose result is `output`: the rule reads
    /// `output.grad` and accumulates into its inputs' gradients. Public so ops defined in other
    /// modules (quantization) record the same way.
    @inline(__always)
    public func record(_ output: Tensor, _ rule: @escaping () -> Void) { rules.append((output, rule)) }

    /// Seeds `d(loss)/d(loss) = seed` (a scalar loss) or `grad = seed` elementwise, runs every
    /// recorded rule in reverse order, then forgets them.
    public func backward(from loss: Tensor, seed: Float = 1, retainGradients: Bool = false) {
        let g = loss.ensureGrad()
        for i in 0..<g.count { g.pointer[i] += seed }
        runBackward(retainGradients: retainGradients)
    }

    /// Runs the rules in reverse with gradients already seeded by the caller.
    ///
    /// As in PyTorch, memory is released as the pass goes: each rule (and the activations it
    /// captured) is dropped once it has run, and so is the gradient of its op's result, since
    /// every consumer of that result has already run. Leaves (parameters, inputs) keep their
    /// gradients. `retainGradients` keeps intermediate gradients too (for inspection).
    public func runBackward(retainGradients: Bool = false) {
        while let (output, rule) = rules.popLast() {
            rule()
            if !retainGradients { output.grad = nil }
            afterRule?(rules.count)
        }
    }

    /// Drops every recorded rule (and the activations they keep alive).
    public func reset() { rules.removeAll(keepingCapacity: false) }
}

/// Gradient-carrying output of an op: `requiresGrad` when the op was recorded.
@inline(__always)
func output(_ shape: [Int], tracked: Bool) -> Tensor {
    let t = Tensor(uninitialized: shape)
    t.requiresGrad = tracked
    return t
}
