import Foundation
import XCTest
import AQSafeTensors

/// Reads the real sentence-transformers/all-MiniLM-L6-v2 checkpoint when `AQBERT_MINILM` names
/// its directory (e.g. AQBERT_MINILM=/work/models/all-MiniLM-L6-v2); skipped otherwise.
final class MiniLMTests: XCTestCase {
    func testReadsAllMiniLML6v2() throws {
        guard let dir = ProcessInfo.processInfo.environment["AQBERT_MINILM"], !dir.isEmpty else {
            throw XCTSkip("AQBERT_MINILM is not set")
        }
        let directory = URL(fileURLWithPath: dir, isDirectory: true)
        let fileURL = directory.appendingPathComponent("model.safetensors")
        guard FileManager.default.fileExists(atPath: fileURL.path) else {
            throw XCTSkip("\(fileURL.path) is absent")
        }
        let file = try SafeTensorsFile(url: fileURL)
        XCTAssertEqual(file.metadata["format"], "pt")
        XCTAssertTrue((100...110).contains(file.names.count), "\(file.names.count) tensors")
        let word = try XCTUnwrap(file.info("embeddings.word_embeddings.weight"))
        XCTAssertEqual(word.dtype, .f32)
        XCTAssertEqual(word.shape, [30522, 384])
        XCTAssertEqual(word.byteRange.count, 30522 * 384 * 4)
        XCTAssertEqual(file.info("encoder.layer.0.attention.self.query.weight")?.shape, [384, 384])
        for info in file.tensorInfos { XCTAssertEqual(info.byteRange.lowerBound % 8, 0, info.name) }

        // Old HF checkpoints carry an I64 position_ids buffer.
        if let ids = file.info("embeddings.position_ids") {
            XCTAssertEqual(ids.dtype, .i64)
            XCTAssertEqual(try file.int64s("embeddings.position_ids"), (0..<Int64(ids.elementCount)).map { $0 })
        }

        // Values checked against Python: load_file(...)["embeddings.word_embeddings.weight"][101, :4], .sum()
        let (row, sum) = try file.withFloatBuffer("embeddings.word_embeddings.weight") { buf -> ([Float], Double) in
            (Array(buf[(101 * 384)..<(101 * 384 + 4)]), buf.reduce(0.0) { $0 + Double($1) })
        }
        XCTAssertEqual(row, [-0.01761939749121666, -0.007600549608469009, 0.047105543315410614, -0.08691827207803726])
        XCTAssertEqual(sum, 138.05076599121094, accuracy: 1e-2)
        XCTAssertEqual(Array(try file.floats("embeddings.LayerNorm.weight").prefix(3)),
                       [0.5989283323287964, 0.583594799041748, 0.6335410475730896])

        let checkpoint = try SafeTensorsCheckpoint(directory: directory)
        XCTAssertEqual(checkpoint.names, file.names)
        XCTAssertEqual(checkpoint.info("embeddings.word_embeddings.weight"), word)
    }
}
