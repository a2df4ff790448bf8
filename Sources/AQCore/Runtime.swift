import COpenBLAS
import CAQKernels
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// Process-wide execution settings: how many threads the kernels use.
///
/// All parallelism is aqbert's own: OpenBLAS runs single-threaded inside each worker and
/// large GEMMs are split by rows across `threads` workers, so BLAS threads and elementwise
/// threads never compete for the same cores (no oversubscription, no spinning BLAS workers).
public enum Runtime {
    nonisolated(unsafe) private static var _threads: Int = defaultThreads()

    /// Number of worker threads (>= 1). Setting it also pins OpenBLAS to one thread.
    public static var threads: Int {
        get { _threads }
        set {
            _threads = max(1, newValue)
            openblas_set_num_threads(1)
        }
    }

    static func defaultThreads() -> Int {
        openblas_set_num_threads(1)
        configureAllocator()
        return max(1, min(ProcessInfo_activeCores(), 64))
    }

    /// Keep freed activation buffers in the heap instead of returning them to the OS: a
    /// training step allocates and frees the same large buffers every step, and fresh mmap'd
    /// pages would page-fault on first touch each time.
    static func configureAllocator() {
        aq_configure_allocator()
    }

    /// Runs `body(chunk, range)` over `0..<count` split into at most `threads` contiguous chunks,
    /// only when each chunk gets at least `grain` items; otherwise runs inline.
    @inline(__always)
    public static func parallelFor(_ count: Int, grain: Int = 1 << 14, _ body: (Range<Int>) -> Void) {
        let workers = min(threads, max(1, count / max(1, grain)))
        if workers <= 1 {
            body(0..<count)
            return
        }
        let chunk = (count + workers - 1) / workers
        // aqbert's spinning pool (pool.c): sections of tens of microseconds, back to back, start
        // without a kernel wake-up each.
        withoutActuallyEscaping(body) { body in
            var task: (Int) -> Void = { w in
                let lo = w * chunk
                let hi = min(count, lo + chunk)
                if lo < hi { body(lo..<hi) }
            }
            withUnsafeMutablePointer(to: &task) { p in
                aq_pool_run(workers, Int32(threads), { ctx, i in
                    ctx!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(Int(i))
                }, p)
            }
        }
    }

    /// The OpenBLAS kernel family in use, and the one OpenBLAS picked on its own when aqbert
    /// replaced its generic fallback (see Sources/CAQKernels/blas_core.c).
    public static var blasCore: (inUse: String, detected: String) {
        (String(cString: aq_blas_core_name()), String(cString: aq_blas_core_detected()))
    }

    /// Peak resident set size of this process in bytes (Linux `VmHWM`), or nil if unknown.
    public static func peakResidentBytes() -> Int? {
        #if canImport(Glibc)
        var usage = rusage()
        guard getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage) == 0 else { return nil }
        return Int(usage.ru_maxrss) * 1024
        #else
        return nil
        #endif
    }
}

private func ProcessInfo_activeCores() -> Int {
    #if canImport(Glibc)
    return Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    #else
    return 1
    #endif
}
