// Hot fp32 kernels for aqbert. GELU, softmax and the LayerNorm forward pick an AVX2+FMA path
// at run time when aq_cpu_level() (aqcpu.h) allows it and a portable scalar path otherwise;
// both compute the same formula. The other kernels here are plain C that the compiler vectorises.
//
// Legend: N = number of elements or rows, C = channels (row length), T = sequence length.
// Backward kernels ACCUMULATE into their gradient outputs (dx += ...), as llm.c does;
// zeroing is the caller's separate step.
#ifndef AQKERNELS_H
#define AQKERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Keeps freed large buffers in the heap for reuse (glibc mallopt); no-op elsewhere.
void aq_configure_allocator(void);

/// OpenBLAS core in use after aqbert's selection (see blas_core.c), and the one OpenBLAS chose itself.
const char *aq_blas_core_name(void);
const char *aq_blas_core_detected(void);

/// 1 when the AVX2+FMA paths are in use (aq_cpu_level() >= AQ_CPU_AVX2).
int aq_has_avx2(void);

// ---- GELU ----------------------------------------------------------------
// approximate = 0: exact erf form, x * 0.5 * (1 + erf(x / sqrt(2)))   (HF "gelu")
// approximate = 1: tanh form 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (HF "gelu_new")
void aq_gelu_forward(const float *x, float *y, size_t n, int approximate);
void aq_gelu_backward(const float *x, const float *dy, float *dx, size_t n, int approximate);

// ---- Softmax over rows with an optional key mask ----------------------------
// x, y: [N, C]. y = softmax(scale * x) over each row; where keymask != NULL it is [N / rows_per_mask, C]
// (one mask row shared by rows_per_mask consecutive rows) and entries with mask 0 get probability 0.
void aq_softmax_forward(const float *x, float *y, size_t rows, size_t cols, float scale,
                        const float *keymask, size_t rows_per_mask);
// dx += scale * y * (dy - sum(dy * y))   per row.
void aq_softmax_backward(const float *y, const float *dy, float *dx, size_t rows, size_t cols,
                         float scale);

// ---- LayerNorm over the last axis -------------------------------------------
// x, y: [N, C]; w, b: [C]; mean, rstd: [N] (saved for backward).
void aq_layernorm_forward(const float *x, const float *w, const float *b, float *y,
                          float *mean, float *rstd, size_t rows, size_t cols, float eps);
// dx += ..., dw += ..., db += ...   (dw/db may be NULL to skip)
void aq_layernorm_backward(const float *x, const float *w, const float *mean, const float *rstd,
                           const float *dy, float *dx, float *dw, float *db,
                           size_t rows, size_t cols);

// ---- Optimizer ---------------------------------------------------------------
// PyTorch AdamW (torch/optim/adamw.py, single-tensor form):
//   p *= 1 - lr*wd; m = lerp(m, g, 1-b1); v = b2*v + (1-b2) g^2;
//   p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps)
void aq_adamw_step(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1,
                   float beta2, float eps, float weight_decay, float bias_correction1,
                   float bias_correction2_sqrt);

// ---- Elementwise helpers (memory bound) --------------------------------------
void aq_add(const float *a, const float *b, float *y, size_t n);          // y = a + b
void aq_mul(const float *a, const float *b, float *y, size_t n);          // y = a * b
void aq_axpy(float alpha, const float *x, float *y, size_t n);            // y += alpha * x
void aq_fma_accumulate(const float *a, const float *b, float *y, size_t n); // y += a * b
void aq_add_rows(const float *x, const float *row, float *y, size_t rows, size_t cols); // y = x + row (broadcast)
void aq_sum_rows(const float *x, float *acc, size_t rows, size_t cols);   // acc[c] += sum_r x[r, c]
double aq_sum_squares(const float *x, size_t n);
void aq_scale(float *x, float alpha, size_t n);                          // x *= alpha
// Inverted dropout with a byte mask: y = keep ? x * scale : 0;  dx += keep ? dy * scale : 0
void aq_dropout_forward(const float *x, const uint8_t *keep, float *y, size_t n, float scale);
void aq_dropout_backward(const float *dy, const uint8_t *keep, float *dx, size_t n, float scale);

// ---- Thread pool (pool.c) ------------------------------------------------------
// Runs fn(ctx, i) for i < n on the caller and up to threads - 1 spinning workers; returns when
// all are done. Nested calls, and calls while another thread's job runs, run inline.
typedef void (*aq_pool_fn)(void *ctx, long index);
void aq_pool_run(long n, int threads, aq_pool_fn fn, void *ctx);

// ---- Group quantization (quantize.c) ------------------------------------------
void aq_minmax(const float *x, size_t n, float *lo, float *hi);
// The largest fp16 value <= x / the smallest >= x, as floats.
float aq_half_below(float x);
float aq_half_above(float x);
// A group's quantization range: min rounded down and max rounded up to fp16 (what the packed
// format stores); a constant group keeps lo == hi.
void aq_group_range(const float *x, size_t n, float *lo, float *hi);
// y = dequantize(quantize_b(x)) over one group (range: aq_group_range); bits 0 -> zeros;
// constant group -> copy.
void aq_fake_quantize(const float *x, float *y, size_t n, int bits);
// Integer codes 0 .. 2^b - 1 and the group's range (aq_group_range).
void aq_quantize_codes(const float *x, uint8_t *codes, size_t n, int bits, float *lo, float *hi);
// y += w * Q_b(x)
void aq_fake_quantize_accumulate(const float *x, float *y, size_t n, int bits, float w);
// sum_i g[i] * Q_b(x)[i]
double aq_fake_quantize_dot(const float *x, const float *g, size_t n, int bits);
// Learned ranges (quantize.c): the bounds a learned (lo, hi) quantizes with (nearest fp16,
// hi > lo); the clamped quantizer at such bounds, its codes, and its LSQ backward (d lo and
// d hi summed in double, dx += dy inside the range, dx may be NULL); the MSE-optimal bounds.
void aq_learned_range(float lo, float hi, float *lo_out, float *hi_out);
void aq_fake_quantize_range(const float *x, float *y, size_t n, int bits, float lo, float hi);
void aq_quantize_codes_range(const float *x, uint8_t *codes, size_t n, int bits, float lo, float hi);
void aq_fake_quantize_range_backward(const float *x, const float *dy, float *dx, size_t n, int bits,
                                     float lo, float hi, double *dlo, double *dhi);
void aq_mse_range(const float *x, size_t n, int bits, float *lo, float *hi);
// The mixed weight at fixed bounds (lo, hi) per group and candidate (quantize.c): y += w Q;
// <g, Q>; and the straight-through weight gradient dx += w dy inside the bounds.
void aq_fake_quantize_range_accumulate(const float *x, float *y, size_t n, int bits, float lo, float hi, float w);
double aq_fake_quantize_range_dot(const float *x, const float *g, size_t n, int bits, float lo, float hi);
void aq_range_pass_accumulate(const float *x, const float *dy, float *dx, size_t n, int bits, float lo, float hi, float w);

// Linux: the calling process gets SIGKILL when its parent dies. Returns 0 when the parent is
// `parent_pid` (alive), 1 when it has died already, -1 on error; 0 (no effect) elsewhere.
int aq_die_with_parent(int parent_pid);

#ifdef __cplusplus
}
#endif
#endif
