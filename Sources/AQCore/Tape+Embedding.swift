// Embedding lookup. Legend: V = vocabulary rows, C = embedding width, N = number of ids.

extension Tape {
    /// Rows of `table` [V, C] gathered by `ids` (N ids) -> [N, C], reshaped to `shape + [C]`
    /// when `shape` is given. Backward scatter-adds dy rows into the table's gradient, in id
    /// order (deterministic). Ids must be in 0..<V (callers validate user input first).
    /// Rows looked up by `paddingIndex` get no gradient (torch `nn.Embedding(padding_idx:)`).
    public func embedding(_ table: Tensor, ids: [Int32], shape: [Int]? = nil, paddingIndex: Int32? = nil) -> Tensor {
        precondition(table.rank == 2, "embedding table must be 2-D, got \(table.shape)")
        let v = table.shape[0], c = table.shape[1]
        let outShape = (shape ?? [ids.count]) + [c]
        precondition(Tensor.count(of: Array(outShape.dropLast())) == ids.count, "embedding ids vs shape \(outShape)")
        let tracked = tracks(table)
        let y = output(outShape, tracked: tracked)
        ids.withUnsafeBufferPointer { idp in
            Runtime.parallelFor(ids.count, grain: max(1, 16384 / max(1, c))) { r in
                for i in r {
                    let id = Int(idp[i])
                    precondition(id >= 0 && id < v, "embedding id \(id) outside 0..<\(v)")
                    (y.pointer + i * c).update(from: table.pointer + id * c, count: c)
                }
            }
        }
        if tracked {
            record(y) {
                guard let dy = y.grad else { return }
                let g = table.ensureGrad().pointer
                for (i, id) in ids.enumerated() where id != paddingIndex {
                    Kernels.axpy(1, dy.pointer + i * c, g + Int(id) * c, count: c)
                }
            }
        }
        return y
    }
}
