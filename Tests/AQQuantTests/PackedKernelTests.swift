import AQCore
import CAQKernels
import Foundation
import XCTest

/// The packed inference kernels (Sources/CAQKernels/packed.c): bit-packing, u8 activation
/// quantization and the u8 x s8 GEMM. Every fast path is checked against the portable one
/// bit for bit; the portable one against Swift references written from the formulas in aqpacked.h.
final class PackedKernelTests: XCTestCase {
    /// Relative tolerance of the packed product against the dequantize-then-matmul reference,
    /// measured against the magnitude of the terms (float rounding of alpha/beta/gamma, of the
    /// dot product and of the dequantized operands is ~1e-7 of it).
    static let productTolerance = 1e-5
    static let lengths = [0, 1, 7, 8, 63, 64, 65, 100, 384]

    override func tearDown() {
        aq_set_int8_level(-1)
        aq_set_unpack_path(-1)
        super.tearDown()
    }

    // MARK: - Packing

    func testRowBytes() {
        XCTAssertEqual(aq_packed_row_bytes(384, 4), 192)
        XCTAssertEqual(aq_packed_row_bytes(7, 3), 3)
        XCTAssertEqual(aq_packed_row_bytes(65, 1), 9)
        XCTAssertEqual(aq_packed_row_bytes(384, 0), 0)
        for bits in 1...8 {
            for n in Self.lengths { XCTAssertEqual(aq_packed_row_bytes(n, Int32(bits)), (n * bits + 7) / 8) }
        }
    }

    /// The packed bytes are exactly the LSB-first bitstream of the header, pad bits 0.
    func testPackWritesTheLSBFirstBitstream() {
        var rng = PackedTestRNG(seed: 1)
        for bits in 1...8 {
            for n in Self.lengths {
                let codes = rng.codes(n, bits: bits)
                XCTAssertEqual(pack(codes, bits: bits), referenceBitstream(codes, bits: bits), "bits=\(bits) n=\(n)")
            }
        }
        // Hand value: 3-bit codes 5, 2, 7 -> bits 101 010 111 (LSB first) -> 0b11_010_101, 0b1.
        XCTAssertEqual(pack([5, 2, 7], bits: 3), [0b1101_0101, 0b0000_0001])
    }

    /// Unpacking (every available path) returns the codes minus the offset, their true sum, and
    /// the dequantized floats c * step + lo (two roundings).
    func testUnpackRoundTripEveryBitWidth() {
        var rng = PackedTestRNG(seed: 2)
        for path in availableUnpackPaths() {
            aq_set_unpack_path(Int32(path))
            for bits in 1...8 {
                for n in Self.lengths {
                    let codes = rng.codes(n, bits: bits)
                    let packed = pack(codes, bits: bits)
                    let trueSum = codes.reduce(0) { $0 + Int32($1) }
                    for offset in [0, 128] {
                        var s8 = [Int8](repeating: 99, count: n)
                        let sum = aq_unpack_codes_s8(packed, n, Int32(bits), Int32(offset), &s8)
                        XCTAssertEqual(sum, trueSum, "path=\(path) bits=\(bits) n=\(n)")
                        XCTAssertEqual(s8, codes.map { Int8(truncatingIfNeeded: Int($0) - offset) },
                                       "path=\(path) bits=\(bits) n=\(n) offset=\(offset)")
                    }
                    let step: Float = 0.037, lo: Float = -1.25
                    var w = [Float](repeating: .nan, count: n)
                    aq_unpack_codes_f32(packed, n, Int32(bits), step, lo, &w)
                    XCTAssertEqual(w, codes.map { Float($0) * step + lo }, "path=\(path) bits=\(bits) n=\(n)")
                }
            }
        }
    }

    /// The BMI2 (pdep) and AVX2 unpackers equal the portable loop on every length 0...200 (all
    /// head/tail splits of the vector loops) and an arbitrary offset.
    func testUnpackPathsAgreeWithPortable() throws {
        let paths = availableUnpackPaths()
        try XCTSkipUnless(paths.count > 1, "this CPU has neither BMI2 nor AVX2: no fast unpacker to compare with the portable one")
        var rng = PackedTestRNG(seed: 3)
        for bits in 1...8 {
            for n in 0...200 {
                let codes = rng.codes(n, bits: bits)
                let packed = pack(codes, bits: bits)
                var outputs: [[Int8]] = [], sums: [Int32] = []
                for path in paths {
                    aq_set_unpack_path(Int32(path))
                    var s8 = [Int8](repeating: 0, count: n)
                    sums.append(aq_unpack_codes_s8(packed, n, Int32(bits), 3, &s8))
                    outputs.append(s8)
                }
                for i in 1..<paths.count {
                    XCTAssertEqual(outputs[i], outputs[0], "path \(paths[i]) bits=\(bits) n=\(n)")
                    XCTAssertEqual(sums[i], sums[0], "path \(paths[i]) bits=\(bits) n=\(n)")
                }
            }
        }
    }

    // MARK: - Activation quantization

    /// Bit-exact with a Swift simulation of the header's formula, on the portable and AVX2 paths:
    /// values outside [lo, hi], exact ties (round half to even), zero padding and row sums.
    func testQuantizeRowsMatchesSwiftSimulation() {
        var rng = PackedTestRNG(seed: 4)
        let cases: [(rows: Int, k: Int, lo: Float, hi: Float)] = [
            (3, 1, -1, 2), (2, 31, -0.5, 0.75), (4, 100, -3.1, 2.9), (2, 384, -1, 1), (1, 70, 0, 255),
        ]
        for level in [0, aq_int8_level()] {
            aq_set_int8_level(Int32(level))
            for c in cases {
                let ldx = c.k + 3, ldq = (c.k + 63) / 64 * 64 + 64
                var x = (0..<(c.rows * ldx)).map { _ in c.lo - 0.3 * (c.hi - c.lo) + 1.6 * (c.hi - c.lo) * rng.unit() }
                if c.lo == 0 && c.hi == 255 { // scale 1: halves are ties
                    for i in 0..<x.count { x[i] = Float(i % 300) - 20.5 }
                }
                var q = [UInt8](repeating: 0xAA, count: c.rows * ldq)
                var sums = [Int32](repeating: -1, count: c.rows)
                aq_quantize_rows_u8(x, c.rows, c.k, ldx, c.lo, c.hi, &q, ldq, &sums)
                for r in 0..<c.rows {
                    let expected = (0..<c.k).map { simulateQuantize(x[r * ldx + $0], lo: c.lo, hi: c.hi) }
                    XCTAssertEqual(Array(q[(r * ldq)..<(r * ldq + c.k)]), expected, "level=\(level) k=\(c.k) row \(r)")
                    XCTAssertEqual(Array(q[(r * ldq + c.k)..<((r + 1) * ldq)]), [UInt8](repeating: 0, count: ldq - c.k))
                    XCTAssertEqual(sums[r], expected.reduce(0) { $0 + Int32($1) })
                }
            }
        }
        // Hand values at scale 1: ties go to the even neighbour.
        var q = [UInt8](repeating: 0, count: 6)
        aq_quantize_rows_u8([0.5, 1.5, 2.5, 254.5, -7, 300], 1, 6, 6, 0, 255, &q, 6, nil)
        XCTAssertEqual(q, [0, 2, 2, 254, 0, 255])
    }

    /// hi <= lo (a constant tensor) gives zeros.
    func testQuantizeRowsDegenerateRange() {
        var q = [UInt8](repeating: 7, count: 8)
        var sums: [Int32] = [5]
        aq_quantize_rows_u8([1, 2, 3, 4], 1, 4, 4, 0.5, 0.5, &q, 8, &sums)
        XCTAssertEqual(q, [UInt8](repeating: 0, count: 8))
        XCTAssertEqual(sums, [0])
    }

    // MARK: - GEMM

    /// Y equals the header's epilogue over an exact integer dot, bit for bit, on every path, for
    /// M and N that are not multiples of the register tiles.
    func testGemmEpilogueIsExactOnEveryPath() {
        var rng = PackedTestRNG(seed: 5)
        let ms = [1, 3, 128, 130], ns = [1, 5, 64, 70]
        let levels = availableLevels()
        for k in [64, 384, 448] {
            // One A and B per K; smaller shapes use their leading rows (same strides), so the
            // Swift dot products are computed once. Columns past K hold junk the GEMM must ignore.
            let mMax = ms.max()!, nMax = ns.max()!, lda = k + 64, ldb = k + 32
            let a = (0..<(mMax * lda)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let b = (0..<(nMax * ldb)).map { _ in Int8(truncatingIfNeeded: rng.next()) }
            let aSums = (0..<mMax).map { _ in Int32(rng.next() % 100_000) }
            let alpha = (0..<nMax).map { _ in 1e-3 * (rng.unit() - 0.5) }
            let beta = (0..<nMax).map { _ in 1e-2 * (rng.unit() - 0.5) }
            let gamma = (0..<nMax).map { _ in rng.unit() - 0.5 }
            let dots = integerDots(a, lda: lda, b, ldb: ldb, m: mMax, n: nMax, k: k)
            for m in ms {
                for n in ns {
                    let ldy = n + 3
                    for level in levels {
                        aq_set_int8_level(Int32(level))
                        var y = [Float](repeating: .nan, count: m * ldy)
                        aq_gemm_u8s8_f32(a, lda, aSums, b, ldb, m, n, k, 128, alpha, beta, gamma, &y, ldy)
                        var bad = 0
                        for i in 0..<m {
                            for j in 0..<n {
                                let inner = gamma[j].addingProduct(beta[j], Float(aSums[i]))
                                let expected = inner.addingProduct(alpha[j], Float(dots[i * nMax + j]))
                                if y[i * ldy + j].bitPattern != expected.bitPattern { bad += 1 }
                            }
                            for j in n..<ldy where !y[i * ldy + j].isNaN { bad += 1 } // no writes past N
                        }
                        XCTAssertEqual(bad, 0, "\(levelName(level)) M=\(m) N=\(n) K=\(k): \(bad) entries differ")
                    }
                }
            }
        }
    }

    /// aq_affine_epilogue: the GEMM's epilogue on given products, the same bits on every path
    /// (fmaf inlined as vfmadd or libm's), written to the mapped columns only.
    func testAffineEpilogueIsTheGemmEpilogueOnEveryPath() {
        var rng = PackedTestRNG(seed: 6)
        let (m, n, ldy) = (5, 9, 13)
        let d = (0..<(m * n)).map { _ in Float(Int32(truncatingIfNeeded: rng.next()) % 5_000_000) }
        let aSums = (0..<m).map { _ in Int32(rng.next() % 100_000) - 50_000 }
        let alpha = (0..<n).map { _ in 1e-3 * (rng.unit() - 0.5) }
        let beta = (0..<n).map { _ in 1e-2 * (rng.unit() - 0.5) }
        let gamma = (0..<n).map { _ in rng.unit() - 0.5 }
        let cols: [Int32] = [12, 0, 3, 4, 5, 11, 7, 8, 1]
        for level in availableLevels() {
            aq_set_int8_level(Int32(level))
            var y = [Float](repeating: .nan, count: m * ldy)
            aq_affine_epilogue(d, aSums, m, n, alpha, beta, gamma, &y, ldy, cols)
            var bad = 0
            for i in 0..<m {
                for j in 0..<n {
                    let expected = gamma[j].addingProduct(beta[j], Float(aSums[i])).addingProduct(alpha[j], d[i * n + j])
                    if y[i * ldy + Int(cols[j])].bitPattern != expected.bitPattern { bad += 1 }
                }
                for c in 0..<ldy where !cols.contains(Int32(c)) && !y[i * ldy + c].isNaN { bad += 1 }
            }
            XCTAssertEqual(bad, 0, "\(levelName(level)): \(bad) entries differ")
        }
    }

    /// The integer part is exact at the extremes: A = 255 against B = -128 / 127 (the widened AVX2
    /// path), B = +-64 (the largest |B| vpmaddubsw takes unsaturated), and the small |B| for which
    /// the AVX2 path sums several vpmaddubsw results in s16 lanes before widening.
    func testGemmIsExactAtSaturationBoundaries() {
        let m = 5, n = 19, k = 448
        let a = [UInt8](repeating: 255, count: m * k)
        let cases = [(-128, 128), (127, 128), (-64, 64), (64, 64), (31, 31), (-15, 15), (15, 15), (-1, 1), (1, 1), (0, 0)]
        for (value, bMaxAbs) in cases {
            let b = (0..<(n * k)).map { i in Int8(i % 3 == 2 ? -value / 2 : value) }
            let dots = integerDots(a, lda: k, b, ldb: k, m: m, n: n, k: k)
            let ones = [Float](repeating: 1, count: n), zeros = [Float](repeating: 0, count: n)
            let aSums = [Int32](repeating: 0, count: m)
            for level in availableLevels() {
                aq_set_int8_level(Int32(level))
                var y = [Float](repeating: .nan, count: m * n)
                aq_gemm_u8s8_f32(a, k, aSums, b, k, m, n, k, Int32(bMaxAbs), ones, zeros, zeros, &y, n)
                XCTAssertEqual(y, dots.map { Float($0) }, "\(levelName(level)) B=\(value)")
            }
        }
    }

    /// The packed product (unpack s8 + quantize u8 + GEMM with the epilogue of the header, +128
    /// correction for 8 bits) equals dequantize-then-matmul in Double within a tight tolerance, and
    /// every path gives Y bit-identical to the portable one.
    func testPackedProductMatchesDequantizedMatmul() {
        var rng = PackedTestRNG(seed: 6)
        let plans: [[Int]] = [[2], [3], [4], [5], [8], [0, 2, 8, 4, 3]]
        let shapes: [(m: Int, n: Int, k: Int)] = [(1, 5, 64), (3, 70, 448), (130, 5, 64), (17, 64, 384)]
        for plan in plans {
            for shape in shapes {
                let layer = QuantizedLayer(random: &rng, n: shape.n, k: shape.k, groupBits: plan)
                let x = (0..<(shape.m * shape.k)).map { _ in 2 * rng.unit() - 1.2 }
                let product = layer.packedProduct(x, m: shape.m)
                let reference = layer.dequantizedProduct(x, m: shape.m)
                var worst = 0.0
                for i in 0..<reference.values.count {
                    let error = abs(Double(product[0][i]) - reference.values[i]) / reference.magnitudes[i]
                    worst = max(worst, error)
                }
                XCTAssertLessThanOrEqual(worst, Self.productTolerance, "bits \(plan) shape \(shape): max rel error \(worst)")
                for level in 1..<product.count {
                    XCTAssertEqual(product[level].map(\.bitPattern), product[0].map(\.bitPattern),
                                   "bits \(plan) shape \(shape): \(levelName(availableLevels()[level])) differs from portable")
                }
            }
        }
    }

    /// Calls on disjoint column chunks from several threads (as the Swift caller splits N) give
    /// the same Y as one call: no shared scratch.
    /// The column-map variant writes result column j to Y column cols[j] (pruned rows skipped) and
    /// adds the integer correction wz[j] * a_sums[i] + c0[j] before the float epilogue: equal to a
    /// Swift reference, bit-identical on every path and prepacked; other columns untouched.
    func testColumnMapScattersEveryPath() {
        var rng = PackedTestRNG(seed: 11)
        let m = 19, n = 70, k = 448, ldy = 101
        let a = (0..<(m * k)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let b = (0..<(n * k)).map { _ in Int8(truncatingIfNeeded: rng.next() % 256) }
        let aSums = (0..<m).map { _ in Int32(rng.next() % 1000) }
        let alpha = (0..<n).map { _ in rng.unit() }, beta = (0..<n).map { _ in rng.unit() }
        let gamma = (0..<n).map { _ in rng.unit() }
        var targets = Array(0..<ldy)
        for i in stride(from: ldy - 1, to: 0, by: -1) { targets.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        let cols = targets.prefix(n).map(Int32.init)
        let wz = (0..<n).map { _ in Int32(rng.next() % 301) - 150 }
        let c0 = (0..<n).map { _ in Int32(rng.next() % 2_000_001) - 1_000_000 }
        let dots = integerDots(a, lda: k, b, ldb: k, m: m, n: n, k: k)
        var plain = [Float](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                let d = dots[i * n + j] + wz[j] * aSums[i] + c0[j]
                plain[i * n + j] = fmaf(alpha[j], Float(d), fmaf(beta[j], Float(aSums[i]), gamma[j]))
            }
        }
        for level in availableLevels() {
            aq_set_int8_level(Int32(level))
            var y = [Float](repeating: -7, count: m * ldy)
            aq_gemm_u8s8_f32_cols(a, k, aSums, b, k, m, n, k, 128, alpha, beta, gamma, &y, ldy, cols, wz, c0)
            for i in 0..<m {
                for j in 0..<n { XCTAssertEqual(y[i * ldy + Int(cols[j])].bitPattern, plain[i * n + j].bitPattern, levelName(level)) }
                for c in targets.suffix(ldy - n) { XCTAssertEqual(y[i * ldy + c], -7, "column \(c) is not a target") }
            }
            // B packed once, reused: the same bits (also after the level changed under it).
            b.withUnsafeBufferPointer { bp in
                let packed = aq_gemm_prepack_b(bp.baseAddress, k, n, k, 128)
                defer { aq_gemm_prepacked_free(packed) }
                for current in [level, 0] {
                    aq_set_int8_level(Int32(current))
                    var z = [Float](repeating: -7, count: m * ldy)
                    aq_gemm_u8s8_f32_prepacked(a, k, aSums, packed, m, alpha, beta, gamma, &z, ldy, cols, wz, c0)
                    XCTAssertEqual(z.map(\.bitPattern), y.map(\.bitPattern), "prepacked at \(levelName(level)), run at \(levelName(current))")
                }
            }
        }
        aq_set_int8_level(-1)
    }

    func testConcurrentCallsOnDisjointColumns() {
        var rng = PackedTestRNG(seed: 7)
        let m = 37, n = 200, k = 384, chunks = 4
        let a = (0..<(m * k)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let b = (0..<(n * k)).map { _ in Int8(truncatingIfNeeded: rng.next() % 16) }
        let aSums = (0..<m).map { _ in Int32(rng.next() % 1000) }
        let alpha = (0..<n).map { _ in rng.unit() }, beta = (0..<n).map { _ in rng.unit() }
        let gamma = (0..<n).map { _ in rng.unit() }
        var whole = [Float](repeating: 0, count: m * n)
        aq_gemm_u8s8_f32(a, k, aSums, b, k, m, n, k, 15, alpha, beta, gamma, &whole, n)
        let y = UnsafeMutableBufferPointer<Float>.allocate(capacity: m * n)
        defer { y.deallocate() }
        y.initialize(repeating: .nan)
        let yBase = y.baseAddress!
        a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in
                DispatchQueue.concurrentPerform(iterations: chunks) { c in
                    let n0 = c * n / chunks, n1 = (c + 1) * n / chunks
                    aq_gemm_u8s8_f32(a.baseAddress, k, aSums, b.baseAddress! + n0 * k, k, m, n1 - n0, k, 15,
                                     Array(alpha[n0..<n1]), Array(beta[n0..<n1]), Array(gamma[n0..<n1]),
                                     yBase + n0, n)
                }
            }
        }
        XCTAssertEqual(Array(y).map(\.bitPattern), whole.map(\.bitPattern))
    }

    /// One level for every kernel (cpu.c): the int8 level is the CPU level, a cap picks the
    /// highest supported level below it, -1 restores the default (AQBERT_CPU's cap, if any).
    func testLevelControls() {
        let best = aq_cpu_best_level()
        XCTAssertTrue((0...3).contains(best))
        XCTAssertEqual(aq_cpu_supports(best), 1)
        aq_set_int8_level(0)
        XCTAssertEqual(aq_int8_level(), 0)
        XCTAssertEqual(aq_cpu_level(), 0)
        XCTAssertEqual(aq_has_avx2(), 0, "the elementwise kernels follow the same level")
        aq_set_int8_level(99)
        XCTAssertEqual(aq_int8_level(), best)
        aq_cpu_set_level(-1)
        let env = aq_cpu_env_level()
        XCTAssertEqual(aq_int8_level(), env < 0 ? best : (0...env).last { aq_cpu_supports($0) != 0 }!)
        for level in Int32(0)...Int32(AQ_CPU_MAX) where aq_cpu_supports(level) != 0 {
            aq_cpu_set_level(level)
            XCTAssertEqual(aq_cpu_level(), level)
        }
        aq_cpu_set_level(-1)
        XCTAssertEqual(levelName(0), "portable")
        XCTAssertEqual(levelName(3), "avx512-vnni")
        XCTAssertEqual(levelName(7), "unknown")
        aq_set_unpack_path(0)
        XCTAssertEqual(aq_unpack_path(), 0)
    }
}

// MARK: - Helpers

/// The int8 levels this CPU runs (whatever AQBERT_CPU caps the default at), portable first.
private func availableLevels() -> [Int] {
    (0...Int(AQ_CPU_MAX)).filter { aq_cpu_supports(Int32($0)) != 0 }
}

private func availableUnpackPaths() -> [Int] {
    let paths = (0...2).filter { path in
        aq_set_unpack_path(Int32(path))
        return aq_unpack_path() == path
    }
    aq_set_unpack_path(-1)
    return paths
}

private func levelName(_ level: Int) -> String { String(cString: aq_int8_level_name(Int32(level))) }

private func pack(_ codes: [UInt8], bits: Int) -> [UInt8] {
    var out = [UInt8](repeating: 0xEE, count: aq_packed_row_bytes(codes.count, Int32(bits)))
    aq_pack_codes(codes, codes.count, Int32(bits), &out)
    return out
}

private func referenceBitstream(_ codes: [UInt8], bits: Int) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: (codes.count * bits + 7) / 8)
    for (i, c) in codes.enumerated() {
        for j in 0..<bits where (c >> j) & 1 == 1 {
            let t = i * bits + j
            out[t / 8] |= 1 << (t % 8)
        }
    }
    return out
}

private func simulateQuantize(_ x: Float, lo: Float, hi: Float) -> UInt8 {
    let s: Float = 255 / (hi - lo)
    var v = x > lo ? x : lo
    v = v < hi ? v : hi
    return UInt8((s * (v - lo)).rounded(.toNearestOrEven))
}

private func integerDots(_ a: [UInt8], lda: Int, _ b: [Int8], ldb: Int, m: Int, n: Int, k: Int) -> [Int32] {
    var dots = [Int32](repeating: 0, count: m * n)
    a.withUnsafeBufferPointer { a in
        b.withUnsafeBufferPointer { b in
            for i in 0..<m {
                for j in 0..<n {
                    var s: Int32 = 0
                    for t in 0..<k { s &+= Int32(a[i * lda + t]) &* Int32(b[j * ldb + t]) }
                    dots[i * n + j] = s
                }
            }
        }
    }
    return dots
}

/// A weight matrix W [n, k] in row groups with per-group bits and ranges, stored packed, and the
/// two ways of multiplying activations by it.
private struct QuantizedLayer {
    let n: Int, k: Int
    var bits: [Int] = [], lo: [Float] = [], step: [Float] = [], packed: [[UInt8]] = []
    var bias: [Float] = []

    init(random rng: inout PackedTestRNG, n: Int, k: Int, groupBits: [Int]) {
        self.n = n
        self.k = k
        for row in 0..<n {
            let b = groupBits[row * groupBits.count / n]
            let low = -0.5 - rng.unit(), high = 0.2 + rng.unit()
            bits.append(b)
            lo.append(b == 0 ? 0 : low)
            step.append(b == 0 ? 0 : (high - low) / Float((1 << b) - 1))
            packed.append(b == 0 ? [] : pack(rng.codes(k, bits: b), bits: b))
            bias.append(rng.unit() - 0.5)
        }
    }

    /// Quantize x per tensor to u8, unpack W to s8 (8 bits: codes - 128), one GEMM per int8 level.
    /// Returns Y [m, n] for each available level (index 0 = portable).
    func packedProduct(_ x: [Float], m: Int) -> [[Float]] {
        let kp = (k + 63) / 64 * 64
        let aLo = x.min()!, aHi = x.max()!, aStep = (aHi - aLo) / 255
        var q = [UInt8](repeating: 0, count: m * kp), aSums = [Int32](repeating: 0, count: m)
        aq_quantize_rows_u8(x, m, k, k, aLo, aHi, &q, kp, &aSums)
        var b = [Int8](repeating: 0, count: n * kp)
        var alpha = [Float](), beta = [Float](), gamma = [Float]()
        var bMaxAbs = 0
        for o in 0..<n {
            let offset = bits[o] == 8 ? 128 : 0
            var codeSum: Int32 = 0
            if bits[o] > 0 {
                codeSum = b.withUnsafeMutableBufferPointer {
                    aq_unpack_codes_s8(packed[o], k, Int32(bits[o]), Int32(offset), $0.baseAddress! + o * kp)
                }
                bMaxAbs = max(bMaxAbs, bits[o] == 8 ? 128 : (1 << bits[o]) - 1)
            }
            // y = a_step*step*sum q*c + a_step*lo*sum q + a_lo*step*sum c + a_lo*lo*K + bias, and
            // sum q*c = dot + offset*sum q.
            let s = Double(aStep), st = Double(step[o]), l = Double(lo[o]), al = Double(aLo)
            alpha.append(Float(s * st))
            beta.append(Float(s * (l + Double(offset) * st)))
            gamma.append(Float(al * st * Double(codeSum) + al * l * Double(k) + Double(bias[o])))
        }
        let levels = availableLevels()
        return levels.map { level in
            aq_set_int8_level(Int32(level))
            defer { aq_set_int8_level(-1) }
            var y = [Float](repeating: .nan, count: m * n)
            aq_gemm_u8s8_f32(q, kp, aSums, b, kp, m, n, kp, Int32(bMaxAbs), alpha, beta, gamma, &y, n)
            return y
        }
    }

    /// Dequantized activations q * a_step + a_lo and weights (aq_unpack_codes_f32), Double matmul
    /// + bias. magnitudes: sum_k |x w| + |bias| per output, the scale of the tolerance.
    func dequantizedProduct(_ x: [Float], m: Int) -> (values: [Double], magnitudes: [Double]) {
        let aLo = x.min()!, aHi = x.max()!, aStep = (aHi - aLo) / 255
        var q = [UInt8](repeating: 0, count: m * k)
        aq_quantize_rows_u8(x, m, k, k, aLo, aHi, &q, k, nil)
        let xd = q.map { Double(Float($0) * aStep + aLo) }
        var w = [Double](repeating: 0, count: n * k)
        for o in 0..<n where bits[o] > 0 {
            var row = [Float](repeating: 0, count: k)
            aq_unpack_codes_f32(packed[o], k, Int32(bits[o]), step[o], lo[o], &row)
            for t in 0..<k { w[o * k + t] = Double(row[t]) }
        }
        var values = [Double](repeating: 0, count: m * n), magnitudes = values
        xd.withUnsafeBufferPointer { xd in
            w.withUnsafeBufferPointer { w in
                for i in 0..<m {
                    for o in 0..<n {
                        var s = Double(bias[o]), mag = abs(Double(bias[o]))
                        for t in 0..<k {
                            let p = xd[i * k + t] * w[o * k + t]
                            s += p
                            mag += abs(p)
                        }
                        values[i * n + o] = s
                        magnitudes[i * n + o] = mag
                    }
                }
            }
        }
        return (values, magnitudes)
    }
}

/// Deterministic test data from SplitMix64.
private struct PackedTestRNG {
    var generator: SplitMix64
    init(seed: UInt64) { generator = SplitMix64(state: seed) }

    mutating func next() -> UInt64 { generator.next() }

    /// Uniform in [0, 1).
    mutating func unit() -> Float { Float(next() >> 40) / Float(1 << 24) }

    mutating func codes(_ n: Int, bits: Int) -> [UInt8] {
        (0..<n).map { _ in UInt8(truncatingIfNeeded: next() & ((1 << UInt64(bits)) - 1)) }
    }
}
