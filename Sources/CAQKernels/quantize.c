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

// ---- Learned ranges (LSQ, Esser et al. 2020, with a learned offset as LSQ+) ----------------
// A group's range is a pair of trainable clipping bounds (lo, hi); the quantizer uses them
// rounded to the nearest fp16 (what the packed format stores), with hi moved one fp16 step
// above lo when rounding makes them meet:  s = (2^b - 1) / (hi - lo),
// q = clamp(round(s * (x - lo)), 0, 2^b - 1),  x_hat = q / s + lo.

// The code of x on the grid of (lo, s = levels / (hi - lo)), clamped to [0, levels].
static inline float aq_clamped_code(float x, float s, float lo, float levels) {
    const float q = nearbyintf(s * (x - lo));
    return q < 0.0f ? 0.0f : (q > levels ? levels : q);
}

void aq_learned_range(float lo, float hi, float *lo_out, float *hi_out) {
    float l = (float)(_Float16)lo, h = (float)(_Float16)hi;
    if (!(h > l)) h = aq_half_above(nextafterf(l, INFINITY));
    *lo_out = l;
    *hi_out = h;
}

void aq_fake_quantize_range(const float *x, float *y, size_t n, int bits, float lo, float hi) {
    const float levels = (float)((1u << bits) - 1u);
    const float s = levels / (hi - lo);
    const float inv = 1.0f / s;
    for (size_t i = 0; i < n; i++) y[i] = aq_clamped_code(x[i], s, lo, levels) * inv + lo;
}

void aq_quantize_codes_range(const float *x, uint8_t *codes, size_t n, int bits, float lo, float hi) {
    const float levels = (float)((1u << bits) - 1u);
    const float s = levels / (hi - lo);
    for (size_t i = 0; i < n; i++) codes[i] = (uint8_t)aq_clamped_code(x[i], s, lo, levels);
}

// Backward of aq_fake_quantize_range with LSQ's straight-through rules, written for the bounds:
// with v = s (x - lo) (the unrounded code) and r = round(v) - v,
//   inside  (0 <= v <= L): dx += dy;  d lo += -dy r / L;  d hi += dy r / L
//   below   (v < 0):       d lo += dy              (x_hat = lo)
//   above   (v > L):       d hi += dy              (x_hat = hi)
// (LSQ's d x_hat / d step = round(v) - v inside, 0 / L at the clamps, and d / d offset = 0
// inside, 1 at the clamps, by the chain rule step = (hi - lo) / L, offset = lo.)
// dx may be NULL. The bound gradients are returned summed in double.
void aq_fake_quantize_range_backward(const float *x, const float *dy, float *dx, size_t n, int bits,
                                     float lo, float hi, double *dlo, double *dhi) {
    const float levels = (float)((1u << bits) - 1u);
    const float s = levels / (hi - lo);
    double a = 0.0, b = 0.0;
    for (size_t i = 0; i < n; i++) {
        const float v = s * (x[i] - lo);
        const float g = dy[i];
        if (v < 0.0f) {
            a += g;
        } else if (v > levels) {
            b += g;
        } else {
            const double r = ((double)nearbyintf(v) - (double)v) / (double)levels;
            a -= (double)g * r;
            b += (double)g * r;
            if (dx) dx[i] += g;
        }
    }
    *dlo = a;
    *dhi = b;
}

// The super-network's mixed weight with fixed clipping bounds per (group, candidate), as
// aq_fake_quantize_accumulate and aq_fake_quantize_dot are for min/max ranges:
//   y += w * Q_b(x; lo, hi);  sum_i g[i] Q_b(x; lo, hi)[i] (in double);
//   dx[i] += w * dy[i] where x[i] lies inside the bounds (straight through, 0 where clamped).
void aq_fake_quantize_range_accumulate(const float *x, float *y, size_t n, int bits, float lo, float hi, float w) {
    if (bits <= 0 || w == 0.0f) return;
    const float levels = (float)((1u << bits) - 1u);
    const float s = levels / (hi - lo);
    const float inv = 1.0f / s;
    for (size_t i = 0; i < n; i++) y[i] += w * (aq_clamped_code(x[i], s, lo, levels) * inv + lo);
}

double aq_fake_quantize_range_dot(const float *x, const float *g, size_t n, int bits, float lo, float hi) {
    if (bits <= 0) return 0.0;
    const float levels = (float)((1u << bits) - 1u);
    const float s = levels / (hi - lo);
    const float inv = 1.0f / s;
    double acc = 0.0;
    for (size_t i = 0; i < n; i++) acc += (double)g[i] * (double)(aq_clamped_code(x[i], s, lo, levels) * inv + lo);
    return acc;
}

void aq_range_pass_accumulate(const float *x, const float *dy, float *dx, size_t n, int bits, float lo, float hi, float w) {
    if (bits <= 0 || w == 0.0f) return;
    const float levels = (float)((1u << bits) - 1u);
    const float s = levels / (hi - lo);
    for (size_t i = 0; i < n; i++) {
        const float v = s * (x[i] - lo);  // the inside test of aq_fake_quantize_range_backward
        if (v >= 0.0f && v <= levels) dx[i] += w * dy[i];
    }
}

// Squared error of quantizing x with the learned-range quantizer at (lo, hi) (already fp16).
static double aq_range_error(const float *x, size_t n, float levels, float lo, float hi) {
    const float s = levels / (hi - lo), inv = 1.0f / s;
    double e = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double d = (double)(aq_clamped_code(x[i], s, lo, levels) * inv + lo) - (double)x[i];
        e += d * d;
    }
    return e;
}

// The clipping bounds (fp16, as aq_learned_range gives them) that minimise the squared
// quantization error of the group: a search over the bounds pulled in toward the group's mean,
// first both by the same share (0, 2%, ..., 60% of the way), then each end on its own around
// the best (+-4% in steps of 1%). Starts from, and never does worse than, the min/max range.
// A constant group returns lo == hi (the quantizer passes it through).
void aq_mse_range(const float *x, size_t n, int bits, float *lo_out, float *hi_out) {
    float lo, hi;
    aq_group_range(x, n, &lo, &hi);
    *lo_out = lo;
    *hi_out = hi;
    if (bits <= 0 || !(hi > lo) || n == 0) return;
    double mean = 0.0;
    for (size_t i = 0; i < n; i++) mean += x[i];
    mean /= (double)n;
    const float levels = (float)((1u << bits) - 1u);
    float best_lo = lo, best_hi = hi;
    double best = aq_range_error(x, n, levels, lo, hi);
    const double dlo = mean - lo, dhi = hi - mean;
    double best_a = 0.0, best_b = 0.0;
    for (int k = 1; k <= 30; k++) {
        const double f = 0.02 * k;
        float l, h;
        aq_learned_range((float)(lo + f * dlo), (float)(hi - f * dhi), &l, &h);
        const double e = aq_range_error(x, n, levels, l, h);
        if (e < best) { best = e; best_lo = l; best_hi = h; best_a = f; best_b = f; }
    }
    const double a0 = best_a, b0 = best_b;
    for (int i = -4; i <= 4; i++) {
        for (int j = -4; j <= 4; j++) {
            const double a = a0 + 0.01 * i, b = b0 + 0.01 * j;
            if (a < 0.0 || b < 0.0 || a > 0.9 || b > 0.9 || (i == 0 && j == 0)) continue;
            float l, h;
            aq_learned_range((float)(lo + a * dlo), (float)(hi - b * dhi), &l, &h);
            const double e = aq_range_error(x, n, levels, l, h);
            if (e < best) { best = e; best_lo = l; best_hi = h; }
        }
    }
    *lo_out = best_lo;
    *hi_out = best_hi;
}
