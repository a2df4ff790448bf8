import AQBert
import AQQuant
import Foundation
import XCTest

@testable import AQSearch

final class SuperNetworkTests: XCTestCase {
    static var tinyModel: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("AQBertTests/Fixtures/tiny-bertmodel")
    }

    func model() throws -> BertTaskModel { try BertTaskModel.load(directory: Self.tinyModel).model }

    /// Gumbel-softmax (fixed noise) gradient against finite differences, soft and at low temperature.
    func testGumbelSoftmaxGradientsByFiniteDifferences() throws {
        let net = try SuperNetwork(model: try model(), candidates: [0, 2, 4], groups: 1, seed: 3)
        var g = SeededGenerator(seed: 4)
        let theta = Tensor(normal: [5, 3], std: 1, generator: &g, requiresGrad: true)
        let r = Tensor(normal: [5, 3], std: 1, generator: &g)
        for t: Float in [5, 0.5] {
            net.temperature = t
            func loss(_ tape: Tape) -> Tensor {
                net.generator = SeededGenerator(seed: 77)  // the same noise every evaluation
                return tape.sum(tape.mul(net.mixing(theta, tape: tape), r))
            }
            theta.grad = nil
            let tape = Tape()
            tape.backward(from: loss(tape))
            let analytic = theta.gradArray!
            for i in 0..<theta.count {
                let old = theta.pointer[i]
                theta.pointer[i] = old + 1e-3
                let lp = Double(loss(.inference).scalar)
                theta.pointer[i] = old - 1e-3
                let lm = Double(loss(.inference).scalar)
                theta.pointer[i] = old
                XCTAssertEqual(Double(analytic[i]), (lp - lm) / 2e-3, accuracy: 2e-3 + 2e-2 * abs(Double(analytic[i])), "t=\(t) theta[\(i)]")
            }
        }
    }

    func testExpectedSizeArgmaxAndTies() throws {
        let m = try model()
        let net = try SuperNetwork(model: m, candidates: [0, 2, 4], groups: 1, seed: 1)
        let weights = 2 * (4 * 32 * 32 + 37 * 32 + 32 * 37)
        // Uniform p: every weight costs mean(0, 2, 4) = 2 bits in expectation.
        XCTAssertEqual(Double(net.expectedSize(tape: .inference).scalar), Double(weights * 2) / 8 / 1_048_576, accuracy: 1e-9)
        // All logits tie at 0: widest -> 4 bits everywhere; first -> 0 bits.
        let widest = net.argmaxPlan(tieBreak: .widest, provenance: .init(method: "aq-bert"))
        XCTAssertEqual(widest.averageBits, 4)
        XCTAssertEqual(net.argmaxPlan(tieBreak: .first, provenance: .init(method: "aq-bert")).averageBits, 0)
        net.logits[0].pointer[1] = 1  // layer 0 query -> 2 bits
        let plan = net.argmaxPlan(tieBreak: .widest, provenance: .init(method: "aq-bert"))
        XCTAssertEqual(plan.matrices["bert.encoder.layer.0.attention.self.query.weight"]!.bits, [2])
        try plan.validate(against: m)
        // The size loss: log E[C] above the band, -log E[C] below, nothing inside.
        let v = plan.sizeMiB
        XCTAssertNil(net.sizeLoss(argmaxMiB: v * 1.01, targetMiB: v, tolerance: 0.02, tape: .inference))
        let above = net.sizeLoss(argmaxMiB: v * 1.5, targetMiB: v, tolerance: 0.02, tape: .inference)!.scalar
        let below = net.sizeLoss(argmaxMiB: v * 0.5, targetMiB: v, tolerance: 0.02, tape: .inference)!.scalar
        XCTAssertEqual(above, -below)
        XCTAssertEqual(Double(above), Foundation.log(Double(net.expectedSize(tape: .inference).scalar)), accuracy: 1e-5)
    }

    /// Initial logits start every group of every matrix alike; their softmax sets E[C] and their
    /// argmax the starting plan. A wrong count or a non-finite value is an error.
    func testInitialLogits() throws {
        let m = try model()
        let net = try SuperNetwork(model: m, candidates: [0, 2, 4], groups: 1, seed: 1, initialLogits: [0, 1, 0.5])
        XCTAssertEqual(net.logits.count, 12)
        for theta in net.logits {
            XCTAssertEqual(theta.array, [0, 1, 0.5])
        }
        let p = [Foundation.exp(0.0), Foundation.exp(1.0), Foundation.exp(0.5)]
        let meanBits = (2 * p[1] + 4 * p[2]) / p.reduce(0, +)
        let weights = 2 * (4 * 32 * 32 + 37 * 32 + 32 * 37)
        XCTAssertEqual(Double(net.expectedSize(tape: .inference).scalar), Double(weights) * meanBits / 8 / 1_048_576, accuracy: 1e-7)
        XCTAssertEqual(net.argmaxPlan(tieBreak: .widest, provenance: .init(method: "aq-bert")).averageBits, 2)
        net.uninstall()
        XCTAssertThrowsError(try SuperNetwork(model: m, candidates: [0, 2, 4], groups: 1, seed: 1, initialLogits: [0, 1])) {
            XCTAssertTrue("\($0)".contains("3 candidates"), "\($0)")
        }
        XCTAssertThrowsError(try SuperNetwork(model: m, candidates: [0, 2, 4], groups: 1, seed: 1, initialLogits: [0, .nan, 1]))
    }

    /// A warm start from a plan raises each group's logit of its planned width by the margin
    /// (on top of the initial logits), so the starting argmax is that plan; a plan that does not
    /// fit the search (another matrix set, group count or width) is an error naming the problem.
    func testInitialPlan() throws {
        let m = try model()
        let paths = QuantizableMatrices.paths(for: m.config)
        var bits: [String: [Int]] = [:]
        for (i, p) in paths.enumerated() { bits[p] = [[4, 2, 0][i % 3]] }
        let start = InitialPlan(bits: bits, margin: 1.5, source: "test")
        let net = try SuperNetwork(model: m, candidates: [0, 2, 4], groups: 1, seed: 1, initialLogits: [0.5, 0, 0], initialPlan: start)
        XCTAssertEqual(net.logits.count, paths.count)
        for (i, theta) in net.logits.enumerated() {
            XCTAssertEqual(theta.array, [[0.5, 0, 1.5], [0.5, 1.5, 0], [2, 0, 0]][i % 3], paths[i])
        }
        let plan = net.argmaxPlan(tieBreak: .widest, provenance: .init(method: "aq-bert"))
        XCTAssertEqual(plan.matrices.mapValues(\.bits), bits)
        net.uninstall()
        func fails(_ plan: InitialPlan, candidates: [Int] = [0, 2, 4], _ message: String) {
            XCTAssertThrowsError(try SuperNetwork(model: m, candidates: candidates, groups: 1, seed: 1, initialPlan: plan)) {
                XCTAssertTrue("\($0)".contains(message), "\($0)")
            }
        }
        var missing = bits
        missing[paths[3]] = nil
        fails(InitialPlan(bits: missing, margin: 1, source: "t"), "no widths for \(paths[3])")
        var extra = bits
        extra["bert.pooler.dense.weight"] = [4]
        fails(InitialPlan(bits: extra, margin: 1, source: "t"), "bert.pooler.dense.weight")
        var split = bits
        split[paths[0]] = [4, 4]
        fails(InitialPlan(bits: split, margin: 1, source: "t"), "into 2 groups, the search into 1")
        fails(start, candidates: [0, 3, 4], "2-bit groups, which are not among the candidates 0,3,4")
        fails(InitialPlan(bits: bits, margin: 0, source: "t"), "margin")
        fails(InitialPlan(bits: bits, margin: .nan, source: "t"), "margin")
    }

    /// With the mixed weights installed the model still trains end to end: the loss has
    /// gradients for the weights and for every matrix's logits.
    func testMixedModelBackpropagatesToWeightsAndLogits() throws {
        let m = try model()
        let net = try SuperNetwork(model: m, candidates: [0, 2, 4], groups: 1, seed: 2)
        net.temperature = 1
        let tape = Tape()
        let h = m.forward(BertBatch(sequences: [[2, 5, 6, 7, 3]]), tape: tape)
        tape.backward(from: tape.sum(tape.mul(h, h)))
        for theta in net.logits { XCTAssertTrue(theta.gradArray?.contains { $0 != 0 } ?? false, theta.name ?? "") }
        XCTAssertTrue(m.bert.layers[0].query.weight.gradArray?.contains { $0 != 0 } ?? false)
        net.uninstall()
        XCTAssertNil(m.bert.layers[0].query.weightTransform)
    }

    /// `--ranges mse`: every (group, candidate) gets the bounds `retrain --ranges learned` starts
    /// from, and with the mixing all on one candidate a matrix computes exactly the retraining's
    /// first step at that width; min/max ranges compute something else.
    func testMSERangesAreTheRetrainingStartBounds() throws {
        let m = try model()
        let net = try SuperNetwork(model: m, candidates: [0, 2, 4], groups: 1, seed: 1, ranges: .mse)
        defer { net.uninstall() }
        net.noise = false
        net.temperature = 1
        let linear = QuantizableMatrices.linears(m)[0], w = linear.weight
        XCTAssertEqual(net.bounds?.count, net.logits.count)
        for (c, b) in [(1, 2), (2, 4)] {
            let start = LearnedRanges.initial(w, groupBits: [b], method: .mse)
            let pairs = LearnedRanges.effective(start)
            for j in 0..<1 {
                XCTAssertEqual(net.bounds![0][(j * 3 + c) * 2], pairs[2 * j])
                XCTAssertEqual(net.bounds![0][(j * 3 + c) * 2 + 1], pairs[2 * j + 1])
            }
            let theta = net.logits[0]
            for j in 0..<1 { for k in 0..<3 { theta.pointer[j * 3 + k] = k == c ? 60 : -60 } }
            let mixed = linear.weightTransform!(w, .inference).array
            let retrain = Tape.inference.fakeQuantize(w, groupBits: [b], ranges: start).array
            for (x, y) in zip(mixed, retrain) { XCTAssertEqual(x, y, accuracy: 1e-6) }
            if b == 2 {
                let minmax = Tape.inference.fakeQuantize(w, groupBits: [2]).array
                XCTAssertNotEqual(minmax, retrain, "at 2 bits the MSE bounds clip")
            }
        }
        let plain = try SuperNetwork(model: try model(), candidates: [0, 2, 4], groups: 1, seed: 1)
        XCTAssertNil(plain.bounds)
        XCTAssertEqual(plain.ranges, .minmax)
    }

    /// The budget repair: above the band the least decided groups move one candidate down until
    /// the size is inside, below it they move up; an argmax inside the band is left alone; a band
    /// narrower than any group's step is an error naming the way out. Tiny model, one group per
    /// matrix: q, k, v, o are 32x32 (1,024 weights), the FFN matrices 1,184.
    func testBudgetRepairMovesTheLeastDecidedGroupsIntoTheBand() throws {
        let m = try model()
        let net = try SuperNetwork(model: m, candidates: [0, 2, 4], groups: 1, seed: 1)
        defer { net.uninstall() }
        let weights = 2 * (4 * 32 * 32 + 37 * 32 + 32 * 37)
        let sizes = QuantizableMatrices.of(m).map { $0.tensor.count }
        // Every matrix at 4 bits, matrix i decided by a margin 0.1 (i + 1) over 2 bits.
        for (i, theta) in net.logits.enumerated() { theta.assign([0, 1, 1 + 0.1 * Float(i + 1)]) }
        let v3 = BitPlan.budgetMiB(averageBits: 3, weights: weights)
        let (plan, repair) = try net.repairedArgmaxPlan(targetMiB: v3, tolerance: 0.1, tieBreak: .widest, provenance: .init(method: "aq-bert"))
        let r = try XCTUnwrap(repair)
        // 51,712 bits -> four 32x32 matrices (8,192 bits) -> 43,520, above 42,662; the FFN
        // intermediate matrix (2,368 bits) -> 41,152, inside.
        XCTAssertEqual(r.moves.map(\.path), Array(net.paths.prefix(5)))
        for (move, i) in zip(r.moves, 1...5) { XCTAssertEqual(move.margin, 0.1 * Float(i), accuracy: 1e-6) }
        XCTAssertTrue(r.moves.allSatisfy { $0.fromBits == 4 && $0.toBits == 2 && $0.group == 0 })
        XCTAssertEqual(r.argmaxMiB, 4 * Double(weights) / 8 / 1_048_576)
        XCTAssertEqual(plan.sizeMiB, Double(51_712 - 8_192 - 2 * sizes[4]) / 8 / 1_048_576)
        XCTAssertEqual(r.repairedMiB, plan.sizeMiB)
        XCTAssertEqual(plan.provenance.achievedMiB, plan.sizeMiB)
        XCTAssertEqual(plan.provenance.notes["budget_repair"], r.summary)
        XCTAssertTrue(r.summary.hasPrefix("5 groups moved one candidate down"), r.summary)
        for (i, path) in net.paths.enumerated() { XCTAssertEqual(plan.matrices[path]!.bits, [i < 5 ? 2 : 4], path) }
        try plan.validate(against: m)

        // Below the band: every matrix at 0 bits, the last matrices least decided.
        for (i, theta) in net.logits.enumerated() { theta.assign([1 + 0.1 * Float(12 - i), 1, 0]) }
        let v1 = BitPlan.budgetMiB(averageBits: 1, weights: weights)
        let (up, upRepair) = try net.repairedArgmaxPlan(targetMiB: v1, tolerance: 0.1, tieBreak: .widest, provenance: .init(method: "aq-bert"))
        XCTAssertEqual(try XCTUnwrap(upRepair).moves.map(\.path), Array(net.paths.suffix(6).reversed()))
        XCTAssertTrue(upRepair!.moves.allSatisfy { $0.fromBits == 0 && $0.toBits == 2 })
        XCTAssertEqual(abs(up.sizeMiB - v1) / v1, 0, accuracy: 0.1)

        // Inside the band: the argmax plan as it is, no note.
        for theta in net.logits { theta.assign([0, 1, 2]) }
        let (same, none) = try net.repairedArgmaxPlan(targetMiB: BitPlan.budgetMiB(averageBits: 3.95, weights: weights),
                                                      tolerance: 0.02, tieBreak: .widest, provenance: .init(method: "aq-bert"))
        XCTAssertNil(none)
        XCTAssertEqual(same.matrices, net.argmaxPlan(tieBreak: .widest, provenance: .init(method: "aq-bert")).matrices)
        XCTAssertNil(same.provenance.notes["budget_repair"])

        // +-2% around 3.1 bits is [39,275, 40,878] bits: from 41,152 every single step (>= 2,048
        // bits) jumps over it.
        for (i, theta) in net.logits.enumerated() { theta.assign([0, 1, 1 + 0.1 * Float(i + 1)]) }
        XCTAssertThrowsError(try net.repairedArgmaxPlan(targetMiB: BitPlan.budgetMiB(averageBits: 3.1, weights: weights), tolerance: 0.02,
                                                        tieBreak: .widest, provenance: .init(method: "aq-bert"))) {
            XCTAssertTrue("\($0)".contains("widen --tolerance"), "\($0)")
        }
    }
}
