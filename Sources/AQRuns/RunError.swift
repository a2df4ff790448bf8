/// A user error of a run (a bad path, a malformed file, an impossible budget): one line naming the
/// option at fault. The CLI prints it as "Error: <description>" and exits non-zero.
public struct RunError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
