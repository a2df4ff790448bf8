import AQExperiments
import AQFiles
import AQHub
import AQParallel
import Foundation

/// The comparison of METHOD.md section 6 (`compare`), each step a run of the aqbert executable.
public enum CompareRun {
    /// Checks the inputs and creates the output folder; returns the model directory and the
    /// files as URLs.
    public static func inputs(model spec: String, train: String, dev: String, output: String,
                              downloadProgress: ((DownloadProgress) -> Void)? = nil) throws
        -> (model: URL, train: URL, dev: URL, output: URL) {
        let trainURL = try RunInputs.existingFile(train, option: "--train"), devURL = try RunInputs.existingFile(dev, option: "--dev")
        let modelDir = try RunInputs.modelDirectory(spec, progress: downloadProgress)
        try RunInputs.checkOutput(output, inputs: [("--model", modelDir.path), ("--train", train), ("--dev", dev)])
        let out = URL(fileURLWithPath: output)
        do { try makeDirectories(out.path) } catch { throw RunError("--output: \(error)") }
        return (modelDir, trainURL, devURL, out)
    }

    /// Runs the comparison's steps, each `executable` started with `environment` and `threads`
    /// (nil: the step's default), skipping finished ones. Under `mpirun -np N` (`group`) the
    /// ranks first share the steps as a work queue (each started once the steps it reads have
    /// finished); then rank 0 runs the whole comparison, finding every step finished, and
    /// publishes the results. Returns whether this process published them. `progress` hears
    /// each step's start and end.
    public static func run(settings: ComparisonSettings, output: URL, executable: URL, environment: [String: String], threads: Int?,
                           group: ProcessGroup, progress: @escaping (String) -> Void) throws -> Bool {
        let runner = ProcessCommandRunner(executable: executable, output: output, environment: environment)
        let pipeline = ComparisonPipeline(settings: settings, output: output,
                                          steps: ComparisonSteps(runner: runner, threads: threads, progress: progress), progress: progress)
        do {
            if group.size > 1 {
                try pipeline.runJobs { dependencies, run in try group.runQueue(dependencies: dependencies, run: run) }
                guard group.rank == 0 else { return false }
            }
            try pipeline.run()
        } catch let e as ComparisonError { throw RunError(e.description) }
        return true
    }
}
