// AdamW and memory-bound elementwise helpers (auto-vectorised by the compiler).
#include "aqkernels.h"
#include <math.h>

void aq_adamw_step(float *restrict p, const float *restrict g, float *restrict m, float *restrict v,
                   size_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                   float bias_correction1, float bias_correction2_sqrt) {
    const float decay = 1.0f - lr * weight_decay;
    const float step_size = lr / bias_correction1;
    const float w1 = 1.0f - beta1, w2 = 1.0f - beta2;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float pi = p[i] * decay;
        float mi = m[i] + w1 * (gi - m[i]);  // torch lerp_(grad, 1 - beta1)
        float vi = v[i] * beta2 + w2 * gi * gi;
        float denom = sqrtf(vi) / bias_correction2_sqrt + eps;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - step_size * (mi / denom);
    }
}

void aq_add(const float *restrict a, const float *restrict b, float *restrict y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}
void aq_mul(const float *restrict a, const float *restrict b, float *restrict y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = a[i] * b[i];
}
void aq_axpy(float alpha, const float *restrict x, float *restrict y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += alpha * x[i];
}
void aq_fma_accumulate(const float *restrict a, const float *restrict b, float *restrict y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += a[i] * b[i];
}
void aq_add_rows(const float *restrict x, const float *restrict row, float *restrict y, size_t rows, size_t cols) {
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        for (size_t j = 0; j < cols; j++) yr[j] = xr[j] + row[j];
    }
}
void aq_sum_rows(const float *restrict x, float *restrict acc, size_t rows, size_t cols) {
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        for (size_t j = 0; j < cols; j++) acc[j] += xr[j];
    }
}
double aq_sum_squares(const float *x, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * (double)x[i];
    return s;
}
void aq_scale(float *x, float alpha, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] *= alpha;
}

void aq_dropout_forward(const float *restrict x, const uint8_t *restrict keep, float *restrict y, size_t n, float scale) {
    // Branch-free so it vectorises: keep is 0 or 1.
    for (size_t i = 0; i < n; i++) y[i] = x[i] * (scale * (float)keep[i]);
}
void aq_dropout_backward(const float *restrict dy, const uint8_t *restrict keep, float *restrict dx, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) dx[i] += dy[i] * (scale * (float)keep[i]);
}
