import Foundation

extension ComparisonResults {
    /// Metric against encoder-weight size, one colour per method, error bars = spread over
    /// seeds; fp32 (far to the right) as a dashed horizontal line.
    public func sizeSVG() -> String {
        let quantized = rows.filter { $0.method != .fp32 }
        let fp32 = row(.fp32, budget: nil)
        let width = 720.0, height = 440.0, left = 70.0, right = 250.0, top = 40.0, bottom = 60.0
        let xs = quantized.map(\.sizeMiB), ys = quantized.flatMap { [$0.metricMean - $0.metricStd, $0.metricMean + $0.metricStd] }
            + (fp32.map { [$0.metricMean] } ?? [])
        let (x0, x1, xStep) = Plot.niceRange(xs.min() ?? 0, xs.max() ?? 1)
        let (y0, y1, yStep) = Plot.niceRange(ys.min() ?? 0, ys.max() ?? 100)
        func px(_ x: Double) -> Double { left + (x - x0) / (x1 - x0) * (width - left - right) }
        func py(_ y: Double) -> Double { height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom) }
        var s = Plot.header(width: width, height: height)
        s += Plot.text(x: left, y: 24, "\(task): \(metric) against encoder weight size (mean ± std over seeds)", size: 15, anchor: "start")
        s += Plot.axes(left: left, right: width - right, top: top, bottom: height - bottom,
                       xTicks: Plot.ticks(x0, x1, xStep).map { (px($0), String(format: "%g", $0)) },
                       yTicks: Plot.ticks(y0, y1, yStep).map { (py($0), String(format: "%g", $0)) },
                       xLabel: "encoder weights (MiB)", yLabel: metric)
        if let f = fp32 {
            s += "<line x1=\"\(Plot.f(left))\" y1=\"\(Plot.f(py(f.metricMean)))\" x2=\"\(Plot.f(width - right))\" y2=\"\(Plot.f(py(f.metricMean)))\" stroke=\"#444\" stroke-dasharray=\"6 4\"/>\n"
        }
        var legendY = top + 10
        for (i, method) in ComparisonMethod.allCases.enumerated() {
            let color = Plot.palette[i % Plot.palette.count]
            let points = quantized.filter { $0.method == method }.sorted { $0.sizeMiB < $1.sizeMiB }
            if method == .fp32 {
                guard let f = fp32 else { continue }
                s += "<line x1=\"\(Plot.f(width - right + 16))\" y1=\"\(Plot.f(legendY))\" x2=\"\(Plot.f(width - right + 36))\" y2=\"\(Plot.f(legendY))\" stroke=\"#444\" stroke-dasharray=\"6 4\"/>\n"
                s += Plot.text(x: width - right + 42, y: legendY + 4, String(format: "fp32 (%.1f MiB): %.2f", f.sizeMiB, f.metricMean), size: 11, anchor: "start")
                legendY += 20
                continue
            }
            guard !points.isEmpty else { continue }
            if points.count > 1 {
                let path = points.map { "\(Plot.f(px($0.sizeMiB))),\(Plot.f(py($0.metricMean)))" }.joined(separator: " ")
                s += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\" opacity=\"0.6\"/>\n"
            }
            for p in points {
                let x = px(p.sizeMiB)
                if p.metricStd > 0 {
                    s += "<line x1=\"\(Plot.f(x))\" y1=\"\(Plot.f(py(p.metricMean - p.metricStd)))\" x2=\"\(Plot.f(x))\" y2=\"\(Plot.f(py(p.metricMean + p.metricStd)))\" stroke=\"\(color)\" stroke-width=\"1.5\"/>\n"
                }
                s += Plot.marker(index: i, x: x, y: py(p.metricMean), color: color)
            }
            s += Plot.marker(index: i, x: width - right + 26, y: legendY, color: color)
            s += Plot.text(x: width - right + 42, y: legendY + 4, method.shortTitle, size: 11, anchor: "start")
            legendY += 20
        }
        return s + "</svg>\n"
    }
}
