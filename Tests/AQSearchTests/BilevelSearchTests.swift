import AQBert
import AQQuant
import Foundation
import XCTest

@testable import AQSearch

final class BilevelSearchTests: XCTestCase {
    /// A random 2-layer BERT (hidden 32, FFN 64) and a learnable toy task: label = token 7 present.
    func setUp(seed: UInt64) -> (BertTaskModel, [[Int]], [Int32]) {
        var c = BertConfig.tiny
        c.vocabSize = 40
        c.hiddenSize = 32
        c.numAttentionHeads = 4
        c.intermediateSize = 64
        c.maxPositionEmbeddings = 32
        let model = BertTaskModel(config: c, architecture: .sequenceClassification, numLabels: 2)
        var g = SeededGenerator(seed: seed)
        model.bert.initializeWeights(generator: &g)
        model.head!.initialize(std: 0.02, generator: &g)
        var rows: [[Int]] = [], labels: [Int32] = []
        for _ in 0..<192 {
            let ids = [2] + (0..<(3 + Int(g.next() % 6))).map { _ in 5 + Int(g.next() % 30) } + [3]
            rows.append(ids)
            labels.append(ids.contains(7) ? 1 : 0)
        }
        return (model, rows, labels)
    }

    func search(seed: UInt64, targetBits: Double) throws -> (BitPlan, [SearchLogEntry]) {
        let (model, rows, labels) = setUp(seed: 5)
        let network = try SuperNetwork(model: model, candidates: [0, 2, 4], groups: 8, seed: seed)
        let weights = QuantizableMatrices.of(model).reduce(0) { $0 + $1.tensor.count }
        var config = SearchConfiguration(targetMiB: BitPlan.budgetMiB(averageBits: targetBits, weights: weights))
        config.epochs = 6
        config.batchSize = 16
        let env = ProcessInfo.processInfo.environment
        config.architectureOptimizer = env["AQ_OPT"].flatMap(ArchitectureOptimizer.init(rawValue:)) ?? .adam
        config.architectureLearningRate = env["AQ_LR"].flatMap(Float.init) ?? 0.05
        if let shrink = env["AQ_SHRINK"].flatMap(Double.init) { config.lambdaShrink = shrink }
        if let fixed = env["AQ_LAMBDA"].flatMap(Double.init) { config.lambda = fixed }
        config.weightLearningRate = 1e-3
        config.seed = seed
        let train = Array(0..<160), val = Array(160..<192)
        let search = BilevelSearch(model: model, network: network, configuration: config, trainCount: train.count,
                                   validationCount: val.count) { idx, isVal, tape in
            let picked = idx.map { (isVal ? val : train)[$0] }
            let logits = model.forward(BertBatch(sequences: picked.map { rows[$0] }), tape: tape)
            return model.classificationLoss(logits, labels: picked.map { labels[$0] }, tape: tape)
        }
        var log: [SearchLogEntry] = []
        let plan = try search.run { log.append($0) }
        return (plan, log)
    }

    /// The mechanics of Algorithm 1 on a tiny model: the size penalty drives the argmax from the
    /// widest candidate (tie-break) to the budget's neighbourhood, the temperature anneals from
    /// t0 to the final value, no architecture step happens before N1, and a seed fixes the plan
    /// byte for byte. (Landing inside the +-2% band on MiniLM is measured by the search
    /// benchmark, not here: 96 coarse groups of a random model oscillate around it.)
    /// Exploration hook (AQ_EXPLORE=1): prints where each budget lands for the optimiser in AQ_OPT/AQ_LR.
    func testExploreBudgets() throws {
        guard ProcessInfo.processInfo.environment["AQ_EXPLORE"] != nil else { throw XCTSkip("set AQ_EXPLORE=1") }
        for bits in [2.0, 2.5, 3.0] {
            let (plan, log) = try search(seed: 11, targetBits: bits)
            print("EXPLORE target \(bits): argmax \(plan.averageBits) bits, last lambda \(log.last!.lambda)")
        }
    }

    struct Stop: Error {}

    /// A search abandoned after a checkpoint and resumed from it (weights, logits, both
    /// optimizers' moments, position) ends with the same plan and weights as an uninterrupted one.
    func testResumeFromACheckpointIsExact() throws {
        func make() throws -> (BertTaskModel, SuperNetwork, BilevelSearch) {
            let (model, rows, labels) = setUp(seed: 5)
            for (n, t) in model.checkpointParameters { t.name = n }
            let network = try SuperNetwork(model: model, candidates: [0, 2, 4], groups: 8, seed: 3)
            let weights = QuantizableMatrices.of(model).reduce(0) { $0 + $1.tensor.count }
            var config = SearchConfiguration(targetMiB: BitPlan.budgetMiB(averageBits: 2.5, weights: weights))
            config.epochs = 3
            config.batchSize = 16
            config.architectureLearningRate = 0.05
            config.weightLearningRate = 1e-3
            let search = BilevelSearch(model: model, network: network, configuration: config, trainCount: 150,
                                       validationCount: 40) { idx, isVal, tape in
                let picked = idx.map { isVal ? 150 + $0 : $0 }
                let logits = model.forward(BertBatch(sequences: picked.map { rows[$0] }), tape: tape)
                return model.classificationLoss(logits, labels: picked.map { labels[$0] }, tape: tape)
            }
            search.checkpointEvery = 7
            return (model, network, search)
        }
        let (m1, _, s1) = try make()
        let reference = try s1.run { _ in }

        struct Snapshot {
            var state: BilevelSearch.State
            var values: [[Float]]
            var weightMoments: (Int, [String: (m: [Float], v: [Float])])
            var archMoments: (Int, [String: (m: [Float], v: [Float])])
        }
        let (m2, n2, s2) = try make()
        var saved: Snapshot?
        var calls = 0
        s2.checkpoint = { state, w, a in
            calls += 1
            saved = Snapshot(state: state, values: (m2.parameters + n2.logits).map(\.array), weightMoments: w.state(), archMoments: a.state())
            if calls == 2 { throw Stop() }
        }
        XCTAssertThrowsError(try s2.run { _ in })
        let snap = try XCTUnwrap(saved)
        XCTAssertEqual(snap.state.step, 10, "the second checkpoint is the end of epoch 1 (10 batches)")

        let (m3, n3, s3) = try make()
        for (t, v) in zip(m3.parameters + n3.logits, snap.values) { t.assign(v) }
        s3.weightOptimizer.restore(step: snap.weightMoments.0, moments: snap.weightMoments.1)
        s3.architectureOptimizer.restore(step: snap.archMoments.0, moments: snap.archMoments.1)
        let resumed = try s3.run(resume: snap.state) { _ in }
        XCTAssertEqual(resumed, reference)
        var same = true
        for (a, b) in zip(m1.parameters, m3.parameters) where a.array != b.array { same = false }
        XCTAssertTrue(same, "resumed weights equal the uninterrupted run's")
    }

    func testSearchMechanicsAndDeterminism() throws {
        let (plan, log) = try search(seed: 11, targetBits: 2.0)
        let target = plan.provenance.targetMiB!
        XCTAssertEqual(log.first!.argmaxMiB, 2 * target, accuracy: 1e-12, "starts at the widest candidate (4 bits)")
        XCTAssertEqual(plan.sizeMiB, target, accuracy: 0.1 * target, "argmax \(plan.averageBits) average bits for a 2-bit budget")
        XCTAssertEqual(Double(log.first!.temperature), 5, accuracy: 1e-6)
        XCTAssertEqual(log.last!.temperature, 0.5, accuracy: 0.1)
        XCTAssertNil(log.first!.validationLoss, "no architecture step before N1")
        XCTAssertNotNil(log.last!.validationLoss)
        XCTAssertEqual(plan.provenance.notes["architecture_optimizer"], "adam")
        let (again, _) = try search(seed: 11, targetBits: 2.0)
        XCTAssertEqual(try plan.jsonData(), try again.jsonData(), "same seed, byte-identical plan")
        let (other, _) = try search(seed: 12, targetBits: 2.0)
        XCTAssertNotEqual(other.matrices, plan.matrices, "another seed, another plan")
    }
}
