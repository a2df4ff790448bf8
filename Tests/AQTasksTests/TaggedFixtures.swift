import Foundation

/// Two tiny tagged files in the CoNLL column layout (`word POS chunk NER`), invented sentences:
/// no CoNLL-2003 text is kept in the repository (that data is research-use only and stays in
/// `../shared/data`). Written to a temporary directory under their names, so that error
/// messages name `tagged_iob1.txt` / `tagged_iob2.txt`.
enum TaggedFixtures {
    /// IOB1: chunks start with `I-`, `B-` only between adjacent chunks of one type.
    static let iob1 = """
        -DOCSTART- -X- O O

        Anna NNP I-NP I-PER
        Berg NNP I-NP I-PER
        visited VBD I-VP O
        Oslo NNP I-NP I-LOC
        . . O O

        Kari NNP I-NP I-PER
        Ola NNP I-NP B-PER
        met VBD I-VP O
        Acme NNP I-NP I-ORG
        Corp NNP I-NP I-ORG

        -DOCSTART- -X- O O

        Rain NN I-NP O

        """

    /// IOB2: every chunk starts with `B-`.
    static let iob2 = """
        -DOCSTART- -X- -X- O

        Anna NNP B-NP B-PER
        Berg NNP I-NP I-PER
        visited VBD B-VP O
        Oslo NNP B-NP B-LOC
        . . O O

        Kari NNP B-NP B-PER
        Ola NNP I-NP B-PER

        """

    nonisolated(unsafe) private static var directory: URL?

    /// `tagged_iob1.txt` or `tagged_iob2.txt`, written once per test process.
    static func url(_ name: String) throws -> URL {
        let text: String
        switch name {
        case "tagged_iob1.txt": text = iob1
        case "tagged_iob2.txt": text = iob2
        default: throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: name])
        }
        if directory == nil {
            let d = FileManager.default.temporaryDirectory.appendingPathComponent("aqbert-tagged-\(getpid())")
            try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
            directory = d
        }
        let u = directory!.appendingPathComponent(name)
        if !FileManager.default.fileExists(atPath: u.path) { try Data(text.utf8).write(to: u, options: .atomic) }
        return u
    }
}
