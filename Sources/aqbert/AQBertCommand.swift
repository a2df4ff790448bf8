import AQBert
import AQFiles
import AQParallel
import AQRuns
import ArgumentParser
import CAQKernels
import Foundation

let aqbertVersion = "0.1.0"

@main
struct AQBertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aqbert",
        abstract: "Automatic mixed-precision quantization search for BERT (AQ-BERT).",
        version: aqbertVersion,
        subcommands: [TokenizeCommand.self, EncodeCommand.self, FinetuneCommand.self, EvaluateCommand.self,
                      PredictCommand.self, ScoreCommand.self, SplitCommand.self, PlanCommand.self, InspectCommand.self,
                      SearchCommand.self, SensitivityCommand.self, RetrainCommand.self, ExportCommand.self, CompareCommand.self,
                      MergeComparisonsCommand.self, BenchCommand.self, FuzzCommand.self]
    )

    /// Every failure ends as one line on stderr ("error: ...") and exit status 1 (64 for usage
    /// errors); help and --version print as usual.
    static func main() {
        // Progress is one line per event: flush each line, so that a log file (or a pipe, such
        // as compare's steps) shows it when it happens rather than a buffer later.
        setvbuf(stdout, nil, _IOLBF, 0)
        guardStandardStreams()
        // A step of compare (or a fuzz worker) dies with the process that started it, so that a
        // killed compare leaves no step running on behind it.
        if let text = ProcessInfo.processInfo.environment[StepRunner.parentVariable], let parent = Int32(text),
           aq_die_with_parent(parent) == 1 {
            FileHandle.standardError.write(Data("error: the compare that started this step has ended\n".utf8))
            Foundation.exit(1)
        }
        do {
            var command = try parseAsRoot(joiningNegativeNumbers(Array(CommandLine.arguments.dropFirst())))
            // Under mpirun only the data-parallel commands run; any other would run N times over
            // the same output.
            if ProcessGroup.launchedByMPI() && !(command is FinetuneCommand || command is RetrainCommand || command is SearchCommand
                                               || command is SensitivityCommand || command is CompareCommand) {
                _ = try ProcessGroup.world()
                throw AgreedError(rank: 0, message: "this command runs in one process: start it without mpirun (finetune, retrain, search, sensitivity and compare share their work under mpirun)")
            }
            try command.run()
            // Output that could not be written (a closed stdout, a full disk behind a redirect) is
            // a failure, not a success with the output lost.
            if fflush(stdout) != 0 || ferror(stdout) != 0 {
                throw RunError("cannot write to standard output: \(errnoMessage(errno == 0 ? EBADF : errno))")
            }
            OutputLock.releaseAll(succeeded: true)
            ProcessGroup.finish()
        } catch {
            let code = exitCode(for: error)
            OutputLock.releaseAll(succeeded: code == .success)
            if code == .success { exit(withError: error) }
            let message = message(for: error)
                .split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty }.joined(separator: " ")
            let text = message.hasPrefix("Error: ") ? String(message.dropFirst(7)) : message
            // Under mpirun: an error every rank threw alike is printed once and the run ends in
            // order; one rank's own failure is printed with its rank and ends every rank. An
            // error before MPI started (a bad flag: every rank parses the same command line) is
            // printed by rank 0 only.
            if ProcessGroup.current == nil, let rank = ProcessGroup.launcherRank(), rank != 0 { Foundation.exit(code.rawValue) }
            if let group = ProcessGroup.current, group.size > 1 {
                if error is CollectiveError {
                    if group.rank == 0 { FileHandle.standardError.write(Data("error: \(text)\n".utf8)) }
                    ProcessGroup.finish()
                    Foundation.exit(code.rawValue)
                }
                FileHandle.standardError.write(Data("error: rank \(group.rank) of \(group.size): \(text)\n".utf8))
                group.abort(code: code.rawValue)
            }
            FileHandle.standardError.write(Data("error: \(text)\n".utf8))
            Foundation.exit(code.rawValue)
        }
    }

    /// A standard stream that the caller closed (`aqbert ... >&-`) is opened on /dev/null the
    /// wrong way round (as gnulib's stdopen does): otherwise the first file aqbert opens would get
    /// its number and receive what is printed, and with it a write to the stream fails, so the
    /// run ends with an error instead of losing its output.
    static func guardStandardStreams() {
        for fd in Int32(0)...2 where fcntl(fd, F_GETFD) == -1 && errno == EBADF {
            let opened = posixOpen("/dev/null", fd == 0 ? O_WRONLY : O_RDONLY)
            if opened >= 0 && opened != fd {
                _ = dup2(opened, fd)
                _ = posixClose(opened)
            }
        }
    }

    /// `--option -5` as `--option=-5`: the argument parser reads a word that starts with '-' as
    /// an option, so a negative number would be "missing value" instead of reaching the check
    /// that says what the option needs. Words after "--" are left alone.
    static func joiningNegativeNumbers(_ arguments: [String]) -> [String] {
        var out: [String] = []
        var i = 0
        while i < arguments.count {
            let a = arguments[i]
            if a == "--" { out += arguments[i...]; break }
            if a.hasPrefix("--"), !a.contains("="), i + 1 < arguments.count, looksNegative(arguments[i + 1]) {
                out.append(a + "=" + arguments[i + 1])
                i += 2
            } else {
                out.append(a)
                i += 1
            }
        }
        return out
    }

    /// "-1", "-0.5", "-.5", "-1,2": a minus followed by a digit or a point.
    static func looksNegative(_ word: String) -> Bool {
        let chars = Array(word.prefix(2))
        return chars.count == 2 && chars[0] == "-" && (chars[1].isNumber || chars[1] == ".")
    }
}
