/// What the appender believes about the stream; a wrong belief is a conflict, never an overwrite.
public enum ExpectedVersion: Sendable, Hashable {
    /// No check.
    case any
    /// The stream must not exist yet.
    case noStream
    /// The stream must have at least one event.
    case streamExists
    /// The stream's last version must be exactly this (0 means no stream).
    case exact(Int64)

    /// The encoding understood by `system.append_locked`.
    var sqlValue: Int64? {
        switch self {
        case .any: nil
        case .noStream: -1
        case .streamExists: -2
        case .exact(let n): n
        }
    }
}
