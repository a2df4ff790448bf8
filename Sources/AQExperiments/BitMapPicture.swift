import AQQuant
import Foundation

/// A bit plan drawn as a heat map: encoder blocks down, the six matrices of a block across;
/// colour = the matrix's average bits, the number in the cell the same, and the share of
/// pruned groups under it.
public enum BitMapPicture {
    /// Short column names by the end of a Hugging Face matrix path (BERT and DistilBERT).
    static let columns: [(suffix: [String], label: String)] = [
        (["attention.self.query.weight", "attention.q_lin.weight"], "Q"),
        (["attention.self.key.weight", "attention.k_lin.weight"], "K"),
        (["attention.self.value.weight", "attention.v_lin.weight"], "V"),
        (["attention.output.dense.weight", "attention.out_lin.weight"], "attn out"),
        (["intermediate.dense.weight", "ffn.lin1.weight"], "FFN in"),
        (["output.dense.weight", "ffn.lin2.weight"], "FFN out"),
    ]

    /// (block, column) of a matrix path, nil if it is not an encoder matrix.
    static func cell(of path: String) -> (block: Int, column: Int)? {
        let parts = path.split(separator: ".")
        guard let i = parts.firstIndex(of: "layer"), i + 1 < parts.count, let block = Int(parts[i + 1]) else { return nil }
        let rest = parts[(i + 2)...].joined(separator: ".")
        // "output.dense" would also match "attention.output.dense": test the longer ones first.
        guard let c = columns.firstIndex(where: { col in col.suffix.contains { rest == $0 } }) else { return nil }
        return (block, c)
    }

    /// plans: (title, plan) side by side. maxBits: the top of the colour scale.
    public static func svg(_ plans: [(title: String, plan: BitPlan)], maxBits: Int) -> String {
        let cellW = 62.0, cellH = 34.0, gap = 40.0, left = 70.0, top = 70.0
        let blocks = plans.map { p in (p.plan.matrices.keys.compactMap { cell(of: $0)?.block }.max() ?? -1) + 1 }.max() ?? 0
        let panelW = cellW * Double(columns.count)
        let width = left + Double(plans.count) * (panelW + gap) + 80, height = top + Double(blocks) * cellH + 90
        var s = Plot.header(width: width, height: height)
        s += Plot.text(x: left, y: 22, "AQ-BERT bit map: average bits per matrix (pruned share below)", size: 15, anchor: "start")
        for (pi, entry) in plans.enumerated() {
            let x0 = left + Double(pi) * (panelW + gap)
            s += Plot.text(x: x0 + panelW / 2, y: top - 28, entry.title, size: 12, anchor: "middle")
            for (c, col) in columns.enumerated() {
                s += Plot.text(x: x0 + (Double(c) + 0.5) * cellW, y: top - 8, col.label, size: 11, anchor: "middle")
            }
            for b in 0..<blocks where pi == 0 {
                s += Plot.text(x: left - 8, y: top + (Double(b) + 0.6) * cellH, "block \(b)", size: 11, anchor: "end")
            }
            for (path, m) in entry.plan.matrices.sorted(by: { $0.key < $1.key }) {
                guard let (b, c) = cell(of: path) else { continue }
                let avg = Double(m.bits.reduce(0, +)) / Double(max(1, m.bits.count))
                let pruned = Double(m.bits.filter { $0 == 0 }.count) / Double(max(1, m.bits.count))
                let x = x0 + Double(c) * cellW, y = top + Double(b) * cellH
                let t = min(1, max(0, avg / Double(max(1, maxBits))))
                s += "<rect x=\"\(Plot.f(x))\" y=\"\(Plot.f(y))\" width=\"\(Plot.f(cellW - 2))\" height=\"\(Plot.f(cellH - 2))\" fill=\"\(Plot.viridis(t))\"/>\n"
                let ink = t > 0.55 ? "#000" : "#fff"
                s += Plot.text(x: x + cellW / 2 - 1, y: y + 14, String(format: "%.2f", avg), size: 11, anchor: "middle", color: ink)
                s += Plot.text(x: x + cellW / 2 - 1, y: y + 27, String(format: "%.0f%% pruned", 100 * pruned), size: 9, anchor: "middle", color: ink)
            }
        }
        // Colour scale.
        let barY = top + Double(blocks) * cellH + 30
        for i in 0..<100 {
            let t = Double(i) / 99
            s += "<rect x=\"\(Plot.f(left + Double(i) * 3))\" y=\"\(Plot.f(barY))\" width=\"3.2\" height=\"12\" fill=\"\(Plot.viridis(t))\"/>\n"
        }
        s += Plot.text(x: left, y: barY + 28, "0 bits", size: 10, anchor: "start")
        s += Plot.text(x: left + 300, y: barY + 28, "\(maxBits) bits", size: 10, anchor: "end")
        // Planned embedding tables: their average width under each panel.
        for (pi, entry) in plans.enumerated() where !entry.plan.embeddings.isEmpty {
            let text = entry.plan.embeddings.sorted { $0.key > $1.key }.map { path, e in
                String(format: "%@ %.2f bits", path.contains("word") ? "word emb" : "position emb", Double(e.totalBits) / Double(e.weightCount))
            }.joined(separator: ", ")
            s += Plot.text(x: left + Double(pi) * (panelW + gap), y: barY + 46, text, size: 10, anchor: "start")
        }
        return s + "</svg>\n"
    }
}

extension BitMapPicture {
    /// Every group of every encoder matrix: one row per matrix (block order, then Q, K, V, attn
    /// out, FFN in, FFN out), one cell per row group in group order, coloured by its bit-width
    /// (0 = pruned, drawn white with a grey edge).
    /// Planned embedding tables follow as one row each (their groups scaled to the same width).
    public static func groupsSVG(_ plan: BitPlan, title: String) -> String {
        let matrixRows = plan.matrices.compactMap { path, m in cell(of: path).map { (key: $0.block * columns.count + $0.column, cell: $0, matrix: m) } }
            .sorted { $0.key < $1.key }
        let tableLabels = ["word_embeddings": "word emb", "position_embeddings": "position emb"]
        let rows: [(label: String, bits: [Int])] = matrixRows.map { ("block \($0.cell.block) \(columns[$0.cell.column].label)", $0.matrix.bits) }
            + plan.embeddings.sorted { $0.key > $1.key }.map { path, e in
                (tableLabels.first { path.contains($0.key) }?.value ?? path, e.bits)
            }
        let widths = Array(Set(plan.candidates + plan.embeddingCandidates).filter { $0 > 0 }).sorted()
        let maxBits = max(1, (plan.candidates + plan.embeddingCandidates).max() ?? 8)
        func fill(_ bits: Int) -> String { bits == 0 ? "#ffffff" : Plot.viridis(Double(bits) / Double(maxBits)) }
        let groups = matrixRows.map(\.matrix.groups).max() ?? 1
        let cellW = max(2, min(8, 640 / Double(groups))), cellH = 11.0, left = 120.0, top = 50.0
        let width = left + cellW * Double(groups) + 30, height = top + cellH * Double(rows.count) + 70
        var s = Plot.header(width: width, height: height)
        s += Plot.text(x: 10, y: 22, title, size: 14, anchor: "start")
        s += Plot.text(x: left, y: top - 8, "row groups 0 ... \(groups - 1) of each matrix" + (plan.embeddings.isEmpty ? "" : "; every group of each table"),
                       size: 10, anchor: "start")
        for (r, row) in rows.enumerated() {
            let y = top + Double(r) * cellH
            s += Plot.text(x: left - 6, y: y + cellH - 2, row.label, size: 9, anchor: "end")
            let w = cellW * Double(groups) / Double(row.bits.count)
            // One rectangle per run of equal widths (keeps the file small).
            var g = 0
            let bits = row.bits
            while g < bits.count {
                var end = g + 1
                while end < bits.count && bits[end] == bits[g] { end += 1 }
                let b = bits[g], x = left + Double(g) * w
                s += "<rect x=\"\(Plot.f(x))\" y=\"\(Plot.f(y))\" width=\"\(Plot.f(w * Double(end - g)))\" height=\"\(Plot.f(cellH - 1))\" fill=\"\(fill(b))\"\(b == 0 ? " stroke=\"#bbb\" stroke-width=\"0.3\"" : "")/>\n"
                g = end
            }
        }
        // Legend: one swatch per width.
        var x = left
        let y = top + cellH * Double(rows.count) + 20
        for b in [0] + widths {
            s += "<rect x=\"\(Plot.f(x))\" y=\"\(Plot.f(y))\" width=\"14\" height=\"10\" fill=\"\(fill(b))\" stroke=\"#888\" stroke-width=\"0.5\"/>\n"
            s += Plot.text(x: x + 18, y: y + 9, b == 0 ? "0 bits (pruned)" : "\(b) bits", size: 10, anchor: "start")
            x += b == 0 ? 110 : 60
        }
        return s + "</svg>\n"
    }
}
