import AQBert
import AQQuant
import AQExperiments
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
            let dir = try TextIO.modelDirectory(self.model)
            try TextIO.checkOutput(output, inputs: [("--model", dir.path)])
            let model = try TextIO.loadModel(dir)
            let cands = try candidates.map(parseBits)
            var plan = try BitPlan.uniform(model: model, bits: bits, groups: groups, candidates: cands)
            if let embeddingBits { plan = try plan.withEmbeddings(model: model, bits: embeddingBits, rowsPerGroup: embeddingRows) }
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
                throw CLIError("--mix must be two bit-widths LOW/HIGH with LOW < HIGH <= 8, e.g. 2/3 or 2/4; got '\(mix)'")
            }
            let report: SensitivityReport
            do { report = try SensitivityReport.read(URL(fileURLWithPath: sensitivity)) } catch { throw CLIError("--sensitivity: \(error)") }
            if !report.complete {
                TextIO.warn("\(sensitivity) is unfinished (\(report.eigenvalues.count) of \(report.configuration.subsets) subsets): Omega uses those")
            }
            guard !report.eigenvalues.isEmpty else { throw CLIError("--sensitivity \(sensitivity) has no finished subset yet") }
            let dir = try TextIO.modelDirectory(model)
            try TextIO.checkOutput(output, inputs: [("--sensitivity", sensitivity), ("--model", dir.path)])
            let m = try TextIO.loadModel(dir)
            var plan: BitPlan
            do { plan = try BitPlan.qbert(model: m, omega: report.omega, lowBits: low, highBits: high, groups: groups) } catch {
                throw CLIError("\(error)")
            }
            plan.provenance.task = report.task
            plan.provenance.seed = report.configuration.seed
            plan.provenance.dataSHA256 = report.dataSHA256
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
            try TextIO.checkOutput(output, inputs: [("--like", like)])
            let source = try TextIO.loadPlan(like)
            let plan = source.shuffledControl(seed: seed)
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
        for (option, path) in [("--bitmap", bitmap), ("--group-map", groupMap)] {
            if let path { try TextIO.checkOutput(path, option: option, inputs: [("--plan", plan), ("--model", model)]) }
        }
        let p = try TextIO.loadPlan(plan)
        let name = (plan as NSString).lastPathComponent
        let summary = String(format: "%.3f average bits, %.1f%% pruned", p.averageBits, 100 * p.prunedFraction)
        if let bitmap {
            try TextIO.write(BitMapPicture.svg([("\(name): \(summary)", p)], maxBits: p.candidates.max() ?? 8), to: bitmap)
        }
        if let groupMap {
            try TextIO.write(BitMapPicture.groupsSVG(p, title: "\(name): bit-width of every row group (\(summary))"), to: groupMap)
        }
        // With a model: the exact size of the packed model.safetensors `export` would write.
        var fileBytes: Int? = nil
        if let model {
            let dir = try TextIO.modelDirectory(model)
            let m = try TextIO.loadModel(dir)
            do { try p.validate(against: m) } catch { throw CLIError("--plan \(plan): \(error)") }
            let embeddingBits = (try? QuantizationConfig.read(from: dir))??.embeddingBits ?? 8  // the tables the plan leaves out
            do {
                fileBytes = try PackedFormat.fileBytes(plan: p, parameters: m.checkpointParameters.map { ($0.name, $0.tensor.shape) },
                                                       embeddingBits: embeddingBits)
            } catch { throw CLIError("\(error)") }
        }
        if json {
            print(p.reportJSON(fileBytes: fileBytes))
        } else {
            for line in p.reportLines(name: plan, fileBytes: fileBytes) { print(line) }
        }
    }
}

func parseBits(_ s: String) throws -> [Int] {
    let parts = s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    let bits = parts.compactMap { Int($0) }
    guard bits.count == parts.count, !bits.isEmpty else { throw CLIError("bit-widths must be a comma-separated list like 0,2,4, got \"\(s)\"") }
    return bits
}
