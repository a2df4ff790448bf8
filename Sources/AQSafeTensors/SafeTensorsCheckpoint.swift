import AQFiles
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A model's weights in a directory: `model.safetensors`, or the shards listed in
/// `model.safetensors.index.json` (`{"metadata": {...}, "weight_map": {tensor: shard file}}`).
/// As in transformers, a single `model.safetensors` takes precedence over an index.
///
/// All files are mapped and validated by `init`, and every tensor named by the index is checked to
/// be present in its shard, so later accessors fail only for unknown names or dtype mismatches.
public final class SafeTensorsCheckpoint: @unchecked Sendable {
    public let directory: URL
    /// The index file, when the checkpoint is sharded.
    public let indexURL: URL?
    /// The open files: one, or the shards in file-name order.
    public let files: [SafeTensorsFile]
    /// Tensor names, sorted (by UTF-8 bytes). For a sharded checkpoint, the index's weight_map keys.
    public let names: [String]
    /// `__metadata__` of the single file, or of the first shard.
    public var metadata: [String: String] { files.first?.metadata ?? [:] }
    /// Elements stored over all tensors (in Double: a damaged header cannot overflow it).
    public var elementCount: Double {
        names.reduce(0.0) { total, name in total + (info(name).map { $0.shape.reduce(1.0) { $0 * Double($1) } } ?? 0) }
    }

    private let fileByName: [String: SafeTensorsFile]

    /// Opens `directory/<baseName>.safetensors`, or else `directory/<baseName>.safetensors.index.json`
    /// and its shards. For convenience `directory` may also be the URL of a single `.safetensors` file.
    public init(directory: URL, baseName: String = "model") throws {
        self.directory = directory
        let dirPath = directory.path
        let probe = fileExists(dirPath)
        if probe.exists && !probe.isDirectory {
            let file = try SafeTensorsFile(url: directory)
            indexURL = nil
            files = [file]
            names = file.names
            fileByName = Dictionary(uniqueKeysWithValues: file.names.map { ($0, file) })
            return
        }
        if !probe.exists {
            throw SafeTensorsError.file(.cannotOpen, dirPath, errnoMessage(ENOENT))
        }
        let singleURL = directory.appendingPathComponent(baseName + ".safetensors")
        let indexURL = directory.appendingPathComponent(baseName + ".safetensors.index.json")
        if fileExists(singleURL.path).exists {
            let file = try SafeTensorsFile(url: singleURL)
            self.indexURL = nil
            files = [file]
            names = file.names
            fileByName = Dictionary(uniqueKeysWithValues: file.names.map { ($0, file) })
            return
        }
        guard fileExists(indexURL.path).exists else {
            throw SafeTensorsError.file(.noCheckpoint, dirPath,
                                        "neither \(baseName).safetensors nor \(baseName).safetensors.index.json found")
        }
        self.indexURL = indexURL
        let weightMap = try SafeTensorsCheckpoint.readIndex(indexURL)

        let indexPath = indexURL.path
        var opened: [String: SafeTensorsFile] = [:]
        var byName: [String: SafeTensorsFile] = [:]
        for (tensor, shard) in weightMap {
            let file: SafeTensorsFile
            if let existing = opened[shard] {
                file = existing
            } else {
                let shardURL = directory.appendingPathComponent(shard)
                do {
                    file = try SafeTensorsFile(url: shardURL)
                } catch let error as SafeTensorsError {
                    throw SafeTensorsError(error.kind == .cannotOpen ? .invalidIndex : error.kind,
                                           path: indexPath, tensor: tensor,
                                           message: "invalid checkpoint \(indexPath): shard \(quoted(shard)) for tensor \(quoted(tensor)): \(error.description)")
                }
                opened[shard] = file
            }
            guard file.contains(tensor) else {
                throw SafeTensorsError.file(.invalidIndex, indexPath, tensor: tensor,
                                            "weight_map puts it in shard \(quoted(shard)) which does not contain it")
            }
            byName[tensor] = file
        }
        files = opened.keys.sorted(by: utf8Less).compactMap { opened[$0] }
        names = byName.keys.sorted(by: utf8Less)
        fileByName = byName
    }

    /// Parses an index file into (tensor, shard file name) pairs.
    static func readIndex(_ url: URL) throws -> [(String, String)] {
        let path = url.path
        func bad(_ detail: String) -> SafeTensorsError { SafeTensorsError.file(.invalidIndex, path, detail) }
        let bytes = try readWholeFile(path, limit: safeTensorsMaxHeaderSize, kindIfTooLarge: .invalidIndex)
        let root: JSONNode = try bytes.withUnsafeBytes { raw in
            if let badByte = firstInvalidUTF8Offset(raw) { throw bad("not valid UTF-8 (byte \(badByte))") }
            do throws(JSONParseError) {
                return try JSONParser.parse(raw)
            } catch {
                throw bad("not valid JSON: \(error.message) at byte \(error.offset)")
            }
        }
        guard case .object(let members) = root else { throw bad("the index is \(root.typeName), not an object") }
        guard let weightMapValue = members.first(where: { $0.key == "weight_map" })?.value else {
            throw bad("missing \"weight_map\"")
        }
        guard case .object(let pairs) = weightMapValue else {
            throw bad("\"weight_map\" is \(weightMapValue.typeName), not an object")
        }
        var seen = Set<String>()
        var result: [(String, String)] = []
        for (tensor, value) in pairs {
            guard case .string(let shard) = value else {
                throw SafeTensorsError.file(.invalidIndex, path, tensor: tensor, "weight_map value is \(value.typeName), not a file name")
            }
            guard seen.insert(tensor).inserted else {
                throw SafeTensorsError.file(.invalidIndex, path, tensor: tensor, "appears twice in weight_map")
            }
            let components = shard.split(separator: "/", omittingEmptySubsequences: false)
            guard !shard.isEmpty, !shard.hasPrefix("/"), !components.contains(".."), !shard.contains("\0") else {
                throw SafeTensorsError.file(.invalidIndex, path, tensor: tensor,
                                            "shard name \(quoted(shard)) must be a file name inside the checkpoint directory")
            }
            result.append((tensor, shard))
        }
        return result
    }

    public func info(_ name: String) -> TensorInfo? { fileByName[name]?.info(name) }

    public func contains(_ name: String) -> Bool { fileByName[name] != nil }

    /// The file holding `name`.
    public func file(containing name: String) -> SafeTensorsFile? { fileByName[name] }

    private func require(_ name: String) throws -> SafeTensorsFile {
        guard let file = fileByName[name] else {
            throw SafeTensorsError.file(.tensorNotFound, directory.path, tensor: name, "no such tensor in the checkpoint")
        }
        return file
    }

    public func floats(_ name: String) throws -> [Float] { try require(name).floats(name) }

    public func withFloatBuffer<R>(_ name: String, _ body: (UnsafeBufferPointer<Float>) throws -> R) throws -> R {
        try require(name).withFloatBuffer(name, body)
    }

    public func int64s(_ name: String) throws -> [Int64] { try require(name).int64s(name) }

    public func bytes(_ name: String) throws -> [UInt8] { try require(name).bytes(name) }

    public func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try require(name).withRawBytes(name, body)
    }
}
