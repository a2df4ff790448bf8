import Foundation
import XCTest
import AQSafeTensors

final class CheckpointTests: TempDirTestCase {
    func makeTensors() -> [(name: String, shape: [Int], values: [Float])] {
        // Sizes in F32 bytes: 40, 80, 20, 400 (as in the huggingface_hub example below).
        [
            ("a.weight", [10], (0..<10).map { Float($0) }),
            ("b.weight", [4, 5], (0..<20).map { Float($0) * -0.5 }),
            ("c", [5], [1, 2, 3, 4, 5]),
            ("d", [10, 10], (0..<100).map { Float($0) / 8 }),
        ]
    }

    func indexJSON(_ u: URL) throws -> [String: Any] {
        let obj = try JSONSerialization.jsonObject(with: Data(contentsOf: u))
        return try XCTUnwrap(obj as? [String: Any])
    }

    func testShardedRoundTripThroughIndex() throws {
        let tensors = makeTensors()
        let written = try SafeTensorsWriter.writeSharded(tensors, maxShardBytes: 100, to: tmp)
        // huggingface_hub.save_torch_state_dict(..., max_shard_size=100) on the same state dict gives
        // a -> 00001, d (over the limit, own shard) -> 00002, b + c -> 00003.
        XCTAssertEqual(try listing(), [
            "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
            "model-00003-of-00003.safetensors", "model.safetensors.index.json",
        ])
        XCTAssertEqual(written.map(\.lastPathComponent), [
            "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
            "model-00003-of-00003.safetensors", "model.safetensors.index.json",
        ])
        let index = try indexJSON(url("model.safetensors.index.json"))
        XCTAssertEqual((index["metadata"] as? [String: Any])?["total_size"] as? Int, 540)
        XCTAssertEqual(index["weight_map"] as? [String: String], [
            "a.weight": "model-00001-of-00003.safetensors",
            "d": "model-00002-of-00003.safetensors",
            "b.weight": "model-00003-of-00003.safetensors",
            "c": "model-00003-of-00003.safetensors",
        ])
        let text = String(decoding: try contents(url("model.safetensors.index.json")), as: UTF8.self)
        XCTAssertTrue(text.hasPrefix("{\n  \"metadata\": {\n    \"total_size\": 540\n  },\n  \"weight_map\": {\n    \"a.weight\""))

        let ckpt = try SafeTensorsCheckpoint(directory: tmp)
        XCTAssertEqual(ckpt.names, ["a.weight", "b.weight", "c", "d"])
        XCTAssertEqual(ckpt.files.count, 3)
        XCTAssertEqual(ckpt.indexURL?.lastPathComponent, "model.safetensors.index.json")
        XCTAssertEqual(ckpt.metadata, ["format": "pt"])
        for t in tensors {
            XCTAssertEqual(try ckpt.floats(t.name), t.values)
            XCTAssertEqual(ckpt.info(t.name)?.shape, t.shape)
            XCTAssertEqual(try ckpt.withFloatBuffer(t.name) { Array($0) }, t.values)
        }
        XCTAssertEqual(ckpt.file(containing: "d")?.url.lastPathComponent, "model-00002-of-00003.safetensors")
        XCTAssertNil(ckpt.info("missing"))
        assertSTError(.tensorNotFound, path: tmp.path, contains: ["\"missing\""]) { try ckpt.floats("missing") }

        // Re-saving unsharded replaces the index and removes the stale shards.
        try SafeTensorsWriter.writeSharded(tensors, maxShardBytes: 1 << 20, to: tmp)
        XCTAssertEqual(try listing(), ["model.safetensors"])
        let single = try SafeTensorsCheckpoint(directory: tmp)
        XCTAssertNil(single.indexURL)
        XCTAssertEqual(single.names, ["a.weight", "b.weight", "c", "d"])
        XCTAssertEqual(try single.floats("b.weight"), tensors[1].values)

        // And sharding again removes the now stale single file (it would shadow the index).
        try SafeTensorsWriter.writeSharded(tensors, dtype: .bf16, maxShardBytes: 60, to: tmp)
        XCTAssertFalse(try listing().contains("model.safetensors"))
        let again = try SafeTensorsCheckpoint(directory: tmp)
        XCTAssertNotNil(again.indexURL)
        XCTAssertEqual(again.info("d")?.dtype, .bf16)
        XCTAssertEqual(try again.floats("c"), [1, 2, 3, 4, 5])
    }

    func testShardedWithMixedDtypesAndKeepsUnrelatedFiles() throws {
        try Data("{}".utf8).write(to: url("config.json"))
        try Data("x".utf8).write(to: url("other-00001-of-00002.safetensors"))
        let written = try SafeTensorsWriter.writeSharded([
            .floats("w", shape: [64], [Float](repeating: 0.5, count: 64), as: .f16),
            .integers("ids", shape: [1, 8], (0..<8).map { Int64($0) }),
            .raw("codes", dtype: .i8, shape: [100], bytes: [UInt8](repeating: 0xFF, count: 100)),
        ], maxShardBytes: 128, to: tmp)
        XCTAssertEqual(written.count, 4)  // [w] [ids] [codes] + index
        XCTAssertTrue(try listing().contains("config.json"))
        XCTAssertTrue(try listing().contains("other-00001-of-00002.safetensors"))
        let ckpt = try SafeTensorsCheckpoint(directory: tmp)
        XCTAssertEqual(try ckpt.int64s("ids"), (0..<8).map { Int64($0) })
        XCTAssertEqual(try ckpt.int64s("codes"), [Int64](repeating: -1, count: 100))
        XCTAssertEqual(try ckpt.bytes("codes").count, 100)
        XCTAssertEqual(try ckpt.floats("w"), [Float](repeating: 0.5, count: 64))
        XCTAssertEqual(try ckpt.withRawBytes("codes") { $0.count }, 100)
    }

    func testSingleFileCheckpointAndFileURL() throws {
        let u = url("model.safetensors")
        try SafeTensorsWriter.write([("x", [2], [1, 2])], to: u)
        XCTAssertEqual(try SafeTensorsCheckpoint(directory: tmp).names, ["x"])
        XCTAssertEqual(try SafeTensorsCheckpoint(directory: u).floats("x"), [1, 2])
    }

    func testSingleFileTakesPrecedenceOverIndex() throws {
        try SafeTensorsWriter.write([("x", [1], [7])], to: url("model.safetensors"))
        try Data("not json".utf8).write(to: url("model.safetensors.index.json"))
        XCTAssertEqual(try SafeTensorsCheckpoint(directory: tmp).floats("x"), [7])
    }

    func testShardWriterRejectsBadArgumentsWithoutWriting() throws {
        assertSTError(.invalidArgument, path: tmp.path, contains: ["maxShardBytes"]) {
            try SafeTensorsWriter.writeSharded([("x", [1], [1])], maxShardBytes: 0, to: tmp)
        }
        assertSTError(.invalidArgument, path: tmp.path, contains: ["\"y\""]) {
            try SafeTensorsWriter.writeSharded([("x", [1], [1]), ("y", [3], [1])], maxShardBytes: 4, to: tmp)
        }
        XCTAssertEqual(try listing(), [])
    }

    // MARK: errors

    func testMissingDirectory() {
        let d = url("nope")
        assertSTError(.cannotOpen, path: d.path, contains: ["No such file or directory"]) {
            try SafeTensorsCheckpoint(directory: d)
        }
    }

    func testEmptyDirectoryHasNoCheckpoint() {
        assertSTError(.noCheckpoint, path: tmp.path, contains: ["model.safetensors"]) {
            try SafeTensorsCheckpoint(directory: tmp)
        }
    }

    func testIndexNamingMissingShard() throws {
        try SafeTensorsWriter.write([("a", [1], [1])], to: url("model-00001-of-00002.safetensors"))
        try Data(#"{"metadata": {"total_size": 8}, "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}"#.utf8)
            .write(to: url("model.safetensors.index.json"))
        let index = url("model.safetensors.index.json").path
        assertSTError(.invalidIndex, path: index,
                      contains: ["model-00002-of-00002.safetensors", "\"b\"", "No such file or directory"]) {
            try SafeTensorsCheckpoint(directory: tmp)
        }
    }

    func testIndexMappingTensorToShardWithoutIt() throws {
        try SafeTensorsWriter.write([("a", [1], [1])], to: url("s1.safetensors"))
        try Data(#"{"weight_map": {"a": "s1.safetensors", "zz": "s1.safetensors"}}"#.utf8)
            .write(to: url("model.safetensors.index.json"))
        assertSTError(.invalidIndex, path: url("model.safetensors.index.json").path, contains: ["\"zz\"", "s1.safetensors"]) {
            try SafeTensorsCheckpoint(directory: tmp)
        }
    }

    func testShardErrorsPropagateNamingBothFiles() throws {
        try Data([1, 2, 3]).write(to: url("s1.safetensors"))
        try Data(#"{"weight_map": {"a": "s1.safetensors"}}"#.utf8).write(to: url("model.safetensors.index.json"))
        assertSTError(.fileTooSmall, path: url("s1.safetensors").path, contains: ["model.safetensors.index.json"]) {
            try SafeTensorsCheckpoint(directory: tmp)
        }
    }

    func testMalformedIndexFiles() throws {
        let index = url("model.safetensors.index.json")
        let cases: [(String, String)] = [
            ("not json at all", "not valid JSON"),
            ("[1, 2]", "not an object"),
            (#"{"metadata": {}}"#, "missing \"weight_map\""),
            (#"{"weight_map": []}"#, "\"weight_map\" is an array"),
            (#"{"weight_map": {"a": 3}}"#, "not a file name"),
            (#"{"weight_map": {"a": "../escape.safetensors"}}"#, "inside the checkpoint directory"),
            (#"{"weight_map": {"a": "/etc/passwd"}}"#, "inside the checkpoint directory"),
            (#"{"weight_map": {"a": "x.safetensors", "a": "y.safetensors"}}"#, "twice"),
            ("{\"weight_map\": {\"a\": \"\u{FF}\"}}", ""),  // written as UTF-8 here; invalid UTF-8 below
        ]
        for (text, fragment) in cases {
            try Data(text.utf8).write(to: index)
            assertSTError(.invalidIndex, path: index.path, contains: fragment.isEmpty ? [] : [fragment]) {
                try SafeTensorsCheckpoint(directory: tmp)
            }
        }
        try Data([0x7B, 0xFF, 0x7D]).write(to: index)
        assertSTError(.invalidIndex, path: index.path, contains: ["UTF-8"]) { try SafeTensorsCheckpoint(directory: tmp) }
    }
}
