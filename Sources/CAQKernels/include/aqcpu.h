// The one CPU dispatch of the kernels (cpu.c): the CPU is probed once, every kernel with a
// fast path asks aq_cpu_level() which one to run, and AQBERT_CPU (or aq_cpu_set_level) caps it.
#ifndef AQ_CPU_H
#define AQ_CPU_H
#ifdef __cplusplus
extern "C" {
#endif

/// Instruction levels, each a superset of the one before except that a CPU may have
/// AVX512-VNNI without AVX-VNNI (the VEX form); a cap picks the highest supported level <= it.
///   portable      plain C (every CPU; the reference every fast path is tested against)
///   avx2          AVX2 + FMA: the elementwise kernels, activation quantization, unpacking, the
///                 int8 GEMM with vpmaddubsw / vpmaddwd
///   avx-vnni      the int8 GEMM with 256-bit vpdpbusd
///   avx512-vnni   the int8 GEMM with 512-bit vpdpbusd (AVX-512 F, BW, VL and VNNI)
enum { AQ_CPU_PORTABLE = 0, AQ_CPU_AVX2 = 1, AQ_CPU_AVXVNNI = 2, AQ_CPU_AVX512VNNI = 3, AQ_CPU_MAX = 3 };

/// The level in use: the best the CPU supports, capped by AQBERT_CPU (read once, at the first
/// call: portable, avx2, avx-vnni or avx512-vnni; anything else is ignored) or by aq_cpu_set_level.
int aq_cpu_level(void);
/// The best level the CPU supports.
int aq_cpu_best_level(void);
/// 1 when the CPU can run `level`.
int aq_cpu_supports(int level);
/// Caps the level (the highest supported <= level); -1 restores AQBERT_CPU's cap (or none).
/// Process-wide, for tests and benchmarks, not for switching while kernels run.
void aq_cpu_set_level(int level);
/// "portable", "avx2", "avx-vnni", "avx512-vnni"; "unknown" otherwise.
const char *aq_cpu_level_name(int level);
/// The level AQBERT_CPU asks for, or -1 (unset or not a level name).
int aq_cpu_env_level(void);

/// Feature bits beyond the levels, for the choices that are not instruction levels:
/// BMI2 (pdep unpacking), pdep microcoded (AMD Zen 1/2: usable, never chosen), AVX-512 F/BW/VL/DQ
/// and AVX512-BF16 (which OpenBLAS core to pick, blas_core.c).
int aq_cpu_has_bmi2(void);
int aq_cpu_pdep_is_slow(void);
int aq_cpu_has_avx512(void);
int aq_cpu_has_avx512_bf16(void);

#ifdef __cplusplus
}
#endif
#endif
