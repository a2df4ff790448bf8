import CMPI
import Foundation

/// The processes of one run: a single process, or the ranks of an MPI job (`mpirun -np N
/// aqbert ...`, Open MPI). MPI is started only when the launcher's environment says the process
/// is one of several, so a binary started without `mpirun` makes no MPI call at all; with one
/// process every collective is the identity.
///
/// Only the calling thread of `world` may use it (MPI_THREAD_FUNNELED): aqbert's worker threads
/// compute, the main thread communicates.
public final class ProcessGroup: @unchecked Sendable {
    /// This process's rank, 0..<size.
    public let rank: Int
    /// Number of processes in the run.
    public let size: Int
    /// Number of this run's processes on this machine (for the default threads per rank).
    public let localSize: Int
    let communicator: MPI_Comm?

    /// A group of one process (no MPI).
    public static let single = ProcessGroup()

    private init() {
        rank = 0
        size = 1
        localSize = 1
        communicator = nil
    }

    private init(rank: Int, size: Int, localSize: Int, communicator: MPI_Comm) {
        self.rank = rank
        self.size = size
        self.localSize = localSize
        self.communicator = communicator
    }

    /// Whether the launcher started this process as one of several: Open MPI's `mpirun` sets
    /// OMPI_COMM_WORLD_SIZE, PMIx launchers (srun, prterun) PMIX_RANK.
    public static func launchedByMPI(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        if let size = environment["OMPI_COMM_WORLD_SIZE"].flatMap(Int.init) { return size > 1 }
        return environment["PMIX_RANK"] != nil
    }

    /// This process's rank as the launcher's environment gives it (before MPI starts), if it
    /// was launched as one of several.
    public static func launcherRank(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Int? {
        guard launchedByMPI(environment) else { return nil }
        return (environment["OMPI_COMM_WORLD_RANK"] ?? environment["PMIX_RANK"]).flatMap(Int.init)
    }

    nonisolated(unsafe) private static var started: ProcessGroup?

    /// The run's group: `single` unless `launchedByMPI()`, else MPI_COMM_WORLD, started on the
    /// first call (MPI_Init_thread; errors are returned, not fatal, so that they become aqbert's
    /// one-line errors). Call from the main thread.
    public static func world() throws -> ProcessGroup {
        if let started { return started }
        guard launchedByMPI() else {
            started = .single
            return .single
        }
        var provided: Int32 = 0
        let status = MPI_Init_thread(nil, nil, aq_mpi_thread_funneled(), &provided)
        guard status == aq_mpi_success() else { throw ParallelError("MPI_Init_thread failed (\(errorText(status)))") }
        guard let comm = aq_mpi_world() else { throw ParallelError("MPI_COMM_WORLD is not available") }
        MPI_Comm_set_errhandler(comm, aq_mpi_errors_return())
        var rank: Int32 = 0, size: Int32 = 0
        MPI_Comm_rank(comm, &rank)
        MPI_Comm_size(comm, &size)
        let local = ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap(Int.init) ?? Int(size)
        let group = ProcessGroup(rank: Int(rank), size: Int(size), localSize: max(1, local), communicator: comm)
        started = group
        return group
    }

    /// The group started by `world()`, if any (nil before the first call).
    public static var current: ProcessGroup? { started }

    /// Ends MPI for a group started by `world()` (a no-op otherwise). Every rank calls it once,
    /// at the end of a successful run.
    public static func finish() {
        if let started, started.communicator != nil { MPI_Finalize() }
        started = nil
    }

    /// Ends every process of the run with `code` (MPI_Abort), or this one alone without MPI.
    public func abort(code: Int32) -> Never {
        if let communicator { MPI_Abort(communicator, code) }
        exit(code)
    }

    func check(_ status: Int32, _ what: String) throws {
        if status != aq_mpi_success() { throw ParallelError("\(what) failed on rank \(rank) (\(Self.errorText(status)))") }
    }

    private static func errorText(_ status: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: Int(MPI_MAX_ERROR_STRING) + 1)
        var length: Int32 = 0
        MPI_Error_string(status, &buffer, &length)
        return String(cString: buffer)
    }

    /// Element-wise sum over the ranks, in place on every rank. Every rank gets the same bits:
    /// Open MPI combines the contributions in one order and distributes the result.
    public func allReduceSum(_ values: UnsafeMutablePointer<Float>, count: Int) throws {
        guard let communicator, count > 0 else { return }
        var offset = 0
        while offset < count {  // MPI counts are Int32
            let n = min(count - offset, Int(Int32.max))
            try check(MPI_Allreduce(aq_mpi_in_place(), values + offset, Int32(n), aq_mpi_float(), aq_mpi_sum(), communicator),
                      "MPI_Allreduce")
            offset += n
        }
    }

    /// Starts an element-wise sum over the ranks, in place, without waiting for it (every rank
    /// starts the same sums in the same order); `values` must stay untouched until `wait`.
    public func startSum(_ values: UnsafeMutablePointer<Float>, count: Int) throws -> PendingSum {
        guard let communicator, count > 0 else { return PendingSum(group: self, request: nil) }
        guard count <= Int(Int32.max) else { throw ParallelError("a sum of \(count) values is larger than one MPI call takes") }
        var request: MPI_Request? = aq_mpi_request_null()
        try check(MPI_Iallreduce(aq_mpi_in_place(), values, Int32(count), aq_mpi_float(), aq_mpi_sum(), communicator, &request),
                  "MPI_Iallreduce")
        return PendingSum(group: self, request: request)
    }

    /// A sum started by `startSum`.
    public final class PendingSum {
        let group: ProcessGroup
        var request: MPI_Request?
        init(group: ProcessGroup, request: MPI_Request?) {
            self.group = group
            self.request = request
        }

        /// Lets MPI move the sum on (Open MPI progresses a non-blocking collective only inside
        /// MPI calls); true when it has finished.
        @discardableResult
        public func test() throws -> Bool {
            guard request != nil, request != aq_mpi_request_null() else { return true }
            var done: Int32 = 0
            try group.check(MPI_Test(&request, &done, aq_mpi_status_ignore()), "MPI_Test")
            return done != 0
        }

        /// Waits until the sum has finished.
        public func wait() throws {
            guard request != nil, request != aq_mpi_request_null() else { return }
            try group.check(MPI_Wait(&request, aq_mpi_status_ignore()), "MPI_Wait")
        }
    }

    /// Element-wise sum over the ranks of a small vector of doubles.
    public func allReduceSum(_ values: inout [Double]) throws {
        guard let communicator, !values.isEmpty else { return }
        let n = Int32(values.count)
        try values.withUnsafeMutableBufferPointer {
            try check(MPI_Allreduce(aq_mpi_in_place(), $0.baseAddress, n, aq_mpi_double(), aq_mpi_sum(), communicator), "MPI_Allreduce")
        }
    }

    /// Element-wise maximum over the ranks.
    public func allReduceMax(_ values: inout [Int64]) throws {
        guard let communicator, !values.isEmpty else { return }
        let n = Int32(values.count)
        try values.withUnsafeMutableBufferPointer {
            try check(MPI_Allreduce(aq_mpi_in_place(), $0.baseAddress, n, aq_mpi_long(), aq_mpi_max(), communicator), "MPI_Allreduce")
        }
    }

    /// Element-wise maximum over the ranks.
    public func allReduceMax(_ values: inout [Double]) throws {
        guard let communicator, !values.isEmpty else { return }
        let n = Int32(values.count)
        try values.withUnsafeMutableBufferPointer {
            try check(MPI_Allreduce(aq_mpi_in_place(), $0.baseAddress, n, aq_mpi_double(), aq_mpi_max(), communicator), "MPI_Allreduce")
        }
    }

    /// `bytes` bytes from `root` to every rank.
    public func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int = 0) throws {
        guard let communicator, bytes > 0 else { return }
        try check(MPI_Bcast(buffer, Int32(bytes), aq_mpi_byte(), Int32(root), communicator), "MPI_Bcast")
    }

    /// Waits until every rank has called it.
    public func barrier() throws {
        guard let communicator else { return }
        try check(MPI_Barrier(communicator), "MPI_Barrier")
    }

    /// Runs `body` on every rank and agrees on the outcome: when it throws on any rank, it throws
    /// on every rank, the same `AgreedError` carrying the lowest failing rank's message, so that
    /// input checks (a bad path, a malformed file) end the whole run with one message printed once.
    public func agree<T>(_ body: () throws -> T) throws -> T {
        var result: Result<T, Error>
        do { result = .success(try body()) } catch { result = .failure(error) }
        guard size > 1 else { return try result.get() }
        var failing: [Int64] = [0]
        if case .failure = result { failing[0] = Int64(size - rank) }  // the lowest failing rank has the largest value
        try allReduceMax(&failing)
        if failing[0] == 0 { return try result.get() }
        let root = size - Int(failing[0])
        var message: [UInt8] = []
        if rank == root, case let .failure(error) = result { message = Array("\(error)".utf8.prefix(4096)) }
        var length = [Int64(message.count)]
        try length.withUnsafeMutableBytes { try broadcast($0.baseAddress!, bytes: 8, root: root) }
        if rank != root { message = [UInt8](repeating: 0, count: Int(length[0])) }
        try message.withUnsafeMutableBytes { if let base = $0.baseAddress { try broadcast(base, bytes: $0.count, root: root) } }
        throw AgreedError(rank: root, message: String(decoding: message, as: UTF8.self))
    }

    /// Threads per rank when the user gave none: the machine's cores shared by this run's ranks on it.
    public func defaultThreads(cores: Int) -> Int { max(1, cores / localSize) }
}

/// An MPI call that failed.
public struct ParallelError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// An error that every process of a run throws alike, because it follows from values all of
/// them share (an agreed input check, a diverged global loss): printed once, by rank 0, and the
/// run ends in order rather than by MPI_Abort.
public protocol CollectiveError: Error {}

/// An error every rank of a run agreed on (`ProcessGroup.agree`).
public struct AgreedError: CollectiveError, CustomStringConvertible {
    /// The lowest rank it happened on.
    public let rank: Int
    public let message: String
    public init(rank: Int, message: String) {
        self.rank = rank
        self.message = message
    }
    public var description: String { message }
}
