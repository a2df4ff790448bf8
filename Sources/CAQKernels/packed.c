// Packed mixed-precision inference kernels, part 1 (API and formulas in include/aqpacked.h):
// instruction-level dispatch, LSB-first bit packing and unpacking of 1-8-bit codes, and u8
// activation quantization. The int8 GEMM is in packed_gemm.c.
#include "packed_internal.h"

// aq_unpack_codes_f32 documents two roundings; keep the compiler from fusing them (clang honours
// the pragma, GCC, which contracts across statements by default, the function attribute).
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#define AQ_NO_CONTRACT
#elif defined(__GNUC__)
#define AQ_NO_CONTRACT __attribute__((optimize("fp-contract=off")))
#else
#define AQ_NO_CONTRACT
#endif

// ---- Dispatch ------------------------------------------------------------------------


// The int8 level is the CPU level (cpu.c). The unpacking path follows it too, with a knob of its
// own for the tests that compare the three unpackers: -1 = auto.
static int forced_unpack = -1;

int aq_int8_level(void) { return aq_cpu_level(); }

void aq_set_int8_level(int level) { aq_cpu_set_level(level); }

const char *aq_int8_level_name(int level) { return aq_cpu_level_name(level); }

// Auto: AVX2 (fastest measured) at level avx2 and up; on the portable level pdep when the CPU
// has it fast (not at a forced portable level), else the portable loop. Forced: the highest
// supported path <= the one asked for.
int aq_unpack_path(void) {
    int want = __atomic_load_n(&forced_unpack, __ATOMIC_RELAXED);
    int avx2 = aq_cpu_supports(AQ_CPU_AVX2), pdep = aq_cpu_has_bmi2();
    if (want < 0) {
        if (aq_cpu_level() >= AQ_CPU_AVX2) return 2;
        return pdep && !aq_cpu_pdep_is_slow() && !avx2 ? 1 : 0;
    }
    if (want >= 2 && avx2) return 2;
    return want >= 1 && pdep ? 1 : 0;
}

void aq_set_unpack_path(int path) { __atomic_store_n(&forced_unpack, path < 0 ? -1 : path, __ATOMIC_RELAXED); }


// ---- Bit-packed codes ------------------------------------------------------------------

size_t aq_packed_row_bytes(size_t n, int bits) {
    if (bits <= 0) return 0;
    return (n * (size_t)bits + 7) / 8;
}

void aq_pack_codes(const uint8_t *codes, size_t n, int bits, uint8_t *dst) {
    if (bits <= 0 || bits > 8) return;
    const uint32_t mask = (1u << bits) - 1u;
    uint32_t buf = 0;
    int have = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        buf |= (codes[i] & mask) << have;
        have += bits;
        while (have >= 8) {
            dst[o++] = (uint8_t)buf;
            buf >>= 8;
            have -= 8;
        }
    }
    if (have > 0) dst[o] = (uint8_t)buf; // the pad bits of buf are 0
}

// Reference: a bit buffer refilled one byte at a time, so it never reads past the row.
// dst[i] = code_i - off (mod 256); returns sum_i code_i.
static int32_t unpack_codes_portable(const uint8_t *src, size_t n, int bits, uint8_t off, uint8_t *dst) {
    const uint32_t mask = (1u << bits) - 1u;
    uint32_t buf = 0;
    int have = 0;
    int32_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (have < bits) {
            buf |= (uint32_t)*src++ << have;
            have += 8;
        }
        const uint8_t c = (uint8_t)(buf & mask);
        sum += c;
        dst[i] = (uint8_t)(c - off);
        buf >>= bits;
        have -= bits;
    }
    return sum;
}

#if defined(__x86_64__)
// SWAR helpers over the 8 bytes of a uint64 (x86 is little-endian: byte i is code i).
#define BYTES_LO16 0x00FF00FF00FF00FFull
#define BYTES_H 0x8080808080808080ull

// Bytewise x - y mod 256 without borrows crossing bytes (Hacker's Delight 2-18).
static inline uint64_t swar_sub_bytes(uint64_t x, uint64_t y) {
    return ((x | BYTES_H) - (y & ~BYTES_H)) ^ ((x ^ ~y) & BYTES_H);
}

// 8 codes of b bits are exactly b bytes; pdep spreads their 8b bits to the low b bits of 8 bytes.
// Groups whose 8-byte load would pass the end of the row load only their b bytes. The code sum
// runs in four u16 lanes, flushed every 64 groups (64 * 2 * 255 < 65536).
AQ_TGT_BMI2 static int32_t unpack_codes_bmi2(const uint8_t *src, size_t n, int bits, uint8_t off, uint8_t *dst) {
    const uint64_t spread = 0x0101010101010101ull * ((1u << bits) - 1u);
    const uint64_t offs = 0x0101010101010101ull * off;
    const size_t groups = n / 8, row = aq_packed_row_bytes(n, bits);
    int32_t sum = 0;
    uint64_t lanes = 0;
    for (size_t g = 0; g < groups; g++) {
        uint64_t w = 0;
        if (g * bits + 8 <= row) memcpy(&w, src + g * bits, 8);
        else memcpy(&w, src + g * bits, (size_t)bits);
        w = _pdep_u64(w, spread);
        lanes += (w & BYTES_LO16) + (w >> 8 & BYTES_LO16);
        if (off) w = swar_sub_bytes(w, offs);
        memcpy(dst + 8 * g, &w, 8);
        if ((g & 63) == 63 || g + 1 == groups) {
            lanes = (lanes & 0x0000FFFF0000FFFFull) + (lanes >> 16 & 0x0000FFFF0000FFFFull);
            sum += (int32_t)((lanes & 0xFFFFFFFFu) + (lanes >> 32));
            lanes = 0;
        }
    }
    if (n > 8 * groups)
        sum += unpack_codes_portable(src + groups * bits, n - 8 * groups, bits, off, dst + 8 * groups);
    return sum;
}

// Vector unpacking, 32 codes (4b bytes) per step. Each 128-bit lane makes 8 codes as u16 from its
// own b source bytes: pshufb puts the two bytes holding code i (bytes i*b/8 and i*b/8 + 1) in
// word i, a multiply by 2^(8 - i*b%8) and a shift right by 8 bring its bits down (the multiply
// stands in for a per-word variable shift, which AVX2 lacks), a mask keeps b bits. A step reads
// up to 3b + 16 bytes; the last steps run on a zero-padded copy of the row's end.
// Per bit-width b = 1...7 (row b - 1): the pshufb byte pairs and the multipliers described above.
static const int8_t unpack_shuffle[7][16] = {
    {0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1},
    {0, 1, 0, 1, 0, 1, 0, 1, 1, 2, 1, 2, 1, 2, 1, 2},
    {0, 1, 0, 1, 0, 1, 1, 2, 1, 2, 1, 2, 2, 3, 2, 3},
    {0, 1, 0, 1, 1, 2, 1, 2, 2, 3, 2, 3, 3, 4, 3, 4},
    {0, 1, 0, 1, 1, 2, 1, 2, 2, 3, 3, 4, 3, 4, 4, 5},
    {0, 1, 0, 1, 1, 2, 2, 3, 3, 4, 3, 4, 4, 5, 5, 6},
    {0, 1, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7},
};
static const int16_t unpack_scale[7][8] = {
    {256, 128, 64, 32, 16, 8, 4, 2},
    {256, 64, 16, 4, 256, 64, 16, 4},
    {256, 32, 4, 128, 16, 2, 64, 8},
    {256, 16, 256, 16, 256, 16, 256, 16},
    {256, 8, 64, 2, 16, 128, 4, 32},
    {256, 4, 16, 64, 256, 4, 16, 64},
    {256, 2, 4, 8, 16, 32, 64, 128},
};

typedef struct {
    __m256i shuffle, scale, mask;
    int bits;
} unpack_avx2_consts;

AQ_INLINE AQ_TGT_AVX2 __m256i unpack_step_avx2(const unpack_avx2_consts *c, const uint8_t *p) {
    if (c->bits == 8) return _mm256_loadu_si256((const __m256i *)p);
    __m256i h[2];
    for (int j = 0; j < 2; j++) {
        const uint8_t *q = p + 2 * c->bits * j;
        __m256i w = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)q)),
                                            _mm_loadu_si128((const __m128i *)(q + c->bits)), 1);
        w = _mm256_shuffle_epi8(w, c->shuffle);
        h[j] = _mm256_and_si256(_mm256_srli_epi16(_mm256_mullo_epi16(w, c->scale), 8), c->mask);
    }
    // packus interleaves the 128-bit lanes: codes 0-7, 16-23, 8-15, 24-31 -> reorder the qwords.
    return _mm256_permute4x64_epi64(_mm256_packus_epi16(h[0], h[1]), 0xD8);
}

AQ_TGT_AVX2 static int32_t unpack_codes_avx2(const uint8_t *src, size_t n, int bits, uint8_t off, uint8_t *dst) {
    const size_t row = aq_packed_row_bytes(n, bits), reach = bits == 8 ? 32 : 3 * (size_t)bits + 16;
    const int t = bits < 8 ? bits - 1 : 0;
    const unpack_avx2_consts c = {_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)unpack_shuffle[t])),
                                  _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)unpack_scale[t])),
                                  _mm256_set1_epi16((short)((1 << bits) - 1)), bits};
    const __m256i offv = _mm256_set1_epi8((char)off), zero = _mm256_setzero_si256();
    __m256i sums = zero;
    size_t i = 0, s = 0; // codes done, source bytes consumed (s = i * bits / 8)
    for (; i + 32 <= n && s + reach <= row; i += 32, s += 4 * (size_t)bits) {
        __m256i v = unpack_step_avx2(&c, src + s);
        sums = _mm256_add_epi64(sums, _mm256_sad_epu8(v, zero));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_sub_epi8(v, offv));
    }
    if (i < n) {
        // Fewer than `reach` bytes (or 32 codes) are left, so the steps below read under 2 * reach
        // + 4b < 128 bytes of the copy. Pad bits and zero bytes decode to code 0.
        uint8_t tail[128] = {0}, out[32];
        memcpy(tail, src + s, row - s);
        for (size_t t = 0; i < n; i += 32, t += 4 * (size_t)bits) {
            __m256i v = unpack_step_avx2(&c, tail + t);
            sums = _mm256_add_epi64(sums, _mm256_sad_epu8(v, zero));
            _mm256_storeu_si256((__m256i *)out, _mm256_sub_epi8(v, offv));
            memcpy(dst + i, out, n - i < 32 ? n - i : 32);
        }
    }
    int64_t lanes[4];
    _mm256_storeu_si256((__m256i *)lanes, sums);
    return (int32_t)(lanes[0] + lanes[1] + lanes[2] + lanes[3]);
}
#endif

// dst[i] = code_i - off (mod 256), returns sum_i code_i. Codes are 0 for bits 0 (pruned) and
// out-of-range bit-widths.
static int32_t unpack_codes(const uint8_t *src, size_t n, int bits, uint8_t off, uint8_t *dst) {
    if (bits <= 0 || bits > 8) {
        memset(dst, (uint8_t)(0 - off), n);
        return 0;
    }
#if defined(__x86_64__)
    switch (aq_unpack_path()) {
    case 1: return unpack_codes_bmi2(src, n, bits, off, dst);
    case 2: return unpack_codes_avx2(src, n, bits, off, dst);
    }
#endif
    return unpack_codes_portable(src, n, bits, off, dst);
}

int32_t aq_unpack_codes_s8(const uint8_t *src, size_t n, int bits, int offset, int8_t *dst) {
    return unpack_codes(src, n, bits, (uint8_t)offset, (uint8_t *)dst);
}

AQ_NO_CONTRACT void aq_unpack_codes_f32(const uint8_t *src, size_t n, int bits, float step, float lo, float *dst) {
    enum { CHUNK = 256 }; // a multiple of 8 codes, so every chunk starts on a byte
    uint8_t codes[CHUNK];
    const size_t chunk_bytes = aq_packed_row_bytes(CHUNK, bits);
    for (size_t i0 = 0; i0 < n; i0 += CHUNK) {
        size_t len = n - i0 < CHUNK ? n - i0 : CHUNK;
        unpack_codes(src, len, bits, 0, codes);
        src += chunk_bytes;
        for (size_t i = 0; i < len; i++) {
            float w = (float)codes[i] * step;
            dst[i0 + i] = w + lo;
        }
    }
}

// ---- Activation quantization --------------------------------------------------------------

// The clamps mirror _mm256_max_ps / _mm256_min_ps operand order, so a NaN lands on lo (and q = 0);
// the final clamp of r only matters for an infinite scale (hi - lo subnormal).
static int32_t quantize_row_portable(const float *x, size_t k, float lo, float hi, float s, uint8_t *q) {
    int32_t sum = 0;
    for (size_t i = 0; i < k; i++) {
        float v = x[i] > lo ? x[i] : lo;
        v = v < hi ? v : hi;
        float r = nearbyintf(s * (v - lo));
        r = r > 0.0f ? r : 0.0f;
        r = r < 255.0f ? r : 255.0f;
        q[i] = (uint8_t)r;
        sum += q[i];
    }
    return sum;
}

#if defined(__x86_64__)
AQ_TGT_AVX2 static int32_t quantize_row_avx2(const float *x, size_t k, float lo, float hi, float s, uint8_t *q) {
    const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi), vs = _mm256_set1_ps(s);
    const __m256 zero = _mm256_setzero_ps(), top = _mm256_set1_ps(255.0f);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    __m256i sums = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 32 <= k; i += 32) {
        __m256i r[4];
        for (int j = 0; j < 4; j++) {
            __m256 v = _mm256_min_ps(_mm256_max_ps(_mm256_loadu_ps(x + i + 8 * j), vlo), vhi);
            __m256 t = _mm256_round_ps(_mm256_mul_ps(vs, _mm256_sub_ps(v, vlo)),
                                       _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            r[j] = _mm256_cvttps_epi32(_mm256_min_ps(_mm256_max_ps(t, zero), top));
        }
        // packs/packus interleave 128-bit lanes: dwords of the result come out as 0,2,4,6,1,3,5,7.
        __m256i w = _mm256_packus_epi16(_mm256_packs_epi32(r[0], r[1]), _mm256_packs_epi32(r[2], r[3]));
        w = _mm256_permutevar8x32_epi32(w, order);
        _mm256_storeu_si256((__m256i *)(q + i), w);
        sums = _mm256_add_epi64(sums, _mm256_sad_epu8(w, _mm256_setzero_si256()));
    }
    int64_t lanes[4];
    _mm256_storeu_si256((__m256i *)lanes, sums);
    int32_t sum = (int32_t)(lanes[0] + lanes[1] + lanes[2] + lanes[3]);
    return sum + quantize_row_portable(x + i, k - i, lo, hi, s, q + i);
}
#endif

void aq_quantize_rows_u8(const float *x, size_t rows, size_t k, size_t ldx, float lo, float hi,
                         uint8_t *q, size_t ldq, int32_t *row_sums) {
    const int degenerate = !(hi > lo);
    const float s = degenerate ? 0.0f : 255.0f / (hi - lo);
#if defined(__x86_64__)
    const int avx2 = aq_int8_level() >= AQ_CPU_AVX2;
#endif
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * ldx;
        uint8_t *qr = q + r * ldq;
        int32_t sum = 0;
        if (degenerate) {
            memset(qr, 0, k);
#if defined(__x86_64__)
        } else if (avx2) {
            sum = quantize_row_avx2(xr, k, lo, hi, s, qr);
#endif
        } else {
            sum = quantize_row_portable(xr, k, lo, hi, s, qr);
        }
        if (ldq > k) memset(qr + k, 0, ldq - k);
        if (row_sums) row_sums[r] = sum;
    }
}

