// LayerNorm over the last axis. x, y, dy, dx: [N, C]; w, b, dw, db: [C]; mean, rstd: [N].
// Backward as llm.c layernorm_backward:
//   xhat = (x - mean) * rstd, dnorm = dy * w
//   dx += rstd * (dnorm - mean(dnorm) - xhat * mean(dnorm * xhat))
#include "aqkernels.h"
#include "vmath.h"

#if defined(__x86_64__)
AQ_AVX2 static void layernorm_forward_avx2(const float *x, const float *w, const float *b, float *y,
                                           float *mean, float *rstd, size_t rows, size_t cols, float eps) {
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        __m256 acc = _mm256_setzero_ps();
        size_t j = 0;
        for (; j + 8 <= cols; j += 8) acc = _mm256_add_ps(acc, _mm256_loadu_ps(xr + j));
        float s = aq_hsum256(acc);
        for (; j < cols; j++) s += xr[j];
        float mu = s / (float)cols;
        __m256 vmu = _mm256_set1_ps(mu);
        acc = _mm256_setzero_ps();
        for (j = 0; j + 8 <= cols; j += 8) {
            __m256 d = _mm256_sub_ps(_mm256_loadu_ps(xr + j), vmu);
            acc = _mm256_fmadd_ps(d, d, acc);
        }
        float v = aq_hsum256(acc);
        for (; j < cols; j++) { float d = xr[j] - mu; v += d * d; }
        float rs = 1.0f / sqrtf(v / (float)cols + eps);
        __m256 vrs = _mm256_set1_ps(rs);
        for (j = 0; j + 8 <= cols; j += 8) {
            __m256 n = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + j), vmu), vrs);
            _mm256_storeu_ps(yr + j, _mm256_fmadd_ps(n, _mm256_loadu_ps(w + j), _mm256_loadu_ps(b + j)));
        }
        for (; j < cols; j++) yr[j] = (xr[j] - mu) * rs * w[j] + b[j];
        if (mean) mean[r] = mu;
        if (rstd) rstd[r] = rs;
    }
}
#endif

void aq_layernorm_forward(const float *x, const float *w, const float *b, float *y,
                          float *mean, float *rstd, size_t rows, size_t cols, float eps) {
#if defined(__x86_64__)
    if (aq_avx2()) { layernorm_forward_avx2(x, w, b, y, mean, rstd, rows, cols, eps); return; }
#endif
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        float s = 0.0f;
        for (size_t j = 0; j < cols; j++) s += xr[j];
        float mu = s / (float)cols, v = 0.0f;
        for (size_t j = 0; j < cols; j++) { float d = xr[j] - mu; v += d * d; }
        float rs = 1.0f / sqrtf(v / (float)cols + eps);
        for (size_t j = 0; j < cols; j++) yr[j] = (xr[j] - mu) * rs * w[j] + b[j];
        if (mean) mean[r] = mu;
        if (rstd) rstd[r] = rs;
    }
}

void aq_layernorm_backward(const float *x, const float *w, const float *mean, const float *rstd,
                           const float *dy, float *dx, float *dw, float *db, size_t rows, size_t cols) {
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols, *gr = dy + r * cols;
        float *dr = dx + r * cols;
        float mu = mean[r], rs = rstd[r];
        // (a) the two row means
        float dnorm_mean = 0.0f, dnorm_xhat_mean = 0.0f;
        for (size_t j = 0; j < cols; j++) {
            float xhat = (xr[j] - mu) * rs;
            float dn = w[j] * gr[j];
            dnorm_mean += dn;
            dnorm_xhat_mean += dn * xhat;
        }
        dnorm_mean /= (float)cols;
        dnorm_xhat_mean /= (float)cols;
        // (b) accumulate
        for (size_t j = 0; j < cols; j++) {
            float xhat = (xr[j] - mu) * rs;
            float dn = w[j] * gr[j];
            if (db) db[j] += gr[j];
            if (dw) dw[j] += xhat * gr[j];
            dr[j] += rs * (dn - dnorm_mean - xhat * dnorm_xhat_mean);
        }
    }
}
