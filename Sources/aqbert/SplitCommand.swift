import AQRuns
import AQTasks
import ArgumentParser
import Foundation

extension TaskName: ExpressibleByArgument {}

struct SplitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "split",
        abstract: "Split a data file into train/dev files in its own format (deterministic, seeded).",
        discussion: """
            Example i is held out when splitmix64(seed ^ i) % 100 < percent; SQuAD with \
            --train-articles N puts the first N articles in train and the rest in dev.
            """
    )

    @Option(help: "Data format: \(TaskName.allCases.map(\.rawValue).joined(separator: ", ")).") var task: TaskName
    @Option(help: "The file to split.") var data: String
    @Option(help: "Percent of examples (articles for SQuAD) held out for dev.") var heldOutPercent: Int = 20
    @Option(help: "SQuAD: the first N articles train, the rest evaluate.") var trainArticles: Int?
    @Option(help: "Seed of the held-out rule.") var seed: UInt64 = 42
    @Option(help: "Where the training part goes.") var trainOutput: String
    @Option(help: "Where the held-out part goes.") var devOutput: String

    func validate() throws {
        if !(0...100).contains(heldOutPercent) { throw ValidationError("--held-out-percent must be between 0 and 100") }
        if let trainArticles, trainArticles < 0 { throw ValidationError("--train-articles must be non-negative") }
        if trainArticles != nil && task != .squad { throw ValidationError("--train-articles applies to --task squad only") }
    }

    func run() throws {
        let counts = try SplitRun.run(task: task, data: data, seed: seed, heldOutPercent: heldOutPercent, trainArticles: trainArticles,
                                      trainOutput: trainOutput, devOutput: devOutput)
        let unit = task == .squad ? "articles" : task == .conll2003 ? "sentences" : "examples"
        print("\(counts.train) \(unit) -> \(trainOutput); \(counts.heldOut) \(unit) -> \(devOutput)")
    }
}
