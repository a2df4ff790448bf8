import AQSafeTensors
import CAQKernels
import Foundation

/// An error reading or writing a packed model; the message names the file and tensor.
public struct PackedModelError: Error, CustomStringConvertible, Equatable, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The on-disk layout of a packed mixed-precision model (Docs/PACKED_FORMAT.md, format versions 1
/// and 2; version 2 adds planned embedding tables, and a file without any is written as version 1).
///
/// Per planned encoder matrix `P` (`[O, K]`, `G` row groups of `R = O / G` rows):
/// - `P.bits`   U8 `[G]`: the bit-width of each group (0 = pruned), as in `quantization_config`;
/// - `P.ranges` F16 `[kept, 2]`: `(lo, hi)` of each kept group, in group order;
/// - `P.codes`  U8 `[bytes]`: each kept group's `R` rows in group order, each row `K` codes of
///   `b` bits as an LSB-first bitstream of `ceil(K * b / 8)` bytes. Pruned groups have no bytes.
/// Per embedding table `E` (`[V, C]`, quantized per row) at the model's `embedding_bits`:
/// `E.codes` U8 `[V, C]`, `E.ranges` F16 `[V, 2]`.
/// Per planned embedding table `E` (version 2; groups of `R` rows, the last one possibly shorter):
/// `E.bits` U8 `[G]`; `E.ranges` F16 `[kept rows, 2]`: `(lo, hi)` of each row of a kept group,
/// in row order; `E.codes` U8 `[bytes]`: those rows, each `C` codes as a bitstream of
/// `ceil(C * b / 8)` bytes. Rows of pruned groups have neither (they are 0).
/// Everything else (biases, LayerNorm, pooler, head, matrices the plan leaves out) is F32 under
/// its Hugging Face name.
public enum PackedFormat {
    /// The newest format version (planned embedding tables); `version(for:)` is the one a file gets.
    public static let version = 2
    /// Versions this build reads.
    public static let readableVersions = ["1", "2"]
    /// The format's name in `__metadata__`.
    public static let formatName = "aq-bert-packed"

    /// The lowest version that holds `plan`: 2 with planned embedding tables, else 1.
    public static func version(for plan: BitPlan) -> Int { plan.embeddings.isEmpty ? 1 : 2 }
    /// Metadata key of the tensors' checksum (`checksum(of:)`), verified on load. Files written
    /// before it existed lack it and load unverified.
    public static let checksumKey = "tensors_sha256"

    /// The `__metadata__` export writes for `plan`: format, version and the checksum.
    public static func metadata(checksum: String, plan: BitPlan) -> [String: String] {
        ["format": formatName, "version": String(version(for: plan)), checksumKey: checksum]
    }

    /// SHA-256 over every tensor in UTF-8 byte order of the names: the name, a 0 byte, then the
    /// tensor's stored (little-endian) bytes. Independent of where the tensors sit in the file.
    public static func checksum(names: [String], bytes: (String, (UnsafeRawBufferPointer) -> Void) throws -> Void) rethrows -> String {
        var hasher = SHA256.Hasher()
        for name in names.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            hasher.update(Array(name.utf8) + [0])
            try bytes(name) { hasher.update($0) }
        }
        return hasher.finalize()
    }
    public static let embeddingSuffixes = ["embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
                                           "embeddings.token_type_embeddings.weight"]

    /// Bytes of one packed row of `columns` codes at `bits` bits.
    public static func rowBytes(columns: Int, bits: Int) -> Int { (columns * bits + 7) / 8 }

    /// Bytes of the codes of a planned matrix of `columns` columns.
    public static func codeBytes(_ matrix: BitPlan.Matrix, columns: Int) -> Int {
        let rowsPerGroup = matrix.rowsPerGroup
        return matrix.bits.reduce(0) { $0 + ($1 == 0 ? 0 : rowsPerGroup * rowBytes(columns: columns, bits: $1)) }
    }

    /// Bytes of the codes of a planned embedding table (`C` columns each row).
    public static func codeBytes(_ table: BitPlan.Embedding) -> Int {
        (0..<table.groups).reduce(0) { $0 + table.rows(ofGroup: $1).count * rowBytes(columns: table.shape[1], bits: table.bits[$1]) }
    }

    /// Rows of a planned embedding table that have codes (and a range): those of kept groups.
    public static func keptRows(_ table: BitPlan.Embedding) -> Int {
        (0..<table.groups).reduce(0) { $0 + (table.bits[$1] > 0 ? table.rows(ofGroup: $1).count : 0) }
    }

    /// The key under which `entries` (a plan's matrices or tables) holds a checkpoint tensor
    /// name: the name as it is, `bert.`- or `distilbert.`-prefixed (the two families' bare names
    /// never collide).
    static func key<Entry>(of name: String, in entries: [String: Entry]) -> String? {
        [name, "bert." + name, "distilbert." + name].first { entries[$0] != nil }
    }

    /// The plan's embedding entry for a checkpoint tensor name (as `planned`).
    public static func plannedEmbedding(_ name: String, in plan: BitPlan) -> BitPlan.Embedding? {
        plannedEmbeddingKey(name, in: plan).flatMap { plan.embeddings[$0] }
    }

    /// The plan's key (table path) for a checkpoint tensor name.
    public static func plannedEmbeddingKey(_ name: String, in plan: BitPlan) -> String? { key(of: name, in: plan.embeddings) }

    /// The plan's entry for a checkpoint tensor name (prefixed or bare, as `key(of:in:)`).
    public static func planned(_ name: String, in plan: BitPlan) -> BitPlan.Matrix? {
        plannedKey(name, in: plan).flatMap { plan.matrices[$0] }
    }

    /// The plan's key (matrix path) for a checkpoint tensor name, as `planned` finds it.
    public static func plannedKey(_ name: String, in plan: BitPlan) -> String? { key(of: name, in: plan.matrices) }

    public static func isEmbeddingTable(_ name: String) -> Bool { embeddingSuffixes.contains { name.hasSuffix($0) } }

    /// The tensors (name, dtype, shape) a packed `model.safetensors` holds for a model whose
    /// checkpoint tensors are `parameters`, quantized with `plan` and `embeddingBits` (0: fp32 tables).
    public static func tensorSpecs(plan: BitPlan, parameters: [(name: String, shape: [Int])], embeddingBits: Int)
        -> [(name: String, dtype: SafeTensorsDType, shape: [Int])] {
        var specs: [(name: String, dtype: SafeTensorsDType, shape: [Int])] = []
        for (name, shape) in parameters {
            if let m = planned(name, in: plan), shape.count == 2 {
                specs.append((name + ".bits", .u8, [m.groups]))
                specs.append((name + ".ranges", .f16, [m.bits.filter { $0 > 0 }.count, 2]))
                specs.append((name + ".codes", .u8, [codeBytes(m, columns: shape[1])]))
            } else if let e = plannedEmbedding(name, in: plan), shape.count == 2 {
                specs.append((name + ".bits", .u8, [e.groups]))
                specs.append((name + ".ranges", .f16, [keptRows(e), 2]))
                specs.append((name + ".codes", .u8, [codeBytes(e)]))
            } else if embeddingBits > 0, isEmbeddingTable(name), shape.count == 2 {
                specs.append((name + ".codes", .u8, shape))
                specs.append((name + ".ranges", .f16, [shape[0], 2]))
            } else {
                specs.append((name, .f32, shape))
            }
        }
        return specs
    }

    /// The exact size of the packed `model.safetensors` (header included).
    public static func fileBytes(plan: BitPlan, parameters: [(name: String, shape: [Int])], embeddingBits: Int) throws -> Int {
        try SafeTensorsWriter.fileSize(of: tensorSpecs(plan: plan, parameters: parameters, embeddingBits: embeddingBits),
                                       metadata: metadata(checksum: String(repeating: "0", count: 64), plan: plan))
    }

    /// Codes of `values` at `bits` bits, exactly as quantization-aware training quantizes
    /// (`aq_quantize_codes`, quantize.c): the range is the min rounded down and the max rounded
    /// up to fp16, s = (2^b - 1) / (hi - lo), code = round_half_even(s * (x - lo)). A constant
    /// group gets lo = hi = fp16(value) and codes 0. Returns the range as fp16 bits.
    static func encode(_ values: UnsafeBufferPointer<Float>, bits: Int) throws -> (codes: [UInt8], lo: UInt16, hi: UInt16) {
        guard let base = values.baseAddress, !values.isEmpty else { return ([], 0, 0) }
        var codes = [UInt8](repeating: 0, count: values.count)
        var lo: Float = 0, hi: Float = 0
        aq_quantize_codes(base, &codes, values.count, Int32(bits), &lo, &hi)
        let l = floatToHalfBits(lo), h = floatToHalfBits(hi)  // exact: the range is fp16 already
        guard halfBitsToFloat(l).isFinite, halfBitsToFloat(h).isFinite else {
            throw PackedModelError("weights outside the fp16 range (min \(lo), max \(hi))")
        }
        return (codes, l, h)
    }

    /// Codes of `values` at `bits` bits within learned bounds `lo` < `hi` (already fp16, from
    /// `LearnedRanges.effective`), exactly as `Tape.fakeQuantize(_:groupBits:ranges:)` quantizes:
    /// code = clamp(round_half_even(s * (x - lo)), 0, 2^b - 1). Returns the range as fp16 bits.
    static func encode(_ values: UnsafeBufferPointer<Float>, bits: Int, lo: Float, hi: Float) throws -> (codes: [UInt8], lo: UInt16, hi: UInt16) {
        let l = floatToHalfBits(lo), h = floatToHalfBits(hi)
        guard halfBitsToFloat(l) == lo, halfBitsToFloat(h) == hi, lo.isFinite, hi.isFinite, hi > lo else {
            throw PackedModelError("learned range [\(lo), \(hi)] is not a finite fp16 range")
        }
        guard let base = values.baseAddress, !values.isEmpty else { return ([], l, h) }
        var codes = [UInt8](repeating: 0, count: values.count)
        aq_quantize_codes_range(base, &codes, values.count, Int32(bits), lo, hi)
        return (codes, l, h)
    }

    /// The dequantization step and offset of an fp16 range: w = code * step + lo (step 0 for a
    /// constant group), computed as the simulation does (step = 1 / s).
    public static func step(lo: Float, hi: Float, bits: Int) -> Float {
        guard hi > lo, bits > 0 else { return 0 }
        return 1 / (Float((1 << bits) - 1) / (hi - lo))
    }
}
