import AQBert
import Foundation

/// The `quantization_config` aqbert writes into `config.json` of a quantization-aware model
/// (transformers skips quantization configs it does not know and loads the fp32 weights).
public struct QuantizationConfig: Codable, Sendable, Equatable {
    public var quantMethod = "aq-bert"
    public var version = 1
    /// Groups are contiguous output rows of each `[out, in]` matrix.
    public var groupAxis = "rows"
    /// The bit plan beside the model.
    public var planFile = "plan.json"
    public var embeddingBits: Int
    public var activationBits: Int
    /// Frozen input ranges [low, high] of each quantized Linear (path without ".weight").
    public var activationRanges: [String: [Float]]
    /// Per-matrix bit-widths, for readers that do not open the plan.
    public var weightBits: [String: [Int]]
    /// Learned weight ranges (`--ranges learned`): the safetensors file beside the model holding
    /// each planned matrix's [G, 2] bounds as `<path>.ranges` (fp32, as trained; the quantizer
    /// uses them rounded to fp16). Present only in a quantization-aware fp32 directory, which then
    /// has version 2 (so a reader that knows only min/max ranges refuses it); a packed directory
    /// stores the effective ranges in its own tensors.
    public var weightRangesFile: String? = nil
    /// True for a packed directory (`aqbert export`, Docs/PACKED_FORMAT.md): the weights are
    /// codes, not fp32. Absent (nil) in a quantization-aware fp32 directory.
    public var packed: Bool? = nil

    enum CodingKeys: String, CodingKey {
        case version
        case quantMethod = "quant_method", groupAxis = "group_axis", planFile = "plan_file"
        case embeddingBits = "embedding_bits", activationBits = "activation_bits"
        case activationRanges = "activation_ranges", weightBits = "weight_bits", packed
        case weightRangesFile = "weight_ranges_file"
    }

    /// The `quantization_config` of a model directory's config.json; nil when it has none, an
    /// error when it is not an aqbert one of a version this build reads.
    public static func read(from directory: URL) throws -> QuantizationConfig? {
        let url = directory.appendingPathComponent("config.json")
        guard let object = try? JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any],
              let q = object["quantization_config"] else { return nil }
        let config: QuantizationConfig
        do { config = try JSONDecoder().decode(QuantizationConfig.self, from: JSONSerialization.data(withJSONObject: q)) } catch {
            throw PlanError("\(url.path): quantization_config is not an aqbert one (\(error.localizedDescription))")
        }
        guard config.quantMethod == "aq-bert", config.version == 1 || config.version == 2 else {
            throw PlanError("\(url.path): unsupported quantization_config \(config.quantMethod) v\(config.version)")
        }
        guard (config.version == 2) == (config.weightRangesFile != nil), config.weightRangesFile == nil || config.packed != true else {
            throw PlanError("\(url.path): quantization_config v\(config.version) must name weight_ranges_file exactly when it is version 2 (and not packed)")
        }
        return config
    }

    /// Adds (or replaces) `quantization_config` in the `config.json` at `url`, atomically.
    public static func insert(_ config: QuantizationConfig, intoConfigAt url: URL) throws {
        guard var object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any] else {
            throw PlanError("\(url.path) is not a JSON object")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        object["quantization_config"] = try JSONSerialization.jsonObject(with: encoder.encode(config))
        try writeAtomically(try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]), to: url)
    }
}

extension QuantizedBert {
    /// The name of the learned weight ranges' file in a quantization-aware directory.
    public static let weightRangesFileName = "weight_ranges.safetensors"

    public var config: QuantizationConfig {
        var c = QuantizationConfig(embeddingBits: embeddingBits, activationBits: activationQuantizers.values.first?.bits ?? 0,
                                   activationRanges: activationRanges, weightBits: plan.matrices.mapValues(\.bits))
        if rangeMode == .learned {
            c.version = 2
            c.weightRangesFile = Self.weightRangesFileName
        }
        return c
    }

    /// Writes `plan.json` (and the learned weight ranges) and adds `quantization_config` to the
    /// `config.json` already in `directory`.
    public func save(to directory: URL) throws {
        let c = config
        try plan.write(to: directory.appendingPathComponent(c.planFile))
        if let file = c.weightRangesFile {
            try SafeTensorsWriter.write(rangeParameters.map { (name: $0.name, shape: $0.tensor.shape, values: $0.tensor.array) },
                                        to: directory.appendingPathComponent(file))
        }
        try QuantizationConfig.insert(c, intoConfigAt: directory.appendingPathComponent("config.json"))
    }

    /// The quantization a model directory records, installed on `model` with frozen ranges;
    /// nil for a plain fp32 directory.
    public static func load(from directory: URL, into model: BertTaskModel) throws -> QuantizedBert? {
        guard let config = try QuantizationConfig.read(from: directory) else { return nil }
        guard config.packed != true else {
            throw PlanError("\(directory.path) is a packed model: load it with PackedBert.load")
        }
        let plan = try BitPlan(contentsOf: directory.appendingPathComponent(config.planFile))
        let quantized = try QuantizedBert(plan: plan, model: model, embeddingBits: config.embeddingBits,
                                          activationBits: config.activationBits,
                                          ranges: config.weightRangesFile == nil ? .minmax : .learned, rangeInitialization: .minmax)
        try quantized.setActivationRanges(config.activationRanges)
        if let file = config.weightRangesFile {
            let url = directory.appendingPathComponent(file)
            var saved: [String: [Float]] = [:]
            do {
                let f = try SafeTensorsFile(url: url)
                for name in f.names {
                    guard name.hasSuffix(".ranges") else { throw PlanError("unexpected tensor \(name)") }
                    saved[String(name.dropLast(".ranges".count))] = try f.floats(name)
                }
                try quantized.setWeightRanges(saved)
            } catch {
                throw PlanError("\(url.path): \(error)")
            }
        }
        return quantized
    }
}
