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
        config.architectureOptimizer = .adam
        config.architectureLearningRate = 0.05
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

    struct Stop: Error {}

    /// A search abandoned after a checkpoint and resumed from it (weights, logits, both
    /// optimizers' moments, position) ends with the same plan and weights as an uninterrupted one.
    func testResumeFromACheckpointIsExact() throws {
        func make() throws -> (BertTaskModel, SuperNetwork, BilevelSearch) {
            let (model, network, search) = try makeSearch { _ in }
            for (n, t) in model.checkpointParameters { t.name = n }
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

    /// The mechanics of Algorithm 1 on a tiny model: the size penalty drives the argmax from the
    /// widest candidate (tie-break) to the budget's neighbourhood, the temperature anneals from
    /// t0 to the final value, no architecture step happens before N1, and a seed fixes the plan
    /// byte for byte; the plan is inside the +-2% band, repaired into it when the argmax of the
    /// 96 coarse groups of a random model ended outside.
    func testSearchMechanicsAndDeterminism() throws {
        let (plan, log) = try search(seed: 11, targetBits: 2.0)
        let target = plan.provenance.targetMiB!
        XCTAssertEqual(log.first!.argmaxMiB, 2 * target, accuracy: 1e-12, "starts at the widest candidate (4 bits)")
        XCTAssertEqual(plan.sizeMiB, target, accuracy: 0.02 * target, "\(plan.averageBits) average bits for a 2-bit budget: inside the band")
        let argmax = log.last!.argmaxMiB
        XCTAssertEqual(plan.provenance.notes["budget_repair"] != nil, abs(argmax - target) > 0.02 * target,
                       "repaired exactly when the argmax (\(argmax) MiB) is outside the band")
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

    /// A search object on the tiny task with a chosen configuration.
    func makeSearch(_ edit: (inout SearchConfiguration) -> Void) throws -> (BertTaskModel, SuperNetwork, BilevelSearch) {
        let (model, rows, labels) = setUp(seed: 5)
        let weights = QuantizableMatrices.of(model).reduce(0) { $0 + $1.tensor.count }
        var config = SearchConfiguration(targetMiB: BitPlan.budgetMiB(averageBits: 2.5, weights: weights))
        config.epochs = 3
        config.batchSize = 16
        config.architectureLearningRate = 0.05
        config.weightLearningRate = 1e-3
        edit(&config)
        let network = try SuperNetwork(model: model, candidates: [0, 2, 4], groups: 8, seed: 3, ranges: config.weightRanges ?? .minmax)
        let search = BilevelSearch(model: model, network: network, configuration: config, trainCount: 150,
                                   validationCount: 40) { idx, isVal, tape in
            let picked = idx.map { isVal ? 150 + $0 : $0 }
            let logits = model.forward(BertBatch(sequences: picked.map { rows[$0] }), tape: tape)
            return model.classificationLoss(logits, labels: picked.map { labels[$0] }, tape: tape)
        }
        return (model, network, search)
    }

    /// Eq. 14's unrolled gradient: with xi = 0 it is the first-order gradient of L_val at w; with
    /// xi > 0 it differs; either way the weights and the training gradient come back untouched.
    func testUnrolledGradientReducesToFirstOrderAndRestoresTheWeights() throws {
        func unrolled(xi: Float) throws -> (first: [[Float]], second: [[Float]], weightsBefore: [[Float]], weightsAfter: [[Float]],
                                            trainGradBefore: [[Float]], trainGradAfter: [[Float]]) {
            let (model, network, search) = try makeSearch { $0.lambda = 0.5 }
            model.training = false
            network.training = false
            network.noise = false
            let train = Array(0..<16), val = Array(0..<16)
            // The training gradient at w.
            search.setTrainable(weights: true)
            let t = Tape()
            t.backward(from: search.lossOf(train, false, t))
            let g = model.parameters.map { p -> Storage? in defer { p.grad = nil }; return p.grad }
            let gBefore = g.map { $0.map { Array($0.buffer) } ?? [] }
            let before = model.parameters.map(\.array)
            // First-order reference: grad_theta L_val at w.
            search.setTrainable(weights: false)
            let vt = Tape()
            vt.backward(from: search.validationObjective(val, tape: vt))
            let first = network.logits.map { $0.grad.map { Array($0.buffer) } ?? [] }
            for l in network.logits { l.grad = nil }
            _ = try search.unrolledArchitectureGradient(trainBatch: train, trainGradients: g, validationBatch: val, xi: xi,
                                                    trainNoise: network.generator, trainDropout: model.bert.generator)
            let second = network.logits.map { $0.grad.map { Array($0.buffer) } ?? [] }
            return (first, second, before, model.parameters.map(\.array), gBefore, g.map { $0.map { Array($0.buffer) } ?? [] })
        }
        let zero = try unrolled(xi: 0)
        XCTAssertEqual(zero.weightsAfter, zero.weightsBefore, "weights restored bit for bit")
        XCTAssertEqual(zero.trainGradAfter, zero.trainGradBefore, "training gradient untouched")
        for (a, b) in zip(zero.first, zero.second) {
            XCTAssertEqual(a.count, b.count)
            for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-6 * max(1, abs(x))) }
        }
        let big = try unrolled(xi: 0.5)
        XCTAssertEqual(big.weightsAfter, big.weightsBefore, "weights restored bit for bit")
        let diff = zip(big.first.joined(), big.second.joined()).map { abs($0 - $1) }.max() ?? 0
        let scale = big.first.joined().map { abs($0) }.max() ?? 0
        XCTAssertGreaterThan(diff, 1e-3 * scale, "the second-order term changes the gradient")
        XCTAssertTrue(big.second.joined().allSatisfy(\.isFinite))
    }

    /// The second-order search runs Algorithm 1 end to end and a seed fixes its plan.
    func testSecondOrderSearchIsDeterministic() throws {
        func plan() throws -> (BitPlan, [SearchLogEntry]) {
            let (_, _, search) = try makeSearch { $0.unrolledStep = $0.weightLearningRate; $0.epochs = 2 }
            var log: [SearchLogEntry] = []
            return (try search.run { log.append($0) }, log)
        }
        let (a, log) = try plan()
        let (b, _) = try plan()
        XCTAssertEqual(try a.jsonData(), try b.jsonData())
        XCTAssertNotNil(log.last!.validationLoss)
        XCTAssertLessThan(log.last!.argmaxMiB, log.first!.argmaxMiB, "the size penalty moved the argmax")
    }

    /// Frozen weights: no training pass (no training loss), an architecture step from the first
    /// step on, the weights bit for bit as they were, the plan still moved by the size penalty
    /// and fixed by the seed; N1 > 0 and the second-order gradient are refused.
    func testFrozenWeightsSearchOnlyTheLogits() throws {
        func run() throws -> (BitPlan, [SearchLogEntry], before: [[Float]], after: [[Float]]) {
            let (model, _, search) = try makeSearch { $0.freezeWeights = true; $0.architectureStart = 0; $0.epochs = 2 }
            let before = model.parameters.map(\.array)
            var log: [SearchLogEntry] = []
            let plan = try search.run { log.append($0) }
            return (plan, log, before, model.parameters.map(\.array))
        }
        let (plan, log, before, after) = try run()
        XCTAssertEqual(after, before, "the weights do not move")
        XCTAssertTrue(log.allSatisfy { $0.trainLoss == nil && $0.validationLoss != nil }, "every step is an architecture step only")
        let widest = plan.provenance.targetMiB! * 4 / 2.5
        XCTAssertLessThan(log.first!.argmaxMiB, widest, "the first step already moved the argmax off the widest candidate")
        XCTAssertEqual(plan.provenance.notes["weights"], "frozen")
        let (again, _, _, _) = try run()
        XCTAssertEqual(try plan.jsonData(), try again.jsonData(), "same seed, byte-identical plan")
        let (_, _, late) = try makeSearch { $0.freezeWeights = true; $0.architectureStart = 1 }
        XCTAssertThrowsError(try late.run { _ in }) { XCTAssertTrue("\($0)".contains("N1 = 0"), "\($0)") }
        let (_, _, unrolled) = try makeSearch { $0.freezeWeights = true; $0.architectureStart = 0; $0.unrolledStep = 1e-3 }
        XCTAssertThrowsError(try unrolled.run { _ in }) { XCTAssertTrue("\($0)".contains("second-order"), "\($0)") }
    }

    /// The super-network's ranges are part of the configuration and of the plan's notes; a
    /// configuration written before the option reads as min/max.
    func testWeightRangesAreRecorded() throws {
        var c = SearchConfiguration(targetMiB: 1)
        c.weightRanges = .mse
        let data = try JSONEncoder().encode(c)
        XCTAssertEqual(try JSONDecoder().decode(SearchConfiguration.self, from: data), c)
        var object = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertEqual(object["weightRanges"] as? String, "mse")
        object["weightRanges"] = nil
        let old = try JSONDecoder().decode(SearchConfiguration.self, from: JSONSerialization.data(withJSONObject: object))
        XCTAssertNil(old.weightRanges)
        let (_, _, search) = try makeSearch { $0.epochs = 1; $0.architectureStart = 0; $0.weightRanges = .mse }
        XCTAssertEqual(try search.run { _ in }.provenance.notes["weight_ranges"], "mse")
        let (_, _, plain) = try makeSearch { $0.epochs = 1; $0.architectureStart = 0 }
        XCTAssertEqual(try plain.run { _ in }.provenance.notes["weight_ranges"], "minmax")
        let (model, rows, labels) = setUp(seed: 5)
        let network = try SuperNetwork(model: model, candidates: [0, 2, 4], groups: 8, seed: 3)
        var config = SearchConfiguration(targetMiB: 0.001)
        config.weightRanges = .mse
        let mismatched = BilevelSearch(model: model, network: network, configuration: config, trainCount: 4, validationCount: 4) { idx, _, tape in
            let logits = model.forward(BertBatch(sequences: idx.map { rows[$0] }), tape: tape)
            return model.classificationLoss(logits, labels: idx.map { labels[$0] }, tape: tape)
        }
        XCTAssertThrowsError(try mismatched.run { _ in }) { XCTAssertTrue("\($0)".contains("min/max") || "\($0)".contains("minmax"), "\($0)") }
    }
}
