// GELU forward/backward. x, y, dy, dx: [N].
#include "aqkernels.h"
#include "vmath.h"

#define SQRT1_2 0.70710678118654752440f
#define INV_SQRT_2PI 0.39894228040143267794f
#define SQRT_2_OVER_PI 0.79788456080286535588f
#define GELU_C 0.044715f

#if defined(__x86_64__)
AQ_AVX2 static void gelu_forward_avx2(const float *x, float *y, size_t n, int approximate) {
    size_t i = 0;
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
    if (!approximate) {
        const __m256 a = _mm256_set1_ps(SQRT1_2);
        for (; i + 8 <= n; i += 8) {
            __m256 v = _mm256_loadu_ps(x + i);
            __m256 e = aq_erf256(_mm256_mul_ps(v, a));
            _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(v, half), _mm256_add_ps(one, e)));
        }
        for (; i < n; i++) y[i] = x[i] * 0.5f * (1.0f + erff(x[i] * SQRT1_2));
    } else {
        const __m256 k = _mm256_set1_ps(SQRT_2_OVER_PI), c = _mm256_set1_ps(GELU_C);
        for (; i + 8 <= n; i += 8) {
            __m256 v = _mm256_loadu_ps(x + i);
            __m256 inner = _mm256_mul_ps(k, _mm256_fmadd_ps(_mm256_mul_ps(c, v), _mm256_mul_ps(v, v), v));
            __m256 t = aq_tanh256(inner);
            _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(v, half), _mm256_add_ps(one, t)));
        }
        for (; i < n; i++) {
            float v = x[i];
            y[i] = 0.5f * v * (1.0f + tanhf(SQRT_2_OVER_PI * (v + GELU_C * v * v * v)));
        }
    }
}
#endif

static void gelu_forward_portable(const float *x, float *y, size_t n, int approximate) {
    if (!approximate) {
        for (size_t i = 0; i < n; i++) y[i] = x[i] * 0.5f * (1.0f + erff(x[i] * SQRT1_2));
    } else {
        for (size_t i = 0; i < n; i++) {
            float v = x[i];
            y[i] = 0.5f * v * (1.0f + tanhf(SQRT_2_OVER_PI * (v + GELU_C * v * v * v)));
        }
    }
}

void aq_gelu_forward(const float *x, float *y, size_t n, int approximate) {
#if defined(__x86_64__)
    if (aq_avx2()) { gelu_forward_avx2(x, y, n, approximate); return; }
#endif
    gelu_forward_portable(x, y, n, approximate);
}

// exact:  d/dx = 0.5 (1 + erf(x/sqrt2)) + x * phi(x),  phi(x) = exp(-x^2/2) / sqrt(2 pi)
// tanh:   u = k (x + c x^3), t = tanh(u);  d/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) k (1 + 3 c x^2)
#if defined(__x86_64__)
AQ_AVX2 static void gelu_backward_avx2(const float *x, const float *dy, float *dx, size_t n, int approximate) {
    size_t i = 0;
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
    if (!approximate) {
        const __m256 a = _mm256_set1_ps(SQRT1_2), b = _mm256_set1_ps(INV_SQRT_2PI), mhalf = _mm256_set1_ps(-0.5f);
        for (; i + 8 <= n; i += 8) {
            __m256 v = _mm256_loadu_ps(x + i);
            __m256 cdf = _mm256_mul_ps(half, _mm256_add_ps(one, aq_erf256(_mm256_mul_ps(v, a))));
            __m256 pdf = _mm256_mul_ps(b, aq_exp256(_mm256_mul_ps(mhalf, _mm256_mul_ps(v, v))));
            __m256 d = _mm256_fmadd_ps(v, pdf, cdf);
            _mm256_storeu_ps(dx + i, _mm256_fmadd_ps(d, _mm256_loadu_ps(dy + i), _mm256_loadu_ps(dx + i)));
        }
        for (; i < n; i++) {
            float v = x[i];
            float d = 0.5f * (1.0f + erff(v * SQRT1_2)) + v * INV_SQRT_2PI * expf(-0.5f * v * v);
            dx[i] += d * dy[i];
        }
    } else {
        const __m256 k = _mm256_set1_ps(SQRT_2_OVER_PI), c = _mm256_set1_ps(GELU_C), c3 = _mm256_set1_ps(3.0f * GELU_C);
        for (; i + 8 <= n; i += 8) {
            __m256 v = _mm256_loadu_ps(x + i);
            __m256 v2 = _mm256_mul_ps(v, v);
            __m256 t = aq_tanh256(_mm256_mul_ps(k, _mm256_fmadd_ps(_mm256_mul_ps(c, v), v2, v)));
            __m256 sech2 = _mm256_fnmadd_ps(t, t, one);
            __m256 du = _mm256_mul_ps(k, _mm256_fmadd_ps(c3, v2, one));
            __m256 d = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_mul_ps(half, v), sech2), du, _mm256_mul_ps(half, _mm256_add_ps(one, t)));
            _mm256_storeu_ps(dx + i, _mm256_fmadd_ps(d, _mm256_loadu_ps(dy + i), _mm256_loadu_ps(dx + i)));
        }
        for (; i < n; i++) {
            float v = x[i];
            float t = tanhf(SQRT_2_OVER_PI * (v + GELU_C * v * v * v));
            float d = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_C * v * v);
            dx[i] += d * dy[i];
        }
    }
}
#endif

static void gelu_backward_portable(const float *x, const float *dy, float *dx, size_t n, int approximate) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i], d;
        if (!approximate) {
            d = 0.5f * (1.0f + erff(v * SQRT1_2)) + v * INV_SQRT_2PI * expf(-0.5f * v * v);
        } else {
            float t = tanhf(SQRT_2_OVER_PI * (v + GELU_C * v * v * v));
            d = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_C * v * v);
        }
        dx[i] += d * dy[i];
    }
}

void aq_gelu_backward(const float *x, const float *dy, float *dx, size_t n, int approximate) {
#if defined(__x86_64__)
    if (aq_avx2()) { gelu_backward_avx2(x, dy, dx, n, approximate); return; }
#endif
    gelu_backward_portable(x, dy, dx, n, approximate);
}
