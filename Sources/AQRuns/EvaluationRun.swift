import AQBert
import AQHub
import AQQuant
import AQTasks
import Foundation

/// What `evaluate` and `predict` load: the parsed options.
public struct EvaluationRequest {
    public var model: String
    public var task: TaskName
    public var threads: Int?
    /// The data file (labelled for evaluate).
    public var data: String
    public var maxSeqLength: Int?
    public var docStride: Int?
    /// A bit plan applied to an fp32 model without retraining (DirectQ).
    public var plan: String?
    /// With `plan`: training data whose first `rows` calibrate the 8-bit activation ranges.
    public var calibration: (path: String, rows: Int)?
    /// Verify a packed model's tensor checksum.
    public var verify = true
    public var downloadProgress: ((DownloadProgress) -> Void)?

    public init(model: String, task: TaskName, threads: Int?, data: String) {
        self.model = model
        self.task = task
        self.threads = threads
        self.data = data
    }
}

/// Loads a fine-tuned model as it runs (packed: its low-bit kernels; quantization-aware: its
/// plan and frozen ranges; fp32, or fp32 with a DirectQ plan) and the task's data.
public enum EvaluationRun {
    /// The model, the pipeline over `data`, and the arguments it used. `warn` hears what the
    /// user should know (DirectQ calibrating on the evaluation inputs).
    public static func load(_ r: EvaluationRequest, warn: (String) -> Void) throws -> (model: BertTaskModel, pipeline: RunnableTask, arguments: TrainingArguments) {
        RunInputs.setThreads(r.threads)
        var a = TrainingArguments.defaults(for: r.task)
        if let maxSeqLength = r.maxSeqLength { a.maxSeqLength = maxSeqLength }
        if let docStride = r.docStride { a.docStride = docStride }
        do { try a.validate() } catch { throw RunError("\(error)") }
        let dataURL = try RunInputs.existingFile(r.data, option: "--data")
        let modelDir = try RunInputs.modelDirectory(r.model, progress: r.downloadProgress)
        let tokenizer = try RunInputs.loadTokenizer(modelDir)
        let config = try BertConfig(contentsOf: modelDir)
        let modelLabels = config.id2label.map { m in (0..<m.count).map { m[$0] ?? "LABEL_\($0)" } }
        let pipeline = try TaskPipelines.make(task: r.task, tokenizer: tokenizer, arguments: a, train: nil, evaluation: dataURL,
                                              modelLabels: r.task == .squad ? nil : modelLabels)
        // A packed directory (aqbert export) runs its low-bit kernels.
        if PackedBert.isPacked(modelDir) {
            if r.plan != nil { throw RunError("--plan applies to an fp32 model; \(r.model) is packed already") }
            do {
                let (model, _) = try PackedBert.load(directory: modelDir, architecture: pipeline.architecture,
                                                     numLabels: pipeline.labelNames?.count, verify: r.verify)
                return (model, pipeline, a)
            } catch { throw RunError("\(error)") }
        }
        let (model, report) = try BertTaskModel.load(directory: modelDir, architecture: pipeline.architecture,
                                                     numLabels: pipeline.labelNames?.count)
        if !report.initialized.isEmpty { throw RunInputs.notFineTuned(r.model, model, report) }
        // A quantization-aware model evaluates with its quantization (plan, frozen ranges);
        // a plan applies to an fp32 model without retraining (DirectQ).
        if let planPath = r.plan {
            let plan = try RunInputs.loadPlan(planPath)
            do {
                let q = try QuantizedBert(plan: plan, model: model)
                // The 8-bit activation ranges: running min/max over the first rows of the calibration
                // (training) data, else over the evaluation inputs (their labels are not used).
                if let calibration = r.calibration {
                    let url = try RunInputs.existingFile(calibration.path, option: "--calibration")
                    let rows = try TaskPipelines.make(task: r.task, tokenizer: tokenizer, arguments: a, train: url, evaluation: url,
                                                      modelLabels: r.task == .squad ? nil : modelLabels).trainFeatures
                    try ActivationCalibration.calibrate(q, model: model, features: Array(rows.prefix(max(1, calibration.rows))),
                                                        padId: tokenizer.padTokenId)
                } else {
                    warn("calibrating the activation ranges on the evaluation inputs; pass --calibration TRAIN_FILE to keep them out of it")
                    q.training = true
                    _ = try pipeline.report(model: model, batchSize: 64)
                    q.training = false
                }
            } catch let e as PlanError { throw RunError("--plan \(planPath): \(e)") }
        } else {
            do { _ = try QuantizedBert.load(from: modelDir, into: model) } catch { throw RunError("\(error)") }
        }
        return (model, pipeline, a)
    }
}
