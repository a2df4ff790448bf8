// Shared by packed.c (bit packing, activation quantization, dispatch) and packed_gemm.c
// (the int8 GEMM): instruction levels and per-function target attributes. Not public.
#ifndef AQ_PACKED_INTERNAL_H
#define AQ_PACKED_INTERNAL_H
#include "aqcpu.h"
#include "aqpacked.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#if defined(__x86_64__)
#define AQ_TGT_BMI2 __attribute__((target("bmi2")))
#define AQ_TGT_AVX2 __attribute__((target("avx2,fma")))
#define AQ_TGT_AVXVNNI __attribute__((target("avx2,fma,avxvnni")))
#define AQ_TGT_AVX512VNNI __attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")))
#define AQ_INLINE static inline __attribute__((always_inline))
#endif

#endif
