import AQBert
import AQCore
import Foundation

/// Deterministic train/dev splits of a data file, written back in the file's own format so
/// any tool (aqbert, a transformers script) reads exactly the same examples.
///
/// Held-out rule (reproducible in any language): example `i` is held out when
/// `splitmix64(seed ^ i) % 100 < percent`. SQuAD splits by article: the first N articles
/// train, the rest evaluate.
public enum DataSplits {
    /// The first output of SplitMix64 started at `x`.
    @inline(__always)
    public static func splitmix64(_ x: UInt64) -> UInt64 {
        var g = SplitMix64(state: x)
        return g.next()
    }

    public static func heldOut(index: Int, seed: UInt64, percent: Int) -> Bool {
        splitmix64(seed ^ UInt64(index)) % 100 < UInt64(percent)
    }

    /// Counts of a written split.
    public struct Counts: Sendable, Equatable {
        public var train: Int
        public var heldOut: Int
    }

    /// Splits `data` (format from `task`) into `train` and `dev` files.
    /// - sst2 (TSV, header kept), mnli (JSONL, or TSV with header), conll2003 (sentences, each
    ///   `-DOCSTART-` document header kept on both sides): by the held-out rule over examples.
    /// - squad: `trainArticles` first articles to train, the rest to dev (or, without it, the
    ///   held-out rule over articles).
    public static func split(task: TaskName, data: URL, seed: UInt64, heldOutPercent: Int, trainArticles: Int?,
                             train: URL, dev: URL) throws -> Counts {
        guard (0...100).contains(heldOutPercent) else { throw DataError("--held-out-percent must be in 0...100") }
        let raw: Data
        do { raw = try Data(contentsOf: data) } catch { throw DataError("cannot read \(data.path): \(error.localizedDescription)") }
        guard let text = String(data: raw, encoding: .utf8) else { throw DataError("\(data.path) is not valid UTF-8") }
        var a = "", b = ""
        var counts = Counts(train: 0, heldOut: 0)
        func take(_ i: Int, _ chunk: String) {
            if heldOut(index: i, seed: seed, percent: heldOutPercent) { b += chunk; counts.heldOut += 1 } else { a += chunk; counts.train += 1 }
        }
        switch task {
        case .sst2, .mnli:
            var lines = SourceText.lines(of: text).map(String.init)
            if lines.last == "" { lines.removeLast() }
            var index = 0
            let isJSONL = lines.first?.hasPrefix("{") ?? false
            if !isJSONL, let header = lines.first {
                a += header + "\n"
                b += header + "\n"
                lines.removeFirst()
            }
            for l in lines where !l.trimmingCharacters(in: .whitespaces).isEmpty {
                take(index, l + "\n")
                index += 1
            }
        case .conll2003:
            // Sentences are blank-line separated blocks; document headers stay on both sides.
            var index = 0
            var block = ""
            func flush() {
                if block.isEmpty { return }
                if block.hasPrefix("-DOCSTART-") { a += block + "\n"; b += block + "\n" } else { take(index, block + "\n"); index += 1 }
                block = ""
            }
            for l in SourceText.lines(of: text) {
                if l.trimmingCharacters(in: .whitespaces).isEmpty { flush() } else { block += l + "\n" }
            }
            flush()
        case .squad:
            guard let object = try? JSONSerialization.jsonObject(with: raw) as? [String: Any],
                  let articles = object["data"] as? [Any] else {
                throw DataError("\(data.path): not a SQuAD JSON file (expected an object with a \"data\" array)")
            }
            var trainArts: [Any] = [], devArts: [Any] = []
            for (i, art) in articles.enumerated() {
                let toDev = trainArticles.map { i >= $0 } ?? heldOut(index: i, seed: seed, percent: heldOutPercent)
                if toDev { devArts.append(art) } else { trainArts.append(art) }
            }
            counts = Counts(train: trainArts.count, heldOut: devArts.count)
            var t = object, d = object
            t["data"] = trainArts
            d["data"] = devArts
            a = String(decoding: try JSONSerialization.data(withJSONObject: t), as: UTF8.self)
            b = String(decoding: try JSONSerialization.data(withJSONObject: d), as: UTF8.self)
        }
        try writeAtomically(Data(a.utf8), to: train)
        try writeAtomically(Data(b.utf8), to: dev)
        return counts
    }
}
