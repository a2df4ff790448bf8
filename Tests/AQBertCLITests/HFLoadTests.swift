import AQBert
import AQTokenizer
import Foundation
import XCTest

/// Directories written by `aqbert finetune` load in transformers (`AutoModelFor*`) and give
/// the same logits: the fixture (Scripts/fixtures/make_hf_load_fixture.sh) holds two tiny
/// fine-tuned models and the logits transformers computed after loading them.
final class HFLoadTests: XCTestCase {
    static let tolerance: Float = 1e-4

    func testFineTunedDirectoriesMatchTransformers() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/hf-load")
        let golden = try JSONSerialization.jsonObject(with: Data(contentsOf: root.appendingPathComponent("golden.json"))) as! [String: Any]
        let texts = golden["texts"] as! [String]
        for name in ["seqcls", "tokcls"] {
            let entry = golden[name] as! [String: Any]
            let dir = root.appendingPathComponent(name)
            let (model, report) = try BertTaskModel.load(directory: dir)
            XCTAssertEqual(report, BertLoadReport(), name)
            XCTAssertEqual([model.architecture.rawValue], entry["architecture"] as! [String])
            let labels = entry["id2label"] as! [String: String]
            for (k, v) in labels { XCTAssertEqual(model.config.id2label?[Int(k)!], v) }
            let tokenizer = try BertTokenizer(directory: dir)
            for (text, row) in zip(texts, entry["rows"] as! [[String: Any]]) {
                let ids = tokenizer.encode(text).ids
                XCTAssertEqual(ids, row["input_ids"] as! [Int], text)
                let logits = model.forward(BertBatch(sequences: [ids]), tape: .inference).array
                let expected = (row["logits"] as! [Double]).map(Float.init)
                XCTAssertEqual(logits.count, expected.count)
                let worst = zip(logits, expected).map { abs($0 - $1) }.max() ?? 0
                XCTAssertLessThanOrEqual(worst, Self.tolerance, "\(name) \"\(text)\": max |diff| \(worst)")
            }
        }
    }
}
