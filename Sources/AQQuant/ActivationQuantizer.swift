import AQBert
import CAQKernels

/// 8-bit asymmetric fake quantization of a Linear's input (METHOD.md section 1): the range is a
/// running min/max, an exponential moving average (momentum 0.99) of each training batch's
/// min/max, frozen outside training. Backward passes the gradient where the input lies inside
/// the range and blocks it where it was clamped (PyTorch `FakeQuantize` convention).
public final class ActivationQuantizer {
    public let bits: Int
    public let momentum: Float
    public private(set) var low: Float = 0
    public private(set) var high: Float = 0
    public private(set) var initialized = false
    /// Updates the running range when true.
    public var training = false
    /// With data parallelism: turns this process's batch minimum and maximum into the whole
    /// batch's (over every process), so that the running range follows the whole batch on every
    /// process, as in one process. nil: this batch is the whole batch.
    public var combineBatchRange: ((inout Float, inout Float) -> Void)?

    public init(bits: Int = 8, momentum: Float = 0.99) {
        self.bits = bits
        self.momentum = momentum
    }

    /// Whether a saved range is one `setRange` can take: a finite [low, high] pair, low <= high.
    /// Every reader of saved ranges (checkpoints, model directories, packed files) checks it.
    public static func isValidRange(_ r: [Float]) -> Bool {
        r.count == 2 && r[0].isFinite && r[1].isFinite && r[0] <= r[1]
    }

    /// Restores a frozen range (from a saved model).
    public func setRange(low: Float, high: Float) {
        self.low = low
        self.high = high
        initialized = true
    }

    /// x: any shape -> same shape
    public func callAsFunction(_ x: Tensor, tape: Tape) -> Tensor {
        if training {
            var lo: Float = 0, hi: Float = 0
            aq_minmax(x.pointer, x.count, &lo, &hi)
            combineBatchRange?(&lo, &hi)
            if initialized {
                low = momentum * low + (1 - momentum) * lo
                high = momentum * high + (1 - momentum) * hi
            } else {
                (low, high, initialized) = (lo, hi, true)
            }
        }
        guard initialized, high > low else { return x }
        return tape.fakeQuantizeActivation(x, low: low, high: high, bits: bits)
    }
}
