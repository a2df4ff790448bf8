import ArgumentParser

@main
struct AQBertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aqbert",
        abstract: "Automatic mixed-precision quantization search for BERT (AQ-BERT).",
        subcommands: []
    )
}
