import Foundation
import XCTest
import AQSafeTensors

/// Random corruptions of valid files must yield SafeTensorsError (or a valid file), never a
/// crash: the reader is compiled with -Ounchecked, so every bound has to be checked explicitly.
final class FuzzTests: TempDirTestCase {
    func testCorruptedFilesNeverCrash() throws {
        let seed = try SafeTensorsWriter.serialize([
            .floats("a.weight", shape: [2, 3], [1, 2, 3, 4, 5, 6]),
            .floats("b", shape: [4], [1, 2, 3, 4], as: .f16),
            .integers("ids", shape: [1, 3], [0, 1, 2]),
            .floats("e", shape: [0], []),
            .floats("s", shape: [], [1], as: .bf16),
        ])
        let interesting: [UInt8] = Array("{}[]\":,0123456789-.eE \\u".utf8) + [0, 0x80, 0xC3, 0xFF]
        var rng = TestRNG(seed: 20240601)
        var accepted = 0
        let u = url("fuzz.safetensors")
        for _ in 0..<1000 {
            var bytes = seed
            switch rng.below(5) {
            case 0:  // truncate
                bytes = Array(bytes.prefix(rng.below(bytes.count + 1)))
            case 1:  // flip bytes anywhere
                for _ in 0...rng.below(4) { bytes[rng.below(bytes.count)] ^= UInt8(truncatingIfNeeded: rng.next() | 1) }
            case 2:  // overwrite header bytes with JSON-ish characters
                for _ in 0...rng.below(6) {
                    bytes[8 + rng.below(bytes.count - 8)] = interesting[rng.below(interesting.count)]
                }
            case 3:  // mess with the declared header size
                let k = rng.below(8)
                bytes[k] = UInt8(truncatingIfNeeded: rng.next())
            default:  // insert or delete a run inside the header
                let at = 8 + rng.below(bytes.count - 8)
                if rng.below(2) == 0 {
                    bytes.removeSubrange(at..<min(bytes.count, at + 1 + rng.below(8)))
                } else {
                    bytes.insert(contentsOf: (0...rng.below(8)).map { _ in interesting[rng.below(interesting.count)] }, at: at)
                }
            }
            try writeFile(bytes, to: u)
            do {
                let f = try SafeTensorsFile(url: u)
                accepted += 1
                for name in f.names {
                    guard let info = f.info(name) else { continue }
                    XCTAssertLessThanOrEqual(info.byteRange.upperBound, f.fileSize)
                    if info.dtype.isFloatingPoint {
                        XCTAssertEqual(try f.floats(name).count, info.elementCount)
                    } else {
                        XCTAssertEqual(try f.int64s(name).count, info.elementCount)
                    }
                }
            } catch let e as SafeTensorsError {
                XCTAssertFalse(e.description.contains("\n"))
                XCTAssertTrue(e.description.contains(u.path))
            }
        }
        XCTAssertGreaterThan(accepted, 0)  // some mutations (e.g. in data bytes) keep the file valid
    }
}
