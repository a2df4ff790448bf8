// Packed mixed-precision inference kernels, part 2: the u8 x s8 GEMM with its float epilogue
// (API and formulas in include/aqpacked.h).
//
// Legend: M = activation rows (tokens), N = output features (weight rows), K = reduction length,
// kq = K / 4 "k-quads" (vpdpbusd, and vpmaddubsw + vpmaddwd, reduce 4 consecutive k into one
// int32 lane), kp = K / 2 "k-pairs" (vpmaddwd on s16), MR x NR = register tile of a micro-kernel,
// NC = columns of B packed per block (sized for L2).
//
// The GEMM follows the GotoBLAS/BLIS loop nest (Goto & van de Geijn, "Anatomy of high-performance
// matrix multiplication", 2008) without K blocking: B is repacked per NC block into NR-wide panels
// in which one vector holds NR/lanes columns x 4 consecutive k (the layout vpdpbusd wants, as in
// oneDNN's VNNI "4n" reorders); A is read in place, each micro-kernel step broadcasting one
// 4-byte k-quad of an A row. Accumulation is exact int32; the float epilogue is one expression,
// fmaf(alpha, (float)dot, fmaf(beta, (float)a_sum, gamma)), identical in every path.
#include "packed_internal.h"

// ---- u8 x s8 GEMM: portable reference ----------------------------------------------------------

// The oracle of the tests and the path on CPUs without AVX2 (and for K not a multiple of 64).
static void gemm_portable(const uint8_t *A, size_t lda, const int32_t *a_sums, const int8_t *B, size_t ldb,
                          size_t M, size_t N, size_t K, const float *alpha, const float *beta,
                          const float *gamma, float *Y, size_t ldy, const int32_t *ycol,
                          const int32_t *wz, const int32_t *c0) {
    for (size_t m = 0; m < M; m++) {
        const uint8_t *a = A + m * lda;
        const float as = (float)a_sums[m];
        for (size_t n = 0; n < N; n++) {
            const int8_t *b = B + n * ldb;
            int32_t dot = 0;
            for (size_t t = 0; t < K; t++) dot += (int32_t)a[t] * (int32_t)b[t];
            if (wz) dot += wz[n] * a_sums[m];
            if (c0) dot += c0[n];
            Y[m * ldy + (ycol ? (size_t)ycol[n] : n)] = fmaf(alpha[n], (float)dot, fmaf(beta[n], as, gamma[n]));
        }
    }
}

// ---- the epilogue alone (aq_affine_epilogue) ----------------------------------------------------

// One body, compiled twice: with FMA the compiler emits vfmadd for fmaf, without it calls libm's
// fmaf; both are the correctly rounded fused multiply-add.
#define AQ_EPILOGUE_BODY                                                                                 \
    for (size_t m = 0; m < M; m++) {                                                                     \
        const float as = (float)a_sums[m];                                                               \
        const float *dm = d + m * N;                                                                     \
        float *ym = Y + m * ldy;                                                                         \
        for (size_t n = 0; n < N; n++)                                                                   \
            ym[y_cols ? (size_t)y_cols[n] : n] = fmaf(alpha[n], dm[n], fmaf(beta[n], as, gamma[n]));    \
    }

static void epilogue_portable(const float *d, const int32_t *a_sums, size_t M, size_t N, const float *alpha,
                              const float *beta, const float *gamma, float *Y, size_t ldy, const int32_t *y_cols) {
    AQ_EPILOGUE_BODY
}

#if defined(__x86_64__)
AQ_TGT_AVX2 static void epilogue_fma(const float *d, const int32_t *a_sums, size_t M, size_t N, const float *alpha,
                                     const float *beta, const float *gamma, float *Y, size_t ldy, const int32_t *y_cols) {
    AQ_EPILOGUE_BODY
}
#endif

void aq_affine_epilogue(const float *d, const int32_t *a_sums, size_t M, size_t N, const float *alpha,
                        const float *beta, const float *gamma, float *Y, size_t ldy, const int32_t *y_cols) {
#if defined(__x86_64__)
    if (aq_int8_level() >= AQ_CPU_AVX2) {
        epilogue_fma(d, a_sums, M, N, alpha, beta, gamma, Y, ldy, y_cols);
        return;
    }
#endif
    epilogue_portable(d, a_sums, M, N, alpha, beta, gamma, Y, ldy, y_cols);
}

#if defined(__x86_64__)

// ---- u8 x s8 GEMM: blocked x86-64 paths ---------------------------------------------------------

// Shared shape of one call, passed to the block drivers.
typedef struct {
    const uint8_t *A;
    size_t lda;
    const int32_t *a_sums;
    const int8_t *B;
    size_t ldb, M, N, K;
    const float *alpha, *beta, *gamma;
    float *Y;
    size_t ldy;
    int b_max_abs;
    const int32_t *ycol;  // NULL: column n of the result is Y column n; else Y column ycol[n]
    const int32_t *wz, *c0;  // NULL or per column: the integer part is dot + wz[n]*a_sums[m] + c0[n]
} gemm_args;

// Packed B per block: re-read from L2 for every MR rows of A. 512 KB is half of a 1 MB L2 (the
// usual size on x86 cores since 2017), leaving room for the streamed rows of A; cores with a
// 256 KB L2 read the block from L3 instead, at some cost.
enum { B_BLOCK_BYTES = 512 * 1024 };

// ---- u8 x s8 GEMM: packing B --------------------------------------------------------------------

// 8x8 transpose of 32-bit lanes: out[t] = (r0[t], r1[t], ..., r7[t]).
AQ_INLINE AQ_TGT_AVX2 void transpose8x8_epi32(__m256i r[8]) {
    __m256i t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for (int h = 0; h < 2; h++) {
        u[4 * h + 0] = _mm256_unpacklo_epi64(t[4 * h + 0], t[4 * h + 2]);
        u[4 * h + 1] = _mm256_unpackhi_epi64(t[4 * h + 0], t[4 * h + 2]);
        u[4 * h + 2] = _mm256_unpacklo_epi64(t[4 * h + 1], t[4 * h + 3]);
        u[4 * h + 3] = _mm256_unpackhi_epi64(t[4 * h + 1], t[4 * h + 3]);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm256_permute2x128_si256(u[i], u[4 + i], 0x20);
        r[4 + i] = _mm256_permute2x128_si256(u[i], u[4 + i], 0x31);
    }
}

// Quad panels: columns n0 .. n0+nb-1 of B (nb <= NC) into panels of nr columns, zero-padded:
//   dst[p*nr*K + (t*nr + j)*4 + u] = B[(n0 + p*nr + j)*ldb + 4t + u].
// K is a multiple of 32: each step transposes 8 rows x 8 k-quads.
AQ_TGT_AVX2 static void pack_b_quads(const int8_t *B, size_t ldb, size_t n0, size_t nb, size_t N, size_t K,
                                     size_t nr, int8_t *dst) {
    const size_t kq = K / 4;
    for (size_t j0 = 0; j0 < nb; j0 += 8) {
        int8_t *panel = dst + (j0 / nr) * nr * K;
        const size_t jj = j0 % nr;
        const int8_t *rows[8];
        for (int i = 0; i < 8; i++) rows[i] = n0 + j0 + i < N && j0 + i < nb ? B + (n0 + j0 + i) * ldb : NULL;
        for (size_t t = 0; t < kq; t += 8) {
            __m256i r[8];
            for (int i = 0; i < 8; i++)
                r[i] = rows[i] ? _mm256_loadu_si256((const __m256i *)(rows[i] + 4 * t)) : _mm256_setzero_si256();
            transpose8x8_epi32(r);
            for (int i = 0; i < 8; i++) _mm256_storeu_si256((__m256i *)(panel + ((t + i) * nr + jj) * 4), r[i]);
        }
    }
    // Zero whole 8-column groups past nb in the last panel.
    const size_t padded = (nb + nr - 1) / nr * nr;
    for (size_t j0 = (nb + 7) / 8 * 8; j0 < padded; j0 += 8) {
        int8_t *panel = dst + (j0 / nr) * nr * K;
        for (size_t t = 0; t < kq; t++) memset(panel + (t * nr + j0 % nr) * 4, 0, 32);
    }
}

// Pair panels of s16 (the widened AVX2 path): dst[p*nr*K + (t*nr + j)*2 + u] = B[(n0+p*nr+j)*ldb + 2t + u].
AQ_TGT_AVX2 static void pack_b_pairs_s16(const int8_t *B, size_t ldb, size_t n0, size_t nb, size_t N, size_t K,
                                         size_t nr, int16_t *dst) {
    const size_t kp = K / 2;
    const size_t padded = (nb + nr - 1) / nr * nr;
    for (size_t j0 = 0; j0 < padded; j0 += 8) {
        int16_t *panel = dst + (j0 / nr) * nr * K;
        const size_t jj = j0 % nr;
        const int8_t *rows[8];
        for (int i = 0; i < 8; i++) rows[i] = n0 + j0 + i < N && j0 + i < nb ? B + (n0 + j0 + i) * ldb : NULL;
        for (size_t t = 0; t < kp; t += 8) {
            __m256i r[8];
            for (int i = 0; i < 8; i++)
                r[i] = rows[i] ? _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(rows[i] + 2 * t)))
                               : _mm256_setzero_si256();
            transpose8x8_epi32(r);
            for (int i = 0; i < 8; i++) _mm256_storeu_si256((__m256i *)(panel + ((t + i) * nr + jj) * 2), r[i]);
        }
    }
}

// ---- u8 x s8 GEMM: 256-bit epilogue --------------------------------------------------------------

// Y[m0+i][n0 .. n0+nr) for i < mr from acc[i][v] (v = 8-column vector index); nr <= 8*nv.
AQ_INLINE AQ_TGT_AVX2 void epilogue256(const gemm_args *g, size_t m0, int mr, size_t n0, size_t nr, int nv,
                                       __m256i acc[][4]) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int v = 0; v < nv; v++) {
        const size_t c = n0 + 8 * (size_t)v;
        if (8 * (size_t)v >= nr) break;
        const size_t left = nr - 8 * (size_t)v, width = left < 8 ? left : 8;  // columns in this vector
        const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)width), lane);
        const __m256 al = _mm256_maskload_ps(g->alpha + c, mask), be = _mm256_maskload_ps(g->beta + c, mask),
                     ga = _mm256_maskload_ps(g->gamma + c, mask);
        const __m256i wz = g->wz ? _mm256_maskload_epi32(g->wz + c, mask) : _mm256_setzero_si256(),
                      c0 = g->c0 ? _mm256_maskload_epi32(g->c0 + c, mask) : _mm256_setzero_si256();
        for (int i = 0; i < mr; i++) {
            __m256 as = _mm256_set1_ps((float)g->a_sums[m0 + i]);
            __m256i d = _mm256_add_epi32(_mm256_add_epi32(acc[i][v], c0),
                                         _mm256_mullo_epi32(wz, _mm256_set1_epi32(g->a_sums[m0 + i])));
            __m256 y = _mm256_fmadd_ps(al, _mm256_cvtepi32_ps(d), _mm256_fmadd_ps(be, as, ga));
            float *row = g->Y + (m0 + i) * g->ldy;
            if (g->ycol) {
                float t[8];
                _mm256_storeu_ps(t, y);
                for (size_t l = 0; l < width; l++) row[g->ycol[c + l]] = t[l];
            } else {
                _mm256_maskstore_ps(row + c, mask, y);
            }
        }
    }
}

AQ_INLINE uint32_t load_quad(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

// ---- Level 1: AVX2, vpmaddubsw + vpmaddwd (narrow B) ------------------------------------------------

enum { MR_AVX2 = 4, NV_AVX2 = 2, NR_AVX2 = 8 * NV_AVX2 };

// acc[i][v] = sum over k-quads of A row i x panel vector v. |b| <= 64 keeps vpmaddubsw unsaturated
// (each s16 lane is a0*b0 + a1*b1, at most 2 * 255 * 64 = 32640). Small codes leave headroom: the
// s16 results of `chunk` consecutive k-quads are summed with vpaddw before one vpmaddwd widens
// them, chunk * 2 * 255 * b_max_abs <= 32767, which takes a vpmaddwd off the two multiply ports
// for most k-quads (4-bit codes: chunk = 4, 2-bit: 21).
AQ_INLINE AQ_TGT_AVX2 void tile_avx2(const uint8_t *a, size_t lda, const int8_t *bp, size_t kq, size_t chunk,
                                     int mr, __m256i acc[][4]) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i c[MR_AVX2][NV_AVX2];
    for (int i = 0; i < mr; i++)
        for (int v = 0; v < NV_AVX2; v++) c[i][v] = _mm256_setzero_si256();
    if (chunk < 2) { // no headroom: widen every k-quad
        for (size_t t = 0; t < kq; t++) {
            __m256i b[NV_AVX2];
            for (int v = 0; v < NV_AVX2; v++)
                b[v] = _mm256_load_si256((const __m256i *)(bp + (t * NR_AVX2 + 8 * v) * 4));
            for (int i = 0; i < mr; i++) {
                const __m256i av = _mm256_set1_epi32((int)load_quad(a + i * lda + 4 * t));
                for (int v = 0; v < NV_AVX2; v++)
                    c[i][v] = _mm256_add_epi32(c[i][v], _mm256_madd_epi16(_mm256_maddubs_epi16(av, b[v]), ones));
            }
        }
    } else {
        for (size_t t0 = 0; t0 < kq; t0 += chunk) {
            const size_t t1 = kq - t0 < chunk ? kq : t0 + chunk;
            __m256i s[MR_AVX2][NV_AVX2];
            for (int i = 0; i < mr; i++)
                for (int v = 0; v < NV_AVX2; v++) s[i][v] = _mm256_setzero_si256();
            for (size_t t = t0; t < t1; t++) {
                __m256i b[NV_AVX2];
                for (int v = 0; v < NV_AVX2; v++)
                    b[v] = _mm256_load_si256((const __m256i *)(bp + (t * NR_AVX2 + 8 * v) * 4));
                for (int i = 0; i < mr; i++) {
                    const __m256i av = _mm256_set1_epi32((int)load_quad(a + i * lda + 4 * t));
                    for (int v = 0; v < NV_AVX2; v++) s[i][v] = _mm256_add_epi16(s[i][v], _mm256_maddubs_epi16(av, b[v]));
                }
            }
            for (int i = 0; i < mr; i++)
                for (int v = 0; v < NV_AVX2; v++) c[i][v] = _mm256_add_epi32(c[i][v], _mm256_madd_epi16(s[i][v], ones));
        }
    }
    for (int i = 0; i < mr; i++)
        for (int v = 0; v < NV_AVX2; v++) acc[i][v] = c[i][v];
}

// Instantiates the micro-kernel for each row count 1...MR (a constant, so its loops unroll).
#define AQ_TILE_CASES4(CALL) \
    switch (mr) { \
    case 1: CALL(1); break; \
    case 2: CALL(2); break; \
    case 3: CALL(3); break; \
    default: CALL(4); break; \
    }
#define AQ_TILE_CASES6(CALL) \
    switch (mr) { \
    case 1: CALL(1); break; \
    case 2: CALL(2); break; \
    case 3: CALL(3); break; \
    case 4: CALL(4); break; \
    case 5: CALL(5); break; \
    default: CALL(6); break; \
    }
#define AQ_TILE_CASES8(CALL) \
    switch (mr) { \
    case 1: CALL(1); break; \
    case 2: CALL(2); break; \
    case 3: CALL(3); break; \
    case 4: CALL(4); break; \
    case 5: CALL(5); break; \
    case 6: CALL(6); break; \
    case 7: CALL(7); break; \
    default: CALL(8); break; \
    }

AQ_TGT_AVX2 static void block_avx2(const gemm_args *g, const int8_t *packed, size_t n0, size_t nb) {
    const size_t kq = g->K / 4;
    const size_t chunk = g->b_max_abs <= 0 ? kq : (size_t)(32767 / (2 * 255 * g->b_max_abs));
    for (size_t m = 0; m < g->M; m += MR_AVX2) {
        const int mr = (int)(g->M - m < MR_AVX2 ? g->M - m : MR_AVX2);
        for (size_t p0 = 0; p0 < nb; p0 += NR_AVX2) {
            const int8_t *bp = packed + p0 * g->K;
            const size_t nr = nb - p0 < NR_AVX2 ? nb - p0 : NR_AVX2;
            __m256i acc[MR_AVX2][4];
            const uint8_t *a = g->A + m * g->lda;
#define CALL(R) tile_avx2(a, g->lda, bp, kq, chunk, R, acc); epilogue256(g, m, R, n0 + p0, nr, NV_AVX2, acc)
            AQ_TILE_CASES4(CALL)
#undef CALL
        }
    }
}

// ---- Level 1: AVX2 widened to s16, vpmaddwd (|B| up to 128) -----------------------------------------

// a16: the mr A rows widened to u16, row i at a16 + i*K; bp: s16 pair panel.
AQ_INLINE AQ_TGT_AVX2 void tile_avx2_wide(const uint16_t *a16, size_t K, const int16_t *bp, size_t kp, int mr,
                                          __m256i acc[][4]) {
    __m256i c[MR_AVX2][NV_AVX2];
    for (int i = 0; i < mr; i++)
        for (int v = 0; v < NV_AVX2; v++) c[i][v] = _mm256_setzero_si256();
    for (size_t t = 0; t < kp; t++) {
        __m256i b[NV_AVX2];
        for (int v = 0; v < NV_AVX2; v++) b[v] = _mm256_load_si256((const __m256i *)(bp + (t * NR_AVX2 + 8 * v) * 2));
        for (int i = 0; i < mr; i++) {
            uint32_t pair;
            memcpy(&pair, a16 + i * K + 2 * t, 4);
            const __m256i av = _mm256_set1_epi32((int)pair);
            for (int v = 0; v < NV_AVX2; v++) c[i][v] = _mm256_add_epi32(c[i][v], _mm256_madd_epi16(av, b[v]));
        }
    }
    for (int i = 0; i < mr; i++)
        for (int v = 0; v < NV_AVX2; v++) acc[i][v] = c[i][v];
}

AQ_TGT_AVX2 static void block_avx2_wide(const gemm_args *g, const int16_t *packed, uint16_t *a16, size_t n0,
                                        size_t nb) {
    const size_t K = g->K, kp = K / 2;
    for (size_t m = 0; m < g->M; m += MR_AVX2) {
        const int mr = (int)(g->M - m < MR_AVX2 ? g->M - m : MR_AVX2);
        for (int i = 0; i < mr; i++) {
            const uint8_t *a = g->A + (m + i) * g->lda;
            for (size_t t = 0; t < K; t += 16)
                _mm256_storeu_si256((__m256i *)(a16 + i * K + t),
                                    _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(a + t))));
        }
        for (size_t p0 = 0; p0 < nb; p0 += NR_AVX2) {
            const int16_t *bp = packed + p0 * K;
            const size_t nr = nb - p0 < NR_AVX2 ? nb - p0 : NR_AVX2;
            __m256i acc[MR_AVX2][4];
#define CALL(R) tile_avx2_wide(a16, K, bp, kp, R, acc); epilogue256(g, m, R, n0 + p0, nr, NV_AVX2, acc)
            AQ_TILE_CASES4(CALL)
#undef CALL
        }
    }
}

// ---- Level 2: AVX-VNNI, 256-bit vpdpbusd ---------------------------------------------------------

enum { MR_VNNI = 6, NV_VNNI = 2, NR_VNNI = 8 * NV_VNNI };

AQ_INLINE AQ_TGT_AVXVNNI void tile_avxvnni(const uint8_t *a, size_t lda, const int8_t *bp, size_t kq, int mr,
                                           __m256i acc[][4]) {
    __m256i c[MR_VNNI][NV_VNNI];
    for (int i = 0; i < mr; i++)
        for (int v = 0; v < NV_VNNI; v++) c[i][v] = _mm256_setzero_si256();
    for (size_t t = 0; t < kq; t++) {
        __m256i b[NV_VNNI];
        for (int v = 0; v < NV_VNNI; v++) b[v] = _mm256_load_si256((const __m256i *)(bp + (t * NR_VNNI + 8 * v) * 4));
        for (int i = 0; i < mr; i++) {
            const __m256i av = _mm256_set1_epi32((int)load_quad(a + i * lda + 4 * t));
            for (int v = 0; v < NV_VNNI; v++) c[i][v] = _mm256_dpbusd_avx_epi32(c[i][v], av, b[v]);
        }
    }
    for (int i = 0; i < mr; i++)
        for (int v = 0; v < NV_VNNI; v++) acc[i][v] = c[i][v];
}

AQ_TGT_AVXVNNI static void block_avxvnni(const gemm_args *g, const int8_t *packed, size_t n0, size_t nb) {
    const size_t kq = g->K / 4;
    for (size_t m = 0; m < g->M; m += MR_VNNI) {
        const int mr = (int)(g->M - m < MR_VNNI ? g->M - m : MR_VNNI);
        for (size_t p0 = 0; p0 < nb; p0 += NR_VNNI) {
            const int8_t *bp = packed + p0 * g->K;
            const size_t nr = nb - p0 < NR_VNNI ? nb - p0 : NR_VNNI;
            __m256i acc[MR_VNNI][4];
            const uint8_t *a = g->A + m * g->lda;
#define CALL(R) tile_avxvnni(a, g->lda, bp, kq, R, acc); epilogue256(g, m, R, n0 + p0, nr, NV_VNNI, acc)
            AQ_TILE_CASES6(CALL)
#undef CALL
        }
    }
}

// ---- Level 3: AVX512-VNNI, 512-bit vpdpbusd -------------------------------------------------------

enum { MR_512 = 8, NV_512 = 3, NR_512 = 16 * NV_512 };

AQ_INLINE AQ_TGT_AVX512VNNI void tile_avx512(const uint8_t *a, size_t lda, const int8_t *bp, size_t kq, int mr,
                                             __m512i acc[][NV_512]) {
    __m512i c[MR_512][NV_512];
    for (int i = 0; i < mr; i++)
        for (int v = 0; v < NV_512; v++) c[i][v] = _mm512_setzero_si512();
    for (size_t t = 0; t < kq; t++) {
        __m512i b[NV_512];
        for (int v = 0; v < NV_512; v++) b[v] = _mm512_load_si512((const void *)(bp + (t * NR_512 + 16 * v) * 4));
        for (int i = 0; i < mr; i++) {
            const __m512i av = _mm512_set1_epi32((int)load_quad(a + i * lda + 4 * t));
            for (int v = 0; v < NV_512; v++) c[i][v] = _mm512_dpbusd_epi32(c[i][v], av, b[v]);
        }
    }
    for (int i = 0; i < mr; i++)
        for (int v = 0; v < NV_512; v++) acc[i][v] = c[i][v];
}

AQ_INLINE AQ_TGT_AVX512VNNI void epilogue512(const gemm_args *g, size_t m0, int mr, size_t n0, size_t nr,
                                             __m512i acc[][NV_512]) {
    for (int v = 0; v < NV_512; v++) {
        if (16 * (size_t)v >= nr) break;
        const size_t c = n0 + 16 * (size_t)v, left = nr - 16 * (size_t)v;
        const __mmask16 mask = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
        const __m512 al = _mm512_maskz_loadu_ps(mask, g->alpha + c), be = _mm512_maskz_loadu_ps(mask, g->beta + c),
                     ga = _mm512_maskz_loadu_ps(mask, g->gamma + c);
        const __m512i cols = g->ycol ? _mm512_maskz_loadu_epi32(mask, g->ycol + c) : _mm512_setzero_si512();
        const __m512i wz = g->wz ? _mm512_maskz_loadu_epi32(mask, g->wz + c) : _mm512_setzero_si512(),
                      c0 = g->c0 ? _mm512_maskz_loadu_epi32(mask, g->c0 + c) : _mm512_setzero_si512();
        for (int i = 0; i < mr; i++) {
            __m512 as = _mm512_set1_ps((float)g->a_sums[m0 + i]);
            __m512i d = _mm512_add_epi32(_mm512_add_epi32(acc[i][v], c0),
                                         _mm512_mullo_epi32(wz, _mm512_set1_epi32(g->a_sums[m0 + i])));
            __m512 y = _mm512_fmadd_ps(al, _mm512_cvtepi32_ps(d), _mm512_fmadd_ps(be, as, ga));
            if (g->ycol) _mm512_mask_i32scatter_ps(g->Y + (m0 + i) * g->ldy, mask, cols, y, 4);
            else _mm512_mask_storeu_ps(g->Y + (m0 + i) * g->ldy + c, mask, y);
        }
    }
}

AQ_TGT_AVX512VNNI static void block_avx512(const gemm_args *g, const int8_t *packed, size_t n0, size_t nb) {
    const size_t kq = g->K / 4;
    for (size_t m = 0; m < g->M; m += MR_512) {
        const int mr = (int)(g->M - m < MR_512 ? g->M - m : MR_512);
        for (size_t p0 = 0; p0 < nb; p0 += NR_512) {
            const int8_t *bp = packed + p0 * g->K;
            const size_t nr = nb - p0 < NR_512 ? nb - p0 : NR_512;
            __m512i acc[MR_512][NV_512];
            const uint8_t *a = g->A + m * g->lda;
#define CALL(R) tile_avx512(a, g->lda, bp, kq, R, acc); epilogue512(g, m, R, n0 + p0, nr, acc)
            AQ_TILE_CASES8(CALL)
#undef CALL
        }
    }
}

// ---- u8 x s8 GEMM: block driver -----------------------------------------------------------------

static size_t round_up(size_t x, size_t to) { return (x + to - 1) / to * to; }

// Block geometry of a level: panel width nr, A tile rows mr, columns per B block nc, and the
// element size of packed B (2 for the widened AVX2 path).
typedef struct { size_t nr, mr, nc, elem, block_bytes; } gemm_geometry;

static gemm_geometry geometry(int level, int wide, size_t N, size_t K) {
    gemm_geometry g;
    g.elem = wide ? 2 : 1;
    switch (level) {
    case AQ_CPU_AVX512VNNI: g.nr = NR_512, g.mr = MR_512; break;
    case AQ_CPU_AVXVNNI: g.nr = NR_VNNI, g.mr = MR_VNNI; break;
    default: g.nr = NR_AVX2, g.mr = MR_AVX2; break;
    }
    g.nc = B_BLOCK_BYTES / (g.nr * K * g.elem) * g.nr;
    if (g.nc < g.nr) g.nc = g.nr;
    if (g.nc > round_up(N, g.nr)) g.nc = round_up(N, g.nr);
    g.block_bytes = round_up(g.nc * K * g.elem, 64);
    return g;
}

static void pack_block(const gemm_args *g, int wide, const gemm_geometry *geo, size_t n0, size_t nb, void *dst) {
    if (wide) pack_b_pairs_s16(g->B, g->ldb, n0, nb, g->N, g->K, geo->nr, (int16_t *)dst);
    else pack_b_quads(g->B, g->ldb, n0, nb, g->N, g->K, geo->nr, (int8_t *)dst);
}

// Loop nest: NC columns of B packed (the block stays in L2) -> MR rows of A (in L1, reused across
// the block's panels; Y is written row-contiguously) -> NR-column panels. Blocking M as well (an A
// block in L2, each panel swept down it) measured slower: Y was then written as narrow column
// strips. `prepacked`: every block already packed, block_bytes apart (aq_gemm_prepack_b);
// otherwise each block is packed into scratch. Returns 0 when the scratch allocation fails (the
// caller then runs the portable path).
static int gemm_blocked(const gemm_args *g, int level, int wide, const void *prepacked) {
    const gemm_geometry geo = geometry(level, wide, g->N, g->K);
    const size_t a16_bytes = wide ? geo.mr * g->K * 2 : 0;
    void *scratch = NULL;
    const size_t scratch_bytes = (prepacked ? 0 : geo.block_bytes) + a16_bytes;
    if (scratch_bytes > 0 && posix_memalign(&scratch, 64, scratch_bytes) != 0) return 0;
    uint16_t *a16 = wide ? (uint16_t *)((char *)scratch + (prepacked ? 0 : geo.block_bytes)) : NULL;
    for (size_t n0 = 0, block = 0; n0 < g->N; n0 += geo.nc, block++) {
        const size_t nb = g->N - n0 < geo.nc ? g->N - n0 : geo.nc;
        const void *packed = prepacked ? (const char *)prepacked + block * geo.block_bytes : scratch;
        if (!prepacked) pack_block(g, wide, &geo, n0, nb, scratch);
        switch (level) {
        case AQ_CPU_AVX512VNNI: block_avx512(g, (const int8_t *)packed, n0, nb); break;
        case AQ_CPU_AVXVNNI: block_avxvnni(g, (const int8_t *)packed, n0, nb); break;
        default:
            if (wide) block_avx2_wide(g, (const int16_t *)packed, a16, n0, nb);
            else block_avx2(g, (const int8_t *)packed, n0, nb);
            break;
        }
    }
    free(scratch);
    return 1;
}
#endif // __x86_64__

void aq_gemm_u8s8_f32_cols(const uint8_t *A, size_t lda, const int32_t *a_sums, const int8_t *B, size_t ldb,
                           size_t M, size_t N, size_t K, int b_max_abs,
                           const float *alpha, const float *beta, const float *gamma, float *Y, size_t ldy,
                           const int32_t *y_cols, const int32_t *wz, const int32_t *c0) {
    if (M == 0 || N == 0) return;
#if defined(__x86_64__)
    const int level = aq_int8_level();
    if (level > AQ_CPU_PORTABLE && K > 0 && K % 64 == 0) {
        const gemm_args g = {A, lda, a_sums, B, ldb, M, N, K, alpha, beta, gamma, Y, ldy, b_max_abs, y_cols, wz, c0};
        // vpmaddubsw adds two u8 x s8 products into a saturating s16.
        const int wide = level == AQ_CPU_AVX2 && 2 * 255 * b_max_abs > 32767;
        if (gemm_blocked(&g, level, wide, NULL)) return;
    }
#else
    (void)b_max_abs;
#endif
    gemm_portable(A, lda, a_sums, B, ldb, M, N, K, alpha, beta, gamma, Y, ldy, y_cols, wz, c0);
}

struct aq_packed_b {
    const int8_t *B;  // the caller's rows (kept alive by the caller): the fallback
    size_t ldb, N, K;
    int b_max_abs, level, wide;
    void *data;       // the blocks, packed for `level`; NULL: none (portable)
};

aq_packed_b *aq_gemm_prepack_b(const int8_t *B, size_t ldb, size_t N, size_t K, int b_max_abs) {
    aq_packed_b *p = (aq_packed_b *)calloc(1, sizeof *p);
    if (!p) return NULL;
    p->B = B, p->ldb = ldb, p->N = N, p->K = K, p->b_max_abs = b_max_abs;
    p->level = aq_int8_level();
#if defined(__x86_64__)
    if (p->level > AQ_CPU_PORTABLE && N > 0 && K > 0 && K % 64 == 0) {
        p->wide = p->level == AQ_CPU_AVX2 && 2 * 255 * b_max_abs > 32767;
        const gemm_geometry geo = geometry(p->level, p->wide, N, K);
        const size_t blocks = (N + geo.nc - 1) / geo.nc;
        if (posix_memalign(&p->data, 64, blocks * geo.block_bytes) != 0) p->data = NULL;
        const gemm_args g = {NULL, 0, NULL, B, ldb, 0, N, K, NULL, NULL, NULL, NULL, 0, b_max_abs, NULL, NULL, NULL};
        for (size_t n0 = 0, block = 0; p->data && n0 < N; n0 += geo.nc, block++) {
            const size_t nb = N - n0 < geo.nc ? N - n0 : geo.nc;
            pack_block(&g, p->wide, &geo, n0, nb, (char *)p->data + block * geo.block_bytes);
        }
    }
#endif
    return p;
}

size_t aq_gemm_prepacked_bytes(const aq_packed_b *p) {
#if defined(__x86_64__)
    if (p && p->data) {
        const gemm_geometry geo = geometry(p->level, p->wide, p->N, p->K);
        return (p->N + geo.nc - 1) / geo.nc * geo.block_bytes;
    }
#endif
    (void)p;
    return 0;
}

void aq_gemm_prepacked_free(aq_packed_b *p) {
    if (!p) return;
    free(p->data);
    free(p);
}

void aq_gemm_u8s8_f32_prepacked(const uint8_t *A, size_t lda, const int32_t *a_sums, const aq_packed_b *p, size_t M,
                                const float *alpha, const float *beta, const float *gamma, float *Y, size_t ldy,
                                const int32_t *y_cols, const int32_t *wz, const int32_t *c0) {
    if (M == 0 || p->N == 0) return;
#if defined(__x86_64__)
    if (p->data && p->level == aq_int8_level()) {
        const gemm_args g = {A, lda, a_sums, p->B, p->ldb, M, p->N, p->K, alpha, beta, gamma, Y, ldy, p->b_max_abs, y_cols, wz, c0};
        if (gemm_blocked(&g, p->level, p->wide, p->data)) return;
    }
#endif
    aq_gemm_u8s8_f32_cols(A, lda, a_sums, p->B, p->ldb, M, p->N, p->K, p->b_max_abs, alpha, beta, gamma, Y, ldy, y_cols,
                          wz, c0);
}

void aq_gemm_u8s8_f32(const uint8_t *A, size_t lda, const int32_t *a_sums, const int8_t *B, size_t ldb,
                      size_t M, size_t N, size_t K, int b_max_abs,
                      const float *alpha, const float *beta, const float *gamma, float *Y, size_t ldy) {
    aq_gemm_u8s8_f32_cols(A, lda, a_sums, B, ldb, M, N, K, b_max_abs, alpha, beta, gamma, Y, ldy, NULL, NULL, NULL);
}

