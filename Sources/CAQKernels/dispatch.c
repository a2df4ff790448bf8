#include "aqkernels.h"
#include "vmath.h"

// -1 = not yet probed, 0 = portable, 1 = AVX2+FMA.
int aq_use_avx2_flag = -1;
static int aq_forced_portable = 0;

void aq_init_dispatch(void) {
    if (aq_forced_portable) { aq_use_avx2_flag = 0; return; }
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    aq_use_avx2_flag = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    aq_use_avx2_flag = 0;
#endif
}

__attribute__((constructor)) static void aq_dispatch_constructor(void) { aq_init_dispatch(); }

int aq_has_avx2(void) { return aq_use_avx2_flag > 0; }

void aq_force_portable(int portable) {
    aq_forced_portable = portable;
    aq_init_dispatch();
}

#if defined(__GLIBC__)
#include <malloc.h>
#endif
void aq_configure_allocator(void) {
#if defined(__GLIBC__)
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 0x7fffffff);
#endif
}
