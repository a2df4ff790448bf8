import AQSafeTensors
import Foundation
import XCTest

final class SHA256Tests: XCTestCase {
    func testStandardVectors() throws {
        XCTAssertEqual(SHA256.hex(Data()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex(Data("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex(Data("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(SHA256.hex(Data(repeating: 0x61, count: 1000)), "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
        // Whole blocks only (the padding is a block of its own), and a file through its memory map.
        XCTAssertEqual(SHA256.hex(Data(repeating: 0x61, count: 128)), "6836cf13bac400e9105071cd6af47084dfacad4e5e302c94bfed24e013afb73e")
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("sha-\(UUID().uuidString)")
        try Data((0..<768).map { UInt8($0 % 256) }).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        XCTAssertEqual(try SHA256.hex(contentsOf: file), "f3a25aa93aa2fbba28d79260535bbd6a5eb0fc1c24a8b0f04e12b484c1dfe363")
        // Incremental updates split anywhere give the one-shot digest.
        let bytes = (0..<768).map { UInt8($0 % 256) }
        for cuts in [[0, 1, 63, 64, 65, 700], [5, 127, 128, 129], [767]] {
            var hasher = SHA256.Hasher()
            var start = 0
            for cut in cuts + [768] {
                hasher.update(Array(bytes[start..<cut]))
                start = cut
            }
            XCTAssertEqual(hasher.finalize(), "f3a25aa93aa2fbba28d79260535bbd6a5eb0fc1c24a8b0f04e12b484c1dfe363", "\(cuts)")
        }
    }
}
