import AQCore

/// Seeded byte-level mutations of a valid input, in the manner of AFL/libFuzzer's default
/// mutators: bit flips, interesting bytes and integers, deletions, duplications, insertions,
/// truncation, splices from another seed, and numbers in text replaced by edge-case numbers.
/// The same (seed, iteration) always gives the same input, so a crashing input can be made again
/// from its iteration number alone.
public struct Mutator {
    var generator: SplitMix64

    /// A generator for one input: splitmix64 seeded from the run seed, the target and the iteration.
    public init(seed: UInt64, target: String, iteration: Int) {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a of the target name
        for b in target.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        generator = SplitMix64(state: seed ^ h ^ (UInt64(iteration) &* 0x9E37_79B9_7F4A_7C15))
    }

    mutating func next() -> UInt64 { generator.next() }

    mutating func below(_ n: Int) -> Int { n <= 1 ? 0 : Int(next() % UInt64(n)) }

    static let interestingBytes: [UInt8] = [0x00, 0xFF, 0x7F, 0x80, 0x22, 0x5C, 0x7B, 0x7D, 0x5B, 0x5D, 0x2C, 0x3A,
                                            0x0A, 0x0D, 0x09, 0x20, 0x2D, 0x30, 0x39, 0x65, 0x2E, 0xC3, 0xE2, 0xF0]
    static let interestingNumbers = ["0", "-1", "-0", "1e309", "-1e309", "NaN", "Infinity", "99999999999999999999",
                                     "4294967296", "2147483648", "9223372036854775807", "-9223372036854775808",
                                     "1.5", "1e-400", "007", "", "1000000000000", "65536", "-2147483649", "0.0"]
    static let interestingIntegers: [UInt64] = [0, 1, 7, 8, 255, 256, 65535, 1 << 31, 1 << 32, 100_000_000,
                                                UInt64(Int64.max), UInt64.max, UInt64.max - 7]

    /// One mutated input from `seeds` (1 to 4 stacked mutations of one of them).
    public mutating func mutate(_ seeds: [[UInt8]]) -> [UInt8] {
        guard !seeds.isEmpty else { return [] }
        var data = seeds[below(seeds.count)]
        for _ in 0..<(1 + below(4)) { apply(&data, seeds: seeds) }
        return data
    }

    mutating func apply(_ data: inout [UInt8], seeds: [[UInt8]]) {
        let n = data.count
        switch below(11) {
        case 0 where n > 0:  // flip a bit
            data[below(n)] ^= UInt8(1 << below(8))
        case 1 where n > 0:  // an interesting byte
            data[below(n)] = Self.interestingBytes[below(Self.interestingBytes.count)]
        case 2 where n > 0:  // delete a range
            let at = below(n), count = min(n - at, 1 + below(16))
            data.removeSubrange(at..<(at + count))
        case 3 where n > 0:  // duplicate a range
            let at = below(n), count = min(n - at, 1 + below(32))
            data.insert(contentsOf: data[at..<(at + count)], at: below(n + 1))
        case 4:  // insert random bytes
            let bytes = (0..<(1 + below(8))).map { _ in UInt8(truncatingIfNeeded: next()) }
            data.insert(contentsOf: bytes, at: below(n + 1))
        case 5 where n > 0:  // truncate
            data.removeSubrange(below(n)...)
        case 6:  // a number in text -> an edge-case number
            replaceNumber(&data)
        case 7 where n > 0:  // splice a range from another seed
            let other = seeds[below(seeds.count)]
            guard !other.isEmpty else { return }
            let from = below(other.count), count = min(other.count - from, 1 + below(64))
            let at = below(n)
            let end = min(n, at + below(64))
            data.replaceSubrange(at..<end, with: other[from..<(from + count)])
        case 8 where n > 1:  // swap two bytes
            data.swapAt(below(n), below(n))
        case 9 where n >= 8:  // an interesting little-endian integer (lengths, offsets)
            let at = below(n - 7)
            let v = Self.interestingIntegers[below(Self.interestingIntegers.count)]
            for i in 0..<8 { data[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
        case 10 where n > 0:  // repeat one line or record many times
            let at = below(n)
            guard let end = data[at...].firstIndex(of: 0x0A) else { return }
            let line = data[at...end]
            data.insert(contentsOf: Array(repeating: Array(line), count: 1 + below(8)).joined(), at: at)
        default:
            data.append(UInt8(truncatingIfNeeded: next()))
        }
    }

    /// Replaces the k-th run of ASCII digits (with its sign and fraction) by an edge-case number.
    mutating func replaceNumber(_ data: inout [UInt8]) {
        var runs: [Range<Int>] = []
        var i = 0
        while i < data.count {
            if (0x30...0x39).contains(data[i]) {
                var start = i
                if start > 0 && data[start - 1] == 0x2D { start -= 1 }
                while i < data.count && ((0x30...0x39).contains(data[i]) || data[i] == 0x2E || data[i] == 0x65) { i += 1 }
                runs.append(start..<i)
            } else {
                i += 1
            }
        }
        guard !runs.isEmpty else { return }
        let run = runs[below(runs.count)]
        data.replaceSubrange(run, with: Array(Self.interestingNumbers[below(Self.interestingNumbers.count)].utf8))
    }
}

/// Runs a target over a range of iterations; `started(i)` is called before input `i` runs (the
/// supervising process uses it to know which input a crash came from).
public enum Fuzzer {
    /// The input of iteration `i` (deterministic in seed, target and i).
    public static func input(_ target: FuzzTarget, seed: UInt64, iteration: Int) -> [UInt8] {
        var m = Mutator(seed: seed, target: target.name, iteration: iteration)
        return m.mutate(target.seeds)
    }

    /// Counts of inputs the parser accepted and rejected (threw for); `finished(i, accepted)`
    /// follows each input.
    public static func run(_ target: FuzzTarget, seed: UInt64, iterations: Range<Int>, started: (Int) -> Void,
                           finished: (Int, Bool) -> Void = { _, _ in }) -> (accepted: Int, rejected: Int) {
        var accepted = 0, rejected = 0
        for i in iterations {
            started(i)
            switch target.run(input(target, seed: seed, iteration: i)) {
            case .success:
                accepted += 1
                finished(i, true)
            case .failure:
                rejected += 1
                finished(i, false)
            }
        }
        return (accepted, rejected)
    }
}
