import AQBert
import AQQuant
import AQTasks
import AQTokenizer
import Foundation

/// One parser under fuzzing: the file it reads, valid seed inputs, and how to run it on a
/// directory that holds the (mutated) file. Throwing is the expected answer to bad input; a
/// crash, a trap or a hang is a finding.
public struct FuzzTarget {
    public let name: String
    /// The file the input is written to, inside `directory`.
    public let fileName: String
    /// The directory the parser reads (other files it needs are in place there).
    public let directory: URL
    public let seeds: [[UInt8]]
    let parse: (URL) throws -> Void

    /// Writes `input` to the target's file and runs the parser on it.
    public func run(_ input: [UInt8]) -> Result<Void, Error> {
        let file = directory.appendingPathComponent(fileName)
        // A new file each time: truncating and rewriting one in place makes ext4 flush it to
        // disk on close (auto_da_alloc), which would bound the rate by the disk.
        unlink(file.path)
        do { try Data(input).write(to: file) } catch { return .failure(error) }
        return Result { try parse(file) }
    }
}

/// Every parser aqbert reads user files with, each with small valid seeds built from a model
/// directory (config.json, model.safetensors, vocab.txt; the repository's tiny BERT is enough).
public enum FuzzTargets {
    public static let names = ["safetensors", "config", "vocab", "tokenizer-json", "tokenizer-config", "sst2", "mnli",
                               "conll2003", "squad", "plan", "packed-config", "packed-weights", "packed-tables",
                               "trainer-state", "search-state"]

    /// Sets up the targets under `scratch` (one folder each).
    public static func make(model: URL, scratch: URL) throws -> [FuzzTarget] {
        let fm = FileManager.default
        func folder(_ name: String) throws -> URL {
            let u = scratch.appendingPathComponent(name)
            try? fm.removeItem(at: u)
            try fm.createDirectory(at: u, withIntermediateDirectories: true)
            return u
        }
        func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }
        func read(_ u: URL) throws -> [UInt8] {
            guard let data = FileManager.default.contents(atPath: u.path) else {
                throw FuzzSetupError("cannot read \(u.path) (the model directory needs config.json, model.safetensors and vocab.txt)")
            }
            return [UInt8](data)
        }
        let configText = try read(model.appendingPathComponent("config.json"))
        let weights = model.appendingPathComponent("model.safetensors")
        let vocab = try read(model.appendingPathComponent("vocab.txt"))
        let (bert, _) = try BertTaskModel.load(directory: model)
        let tokenizerDir = try folder("tokenizer")
        try Data(vocab).write(to: tokenizerDir.appendingPathComponent("vocab.txt"))
        let tokenizer = try BertTokenizer(directory: tokenizerDir)
        var targets: [FuzzTarget] = []

        // Plans: uniform and mixed over the model's matrices.
        let uniform = try BitPlan.uniform(model: bert, bits: 4, groups: 1, candidates: [0, 2, 3, 4, 8])
        var mixed = uniform
        for (i, path) in mixed.matrices.keys.sorted().enumerated() {
            let rows = mixed.matrices[path]!.shape[0]
            let groups = rows % 4 == 0 ? 4 : 1
            mixed.matrices[path]!.groups = groups
            mixed.matrices[path]!.bits = (0..<groups).map { [0, 2, 3, 4, 8][(i + $0) % 5] }
        }

        // The mixed plan with planned embedding tables (version 2).
        var tables = try mixed.withEmbeddings(model: bert, bits: 4, rowsPerGroup: 7, candidates: [0, 2, 4, 8])
        for (i, path) in tables.embeddings.keys.sorted().enumerated() {
            tables.embeddings[path]!.bits = tables.embeddings[path]!.bits.indices.map { [0, 2, 4, 8][(i + $0) % 4] }
        }

        // Packed exports of the model with the mixed plan, and with the tables planned too.
        func export(_ plan: BitPlan, to name: String) throws -> URL {
            let dir = try folder(name)
            let q = try QuantizedBert(plan: plan, model: bert)
            q.training = true
            _ = bert.forward(BertBatch(sequences: [[2, 5, 6, 7, 3], [2, 8, 3]]), tape: .inference)
            q.training = false
            try PackedBert.export(model: bert, quantization: q, to: dir)
            q.uninstall()
            return dir
        }
        let packedSeed = try export(mixed, to: "packed-seed")
        let packedTablesSeed = try export(tables, to: "packed-tables-seed")

        // safetensors: the model's weights, the packed file, and a small file of every dtype.
        let small = scratch.appendingPathComponent("small.safetensors")
        try SafeTensorsWriter.write([.floats("a", shape: [2, 3], [1, 2, 3, 4, 5, 6]),
                                     .floats("b", shape: [4], [0.5, -1, 2, 3], as: .f16),
                                     .floats("c", shape: [2], [1, 2], as: .bf16),
                                     .integers("d", shape: [3], [1, -2, 3]),
                                     .raw("e", dtype: .u8, shape: [5], bytes: [1, 2, 3, 4, 5])],
                                    metadata: ["format": "pt", "note": "seed"], to: small)
        let safetensorsDir = try folder("safetensors")
        targets.append(FuzzTarget(name: "safetensors", fileName: "model.safetensors", directory: safetensorsDir,
                                  seeds: [try read(small), try read(weights), try read(packedSeed.appendingPathComponent("model.safetensors"))]) { url in
            let file = try SafeTensorsFile(url: url)
            for info in file.tensorInfos {
                if info.dtype.isFloatingPoint { _ = try file.floats(info.name) } else { _ = try file.bytes(info.name) }
            }
        })

        // config.json beside the model's weights: the config is checked against the checkpoint.
        let configDir = try folder("config")
        try fm.copyItem(at: weights, to: configDir.appendingPathComponent("model.safetensors"))
        let classifierConfig = String(decoding: configText, as: UTF8.self)
            .replacingOccurrences(of: "\"BertModel\"", with: "\"BertForSequenceClassification\"")
        targets.append(FuzzTarget(name: "config", fileName: "config.json", directory: configDir,
                                  seeds: [configText, bytes(classifierConfig)]) { url in
            _ = try BertTaskModel.load(directory: url.deletingLastPathComponent())
        })

        // Tokenizer files: vocab.txt, tokenizer.json (added tokens), tokenizer_config.json.
        func tokenize(_ dir: URL) throws {
            let t = try BertTokenizer(directory: dir)
            _ = t.encode("The movie is GOOD, [MASK] really!", pair: "naïve café 東京 [SEP]")
        }
        targets.append(FuzzTarget(name: "vocab", fileName: "vocab.txt", directory: try folder("vocab"),
                                  seeds: [vocab, bytes(String(decoding: vocab, as: UTF8.self).replacingOccurrences(of: "\n", with: "\r\n"))]) { url in
            try tokenize(url.deletingLastPathComponent())
        })
        let tokenizerJSON = ###"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[{"id":0,"content":"[PAD]","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true},{"id":1,"content":"[UNK]","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true},{"id":4,"content":"[MASK]","single_word":false,"lstrip":true,"rstrip":false,"normalized":false,"special":true},{"id":99,"content":"<new>","single_word":true,"lstrip":false,"rstrip":false,"normalized":true,"special":false}],"normalizer":{"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":true,"strip_accents":null,"lowercase":true},"model":{"type":"WordPiece","unk_token":"[UNK]","continuing_subword_prefix":"##","max_input_chars_per_word":100,"vocab":{"[PAD]":0,"[UNK]":1}}}"###
        let tokenizerConfig = #"{"do_lower_case":true,"strip_accents":null,"tokenize_chinese_chars":true,"model_max_length":512,"unk_token":"[UNK]","sep_token":"[SEP]","pad_token":"[PAD]","cls_token":"[CLS]","mask_token":"[MASK]","added_tokens_decoder":{"0":{"content":"[PAD]","lstrip":false,"normalized":false,"rstrip":false,"single_word":false,"special":true},"100":{"content":"<extra>","lstrip":false,"normalized":false,"rstrip":false,"single_word":false,"special":true}}}"#
        for (name, file, seed) in [("tokenizer-json", "tokenizer.json", tokenizerJSON), ("tokenizer-config", "tokenizer_config.json", tokenizerConfig)] {
            let dir = try folder(name)
            try Data(vocab).write(to: dir.appendingPathComponent("vocab.txt"))
            targets.append(FuzzTarget(name: name, fileName: file, directory: dir, seeds: [bytes(seed)]) { url in
                try tokenize(url.deletingLastPathComponent())
            })
        }

        // Task data in the original formats (small synthetic files of the same shape).
        let sst2 = "sentence\tlabel\nthe movie is good .\t1\na bad , bad movie\t0\nit 's \"fine\"\t1\n"
        targets.append(FuzzTarget(name: "sst2", fileName: "train.tsv", directory: try folder("sst2"),
                                  seeds: [bytes(sst2), bytes(sst2.replacingOccurrences(of: "\n", with: "\r\n"))]) { url in
            _ = try TaskReaders.sst2(url)
        })
        let mnli = #"""
        {"premise": "The new rights are nice enough", "hypothesis": "Everyone really likes the newest benefits ", "label": "neutral"}
        {"premise": "This site includes a list.", "hypothesis": "The site is empty.", "label": "contradiction"}
        {"premise": "uh i don't know", "hypothesis": "I am unsure \u00e9", "label": "entailment"}

        """#
        targets.append(FuzzTarget(name: "mnli", fileName: "dev_matched.jsonl", directory: try folder("mnli"), seeds: [bytes(mnli)]) { url in
            _ = try TaskReaders.mnli(url)
        })
        let conll = "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\ncall NN I-NP O\n. . O O\n\nPeter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n\n"
        targets.append(FuzzTarget(name: "conll2003", fileName: "train.txt", directory: try folder("conll2003"),
                                  seeds: [bytes(conll), bytes(conll.replacingOccurrences(of: "\n", with: "\r\n"))]) { url in
            let data = try TaskReaders.conll2003(url)
            _ = TaskReaders.detectScheme(data.sentences.map(\.tags))
        })
        let squad = #"{"version": "1.1", "data": [{"title": "T", "paragraphs": [{"context": "The movie is good. It was made in 1999 by a bad director.", "qas": [{"id": "q1", "question": "When was it made?", "answers": [{"text": "1999", "answer_start": 34}, {"text": "in 1999", "answer_start": 31}]}, {"id": "q2", "question": "  Who made it?", "answers": [{"text": "a bad director", "answer_start": 42}]}]}]}]}"#
        targets.append(FuzzTarget(name: "squad", fileName: "dev-v1.1.json", directory: try folder("squad"), seeds: [bytes(squad)]) { url in
            let data = try TaskReaders.squad(url)
            _ = FeatureBuilder.squad(data.examples, tokenizer: tokenizer, maxLength: 24, docStride: 6, training: true)
        })

        // Bit plans, checked against the model as every command does.
        targets.append(FuzzTarget(name: "plan", fileName: "plan.json", directory: try folder("plan"),
                                  seeds: [try uniform.jsonData(), try mixed.jsonData(), try tables.jsonData()].map { [UInt8]($0) }) { url in
            let plan = try BitPlan(contentsOf: url)
            try plan.validate(against: bert)
        })

        // A packed model: its config.json (quantization_config) and its weights (checksum off,
        // so that mutations reach the tensor checks behind it).
        for (name, file, seed) in [("packed-config", "config.json", packedSeed), ("packed-weights", "model.safetensors", packedSeed),
                                   ("packed-tables", "model.safetensors", packedTablesSeed)] {
            let dir = try folder(name)
            for item in try fm.contentsOfDirectory(atPath: seed.path) {
                try fm.copyItem(at: seed.appendingPathComponent(item), to: dir.appendingPathComponent(item))
            }
            targets.append(FuzzTarget(name: name, fileName: file, directory: dir,
                                      seeds: [try read(seed.appendingPathComponent(file))]) { url in
                _ = try PackedBert.load(directory: url.deletingLastPathComponent(), verify: false)
            })
        }

        // Resume state of a fine-tuning and of a search, checked as --resume checks them.
        targets.append(FuzzTarget(name: "trainer-state", fileName: "trainer_state.json", directory: try folder("trainer-state"),
                                  seeds: ResumeStateCheck.exampleTrainerStates().map { [UInt8]($0) }) { url in
            try ResumeStateCheck.trainerState(at: url, epochs: 3, stepsPerEpoch: 7)
        })
        targets.append(FuzzTarget(name: "search-state", fileName: "search_state.json", directory: try folder("search-state"),
                                  seeds: ResumeStateCheck.exampleSearchStates().map { [UInt8]($0) }) { url in
            try ResumeStateCheck.searchState(at: url, epochs: 3)
        })
        for target in targets {
            for (i, seed) in target.seeds.enumerated() {
                if case .failure(let error) = target.run(seed) {
                    throw FuzzSetupError("seed \(i) of \(target.name) is rejected, so mutations of it would test little: \(error)")
                }
            }
        }
        return targets
    }
}

public struct FuzzSetupError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
