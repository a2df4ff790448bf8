import AQBert
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

    /// The folder the pointer names, or nil when there is no checkpoint.
    func latest() -> URL? {
        guard let data = try? Data(contentsOf: pointer),
              let name = (try? JSONDecoder().decode([String: String].self, from: data))?["checkpoint"] else { return nil }
        return output.appendingPathComponent(name)
    }

    /// Values of named tensors, fp32.
    static func writeTensors(_ tensors: [(name: String, tensor: Tensor)], to url: URL) throws {
        try SafeTensorsWriter.write(tensors.map { (name: $0.name, shape: $0.tensor.shape, values: $0.tensor.array) }, to: url)
    }

    static func readTensors(_ tensors: [(name: String, tensor: Tensor)], from url: URL) throws {
        let file = try SafeTensorsFile(url: url)
        for (n, t) in tensors {
            let v = try file.floats(n)
            guard v.count == t.count else { throw DataError("checkpoint \(url.path): tensor \(n) has the wrong size") }
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

    static func readMoments(into optimizer: AdamW, from url: URL, defaultStep: Int) throws {
        let file = try SafeTensorsFile(url: url)
        var moments: [String: (m: [Float], v: [Float])] = [:]
        for n in file.names where n.hasPrefix("m.") {
            let key = String(n.dropFirst(2))
            moments[key] = (try file.floats(n), try file.floats("v." + key))
        }
        optimizer.restore(step: Int(file.metadata["step"] ?? "") ?? defaultStep, moments: moments)
    }
}
