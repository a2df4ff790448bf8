#if canImport(Glibc)
import Glibc
#endif

/// A contiguous, 64-byte aligned fp32 buffer owned by one or more tensors.
public final class Storage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int
    /// Bytes mapped with mmap (lazily zeroed pages), 0 for heap storage.
    private var mappedBytes = 0

    /// Uninitialised storage of `count` floats.
    public init(uninitializedCount count: Int) {
        self.count = count
        var raw: UnsafeMutableRawPointer?
        let bytes = max(64, count * MemoryLayout<Float>.stride)
        if posix_memalign(&raw, 64, bytes) != 0 || raw == nil {
            // Allocation failure is not recoverable for a numeric kernel.
            preconditionFailure("out of memory allocating \(bytes) bytes")
        }
        pointer = raw!.bindMemory(to: Float.self, capacity: max(1, count))
    }

    /// Zero-filled storage whose pages cost no memory until first written: large buffers are
    /// anonymous mappings (the kernel's zero pages), small ones heap memory. For parameters: a
    /// parameter that is never written (the fp32 copy of a matrix a packed model replaces) never
    /// becomes resident.
    public init(lazyZeros count: Int) {
        self.count = count
        let bytes = count * MemoryLayout<Float>.stride
        #if canImport(Glibc)
        if bytes >= 1 << 18, let raw = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
           raw != MAP_FAILED {
            pointer = raw.bindMemory(to: Float.self, capacity: count)
            mappedBytes = bytes
            return
        }
        #endif
        var raw: UnsafeMutableRawPointer?
        if posix_memalign(&raw, 64, max(64, bytes)) != 0 || raw == nil {
            preconditionFailure("out of memory allocating \(bytes) bytes")
        }
        pointer = raw!.bindMemory(to: Float.self, capacity: max(1, count))
        if bytes > 0 { memset(pointer, 0, bytes) }
    }

    /// Zero-filled storage.
    public convenience init(zeros count: Int) {
        self.init(uninitializedCount: count)
        if count > 0 { memset(pointer, 0, count * MemoryLayout<Float>.stride) }
    }

    public convenience init(_ values: [Float]) {
        self.init(uninitializedCount: values.count)
        values.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { pointer.update(from: base, count: values.count) }
        }
    }

    deinit {
        #if canImport(Glibc)
        if mappedBytes > 0 {
            munmap(UnsafeMutableRawPointer(pointer), mappedBytes)
            return
        }
        #endif
        free(pointer)
    }

    public var buffer: UnsafeMutableBufferPointer<Float> { .init(start: pointer, count: count) }

    public func zero() {
        if count > 0 { memset(pointer, 0, count * MemoryLayout<Float>.stride) }
    }

    public func copy() -> Storage {
        let s = Storage(uninitializedCount: count)
        s.pointer.update(from: pointer, count: count)
        return s
    }
}

/// A heap byte buffer (dropout keep-masks): `count` bytes at `pointer`, which is `offset` bytes
/// into an allocation of `capacity` bytes (a slice of a larger mask, see `BatchRows`).
public final class ByteBuffer: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<UInt8>
    public let count: Int
    /// The whole allocation.
    public let base: UnsafeMutablePointer<UInt8>
    public let capacity: Int
    public convenience init(count: Int) { self.init(count: count, capacity: count, offset: 0) }
    public init(count: Int, capacity: Int, offset: Int) {
        precondition(offset >= 0 && offset + count <= capacity, "ByteBuffer: \(count) bytes at \(offset) of \(capacity)")
        self.count = count
        self.capacity = capacity
        base = .allocate(capacity: max(1, capacity))
        pointer = base + offset
    }
    deinit { base.deallocate() }
}
