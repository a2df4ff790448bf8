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
        let fileBytesJSON = fileBytes.map { ",\"file_bytes\":\($0)" } ?? ""
        let paths = p.matrices.keys.sorted { matrixOrder($0) < matrixOrder($1) }
        func histogram(_ m: [BitPlan.Matrix]) -> [Int: Int] {
            var h: [Int: Int] = [:]
            for x in m { for b in x.bits { h[b, default: 0] += x.groupSize } }
            return h
        }
        if json {
            func obj(_ m: BitPlan.Matrix) -> String {
                let h = histogram([m]).sorted { $0.key < $1.key }.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",")
                let pruned = Double(m.bits.filter { $0 == 0 }.count) / Double(m.groups)
                return "{\"shape\":[\(m.shape[0]),\(m.shape[1])],\"groups\":\(m.groups),\"size_mib\":\(Double(m.totalBits) / 8 / 1_048_576),\"avg_bits\":\(Double(m.totalBits) / Double(m.weightCount)),\"pruned_fraction\":\(pruned),\"histogram\":{\(h)}}"
            }
            let total = histogram(Array(p.matrices.values)).sorted { $0.key < $1.key }.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",")
            let ms = paths.map { "\"\($0)\":\(obj(p.matrices[$0]!))" }.joined(separator: ",")
            func table(_ e: BitPlan.Embedding) -> String {
                var h: [Int: Int] = [:]
                for g in 0..<e.groups { h[e.bits[g], default: 0] += e.rows(ofGroup: g).count * e.shape[1] }
                let hist = h.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",")
                return "{\"shape\":[\(e.shape[0]),\(e.shape[1])],\"rows_per_group\":\(e.rowsPerGroup),\"groups\":\(e.groups),\"avg_bits\":\(Double(e.totalBits) / Double(e.weightCount)),\"histogram\":{\(hist)}}"
            }
            let tables = p.embeddings.keys.sorted().map { "\"\($0)\":\(table(p.embeddings[$0]!))" }.joined(separator: ",")
            let tableJSON = p.embeddings.isEmpty ? "" : ",\"embedding_avg_bits\":\(p.embeddingAverageBits),\"embedding_candidates\":[\(p.embeddingCandidates.map(String.init).joined(separator: ","))],\"embeddings\":{\(tables)}"
            print("{\"version\":\(p.version),\"size_mib\":\(p.sizeMiB),\"avg_bits\":\(p.averageBits),\"pruned_fraction\":\(p.prunedFraction),\"weights\":\(p.weightCount)\(fileBytesJSON),\"candidates\":[\(p.candidates.map(String.init).joined(separator: ","))],\"method\":\"\(p.provenance.method)\",\"histogram\":{\(total)},\"matrices\":{\(ms)}\(tableJSON)}")
            return
        }
        print("plan \(plan): method \(p.provenance.method), candidates \(p.candidates)")
        let header = "matrix".padding(toLength: 52, withPad: " ", startingAt: 0) + "   groups  avg bits  pruned   MiB  histogram (groups per bit-width)"
        print(header)
        for path in paths {
            let m = p.matrices[path]!
            var counts: [Int: Int] = [:]
            for b in m.bits { counts[b, default: 0] += 1 }
            let h = counts.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: " ")
            print(path.padding(toLength: 52, withPad: " ", startingAt: 0)
                  + String(format: " %8d %9.3f %6.1f%% %6.3f  ", m.groups, Double(m.totalBits) / Double(m.weightCount),
                           100 * Double(m.bits.filter { $0 == 0 }.count) / Double(m.groups), Double(m.totalBits) / 8 / 1_048_576) + h)
        }
        print(String(format: "total: %d weights, %.3f MiB, %.3f average bits, %.1f%% pruned", p.weightCount, p.sizeMiB,
                     p.averageBits, 100 * p.prunedFraction))
        for path in p.embeddings.keys.sorted() {
            let e = p.embeddings[path]!
            var counts: [Int: Int] = [:]
            for b in e.bits { counts[b, default: 0] += 1 }
            let h = counts.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: " ")
            print(path.padding(toLength: 52, withPad: " ", startingAt: 0)
                  + String(format: " %8d %9.3f  (%d rows per group)  ", e.groups, Double(e.totalBits) / Double(e.weightCount), e.rowsPerGroup) + h)
        }
        if let fileBytes {
            print(String(format: "packed model.safetensors (aqbert export): %d bytes (%.2f MiB): codes, fp16 ranges, %@ embeddings, fp32 rest",
                         fileBytes, Double(fileBytes) / 1_048_576,
                         p.embeddings.isEmpty ? "8-bit" : String(format: "planned (%.3f average bits)", p.embeddingAverageBits)))
        }
    }

    /// Block number then Q, K, V, O, FFN in, FFN out (BERT or DistilBERT names).
    func matrixOrder(_ path: String) -> (Int, Int) {
        let parts = path.split(separator: ".")
        let layer = parts.firstIndex(of: "layer").flatMap { Int(parts[$0 + 1]) } ?? 0
        let order = [["query", "q_lin"], ["key", "k_lin"], ["value", "v_lin"], ["attention.output", "out_lin"],
                     ["intermediate", "lin1"], ["output.dense", "lin2"]]
        let kind = order.firstIndex { $0.contains(where: path.contains) } ?? 9
        return (layer, kind)
    }
}

func parseBits(_ s: String) throws -> [Int] {
    let parts = s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    let bits = parts.compactMap { Int($0) }
    guard bits.count == parts.count, !bits.isEmpty else { throw CLIError("bit-widths must be a comma-separated list like 0,2,4, got \"\(s)\"") }
    return bits
}
