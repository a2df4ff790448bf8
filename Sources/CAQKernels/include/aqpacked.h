// Packed mixed-precision inference kernels (packed.c): bit-packed weight codes, u8 activation
// quantization, and an exact u8 x s8 -> int32 GEMM with a fused float epilogue.
//
// Legend: W [O, K] weights split into row groups, each with bits b in 1...8 and a range [lo, hi]:
//   w = c * step + lo,  c in [0, 2^b - 1],  step = (hi - lo) / (2^b - 1).
// Activations per tensor: x = q * a_step + a_lo, q in [0, 255]. Then for a row m of X and o of W
//   y[m][o] = a_step*step*sum_k q*c + a_step*lo*sum_k q + a_lo*step*sum_k c + a_lo*lo*K + bias[o]
// so the hot loop is the integer dot product sum_k q*c: A = q (u8, [M, K]), B = c (s8, [N, K]),
// both K-contiguous (B is W's rows, i.e. the GEMM computes A * B^T).
//
// Every entry point has a portable C reference path (the oracle in tests and the fallback on
// other CPUs) and x86-64 paths chosen at run time; all paths give bit-identical outputs.
// All functions are reentrant: no global scratch; call them concurrently on disjoint outputs.
#ifndef AQPACKED_H
#define AQPACKED_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---- Bit-packed codes ----------------------------------------------------------
// A packed row holds n codes of `bits` bits (1...8) as an LSB-first bitstream: code i occupies
// bits [i*bits, (i+1)*bits) of the row, bit t of the row being bit (t % 8) of byte (t / 8).
// A row takes ceil(n*bits/8) bytes; consecutive rows follow each other (each starts on a byte).

/// Bytes of one packed row of n codes: ceil(n * bits / 8). bits 0 (pruned) -> 0.
size_t aq_packed_row_bytes(size_t n, int bits);
/// codes: [n], each < 2^bits (higher bits are ignored); dst: [aq_packed_row_bytes(n, bits)],
/// pad bits of the last byte written as 0.
void aq_pack_codes(const uint8_t *codes, size_t n, int bits, uint8_t *dst);
/// Unpacks one row: dst[i] = (int8_t)(code_i - offset) (two's-complement wrap; offset 0 for
/// bits <= 7, 128 for bits == 8 keeps every value in range). Returns sum_i code_i of the true
/// codes (before the offset). src: [aq_packed_row_bytes(n, bits)] (never read past), dst: [n].
/// bits 0 (pruned) reads nothing: every code is 0.
int32_t aq_unpack_codes_s8(const uint8_t *src, size_t n, int bits, int offset, int8_t *dst);
/// dst[i] = (float)code_i * step + lo, rounded twice (product, then sum; no FMA contraction),
/// the dequantized weights for the fp32 path and tests. dst: [n]. bits 0 gives lo everywhere.
void aq_unpack_codes_f32(const uint8_t *src, size_t n, int bits, float step, float lo, float *dst);

/// Unpacking path: 0 = portable bit-buffer loop; 1 = BMI2 pdep (8 codes from `bits` bytes per
/// instruction, x86-64 with bmi2); 2 = AVX2 (32 codes per step: pshufb + vpmullw as a per-lane
/// shift). All give identical output. Auto follows aq_cpu_level(): 2 from level avx2; at the
/// portable level 1 on a CPU with BMI2 but no AVX2 (except AMD Zen 1/2, where pdep is
/// microcoded), else 0. aq_unpack_path() is the path in use; aq_set_unpack_path(p), a test knob
/// beside the level (pdep is no level of its own), forces the highest supported path <= p; -1 = auto.
int aq_unpack_path(void);
void aq_set_unpack_path(int path);

// ---- Activation quantization -----------------------------------------------------
/// Per-tensor u8 quantization, bit-exact with this float arithmetic (round half to even):
///   s = 255.0f / (hi - lo);  v = min(max(x, lo), hi);  q = nearbyintf(s * (v - lo))
/// with max(x, lo) = x > lo ? x : lo and min(v, hi) = v < hi ? v : hi (a NaN x gives q = 0).
/// hi <= lo (a constant tensor) gives q = 0 everywhere.
/// x: [rows, ldx] (first k used); q: [rows, ldq], entries k..ldq-1 set to 0 (ldq >= k);
/// row_sums: [rows], sum of the row's q (may be NULL).
void aq_quantize_rows_u8(const float *x, size_t rows, size_t k, size_t ldx, float lo, float hi,
                         uint8_t *q, size_t ldq, int32_t *row_sums);

// ---- u8 x s8 GEMM with fused epilogue ---------------------------------------------
/// A: [M, lda] u8, a_sums: [M], B: [N, ldb] s8, alpha/beta/gamma: [N], Y: [M, ldy] f32.
///   Y[m*ldy + n] = fmaf(alpha[n], (float)dot(m, n), fmaf(beta[n], (float)a_sums[m], gamma[n]))
///   dot(m, n)    = sum_{t<K} (int32)A[m*lda + t] * (int32)B[n*ldb + t]   (exact int32)
/// for m < M, n < N. K must be a multiple of 64 (callers zero-pad A and B rows to it; other K run
/// the portable path) and at most 65536 (so that |dot| < 2^31); lda, ldb >= K.
/// b_max_abs = max |B| over the call, a promise (a larger |B| gives wrong sums on the AVX2 path):
/// the AVX2 path multiplies u8 x s8 pairs into s16 (vpmaddubsw) only when 2 * 255 * b_max_abs
/// <= 32767, and widens both operands to s16 (vpmaddwd) otherwise; with small codes it sums
/// floor(32767 / (2 * 255 * b_max_abs)) vpmaddubsw results in s16 before widening.
/// B is repacked inside the call into a heap block of ~0.5 MB (more only when one 48-row panel,
/// 48*K bytes, exceeds it; freed before returning; if the allocation fails the portable path
/// runs). Y is written only at m < M, n < N.
/// Not threaded: callers split M or N across threads (disjoint Y) and call it per chunk.
void aq_gemm_u8s8_f32(const uint8_t *A, size_t lda, const int32_t *a_sums, const int8_t *B, size_t ldb,
                      size_t M, size_t N, size_t K, int b_max_abs,
                      const float *alpha, const float *beta, const float *gamma, float *Y, size_t ldy);
/// The same product with the result's column n written to Y column y_cols[n] (y_cols NULL: n)
/// and an integer correction added before the conversion to float (wz, c0 NULL: 0):
///   Y[m*ldy + y_cols[n]] = fmaf(alpha[n], (float)d, fmaf(beta[n], (float)a_sums[m], gamma[n])),
///   d = dot(m, n) + wz[n] * a_sums[m] + c0[n]   (exact int32: callers keep |d| < 2^31).
/// y_cols lets one call cover the kept rows of a matrix whose pruned rows are skipped (their
/// outputs are not computed at all); the targets must be distinct. wz and c0 let the caller
/// subtract zero points in integers (d = sum (q - z)(c - zc)), so the float terms stay small and
/// do not cancel.
void aq_gemm_u8s8_f32_cols(const uint8_t *A, size_t lda, const int32_t *a_sums, const int8_t *B, size_t ldb,
                           size_t M, size_t N, size_t K, int b_max_abs,
                           const float *alpha, const float *beta, const float *gamma, float *Y, size_t ldy,
                           const int32_t *y_cols, const int32_t *wz, const int32_t *c0);

/// The same epilogue on products computed elsewhere (the exact evaluation of a QAT model, whose
/// integer sums come from a float GEMM as exact integers d):
///   Y[m*ldy + y_cols[n]] = fmaf(alpha[n], d[m*N + n], fmaf(beta[n], (float)a_sums[m], gamma[n]))
/// for m < M, n < N (y_cols NULL: column n). The AVX2+FMA path (picked as aq_int8_level() >= 1)
/// and the portable one (libm fmaf) round identically.
void aq_affine_epilogue(const float *d, const int32_t *a_sums, size_t M, size_t N, const float *alpha,
                        const float *beta, const float *gamma, float *Y, size_t ldy, const int32_t *y_cols);

/// B packed once for many products (the weights of a packed model): the kernel layout of the
/// int8 level current at packing time. The caller keeps B alive (it is the fallback when the
/// level has changed since, or on the portable path). NULL only when out of memory.
typedef struct aq_packed_b aq_packed_b;
aq_packed_b *aq_gemm_prepack_b(const int8_t *B, size_t ldb, size_t N, size_t K, int b_max_abs);
/// Bytes of the packed copy (0 when nothing was packed).
size_t aq_gemm_prepacked_bytes(const aq_packed_b *p);
void aq_gemm_prepacked_free(aq_packed_b *p);
/// aq_gemm_u8s8_f32_cols with the prepacked B (its N, K, b_max_abs); bit-identical results.
void aq_gemm_u8s8_f32_prepacked(const uint8_t *A, size_t lda, const int32_t *a_sums, const aq_packed_b *p, size_t M,
                                const float *alpha, const float *beta, const float *gamma, float *Y, size_t ldy,
                                const int32_t *y_cols, const int32_t *wz, const int32_t *c0);

/// Integer path: the CPU level of aqcpu.h (0 portable reference, 1 AVX2 vpmaddubsw/vpmaddwd,
/// 2 AVX-VNNI 256-bit vpdpbusd, 3 AVX512-VNNI 512-bit vpdpbusd). aq_int8_level() is
/// aq_cpu_level(); aq_set_int8_level(l) is aq_cpu_set_level(l) (the highest supported level <= l;
/// -1 restores the default) and moves every kernel, aq_quantize_rows_u8 included (AVX2 from
/// level 1). Process-wide, for tests and benchmarks, not for switching while kernels run.
int aq_int8_level(void);
void aq_set_int8_level(int level);
/// "portable", "avx2", "avx-vnni", "avx512-vnni"; "unknown" otherwise.
const char *aq_int8_level_name(int level);

#ifdef __cplusplus
}
#endif
#endif
