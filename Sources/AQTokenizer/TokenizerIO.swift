import AQFiles
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Line-oriented input and JSON Lines output of the `aqbert tokenize` contract.
public enum TokenizerIO {
    /// Splits UTF-8 text on `\n` only (a `\r` stays in its line); an empty line is an empty
    /// text and a final `\n` does not add one. Throws naming the first invalid line.
    public static func splitLines(_ data: Data, source: String) throws -> [String] {
        var lines: [String] = []
        var badLine: Int? = nil
        data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let bytes = raw.bindMemory(to: UInt8.self)
            let n = bytes.count
            var start = 0
            func add(_ lo: Int, _ hi: Int) {
                if let s = String(validating: UnsafeBufferPointer(rebasing: bytes[lo..<hi]), as: UTF8.self) {
                    lines.append(s)
                } else {
                    if badLine == nil { badLine = lines.count + 1 }
                    lines.append("")
                }
            }
            var i = 0
            while i < n {
                if bytes[i] == 0x0A {
                    add(start, i)
                    start = i + 1
                }
                i += 1
            }
            if start < n { add(start, n) }
        }
        if let badLine {
            throw TokenizerError(.invalidInput, "\(source) is not valid UTF-8 (line \(badLine))")
        }
        return lines
    }

    /// Encodes every line (in parallel chunks) and renders one JSON object per line:
    /// `{"input_ids":[...],"tokens":[...],"offsets":[[s,e],...]}` (the same bytes as Python's
    /// `json.dumps(..., ensure_ascii=False, separators=(",", ":"))`).
    public static func jsonLines(_ lines: [String], tokenizer: BertTokenizer, maxLength: Int? = nil,
                                 truncation: TruncationStrategy = .longestFirst) -> Data {
        let chunk = 512
        let chunks = max(1, (lines.count + chunk - 1) / chunk)
        let parts = ResultBox<[UInt8]>(count: chunks)
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let lo = c * chunk, hi = min(lines.count, lo + chunk)
            var bytes: [UInt8] = []
            bytes.reserveCapacity(max(0, hi - lo) * 256)
            if lo < hi {
                for i in lo..<hi {
                    appendJSONLine(tokenizer.encode(lines[i], maxLength: maxLength, truncation: truncation), to: &bytes)
                }
            }
            parts.set(c, bytes)
        }
        var data = Data()
        for part in parts.values { if let part { data.append(contentsOf: part) } }
        return data
    }

    /// Appends `{"input_ids":[...],"tokens":[...],"offsets":[[s,e],...]}\n`.
    public static func appendJSONLine(_ e: Encoding, to out: inout [UInt8]) {
        out.append(contentsOf: #"{"input_ids":["#.utf8)
        for (i, id) in e.ids.enumerated() {
            if i > 0 { out.append(0x2C) }
            out.append(contentsOf: String(id).utf8)
        }
        out.append(contentsOf: #"],"tokens":["#.utf8)
        for (i, t) in e.tokens.enumerated() {
            if i > 0 { out.append(0x2C) }
            appendJSONString(t, to: &out)
        }
        out.append(contentsOf: #"],"offsets":["#.utf8)
        for (i, o) in e.offsets.enumerated() {
            if i > 0 { out.append(0x2C) }
            out.append(0x5B)
            out.append(contentsOf: String(o.start).utf8)
            out.append(0x2C)
            out.append(contentsOf: String(o.end).utf8)
            out.append(0x5D)
        }
        out.append(contentsOf: "]}\n".utf8)
    }

    /// A JSON string: raw UTF-8 for non-ASCII, `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f` and
    /// `\u00XX` for the other C0 controls.
    public static func appendJSONString(_ s: String, to out: inout [UInt8]) {
        let hex: [UInt8] = Array("0123456789abcdef".utf8)
        out.append(0x22)
        for b in s.utf8 {
            switch b {
            case 0x22: out.append(contentsOf: [0x5C, 0x22])
            case 0x5C: out.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: out.append(contentsOf: [0x5C, 0x6E])
            case 0x0D: out.append(contentsOf: [0x5C, 0x72])
            case 0x09: out.append(contentsOf: [0x5C, 0x74])
            case 0x08: out.append(contentsOf: [0x5C, 0x62])
            case 0x0C: out.append(contentsOf: [0x5C, 0x66])
            case 0..<0x20:
                out.append(contentsOf: [0x5C, 0x75, 0x30, 0x30, hex[Int(b >> 4)], hex[Int(b & 0xF)]])
            default:
                out.append(b)
            }
        }
        out.append(0x22)
    }

    /// Writes `data` to `path` atomically (`AQFiles.writeAtomically`: a temporary file in the same
    /// directory, fsync, then `rename(2)` over the destination). Throws a one-line `TokenizerError`.
    public static func writeAtomically(_ data: Data, toPath path: String) throws {
        do {
            try AQFiles.writeAtomically(data, toPath: path)
        } catch let e as FileWriteError {
            throw TokenizerError(.io, e.description)
        }
    }
}
