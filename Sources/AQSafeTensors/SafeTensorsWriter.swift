import AQFiles
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes `.safetensors` files laid out exactly as the Rust/Python `safetensors` library does:
/// tensors ordered by dtype (the Rust `Dtype` enum order, descending: U64, I64, F64, F32, U32, I32,
/// BF16, F16, U16, I16, I8, U8, BOOL) then by name; header JSON in that order with
/// `__metadata__` first (keys sorted), padded with spaces to a multiple of 8 so that every tensor
/// is 8-byte aligned in the file (and in an mmap of it).
///
/// Every write is atomic: data goes to a temporary file in the destination directory, which is
/// fsync'ed and rename(2)d over the destination. On any error nothing is left at the destination
/// (a previous file there is untouched) and the temporary file is removed.
public struct SafeTensorsWriter {
    /// One tensor to write.
    public struct Tensor: Sendable {
        enum Payload: Sendable {
            case floats([Float])
            case integers([Int64])
            case bytes([UInt8])
            /// Only a size (for `fileSize`; never written).
            case absent
        }

        public let name: String
        public let dtype: SafeTensorsDType
        public let shape: [Int]
        let payload: Payload

        /// Float values stored as `dtype` (F32, F16 or BF16 with round-to-nearest-even, or F64).
        public static func floats(_ name: String, shape: [Int], _ values: [Float], as dtype: SafeTensorsDType = .f32) -> Tensor {
            Tensor(name: name, dtype: dtype, shape: shape, payload: .floats(values))
        }

        /// Integer values stored as `dtype` (any integer dtype, or BOOL for 0/1); each value must fit.
        public static func integers(_ name: String, shape: [Int], _ values: [Int64], as dtype: SafeTensorsDType = .i64) -> Tensor {
            Tensor(name: name, dtype: dtype, shape: shape, payload: .integers(values))
        }

        /// Raw little-endian element bytes of any dtype (`bytes.count` must be elements × dtype size);
        /// e.g. packed U8/I8 codes.
        public static func raw(_ name: String, dtype: SafeTensorsDType, shape: [Int], bytes: [UInt8]) -> Tensor {
            Tensor(name: name, dtype: dtype, shape: shape, payload: .bytes(bytes))
        }

        var valueCount: Int {
            switch payload {
            case .floats(let v): return v.count
            case .integers(let v): return v.count
            case .bytes(let b): return b.count
            case .absent: return 0
            }
        }
    }

    // MARK: Single file

    /// Writes float tensors, all stored as `dtype` (F32, F16, BF16 or F64).
    public static func write(_ tensors: [(name: String, shape: [Int], values: [Float])],
                             dtype: SafeTensorsDType = .f32,
                             metadata: [String: String] = ["format": "pt"],
                             to url: URL) throws {
        try write(tensors.map { Tensor.floats($0.name, shape: $0.shape, $0.values, as: dtype) }, metadata: metadata, to: url)
    }

    /// Writes tensors of any dtypes. An empty `metadata` omits `__metadata__` (transformers needs
    /// `"format": "pt"` to load a file, hence the default).
    public static func write(_ tensors: [Tensor], metadata: [String: String] = ["format": "pt"], to url: URL) throws {
        let path = url.path
        let layout = try plan(tensors, metadata: metadata, path: path)
        try atomically(path) { file in
            try emit(layout) { try file.write($0) }
        }
    }

    /// The exact size in bytes of the file `write` would produce for tensors of these names,
    /// dtypes and shapes (header included), without their data.
    public static func fileSize(of specs: [(name: String, dtype: SafeTensorsDType, shape: [Int])],
                                metadata: [String: String] = ["format": "pt"]) throws -> Int {
        try plan(specs.map { Tensor(name: $0.name, dtype: $0.dtype, shape: $0.shape, payload: .absent) },
                 metadata: metadata, path: "<size>").totalSize
    }

    /// The complete file contents, as `write` would produce them.
    public static func serialize(_ tensors: [Tensor], metadata: [String: String] = ["format": "pt"]) throws -> [UInt8] {
        let layout = try plan(tensors, metadata: metadata, path: "<memory>")
        var out: [UInt8] = []
        out.reserveCapacity(layout.totalSize)
        try emit(layout) { out.append(contentsOf: $0) }
        return out
    }

    // MARK: Sharded checkpoint

    /// Writes a checkpoint into `directory` the way `huggingface_hub`/transformers shard one:
    /// tensors are taken in the given order and a new shard is started whenever adding the next
    /// tensor would exceed `maxShardBytes` (a tensor larger than that gets a shard of its own).
    /// With several shards: `<base>-00001-of-0000N.safetensors`... plus `<base>.safetensors.index.json`
    /// (`{"metadata": {"total_size": ...}, "weight_map": {name: shard}}`); with one shard: just
    /// `<base>.safetensors`. Each file is written atomically, the index last; afterwards stale files
    /// of the other layout (an old `<base>.safetensors` that would shadow the index, an old index,
    /// old shards not part of this checkpoint) are removed.
    /// Returns the files written, the index (if any) last.
    @discardableResult
    public static func writeSharded(_ tensors: [Tensor], maxShardBytes: Int,
                                    metadata: [String: String] = ["format": "pt"],
                                    to directory: URL, baseName: String = "model") throws -> [URL] {
        let dirPath = directory.path
        guard maxShardBytes > 0 else {
            throw SafeTensorsError.file(.invalidArgument, dirPath, "maxShardBytes must be positive (got \(maxShardBytes))")
        }
        guard !baseName.isEmpty, !baseName.contains("/") else {
            throw SafeTensorsError.file(.invalidArgument, dirPath, "invalid base name \(quoted(baseName))")
        }
        // Validate everything up front (names, shapes, sizes) so that nothing is written on error.
        let whole = try plan(tensors, metadata: metadata, path: directory.appendingPathComponent(baseName + ".safetensors").path)
        let sizes = whole.sizeByName

        var shards: [[Tensor]] = []
        var current: [Tensor] = []
        var currentSize = 0
        var totalSize = 0
        for tensor in tensors {
            let size = sizes[tensor.name] ?? 0
            totalSize += size
            if size > maxShardBytes {
                shards.append([tensor])
                continue
            }
            if currentSize + size > maxShardBytes {
                shards.append(current)
                current = []
                currentSize = 0
            }
            current.append(tensor)
            currentSize += size
        }
        if !current.isEmpty || shards.isEmpty { shards.append(current) }

        let singleName = baseName + ".safetensors"
        let indexName = baseName + ".safetensors.index.json"
        var written: [URL] = []
        if shards.count == 1 {
            let url = directory.appendingPathComponent(singleName)
            try write(shards[0], metadata: metadata, to: url)
            written.append(url)
            removeStale(in: dirPath, baseName: baseName, keep: [singleName])
            return written
        }

        var weightMap: [(String, String)] = []
        var shardNames: [String] = []
        for (i, shard) in shards.enumerated() {
            let name = "\(baseName)-\(pad5(i + 1))-of-\(pad5(shards.count)).safetensors"
            shardNames.append(name)
            let url = directory.appendingPathComponent(name)
            try write(shard, metadata: metadata, to: url)
            written.append(url)
            for t in shard { weightMap.append((t.name, name)) }
        }
        weightMap.sort { utf8Less($0.0, $1.0) }
        var json = "{\n  \"metadata\": {\n    \"total_size\": \(totalSize)\n  },\n  \"weight_map\": {\n"
        json += weightMap.map { "    \(jsonQuoted($0.0)): \(jsonQuoted($0.1))" }.joined(separator: ",\n")
        json += "\n  }\n}\n"
        let indexURL = directory.appendingPathComponent(indexName)
        try atomically(indexURL.path) { try $0.write(Array(json.utf8)) }
        written.append(indexURL)
        removeStale(in: dirPath, baseName: baseName, keep: Set(shardNames + [indexName]))
        return written
    }

    /// `writeSharded` for float tensors all stored as `dtype`.
    @discardableResult
    public static func writeSharded(_ tensors: [(name: String, shape: [Int], values: [Float])],
                                    dtype: SafeTensorsDType = .f32, maxShardBytes: Int,
                                    metadata: [String: String] = ["format": "pt"],
                                    to directory: URL, baseName: String = "model") throws -> [URL] {
        try writeSharded(tensors.map { Tensor.floats($0.name, shape: $0.shape, $0.values, as: dtype) },
                         maxShardBytes: maxShardBytes, metadata: metadata, to: directory, baseName: baseName)
    }

    // MARK: - Layout

    struct Layout {
        var header: [UInt8]          // 8-byte size prefix + padded JSON
        var ordered: [Tensor]        // in file order
        var dataSize: Int
        var sizeByName: [String: Int]
        var totalSize: Int { header.count + dataSize }
    }

    static func plan(_ tensors: [Tensor], metadata: [String: String], path: String) throws -> Layout {
        func bad(_ name: String?, _ detail: String) -> SafeTensorsError {
            SafeTensorsError.file(.invalidArgument, path, tensor: name, detail)
        }
        var seen = Set<String>()
        var sizeByName: [String: Int] = [:]
        for t in tensors {
            guard t.name != "__metadata__" else { throw bad(t.name, "the name is reserved for the metadata entry") }
            guard seen.insert(t.name).inserted else { throw bad(t.name, "name given twice") }
            var elements = 1
            for d in t.shape {
                guard d >= 0 else { throw bad(t.name, "shape \(t.shape) has a negative dimension") }
                let (m, o) = elements.multipliedReportingOverflow(by: d)
                guard !o else { throw bad(t.name, "shape \(t.shape) is too large") }
                elements = m
            }
            let (bytes, o) = elements.multipliedReportingOverflow(by: t.dtype.byteSize)
            guard !o else { throw bad(t.name, "shape \(t.shape) is too large") }
            switch t.payload {
            case .floats(let v):
                guard t.dtype.isFloatingPoint else {
                    throw bad(t.name, "float values cannot be stored as \(t.dtype.rawValue) (use integers() or raw())")
                }
                guard v.count == elements else { throw bad(t.name, "shape \(t.shape) needs \(elements) values, got \(v.count)") }
            case .integers(let v):
                guard t.dtype.isInteger || t.dtype == .bool else {
                    throw bad(t.name, "integer values cannot be stored as \(t.dtype.rawValue) (use floats())")
                }
                guard v.count == elements else { throw bad(t.name, "shape \(t.shape) needs \(elements) values, got \(v.count)") }
                let (lo, hi) = integerRange(t.dtype)
                if let i = v.firstIndex(where: { $0 < lo || $0 > hi }) {
                    throw bad(t.name, "value \(v[i]) at index \(i) does not fit in \(t.dtype.rawValue)")
                }
            case .bytes(let b):
                guard b.count == bytes else {
                    throw bad(t.name, "shape \(t.shape) of \(t.dtype.rawValue) needs \(bytes) bytes, got \(b.count)")
                }
            case .absent: break
            }
            sizeByName[t.name] = bytes
        }

        let ordered = tensors.sorted { a, b in
            if a.dtype.serializationRank != b.dtype.serializationRank {
                return a.dtype.serializationRank > b.dtype.serializationRank
            }
            return utf8Less(a.name, b.name)
        }
        var json = "{"
        var first = true
        if !metadata.isEmpty {
            json += "\"__metadata__\":{"
            json += metadata.keys.sorted(by: utf8Less).map { key in
                jsonQuoted(key) + ":" + jsonQuoted(metadata[key] ?? "")
            }.joined(separator: ",")
            json += "}"
            first = false
        }
        var offset = 0
        for t in ordered {
            let size = sizeByName[t.name] ?? 0
            let (end, o) = offset.addingReportingOverflow(size)
            guard !o else { throw bad(t.name, "total size overflows") }
            if !first { json += "," }
            first = false
            json += jsonQuoted(t.name) + ":{\"dtype\":\"\(t.dtype.rawValue)\",\"shape\":["
            json += t.shape.map(String.init).joined(separator: ",")
            json += "],\"data_offsets\":[\(offset),\(end)]}"
            offset = end
        }
        json += "}"
        var headerJSON = Array(json.utf8)
        let padding = (8 - headerJSON.count % 8) % 8
        headerJSON.append(contentsOf: repeatElement(UInt8(ascii: " "), count: padding))
        guard headerJSON.count <= safeTensorsMaxHeaderSize else {
            throw bad(nil, "header would be \(headerJSON.count) bytes, over the \(safeTensorsMaxHeaderSize)-byte limit readers accept")
        }
        var header: [UInt8] = []
        header.reserveCapacity(8 + headerJSON.count)
        let n = UInt64(headerJSON.count)
        for k in 0..<8 { header.append(UInt8(truncatingIfNeeded: n >> (8 * UInt64(k)))) }
        header.append(contentsOf: headerJSON)
        return Layout(header: header, ordered: ordered, dataSize: offset, sizeByName: sizeByName)
    }

    static func integerRange(_ dtype: SafeTensorsDType) -> (Int64, Int64) {
        switch dtype {
        case .i64, .u64: return (dtype == .i64 ? Int64.min : 0, Int64.max)
        case .i32: return (Int64(Int32.min), Int64(Int32.max))
        case .u32: return (0, Int64(UInt32.max))
        case .i16: return (Int64(Int16.min), Int64(Int16.max))
        case .u16: return (0, Int64(UInt16.max))
        case .i8: return (Int64(Int8.min), Int64(Int8.max))
        case .u8: return (0, Int64(UInt8.max))
        case .bool: return (0, 1)
        default: return (0, -1)
        }
    }

    /// Streams the file: header, then each tensor's bytes (converted in bounded chunks).
    static func emit(_ layout: Layout, _ sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        try layout.header.withUnsafeBytes { try sink($0) }
        let chunkElements = 1 << 16
        var scratch = [UInt8](repeating: 0, count: chunkElements * 8)
        for t in layout.ordered {
            switch t.payload {
            case .absent:
                preconditionFailure("emit: \(t.name) has no data (a fileSize-only tensor)")
            case .bytes(let b):
                try b.withUnsafeBytes { try sink($0) }
            case .floats(let values):
                if t.dtype == .f32 && hostIsLittleEndian {
                    try values.withUnsafeBytes { try sink($0) }
                    continue
                }
                try values.withUnsafeBufferPointer { src in
                    var start = 0
                    while start < src.count {
                        let count = min(chunkElements, src.count - start)
                        let byteCount = count * t.dtype.byteSize
                        scratch.withUnsafeMutableBytes { dst in
                            switch t.dtype {
                            case .f16:
                                for i in 0..<count {
                                    dst.storeBytes(of: floatToHalfBits(src[start + i]).littleEndian, toByteOffset: i * 2, as: UInt16.self)
                                }
                            case .bf16:
                                for i in 0..<count {
                                    dst.storeBytes(of: floatToBFloat16Bits(src[start + i]).littleEndian, toByteOffset: i * 2, as: UInt16.self)
                                }
                            case .f64:
                                for i in 0..<count {
                                    dst.storeBytes(of: Double(src[start + i]).bitPattern.littleEndian, toByteOffset: i * 8, as: UInt64.self)
                                }
                            default:
                                for i in 0..<count {
                                    dst.storeBytes(of: src[start + i].bitPattern.littleEndian, toByteOffset: i * 4, as: UInt32.self)
                                }
                            }
                        }
                        try scratch.withUnsafeBytes { try sink(UnsafeRawBufferPointer(rebasing: $0[0..<byteCount])) }
                        start += count
                    }
                }
            case .integers(let values):
                try values.withUnsafeBufferPointer { src in
                    var start = 0
                    while start < src.count {
                        let count = min(chunkElements, src.count - start)
                        let size = t.dtype.byteSize
                        scratch.withUnsafeMutableBytes { dst in
                            for i in 0..<count {
                                // In range: checked by plan().
                                let v = UInt64(bitPattern: src[start + i])
                                for k in 0..<size {
                                    dst[i * size + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k)))
                                }
                            }
                        }
                        try scratch.withUnsafeBytes { try sink(UnsafeRawBufferPointer(rebasing: $0[0..<(count * size)])) }
                        start += count
                    }
                }
            }
        }
    }

    private static func pad5(_ i: Int) -> String {
        let s = String(i)
        return s.count >= 5 ? s : String(repeating: "0", count: 5 - s.count) + s
    }

    /// Removes `<base>.safetensors`, `<base>.safetensors.index.json` and
    /// `<base>-NNNNN-of-NNNNN.safetensors` files in `dirPath` that are not in `keep`.
    private static func removeStale(in dirPath: String, baseName: String, keep: Set<String>) {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: dirPath) else { return }
        for entry in entries where !keep.contains(entry) {
            if entry == baseName + ".safetensors" || entry == baseName + ".safetensors.index.json"
                || isShardName(entry, baseName: baseName) {
                _ = unlink(dirPath + "/" + entry)
            }
        }
    }

    static func isShardName(_ entry: String, baseName: String) -> Bool {
        let prefix = baseName + "-"
        let suffix = ".safetensors"
        guard entry.hasPrefix(prefix), entry.hasSuffix(suffix) else { return false }
        let middle = entry.dropFirst(prefix.count).dropLast(suffix.count)
        let parts = middle.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[1] == "of" else { return false }
        return parts[0].count == 5 && parts[2].count == 5
            && parts[0].allSatisfy(\.isASCIIDigit) && parts[2].allSatisfy(\.isASCIIDigit)
    }
}

private extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}

/// `AQFiles.withAtomicFile` with its write errors as `SafeTensorsError` (errors of `body` pass).
private func atomically(_ path: String, _ body: (AtomicFile) throws -> Void) throws {
    do {
        try withAtomicFile(path, body)
    } catch let e as FileWriteError {
        throw SafeTensorsError.file(.cannotWrite, e.path, e.reason)
    }
}
