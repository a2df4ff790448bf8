import AQBert
import AQFiles
import AQSafeTensors
import Foundation

/// Resumable checkpoints in an output directory, shared by the trainer and the search:
/// a fresh `checkpoint-<step>/` folder is written completely, then `last-checkpoint.json`
/// (written atomically) points at it, then older folders are removed, so a kill at any moment
/// leaves one complete checkpoint.
struct CheckpointFolders {
    let output: URL

    var pointer: URL { output.appendingPathComponent("last-checkpoint.json") }

    /// Creates `checkpoint-<step>`, lets `fill` write into it, then points at it.
    func save(step: Int, _ fill: (URL) throws -> Void) throws {
        let fm = FileManager.default
        let name = "checkpoint-\(step)"
        let dir = output.appendingPathComponent(name)
        try? fm.removeItem(at: dir)
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        try fill(dir)
        try writeAtomically(try JSONEncoder().encode(["checkpoint": name]), to: pointer)
        for item in (try? fm.contentsOfDirectory(atPath: output.path)) ?? [] where item.hasPrefix("checkpoint-") && item != name {
            try? fm.removeItem(at: output.appendingPathComponent(item))
        }
    }

    /// The folder the pointer names, or nil when there is no pointer. A pointer that is damaged,
    /// names anything but a `checkpoint-<step>` folder of this output, or names a missing one is
    /// an error (it is never followed outside the output).
    func latest() throws -> URL? {
        guard FileManager.default.fileExists(atPath: pointer.path) else { return nil }
        let data: Data
        do { data = try Data(contentsOf: pointer) } catch {
            throw DataError("--resume: cannot read \(pointer.path) (\(error.localizedDescription))")
        }
        let name = try Self.decode([String: String].self, from: data, file: pointer)["checkpoint"]
        guard let name, name.hasPrefix("checkpoint-"), let step = Int(name.dropFirst("checkpoint-".count)), step >= 0,
              name == "checkpoint-\(step)" else {
            throw DataError("--resume: \(pointer.path): \"checkpoint\" must name a checkpoint-<step> folder of the output, found \(name.map { "\"\($0)\"" } ?? "nothing")")
        }
        let dir = output.appendingPathComponent(name)
        guard fileExists(dir.path).isDirectory else {
            throw DataError("--resume: \(pointer.path) points at \(name), which is missing; the output is damaged: start again with a new --output")
        }
        return dir
    }

    /// Decodes a state file strictly (syntax with line and column, duplicate keys, missing or
    /// mistyped fields named), as "--resume: FILE: what is wrong".
    static func decode<T: Decodable>(_ type: T.Type, from data: Data, file: URL) throws -> T {
        if let problem = StrictJSON.problem(in: data) { throw DataError("--resume: \(file.path): \(problem)") }
        do { return try JSONDecoder().decode(type, from: data) } catch {
            throw DataError("--resume: \(file.path): \(StrictJSON.describe(error))")
        }
    }

    /// Reads and decodes a state file of a checkpoint (see `decode`).
    static func read<T: Decodable>(_ type: T.Type, at file: URL) throws -> T {
        let data: Data
        do { data = try Data(contentsOf: file) } catch {
            throw DataError("--resume: cannot read \(file.path) (\(error.localizedDescription)); the checkpoint is damaged")
        }
        return try decode(type, from: data, file: file)
    }

    /// Values of named tensors, fp32.
    static func writeTensors(_ tensors: [(name: String, tensor: Tensor)], to url: URL) throws {
        try SafeTensorsWriter.write(tensors.map { (name: $0.name, shape: $0.tensor.shape, values: $0.tensor.array) }, to: url)
    }

    static func readTensors(_ tensors: [(name: String, tensor: Tensor)], from url: URL) throws {
        let file: SafeTensorsFile
        do { file = try SafeTensorsFile(url: url) } catch { throw DataError("--resume: \(error)") }
        let expected = Set(tensors.map(\.name))
        if let extra = file.names.first(where: { !expected.contains($0) }) {
            throw DataError("--resume: \(url.path) holds tensor \(extra), which this run does not train; the checkpoint belongs to another run")
        }
        for (n, t) in tensors {
            let v: [Float]
            do { v = try file.floats(n) } catch { throw DataError("--resume: \(error)") }
            guard v.count == t.count else {
                throw DataError("--resume: \(url.path): tensor \(n) has \(v.count) values, expected \(t.count)")
            }
            if let bad = v.firstIndex(where: { !$0.isFinite }) {
                throw DataError("--resume: \(url.path): tensor \(n) holds a non-finite value at index \(bad)")
            }
            t.assign(v)
        }
    }

    /// AdamW moments (`m.<name>`, `v.<name>`) and step count.
    static func writeMoments(of optimizer: AdamW, to url: URL) throws {
        let (step, moments) = optimizer.state()
        var tensors: [(name: String, shape: [Int], values: [Float])] = []
        for (n, mv) in moments.sorted(by: { $0.key < $1.key }) {
            tensors.append((name: "m." + n, shape: [mv.m.count], values: mv.m))
            tensors.append((name: "v." + n, shape: [mv.v.count], values: mv.v))
        }
        try SafeTensorsWriter.write(tensors, metadata: ["format": "pt", "step": String(step)], to: url)
    }

    /// Restores AdamW moments and step. The file must hold exactly the optimizer's parameters
    /// (m and v of each it has updated, right sizes, finite, v >= 0) and, when `expectedStep` is given, that
    /// step count: anything else is another run's file or a damaged one.
    static func readMoments(into optimizer: AdamW, from url: URL, expectedStep: Int?) throws {
        let file: SafeTensorsFile
        do { file = try SafeTensorsFile(url: url) } catch { throw DataError("--resume: \(error)") }
        var sizes: [String: Int] = [:]
        for group in optimizer.groups { for p in group.parameters { if let name = p.name { sizes[name] = p.count } } }
        var moments: [String: (m: [Float], v: [Float])] = [:]
        for n in file.names {
            let isM = n.hasPrefix("m."), key = String(n.dropFirst(2))
            guard isM || n.hasPrefix("v."), let size = sizes[key] else {
                throw DataError("--resume: \(url.path) holds \(n), which is not a moment of this run's parameters; the checkpoint belongs to another run")
            }
            guard isM else { continue }
            let m: [Float], v: [Float]
            do { (m, v) = (try file.floats(n), try file.floats("v." + key)) } catch { throw DataError("--resume: \(error)") }
            guard m.count == size, v.count == size else {
                throw DataError("--resume: \(url.path): the moments of \(key) have \(m.count)/\(v.count) values, expected \(size)")
            }
            guard m.allSatisfy(\.isFinite), v.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
                throw DataError("--resume: \(url.path): the moments of \(key) hold non-finite or negative values")
            }
            moments[key] = (m, v)
        }
        guard let text = file.metadata["step"], let step = Int(text), step >= 0 else {
            throw DataError("--resume: \(url.path): metadata \"step\" must be a whole number of updates >= 0, found \(file.metadata["step"].map { "\"\($0)\"" } ?? "nothing")")
        }
        if let expectedStep, step != expectedStep {
            throw DataError("--resume: \(url.path) is at update \(step) but the run state says \(expectedStep); the checkpoint is damaged")
        }
        optimizer.restore(step: step, moments: moments)
    }
}

/// What a run was started from: its model's and data files' SHA-256, stored in every checkpoint
/// and compared on `--resume`, so a resumed run cannot continue on other inputs than it began.
public struct RunFingerprint: Codable, Equatable, Sendable {
    /// Label ("model", "train", "dev", "plan", ...) -> SHA-256 of the file.
    public var files: [String: String]

    public init(files: [String: String]) { self.files = files }

    /// Hashes `model/config.json` and `model/model.safetensors` (when present) and each input file.
    public static func of(modelDirectory: URL?, inputs: [(label: String, url: URL)]) throws -> RunFingerprint {
        var files: [String: String] = [:]
        if let modelDirectory {
            for name in ["config.json", "model.safetensors"] {
                let url = modelDirectory.appendingPathComponent(name)
                if FileManager.default.fileExists(atPath: url.path) { files["model/" + name] = try SHA256.hex(contentsOf: url) }
            }
        }
        for (label, url) in inputs { files[label] = try SHA256.hex(contentsOf: url) }
        return RunFingerprint(files: files)
    }

    /// The check on `--resume`: nil when `saved` matches, else what changed.
    func mismatch(saved: RunFingerprint?, output: URL) -> String? {
        guard let saved else {
            return "--resume: \(output.path) has no record of the inputs it was started from (an older aqbert wrote it); start again with a new --output"
        }
        let changed = Set(saved.files.keys).union(files.keys).sorted().filter { saved.files[$0] != files[$0] }
        guard !changed.isEmpty else { return nil }
        return "--resume: \(output.path) was started from other inputs (\(changed.joined(separator: ", ")) changed since); use the same files or a new --output"
    }
}
