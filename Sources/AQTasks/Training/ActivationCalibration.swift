import AQBert
import AQQuant

/// DirectQ's activation ranges (METHOD.md section 6: a plan applied to an fp32 model without
/// retraining): the running min/max of every quantized Linear's input over calibration rows,
/// with the weights as they are.
public enum ActivationCalibration {
    /// Runs `features` through `model` (inference mode, batches of 32, labels unused) with
    /// `quantization`'s activation ranges updating, and leaves them frozen.
    public static func calibrate(_ quantization: QuantizedBert, model: BertTaskModel, features: [Feature], padId: Int) throws {
        try validate(features, for: model.config)
        quantization.training = true
        defer { quantization.training = false }
        model.training = false
        for start in stride(from: 0, to: features.count, by: 32) {
            _ = model.forward(FeatureBatch(Array(features[start..<min(features.count, start + 32)]), padId: padId).inputs, tape: .inference)
        }
    }
}
