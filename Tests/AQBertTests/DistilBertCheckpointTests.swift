import Foundation
import XCTest

@testable import AQBert

/// DistilBERT checkpoints (fixtures from Scripts/fixtures/make_distilbert_goldens.py): their own
/// names and config keys, heads initialised and reported as transformers does, one-line errors
/// for a bad config or checkpoint, and a save that keeps DistilBERT names and keys.
final class DistilBertCheckpointTests: XCTestCase {
    var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("aqbert-distil-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: scratch) }

    static func fixture(_ name: String) -> URL { Fixtures.directory("distilbert/" + name) }

    /// A scratch copy of a fixture's config and weights, with the weights passed through `edit`.
    func copy(_ name: String, edit: ((inout [String: (shape: [Int], values: [Float])]) -> Void)? = nil) throws -> URL {
        let dst = scratch.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: dst, withIntermediateDirectories: true)
        for f in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(at: Self.fixture(name).appendingPathComponent(f), to: dst.appendingPathComponent(f))
        }
        if let edit {
            let file = try SafeTensorsFile(url: dst.appendingPathComponent("model.safetensors"))
            var tensors: [String: (shape: [Int], values: [Float])] = [:]
            for n in file.names { tensors[n] = (file.info(n)!.shape, try file.floats(n)) }
            edit(&tensors)
            try SafeTensorsWriter.write(tensors.map { (name: $0.key, shape: $0.value.shape, values: $0.value.values) },
                                        to: dst.appendingPathComponent("model.safetensors"))
        }
        return dst
    }

    func assertLoadError(_ dir: URL, contains needle: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try BertTaskModel.load(directory: dir), file: file, line: line) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains(needle), "message \"\(message)\" lacks \"\(needle)\"", file: file, line: line)
            XCTAssertFalse(message.contains("\n"), "message is one line: \(message)", file: file, line: line)
        }
    }

    func testConfigMapsOntoTheModel() throws {
        let c = try BertConfig(contentsOf: Self.fixture("tiny-distilbert-seqcls"))
        XCTAssertEqual(c.family, .distilBert)
        XCTAssertEqual([c.hiddenSize, c.numHiddenLayers, c.numAttentionHeads, c.intermediateSize, c.vocabSize, c.typeVocabSize],
                       [32, 2, 4, 37, 99, 0])
        XCTAssertEqual(c.layerNormEps, 1e-12)
        XCTAssertEqual(c.id2label?[2], "positive")
        let model = BertTaskModel(config: c, architecture: .sequenceClassification)
        XCTAssertEqual(model.className, "DistilBertForSequenceClassification")
        XCTAssertEqual(Set(model.checkpointParameters.map(\.name)).subtracting(
            try SafeTensorsFile(url: Self.fixture("tiny-distilbert-seqcls").appendingPathComponent("model.safetensors")).names), [])
        XCTAssertTrue(model.checkpointParameters.contains { $0.name == "distilbert.transformer.layer.1.attention.q_lin.weight" })
        XCTAssertTrue(model.checkpointParameters.contains { $0.name == "pre_classifier.weight" })
    }

    func testBareCheckpointIntoTaskModelsInitialisesAndReportsHeads() throws {
        let (seq, report) = try BertTaskModel.load(directory: Self.fixture("tiny-distilbertmodel"),
                                                   architecture: .sequenceClassification, numLabels: 4)
        XCTAssertEqual(report.initialized, ["pre_classifier.weight", "pre_classifier.bias", "classifier.weight", "classifier.bias"])
        XCTAssertEqual(seq.head!.bias!.array, [Float](repeating: 0, count: 4))
        XCTAssertEqual(seq.bert.pooler!.bias!.array, [Float](repeating: 0, count: 32))
        let w = seq.bert.pooler!.weight.array
        let std = (w.map { $0 * $0 }.reduce(0, +) / Float(w.count)).squareRoot()
        XCTAssertEqual(std, seq.config.initializerRange, accuracy: 0.004, "N(0, initializer_range^2) init")
        let (qa, qaReport) = try BertTaskModel.load(directory: Self.fixture("tiny-distilbertmodel"), architecture: .questionAnswering)
        XCTAssertEqual(qaReport.initialized, ["qa_outputs.weight", "qa_outputs.bias"])
        XCTAssertNil(qa.bert.pooler)
        // The encoder came from the checkpoint: the bare model's hidden states.
        let (bare, bareReport) = try BertTaskModel.load(directory: Self.fixture("tiny-distilbertmodel"))
        XCTAssertEqual(bareReport, BertLoadReport())
        let batch = BertBatch(sequences: [[5, 6, 7, 8], [9, 10]])
        XCTAssertEqual(seq.bert.encode(batch, tape: .inference).array, bare.bert.encode(batch, tape: .inference).array)
    }

    func testOtherHeadsAreReportedUnused() throws {
        let (tok, report) = try BertTaskModel.load(directory: Self.fixture("tiny-distilbert-seqcls"),
                                                   architecture: .tokenClassification, numLabels: 3)
        XCTAssertNil(tok.bert.pooler)
        XCTAssertEqual(Set(report.unused), ["pre_classifier.weight", "pre_classifier.bias"])
        let (_, baseReport) = try BertTaskModel.load(directory: Self.fixture("tiny-distilbert-qa"), architecture: .base)
        XCTAssertEqual(Set(baseReport.unused), ["qa_outputs.weight", "qa_outputs.bias"])
    }

    /// Pre-trained DistilBERTs are published as DistilBertForMaskedLM: the encoder loads, the
    /// MLM head is reported unused, and a task head is initialised.
    func testMaskedLMCheckpointLoadsItsEncoder() throws {
        let dir = try copy("tiny-distilbert-seqcls") { t in
            t.removeValue(forKey: "pre_classifier.weight")
            t.removeValue(forKey: "pre_classifier.bias")
            t.removeValue(forKey: "classifier.weight")
            t.removeValue(forKey: "classifier.bias")
            t["vocab_transform.weight"] = ([32, 32], [Float](repeating: 0, count: 32 * 32))
            t["vocab_transform.bias"] = ([32], [Float](repeating: 0, count: 32))
            t["vocab_layer_norm.weight"] = ([32], [Float](repeating: 1, count: 32))
            t["vocab_layer_norm.bias"] = ([32], [Float](repeating: 0, count: 32))
            t["vocab_projector.bias"] = ([99], [Float](repeating: 0, count: 99))
        }
        let configURL = dir.appendingPathComponent("config.json")
        var object = try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as! [String: Any]
        object["architectures"] = ["DistilBertForMaskedLM"]
        object.removeValue(forKey: "id2label")
        object.removeValue(forKey: "label2id")
        try JSONSerialization.data(withJSONObject: object).write(to: configURL)
        let (bare, report) = try BertTaskModel.load(directory: dir)
        XCTAssertEqual(bare.architecture, .base)
        XCTAssertEqual(report.initialized, [])
        XCTAssertEqual(Set(report.unused), ["vocab_transform.weight", "vocab_transform.bias", "vocab_layer_norm.weight",
                                            "vocab_layer_norm.bias", "vocab_projector.bias"])
        let (seq, seqReport) = try BertTaskModel.load(directory: dir, architecture: .sequenceClassification, numLabels: 2)
        XCTAssertEqual(seqReport.initialized, ["pre_classifier.weight", "pre_classifier.bias", "classifier.weight", "classifier.bias"])
        let batch = BertBatch(sequences: [[2, 5, 6, 3]])
        XCTAssertEqual(seq.bert.encode(batch, tape: .inference).array, bare.bert.encode(batch, tape: .inference).array)
    }

    func testCheckpointErrorsNameTheTensor() throws {
        let missing = try copy("tiny-distilbert-seqcls") { $0.removeValue(forKey: "distilbert.transformer.layer.1.attention.v_lin.weight") }
        assertLoadError(missing, contains: "missing tensor distilbert.transformer.layer.1.attention.v_lin.weight")
        try FileManager.default.removeItem(at: missing)
        let typed = try copy("tiny-distilbert-seqcls") { $0["distilbert.embeddings.token_type_embeddings.weight"] = ([2, 32], [Float](repeating: 0, count: 64)) }
        assertLoadError(typed, contains: "unexpected tensor distilbert.embeddings.token_type_embeddings.weight (not a parameter of DistilBertForSequenceClassification)")
        try FileManager.default.removeItem(at: typed)
        let shape = try copy("tiny-distilbert-seqcls") { $0["distilbert.transformer.layer.0.ffn.lin1.weight"] = ([36, 32], [Float](repeating: 0, count: 36 * 32)) }
        assertLoadError(shape, contains: "distilbert.transformer.layer.0.ffn.lin1.weight has shape [36, 32] but the config implies [37, 32]")
        try FileManager.default.removeItem(at: shape)
        // A BERT checkpoint under a DistilBERT config: the first DistilBERT tensor is missing.
        let bert = try copy("tiny-distilbert-seqcls")
        try FileManager.default.removeItem(at: bert.appendingPathComponent("model.safetensors"))
        try FileManager.default.copyItem(at: Fixtures.directory("tiny-bert-seqcls").appendingPathComponent("model.safetensors"),
                                         to: bert.appendingPathComponent("model.safetensors"))
        assertLoadError(bert, contains: "missing tensor distilbert.embeddings.word_embeddings.weight")
    }

    func testConfigErrors() throws {
        let dir = try copy("tiny-distilbert-seqcls")
        let configURL = dir.appendingPathComponent("config.json")
        let original = try Data(contentsOf: configURL)
        func withConfig(_ mutate: (inout [String: Any]) -> Void, contains needle: String, line: UInt = #line) throws {
            var object = try JSONSerialization.jsonObject(with: original) as! [String: Any]
            mutate(&object)
            try JSONSerialization.data(withJSONObject: object).write(to: configURL)
            assertLoadError(dir, contains: needle, line: line)
        }
        try withConfig({ $0["sinusoidal_pos_embds"] = true }, contains: "sinusoidal_pos_embds true is not supported")
        try withConfig({ $0["sinusoidal_pos_embds"] = "yes" }, contains: "\"sinusoidal_pos_embds\" must be true or false")
        try withConfig({ $0["activation"] = "swish" }, contains: "unsupported activation \"swish\"")
        try withConfig({ $0["n_heads"] = 5 }, contains: "dim 32 is not a multiple of n_heads 5")
        try withConfig({ $0.removeValue(forKey: "dim") }, contains: "missing required key \"dim\"")
        try withConfig({ $0["hidden_dim"] = 2.5 }, contains: "\"hidden_dim\" must be an integer")
        try withConfig({ $0["seq_classif_dropout"] = 1.5 }, contains: "seq_classif_dropout must be in [0, 1)")
        try withConfig({ $0["dim"] = 64 }, contains: "has shape [99, 32] but the config implies [99, 64]")
        try withConfig({ $0["model_type"] = "gpt2" }, contains: "model_type \"gpt2\" is not a BERT or DistilBERT model")
    }

    /// save() keeps DistilBERT names and config keys (transformers' AutoModelFor... reads them),
    /// and load() reads the directory back identically.
    func testSaveKeepsDistilBertNamesAndKeys() throws {
        let (model, _) = try BertTaskModel.load(directory: Self.fixture("tiny-distilbert-seqcls"))
        let out = scratch.appendingPathComponent("saved")
        try model.save(to: out)
        let saved = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("config.json"))) as! [String: Any]
        XCTAssertEqual(saved["model_type"] as? String, "distilbert")
        XCTAssertEqual(saved["architectures"] as? [String], ["DistilBertForSequenceClassification"])
        for key in ["dim", "n_layers", "n_heads", "hidden_dim", "activation", "dropout", "attention_dropout", "seq_classif_dropout",
                    "qa_dropout", "sinusoidal_pos_embds", "max_position_embeddings", "vocab_size", "pad_token_id"] {
            XCTAssertNotNil(saved[key], key)
        }
        for key in ["hidden_size", "num_hidden_layers", "type_vocab_size", "hidden_act", "layer_norm_eps", "position_embedding_type"] {
            XCTAssertNil(saved[key], key)
        }
        let original = try SafeTensorsFile(url: Self.fixture("tiny-distilbert-seqcls").appendingPathComponent("model.safetensors"))
        let written = try SafeTensorsFile(url: out.appendingPathComponent("model.safetensors"))
        XCTAssertEqual(Set(written.names), Set(original.names))
        for n in original.names { XCTAssertEqual(try written.floats(n), try original.floats(n), n) }
        let (again, report) = try BertTaskModel.load(directory: out)
        XCTAssertEqual(report, BertLoadReport())
        XCTAssertEqual(again.config, model.config.with(architectures: ["DistilBertForSequenceClassification"]))
        let batch = BertBatch(sequences: [[2, 5, 6, 7, 3], [2, 9, 3]])
        XCTAssertEqual(model.forward(batch, tape: .inference).array, again.forward(batch, tape: .inference).array)
    }

    /// A QA head saved from a config with another label count gets 2 labels (transformers sizes
    /// qa_outputs by num_labels and DistilBertForQuestionAnswering refuses anything but 2).
    func testQuestionAnsweringSaveHasTwoLabels() throws {
        let (model, _) = try BertTaskModel.load(directory: Self.fixture("tiny-distilbert-seqcls"), architecture: .questionAnswering)
        let out = scratch.appendingPathComponent("qa")
        try model.save(to: out)
        let (again, report) = try BertTaskModel.load(directory: out)
        XCTAssertEqual(report, BertLoadReport())
        XCTAssertEqual(again.architecture, .questionAnswering)
        XCTAssertEqual(again.config.numLabels, 2)
    }
}

private extension BertConfig {
    func with(architectures: [String]) -> BertConfig {
        var c = self
        c.architectures = architectures
        return c
    }
}
