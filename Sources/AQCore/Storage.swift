#if canImport(Glibc)
import Glibc
#endif

/// A contiguous, 64-byte aligned fp32 buffer owned by one or more tensors.
public final class Storage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int

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

    deinit { free(pointer) }

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

/// A heap byte buffer (dropout keep-masks).
public final class ByteBuffer: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<UInt8>
    public let count: Int
    public init(count: Int) {
        self.count = count
        pointer = .allocate(capacity: max(1, count))
    }
    deinit { pointer.deallocate() }
}
