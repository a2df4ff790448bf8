import Foundation
import XCTest

@testable import AQBert

/// Loading rules: prefixes, head initialisation, and a clear error for every bad checkpoint.
final class CheckpointLoadingTests: XCTestCase {
    var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("aqbert-ckpt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: scratch) }

    /// Copies a fixture directory's config and weights into a fresh scratch folder.
    func copyFixture(_ name: String) throws -> URL {
        let dst = scratch.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: dst, withIntermediateDirectories: true)
        for f in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(at: Fixtures.directory(name).appendingPathComponent(f), to: dst.appendingPathComponent(f))
        }
        return dst
    }

    /// Rewrites model.safetensors through `edit` (name -> (shape, values)).
    func rewriteWeights(_ dir: URL, _ edit: (inout [String: (shape: [Int], values: [Float])]) -> Void) throws {
        let file = try SafeTensorsFile(url: dir.appendingPathComponent("model.safetensors"))
        var tensors: [String: (shape: [Int], values: [Float])] = [:]
        for n in file.names { tensors[n] = (file.info(n)!.shape, try file.floats(n)) }
        edit(&tensors)
        try SafeTensorsWriter.write(tensors.map { (name: $0.key, shape: $0.value.shape, values: $0.value.values) },
                                    to: dir.appendingPathComponent("model.safetensors"))
    }

    func assertLoadError(_ dir: URL, architecture: BertArchitecture? = nil, contains needle: String,
                         file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try BertTaskModel.load(directory: dir, architecture: architecture), file: file, line: line) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains(needle), "message \"\(message)\" lacks \"\(needle)\"", file: file, line: line)
            XCTAssertFalse(message.contains("\n"), "message is one line: \(message)", file: file, line: line)
        }
    }

    func testBareCheckpointIntoTaskModelInitialisesAndReportsHead() throws {
        let (model, report) = try BertTaskModel.load(directory: Fixtures.directory("tiny-bertmodel"),
                                                     architecture: .sequenceClassification, numLabels: 4)
        XCTAssertEqual(report.initialized, ["classifier.weight", "classifier.bias"])
        let w = model.head!.weight.array
        XCTAssertEqual(model.head!.bias!.array, [Float](repeating: 0, count: 4))
        let std = (w.map { $0 * $0 }.reduce(0, +) / Float(w.count)).squareRoot()
        XCTAssertEqual(std, model.config.initializerRange, accuracy: 0.006, "N(0, initializer_range^2) init")
        // The encoder came from the checkpoint: same hidden states as the bare model.
        let (bare, _) = try BertTaskModel.load(directory: Fixtures.directory("tiny-bertmodel"))
        let batch = BertBatch(sequences: [[5, 6, 7, 8], [9, 10]])
        XCTAssertEqual(model.bert.encode(batch, tape: .inference).array, bare.bert.encode(batch, tape: .inference).array)
    }

    func testPrefixedCheckpointIntoBareModelReportsUnusedHead() throws {
        let (_, report) = try BertTaskModel.load(directory: Fixtures.directory("tiny-bert-seqcls"), architecture: .base)
        XCTAssertEqual(Set(report.unused), ["classifier.weight", "classifier.bias"])
        XCTAssertEqual(report.initialized, [])
    }

    func testTokenClassifierDropsPooler() throws {
        let (model, report) = try BertTaskModel.load(directory: Fixtures.directory("tiny-bert-seqcls"),
                                                     architecture: .tokenClassification, numLabels: 3)
        XCTAssertNil(model.bert.pooler)
        XCTAssertTrue(report.unused.contains("bert.pooler.dense.weight"))
    }

    func testMissingTensorIsNamed() throws {
        let dir = try copyFixture("tiny-bert-seqcls")
        try rewriteWeights(dir) { $0.removeValue(forKey: "bert.encoder.layer.1.attention.self.value.weight") }
        assertLoadError(dir, contains: "missing tensor bert.encoder.layer.1.attention.self.value.weight")
    }

    func testUnexpectedTensorIsNamed() throws {
        let dir = try copyFixture("tiny-bert-seqcls")
        try rewriteWeights(dir) { $0["bert.encoder.layer.7.extra.weight"] = ([2], [1, 2]) }
        assertLoadError(dir, contains: "unexpected tensor bert.encoder.layer.7.extra.weight")
    }

    func testShapeDisagreeingWithConfigIsNamed() throws {
        let dir = try copyFixture("tiny-bert-seqcls")
        try rewriteWeights(dir) { $0["bert.encoder.layer.0.intermediate.dense.weight"] = ([36, 32], [Float](repeating: 0, count: 36 * 32)) }
        assertLoadError(dir, contains: "bert.encoder.layer.0.intermediate.dense.weight has shape [36, 32]")
    }

    func testHeadWithOtherLabelCountIsAnError() throws {
        XCTAssertThrowsError(try BertTaskModel.load(directory: Fixtures.directory("tiny-bert-seqcls"),
                                                    architecture: .sequenceClassification, numLabels: 7)) { error in
            XCTAssertTrue("\(error)".contains("classifier.weight has shape [3, 32]"), "\(error)")
        }
    }

    func testLegacyGammaBetaNamesLoad() throws {
        let dir = try copyFixture("tiny-bert-seqcls")
        try rewriteWeights(dir) { t in
            for k in t.keys where k.hasSuffix("LayerNorm.weight") { t[String(k.dropLast(6)) + "gamma"] = t.removeValue(forKey: k) }
            for k in t.keys where k.hasSuffix("LayerNorm.bias") { t[String(k.dropLast(4)) + "beta"] = t.removeValue(forKey: k) }
        }
        let (a, _) = try BertTaskModel.load(directory: dir)
        let (b, _) = try BertTaskModel.load(directory: Fixtures.directory("tiny-bert-seqcls"))
        XCTAssertEqual(a.bert.embeddings.norm.weight.array, b.bert.embeddings.norm.weight.array)
    }

    func testConfigErrors() throws {
        let dir = try copyFixture("tiny-bert-seqcls")
        let configURL = dir.appendingPathComponent("config.json")
        let original = try Data(contentsOf: configURL)
        func withConfig(_ mutate: (inout [String: Any]) -> Void, contains needle: String, line: UInt = #line) throws {
            var object = try JSONSerialization.jsonObject(with: original) as! [String: Any]
            mutate(&object)
            try JSONSerialization.data(withJSONObject: object).write(to: configURL)
            assertLoadError(dir, contains: needle, line: line)
        }
        try withConfig({ $0["hidden_act"] = "swish" }, contains: "unsupported hidden_act \"swish\"")
        try withConfig({ $0["position_embedding_type"] = "relative_key" }, contains: "unsupported position_embedding_type")
        try withConfig({ $0["num_attention_heads"] = 5 }, contains: "not a multiple of num_attention_heads")
        try withConfig({ $0.removeValue(forKey: "hidden_size") }, contains: "missing required key \"hidden_size\"")
        try withConfig({ $0["hidden_size"] = "big" }, contains: "\"hidden_size\" must be an integer")
        try withConfig({ $0["hidden_size"] = 64 }, contains: "has shape [99, 32] but the config implies [99, 64]")
        // Sizes that would allocate terabytes fail before any allocation: beyond any BERT, or far
        // beyond what the checkpoint holds.
        try withConfig({ $0["vocab_size"] = 1_000_000_000_000 }, contains: "more than the 4 billion aqbert loads")
        try withConfig({ $0["intermediate_size"] = Int(Int32.max) }, contains: "more than the 4 billion aqbert loads")
        try withConfig({ $0["max_position_embeddings"] = 50_000_000 }, contains: "the config does not belong to these weights")
        try withConfig({ $0["type_vocab_size"] = 2_147_483_648 }, contains: "type_vocab_size 2147483648")
        try "{ not json".write(to: configURL, atomically: true, encoding: .utf8)
        assertLoadError(dir, contains: "line 1, column 3")
        try "[1, 2]".write(to: configURL, atomically: true, encoding: .utf8)
        assertLoadError(dir, contains: "not a JSON object")
        try "{\"vocab_size\": 99, \"vocab_size\": 100}".write(to: configURL, atomically: true, encoding: .utf8)
        assertLoadError(dir, contains: "duplicate key \"vocab_size\"")
        try FileManager.default.removeItem(at: configURL)
        assertLoadError(dir, contains: "config.json: No such file or directory")
        try FileManager.default.createDirectory(at: configURL, withIntermediateDirectories: true)
        assertLoadError(dir, contains: "is a directory")
    }

    /// A NaN or an infinity in any weight is an error naming the tensor, not a model whose every
    /// output is NaN.
    func testNonFiniteWeightsAreRefused() throws {
        for (value, name) in [(Float.nan, "nan"), (-Float.infinity, "-inf")] {
            let dir = try copyFixture("tiny-bert-seqcls")
            try rewriteWeights(dir) { t in
                var w = t["bert.encoder.layer.1.output.dense.weight"]!
                w.values[5] = value
                t["bert.encoder.layer.1.output.dense.weight"] = w
            }
            assertLoadError(dir, contains: "bert.encoder.layer.1.output.dense.weight holds \(name) at index 5")
            try FileManager.default.removeItem(at: dir)
        }
    }

    func testCorruptWeightsAreOneLineErrors() throws {
        let dir = try copyFixture("tiny-bert-seqcls")
        let weights = dir.appendingPathComponent("model.safetensors")
        let bytes = try Data(contentsOf: weights)
        try bytes.prefix(bytes.count - 100).write(to: weights)
        assertLoadError(dir, contains: "model.safetensors")
        try Data([1, 2, 3]).write(to: weights)
        assertLoadError(dir, contains: "model.safetensors")
        var header = Data([9, 0, 0, 0, 0, 0, 0, 0])
        header.append(Data("{\"a\": 12}".utf8))
        try header.write(to: weights)
        assertLoadError(dir, contains: "model.safetensors")
        let badDtype = "{\"x\":{\"dtype\":\"Q7\",\"shape\":[1],\"data_offsets\":[0,4]}}"
        var h2 = Data()
        var n = UInt64(badDtype.utf8.count).littleEndian
        withUnsafeBytes(of: &n) { h2.append(contentsOf: $0) }
        h2.append(Data(badDtype.utf8))
        h2.append(Data([0, 0, 0, 0]))
        try h2.write(to: weights)
        assertLoadError(dir, contains: "Q7")
        try FileManager.default.removeItem(at: weights)
        assertLoadError(dir, contains: "model.safetensors")
    }

    /// bert-base widths (768 hidden, 12 heads, 3072 intermediate) with 2 layers and a small
    /// vocabulary, random weights written as a sharded HF checkpoint, loaded back exactly.
    func testBaseShapedShardedCheckpointRoundTrip() throws {
        var config = BertConfig.base
        config.numHiddenLayers = 2
        config.vocabSize = 500
        let model = BertTaskModel(config: config, architecture: .questionAnswering)
        var g = SeededGenerator(seed: 7)
        model.bert.initializeWeights(generator: &g)
        model.head!.initialize(std: 0.02, generator: &g)
        let dir = scratch.appendingPathComponent("base-sharded")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try writeAtomically(try config.jsonData(), to: dir.appendingPathComponent("config.json"))
        let tensors = model.checkpointParameters.map { (name: $0.name, shape: $0.tensor.shape, values: $0.tensor.array) }
        try SafeTensorsWriter.writeSharded(tensors, maxShardBytes: 20 << 20, to: dir)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("model.safetensors.index.json").path))
        let (loaded, report) = try BertTaskModel.load(directory: dir, architecture: .questionAnswering)
        XCTAssertEqual(report, BertLoadReport())
        for ((n1, a), (n2, b)) in zip(model.checkpointParameters, loaded.checkpointParameters) {
            XCTAssertEqual(n1, n2)
            XCTAssertEqual(a.array, b.array, n1)
        }
        let batch = BertBatch(sequences: [[1, 2, 3, 4, 5], [6, 7]])
        XCTAssertEqual(model.forward(batch, tape: .inference).array, loaded.forward(batch, tape: .inference).array)
    }

    /// save() writes a directory that load() reads back identically (config keys preserved).
    func testSaveLoadRoundTrip() throws {
        let (model, _) = try BertTaskModel.load(directory: Fixtures.directory("tiny-bert-tokcls"))
        let out = scratch.appendingPathComponent("saved")
        try model.save(to: out, labelNames: ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])
        let (again, _) = try BertTaskModel.load(directory: out)
        XCTAssertEqual(again.architecture, .tokenClassification)
        XCTAssertEqual(again.config.id2label?[1], "B-PER")
        let batch = BertBatch(sequences: [[3, 4, 5]])
        XCTAssertEqual(model.forward(batch, tape: .inference).array, again.forward(batch, tape: .inference).array)
    }
}
