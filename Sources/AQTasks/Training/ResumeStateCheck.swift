import AQSearch
import Foundation

/// The checks `--resume` applies to a checkpoint's state file, callable on their own (the
/// fuzzer runs them on mutated files): strict decoding, then whether the position is one a run
/// of that shape can reach.
public enum ResumeStateCheck {
    /// `trainer_state.json` of a fine-tuning or retraining of `epochs` epochs.
    public static func trainerState(at url: URL, epochs: Int, stepsPerEpoch: Int) throws {
        let state = try CheckpointFolders.read(TrainerState.self, at: url)
        if let problem = state.problem(epochs: epochs, stepsPerEpoch: stepsPerEpoch) { throw DataError("--resume: \(url.path): \(problem)") }
    }

    /// `search_state.json` of a search of `epochs` epochs.
    public static func searchState(at url: URL, epochs: Int) throws {
        let state = try CheckpointFolders.read(BilevelSearch.State.self, at: url)
        if let problem = SearchRunner.problem(in: state, epochs: epochs) { throw DataError("--resume: \(url.path): \(problem)") }
    }

    /// Valid trainer states (mid-epoch, and finished with a best epoch), as a run writes them.
    public static func exampleTrainerStates() -> [Data] {
        let a = TrainingArguments.defaults(for: .sst2)
        let history = [EpochResult(epoch: 1, globalStep: 7, trainLoss: 0.5, metrics: ["accuracy": 80.5])]
        let states = [
            TrainerState(epoch: 1, stepInEpoch: 3, globalStep: 10, lossSum: 1.5, lossCount: 3, bestMetric: 80.5, bestEpoch: 1,
                         history: history, arguments: a, trainSeconds: 12.5,
                         fingerprint: RunFingerprint(files: ["train": String(repeating: "a", count: 64)])),
            TrainerState(epoch: 0, stepInEpoch: 2, globalStep: 2, lossSum: 1.25, lossCount: 2, bestMetric: nil, bestEpoch: nil,
                         history: [], arguments: a, trainSeconds: 1),
        ]
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return states.compactMap { try? e.encode($0) }
    }

    /// Valid search states, as a search writes them.
    public static func exampleSearchStates() -> [Data] {
        var s = BilevelSearch.State(lambda: 0.25)
        s.epoch = 1
        s.batchInEpoch = 4
        s.step = 12
        s.architectureSteps = 6
        s.lastSide = 1
        s.activationRanges = ["bert.encoder.layer.0.attention.self.query": [-1.5, 2.25]]
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return [try? e.encode(s), try? e.encode(BilevelSearch.State(lambda: 0.1))].compactMap { $0 }
    }
}
