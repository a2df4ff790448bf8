// The one CPU probe of the kernels (API in include/aqcpu.h). Nothing else in CAQKernels asks the
// CPU what it supports. The probe runs once, lazily (constructors of other files may call in
// before this file's would run), and is idempotent, so a racing second probe is harmless.
#include "aqcpu.h"
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif

enum {
    F_AVX2 = 1 << 0,       // AVX2 and FMA
    F_AVXVNNI = 1 << 1,
    F_AVX512VNNI = 1 << 2, // with F, BW, VL
    F_BMI2 = 1 << 3,
    F_PDEP_SLOW = 1 << 4,
    F_AVX512 = 1 << 5,     // F, BW, VL, DQ
    F_AVX512BF16 = 1 << 6,
    F_PROBED = 1 << 30,
};

static int features = 0;        // F_* bits, F_PROBED once probed
static int env_cap = -1;        // AQBERT_CPU's level, -1 = none
static int forced_cap = -2;     // aq_cpu_set_level's cap; -2 = not set (use env_cap)

static int level_of_name(const char *s) {
    if (!s) return -1;
    if (!strcmp(s, "portable")) return AQ_CPU_PORTABLE;
    if (!strcmp(s, "avx2")) return AQ_CPU_AVX2;
    if (!strcmp(s, "avx-vnni")) return AQ_CPU_AVXVNNI;
    if (!strcmp(s, "avx512-vnni")) return AQ_CPU_AVX512VNNI;
    return -1;
}

static int probe(void) {
    int f = __atomic_load_n(&features, __ATOMIC_ACQUIRE);
    if (f & F_PROBED) return f;
    f = F_PROBED;
#if defined(__x86_64__)
    __builtin_cpu_init();
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512vl");
    if (avx2) f |= F_AVX2;
    if (avx2 && __builtin_cpu_supports("avxvnni")) f |= F_AVXVNNI;
    if (avx2 && avx512 && __builtin_cpu_supports("avx512vnni")) f |= F_AVX512VNNI;
    if (avx512 && __builtin_cpu_supports("avx512dq")) {
        f |= F_AVX512;
        unsigned a = 0, b = 0, c = 0, d = 0;
        if (__get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 5))) f |= F_AVX512BF16;
    }
    if (__builtin_cpu_supports("bmi2")) {
        f |= F_BMI2;
        if (__builtin_cpu_is("znver1") || __builtin_cpu_is("znver2")) f |= F_PDEP_SLOW;
    }
#endif
    __atomic_store_n(&env_cap, level_of_name(getenv("AQBERT_CPU")), __ATOMIC_RELAXED);
    __atomic_store_n(&features, f, __ATOMIC_RELEASE);
    return f;
}

int aq_cpu_supports(int level) {
    int f = probe();
    switch (level) {
    case AQ_CPU_PORTABLE: return 1;
    case AQ_CPU_AVX2: return (f & F_AVX2) != 0;
    case AQ_CPU_AVXVNNI: return (f & F_AVXVNNI) != 0;
    case AQ_CPU_AVX512VNNI: return (f & F_AVX512VNNI) != 0;
    default: return 0;
    }
}

int aq_cpu_best_level(void) {
    for (int l = AQ_CPU_MAX; l > 0; l--)
        if (aq_cpu_supports(l)) return l;
    return AQ_CPU_PORTABLE;
}

int aq_cpu_env_level(void) {
    probe();
    return __atomic_load_n(&env_cap, __ATOMIC_RELAXED);
}

int aq_cpu_level(void) {
    probe();
    int cap = __atomic_load_n(&forced_cap, __ATOMIC_RELAXED);
    if (cap == -2) cap = __atomic_load_n(&env_cap, __ATOMIC_RELAXED);
    if (cap < 0 || cap > AQ_CPU_MAX) cap = AQ_CPU_MAX;
    for (int l = cap; l > 0; l--)
        if (aq_cpu_supports(l)) return l;
    return AQ_CPU_PORTABLE;
}

void aq_cpu_set_level(int level) { __atomic_store_n(&forced_cap, level < 0 ? -2 : level, __ATOMIC_RELAXED); }

const char *aq_cpu_level_name(int level) {
    switch (level) {
    case AQ_CPU_PORTABLE: return "portable";
    case AQ_CPU_AVX2: return "avx2";
    case AQ_CPU_AVXVNNI: return "avx-vnni";
    case AQ_CPU_AVX512VNNI: return "avx512-vnni";
    default: return "unknown";
    }
}

int aq_cpu_has_bmi2(void) { return (probe() & F_BMI2) != 0; }
int aq_cpu_pdep_is_slow(void) { return (probe() & F_PDEP_SLOW) != 0; }
int aq_cpu_has_avx512(void) { return (probe() & F_AVX512) != 0; }
int aq_cpu_has_avx512_bf16(void) { return (probe() & F_AVX512BF16) != 0; }
