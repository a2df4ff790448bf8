// A small fork-join thread pool whose workers spin for a while between jobs.
//
// A forward pass at batch 1 is hundreds of parallel sections of 10-100 us each; a worker that
// sleeps between them (libdispatch) costs a kernel wake-up per section, which at that size
// takes longer than the work. Here workers spin (with pause) for about 100 us after each job
// before sleeping on a condition variable, so back-to-back sections start at once, and an idle
// process goes quiet.
//
// aq_pool_run(n, threads, fn, ctx) runs fn(ctx, i) for every i < n on the caller and up to
// threads - 1 workers (indices are claimed dynamically) and returns when all are done. A call from inside a job
// (nested) or while another thread's job is running runs inline on the caller, so it can never
// deadlock.
#include "aqkernels.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define AQ_PAUSE() _mm_pause()
#else
#define AQ_PAUSE() ((void)0)
#endif

enum { AQ_POOL_MAX = 64, AQ_POOL_SPIN_NS = 100000 };

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;   // one job at a time
static pthread_mutex_t sleep_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static int workers;                                              // started so far
static _Atomic unsigned long generation;                         // bumped per job
static _Atomic long next_index, total_count;
static _Atomic int unfinished;                                   // workers still in the job
static aq_pool_fn job_fn;
static void *job_ctx;
static _Thread_local int inside_job;

static long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long)t.tv_sec * 1000000000L + t.tv_nsec;
}

static void claim_and_run(void) {
    const long n = atomic_load_explicit(&total_count, memory_order_acquire);
    for (;;) {
        long i = atomic_fetch_add_explicit(&next_index, 1, memory_order_relaxed);
        if (i >= n) break;
        job_fn(job_ctx, i);
    }
}

static void *worker_main(void *arg) {
    inside_job = 1;  // a job's nested parallel sections run inline
    // The generation before the job that started this worker: the worker must take part in
    // that job even if it gets scheduled only after the job was posted.
    unsigned long seen = (unsigned long)(uintptr_t)arg;
    for (;;) {
        // Spin for the next job, then sleep.
        long start = now_ns();
        unsigned spins = 0;
        while (atomic_load_explicit(&generation, memory_order_acquire) == seen) {
            AQ_PAUSE();
            if ((++spins & 255) == 0 && now_ns() - start > AQ_POOL_SPIN_NS) {
                pthread_mutex_lock(&sleep_lock);
                while (atomic_load_explicit(&generation, memory_order_acquire) == seen) pthread_cond_wait(&wake, &sleep_lock);
                pthread_mutex_unlock(&sleep_lock);
                break;
            }
        }
        seen = atomic_load_explicit(&generation, memory_order_acquire);
        claim_and_run();
        atomic_fetch_sub_explicit(&unfinished, 1, memory_order_acq_rel);
    }
    return NULL;
}

void aq_pool_run(long n, int threads, aq_pool_fn fn, void *ctx) {
    if (n <= 0) return;
    if (threads > AQ_POOL_MAX) threads = AQ_POOL_MAX;
    if (n == 1 || threads <= 1 || inside_job || pthread_mutex_trylock(&pool_lock) != 0) {
        for (long i = 0; i < n; i++) fn(ctx, i);
        return;
    }
    while (workers < threads - 1) {
        pthread_t t;
        void *seen = (void *)(uintptr_t)atomic_load(&generation);
        if (pthread_create(&t, NULL, worker_main, seen) != 0) break;
        pthread_detach(t);
        workers++;
    }
    if (workers == 0) {
        pthread_mutex_unlock(&pool_lock);
        for (long i = 0; i < n; i++) fn(ctx, i);
        return;
    }
    job_fn = fn;
    job_ctx = ctx;
    atomic_store_explicit(&next_index, 0, memory_order_relaxed);
    atomic_store_explicit(&total_count, n, memory_order_relaxed);
    atomic_store_explicit(&unfinished, workers, memory_order_relaxed);
    pthread_mutex_lock(&sleep_lock);
    atomic_fetch_add_explicit(&generation, 1, memory_order_release);
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&sleep_lock);
    inside_job = 1;
    claim_and_run();
    inside_job = 0;
    while (atomic_load_explicit(&unfinished, memory_order_acquire) > 0) AQ_PAUSE();
    pthread_mutex_unlock(&pool_lock);
}
