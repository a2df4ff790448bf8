// Losses on top of the core ops.

extension Tape {
    /// Mean squared error between predictions and targets of the same shape -> [1].
    public func meanSquaredError(_ predictions: Tensor, _ targets: Tensor) -> Tensor {
        let d = sub(predictions, targets)
        return mean(mul(d, d))
    }
}
