// Micro-benchmark of aq_gemm_u8s8_f32 per int8 level (and cblas_sgemm on the same shape with
// -DWITH_OPENBLAS), single-threaded, best of several runs; checks that every level gives Y
// bit-identical to level 0; times aq_unpack_codes_s8 over the weight matrix per unpack path.
// Build (from the package root; SwiftPM compiles packed.c with clang, gcc works too):
//   clang -O3 -fno-math-errno -ISources/CAQKernels/include bench/packed_kernel_bench.c
//       Sources/CAQKernels/packed.c Sources/CAQKernels/packed_gemm.c -lm -o /tmp/packed_bench
//   [-DWITH_OPENBLAS -I/usr/include/x86_64-linux-gnu/openblas-pthread -lopenblas]
// Run: OPENBLAS_NUM_THREADS=1 OPENBLAS_CORETYPE=Cooperlake /tmp/packed_bench [M N K [bits]]
// (Debian's OpenBLAS picks its slow Prescott kernels on this CPU without OPENBLAS_CORETYPE.)
#include "aqpacked.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(WITH_OPENBLAS)
#include <cblas.h>
#endif

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t next_u32(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng >> 33);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

// Best of `reps` timed runs (the machine is shared: the minimum is the least disturbed).
#define TIME_BEST(reps, body) ({ double best_ = 1e30; for (int r_ = 0; r_ < (reps); r_++) { \
    double t0_ = now(); body; double t_ = now() - t0_; if (t_ < best_) best_ = t_; } best_; })

static void run(size_t M, size_t N, size_t K, int bits) {
    uint8_t *A = malloc(M * K);
    int8_t *B = malloc(N * K);
    int32_t *as = malloc(M * sizeof(int32_t));
    float *al = malloc(N * 4), *be = malloc(N * 4), *ga = malloc(N * 4);
    float *Y0 = malloc(M * N * 4), *Y = malloc(M * N * 4);
    const int off = bits == 8 ? 128 : 0, bmax = bits == 8 ? 128 : (1 << bits) - 1;
    for (size_t i = 0; i < M * K; i++) A[i] = (uint8_t)next_u32();
    for (size_t i = 0; i < N * K; i++) B[i] = (int8_t)((int)(next_u32() & ((1u << bits) - 1)) - off);
    for (size_t m = 0; m < M; m++) {
        int s = 0;
        for (size_t k = 0; k < K; k++) s += A[m * K + k];
        as[m] = s;
    }
    for (size_t n = 0; n < N; n++) al[n] = 1e-4f * (1 + n % 7), be[n] = 1e-3f, ga[n] = 0.5f;
    const double ops = 2.0 * M * N * K;
    const int reps = M * N * K > 500000000 ? 3 : 15;
    printf("M=%zu N=%zu K=%zu bits=%d\n", M, N, K, bits);
    aq_set_int8_level(0);
    aq_gemm_u8s8_f32(A, K, as, B, K, M, N, K, bmax, al, be, ga, Y0, N);
    aq_set_int8_level(-1);
    const int best = aq_int8_level();
    for (int l = 0; l <= best; l++) {
        aq_set_int8_level(l);
        if (aq_int8_level() != l) continue;
        memset(Y, 0, M * N * 4);
        aq_gemm_u8s8_f32(A, K, as, B, K, M, N, K, bmax, al, be, ga, Y, N);
        int same = memcmp(Y, Y0, M * N * 4) == 0;
        double t = TIME_BEST(l == 0 ? 2 : reps, aq_gemm_u8s8_f32(A, K, as, B, K, M, N, K, bmax, al, be, ga, Y, N));
        printf("  level %d %-12s %8.1f GOPS  %8.3f ms  %s\n", l, aq_int8_level_name(l), ops / t * 1e-9, t * 1e3,
               same ? "bit-identical to level 0" : "MISMATCH vs level 0");
    }
    aq_set_int8_level(-1);
#if defined(WITH_OPENBLAS)
    float *Af = malloc(M * K * 4), *Bf = malloc(N * K * 4);
    for (size_t i = 0; i < M * K; i++) Af[i] = A[i];
    for (size_t i = 0; i < N * K; i++) Bf[i] = B[i];
    double t = TIME_BEST(reps, cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1.0f, Af,
                                           (int)K, Bf, (int)K, 0.0f, Y, (int)N));
    printf("  openblas sgemm (%s) %8.1f GFLOPS  %8.3f ms\n", openblas_get_corename(), ops / t * 1e-9, t * 1e3);
    free(Af);
    free(Bf);
#endif
    // Unpacking the whole weight matrix (done once per forward call by the Swift side).
    if (bits >= 1) {
        size_t rb = aq_packed_row_bytes(K, bits);
        uint8_t *codes = malloc(K), *packed = malloc(N * rb);
        for (size_t n = 0; n < N; n++) {
            for (size_t k = 0; k < K; k++) codes[k] = (uint8_t)(B[n * K + k] + off);
            aq_pack_codes(codes, K, bits, packed + n * rb);
        }
        for (int p = 0; p <= 2; p++) {
            aq_set_unpack_path(p);
            if (aq_unpack_path() != p) continue;
            double tu = TIME_BEST(reps, for (size_t n = 0; n < N; n++) aq_unpack_codes_s8(packed + n * rb, K, bits, off, B + n * K));
            printf("  unpack s8 path %d: %.2f Gcodes/s\n", p, N * K / tu * 1e-9);
        }
        aq_set_unpack_path(-1);
        free(codes);
        free(packed);
    }
    free(A); free(B); free(as); free(al); free(be); free(ga); free(Y0); free(Y);
}

int main(int argc, char **argv) {
    if (argc >= 4) {
        run(strtoul(argv[1], 0, 10), strtoul(argv[2], 0, 10), strtoul(argv[3], 0, 10), argc >= 5 ? atoi(argv[4]) : 4);
        return 0;
    }
    run(128, 1536, 384, 4);
    run(4096, 1536, 384, 4);
    run(128, 1536, 384, 8);
    return 0;
}
