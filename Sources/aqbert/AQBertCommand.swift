import AQBert
import ArgumentParser

let aqbertVersion = "0.1.0"

@main
struct AQBertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aqbert",
        abstract: "Automatic mixed-precision quantization search for BERT (AQ-BERT).",
        version: aqbertVersion,
        subcommands: [TokenizeCommand.self, EncodeCommand.self, BenchCommand.self]
    )
}
