import AQBert
import AQTokenizer
import Foundation
import XCTest

/// Today's reader on stored fine-tuned directories: the fixtures (made by
/// Scripts/fixtures/make_hf_load_fixture.sh bert|distilbert with the aqbert of their day) hold tiny
/// models `aqbert finetune` wrote and the logits transformers computed after loading them with
/// `AutoModelFor*`; aqbert loading the same directories gives the same logits. That today's
/// writer still produces directories transformers reads that way is checked live, outside the
/// suite, by Scripts/parity.sh.
final class StoredFineTunedDirectoryTests: XCTestCase {
    static let tolerance: Float = 1e-4

    func testFineTunedDirectoriesMatchTransformers() throws {
        try check(golden: "golden.json", directories: ["seqcls": "seqcls", "tokcls": "tokcls"])
    }

    /// The same for DistilBERT (Scripts/fixtures/make_hf_load_fixture.sh distilbert): aqbert's
    /// output keeps DistilBERT names and keys, so AutoModelFor* builds DistilBertFor*.
    func testFineTunedDistilBertDirectoriesMatchTransformers() throws {
        try check(golden: "golden-distilbert.json", directories: ["seqcls": "distilbert-seqcls", "tokcls": "distilbert-tokcls"])
    }

    /// `directories`: golden entry -> fixture directory.
    func check(golden goldenName: String, directories: [String: String]) throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/hf-load")
        let golden = try JSONSerialization.jsonObject(with: Data(contentsOf: root.appendingPathComponent(goldenName))) as! [String: Any]
        let texts = golden["texts"] as! [String]
        for (name, folder) in directories.sorted(by: { $0.key < $1.key }) {
            let entry = golden[name] as! [String: Any]
            let dir = root.appendingPathComponent(folder)
            let (model, report) = try BertTaskModel.load(directory: dir)
            XCTAssertEqual(report, BertLoadReport(), name)
            XCTAssertEqual([model.className], entry["architecture"] as! [String])
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
                XCTAssertLessThanOrEqual(worst, Self.tolerance, "\(folder) \"\(text)\": max |diff| \(worst)")
            }
        }
    }
}
