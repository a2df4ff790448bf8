import AQBert
import AQSafeTensors
import CAQKernels
import Foundation

/// A packed mixed-precision BERT (Docs/PACKED_FORMAT.md): written by `export` from a
/// quantization-aware model, loaded into a `BertTaskModel` whose planned Linears and embedding
/// tables run from the packed codes (their fp32 parameters are never filled, so they cost no
/// memory). Inference only.
public final class PackedBert {
    public let quantization: QuantizationConfig
    public let plan: BitPlan
    /// The packed matrices by checkpoint name.
    public private(set) var linears: [String: PackedLinear] = [:]
    /// Keeps the memory-mapped file alive while the model runs from it.
    let checkpoint: SafeTensorsCheckpoint

    init(quantization: QuantizationConfig, plan: BitPlan, checkpoint: SafeTensorsCheckpoint) {
        self.quantization = quantization
        self.plan = plan
        self.checkpoint = checkpoint
    }

    /// True when `directory`'s config.json records a packed aq-bert model.
    public static func isPacked(_ directory: URL) -> Bool {
        (try? QuantizationConfig.read(from: directory))??.packed == true
    }

    // MARK: - Export

    /// Writes the packed directory for `model` with its installed quantization: `config.json`
    /// (with `quantization_config`, `"packed": true`), `model.safetensors`, `plan.json`; the
    /// caller copies tokenizer files. Returns the file's size and the size `fileBytes` predicts.
    @discardableResult
    public static func export(model: BertTaskModel, quantization q: QuantizedBert, to directory: URL) throws -> (bytes: Int, predicted: Int) {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var tensors: [SafeTensorsWriter.Tensor] = []
        var stored: [String: [UInt8]] = [:]
        func append(_ name: String, _ dtype: SafeTensorsDType, _ shape: [Int], _ bytes: [UInt8]) {
            tensors.append(.raw(name, dtype: dtype, shape: shape, bytes: bytes))
            stored[name] = bytes
        }
        let embeddingBits = q.embeddingBits
        for (name, t) in model.checkpointParameters {
            if let m = PackedFormat.planned(name, in: q.plan) {
                let k = t.shape[1], r = m.rowsPerGroup
                var codes: [UInt8] = [], ranges: [UInt16] = []
                var row = [UInt8](repeating: 0, count: PackedFormat.rowBytes(columns: k, bits: 8))
                // Learned ranges: the fp16 bounds the quantization-aware model quantized with.
                let learned = PackedFormat.plannedKey(name, in: q.plan).flatMap { q.weightRanges[$0] }.map(LearnedRanges.effective)
                for (g, b) in m.bits.enumerated() where b > 0 {
                    let group = UnsafeBufferPointer(start: t.pointer + g * r * k, count: r * k)
                    let (c, lo, hi) = try learned.map { try PackedFormat.encode(group, bits: b, lo: $0[2 * g], hi: $0[2 * g + 1]) }
                        ?? PackedFormat.encode(group, bits: b)
                    ranges += [lo, hi]
                    let bytes = PackedFormat.rowBytes(columns: k, bits: b)
                    for i in 0..<r {
                        c.withUnsafeBufferPointer { aq_pack_codes($0.baseAddress! + i * k, k, Int32(b), &row) }
                        codes += row[0..<bytes]
                    }
                }
                append(name + ".bits", .u8, [m.groups], m.bits.map { UInt8($0) })
                append(name + ".ranges", .f16, [ranges.count / 2, 2], littleEndianBytes(ranges))
                append(name + ".codes", .u8, [codes.count], codes)
            } else if let e = PackedFormat.plannedEmbedding(name, in: q.plan) {
                // Each kept row on its own range: learned (fp16 bounds as trained) or min/max.
                let c = t.shape[1]
                let learned = PackedFormat.plannedEmbeddingKey(name, in: q.plan).flatMap { q.weightRanges[$0] }
                var codes: [UInt8] = [], ranges: [UInt16] = []
                var packedRow = [UInt8](repeating: 0, count: PackedFormat.rowBytes(columns: c, bits: 8))
                for g in 0..<e.groups where e.bits[g] > 0 {
                    let b = e.bits[g], bytes = PackedFormat.rowBytes(columns: c, bits: b)
                    for r in e.rows(ofGroup: g) {
                        let row = UnsafeBufferPointer(start: t.pointer + r * c, count: c)
                        let (rowCodes, lo, hi): ([UInt8], UInt16, UInt16)
                        if let learned {
                            var l: Float = 0, h: Float = 0
                            aq_learned_range(learned.pointer[2 * r], learned.pointer[2 * r + 1], &l, &h)
                            (rowCodes, lo, hi) = try PackedFormat.encode(row, bits: b, lo: l, hi: h)
                        } else {
                            (rowCodes, lo, hi) = try PackedFormat.encode(row, bits: b)
                        }
                        ranges += [lo, hi]
                        aq_pack_codes(rowCodes, c, Int32(b), &packedRow)
                        codes += packedRow[0..<bytes]
                    }
                }
                append(name + ".bits", .u8, [e.groups], e.bits.map { UInt8($0) })
                append(name + ".ranges", .f16, [ranges.count / 2, 2], littleEndianBytes(ranges))
                append(name + ".codes", .u8, [codes.count], codes)
            } else if embeddingBits > 0, PackedFormat.isEmbeddingTable(name) {
                let (v, c) = (t.shape[0], t.shape[1])
                var codes = [UInt8](), ranges = [UInt16]()
                codes.reserveCapacity(v * c)
                for i in 0..<v {
                    let (rowCodes, lo, hi) = try PackedFormat.encode(UnsafeBufferPointer(start: t.pointer + i * c, count: c),
                                                                     bits: embeddingBits)
                    codes += rowCodes
                    ranges += [lo, hi]
                }
                append(name + ".codes", .u8, [v, c], codes)
                append(name + ".ranges", .f16, [v, 2], littleEndianBytes(ranges))
            } else {
                // The stored bytes (host order, little-endian on every CPU aqbert builds for, as
                // safetensors stores fp32), so that the checksum covers exactly what is written.
                append(name, .f32, t.shape, t.array.withUnsafeBytes { Array($0) })
            }
        }
        let checksum = PackedFormat.checksum(names: Array(stored.keys)) { name, body in stored[name, default: []].withUnsafeBytes(body) }
        let weightsURL = directory.appendingPathComponent("model.safetensors")
        do {
            try SafeTensorsWriter.write(tensors, metadata: PackedFormat.metadata(checksum: checksum, plan: q.plan), to: weightsURL)
        } catch let e as SafeTensorsError {
            throw PackedModelError(e.description)
        }
        var config = model.config
        config.architectures = [model.className]
        try writeAtomically(try config.jsonData(), to: directory.appendingPathComponent("config.json"))
        var qc = q.config
        qc.packed = true
        // The packed tensors carry the effective ranges, learned or not: the packed format is one.
        qc.version = 1
        qc.weightRangesFile = nil
        try q.plan.write(to: directory.appendingPathComponent(qc.planFile))
        try QuantizationConfig.insert(qc, intoConfigAt: directory.appendingPathComponent("config.json"))
        let bytes = (try FileManager.default.attributesOfItem(atPath: weightsURL.path)[.size] as? Int) ?? 0
        let predicted = try PackedFormat.fileBytes(plan: q.plan, parameters: model.checkpointParameters.map { ($0.name, $0.tensor.shape) },
                                                   embeddingBits: embeddingBits)
        return (bytes, predicted)
    }

    /// `export` as a whole directory: the packed model of `model` with its installed
    /// `quantization`, plus the tokenizer files found in `source`, written to a temporary sibling
    /// of `output` and renamed into place at the end, so a killed or failed export leaves no
    /// half-written model. `output` must not exist. Returns the file's size and the predicted one.
    @discardableResult
    public static func exportDirectory(model: BertTaskModel, quantization: QuantizedBert, tokenizerFrom source: URL,
                                       to output: URL) throws -> (bytes: Int, predicted: Int) {
        let fm = FileManager.default
        guard !fm.fileExists(atPath: output.path) else {
            throw PackedModelError("\(output.path) exists: export never replaces a directory")
        }
        let staging = output.deletingLastPathComponent().appendingPathComponent(".\(output.lastPathComponent).export-\(getpid())")
        try? fm.removeItem(at: staging)
        defer { try? fm.removeItem(at: staging) }
        let sizes = try export(model: model, quantization: quantization, to: staging)
        for f in ["vocab.txt", "tokenizer_config.json", "tokenizer.json", "special_tokens_map.json"] {
            let src = source.appendingPathComponent(f)
            if fm.fileExists(atPath: src.path) { try fm.copyItem(at: src, to: staging.appendingPathComponent(f)) }
        }
        try fm.moveItem(at: staging, to: output)
        return sizes
    }

    static func littleEndianBytes(_ halves: [UInt16]) -> [UInt8] {
        halves.flatMap { [UInt8(truncatingIfNeeded: $0), UInt8(truncatingIfNeeded: $0 >> 8)] }
    }

    // MARK: - Load

    /// Loads a packed directory: the fp32 parts into a fresh `BertTaskModel`, the packed
    /// matrices and tables as kernels installed on it. Every tensor's dtype, shape and byte
    /// count is checked against the config and plan: a wrong width or a truncated tensor is an
    /// error naming it.
    /// The file's format and version must be this one's; its tensors' checksum, when it carries
    /// one, is verified first unless `verify` is false.
    public static func load(directory: URL, architecture: BertArchitecture? = nil, numLabels: Int? = nil,
                            verify: Bool = true) throws
        -> (model: BertTaskModel, packed: PackedBert) {
        let source = directory.path
        guard let qc = try QuantizationConfig.read(from: directory), qc.packed == true else {
            throw PackedModelError("\(source): not a packed aq-bert model (no quantization_config with \"packed\": true)")
        }
        let config = try BertConfig(contentsOf: directory)
        let plan = try BitPlan(contentsOf: directory.appendingPathComponent(qc.planFile))
        let checkpoint: SafeTensorsCheckpoint
        do { checkpoint = try SafeTensorsCheckpoint(directory: directory) } catch let e as SafeTensorsError {
            throw PackedModelError(e.description)
        }
        let weightsPath = directory.appendingPathComponent("model.safetensors").path
        let metadata = checkpoint.metadata
        guard metadata["format"] == PackedFormat.formatName else {
            throw PackedModelError("\(weightsPath): metadata \"format\" is \(metadata["format"].map { "\"\($0)\"" } ?? "missing"), expected \"\(PackedFormat.formatName)\"")
        }
        guard let version = metadata["version"], PackedFormat.readableVersions.contains(version) else {
            throw PackedModelError("\(weightsPath): packed format version \(metadata["version"].map { "\"\($0)\"" } ?? "missing") is not one this aqbert reads (\(PackedFormat.readableVersions.joined(separator: ", "))); export the model again with this aqbert")
        }
        guard version == String(PackedFormat.version(for: plan)) else {
            throw PackedModelError("\(weightsPath): packed format version \(version) does not match \(qc.planFile), which \(plan.embeddings.isEmpty ? "plans no" : "plans") embedding tables")
        }
        if verify, let expected = metadata[PackedFormat.checksumKey] {
            let actual = try PackedFormat.checksum(names: checkpoint.names) { name, body in try checkpoint.withRawBytes(name, body) }
            guard actual == expected else {
                throw PackedModelError("\(weightsPath): the tensors' checksum does not match the one recorded at export (the file is damaged); --no-verify loads it anyway")
            }
        }
        let storedCount = checkpoint.elementCount
        guard config.fits(storedElements: storedCount) else {
            throw PackedModelError(String(format: "%@: config.json describes at least %.0f weights, the packed file holds %.0f elements: the config does not belong to it",
                                          source, config.minimumWeightCount, storedCount))
        }
        if let (name, _) = qc.activationRanges.sorted(by: { $0.key < $1.key }).first(where: { !ActivationQuantizer.isValidRange($0.value) }) {
            throw PackedModelError("\(source): the activation range of \(name) is not a finite [low, high] pair")
        }
        let arch = architecture ?? config.architectures?.compactMap(BertArchitecture.init(className:)).first ?? .base
        let model = BertTaskModel(config: config, architecture: arch, numLabels: numLabels)
        try plan.validate(against: model)
        for (path, bits) in qc.weightBits where plan.matrices[path]?.bits != bits {
            throw PackedModelError("\(source): quantization_config weight_bits of \(path) disagree with \(qc.planFile)")
        }
        let packed = PackedBert(quantization: qc, plan: plan, checkpoint: checkpoint)
        let linearsByPath = Dictionary(uniqueKeysWithValues: zip(QuantizableMatrices.paths(for: config),
                                                                 QuantizableMatrices.linears(model)))
        let embeddings = model.bert.embeddings
        let tables: [(String, Embedding)] = [("word_embeddings", embeddings.word), ("position_embeddings", embeddings.position)]
            + (embeddings.tokenType.map { [("token_type_embeddings", $0)] } ?? [])
        let prefix = BertCheckpointNames.modelPrefix(config.family)
        var used = Set<String>()
        func info(_ name: String, _ dtype: SafeTensorsDType, _ shape: [Int]) throws -> TensorInfo {
            guard let i = checkpoint.info(name) else { throw PackedModelError("\(source): missing tensor \(name)") }
            guard i.dtype == dtype, i.shape == shape else {
                throw PackedModelError("\(source): tensor \(name) is \(i.dtype.rawValue) \(i.shape), expected \(dtype.rawValue) \(shape)")
            }
            used.insert(name)
            return i
        }
        // The stored name of a parameter: as the model names it, or with/without the `bert.` prefix.
        func stored(_ name: String) -> String {
            let alternate = name.hasPrefix(prefix) ? String(name.dropFirst(prefix.count)) : prefix + name
            for n in [name, alternate] where [n, n + ".codes", n + ".bits"].contains(where: checkpoint.contains) { return n }
            return name
        }
        for (modelName, t) in model.checkpointParameters {
            let name = stored(modelName)
            if let m = PackedFormat.planned(name, in: plan) {
                let path = plan.matrices[name] != nil ? name : prefix + name
                guard let linear = linearsByPath[path] else { throw PackedModelError("\(source): \(name) is not a quantizable Linear") }
                let bitsInfo = try info(name + ".bits", .u8, [m.groups])
                let storedBits = try checkpoint.bytes(bitsInfo.name).map(Int.init)
                guard storedBits == m.bits else {
                    throw PackedModelError("\(source): tensor \(name).bits disagrees with the plan's bit-widths for \(path)")
                }
                let kept = m.bits.filter { $0 > 0 }.count
                let rangesInfo = try info(name + ".ranges", .f16, [kept, 2])
                let codesInfo = try info(name + ".codes", .u8, [PackedFormat.codeBytes(m, columns: t.shape[1])])
                let ranges = try checkpoint.floats(rangesInfo.name)
                let range = qc.activationRanges[String(path.dropLast(".weight".count))]
                // The quantization-aware model quantized this matrix's input to activation_bits
                // with a calibrated range; without it the packed model would compute something else.
                if qc.activationBits > 0 && range == nil {
                    throw PackedModelError("\(source): quantization_config has no activation range for \(String(path.dropLast(".weight".count))) (activation_bits \(qc.activationBits)); export the model again")
                }
                let bias = linear.bias
                if let b = bias {
                    let biasName = String(name.dropLast("weight".count)) + "bias"
                    _ = try info(biasName, .f32, b.shape)
                    try checkpoint.withFloatBuffer(biasName) { b.pointer.update(from: $0.baseAddress!, count: b.count) }
                }
                let packedLinear = try checkpoint.withRawBytes(codesInfo.name) { codes in
                    try PackedLinear(name: name, matrix: m, columns: t.shape[1], codes: codes, ranges: ranges,
                                     activationRange: range.map { ($0[0], $0[1]) }, bias: bias?.array)
                }
                packed.linears[name] = packedLinear
                linear.forwardOverride = { x, _ in packedLinear.forward(x) }
            } else if let e = PackedFormat.plannedEmbedding(name, in: plan),
                      let (_, table) = tables.first(where: { name.hasSuffix("embeddings.\($0.0).weight") }) {
                let bitsInfo = try info(name + ".bits", .u8, [e.groups])
                guard try checkpoint.bytes(bitsInfo.name).map(Int.init) == e.bits else {
                    throw PackedModelError("\(source): tensor \(name).bits disagrees with the plan's bit-widths for \(name)")
                }
                let rangesInfo = try info(name + ".ranges", .f16, [PackedFormat.keptRows(e), 2])
                let codesInfo = try info(name + ".codes", .u8, [PackedFormat.codeBytes(e)])
                let embedding = try PackedEmbedding(codes: try checkpoint.bytes(codesInfo.name), ranges: try checkpoint.floats(rangesInfo.name),
                                                    columns: e.shape[1], rowBits: e.rowBits)
                table.lookupTransform = { _, ids, outShape, _, _ in embedding.lookup(ids: ids, shape: outShape) }
            } else if qc.embeddingBits > 0, let (_, table) = tables.first(where: { name.hasSuffix("embeddings.\($0.0).weight") }) {
                let shape = t.shape
                let codesInfo = try info(name + ".codes", .u8, shape)
                let rangesInfo = try info(name + ".ranges", .f16, [shape[0], 2])
                let embedding = try PackedEmbedding(codes: try checkpoint.bytes(codesInfo.name), ranges: try checkpoint.floats(rangesInfo.name),
                                                    rows: shape[0], columns: shape[1], bits: qc.embeddingBits)
                table.lookupTransform = { _, ids, outShape, _, _ in embedding.lookup(ids: ids, shape: outShape) }
            } else {
                if used.contains(name) { continue }  // a packed Linear's bias, already read
                let i = try info(name, .f32, t.shape)
                try checkpoint.withFloatBuffer(i.name) { t.pointer.update(from: $0.baseAddress!, count: t.count) }
            }
        }
        // Inputs of Linears the plan leaves in fp32 are still 8-bit fake-quantized, as in training.
        for (path, linear) in linearsByPath where plan.matrices[path] == nil {
            if let r = qc.activationRanges[String(path.dropLast(".weight".count))], qc.activationBits > 0 {
                let q = ActivationQuantizer(bits: qc.activationBits)
                q.setRange(low: r[0], high: r[1])
                linear.inputTransform = { x, tape in q(x, tape: tape) }
            }
        }
        // A task model loaded as a bare encoder (encode) leaves its head unused; anything else is an error.
        let stripped = architecture != nil && architecture != config.architectures?.compactMap(BertArchitecture.init(className:)).first
        for name in checkpoint.names where !used.contains(name) {
            let head = ["classifier.", "qa_outputs.", "cls.", "bert.pooler.", "pooler.", "pre_classifier."].contains { name.hasPrefix($0) }
            if stripped && head { continue }
            throw PackedModelError("\(source): unexpected tensor \(name) (not part of a packed \(arch.className(config.family)))")
        }
        model.training = false
        return (model, packed)
    }
}

/// One planned Linear, packed: the kept rows' codes unpacked once to int8 (pruned groups have
/// none and no work), per-row dequantization terms, and the int8 GEMM of `aq_gemm_u8s8_f32`
/// on 8-bit activations. y = x W^T + b, with W's pruned rows known zeros (y = b there).
public final class PackedLinear: @unchecked Sendable {
    public let name: String
    public let rows: Int, columns: Int
    let paddedColumns: Int
    /// Kept rows' codes minus the offset (128 for 8-bit groups), `paddedColumns` apart.
    let weights: UnsafeMutablePointer<Int8>
    let keptRows: Int
    /// Runs of consecutive pruned rows (output row start, count): their outputs are the bias.
    let prunedSpans: [(start: Int, count: Int)]
    /// Per kept row r: y = alpha * (dot + wz * S' + c0) + beta * S' + gamma, S' = sum(q) - K z,
    /// written to output row keptOutputRows[r] (see init). Allocated once, so the product reads
    /// them through plain pointers.
    let alpha: UnsafeMutableBufferPointer<Float>, beta: UnsafeMutableBufferPointer<Float>, gamma: UnsafeMutableBufferPointer<Float>
    let wz: UnsafeMutableBufferPointer<Int32>, c0: UnsafeMutableBufferPointer<Int32>
    let keptOutputRows: UnsafeMutableBufferPointer<Int32>
    /// Zero point z of the activation codes.
    let activationZero: Int32
    /// max |code - offset| over the kept rows (selects the AVX2 kernel variant).
    let maxCode: Int32
    /// The kept rows in the GEMM kernel's layout, one share per worker thread (for the thread
    /// count at load; another count packs per call).
    private var prepacked: [OpaquePointer?] = []
    let bias: [Float]
    let activationLow: Float, activationHigh: Float
    /// Without an activation range (never calibrated): dequantized fp32 weights, row-major
    /// [rows, columns], and the bias, for an fp32 product.
    let dense: Tensor?, denseBias: Tensor

    init(name: String, matrix m: BitPlan.Matrix, columns k: Int, codes: UnsafeRawBufferPointer, ranges: [Float],
         activationRange: (Float, Float)?, bias: [Float]?) throws {
        self.name = name
        rows = m.shape[0]
        columns = k
        paddedColumns = (k + 63) / 64 * 64
        self.bias = bias ?? [Float](repeating: 0, count: rows)
        denseBias = Tensor(shape: [rows], values: self.bias)
        let r = m.rowsPerGroup
        keptRows = m.bits.filter { $0 > 0 }.count * r
        for g in 0..<(ranges.count / 2) where !(ranges[2 * g + 1] >= ranges[2 * g] && ranges[2 * g].isFinite && ranges[2 * g + 1].isFinite) {
            throw PackedModelError("tensor \(name).ranges: kept group \(g) has range [\(ranges[2 * g]), \(ranges[2 * g + 1])]")
        }
        weights = .allocate(capacity: max(1, keptRows * paddedColumns))
        weights.initialize(repeating: 0, count: max(1, keptRows * paddedColumns))
        var runs: [(row: Int, count: Int, kept: Int, maxAbs: Int32)] = []
        var alpha = [Float](), beta = [Float](), gamma = [Float](), csum = [Int32](), wz = [Int32](), c0 = [Int32]()
        var stepOf = [Float](), loOf = [Float](), offsetOf = [Float](), levelsOf = [Int]()
        var byte = 0, kept = 0, rangeIndex = 0
        let base = codes.baseAddress!.assumingMemoryBound(to: UInt8.self)
        for (g, b) in m.bits.enumerated() where b > 0 {
            let lo = ranges[2 * rangeIndex], hi = ranges[2 * rangeIndex + 1]  // checked above
            rangeIndex += 1
            let step = PackedFormat.step(lo: lo, hi: hi, bits: b)
            let offset = b == 8 ? 128 : 0
            let maxAbs = Int32(max(offset, (1 << b) - 1 - offset))
            let rowBytes = PackedFormat.rowBytes(columns: k, bits: b)
            for i in 0..<r {
                csum.append(aq_unpack_codes_s8(base + byte, k, Int32(b), Int32(offset), weights + (kept + i) * paddedColumns))
                byte += rowBytes
                stepOf.append(step)
                loOf.append(lo)
                offsetOf.append(Float(offset))
                levelsOf.append((1 << b) - 1)
            }
            let row = g * r
            if let last = runs.last, last.row + last.count == row {
                runs[runs.count - 1] = (last.row, last.count + r, last.kept, max(last.maxAbs, maxAbs))
            } else {
                runs.append((row, r, kept, maxAbs))
            }
            kept += r
        }
        precondition(byte == codes.count, "codes size checked by the loader")
        var spans: [(start: Int, count: Int)] = [], next = 0
        for run in runs {
            if run.row > next { spans.append((next, run.row - next)) }
            next = run.row + run.count
        }
        if next < rows { spans.append((next, rows - next)) }
        prunedSpans = spans
        keptOutputRows = Self.pinned(runs.flatMap { run in (0..<run.count).map { Int32(run.row + $0) } })
        maxCode = runs.map(\.maxAbs).max() ?? 0
        if let (lo, hi) = activationRange, hi > lo {
            activationLow = lo
            activationHigh = hi
            // y = alpha D + beta S' + gamma (IntegerProductTerms), the zero points subtracted in
            // integers through aq_gemm_u8s8_f32_cols' wz and c0:
            //   D = sum (q - z)(c - zc) = dot' + (offset - zc) S' + z (offset K - sum c),
            //   S' = sum q - K z,   dot' = sum q (c - offset)   (the kernel's product).
            let terms = IntegerProductTerms(activationLow: lo, activationHigh: hi)
            let z = terms.activationZero
            activationZero = z
            let kk = Int32(k)
            for run in runs {
                for i in 0..<run.count {
                    let kr = run.kept + i, o = run.row + i
                    let t = terms.row(step: stepOf[kr], low: loOf[kr], levels: levelsOf[kr], codeSum: csum[kr], columns: k,
                                      bias: self.bias[o])
                    let offset = Int32(offsetOf[kr])
                    alpha.append(t.alpha)
                    beta.append(t.beta)
                    gamma.append(t.gamma)
                    wz.append(offset - t.zeroPoint)
                    c0.append(z * (offset * kk - csum[kr]))
                }
            }
            dense = nil
        } else {
            activationLow = 0
            activationHigh = 0
            activationZero = 0
            let d = Tensor(zeros: [rows, k])
            for run in runs {
                for i in 0..<run.count {
                    let kr = run.kept + i, o = run.row + i
                    for j in 0..<k {
                        let c = Float(weights[kr * paddedColumns + j]) + offsetOf[kr]
                        d.pointer[o * k + j] = c * stepOf[kr] + loOf[kr]
                    }
                }
            }
            dense = d
        }
        self.alpha = Self.pinned(alpha)
        self.beta = Self.pinned(beta)
        self.gamma = Self.pinned(gamma)
        self.wz = Self.pinned(wz)
        self.c0 = Self.pinned(c0)
        if dense == nil {
            let (threads, share) = shares(threads: Runtime.threads)
            prepacked = (0..<threads).map { w in
                let k0 = w * share, count = max(0, min(keptRows, k0 + share) - k0)
                return aq_gemm_prepack_b(weights + k0 * paddedColumns, paddedColumns, count, paddedColumns, maxCode)
            }
        }
    }

    deinit {
        for p in prepacked { aq_gemm_prepacked_free(p) }
        weights.deallocate()
        alpha.deallocate(); beta.deallocate(); gamma.deallocate()
        wz.deallocate(); c0.deallocate(); keptOutputRows.deallocate()
    }

    /// A heap copy of `values` that stays put for the object's life.
    private static func pinned<T>(_ values: [T]) -> UnsafeMutableBufferPointer<T> {
        let p = UnsafeMutableBufferPointer<T>.allocate(capacity: max(1, values.count))
        _ = p.initialize(from: values)
        return p
    }

    /// Worker threads for `threads` and each one's share of the kept rows.
    func shares(threads requested: Int) -> (threads: Int, share: Int) {
        let threads = max(1, min(requested, keptRows / 16))
        return (threads, (keptRows + threads - 1) / threads)
    }

    /// Bytes held in memory: the unpacked int8 rows and their copy in the kernel's layout.
    public var residentBytes: Int { keptRows * paddedColumns + prepacked.reduce(0) { $0 + aq_gemm_prepacked_bytes($1) } }

    /// x: [..., columns] -> [..., rows]
    public func forward(_ x: Tensor) -> Tensor {
        if let dense { return Tape.inference.linear(x, dense, denseBias) }
        let m = x.count / columns
        var outShape = x.shape
        outShape[outShape.count - 1] = rows
        let y = Tensor(uninitialized: outShape)
        let kp = paddedColumns
        let q = UnsafeMutablePointer<UInt8>.allocate(capacity: max(1, m * kp))
        let qsum = UnsafeMutablePointer<Int32>.allocate(capacity: max(1, m))
        defer { q.deallocate(); qsum.deallocate() }
        let xp = x.pointer, lo = activationLow, hi = activationHigh, k = columns
        let shift = Int32(k) * activationZero
        Runtime.parallelFor(m, grain: max(1, 65536 / max(1, k))) { r in
            aq_quantize_rows_u8(xp + r.lowerBound * k, r.count, k, k, lo, hi, q + r.lowerBound * kp, kp, qsum + r.lowerBound)
            for i in r { qsum[i] -= shift }  // S' = sum q - K z
        }
        // Pruned rows: y = bias.
        let yp = y.pointer, n = rows
        if !prunedSpans.isEmpty {
            bias.withUnsafeBufferPointer { b in
                for t in 0..<m {
                    for (start, count) in prunedSpans { (yp + t * n + start).update(from: b.baseAddress! + start, count: count) }
                }
            }
        }
        // One GEMM per thread over a contiguous share of the kept rows, all tokens; results go
        // straight to their output columns (the kernel blocks A and B itself).
        let (threads, share) = shares(threads: Runtime.threads)
        let packedShares = prepacked.count == threads ? prepacked : nil
        let wp = weights, maxAbs = maxCode, keptRows = keptRows
        let al = alpha.baseAddress!, be = beta.baseAddress!, ga = gamma.baseAddress!
        let cols = keptOutputRows.baseAddress!, wzp = wz.baseAddress!, c0p = c0.baseAddress!
        Runtime.parallelFor(threads, grain: 1) { workers in
            for w in workers {
                let k0 = w * share, count = min(keptRows, k0 + share) - k0
                guard count > 0 else { continue }
                if let packedShares, let b = packedShares[w] {
                    aq_gemm_u8s8_f32_prepacked(q, kp, qsum, b, m, al + k0, be + k0, ga + k0, yp, n, cols + k0, wzp + k0, c0p + k0)
                } else {
                    aq_gemm_u8s8_f32_cols(q, kp, qsum, wp + k0 * kp, kp, m, count, kp, maxAbs, al + k0, be + k0, ga + k0,
                                          yp, n, cols + k0, wzp + k0, c0p + k0)
                }
            }
        }
        return y
    }
}

/// An embedding table stored as codes with one fp16 range per row: every row at the model's
/// `embedding_bits` (`[V, C]` bytes), or each row at its group's width as a bitstream (rows of
/// pruned groups have no codes and read as 0). Lookups dequantize the gathered rows only.
public final class PackedEmbedding: @unchecked Sendable {
    let codes: [UInt8]
    /// Per row: byte offset of its codes, width (0: a pruned row), dequantization step and offset.
    let offset: [Int], bits: [Int]
    let step: [Float], low: [Float]
    /// One byte per code (the `embedding_bits` layout) rather than a bitstream.
    let bytePerCode: Bool
    public let rows: Int, columns: Int

    /// Every row at `bits` (8 or fewer), `columns` bytes each.
    convenience init(codes: [UInt8], ranges: [Float], rows: Int, columns: Int, bits: Int) throws {
        try self.init(codes: codes, ranges: ranges, columns: columns, rowBits: [Int](repeating: bits, count: rows), bytesPerCode: true)
    }

    /// Each row at `rowBits[r]`, kept rows packed one after another (`ranges`: one pair per kept row).
    convenience init(codes: [UInt8], ranges: [Float], columns: Int, rowBits: [Int]) throws {
        try self.init(codes: codes, ranges: ranges, columns: columns, rowBits: rowBits, bytesPerCode: false)
    }

    private init(codes: [UInt8], ranges: [Float], columns: Int, rowBits: [Int], bytesPerCode: Bool) throws {
        self.codes = codes
        rows = rowBits.count
        self.columns = columns
        self.bytePerCode = bytesPerCode
        var offset = [Int](repeating: 0, count: rows), step = [Float](repeating: 0, count: rows), low = [Float](repeating: 0, count: rows)
        var at = 0, kept = 0
        for (r, b) in rowBits.enumerated() where b > 0 {
            let lo = ranges[2 * kept], hi = ranges[2 * kept + 1]
            guard hi >= lo, lo.isFinite, hi.isFinite else { throw PackedModelError("embedding row \(r) has range [\(lo), \(hi)]") }
            offset[r] = at
            step[r] = PackedFormat.step(lo: lo, hi: hi, bits: b)
            low[r] = lo
            at += bytesPerCode ? columns : PackedFormat.rowBytes(columns: columns, bits: b)
            kept += 1
        }
        self.offset = offset
        bits = rowBits
        self.step = step
        self.low = low
    }

    /// ids -> [shape..., columns]
    func lookup(ids: [Int32], shape: [Int]) -> Tensor {
        let y = Tensor(uninitialized: shape + [columns])
        let c = columns
        codes.withUnsafeBufferPointer { cp in
            for (i, id) in ids.enumerated() {
                let r = Int(id)
                precondition(r >= 0 && r < rows, "token id \(r) outside the \(rows)-row table (ids are validated before the forward pass)")
                let dst = y.pointer + i * c, b = bits[r]
                if b == 0 {
                    dst.update(repeating: 0, count: c)
                } else if bytePerCode {
                    let s = step[r], lo = low[r], src = cp.baseAddress! + offset[r]
                    for j in 0..<c { dst[j] = Float(src[j]) * s + lo }
                } else {
                    aq_unpack_codes_f32(cp.baseAddress! + offset[r], c, Int32(b), step[r], low[r], dst)
                }
            }
        }
        return y
    }
}
