import AQFiles
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One tensor's header entry.
public struct TensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: SafeTensorsDType
    public let shape: [Int]
    /// Absolute byte range in the file (not relative to the data section).
    public let byteRange: Range<Int>

    public init(name: String, dtype: SafeTensorsDType, shape: [Int], byteRange: Range<Int>) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.byteRange = byteRange
    }

    /// Product of `shape` (1 for a scalar `[]`). Validated not to overflow when parsed.
    public var elementCount: Int { shape.reduce(1, *) }
}

/// The largest header accepted, as in the Rust implementation (`MAX_HEADER_SIZE`).
public let safeTensorsMaxHeaderSize = 100_000_000

/// A `.safetensors` file, memory-mapped read-only. The header is parsed and fully validated by
/// `init`: afterwards every tensor's byte range is known to lie inside the mapping and to match
/// its shape and dtype. The mapping lives as long as this object.
///
/// Thread-safety: immutable after `init`, so it can be shared across threads. (As with any mmap,
/// truncating the file on disk while it is mapped makes later reads fault.)
public final class SafeTensorsFile: @unchecked Sendable {
    public let url: URL
    /// The `__metadata__` object (empty when absent).
    public let metadata: [String: String]
    /// Tensor names, sorted (by UTF-8 bytes).
    public let names: [String]
    /// Header entries in file order (by offset).
    public let tensorInfos: [TensorInfo]
    /// Size of the file in bytes.
    public let fileSize: Int
    /// The header's declared size N (bytes of JSON after the 8-byte prefix, padding included).
    public let headerSize: Int

    private let base: UnsafeRawPointer?
    private let mappedLength: Int
    private let infoByName: [String: TensorInfo]

    /// Maps `url` read-only (PROT_READ, MAP_PRIVATE) and validates the header.
    public init(url: URL) throws {
        self.url = url
        let path = url.path
        let file = try RegularFile.open(path)
        defer { file.close() }
        let size = file.size
        guard size >= 8 else {
            throw SafeTensorsError.file(.fileTooSmall, path, "file is \(size) bytes, shorter than the 8-byte header size")
        }
        guard let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, file.fd, 0),
              mapped != UnsafeMutableRawPointer(bitPattern: -1) else {
            throw SafeTensorsError.file(.cannotOpen, path, "mmap: " + errnoMessage(errno))
        }
        let buffer = UnsafeRawBufferPointer(start: UnsafeRawPointer(mapped), count: size)
        let header: ParsedHeader
        do {
            header = try parseSafeTensorsHeader(buffer, path: path)
        } catch {
            munmap(mapped, size)
            throw error
        }
        base = UnsafeRawPointer(mapped)
        mappedLength = size
        fileSize = size
        headerSize = header.headerSize
        metadata = header.metadata
        tensorInfos = header.tensors
        var byName: [String: TensorInfo] = [:]
        byName.reserveCapacity(header.tensors.count)
        for info in header.tensors { byName[info.name] = info }
        infoByName = byName
        names = header.tensors.map(\.name).sorted(by: utf8Less)
    }

    deinit {
        if let base {
            munmap(UnsafeMutableRawPointer(mutating: base), mappedLength)
        }
    }

    /// Offset of the data section (8 + header size).
    public var dataOffset: Int { 8 + headerSize }

    public func info(_ name: String) -> TensorInfo? { infoByName[name] }

    public func contains(_ name: String) -> Bool { infoByName[name] != nil }

    func require(_ name: String) throws -> TensorInfo {
        guard let info = infoByName[name] else {
            throw SafeTensorsError.file(.tensorNotFound, url.path, tensor: name, "no such tensor")
        }
        return info
    }

    /// The tensor's raw little-endian bytes, zero-copy (valid only inside `body`).
    public func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let info = try require(name)
        return try body(rawBuffer(info))
    }

    /// A copy of the tensor's raw little-endian bytes (any dtype).
    public func bytes(_ name: String) throws -> [UInt8] {
        let info = try require(name)
        return Array(rawBuffer(info))
    }

    private func rawBuffer(_ info: TensorInfo) -> UnsafeRawBufferPointer {
        guard let base, !info.byteRange.isEmpty else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: base + info.byteRange.lowerBound, count: info.byteRange.count)
    }

    /// The tensor as fp32: F32 copied, F64 rounded, F16/BF16 widened exactly.
    /// Integer and BOOL tensors are rejected (use `int64s`).
    public func floats(_ name: String) throws -> [Float] {
        let info = try require(name)
        try checkFloat(info)
        let raw = rawBuffer(info)
        let count = info.elementCount
        return [Float](unsafeUninitializedCapacity: count) { dst, initialized in
            if let dstBase = dst.baseAddress, let src = raw.baseAddress {
                convertToFloats(src, count: count, dtype: info.dtype, into: dstBase)
            }
            initialized = count
        }
    }

    /// Calls `body` with the tensor as fp32: zero-copy straight from the mapping when the tensor is
    /// F32 and suitably aligned (always, for files written by this library or by the Rust/Python
    /// `safetensors`), otherwise with a converted temporary copy. The buffer is valid only inside `body`.
    public func withFloatBuffer<R>(_ name: String, _ body: (UnsafeBufferPointer<Float>) throws -> R) throws -> R {
        let info = try require(name)
        try checkFloat(info)
        let raw = rawBuffer(info)
        let count = info.elementCount
        if info.dtype == .f32, hostIsLittleEndian, let src = raw.baseAddress,
           Int(bitPattern: src) % MemoryLayout<Float>.alignment == 0 {
            return try src.withMemoryRebound(to: Float.self, capacity: count) {
                try body(UnsafeBufferPointer(start: $0, count: count))
            }
        }
        if count == 0 { return try body(UnsafeBufferPointer(start: nil, count: 0)) }
        let converted = try floats(name)
        return try converted.withUnsafeBufferPointer { try body($0) }
    }

    /// The tensor as Int64: any integer dtype (I64, I32, I16, I8, U64, U32, U16, U8) or BOOL (0/1).
    /// Float tensors are rejected; a U64 value above Int64.max is an error.
    public func int64s(_ name: String) throws -> [Int64] {
        let info = try require(name)
        guard info.dtype.isInteger || info.dtype == .bool else {
            throw SafeTensorsError.file(.wrongDType, url.path, tensor: name,
                                        "dtype \(info.dtype.rawValue) is not an integer dtype; use floats()")
        }
        let raw = rawBuffer(info)
        let count = info.elementCount
        var result = [Int64](repeating: 0, count: count)
        guard count > 0, let src = raw.baseAddress else { return result }
        var overflowIndex: Int? = nil
        result.withUnsafeMutableBufferPointer { dst in
            switch info.dtype {
            case .i64:
                for i in 0..<count { dst[i] = Int64(littleEndian: src.loadUnaligned(fromByteOffset: i * 8, as: Int64.self)) }
            case .u64:
                for i in 0..<count {
                    let v = UInt64(littleEndian: src.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))
                    if v > UInt64(Int64.max) { if overflowIndex == nil { overflowIndex = i }; continue }
                    dst[i] = Int64(v)
                }
            case .i32:
                for i in 0..<count { dst[i] = Int64(Int32(littleEndian: src.loadUnaligned(fromByteOffset: i * 4, as: Int32.self))) }
            case .u32:
                for i in 0..<count { dst[i] = Int64(UInt32(littleEndian: src.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))) }
            case .i16:
                for i in 0..<count { dst[i] = Int64(Int16(littleEndian: src.loadUnaligned(fromByteOffset: i * 2, as: Int16.self))) }
            case .u16:
                for i in 0..<count { dst[i] = Int64(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))) }
            case .i8:
                for i in 0..<count { dst[i] = Int64(src.load(fromByteOffset: i, as: Int8.self)) }
            case .u8:
                for i in 0..<count { dst[i] = Int64(src.load(fromByteOffset: i, as: UInt8.self)) }
            case .bool:
                for i in 0..<count { dst[i] = src.load(fromByteOffset: i, as: UInt8.self) == 0 ? 0 : 1 }
            case .f64, .f32, .f16, .bf16:
                break
            }
        }
        if let i = overflowIndex {
            throw SafeTensorsError.file(.valueOutOfRange, url.path, tensor: name,
                                        "U64 element \(i) does not fit in Int64")
        }
        return result
    }

    private func checkFloat(_ info: TensorInfo) throws {
        guard info.dtype.isFloatingPoint else {
            throw SafeTensorsError.file(.wrongDType, url.path, tensor: info.name,
                                        "dtype \(info.dtype.rawValue) is not a floating-point dtype; use int64s() or bytes()")
        }
    }
}

let hostIsLittleEndian: Bool = (1 as UInt16).littleEndian == 1

/// Sort order for names: by UTF-8 bytes (the order of Rust's `String` and of Python's `str`).
func utf8Less(_ a: String, _ b: String) -> Bool {
    a.utf8.lexicographicallyPrecedes(b.utf8)
}

/// Converts `count` little-endian elements of a floating-point dtype to Float.
func convertToFloats(_ src: UnsafeRawPointer, count: Int, dtype: SafeTensorsDType, into dst: UnsafeMutablePointer<Float>) {
    switch dtype {
    case .f32:
        if hostIsLittleEndian {
            memcpy(dst, src, count * 4)
        } else {
            for i in 0..<count {
                dst[i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
            }
        }
    case .f16:
        for i in 0..<count {
            dst[i] = halfBitsToFloat(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)))
        }
    case .bf16:
        for i in 0..<count {
            dst[i] = bfloat16BitsToFloat(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)))
        }
    case .f64:
        for i in 0..<count {
            dst[i] = Float(Double(bitPattern: UInt64(littleEndian: src.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))))
        }
    default:
        break
    }
}

// MARK: - Header parsing and validation

struct ParsedHeader {
    var headerSize: Int
    var metadata: [String: String]
    /// Sorted by offset.
    var tensors: [TensorInfo]
}

private func describeShape(_ items: [JSONNode]) -> String {
    "[" + items.map { value -> String in
        switch value {
        case .number(let text): return text
        case .string(let s): return jsonQuoted(s)
        default: return value.typeName
        }
    }.joined(separator: ", ") + "]"
}

/// Parses and validates the header of a complete safetensors file held in `file`, following
/// the rules of the Rust implementation (`SafeTensors::read_metadata` / `Metadata::validate`).
func parseSafeTensorsHeader(_ file: UnsafeRawBufferPointer, path: String) throws -> ParsedHeader {
    func fail(_ kind: SafeTensorsError.Kind, tensor: String? = nil, _ detail: String) -> SafeTensorsError {
        SafeTensorsError.file(kind, path, tensor: tensor, detail)
    }
    let size = file.count
    guard size >= 8 else {
        throw fail(.fileTooSmall, "file is \(size) bytes, shorter than the 8-byte header size")
    }
    var declared: UInt64 = 0
    for k in 0..<8 { declared |= UInt64(file[k]) << (8 * UInt64(k)) }
    guard declared <= UInt64(safeTensorsMaxHeaderSize) else {
        throw fail(.headerTooLarge, "declared header size \(declared) bytes exceeds the \(safeTensorsMaxHeaderSize)-byte limit")
    }
    let n = Int(declared)  // <= 1e8, no overflow below
    guard 8 + n <= size else {
        throw fail(.headerSizeExceedsFile, "declared header size \(n) bytes runs past the end of the \(size)-byte file")
    }
    let headerBytes = UnsafeRawBufferPointer(rebasing: file[8..<(8 + n)])
    if let bad = firstInvalidUTF8Offset(headerBytes) {
        throw fail(.invalidUTF8, "header is not valid UTF-8 (byte \(bad) of the header)")
    }
    guard n > 0, headerBytes[0] == UInt8(ascii: "{") else {
        throw fail(.headerNotObject, "header does not start with '{' (it must be a JSON object)")
    }
    let root: JSONNode
    do throws(JSONParseError) {
        root = try JSONParser.parse(headerBytes)
    } catch {
        throw fail(.invalidJSON, "header is not valid JSON: \(error.message) at byte \(error.offset) of the header")
    }
    guard case .object(let members) = root else {
        throw fail(.headerNotObject, "header JSON is \(root.typeName), not an object")
    }

    let dataLength = size - 8 - n
    var metadata: [String: String] = [:]
    var sawMetadata = false
    var seen = Set<String>()
    var entries: [(info: TensorInfo, begin: Int, end: Int)] = []
    entries.reserveCapacity(members.count)

    for (key, value) in members {
        if key == "__metadata__" {
            if sawMetadata { throw fail(.invalidMetadata, "\"__metadata__\" appears twice") }
            sawMetadata = true
            switch value {
            case .null:
                break
            case .object(let pairs):
                for (mk, mv) in pairs {
                    guard case .string(let s) = mv else {
                        throw fail(.invalidMetadata, "\"__metadata__\" value for \(quoted(mk)) is \(mv.typeName), not a string")
                    }
                    if metadata[mk] != nil {
                        throw fail(.invalidMetadata, "\"__metadata__\" key \(quoted(mk)) appears twice")
                    }
                    metadata[mk] = s
                }
            default:
                throw fail(.invalidMetadata, "\"__metadata__\" is \(value.typeName), not an object of strings")
            }
            continue
        }
        guard seen.insert(key).inserted else {
            throw fail(.duplicateTensor, tensor: key, "appears twice in the header")
        }
        guard case .object(let fields) = value else {
            throw fail(.invalidEntry, tensor: key, "entry is \(value.typeName), not an object")
        }
        var dtypeValue: JSONNode?
        var shapeValue: JSONNode?
        var offsetsValue: JSONNode?
        for (fk, fv) in fields {
            switch fk {
            case "dtype", "shape", "data_offsets":
                let already: Bool
                switch fk {
                case "dtype": already = dtypeValue != nil; dtypeValue = fv
                case "shape": already = shapeValue != nil; shapeValue = fv
                default: already = offsetsValue != nil; offsetsValue = fv
                }
                if already { throw fail(.invalidEntry, tensor: key, "field \"\(fk)\" appears twice") }
            default:
                break  // unknown fields are ignored, as serde does
            }
        }
        guard let dtypeValue else { throw fail(.invalidEntry, tensor: key, "missing \"dtype\"") }
        guard let shapeValue else { throw fail(.invalidEntry, tensor: key, "missing \"shape\"") }
        guard let offsetsValue else { throw fail(.invalidEntry, tensor: key, "missing \"data_offsets\"") }

        guard case .string(let dtypeName) = dtypeValue else {
            throw fail(.invalidEntry, tensor: key, "\"dtype\" is \(dtypeValue.typeName), not a string")
        }
        guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
            if SafeTensorsDType.unsupportedNames.contains(dtypeName) {
                throw fail(.unsupportedDType, tensor: key, "dtype \(dtypeName) is not supported by this reader")
            }
            throw fail(.unknownDType, tensor: key, "unknown dtype \(quoted(dtypeName))")
        }

        guard case .array(let dims) = shapeValue else {
            throw fail(.invalidEntry, tensor: key, "\"shape\" is \(shapeValue.typeName), not an array")
        }
        var shape: [Int] = []
        shape.reserveCapacity(dims.count)
        var elements = 1
        var elementsOverflow = false
        for dim in dims {
            switch readNonNegativeInteger(dim) {
            case .value(let d):
                shape.append(d)
                let (m, o) = elements.multipliedReportingOverflow(by: d)
                if o { elementsOverflow = true } else { elements = m }
            case .negative:
                throw fail(.invalidShape, tensor: key, "shape \(describeShape(dims)) has a negative dimension")
            case .notAnInteger:
                throw fail(.invalidShape, tensor: key, "shape \(describeShape(dims)) has a non-integer dimension")
            case .tooLarge:
                throw fail(.invalidShape, tensor: key, "shape \(describeShape(dims)) has a dimension too large to represent")
            }
        }
        // A zero dimension makes the product 0 whatever the others are (and overflow moot).
        if shape.contains(0) { elements = 0; elementsOverflow = false }

        guard case .array(let offsetItems) = offsetsValue, offsetItems.count == 2 else {
            throw fail(.invalidEntry, tensor: key, "\"data_offsets\" must be an array of 2 integers")
        }
        var bounds: [Int] = []
        for item in offsetItems {
            switch readNonNegativeInteger(item) {
            case .value(let v): bounds.append(v)
            case .negative:
                throw fail(.invalidOffsets, tensor: key, "data_offsets \(describeShape(offsetItems)) contain a negative offset")
            case .notAnInteger:
                throw fail(.invalidOffsets, tensor: key, "data_offsets \(describeShape(offsetItems)) contain a non-integer")
            case .tooLarge:
                throw fail(.invalidOffsets, tensor: key, "data_offsets \(describeShape(offsetItems)) are out of range (data section is \(dataLength) bytes)")
            }
        }
        let begin = bounds[0], end = bounds[1]
        guard begin <= end else {
            throw fail(.invalidOffsets, tensor: key, "data_offsets [\(begin), \(end)] end before they begin")
        }
        let (nbytes, bytesOverflow) = elements.multipliedReportingOverflow(by: dtype.byteSize)
        if elementsOverflow || bytesOverflow {
            throw fail(.sizeMismatch, tensor: key, "shape \(shape) of \(dtype.rawValue) is too large (element count overflows)")
        }
        guard nbytes == end - begin else {
            throw fail(.sizeMismatch, tensor: key,
                       "shape \(shape) of \(dtype.rawValue) needs \(nbytes) bytes but data_offsets [\(begin), \(end)] span \(end - begin)")
        }
        let info = TensorInfo(name: key, dtype: dtype, shape: shape, byteRange: begin..<end)  // relative for now
        entries.append((info, begin, end))
    }

    // Same check as Metadata::validate: sorted by offsets, the tensors tile the data section.
    entries.sort { a, b in
        if a.begin != b.begin { return a.begin < b.begin }
        if a.end != b.end { return a.end < b.end }
        return utf8Less(a.info.name, b.info.name)
    }
    var expected = 0
    var previous: String? = nil
    for entry in entries {
        if entry.begin < expected {
            throw fail(.invalidOffsets, tensor: entry.info.name,
                       "data_offsets [\(entry.begin), \(entry.end)] overlap tensor \(quoted(previous ?? "")) which ends at \(expected)")
        }
        if entry.begin > expected {
            let after = previous.map { "after tensor \(quoted($0))" } ?? "at the start of the data section"
            throw fail(.invalidOffsets, tensor: entry.info.name,
                       "data_offsets [\(entry.begin), \(entry.end)] leave a \(entry.begin - expected)-byte hole \(after) (offsets must be contiguous)")
        }
        expected = entry.end
        previous = entry.info.name
    }
    if expected > dataLength {
        let first = entries.first { $0.end > dataLength }
        throw fail(.dataSizeMismatch, tensor: first?.info.name,
                   "data_offsets [\(first?.begin ?? 0), \(first?.end ?? expected)] run past the end of the \(dataLength)-byte data section (file truncated?)")
    }
    if expected < dataLength {
        throw fail(.dataSizeMismatch,
                   "data section is \(dataLength) bytes but the tensors cover only \(expected) (\(dataLength - expected) trailing bytes)")
    }
    // Every end <= dataLength = size - 8 - n, so these additions cannot overflow.
    let tensors = entries.map { entry in
        TensorInfo(name: entry.info.name, dtype: entry.info.dtype, shape: entry.info.shape,
                   byteRange: (8 + n + entry.begin)..<(8 + n + entry.end))
    }
    return ParsedHeader(headerSize: n, metadata: metadata, tensors: tensors)
}
