import Foundation
import XCTest

/// `aqbert search` refuses impossible configurations at once, with one line.
final class SearchCommandTests: XCTestCase {
    func testImpossibleBudgetsAndBadCandidatesFailAtOnce() throws {
        let model = try Scratch.tinyModelWithVocab()
        let dir = try Scratch.directory()
        defer {
            try? FileManager.default.removeItem(at: model)
            try? FileManager.default.removeItem(at: dir)
        }
        // The data file is never read for these: it does not even need to be valid.
        let train = dir.appendingPathComponent("train.tsv")
        try "not a tsv".write(to: train, atomically: true, encoding: .utf8)
        func search(_ extra: [String]) throws -> CLI.Result {
            try CLI.run(["search", "--model", model.path, "--task", "sst2", "--train", train.path,
                         "--output", dir.appendingPathComponent("out").path] + extra)
        }
        assertUserError(try search(["--target-bits", "0"]), contains: "must be positive")
        assertUserError(try search(["--target-mb=-1"]), contains: "must be positive")
        assertUserError(try search(["--target-bits", "4.5", "--groups", "1"]), contains: "above the size with every group at 4 bits")
        assertUserError(try search(["--target-bits", "1", "--bits", "2,4", "--groups", "1"]), contains: "below the size with every group at 2 bits")
        assertUserError(try search(["--target-bits", "2", "--bits", ""]), contains: "comma-separated")
        assertUserError(try search(["--target-bits", "2", "--bits", "0,9"]), contains: "outside 0...8")
        assertUserError(try search(["--target-bits", "2", "--groups", "5"]), contains: "--groups 5 does not divide")
        // One 37 x 32 matrix of the tiny model is 1,184 weights: 2 bits per step is 0.00028 MiB,
        // more than the whole +-2% band around 2 average bits (0.00025 MiB) is wide.
        assertUserError(try search(["--target-bits", "2", "--groups", "1"]), contains: "a --tolerance of at least 0.046")
        assertUserError(try search(["--target-bits", "2", "--groups", "1", "--tolerance", "0"]), contains: "--tolerance")
        assertUserError(try search(["--target-bits", "2", "--groups", "1", "--tolerance", "nan"]), contains: "--tolerance")
        assertUserError(try search([]), contains: "exactly one of --target-mb or --target-bits")
        assertUserError(try search(["--target-bits", "2", "--target-mb", "1"]), contains: "exactly one")
        assertUserError(try search(["--target-bits", "2", "--groups", "1", "--lambda", "big"]), contains: "--lambda")
    }
}
