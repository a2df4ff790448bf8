import AQFiles
import AQNN
import AQSafeTensors
import AQTokenizer
import Foundation

/// The one place Hugging Face parameter names live: Swift module paths <-> checkpoint keys,
/// for BERT (`bert.encoder.layer.N.attention.self.query`) and DistilBERT
/// (`distilbert.transformer.layer.N.attention.q_lin`).
public enum BertCheckpointNames {
    /// Component renames, applied to the dotted Swift path of a `BertModel` parameter.
    static let encoderMap: [(String, String)] = [
        ("attentionOutput", "attention.output.dense"),
        ("attentionNorm", "attention.output.LayerNorm"),
        ("intermediate", "intermediate.dense"),
        ("outputNorm", "output.LayerNorm"),
        ("output", "output.dense"),
        ("query", "attention.self.query"),
        ("key", "attention.self.key"),
        ("value", "attention.self.value"),
    ]

    /// The same components in DistilBERT (modeling_distilbert.py TransformerBlock, FFN).
    static let distilBertEncoderMap: [(String, String)] = [
        ("attentionOutput", "attention.out_lin"),
        ("attentionNorm", "sa_layer_norm"),
        ("intermediate", "ffn.lin1"),
        ("outputNorm", "output_layer_norm"),
        ("output", "ffn.lin2"),
        ("query", "attention.q_lin"),
        ("key", "attention.k_lin"),
        ("value", "attention.v_lin"),
    ]

    /// The encoder's prefix in task checkpoints (`base_model_prefix`), with the dot.
    public static func modelPrefix(_ family: ModelFamily) -> String { family == .distilBert ? "distilbert." : "bert." }

    /// HF name of a `BertModel` parameter path (no `bert.` / `distilbert.` prefix).
    public static func hfName(ofEncoderPath path: String, family: ModelFamily) -> String {
        var parts = path.split(separator: ".").map(String.init)
        switch parts.first {
        case "embeddings":
            let table = ["word": "word_embeddings", "position": "position_embeddings", "tokenType": "token_type_embeddings",
                         "norm": "LayerNorm"]
            parts[1] = table[parts[1]] ?? parts[1]
            return parts.joined(separator: ".")
        case "layers":
            // layers.<i>.<component>.<weight|bias>
            let comp = parts[2]
            if family == .distilBert {
                let mapped = distilBertEncoderMap.first { $0.0 == comp }?.1 ?? comp
                return "transformer.layer.\(parts[1]).\(mapped).\(parts[3])"
            }
            let mapped = encoderMap.first { $0.0 == comp }?.1 ?? comp
            return "encoder.layer.\(parts[1]).\(mapped).\(parts[3])"
        case "pooler":
            return "pooler.dense.\(parts[1])"
        default:
            return path
        }
    }

    /// HF name of a `BertTaskModel` parameter path.
    public static func hfName(of path: String, architecture: BertArchitecture, family: ModelFamily) -> String {
        if family == .distilBert && path.hasPrefix("bert.pooler.") {
            // DistilBertForSequenceClassification's pre_classifier sits beside the classifier.
            return "pre_classifier." + path.dropFirst("bert.pooler.".count)
        }
        if path.hasPrefix("bert.") {
            let inner = hfName(ofEncoderPath: String(path.dropFirst(5)), family: family)
            return architecture == .base ? inner : modelPrefix(family) + inner
        }
        if path.hasPrefix("head.") {
            let leaf = path.dropFirst(5)
            return (architecture == .questionAnswering ? "qa_outputs." : "classifier.") + leaf
        }
        return path
    }

    /// True for the parameters of a task head, which a checkpoint may lack (they are then
    /// initialised): the classifier / qa_outputs, and DistilBERT's pre_classifier.
    static func isHead(_ path: String, family: ModelFamily) -> Bool {
        path.hasPrefix("head.") || (family == .distilBert && path.hasPrefix("bert.pooler."))
    }

    /// The encoder matrix names AQ-BERT quantizes, e.g. `bert.encoder.layer.3.attention.self.query.weight`
    /// or `distilbert.transformer.layer.3.attention.q_lin.weight`.
    public static func denseWeightNames(layers: Int, family: ModelFamily, prefixed: Bool) -> [String] {
        let comps = ["query", "key", "value", "attentionOutput", "intermediate", "output"]
        return (0..<layers).flatMap { i in
            comps.map { (prefixed ? modelPrefix(family) : "") + hfName(ofEncoderPath: "layers.\(i).\($0).weight", family: family) }
        }
    }

    /// Parameters the usual fine-tuning recipe does not decay: biases and every LayerNorm
    /// (transformers Trainer.get_decay_parameter_names excludes LayerNorm modules, which
    /// DistilBERT names `sa_layer_norm` / `output_layer_norm`).
    public static func isNoDecay(_ name: String) -> Bool {
        name.hasSuffix("bias") || name.contains("LayerNorm") || name.contains("layer_norm")
    }

    /// Legacy TF-converted names (LayerNorm.gamma/beta) to current ones, as transformers does on load.
    static func normalised(_ key: String) -> String {
        if key.hasSuffix("LayerNorm.gamma") { return String(key.dropLast(5)) + "weight" }
        if key.hasSuffix("LayerNorm.beta") { return String(key.dropLast(4)) + "bias" }
        return key
    }

    /// Checkpoint keys transformers drops silently or with a warning, never an error: buffers,
    /// pretraining heads and the other task heads.
    static func isBenignExtra(_ key: String, family: ModelFamily) -> Bool {
        let prefix = modelPrefix(family)
        let k = key.hasPrefix(prefix) ? String(key.dropFirst(prefix.count)) : key
        if family == .distilBert {
            return k == "embeddings.position_ids"
                || ["pre_classifier.", "classifier.", "qa_outputs.", "vocab_transform.", "vocab_layer_norm.", "vocab_projector."]
                .contains { k.hasPrefix($0) }
        }
        return k == "embeddings.position_ids" || k.hasPrefix("cls.") || k.hasPrefix("pooler.")
            || k.hasPrefix("classifier.") || k.hasPrefix("qa_outputs.")
    }
}

/// What loading did beyond copying tensors.
public struct BertLoadReport: Sendable, Equatable {
    /// Parameters absent from the checkpoint and freshly initialised (task heads, a missing pooler).
    public var initialized: [String] = []
    /// Checkpoint tensors the model does not use (other heads, pretraining heads, buffers).
    public var unused: [String] = []

    public init(initialized: [String] = [], unused: [String] = []) {
        self.initialized = initialized
        self.unused = unused
    }
}

extension BertTaskModel {
    /// HF names of every parameter, in module order.
    public var checkpointParameters: [(name: String, tensor: Tensor)] {
        namedParameters.map { (BertCheckpointNames.hfName(of: $0.path, architecture: architecture, family: config.family), $0.tensor) }
    }

    /// Loads `config.json` and the safetensors weights of a Hugging Face directory.
    ///
    /// `bert.`-prefixed (`BertFor*`) and bare (`BertModel`) checkpoints both load into any
    /// architecture; likewise `distilbert.`-prefixed and bare DistilBERT checkpoints (the config's
    /// `model_type` picks the family). A missing encoder tensor, an unexpected tensor, or a shape
    /// that disagrees with the config is an error naming the tensor; a missing task head (or
    /// pooler, or DistilBERT pre_classifier) is initialised as transformers does
    /// (`N(0, initializer_range^2)`, bias 0) and reported.
    public static func load(directory: URL, architecture: BertArchitecture? = nil, numLabels: Int? = nil,
                            seed: UInt64 = 0) throws -> (model: BertTaskModel, report: BertLoadReport) {
        let config = try BertConfig(contentsOf: directory)
        let checkpoint: SafeTensorsCheckpoint
        do { checkpoint = try SafeTensorsCheckpoint(directory: directory) } catch let e as SafeTensorsError {
            throw BertError(e.description)
        }
        let storedCount = checkpoint.elementCount
        guard config.fits(storedElements: storedCount) else {
            throw BertError(String(format: "%@: config.json describes at least %.0f weights, the checkpoint holds %.0f: the config does not belong to these weights",
                                   directory.path, config.minimumWeightCount, storedCount))
        }
        let arch = architecture ?? config.architectures?.compactMap(BertArchitecture.init(className:)).first ?? .base
        let family = config.family, prefix = BertCheckpointNames.modelPrefix(family)
        let model = BertTaskModel(config: config, architecture: arch, numLabels: numLabels)
        var report = BertLoadReport()
        var keys: [String: String] = [:]  // normalised -> stored
        for k in checkpoint.names { keys[BertCheckpointNames.normalised(k)] = k }
        var used = Set<String>()
        var generator = SeededGenerator(seed: seed)
        let source = directory.path
        for (path, tensor) in model.namedParameters {
            let name = BertCheckpointNames.hfName(of: path, architecture: arch, family: family)
            // The same tensor with or without the `bert.` (`distilbert.`) prefix.
            let alternates = name.hasPrefix(prefix) ? [name, String(name.dropFirst(prefix.count))] : [name, prefix + name]
            let isHead = BertCheckpointNames.isHead(path, family: family)
            guard let found = (isHead ? [name] : alternates).first(where: { keys[$0] != nil }), let stored = keys[found] else {
                if isHead || path.hasPrefix("bert.pooler.") {
                    report.initialized.append(name)
                    continue
                }
                throw BertError("\(source): missing tensor \(name) in the checkpoint")
            }
            guard let info = checkpoint.info(stored) else { throw BertError("\(source): missing tensor \(stored)") }
            if info.shape != tensor.shape {
                if isHead {
                    throw BertError("\(source): tensor \(stored) has shape \(info.shape) but the task needs \(tensor.shape) (a head trained for another label set: start from the base encoder checkpoint instead)")
                }
                throw BertError("\(source): tensor \(stored) has shape \(info.shape) but the config implies \(tensor.shape)")
            }
            guard info.dtype.isFloatingPoint else {
                throw BertError("\(source): tensor \(stored) has dtype \(info.dtype.rawValue), expected a float type")
            }
            do {
                try checkpoint.withFloatBuffer(stored) { buf in
                    tensor.pointer.update(from: buf.baseAddress!, count: tensor.count)
                }
            } catch let e as SafeTensorsError { throw BertError(e.description) }
            if let bad = (0..<tensor.count).first(where: { !tensor.pointer[$0].isFinite }) {
                throw BertError("\(source): tensor \(stored) holds \(tensor.pointer[bad]) at index \(bad): a non-finite weight (a diverged run or a damaged file) would make every output NaN")
            }
            used.insert(stored)
        }
        // Fresh heads / pooler as transformers' _init_weights does.
        for name in report.initialized {
            guard let (_, t) = model.checkpointParameters.first(where: { $0.name == name }) else { continue }
            if name.hasSuffix(".bias") { t.storage.zero() } else {
                for i in 0..<t.count { t.pointer[i] = config.initializerRange * generator.nextNormal() }
            }
        }
        for k in checkpoint.names where !used.contains(k) {
            if BertCheckpointNames.isBenignExtra(BertCheckpointNames.normalised(k), family: family) {
                report.unused.append(k)
            } else {
                throw BertError("\(source): unexpected tensor \(k) (not a parameter of \(arch.className(family)))")
            }
        }
        return (model, report)
    }

    /// Writes `config.json` (with `architectures` and labels) and `model.safetensors` (fp32,
    /// HF names), each atomically, so transformers' `AutoModelFor...` loads the directory.
    public func save(to directory: URL, labelNames: [String]? = nil) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var c = config
        c.architectures = [className]
        if let labelNames { c.id2label = Dictionary(uniqueKeysWithValues: labelNames.enumerated().map { ($0.offset, $0.element) }) }
        else if architecture != .base, c.id2label?.count != numLabels, c.id2label != nil || architecture != .questionAnswering {
            // transformers sizes qa_outputs by num_labels too (DistilBertForQuestionAnswering
            // insists on 2), so a QA model never keeps another head's label count.
            c.id2label = Dictionary(uniqueKeysWithValues: (0..<numLabels).map { ($0, "LABEL_\($0)") })
        }
        try writeAtomically(try c.jsonData(), to: directory.appendingPathComponent("config.json"))
        let tensors = checkpointParameters.map { (name: $0.name, shape: $0.tensor.shape, values: $0.tensor.array) }
        do {
            try SafeTensorsWriter.write(tensors, to: directory.appendingPathComponent("model.safetensors"))
        } catch let e as SafeTensorsError { throw BertError(e.description) }
    }
}

/// Writes `data` to a temporary file beside `url`, then renames it over `url`
/// (`AQFiles.writeAtomically`), as a one-line `BertError`.
public func writeAtomically(_ data: Data, to url: URL) throws {
    do { try AQFiles.writeAtomically(data, toPath: url.path) } catch let e as FileWriteError { throw BertError(e.description) }
}
