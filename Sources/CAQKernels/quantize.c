// Asymmetric min/max quantization of one group (METHOD.md section 2).
//   s = (2^b - 1) / (max - min),  q = round(s * (a - min)),  a_hat = q / s + min
//   b = 0 -> a_hat = 0 (pruned);  max == min -> a_hat = a.
// The range is the group's min rounded down and max rounded up to fp16: the packed format
// stores ranges as fp16 (Docs/PACKED_FORMAT.md), so training quantizes with exactly the
// range that ships and a packed model reproduces the simulated one.
// round() is round-half-to-even (nearbyintf in the default mode), as torch.round.
// Legend: n = elements of the group.
#include "aqkernels.h"
#include <math.h>
#include <float.h>
#include <string.h>

void aq_minmax(const float *x, size_t n, float *lo, float *hi) {
    float a = FLT_MAX, b = -FLT_MAX;
    for (size_t i = 0; i < n; i++) {
        a = x[i] < a ? x[i] : a;
        b = x[i] > b ? x[i] : b;
    }
    *lo = a;
    *hi = b;
}

static inline uint16_t aq_half_bits(_Float16 h) { uint16_t b; memcpy(&b, &h, 2); return b; }
static inline float aq_half_value(uint16_t b) { _Float16 h; memcpy(&h, &b, 2); return (float)h; }

float aq_half_below(float x) {
    uint16_t b = aq_half_bits((_Float16)x);
    if (aq_half_value(b) > x) b = b == 0x0000 ? 0x8001 : ((b & 0x8000) ? b + 1 : b - 1);
    return aq_half_value(b);
}

float aq_half_above(float x) {
    uint16_t b = aq_half_bits((_Float16)x);
    if (aq_half_value(b) < x) b = b == 0x8000 ? 0x0001 : ((b & 0x8000) ? b - 1 : b + 1);
    return aq_half_value(b);
}

void aq_group_range(const float *x, size_t n, float *lo, float *hi) {
    aq_minmax(x, n, lo, hi);
    if (*hi > *lo) {  // else a constant group, which the quantizers pass through unchanged
        *lo = aq_half_below(*lo);
        *hi = aq_half_above(*hi);
    }
}

void aq_fake_quantize(const float *x, float *y, size_t n, int bits) {
    if (bits <= 0) {
        for (size_t i = 0; i < n; i++) y[i] = 0.0f;
        return;
    }
    float lo, hi;
    aq_group_range(x, n, &lo, &hi);
    if (!(hi > lo)) {
        for (size_t i = 0; i < n; i++) y[i] = x[i];
        return;
    }
    const float levels = (float)((1u << bits) - 1u);
    const float s = levels / (hi - lo);
    const float inv = 1.0f / s;
    for (size_t i = 0; i < n; i++) y[i] = nearbyintf(s * (x[i] - lo)) * inv + lo;
}

void aq_quantize_codes(const float *x, uint8_t *codes, size_t n, int bits, float *lo_out, float *hi_out) {
    float lo, hi;
    aq_group_range(x, n, &lo, &hi);
    *lo_out = lo;
    *hi_out = hi;
    if (bits <= 0 || !(hi > lo)) {
        for (size_t i = 0; i < n; i++) codes[i] = 0;
        return;
    }
    const float s = (float)((1u << bits) - 1u) / (hi - lo);
    for (size_t i = 0; i < n; i++) codes[i] = (uint8_t)nearbyintf(s * (x[i] - lo));
}

// y += w * Q_b(x)  (one candidate's share of the mixed weight)
void aq_fake_quantize_accumulate(const float *x, float *y, size_t n, int bits, float w) {
    if (bits <= 0 || w == 0.0f) return;
    float lo, hi;
    aq_group_range(x, n, &lo, &hi);
    if (!(hi > lo)) {
        for (size_t i = 0; i < n; i++) y[i] += w * x[i];
        return;
    }
    const float s = (float)((1u << bits) - 1u) / (hi - lo);
    const float inv = 1.0f / s;
    for (size_t i = 0; i < n; i++) y[i] += w * (nearbyintf(s * (x[i] - lo)) * inv + lo);
}

// sum_i g[i] * Q_b(x)[i]  (the gradient of one mixing weight), accumulated in double.
double aq_fake_quantize_dot(const float *x, const float *g, size_t n, int bits) {
    if (bits <= 0) return 0.0;
    float lo, hi;
    aq_group_range(x, n, &lo, &hi);
    double acc = 0.0;
    if (!(hi > lo)) {
        for (size_t i = 0; i < n; i++) acc += (double)g[i] * (double)x[i];
        return acc;
    }
    const float s = (float)((1u << bits) - 1u) / (hi - lo);
    const float inv = 1.0f / s;
    for (size_t i = 0; i < n; i++) acc += (double)g[i] * (double)(nearbyintf(s * (x[i] - lo)) * inv + lo);
    return acc;
}
