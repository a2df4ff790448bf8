// Internal: AVX2+FMA vector math used by the kernels. Not part of the public header.
// exp: Cephes polynomial (as in avx_mathfun / Sleef u10 class accuracy, ~1 ulp on [-87, 88]).
// erf: Abramowitz & Stegun 7.1.26, the same formula PyTorch's Vectorized<float>::erf uses
//      (aten/src/ATen/cpu/vec/vec256/vec256_float.h), max abs error 1.5e-7.
#ifndef AQ_VMATH_H
#define AQ_VMATH_H
#include <math.h>

#include "aqcpu.h"
// True when the AVX2+FMA paths run (aq_cpu_level(); never on other architectures, where they
// are not compiled).
static inline int aq_avx2(void) { return aq_cpu_level() >= AQ_CPU_AVX2; }

#if defined(__x86_64__)
#include <immintrin.h>
#define AQ_AVX2 __attribute__((target("avx2,fma")))

AQ_AVX2 static inline __m256 aq_exp256(__m256 x) {
    const __m256 hi = _mm256_set1_ps(88.3762626647949f), lo = _mm256_set1_ps(-88.3762626647949f);
    // Operand order makes a NaN pass through (maxps/minps return their second operand then),
    // so exp(NaN) is NaN as in libm, not exp(-88).
    x = _mm256_min_ps(hi, _mm256_max_ps(lo, x));
    __m256 fx = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f));
    fx = _mm256_floor_ps(fx);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 z = _mm256_mul_ps(x, x);
    __m256 y = _mm256_set1_ps(1.9875691500E-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507E-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073E-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894E-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459E-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201E-1f));
    y = _mm256_fmadd_ps(y, z, x);
    y = _mm256_add_ps(y, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_cvttps_epi32(fx);
    e = _mm256_add_epi32(e, _mm256_set1_epi32(127));
    e = _mm256_slli_epi32(e, 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

AQ_AVX2 static inline __m256 aq_erf256(__m256 x) {
    const __m256 neg_zero = _mm256_set1_ps(-0.f), one = _mm256_set1_ps(1.0f);
    __m256 sign = _mm256_and_ps(neg_zero, x);
    __m256 ax = _mm256_xor_ps(sign, x);
    __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(0.3275911f), ax, one));
    __m256 r = _mm256_fmadd_ps(_mm256_set1_ps(1.061405429f), t, _mm256_set1_ps(-1.453152027f));
    r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(1.421413741f));
    r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(-0.284496736f));
    r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(0.254829592f));
    __m256 e = aq_exp256(_mm256_xor_ps(neg_zero, _mm256_mul_ps(x, x)));
    __m256 v = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_xor_ps(neg_zero, e), t), r, one);
    return _mm256_xor_ps(sign, v);
}

// tanh(u) = sign(u) * (1 - 2 / (exp(2|u|) + 1))
AQ_AVX2 static inline __m256 aq_tanh256(__m256 u) {
    const __m256 neg_zero = _mm256_set1_ps(-0.f), one = _mm256_set1_ps(1.0f);
    __m256 sign = _mm256_and_ps(neg_zero, u);
    __m256 au = _mm256_xor_ps(sign, u);
    __m256 e = aq_exp256(_mm256_add_ps(au, au));
    __m256 v = _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, one)));
    return _mm256_xor_ps(sign, v);
}

AQ_AVX2 static inline float aq_hsum256(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    __m128 sh = _mm_movehdup_ps(lo);
    lo = _mm_add_ps(lo, sh);
    sh = _mm_movehl_ps(sh, lo);
    return _mm_cvtss_f32(_mm_add_ss(lo, sh));
}

AQ_AVX2 static inline float aq_hmax256(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_max_ps(lo, hi);
    lo = _mm_max_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_max_ss(lo, _mm_shuffle_ps(lo, lo, 1));
    return _mm_cvtss_f32(lo);
}
#endif // __x86_64__
#endif
