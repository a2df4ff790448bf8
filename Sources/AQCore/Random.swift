/// SplitMix64 (Steele, Lea & Flood 2014): the state advances by the golden gamma and each
/// output is the state mixed. aqbert's one copy: it seeds `SeededGenerator`, decides data
/// splits (`DataSplits`), drives the fuzzer's mutations and makes test data.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64

    public init(state: UInt64) { self.state = state }

    @inline(__always)
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return Self.mix(state)
    }

    /// The output function: splitmix64's finaliser of `z`.
    @inline(__always)
    public static func mix(_ z: UInt64) -> UInt64 {
        var z = z
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Deterministic generator (xoshiro256**, seeded through SplitMix64). All randomness in
/// aqbert flows from one of these, created from the user's `--seed`.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64
    private var spareNormal: Float?

    public init(seed: UInt64) {
        var sm = SplitMix64(state: seed)
        s0 = sm.next(); s1 = sm.next(); s2 = sm.next(); s3 = sm.next()
    }

    @inline(__always)
    public mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = (s3 << 45) | (s3 >> 19)
        return result
    }

    /// Uniform in [0, 1) with 24 bits of precision.
    @inline(__always)
    public mutating func nextFloat() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }

    /// Uniform in [0, 1) with 53 bits of precision.
    @inline(__always)
    public mutating func nextDouble() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }

    /// Standard normal (Box-Muller, computed in Double).
    public mutating func nextNormal() -> Float {
        if let z = spareNormal {
            spareNormal = nil
            return z
        }
        var u1 = nextDouble()
        while u1 <= .leastNormalMagnitude { u1 = nextDouble() }
        let u2 = nextDouble()
        let r = (-2 * _log(u1)).squareRoot()
        let a = 2 * Double.pi * u2
        spareNormal = Float(r * _sin(a))
        return Float(r * _cos(a))
    }

    /// Fills `mask` with 1 (keep, probability 1 - p) or 0 (drop, probability p). Draws one
    /// 64-bit value per two elements (32-bit uniforms), so masks of millions of elements are cheap.
    public mutating func fillKeepMask(_ mask: UnsafeMutablePointer<UInt8>, count: Int, dropProbability p: Float) {
        let threshold = UInt64((Double(p) * 4_294_967_296.0).rounded())
        var i = 0
        while i + 1 < count {
            let r = next()
            mask[i] = (r & 0xFFFF_FFFF) < threshold ? 0 : 1
            mask[i + 1] = (r >> 32) < threshold ? 0 : 1
            i += 2
        }
        if i < count { mask[i] = (next() & 0xFFFF_FFFF) < threshold ? 0 : 1 }
    }

    /// A new independent generator derived from this one (for per-worker streams).
    public mutating func split() -> SeededGenerator { SeededGenerator(seed: next()) }

    /// Fisher-Yates in place: for i = n-1 down to 1, swap element i with element next() % (i + 1).
    /// Every seeded order in the project (batches, plan shuffles, subsets) comes from here.
    public mutating func shuffle<T>(_ elements: inout [T]) {
        for i in stride(from: elements.count - 1, to: 0, by: -1) { elements.swapAt(i, Int(next() % UInt64(i + 1))) }
    }
}

#if canImport(Glibc)
import Glibc
@inline(__always) private func _log(_ x: Double) -> Double { Glibc.log(x) }
@inline(__always) private func _sin(_ x: Double) -> Double { Glibc.sin(x) }
@inline(__always) private func _cos(_ x: Double) -> Double { Glibc.cos(x) }
#else
import Foundation
@inline(__always) private func _log(_ x: Double) -> Double { Foundation.log(x) }
@inline(__always) private func _sin(_ x: Double) -> Double { Foundation.sin(x) }
@inline(__always) private func _cos(_ x: Double) -> Double { Foundation.cos(x) }
#endif
