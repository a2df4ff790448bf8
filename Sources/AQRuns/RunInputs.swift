import AQBert
import AQFiles
import AQHub
import AQParallel
import AQQuant
import AQTasks
import AQTokenizer
import Foundation

/// The checks and loads every run starts with: input files, the model directory, the output
/// path and its lock, the worker threads. Every failure is a `RunError` naming the option.
public enum RunInputs {
    /// `path` as an existing file (not a directory), else an error naming `option`.
    @discardableResult
    public static func existingFile(_ path: String, option: String) throws -> URL {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw RunError("\(option) \(path): no such file")
        }
        if isDir.boolValue { throw RunError("\(option) \(path) is a directory, expected a file") }
        return URL(fileURLWithPath: path)
    }

    /// Lines of a UTF-8 file ('-' = standard input), split as the tokenize contract says
    /// (`TokenizerIO.splitLines`: only "\n" ends a line).
    public static func lines(_ path: String, option: String = "--input") throws -> [String] {
        let data: Data
        if path == "-" {
            data = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            try existingFile(path, option: option)
            do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
                throw RunError("cannot read \(path): \(error.localizedDescription)")
            }
        }
        do { return try TokenizerIO.splitLines(data, source: path == "-" ? "standard input" : path) } catch {
            throw RunError("\(error)")
        }
    }

    /// `--model`: a directory, or a Hugging Face id resolved from the local cache or the hub
    /// (`progress` hears a download's progress). `requireConfig: false` accepts any existing
    /// directory (a tokenizer needs only vocab.txt).
    public static func modelDirectory(_ spec: String, requireConfig: Bool = true,
                                      progress: ((DownloadProgress) -> Void)? = nil) throws -> URL {
        var isDir: ObjCBool = false
        if !requireConfig, FileManager.default.fileExists(atPath: spec, isDirectory: &isDir), isDir.boolValue {
            return URL(fileURLWithPath: spec)
        }
        do {
            return try ModelLocator().resolve(spec, progress: progress)
        } catch let e as HubError {
            // A finetune / retrain output whose run has not finished holds checkpoints but no model.
            let fm = FileManager.default
            if fm.fileExists(atPath: spec + "/last-checkpoint.json") && !fm.fileExists(atPath: spec + "/model.safetensors") {
                throw RunError("--model \(spec) is an unfinished aqbert run (checkpoints, no model yet): finish it by running its command again with --resume")
            }
            throw RunError("--model \(spec): \(e.description)")
        }
    }

    /// Refuses (one line, before any work) an `option` output path that names one of `inputs`
    /// (option, path) or a device/FIFO (`outputConflict`); '-' (standard output) passes.
    public static func checkOutput(_ output: String, option: String = "--output", inputs: [(String, String?)]) throws {
        guard output != "-" else { return }
        let named = inputs.compactMap { label, path in path.flatMap { $0 == "-" ? nil : (label: label, path: $0) } }
        if let conflict = outputConflict(output, inputs: named) { throw RunError("\(option) \(conflict)") }
    }

    /// Takes the run's exclusive lock on its output folder (or, with `directory: false`, its
    /// output file) for the life of the process: a second run on the same output fails here.
    public static func lockOutput(_ output: String, directory: Bool = true) throws {
        do {
            if directory { try OutputLock.lockDirectory(output) } else { try OutputLock.lockFile(output) }
        } catch { throw RunError("--output: \(error)") }
    }

    /// Writes `data` to `path` atomically (temporary file, fsync, rename).
    public static func write(_ data: Data, to path: String, option: String = "--output") throws {
        do { try writeAtomically(data, toPath: path) } catch { throw RunError("\(option): \(error)") }
    }

    /// The SHA-256 of a run's model and input files, recorded in its checkpoints.
    static func fingerprint(modelDirectory: URL, inputs: [(String, URL)]) throws -> RunFingerprint {
        do { return try RunFingerprint.of(modelDirectory: modelDirectory, inputs: inputs.map { (label: $0.0, url: $0.1) }) } catch {
            throw RunError("cannot read the run's inputs to fingerprint them: \(error.localizedDescription)")
        }
    }

    /// A model directory's weights (any architecture its config names; a packed one unpacked).
    public static func loadModel(_ dir: URL) throws -> BertTaskModel {
        do {
            if PackedBert.isPacked(dir) { return try PackedBert.load(directory: dir).model }
            return try BertTaskModel.load(directory: dir).model
        } catch { throw RunError("\(error)") }
    }

    /// A bit plan file, validated.
    public static func loadPlan(_ path: String, option: String = "--plan") throws -> BitPlan {
        let url = try existingFile(path, option: option)
        do { return try BitPlan(contentsOf: url) } catch { throw RunError("\(error)") }
    }

    /// The tokenizer of a model directory, as a one-line error.
    static func loadTokenizer(_ dir: URL) throws -> BertTokenizer {
        do { return try BertTokenizer(directory: dir) } catch { throw RunError("\(error)") }
    }

    /// Sets the worker threads: `threads`, or under mpirun the machine's cores shared by the
    /// ranks on it (`group`), or all cores.
    public static func setThreads(_ threads: Int?, group: ProcessGroup = .single) {
        if let threads { Runtime.threads = threads } else if group.size > 1 { Runtime.threads = group.defaultThreads(cores: Runtime.threads) }
    }

    /// The error for a model whose task head was not in its checkpoint (not fine-tuned).
    static func notFineTuned(_ spec: String, _ model: BertTaskModel, _ report: BertLoadReport) -> RunError {
        RunError("--model \(spec) has no fine-tuned \(model.className) head (missing \(report.initialized.joined(separator: ", "))): fine-tune it first with aqbert finetune")
    }

    /// The tokenizer of `modelDir`, the task pipeline reading `train` (split and search data come
    /// from it), and the model with the task's head (search, sensitivity).
    static func trainingData(task: TaskName, modelDir: URL, train: URL, arguments: TrainingArguments) throws
        -> (tokenizer: BertTokenizer, pipeline: RunnableTask, model: BertTaskModel, report: BertLoadReport) {
        let tokenizer = try loadTokenizer(modelDir)
        let pipeline = try TaskPipelines.make(task: task, tokenizer: tokenizer, arguments: arguments, train: train, evaluation: train)
        let (model, report) = try BertTaskModel.load(directory: modelDir, architecture: pipeline.architecture,
                                                     numLabels: pipeline.labelNames?.count)
        return (tokenizer, pipeline, model, report)
    }

    /// The distillation teacher: the fp32 `--model` itself, loaded again (the student gets the
    /// quantization or the super-network; the teacher never does). An error when `student`'s task
    /// head was not in the checkpoint, since an untrained head teaches nothing.
    static func teacher(spec: String, modelDir: URL, student: BertTaskModel, report: BertLoadReport, pipeline: TaskPipeline,
                        seed: UInt64, option: String = "--distill") throws -> BertTaskModel {
        if !report.initialized.isEmpty {
            throw RunError("\(option) needs a fine-tuned teacher, but --model \(spec) has no fine-tuned \(student.className) head: fine-tune it first with aqbert finetune, or pass \(option) none")
        }
        return try BertTaskModel.load(directory: modelDir, architecture: pipeline.architecture, numLabels: pipeline.labelNames?.count,
                                      seed: seed).0
    }
}

/// A data file split into train and held-out files in its own format (`split`).
public enum SplitRun {
    /// Checks that the outputs name neither the input nor each other, then splits (`DataSplits`).
    public static func run(task: TaskName, data: String, seed: UInt64, heldOutPercent: Int, trainArticles: Int?,
                           trainOutput: String, devOutput: String) throws -> (train: Int, heldOut: Int) {
        let input = try RunInputs.existingFile(data, option: "--data")
        try RunInputs.checkOutput(trainOutput, option: "--train-output", inputs: [("--data", data)])
        try RunInputs.checkOutput(devOutput, option: "--dev-output", inputs: [("--data", data), ("--train-output", trainOutput)])
        if URL(fileURLWithPath: trainOutput).standardizedFileURL == URL(fileURLWithPath: devOutput).standardizedFileURL {
            throw RunError("--train-output and --dev-output are the same file: give each part its own")
        }
        let counts = try DataSplits.split(task: task, data: input, seed: seed, heldOutPercent: heldOutPercent,
                                          trainArticles: trainArticles, train: URL(fileURLWithPath: trainOutput),
                                          dev: URL(fileURLWithPath: devOutput))
        return (counts.train, counts.heldOut)
    }
}
