/// Element types of the safetensors format (the `dtype` field of a header entry).
///
/// The FP8/FP4/FP6 and complex dtypes of newer safetensors versions are recognised by name and
/// rejected with an "unsupported dtype" error; anything else is an "unknown dtype" error.
public enum SafeTensorsDType: String, Sendable, CaseIterable {
    case f64 = "F64"
    case f32 = "F32"
    case f16 = "F16"
    case bf16 = "BF16"
    case i64 = "I64"
    case i32 = "I32"
    case i16 = "I16"
    case i8 = "I8"
    case u64 = "U64"
    case u32 = "U32"
    case u16 = "U16"
    case u8 = "U8"
    case bool = "BOOL"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .f64, .i64, .u64: return 8
        case .f32, .i32, .u32: return 4
        case .f16, .bf16, .i16, .u16: return 2
        case .i8, .u8, .bool: return 1
        }
    }

    /// F64, F32, F16, BF16.
    public var isFloatingPoint: Bool {
        switch self {
        case .f64, .f32, .f16, .bf16: return true
        default: return false
        }
    }

    /// I64 ... U8 (not BOOL).
    public var isInteger: Bool {
        switch self {
        case .i64, .i32, .i16, .i8, .u64, .u32, .u16, .u8: return true
        default: return false
        }
    }

    /// Position in the Rust `safetensors::Dtype` enum, whose declaration order is "increasing
    /// alignment". The Rust serializer lays tensors out by this rank descending, then by name.
    var serializationRank: Int {
        switch self {
        case .bool: return 0
        case .u8: return 1
        case .i8: return 2
        // F8_E5M2 = 3, F8_E4M3 = 4
        case .i16: return 5
        case .u16: return 6
        case .f16: return 7
        case .bf16: return 8
        case .i32: return 9
        case .u32: return 10
        case .f32: return 11
        case .f64: return 12
        case .i64: return 13
        case .u64: return 14
        }
    }

    /// Dtype names that exist in the safetensors format but that this library does not read.
    static let unsupportedNames: Set<String> = [
        "F8_E5M2", "F8_E4M3", "F8_E4M3FN", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "F8_E8M0", "F8_E8M0FNU",
        "F4", "F6_E2M3", "F6_E3M2", "C64", "C128",
    ]
}

// MARK: - Scalar conversions (bit exact, no Float16 type needed: also builds on Intel macOS)

/// IEEE 754 binary16 bits -> Float (exact: every half is representable; NaN payloads kept).
@inline(__always)
public func halfBitsToFloat(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exponent = UInt32(h >> 10) & 0x1F
    let mantissa = UInt32(h & 0x03FF)
    if exponent == 0 {
        if mantissa == 0 { return Float(bitPattern: sign) }
        // Subnormal: mantissa * 2^-24, exact in Float.
        let magnitude = Float(mantissa) * 0x1p-24
        return sign == 0 ? magnitude : -magnitude
    }
    if exponent == 0x1F {
        return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
    }
    return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
}

/// Float -> IEEE 754 binary16 bits, round to nearest, ties to even; overflow gives ±inf,
/// NaN stays a (quiet) NaN with the sign and the top payload bits kept.
@inline(__always)
public func floatToHalfBits(_ value: Float) -> UInt16 {
    let bits = value.bitPattern
    let sign = UInt16(truncatingIfNeeded: (bits >> 16) & 0x8000)
    let magnitude = bits & 0x7FFF_FFFF
    if magnitude >= 0x7F80_0000 {
        if magnitude == 0x7F80_0000 { return sign | 0x7C00 }
        return sign | 0x7E00 | UInt16(truncatingIfNeeded: (magnitude >> 13) & 0x03FF)
    }
    if magnitude < 0x3880_0000 {
        // Below the smallest normal half (2^-14): the result is a subnormal (or zero, or rounds up
        // to the smallest normal 0x0400, whose bit pattern is the same integer). x * 2^24 is exact.
        let scaled = (Float(bitPattern: magnitude) * 0x1p24).rounded(.toNearestOrEven)
        return sign | UInt16(scaled)
    }
    // Normal range: rebias the exponent (127 -> 15) and keep the top 10 mantissa bits.
    var h = (magnitude >> 13) &- (112 << 10)
    let remainder = magnitude & 0x1FFF
    if remainder > 0x1000 || (remainder == 0x1000 && (h & 1) == 1) { h &+= 1 }
    if h >= 0x7C00 { return sign | 0x7C00 }
    return sign | UInt16(truncatingIfNeeded: h)
}

/// bfloat16 bits -> Float (exact).
@inline(__always)
public func bfloat16BitsToFloat(_ b: UInt16) -> Float {
    Float(bitPattern: UInt32(b) << 16)
}

/// Float -> bfloat16 bits, round to nearest, ties to even (as torch does); NaN stays a quiet NaN.
@inline(__always)
public func floatToBFloat16Bits(_ value: Float) -> UInt16 {
    let bits = value.bitPattern
    if value.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
    let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
    return UInt16(truncatingIfNeeded: rounded >> 16)
}
