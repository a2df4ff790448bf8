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
    /// True for a packed directory (`aqbert export`, Docs/PACKED_FORMAT.md): the weights are
    /// codes, not fp32. Absent (nil) in a quantization-aware fp32 directory.
    public var packed: Bool? = nil

    enum CodingKeys: String, CodingKey {
        case version
        case quantMethod = "quant_method", groupAxis = "group_axis", planFile = "plan_file"
        case embeddingBits = "embedding_bits", activationBits = "activation_bits"
        case activationRanges = "activation_ranges", weightBits = "weight_bits", packed
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
        guard config.quantMethod == "aq-bert", config.version == 1 else {
            throw PlanError("\(url.path): unsupported quantization_config \(config.quantMethod) v\(config.version)")
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
    public var config: QuantizationConfig {
        QuantizationConfig(embeddingBits: embeddingBits, activationBits: activationQuantizers.values.first?.bits ?? 0,
                           activationRanges: activationRanges, weightBits: plan.matrices.mapValues(\.bits))
    }

    /// Writes `plan.json` and adds `quantization_config` to the `config.json` already in `directory`.
    public func save(to directory: URL) throws {
        try plan.write(to: directory.appendingPathComponent(config.planFile))
        try QuantizationConfig.insert(config, intoConfigAt: directory.appendingPathComponent("config.json"))
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
                                          activationBits: config.activationBits)
        try quantized.setActivationRanges(config.activationRanges)
        return quantized
    }
}
