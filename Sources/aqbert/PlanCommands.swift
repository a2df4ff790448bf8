import AQBert
import AQQuant
import AQRuns
import AQTasks
import ArgumentParser
import Foundation

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Make bit plans: uniform b-bit, Q-BERT mixed precision, or the random control with another plan's histograms.",
        subcommands: [Uniform.self, QBERT.self, Random.self]
    )

    struct Uniform: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every group of every encoder matrix at --bits.")
        @Option(help: "A Hugging Face BERT directory or hub id (matrix shapes).") var model: String
        @Option(help: "Bit-width of every group (0-8).") var bits: Int
        @Option(help: "Row groups per matrix (must divide every matrix's rows).") var groups: Int = 128
        @Option(help: "Candidate set recorded in the plan (default: just --bits), e.g. 0,2,4.") var candidates: String?
        @Option(help: "Also plan the word and position tables, every row at this width (default: not planned, 8 bits).")
        var embeddingBits: Int?
        @Option(help: "Rows per embedding group (with --embedding-bits).") var embeddingRows: Int = 32
        @Option(help: "Plan file to write.") var output: String

        func run() throws {
            let plan = try PlanRuns.uniform(model: self.model, bits: bits, groups: groups, candidates: try candidates.map(parseBits),
                                            embeddingBits: embeddingBits, embeddingRows: embeddingRows, output: output,
                                            downloadProgress: TextIO.downloadBar)
            try TextIO.write(String(decoding: try plan.jsonData(), as: UTF8.self) + "\n", to: output)
            print(String(format: "uniform %d-bit plan: %.3f MiB, %d matrices x %d groups -> %@", bits, plan.sizeMiB,
                         plan.matrices.count, groups, output))
        }
    }

    struct QBERT: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "qbert",
            abstract: "Q-BERT-MP: the more sensitive half of the encoder blocks (by Omega) at the higher width.",
            discussion: "--mix 2/3 puts the top half of the blocks by Omega (aqbert sensitivity) at 3 bits and the rest at 2; 2/4 likewise at 4.")
        @Option(help: "Sensitivity file from aqbert sensitivity.") var sensitivity: String
        @Option(help: "Low/high bit-widths, e.g. 2/3 or 2/4.") var mix: String
        @Option(help: "A Hugging Face BERT directory (matrix shapes).") var model: String
        @Option(help: "Row groups per matrix (must divide every matrix's rows).") var groups: Int = 128
        @Option(help: "Plan file to write.") var output: String

        func run() throws {
            let parts = mix.split(separator: "/").map { Int($0) }
            guard parts.count == 2, let low = parts[0], let high = parts[1], (0...8).contains(low), (1...8).contains(high), low < high else {
                throw RunError("--mix must be two bit-widths LOW/HIGH with LOW < HIGH <= 8, e.g. 2/3 or 2/4; got '\(mix)'")
            }
            let plan = try PlanRuns.qbert(sensitivity: sensitivity, low: low, high: high, model: model, groups: groups, output: output,
                                          warn: TextIO.warn, downloadProgress: TextIO.downloadBar)
            try TextIO.write(String(decoding: try plan.jsonData(), as: UTF8.self) + "\n", to: output)
            print(String(format: "Q-BERT %d/%d plan: blocks %@ at %d bits, %.3f MiB (%.3f average bits) -> %@", low, high,
                         plan.provenance.notes["high_blocks"] ?? "", high, plan.sizeMiB, plan.averageBits, output))
        }
    }

    struct Random: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The control of METHOD.md section 9: each matrix keeps its bit-width histogram, groups shuffled.")
        @Option(help: "The plan whose histograms to keep.") var like: String
        @Option(help: "Seed of the shuffle.") var seed: UInt64 = 0
        @Option(help: "Plan file to write.") var output: String

        func run() throws {
            let plan = try PlanRuns.random(like: like, seed: seed, output: output)
            try TextIO.write(String(decoding: try plan.jsonData(), as: UTF8.self) + "\n", to: output)
            print(String(format: "random control of %@ (seed %llu): %.3f MiB -> %@", like, seed, plan.sizeMiB, output))
        }
    }
}

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Per matrix and in total: bit-width histogram, pruned fraction, size.",
        discussion: "With --json: one object with size_mib, avg_bits, pruned_fraction, weights, histogram and matrices."
    )
    @Option(help: "A bit plan file.") var plan: String
    @Option(help: "Check the plan against this model (paths and shapes).") var model: String?
    @Flag(help: "Print one JSON object.") var json = false
    @Option(help: "Also draw the plan as a heat map (blocks x matrices, average bits, pruned share) into this SVG file.")
    var bitmap: String?
    @Option(help: "Also draw every row group's bit-width (one strip per matrix) into this SVG file.") var groupMap: String?

    func run() throws {
        let (p, fileBytes, pictures) = try PlanRuns.inspect(plan: plan, model: model, bitmap: bitmap, groupMap: groupMap,
                                                            downloadProgress: TextIO.downloadBar)
        for picture in pictures { try TextIO.write(picture.svg, to: picture.path, option: picture.path == bitmap ? "--bitmap" : "--group-map") }
        if json {
            print(p.reportJSON(fileBytes: fileBytes))
        } else {
            for line in p.reportLines(name: plan, fileBytes: fileBytes) { print(line) }
        }
    }
}
