import AQFiles
import Foundation

/// Every failure of model resolution. `description` is one line that says what went wrong and
/// what to do about it, e.g. `model "org/name" is not in the Hugging Face cache at /x/hub and
/// HF_HUB_OFFLINE=1 forbids downloading it: unset HF_HUB_OFFLINE, or pass a local model directory`.
public struct HubError: Error, CustomStringConvertible, Equatable, Sendable, LocalizedError {
    public enum Kind: String, Sendable, Equatable, CaseIterable {
        /// The spec names an existing file, not a directory.
        case notADirectory
        /// The spec names a directory without `config.json`.
        case missingConfig
        /// The spec looks like a path (or is no valid model id) and nothing exists there.
        case noSuchPath
        /// Offline, and the cache lacks the model (or some file of it).
        case notCachedOffline
        /// HTTP 401/403: private, gated, or (unauthenticated) unknown model.
        case accessDenied
        /// HTTP 404: no such model or revision.
        case notFound
        /// HTTP 404 for a file the model needs (`config.json`, weights, `vocab.txt`).
        case missingFile
        /// The hub could not be reached (DNS, refused connection, timeout, TLS).
        case unreachable
        /// The transfer of a file stopped before its end; the partial file is kept for resuming.
        case interrupted
        /// Any other HTTP status, or a response that is not from a Hugging Face hub.
        case badResponse
        /// Creating, writing or renaming a file in the cache failed.
        case cacheWrite
    }

    public let kind: Kind
    /// The full one-line message.
    public let description: String

    public var errorDescription: String? { description }

    init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.description = oneLine(message)
    }
}

/// Quote a (possibly hostile) name for a one-line message: JSON-style escapes, length capped.
func quoted(_ s: String) -> String { JSONText.quoted(s, maxScalars: 200, lineBreakers: true) }

/// Replace any line break or control character so the message stays on one line.
func oneLine(_ s: String) -> String {
    var out = ""
    for scalar in s.unicodeScalars {
        if scalar.value < 0x20 || scalar.value == 0x7F || scalar.value == 0x85
            || scalar.value == 0x2028 || scalar.value == 0x2029 {
            out += String(format: "\\u%04x", scalar.value)
        } else {
            out.unicodeScalars.append(scalar)
        }
    }
    return out
}
