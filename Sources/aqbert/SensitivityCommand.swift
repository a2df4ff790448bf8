import AQBert
import AQParallel
import AQSearch
import AQRuns
import AQTasks
import ArgumentParser
import Foundation

struct SensitivityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sensitivity",
        abstract: "Q-BERT: per encoder block, the top Hessian eigenvalue of the training loss (METHOD.md section 6).",
        discussion: """
            For each of --subsets seeded random subsets of --fraction of the training rows and each \
            encoder block: power iteration on Hessian-vector products (central differences of \
            gradients) with respect to all of the block's parameters, eval mode. Writes the \
            eigenvalues and Omega = |mean| + std per block (JSON) after every subset; --resume \
            continues after the last finished one. Feed it to `aqbert plan qbert`.
            """
    )
    @OptionGroup var common: TaskModelOptions
    @Option(help: "Training data (the subsets are drawn from it).") var train: String
    @Option(help: "Random subsets.") var subsets: Int = 10
    @Option(help: "Share of the training rows in each subset.") var fraction: Double = 0.1
    @Option(help: "At most this many rows per subset (cost grows with it: two gradient passes per product).") var maxRows: Int?
    @Option(help: "Relative change of the eigenvalue that stops the power iteration (METHOD.md: 1e-2 or 1e-3; 1e-2 can stop on a plateau).")
    var tolerance: Double = 1e-3
    @Option(help: "Most Hessian-vector products per eigenvalue.") var maxIterations: Int = 30
    @Option(help: "Rows per forward pass.") var batchSize: Int = 32
    @Option(help: "Longest input in tokens (default: the task's).") var maxSeqLength: Int?
    @Option(help: "Seed of the subsets and start vectors.") var seed: UInt64 = 42
    @Option(help: "Sensitivity file to write (JSON).") var output: String
    @Flag(help: "Continue after the last finished subset in --output.") var resume = false
    @Flag(help: "Progress as one JSON object per line.") var json = false

    /// Under `mpirun -np N` the ranks share out each subset's blocks (see `SensitivityRunner`);
    /// every rank checks the inputs and they agree on the first failure; rank 0 alone checks,
    /// locks and writes the output and prints.
    func run() throws {
        let group = try ProcessGroup.world()
        let leader = group.rank == 0
        var c = SensitivityConfiguration()
        c.subsets = subsets
        c.fraction = fraction
        c.maxRows = maxRows
        c.tolerance = tolerance
        c.maxIterations = maxIterations
        c.batchSize = batchSize
        c.seed = seed
        var request = SensitivityRequest(model: common.model, task: common.task, threads: common.threads, train: train, output: output,
                                         configuration: c)
        request.maxSeqLength = maxSeqLength
        request.resume = resume
        request.downloadProgress = TextIO.downloadBar
        let (runner, hash) = try SensitivityRun.prepare(request, group: group)
        let started = Date()
        let result = try runner.run(dataSHA256: hash, resume: resume) { s, b, e in
            guard leader else { return }
            if json {
                print("{\"subset\":\(s),\"block\":\(b),\"eigenvalue\":\(e.eigenvalue),\"iterations\":\(e.iterations),\"converged\":\(e.converged)}")
            } else {
                print(String(format: "subset %d/%d block %d: top eigenvalue %.5g after %d products%@ (%.0f s)", s + 1, c.subsets, b,
                             e.eigenvalue, e.iterations, e.converged ? "" : " (not converged)", Date().timeIntervalSince(started)))
            }
            fflush(stdout)
        }
        if !json && leader {
            let omega = result.omega.enumerated().map { String(format: "%d: %.4g", $0.offset, $0.element) }.joined(separator: ", ")
            print("Omega per block (\(result.eigenvalues.count) subsets of \(result.subsetRows) rows): \(omega) -> \(output)")
        }
    }
}
