#include "aqcpu.h"
#include "aqkernels.h"

int aq_has_avx2(void) { return aq_cpu_level() >= AQ_CPU_AVX2; }

#if defined(__GLIBC__)
#include <malloc.h>
#endif
void aq_configure_allocator(void) {
#if defined(__GLIBC__)
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 0x7fffffff);
#endif
}
