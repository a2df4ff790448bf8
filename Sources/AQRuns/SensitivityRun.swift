import AQBert
import AQHub
import AQParallel
import AQSearch
import AQTasks
import Foundation

/// What `sensitivity` is asked to do: the parsed options.
public struct SensitivityRequest {
    public var model: String
    public var task: TaskName
    public var threads: Int?
    public var train: String
    /// The sensitivity file to write (JSON).
    public var output: String
    public var configuration: SensitivityConfiguration
    public var maxSeqLength: Int?
    public var resume = false
    public var downloadProgress: ((DownloadProgress) -> Void)?

    public init(model: String, task: TaskName, threads: Int?, train: String, output: String, configuration: SensitivityConfiguration) {
        self.model = model
        self.task = task
        self.threads = threads
        self.train = train
        self.output = output
        self.configuration = configuration
    }
}

/// Q-BERT's per-block Hessian sensitivity (METHOD.md section 6).
public enum SensitivityRun {
    /// Checks the inputs (a fine-tuned model, an output that is not an unfinished measurement
    /// unless resuming), loads the model and data and builds the runner; the second value is the
    /// training data's SHA-256. Under `mpirun -np N` every rank prepares and they agree on the
    /// first failure; rank 0 alone checks and locks the output.
    public static func prepare(_ r: SensitivityRequest, group: ProcessGroup) throws -> (runner: SensitivityRunner, dataSHA256: String) {
        let leader = group.rank == 0
        return try group.agree { () throws -> (SensitivityRunner, String) in
            RunInputs.setThreads(r.threads, group: group)
            let c = r.configuration
            do { try c.validate() } catch { throw RunError("\(error)") }
            var args = TrainingArguments.defaults(for: r.task)
            if let maxSeqLength = r.maxSeqLength { args.maxSeqLength = maxSeqLength }
            let trainURL = try RunInputs.existingFile(r.train, option: "--train")
            let modelDir = try RunInputs.modelDirectory(r.model, progress: r.downloadProgress)
            let (tokenizer, pipeline, model, report) = try RunInputs.trainingData(task: r.task, modelDir: modelDir, train: trainURL,
                                                                                  arguments: args)
            if !report.initialized.isEmpty { throw RunInputs.notFineTuned(r.model, model, report) }
            // A Hessian-vector product is two backward passes over a batch of rows: a training step's memory.
            do { try model.config.checkTrainingMemory(batch: c.batchSize, sequence: args.maxSeqLength) } catch { throw RunError("\(error)") }
            if leader {
                try RunInputs.checkOutput(r.output, inputs: [("--model", modelDir.path), ("--train", r.train)])
                try RunInputs.lockOutput(r.output, directory: false)
            }
            let outURL = URL(fileURLWithPath: r.output)
            if !r.resume, FileManager.default.fileExists(atPath: outURL.path),
               let saved = try? SensitivityReport.read(outURL), !saved.complete {
                throw RunError("--output \(r.output) holds an unfinished measurement: add --resume to continue it, or choose another file")
            }
            var runner = SensitivityRunner(model: model, pipeline: pipeline, configuration: c, padId: tokenizer.padTokenId, output: outURL)
            runner.group = group
            return (runner, SHA256.hex(try Data(contentsOf: trainURL)))
        }
    }
}
