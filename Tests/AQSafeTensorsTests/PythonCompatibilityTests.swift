import Foundation
import XCTest
import AQSafeTensors

/// A file written by Python `safetensors` 0.8.0 (torch 2.15), generated with:
///
///     import torch, base64
///     from safetensors.torch import save
///     t = {
///       "a.f32": torch.tensor([[0.0, 1.0, -2.5], [3.25, 1e-40, float("inf")]], dtype=torch.float32),
///       "b.f16": torch.tensor([1.0, -2.0, 65504.0, 6e-8, float("-inf")], dtype=torch.float16),
///       "c.bf16": torch.tensor([[1.0, -1.5], [3.140625, float("nan")]], dtype=torch.bfloat16),
///       "d.i64": torch.tensor([0, -1, 2**40], dtype=torch.int64),
///       "e.f64": torch.tensor(0.15625, dtype=torch.float64),
///       "f.u8": torch.tensor([0, 1, 128, 255], dtype=torch.uint8),
///       "g.empty": torch.zeros((0, 4), dtype=torch.float32),
///       "h.i32": torch.tensor([-7, 2**31 - 1], dtype=torch.int32),
///       "i.bool": torch.tensor([True, False, True]),
///       "embeddings.position_ids": torch.arange(4, dtype=torch.int64).reshape(1, 4),
///     }
///     print(base64.b64encode(save(t, metadata={"format": "pt"})).decode())
let pythonFixtureBase64 = [
        "mAIAAAAAAAB7Il9fbWV0YWRhdGFfXyI6eyJmb3JtYXQiOiJwdCJ9LCJkLmk2NCI6eyJkdHlwZSI6Ikk2NCIsInNoYXBlIjpbM10s",
        "ImRhdGFfb2Zmc2V0cyI6WzAsMjRdfSwiZW1iZWRkaW5ncy5wb3NpdGlvbl9pZHMiOnsiZHR5cGUiOiJJNjQiLCJzaGFwZSI6WzEs",
        "NF0sImRhdGFfb2Zmc2V0cyI6WzI0LDU2XX0sImUuZjY0Ijp7ImR0eXBlIjoiRjY0Iiwic2hhcGUiOltdLCJkYXRhX29mZnNldHMi",
        "Ols1Niw2NF19LCJhLmYzMiI6eyJkdHlwZSI6IkYzMiIsInNoYXBlIjpbMiwzXSwiZGF0YV9vZmZzZXRzIjpbNjQsODhdfSwiZy5l",
        "bXB0eSI6eyJkdHlwZSI6IkYzMiIsInNoYXBlIjpbMCw0XSwiZGF0YV9vZmZzZXRzIjpbODgsODhdfSwiaC5pMzIiOnsiZHR5cGUi",
        "OiJJMzIiLCJzaGFwZSI6WzJdLCJkYXRhX29mZnNldHMiOls4OCw5Nl19LCJjLmJmMTYiOnsiZHR5cGUiOiJCRjE2Iiwic2hhcGUi",
        "OlsyLDJdLCJkYXRhX29mZnNldHMiOls5NiwxMDRdfSwiYi5mMTYiOnsiZHR5cGUiOiJGMTYiLCJzaGFwZSI6WzVdLCJkYXRhX29m",
        "ZnNldHMiOlsxMDQsMTE0XX0sImYudTgiOnsiZHR5cGUiOiJVOCIsInNoYXBlIjpbNF0sImRhdGFfb2Zmc2V0cyI6WzExNCwxMThd",
        "fSwiaS5ib29sIjp7ImR0eXBlIjoiQk9PTCIsInNoYXBlIjpbM10sImRhdGFfb2Zmc2V0cyI6WzExOCwxMjFdfX0gICAgICAgAAAA",
        "AAAAAAD//////////wAAAAAAAQAAAAAAAAAAAAABAAAAAAAAAAIAAAAAAAAAAwAAAAAAAAAAAAAAAADEPwAAAAAAAIA/AAAgwAAA",
        "UEDCFgEAAACAf/n///////9/gD/Av0lAwH8APADA/3sBAAD8AAGA/wEAAQ==",
].joined()

final class PythonCompatibilityTests: TempDirTestCase {
    var fixture: [UInt8] { [UInt8](Data(base64Encoded: pythonFixtureBase64) ?? Data()) }

    func testReadsFileWrittenByPython() throws {
        XCTAssertEqual(fixture.count, 793)
        let u = try writeBytes(fixture, to: "py.safetensors")
        let f = try SafeTensorsFile(url: u)
        XCTAssertEqual(f.metadata, ["format": "pt"])
        XCTAssertEqual(f.names, ["a.f32", "b.f16", "c.bf16", "d.i64", "e.f64", "embeddings.position_ids",
                                 "f.u8", "g.empty", "h.i32", "i.bool"])
        XCTAssertEqual(f.headerSize, 664)
        XCTAssertEqual(f.info("a.f32"), TensorInfo(name: "a.f32", dtype: .f32, shape: [2, 3], byteRange: 736..<760))
        XCTAssertEqual(try f.floats("a.f32").map(\.bitPattern),
                       [0, 1, -2.5, 3.25, Float(bitPattern: 0x0001_16C2), .infinity].map(\.bitPattern))
        XCTAssertEqual(try f.floats("b.f16"), [1, -2, 65504, 0x1p-24, -.infinity])
        let bf = try f.floats("c.bf16")
        XCTAssertEqual(Array(bf[0..<3]), [1, -1.5, 3.140625])
        XCTAssertTrue(bf[3].isNaN)
        XCTAssertEqual(f.info("c.bf16")?.shape, [2, 2])
        XCTAssertEqual(try f.int64s("d.i64"), [0, -1, 1 << 40])
        XCTAssertEqual(try f.floats("e.f64"), [0.15625])
        XCTAssertEqual(f.info("e.f64")?.shape, [])
        XCTAssertEqual(try f.bytes("f.u8"), [0, 1, 128, 255])
        XCTAssertEqual(f.info("g.empty")?.shape, [0, 4])
        XCTAssertEqual(try f.floats("g.empty"), [])
        XCTAssertEqual(try f.int64s("h.i32"), [-7, Int64(Int32.max)])
        XCTAssertEqual(try f.int64s("i.bool"), [1, 0, 1])
        XCTAssertEqual(f.info("i.bool")?.dtype, .bool)
        XCTAssertEqual(try f.int64s("embeddings.position_ids"), [0, 1, 2, 3])
        XCTAssertEqual(f.tensorInfos.map(\.name), ["d.i64", "embeddings.position_ids", "e.f64", "a.f32", "g.empty",
                                                   "h.i32", "c.bf16", "b.f16", "f.u8", "i.bool"])
        for info in f.tensorInfos where info.dtype.byteSize > 1 {
            XCTAssertEqual(info.byteRange.lowerBound % info.dtype.byteSize, 0, "\(info.name) misaligned")
        }
    }

    /// Given the same tensors (in another order) the writer produces Python's bytes exactly:
    /// same dtype-then-name order, same JSON, same space padding to a multiple of 8.
    func testWriterLayoutIsByteIdenticalToPython() throws {
        let tensors: [SafeTensorsWriter.Tensor] = [
            .integers("i.bool", shape: [3], [1, 0, 1], as: .bool),
            .floats("c.bf16", shape: [2, 2], [1, -1.5, 3.140625, .nan], as: .bf16),
            .integers("embeddings.position_ids", shape: [1, 4], [0, 1, 2, 3]),
            .floats("a.f32", shape: [2, 3], [0, 1, -2.5, 3.25, Float(bitPattern: 0x0001_16C2), .infinity]),
            .raw("f.u8", dtype: .u8, shape: [4], bytes: [0, 1, 128, 255]),
            .floats("g.empty", shape: [0, 4], []),
            .floats("b.f16", shape: [5], [1, -2, 65504, 6e-8, -.infinity], as: .f16),
            .integers("h.i32", shape: [2], [-7, Int64(Int32.max)], as: .i32),
            .floats("e.f64", shape: [], [0.15625], as: .f64),
            .integers("d.i64", shape: [3], [0, -1, 1 << 40]),
        ]
        let bytes = try SafeTensorsWriter.serialize(tensors)
        XCTAssertEqual(bytes, fixture)
        let u = url("mine.safetensors")
        try SafeTensorsWriter.write(tensors, to: u)
        XCTAssertEqual(try contents(u), fixture)
    }

    /// The Rust library's own serialization tests (test_serialization, ..._forced_alignement).
    func testMatchesRustReferenceBytes() throws {
        let data: [Float] = [0, 1, 2, 3, 4, 5]
        let a = try SafeTensorsWriter.serialize([.floats("attn.0", shape: [1, 2, 3], data)], metadata: [:])
        XCTAssertEqual(a, [
            64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100,
            116, 121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34,
            58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102, 115,
            101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0, 0, 0, 0, 0, 128, 63,
            0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
        ])
        let b = try SafeTensorsWriter.serialize([.floats("attn0", shape: [1, 1, 2, 3], data)], metadata: [:])
        XCTAssertEqual(b, [
            72, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 48, 34, 58, 123, 34, 100, 116,
            121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58,
            91, 49, 44, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102,
            115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 32, 32, 32, 32, 32,
            32, 32, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0,
            160, 64,
        ])
        let e = try SafeTensorsWriter.serialize([], metadata: ["framework": "pt"])
        XCTAssertEqual(e, [
            40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97, 95,
            95, 34, 58, 123, 34, 102, 114, 97, 109, 101, 119, 111, 114, 107, 34, 58, 34, 112,
            116, 34, 125, 125, 32, 32, 32, 32, 32,
        ])
    }

    /// serde_json string escaping: quotes, backslashes and control characters escaped (lowercase
    /// hex), `/` and non-ASCII left raw — checked against Python's output for the same metadata.
    func testHeaderStringEscapingMatchesSerde() throws {
        // Python: save({"b": np.arange(6, dtype=np.float32)}, metadata={"alpha": "a\"b\\c\n\u0001/é\u2028"})
        let bytes = try SafeTensorsWriter.serialize([.floats("b", shape: [6], [0, 1, 2, 3, 4, 5])],
                                                    metadata: ["alpha": "a\"b\\c\n\u{1}/é\u{2028}"])
        let n = Int(bytes[0]) | Int(bytes[1]) << 8
        let header = String(decoding: bytes[8..<(8 + n)], as: UTF8.self)
        XCTAssertEqual(header, #"{"__metadata__":{"alpha":"a\"b\\c\n\u0001/é\#u{2028}"},"b":{"dtype":"F32","shape":[6],"data_offsets":[0,24]}}"#
        )
        XCTAssertEqual(n, 104)  // as Python; already a multiple of 8, so no padding
    }
}
