import CMPI
import Foundation

extension ProcessGroup {
    /// Runs jobs `0..<dependencies.count` over the ranks as a work queue. `dependencies[j]` are
    /// the earlier jobs that job j reads; a job starts once they have all finished, on whichever
    /// rank is free. Rank 0 deals: whenever a rank is free it gets the first job, in order, whose
    /// dependencies have finished; rank 0 runs jobs too, each on a thread of its own, while its
    /// main thread deals (MPI calls stay on the main thread). Every rank calls it with the same
    /// dependencies and it returns on every rank once every job has finished. A job that throws
    /// ends the call on its rank with that error (the caller ends the run; the other ranks'
    /// waits end with it). With one process the jobs run in order.
    ///
    /// Which rank runs a job depends on timing; jobs that write only their own files and read
    /// only their dependencies' give the same result wherever they run.
    public func runQueue(dependencies: [[Int]], run: @escaping (Int) throws -> Void) throws {
        for (j, d) in dependencies.enumerated() where d.contains(where: { $0 < 0 || $0 >= j }) {
            throw ParallelError("job \(j) of the work queue depends on a job that does not come before it")
        }
        guard size > 1 else {
            for j in dependencies.indices { try run(j) }
            return
        }
        if rank == 0 { try deal(dependencies: dependencies, run: run) } else { try work(run: run) }
    }

    private static let reportTag: Int32 = 1, jobTag: Int32 = 2

    /// A rank other than 0: says it is free (with the job it finished, -1 at first), runs the job
    /// it is given, until it is given -1.
    private func work(run: (Int) throws -> Void) throws {
        var finished: Int64 = -1
        while true {
            try send(finished, to: 0, tag: Self.reportTag)
            let job = try receive(from: 0, tag: Self.jobTag)
            if job < 0 { return }
            try run(Int(job))
            finished = job
        }
    }

    /// Rank 0: deals the jobs and runs its share of them on a thread.
    private func deal(dependencies: [[Int]], run: @escaping (Int) throws -> Void) throws {
        enum State { case waiting, running, finished }
        var state = [State](repeating: .waiting, count: dependencies.count)
        var free: [Int] = []  // ranks waiting for a job, in the order they asked
        var stopped = 0
        let own = OwnJob()
        func ready() -> Int? {
            state.indices.first { j in state[j] == .waiting && dependencies[j].allSatisfy { state[$0] == .finished } }
        }
        while true {
            var moved = false
            if let (job, error) = own.takeFinished() {
                if let error { throw error }
                state[job] = .finished
                moved = true
            }
            while let (source, job) = try probeReport() {
                if job >= 0 { state[Int(job)] = .finished }
                free.append(source)
                moved = true
            }
            while !free.isEmpty, let j = ready() {
                state[j] = .running
                try send(Int64(j), to: free.removeFirst(), tag: Self.jobTag)
            }
            if !own.busy, let j = ready() {
                state[j] = .running
                own.start(j, run)
                moved = true
            }
            if state.allSatisfy({ $0 == .finished }) {
                // Every job has finished, so every other rank has reported its last one.
                for r in free { try send(-1, to: r, tag: Self.jobTag) }
                stopped += free.count
                free = []
                if stopped == size - 1 { return }
            }
            if !moved { usleep(10_000) }
        }
    }

    /// The communicator of a group of several processes.
    private func started() throws -> MPI_Comm {
        guard let communicator else { throw ParallelError("the work queue needs MPI, which this process has not started") }
        return communicator
    }

    private func send(_ value: Int64, to destination: Int, tag: Int32) throws {
        let comm = try started()
        var v = value
        try check(MPI_Send(&v, 1, aq_mpi_long(), Int32(destination), tag, comm), "MPI_Send")
    }

    private func receive(from source: Int, tag: Int32) throws -> Int64 {
        let comm = try started()
        var v: Int64 = 0
        try check(MPI_Recv(&v, 1, aq_mpi_long(), Int32(source), tag, comm, aq_mpi_status_ignore()), "MPI_Recv")
        return v
    }

    /// A report waiting from any rank: (its rank, the job it finished or -1), without blocking.
    private func probeReport() throws -> (Int, Int64)? {
        let comm = try started()
        var flag: Int32 = 0
        var status = MPI_Status()
        try check(MPI_Iprobe(aq_mpi_any_source(), Self.reportTag, comm, &flag, &status), "MPI_Iprobe")
        guard flag != 0 else { return nil }
        let source = Int(status.MPI_SOURCE)
        return (source, try receive(from: source, tag: Self.reportTag))
    }
}

/// Rank 0's own job of the work queue, on a thread of its own.
private final class OwnJob: @unchecked Sendable {
    private let lock = NSLock()
    private var running: Int?
    private var finished: (Int, Error?)?

    var busy: Bool { lock.withLock { running != nil || finished != nil } }

    func start(_ job: Int, _ run: @escaping (Int) throws -> Void) {
        lock.withLock { running = job }
        let thread = Thread { [self] in
            var failure: Error?
            do { try run(job) } catch { failure = error }
            lock.withLock {
                running = nil
                finished = (job, failure)
            }
        }
        thread.stackSize = 8 << 20
        thread.start()
    }

    /// The job that finished since the last call, with its error if it threw.
    func takeFinished() -> (Int, Error?)? {
        lock.withLock {
            defer { finished = nil }
            return finished
        }
    }
}
