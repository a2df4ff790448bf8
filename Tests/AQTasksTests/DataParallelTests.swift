import AQBert
import AQParallel
import AQQuant
import AQSearch
import Foundation
import XCTest

@testable import AQTasks

/// The parts of data parallelism that one process can check: the overlapped gradient sums start
/// a bucket only once the backward pass has finished every gradient in it.
final class DataParallelTests: XCTestCase {
    /// With one process a sum is the identity, so a bucket packed before its gradients were
    /// complete would write stale values back over them. Buckets of at most 2,000 floats (about
    /// one per tensor of the tiny BERT), dropout on, for fine-tuning and for quantization-aware
    /// training with learned ranges and layer-wise distillation: the gradients equal a plain
    /// backward pass's bit for bit, and most buckets start before the pass ends. Likewise for
    /// the search's super-network (weights and logits, Gumbel noise on, table logits too).
    func testOverlappedSumsStartABucketOnlyWhenItsGradientsAreComplete() throws {
        for setting in ["fp32", "qat", "search"] {
            let quantized = setting != "fp32"
            let student = try TrainerTests.tinyModelWithDropout()
            let features = SyntheticPipeline(seed: 3, train: 8, eval: 1).trainFeatures
            let batch = FeatureBatch(features, padId: 0)
            var quantization: QuantizedBert? = nil
            var distillation: Distillation? = nil
            var network: SuperNetwork? = nil
            var ranges: [String: [Float]] = [:]
            if setting == "search" {
                let n = try SuperNetwork(model: student, candidates: [0, 2, 4], groups: 1, seed: 4, budget: .file,
                                         embeddings: EmbeddingSearch(candidates: [2, 4, 8], rowsPerGroup: 8))
                n.training = true  // Gumbel noise on; the activation ranges as now before each pass
                _ = student.forward(batch.inputs, tape: .inference)
                ranges = n.activationRanges
                network = n
            } else if quantized {
                let plan = try BitPlan.uniform(model: student, bits: 2, groups: 1, candidates: [0, 2, 4])
                let q = try QuantizedBert(plan: plan, model: student, ranges: .learned, rangeInitialization: .mse)
                q.training = true  // one pass to set the activation ranges, then frozen for both passes
                _ = student.forward(batch.inputs, tape: .inference)
                q.training = false
                quantization = q
                let (teacher, _) = try BertTaskModel.load(directory: TrainerTests.tinyModel)
                distillation = Distillation(teacher: teacher, settings: DistillationSettings(mode: .all))
            }
            let parameters = student.parameters + (quantization?.rangeParameters.map(\.tensor) ?? []) + (network?.logits ?? [])
            for t in network?.logits ?? [] { t.requiresGrad = true }
            student.training = true
            func pass(_ overlapped: Bool) throws -> (gradients: [[Float]?], startedAt: [Int]) {
                for p in parameters { p.grad = nil }
                student.bert.generator = SeededGenerator(seed: 9)
                network?.generator = SeededGenerator(seed: 10)
                try network?.setActivationRanges(ranges)
                let tape = Tape()
                student.bert.layerMarks = []
                let loss = distillation?.loss(of: student, batch: batch, tape: tape)
                    ?? student.taskLoss(student.forward(batch.inputs, tape: tape), batch: batch, tape: tape)
                let marks = student.bert.layerMarks ?? []
                student.bert.layerMarks = nil
                XCTAssertEqual(marks.count, student.bert.layers.count + 1)
                var sums: OverlappedGradientSum? = nil
                if overlapped {
                    let s = OverlappedGradientSum(group: .single, parameters: parameters,
                                                  readiness: gradientReadiness(of: parameters, model: student, marks: marks),
                                                  rows: [ObjectIdentifier(student.bert.embeddings.word.weight): gatheredIds(features, padId: 0)],
                                                  bucketFloats: 2_000)
                    tape.afterRule = { s.ruleDone(remaining: $0) }
                    sums = s
                }
                tape.backward(from: loss)
                try sums?.finish()
                return (parameters.map(\.gradArray), sums?.startedAt ?? [])
            }
            let plain = try pass(false), overlapped = try pass(true)
            for (i, (a, b)) in zip(plain.gradients, overlapped.gradients).enumerated() {
                XCTAssertEqual(a == nil, b == nil, "\(setting): parameter \(i) has a gradient in one pass only")
                guard let a, let b else { continue }
                let differing = zip(a, b).filter { $0.bitPattern != $1.bitPattern }.count
                XCTAssertEqual(differing, 0, "\(setting): \(differing) of \(a.count) values of parameter \(i)'s gradient \(parameters[i].shape) differ")
            }
            let early = overlapped.startedAt.filter { $0 > 0 }.count
            XCTAssertGreaterThan(early, overlapped.startedAt.count / 2, "\(setting): buckets started during the pass: \(overlapped.startedAt)")
        }
    }
}
