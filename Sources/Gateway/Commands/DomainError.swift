import EventStore
import PostgresNIO

/// Why a command refused, in the domain's words: a coded reason and a message for the caller.
///
/// Commands (accounts, buckets and objects, channels, settings) throw these and know nothing of HTTP;
/// `APIError.from` maps each code's kind to a status, once, at the edge. The code's name is InsForge's
/// error code, so clients see the same `error` field whichever layer refused.
public struct DomainError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of refusal a code is: the edge's only input for choosing a status.
    public enum Kind: Sendable, Equatable {
        /// The input is malformed or breaks a rule (400).
        case invalidInput
        /// The caller may not do this (403).
        case forbidden
        /// The caller could not be identified (401).
        case unauthenticated
        /// What the command acts on does not exist (404).
        case notFound
        /// The state does not allow it now: a duplicate, a non-empty bucket (409).
        case conflict
    }

    /// A reason with its kind, like `PSQLError.Code`: static members per feature.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        /// InsForge's error code (`AUTH_EMAIL_EXISTS`, `STORAGE_NOT_FOUND`, ...).
        public let name: String
        public let kind: Kind

        public init(_ name: String, _ kind: Kind) {
            self.name = name
            self.kind = kind
        }

        public var description: String { name }

        public static func == (a: Code, b: Code) -> Bool { a.name == b.name }
        public func hash(into hasher: inout Hasher) { hasher.combine(name) }
    }

    public var code: Code
    public var message: String
    /// What the caller can do about it, when there is something.
    public var nextActions: String?

    public init(_ code: Code, _ message: String, nextActions: String? = nil) {
        self.code = code
        self.message = message
        self.nextActions = nextActions
    }

    public var description: String { "\(code.name): \(message)" }
}

extension DomainError.Code {
    /// Input that breaks a rule of any feature.
    public static let invalidInput = Self("INVALID_INPUT", .invalidInput)
    /// A thing of any feature that does not exist.
    public static let notFound = Self("NOT_FOUND", .notFound)
    /// A state of any feature that does not allow the change.
    public static let conflict = Self("CONFLICT", .conflict)
    /// A caller that may not do this.
    public static let forbidden = Self("FORBIDDEN", .forbidden)
}

extension DomainError {
    /// `INVALID_INPUT` with `message`.
    public static func invalidInput(_ message: String) -> DomainError { DomainError(.invalidInput, message) }
    /// `NOT_FOUND` with `message`.
    public static func notFound(_ message: String) -> DomainError { DomainError(.notFound, message) }
}

extension DomainError.Code {
    /// Sign-up with an address that has an account.
    public static let authEmailExists = Self("AUTH_EMAIL_EXISTS", .conflict)
    /// A wrong e-mail, password or code (one answer for all, so accounts cannot be probed).
    public static let authInvalidCredentials = Self("AUTH_INVALID_CREDENTIALS", .unauthenticated)
    /// Sign-in with a provider that has no client id and secret.
    public static let authOAuthNotConfigured = Self("AUTH_OAUTH_NOT_CONFIGURED", .invalidInput)
    /// An OAuth code exchanged with the wrong verifier (InsForge answers 400 with AUTH_UNAUTHORIZED).
    public static let authPKCEFailed = Self("AUTH_UNAUTHORIZED", .invalidInput)
    /// A secret that does not exist.
    public static let secretNotFound = Self("SECRET_NOT_FOUND", .notFound)
    /// Creating a secret whose key is active.
    public static let secretAlreadyExists = Self("SECRET_ALREADY_EXISTS", .conflict)
    /// A bucket or object that does not exist.
    public static let storageNotFound = Self("STORAGE_NOT_FOUND", .notFound)
    /// A bucket name that is taken.
    public static let storageAlreadyExists = Self("STORAGE_ALREADY_EXISTS", .conflict)
    /// Deleting a bucket that still has objects (without `force`).
    public static let storageBucketNotEmpty = Self("STORAGE_BUCKET_NOT_EMPTY", .conflict)
    /// A bucket name or object key that breaks the naming rules.
    public static let storageInvalidParameter = Self("STORAGE_INVALID_PARAMETER", .invalidInput)
}

extension DomainError {
    /// Whether `error` is the database refusing a duplicate, however the store wrapped it: a unique
    /// index deciding a race between two commands (two sign-ups with one address, two buckets of one name).
    static func isUniqueViolation(_ error: any Error) -> Bool {
        if let error = error as? EventStoreError, let underlying = error.underlying { return isUniqueViolation(underlying) }
        if let error = error as? PSQLError, error.code == .server { return error.serverInfo?[.sqlState] == "23505" }
        return false
    }
}
