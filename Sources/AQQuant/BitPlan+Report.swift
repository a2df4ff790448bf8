import AQFiles
import Foundation

// `aqbert inspect`'s report of a plan: the JSON object of `--json` and the text table.

extension BitPlan {
    /// Block number then Q, K, V, O, FFN in, FFN out (BERT or DistilBERT names).
    static func matrixOrder(_ path: String) -> (Int, Int) {
        let parts = path.split(separator: ".")
        let layer = parts.firstIndex(of: "layer").flatMap { Int(parts[$0 + 1]) } ?? 0
        let order = [["query", "q_lin"], ["key", "k_lin"], ["value", "v_lin"], ["attention.output", "out_lin"],
                     ["intermediate", "lin1"], ["output.dense", "lin2"]]
        let kind = order.firstIndex { $0.contains(where: path.contains) } ?? 9
        return (layer, kind)
    }

    /// Weights per bit-width over `matrices`.
    static func histogram(_ m: [Matrix]) -> [Int: Int] {
        var h: [Int: Int] = [:]
        for x in m { for b in x.bits { h[b, default: 0] += x.groupSize } }
        return h
    }

    /// One JSON object: version, the encoder's size_mib, avg_bits, pruned_fraction, weights, the
    /// packed file's bytes (`fileBytes`, when known), candidates, method, histogram, every matrix,
    /// and the planned tables.
    public func reportJSON(fileBytes: Int?) -> String {
        let p = self
        let fileBytesJSON = fileBytes.map { ",\"file_bytes\":\($0)" } ?? ""
        let paths = matrices.keys.sorted { Self.matrixOrder($0) < Self.matrixOrder($1) }
        func obj(_ m: BitPlan.Matrix) -> String {
            let h = Self.histogram([m]).sorted { $0.key < $1.key }.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",")
            let pruned = Double(m.bits.filter { $0 == 0 }.count) / Double(m.groups)
            return "{\"shape\":[\(m.shape[0]),\(m.shape[1])],\"groups\":\(m.groups),\"size_mib\":\(Double(m.totalBits) / 8 / 1_048_576),\"avg_bits\":\(Double(m.totalBits) / Double(m.weightCount)),\"pruned_fraction\":\(pruned),\"histogram\":{\(h)}}"
        }
        let total = Self.histogram(Array(p.matrices.values)).sorted { $0.key < $1.key }.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",")
        let ms = paths.map { "\(JSONText.quoted($0)):\(obj(p.matrices[$0]!))" }.joined(separator: ",")
        func table(_ e: BitPlan.Embedding) -> String {
            var h: [Int: Int] = [:]
            for g in 0..<e.groups { h[e.bits[g], default: 0] += e.rows(ofGroup: g).count * e.shape[1] }
            let hist = h.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",")
            return "{\"shape\":[\(e.shape[0]),\(e.shape[1])],\"rows_per_group\":\(e.rowsPerGroup),\"groups\":\(e.groups),\"avg_bits\":\(Double(e.totalBits) / Double(e.weightCount)),\"histogram\":{\(hist)}}"
        }
        let tables = p.embeddings.keys.sorted().map { "\(JSONText.quoted($0)):\(table(p.embeddings[$0]!))" }.joined(separator: ",")
        let tableJSON = p.embeddings.isEmpty ? "" : ",\"embedding_avg_bits\":\(p.embeddingAverageBits),\"embedding_candidates\":[\(p.embeddingCandidates.map(String.init).joined(separator: ","))],\"embeddings\":{\(tables)}"
        return "{\"version\":\(p.version),\"size_mib\":\(p.sizeMiB),\"avg_bits\":\(p.averageBits),\"pruned_fraction\":\(p.prunedFraction),\"weights\":\(p.weightCount)\(fileBytesJSON),\"candidates\":[\(p.candidates.map(String.init).joined(separator: ","))],\"method\":\(JSONText.quoted(p.provenance.method)),\"histogram\":{\(total)},\"matrices\":{\(ms)}\(tableJSON)}"
    }

    /// The text table: a line per matrix (groups, average bits, pruned share, MiB, groups per
    /// width), the total, a line per planned table and the packed file's size.
    public func reportLines(name: String, fileBytes: Int?) -> [String] {
        let p = self
        let paths = matrices.keys.sorted { Self.matrixOrder($0) < Self.matrixOrder($1) }
        var lines: [String] = []
        lines.append("plan \(name): method \(p.provenance.method), candidates \(p.candidates)")
        let header = "matrix".padding(toLength: 52, withPad: " ", startingAt: 0) + "   groups  avg bits  pruned   MiB  histogram (groups per bit-width)"
        lines.append(header)
        for path in paths {
            let m = p.matrices[path]!
            var counts: [Int: Int] = [:]
            for b in m.bits { counts[b, default: 0] += 1 }
            let h = counts.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: " ")
            lines.append(path.padding(toLength: 52, withPad: " ", startingAt: 0)
                  + String(format: " %8d %9.3f %6.1f%% %6.3f  ", m.groups, Double(m.totalBits) / Double(m.weightCount),
                           100 * Double(m.bits.filter { $0 == 0 }.count) / Double(m.groups), Double(m.totalBits) / 8 / 1_048_576) + h)
        }
        lines.append(String(format: "total: %d weights, %.3f MiB, %.3f average bits, %.1f%% pruned", p.weightCount, p.sizeMiB,
                     p.averageBits, 100 * p.prunedFraction))
        for path in p.embeddings.keys.sorted() {
            let e = p.embeddings[path]!
            var counts: [Int: Int] = [:]
            for b in e.bits { counts[b, default: 0] += 1 }
            let h = counts.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: " ")
            lines.append(path.padding(toLength: 52, withPad: " ", startingAt: 0)
                  + String(format: " %8d %9.3f  (%d rows per group)  ", e.groups, Double(e.totalBits) / Double(e.weightCount), e.rowsPerGroup) + h)
        }
        if let fileBytes {
            lines.append(String(format: "packed model.safetensors (aqbert export): %d bytes (%.2f MiB): codes, fp16 ranges, %@ embeddings, fp32 rest",
                         fileBytes, Double(fileBytes) / 1_048_576,
                         p.embeddings.isEmpty ? "8-bit" : String(format: "planned (%.3f average bits)", p.embeddingAverageBits)))
        }
        return lines
    }
}
