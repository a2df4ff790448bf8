// OpenBLAS core selection.
//
// Debian's OpenBLAS 0.3.21 (DYNAMIC_ARCH) does not know recent Intel models (e.g. Sapphire
// Rapids) and falls back to its SSE3 "Prescott" kernels: ~18 GFLOP/s sgemm on one core where
// the AVX-512 "Cooperlake" kernels reach ~150 on the same machine. When the user has not set
// OPENBLAS_CORETYPE and OpenBLAS chose Prescott on a CPU with AVX2/AVX-512, re-run its dynamic
// core selection with the best core the CPU supports (the same path OPENBLAS_CORETYPE takes at
// load time). This runs from a constructor, before any BLAS call. Symbols are looked up with
// dlsym, so other BLAS builds are left alone.
//
// OpenBLAS's own constructor has already started its server threads, and each one calls
// gotoblas_dynamic_init() from its first blas_memory_alloc(); swapping the core table under
// a running server thread is a data race (seen as a rare SIGSEGV in a thread with only
// libc and OpenBLAS frames). So the server threads are shut down (joined) first; OpenBLAS
// starts them again on demand, with the new table in place.
#include "aqcpu.h"
#include "aqkernels.h"
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

static char aq_core_before[32] = "";
static char aq_core_after[32] = "";

static const char *aq_best_core(void) {
    if (aq_cpu_has_avx512()) return aq_cpu_has_avx512_bf16() ? "Cooperlake" : "SkylakeX";
    if (aq_cpu_supports(AQ_CPU_AVX2)) return "Haswell";
    return NULL;
}

void aq_select_blas_core(void) {
    char *(*corename)(void) = (char *(*)(void))dlsym(RTLD_DEFAULT, "openblas_get_corename");
    void (*dyn_init)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "gotoblas_dynamic_init");
    void (*dyn_quit)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "gotoblas_dynamic_quit");
    int (*threads_shutdown)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "blas_thread_shutdown_");
    if (!corename) return;
    strncpy(aq_core_before, corename(), sizeof aq_core_before - 1);
    strncpy(aq_core_after, aq_core_before, sizeof aq_core_after - 1);
    if (getenv("OPENBLAS_CORETYPE") || getenv("AQBERT_KEEP_BLAS_CORE")) return;
    if (!dyn_init || !dyn_quit || strcasecmp(aq_core_before, "Prescott") != 0) return;
    const char *best = aq_best_core();
    if (!best) return;
    if (threads_shutdown) threads_shutdown();
    setenv("OPENBLAS_CORETYPE", best, 1);
    dyn_quit();
    dyn_init();
    unsetenv("OPENBLAS_CORETYPE");
    strncpy(aq_core_after, corename(), sizeof aq_core_after - 1);
}

__attribute__((constructor)) static void aq_blas_core_constructor(void) { aq_select_blas_core(); }

const char *aq_blas_core_name(void) { return aq_core_after; }
const char *aq_blas_core_detected(void) { return aq_core_before; }
