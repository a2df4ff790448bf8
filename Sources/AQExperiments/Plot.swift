import Foundation

/// Small SVG helpers (no dependencies).
enum Plot {
    static let palette = ["#444444", "#8c564b", "#1f77b4", "#9467bd", "#7f7f7f", "#d62728"]

    static func f(_ x: Double) -> String { String(format: "%.1f", x) }

    static func header(width: Double, height: Double) -> String {
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(f(width))\" height=\"\(f(height))\" viewBox=\"0 0 \(f(width)) \(f(height))\" font-family=\"Helvetica, Arial, sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n"
    }

    static func escaped(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    static func text(x: Double, y: Double, _ s: String, size: Double, anchor: String, color: String = "#000") -> String {
        "<text x=\"\(f(x))\" y=\"\(f(y))\" font-size=\"\(f(size))\" text-anchor=\"\(anchor)\" fill=\"\(color)\">\(escaped(s))</text>\n"
    }

    /// A distinct marker shape per series: circle, square, triangle, diamond, ...
    static func marker(index: Int, x: Double, y: Double, color: String) -> String {
        switch index % 4 {
        case 0: return "<circle cx=\"\(f(x))\" cy=\"\(f(y))\" r=\"5\" fill=\"\(color)\"/>\n"
        case 1: return "<rect x=\"\(f(x - 4.5))\" y=\"\(f(y - 4.5))\" width=\"9\" height=\"9\" fill=\"\(color)\"/>\n"
        case 2: return "<polygon points=\"\(f(x)),\(f(y - 6)) \(f(x - 5.5)),\(f(y + 4)) \(f(x + 5.5)),\(f(y + 4))\" fill=\"\(color)\"/>\n"
        default: return "<polygon points=\"\(f(x)),\(f(y - 6)) \(f(x + 6)),\(f(y)) \(f(x)),\(f(y + 6)) \(f(x - 6)),\(f(y))\" fill=\"\(color)\"/>\n"
        }
    }

    static func axes(left: Double, right: Double, top: Double, bottom: Double, xTicks: [(Double, String)], yTicks: [(Double, String)],
                     xLabel: String, yLabel: String) -> String {
        var s = "<line x1=\"\(f(left))\" y1=\"\(f(bottom))\" x2=\"\(f(right))\" y2=\"\(f(bottom))\" stroke=\"#000\"/>\n"
        s += "<line x1=\"\(f(left))\" y1=\"\(f(top))\" x2=\"\(f(left))\" y2=\"\(f(bottom))\" stroke=\"#000\"/>\n"
        for (x, label) in xTicks {
            s += "<line x1=\"\(f(x))\" y1=\"\(f(bottom))\" x2=\"\(f(x))\" y2=\"\(f(bottom + 5))\" stroke=\"#000\"/>\n"
            s += text(x: x, y: bottom + 19, label, size: 11, anchor: "middle")
        }
        for (y, label) in yTicks {
            s += "<line x1=\"\(f(left - 5))\" y1=\"\(f(y))\" x2=\"\(f(right))\" y2=\"\(f(y))\" stroke=\"#ddd\"/>\n"
            s += text(x: left - 8, y: y + 4, label, size: 11, anchor: "end")
        }
        s += text(x: (left + right) / 2, y: bottom + 42, xLabel, size: 12, anchor: "middle")
        s += "<text x=\"\(f(left - 48))\" y=\"\(f((top + bottom) / 2))\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 \(f(left - 48)) \(f((top + bottom) / 2)))\">\(escaped(yLabel))</text>\n"
        return s
    }

    /// A range covering [lo, hi] with round ends and a round tick step (about 5 ticks).
    static func niceRange(_ lo: Double, _ hi: Double) -> (Double, Double, Double) {
        var (a, b) = (lo, hi)
        if !(b > a) { a -= 1; b += 1 }
        let raw = (b - a) / 5
        let magnitude = pow(10, (log10(raw)).rounded(.down))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        return ((a / step).rounded(.down) * step, (b / step).rounded(.up) * step, step)
    }

    static func ticks(_ lo: Double, _ hi: Double, _ step: Double) -> [Double] {
        stride(from: lo, through: hi + step * 1e-9, by: step).map { $0 }
    }

    /// Viridis at t in [0, 1] (linear between 5 stops of matplotlib's map).
    static func viridis(_ t: Double) -> String {
        let stops: [(Double, Double, Double)] = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)]
        let x = min(1, max(0, t)) * Double(stops.count - 1)
        let i = min(stops.count - 2, Int(x)), u = x - Double(i)
        let (a, b) = (stops[i], stops[i + 1])
        let c = [a.0 + (b.0 - a.0) * u, a.1 + (b.1 - a.1) * u, a.2 + (b.2 - a.2) * u].map { Int($0.rounded()) }
        return String(format: "#%02x%02x%02x", c[0], c[1], c[2])
    }
}
