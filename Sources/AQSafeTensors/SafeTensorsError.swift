import AQFiles
import Foundation

/// Every failure of this module. `description` is a single line that names the file (and the
/// tensor when one is involved), e.g. `cannot open /x/model.safetensors: No such file or directory`.
public struct SafeTensorsError: Error, CustomStringConvertible, Equatable, Sendable, LocalizedError {
    public enum Kind: String, Sendable, Equatable, CaseIterable {
        /// open(2)/fstat(2)/mmap(2)/read(2) failed, or the path is not a regular file.
        case cannotOpen
        /// Creating, writing, syncing or renaming an output file failed.
        case cannotWrite
        /// Shorter than the 8-byte header-size prefix.
        case fileTooSmall
        /// The declared header size is over the 100 MB limit.
        case headerTooLarge
        /// The declared header size runs past the end of the file.
        case headerSizeExceedsFile
        /// The header bytes are not UTF-8.
        case invalidUTF8
        /// The header (or index file) is not valid JSON.
        case invalidJSON
        /// The header JSON is not an object.
        case headerNotObject
        /// `__metadata__` is not an object of strings.
        case invalidMetadata
        /// A tensor entry is not an object, or lacks/mistypes dtype, shape or data_offsets.
        case invalidEntry
        /// A dtype string this format does not define.
        case unknownDType
        /// A dtype defined by the format that this library does not read (FP8 etc.).
        case unsupportedDType
        /// A negative, non-integer or too large dimension.
        case invalidShape
        /// Element count times dtype size differs from the tensor's byte length (or overflows).
        case sizeMismatch
        /// Offsets out of range, reversed, overlapping or leaving a hole.
        case invalidOffsets
        /// The data section is shorter (truncated) or longer than the header declares.
        case dataSizeMismatch
        /// Two entries with the same name.
        case duplicateTensor
        /// No tensor of that name.
        case tensorNotFound
        /// The tensor's dtype cannot be read by the requested accessor.
        case wrongDType
        /// A value does not fit the requested type (e.g. a U64 above Int64.max).
        case valueOutOfRange
        /// `model.safetensors.index.json` is malformed or inconsistent with its shards.
        case invalidIndex
        /// The directory holds neither `model.safetensors` nor `model.safetensors.index.json`.
        case noCheckpoint
        /// A tensor handed to the writer is inconsistent (shape/values/dtype/name).
        case invalidArgument
    }

    public let kind: Kind
    /// The file (or directory) concerned.
    public let path: String
    /// The tensor concerned, if any.
    public let tensor: String?
    /// The full one-line message.
    public let description: String

    public var errorDescription: String? { description }

    init(_ kind: Kind, path: String, tensor: String? = nil, message: String) {
        self.kind = kind
        self.path = path
        self.tensor = tensor
        self.description = oneLine(message)
    }

    /// "<prefix> <path>: [tensor "name": ]detail"
    static func file(_ kind: Kind, _ path: String, tensor: String? = nil, _ detail: String) -> SafeTensorsError {
        let prefix: String
        switch kind {
        case .cannotOpen: prefix = "cannot open \(path): "
        case .cannotWrite, .invalidArgument: prefix = "cannot write \(path): "
        case .tensorNotFound, .wrongDType, .valueOutOfRange: prefix = "\(path): "
        case .invalidIndex, .noCheckpoint: prefix = "invalid checkpoint \(path): "
        default: prefix = "invalid safetensors file \(path): "
        }
        let tensorPart = tensor.map { "tensor \(quoted($0)): " } ?? ""
        return SafeTensorsError(kind, path: path, tensor: tensor, message: prefix + tensorPart + detail)
    }
}

/// Quote a (possibly hostile) name for a one-line message: JSON-style escapes, length capped.
func quoted(_ s: String) -> String { JSONText.quoted(s, maxScalars: 200, lineBreakers: true) }

/// Replace any line break or control character so the message stays on one line.
func oneLine(_ s: String) -> String {
    var out = ""
    for scalar in s.unicodeScalars {
        if scalar.value < 0x20 || scalar.value == 0x7F || scalar.value == 0x85
            || scalar.value == 0x2028 || scalar.value == 0x2029 {
            out += "\\u" + hex4(scalar.value)
        } else {
            out.unicodeScalars.append(scalar)
        }
    }
    return out
}

func hex4(_ v: UInt32) -> String {
    let digits = Array("0123456789abcdef")
    var s = ""
    for shift in stride(from: 12, through: 0, by: -4) {
        s.append(digits[Int((v >> UInt32(shift)) & 0xF)])
    }
    return s
}
