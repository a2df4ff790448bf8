// Row softmax with an optional shared key mask. x, y, dy, dx: [N, C]; keymask: [N / rows_per_mask, C].
#include "aqkernels.h"
#include "vmath.h"
#include <float.h>

#if defined(__x86_64__)
AQ_AVX2 static void softmax_row_avx2(const float *x, float *y, size_t c, float scale, const float *m) {
    size_t j;
    float mx = -FLT_MAX;
    if (m) {
        // max over kept keys (scale > 0, so max of x then times scale)
        const __m256 lowest = _mm256_set1_ps(-FLT_MAX), zero = _mm256_setzero_ps();
        __m256 vm = lowest;
        for (j = 0; j + 8 <= c; j += 8) {
            __m256 keep = _mm256_cmp_ps(_mm256_loadu_ps(m + j), zero, _CMP_NEQ_OQ);
            vm = _mm256_max_ps(vm, _mm256_blendv_ps(lowest, _mm256_loadu_ps(x + j), keep));
        }
        float xm = aq_hmax256(vm);
        for (; j < c; j++) if (m[j] != 0.0f && x[j] > xm) xm = x[j];
        mx = xm == -FLT_MAX ? -FLT_MAX : xm * scale;
    } else {
        __m256 vm = _mm256_set1_ps(-FLT_MAX);
        for (j = 0; j + 8 <= c; j += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(x + j));
        mx = aq_hmax256(vm);
        for (; j < c; j++) if (x[j] > mx) mx = x[j];
        mx *= scale; // scale > 0
    }
    if (mx == -FLT_MAX) { for (j = 0; j < c; j++) y[j] = 0.0f; return; } // every key masked
    const __m256 vs = _mm256_set1_ps(scale), vmx = _mm256_set1_ps(mx);
    __m256 acc = _mm256_setzero_ps();
    for (j = 0; j + 8 <= c; j += 8) {
        __m256 e = aq_exp256(_mm256_fmsub_ps(_mm256_loadu_ps(x + j), vs, vmx));
        if (m) e = _mm256_and_ps(e, _mm256_cmp_ps(_mm256_loadu_ps(m + j), _mm256_setzero_ps(), _CMP_NEQ_OQ));
        _mm256_storeu_ps(y + j, e);
        acc = _mm256_add_ps(acc, e);
    }
    float sum = aq_hsum256(acc);
    for (; j < c; j++) {
        float e = (m && m[j] == 0.0f) ? 0.0f : expf(x[j] * scale - mx);
        y[j] = e;
        sum += e;
    }
    const __m256 inv = _mm256_set1_ps(1.0f / sum);
    for (j = 0; j + 8 <= c; j += 8) _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_loadu_ps(y + j), inv));
    float finv = 1.0f / sum;
    for (; j < c; j++) y[j] *= finv;
}
#endif

static void softmax_row_portable(const float *x, float *y, size_t c, float scale, const float *m) {
    float mx = -FLT_MAX;
    for (size_t j = 0; j < c; j++) if ((!m || m[j] != 0.0f) && x[j] * scale > mx) mx = x[j] * scale;
    if (mx == -FLT_MAX) { for (size_t j = 0; j < c; j++) y[j] = 0.0f; return; }
    float sum = 0.0f;
    for (size_t j = 0; j < c; j++) {
        float e = (m && m[j] == 0.0f) ? 0.0f : expf(x[j] * scale - mx);
        y[j] = e;
        sum += e;
    }
    float inv = 1.0f / sum;
    for (size_t j = 0; j < c; j++) y[j] *= inv;
}

void aq_softmax_forward(const float *x, float *y, size_t rows, size_t cols, float scale,
                        const float *keymask, size_t rows_per_mask) {
#if defined(__x86_64__)
    const int avx = aq_avx2();
#endif
    for (size_t r = 0; r < rows; r++) {
        const float *m = keymask ? keymask + (r / rows_per_mask) * cols : NULL;
#if defined(__x86_64__)
        if (avx) { softmax_row_avx2(x + r * cols, y + r * cols, cols, scale, m); continue; }
#endif
        softmax_row_portable(x + r * cols, y + r * cols, cols, scale, m);
    }
}

#if defined(__x86_64__)
AQ_AVX2 static void softmax_backward_avx2(const float *y, const float *dy, float *dx, size_t rows, size_t cols, float scale) {
    for (size_t r = 0; r < rows; r++) {
        const float *yr = y + r * cols, *gr = dy + r * cols;
        float *dr = dx + r * cols;
        __m256 acc = _mm256_setzero_ps();
        size_t j = 0;
        for (; j + 8 <= cols; j += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(yr + j), _mm256_loadu_ps(gr + j), acc);
        float dot = aq_hsum256(acc);
        for (; j < cols; j++) dot += yr[j] * gr[j];
        const __m256 vd = _mm256_set1_ps(dot), vs = _mm256_set1_ps(scale);
        for (j = 0; j + 8 <= cols; j += 8) {
            __m256 t = _mm256_mul_ps(_mm256_loadu_ps(yr + j), _mm256_sub_ps(_mm256_loadu_ps(gr + j), vd));
            _mm256_storeu_ps(dr + j, _mm256_fmadd_ps(vs, t, _mm256_loadu_ps(dr + j)));
        }
        for (; j < cols; j++) dr[j] += scale * yr[j] * (gr[j] - dot);
    }
}
#endif

void aq_softmax_backward(const float *y, const float *dy, float *dx, size_t rows, size_t cols, float scale) {
#if defined(__x86_64__)
    if (aq_avx2()) { softmax_backward_avx2(y, dy, dx, rows, cols, scale); return; }
#endif
    for (size_t r = 0; r < rows; r++) {
        const float *yr = y + r * cols, *gr = dy + r * cols;
        float *dr = dx + r * cols;
        float dot = 0.0f;
        for (size_t j = 0; j < cols; j++) dot += yr[j] * gr[j];
        for (size_t j = 0; j < cols; j++) dr[j] += scale * yr[j] * (gr[j] - dot);
    }
}
