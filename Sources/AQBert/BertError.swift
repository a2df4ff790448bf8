/// A user-facing failure of model loading or use; `description` is one line.
public struct BertError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
