import AQBert
import AQExperiments
import AQHub
import AQQuant
import AQSearch
import AQTasks
import Foundation

/// The plans `plan uniform|qbert|random` make and what `inspect` reports. Each returns the plan;
/// the caller writes it (a file, or standard output for '-').
public enum PlanRuns {
    /// Every group of every encoder matrix of `model` at `bits` (and, with `embeddingBits`, every
    /// row group of the word and position tables at that width).
    public static func uniform(model spec: String, bits: Int, groups: Int, candidates: [Int]?, embeddingBits: Int?,
                               embeddingRows: Int, output: String, downloadProgress: ((DownloadProgress) -> Void)? = nil) throws -> BitPlan {
        let dir = try RunInputs.modelDirectory(spec, progress: downloadProgress)
        try RunInputs.checkOutput(output, inputs: [("--model", dir.path)])
        let model = try RunInputs.loadModel(dir)
        var plan = try BitPlan.uniform(model: model, bits: bits, groups: groups, candidates: candidates)
        if let embeddingBits { plan = try plan.withEmbeddings(model: model, bits: embeddingBits, rowsPerGroup: embeddingRows) }
        return plan
    }

    /// Q-BERT-MP: the more sensitive half of the blocks (by Omega of the `sensitivity` file) at
    /// `high` bits, the rest at `low`. `warn` hears that the file is unfinished (Omega then uses
    /// the finished subsets).
    public static func qbert(sensitivity: String, low: Int, high: Int, model spec: String, groups: Int, output: String,
                             warn: (String) -> Void, downloadProgress: ((DownloadProgress) -> Void)? = nil) throws -> BitPlan {
        let report: SensitivityReport
        do { report = try SensitivityReport.read(URL(fileURLWithPath: sensitivity)) } catch { throw RunError("--sensitivity: \(error)") }
        if !report.complete {
            warn("\(sensitivity) is unfinished (\(report.eigenvalues.count) of \(report.configuration.subsets) subsets): Omega uses those")
        }
        guard !report.eigenvalues.isEmpty else { throw RunError("--sensitivity \(sensitivity) has no finished subset yet") }
        let dir = try RunInputs.modelDirectory(spec, progress: downloadProgress)
        try RunInputs.checkOutput(output, inputs: [("--sensitivity", sensitivity), ("--model", dir.path)])
        let m = try RunInputs.loadModel(dir)
        var plan: BitPlan
        do { plan = try BitPlan.qbert(model: m, omega: report.omega, lowBits: low, highBits: high, groups: groups) } catch {
            throw RunError("\(error)")
        }
        plan.provenance.task = report.task
        plan.provenance.seed = report.configuration.seed
        plan.provenance.dataSHA256 = report.dataSHA256
        return plan
    }

    /// The control of METHOD.md section 9: the plan at `like` with each matrix's (and table's)
    /// groups shuffled, its bit-width histograms kept.
    public static func random(like: String, seed: UInt64, output: String) throws -> BitPlan {
        try RunInputs.checkOutput(output, inputs: [("--like", like)])
        return try RunInputs.loadPlan(like, option: "--like").shuffledControl(seed: seed)
    }

    /// A plan, with `model` checked against it and the exact size of the packed model.safetensors
    /// `export` would write; with picture paths, the SVG text of each (the caller writes them).
    public static func inspect(plan path: String, model spec: String?, bitmap: String?, groupMap: String?,
                               downloadProgress: ((DownloadProgress) -> Void)? = nil) throws
        -> (plan: BitPlan, fileBytes: Int?, pictures: [(path: String, svg: String)]) {
        for (option, picture) in [("--bitmap", bitmap), ("--group-map", groupMap)] {
            if let picture { try RunInputs.checkOutput(picture, option: option, inputs: [("--plan", path), ("--model", spec)]) }
        }
        let p = try RunInputs.loadPlan(path)
        let name = (path as NSString).lastPathComponent
        let summary = String(format: "%.3f average bits, %.1f%% pruned", p.averageBits, 100 * p.prunedFraction)
        var pictures: [(path: String, svg: String)] = []
        if let bitmap { pictures.append((bitmap, BitMapPicture.svg([("\(name): \(summary)", p)], maxBits: p.candidates.max() ?? 8))) }
        if let groupMap { pictures.append((groupMap, BitMapPicture.groupsSVG(p, title: "\(name): bit-width of every row group (\(summary))"))) }
        var fileBytes: Int? = nil
        if let spec {
            let dir = try RunInputs.modelDirectory(spec, progress: downloadProgress)
            let m = try RunInputs.loadModel(dir)
            do { try p.validate(against: m) } catch { throw RunError("--plan \(path): \(error)") }
            let embeddingBits = (try? QuantizationConfig.read(from: dir))??.embeddingBits ?? 8  // the tables the plan leaves out
            do {
                fileBytes = try PackedFormat.fileBytes(plan: p, parameters: m.checkpointParameters.map { ($0.name, $0.tensor.shape) },
                                                       embeddingBits: embeddingBits)
            } catch { throw RunError("\(error)") }
        }
        return (p, fileBytes, pictures)
    }
}

/// The packed low-bit model of a quantization-aware one (`export`).
public enum ExportRun {
    /// What was written: the plan, the bytes of model.safetensors and the size formula's
    /// prediction, and the fp32 model.safetensors it came from.
    public struct Summary {
        public let plan: BitPlan
        public let bytes: Int
        public let predicted: Int
        public let fp32Bytes: Int
    }

    /// Writes the packed directory of the retrain output `model` to `output` (which must not exist).
    public static func run(model spec: String, output: String, downloadProgress: ((DownloadProgress) -> Void)? = nil) throws -> Summary {
        let dir = try RunInputs.modelDirectory(spec, progress: downloadProgress)
        if PackedBert.isPacked(dir) { throw RunError("--model \(spec) is packed already") }
        let outURL = URL(fileURLWithPath: output)
        if FileManager.default.fileExists(atPath: outURL.path) {
            throw RunError("--output \(output) exists: choose a new directory (export never overwrites a model)")
        }
        let (m, _): (BertTaskModel, BertLoadReport)
        do { (m, _) = try BertTaskModel.load(directory: dir) } catch { throw RunError("\(error)") }
        let quantization: QuantizedBert
        do {
            guard let q = try QuantizedBert.load(from: dir, into: m) else {
                throw RunError("--model \(spec) has no quantization_config: it is an fp32 model; run aqbert retrain --plan first")
            }
            quantization = q
        } catch let e as RunError { throw e } catch { throw RunError("\(error)") }
        let sizes: (bytes: Int, predicted: Int)
        do { sizes = try PackedBert.exportDirectory(model: m, quantization: quantization, tokenizerFrom: dir, to: outURL) } catch {
            throw RunError("\(error)")
        }
        let fp32 = (try? FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent("model.safetensors").path)[.size] as? Int) ?? 0
        return Summary(plan: quantization.plan, bytes: sizes.bytes, predicted: sizes.predicted, fp32Bytes: fp32)
    }
}
