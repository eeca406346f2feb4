import EventStore
import Foundation

/// Why an e-mail could not be sent over SMTP; never carries credentials or the message body.
public struct SMTPError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of failure: a fixed set, compared by identity (like `PSQLError.Code`).
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case connectionFailed, tlsFailed, tlsRequired, authenticationFailed, rejected, timeout
            case invalidMessage, protocolViolation
        }

        private let base: Base

        private init(_ base: Base) {
            self.base = base
        }

        /// The server could not be reached, or the connection broke before the message was accepted.
        public static let connectionFailed = Code(.connectionFailed)
        /// STARTTLS was refused, the TLS handshake failed, or the CA file could not be loaded.
        public static let tlsFailed = Code(.tlsFailed)
        /// Credentials would have gone over plaintext to a non-loopback server that offers no STARTTLS.
        public static let tlsRequired = Code(.tlsRequired)
        /// The server refused the credentials (or the AUTH exchange).
        public static let authenticationFailed = Code(.authenticationFailed)
        /// The server answered a command with an error reply (`replyCode`, `replyText`), e.g. 550 at RCPT TO.
        public static let rejected = Code(.rejected)
        /// The whole send took longer than `SMTPConfiguration.timeout`.
        public static let timeout = Code(.timeout)
        /// The message cannot be sent as given: a bad address, or CR/LF in a header field (header injection).
        public static let invalidMessage = Code(.invalidMessage)
        /// The server broke the protocol: a malformed reply, or data where none may come (e.g. before TLS).
        public static let protocolViolation = Code(.protocolViolation)

        /// The code's name, e.g. `rejected`.
        public var description: String { base.rawValue }
    }

    /// The kind of failure.
    public var code: Code
    /// What went wrong, in words.
    public var reason: String
    /// The server's reply code, when a reply caused the error (e.g. 550 for an unknown recipient).
    public var replyCode: Int?
    /// The server's reply text (its lines joined by spaces), when a reply caused the error.
    public var replyText: String?

    /// An error of `code`, optionally caused by a server reply.
    public init(code: Code, reason: String, replyCode: Int? = nil, replyText: String? = nil) {
        self.code = code
        self.reason = reason
        self.replyCode = replyCode
        self.replyText = replyText
    }

    /// The server answered `command` with the error reply `code` `text`.
    public static func rejected(code: Int, text: String, command: String) -> SMTPError {
        SMTPError(code: .rejected, reason: "\(command) was rejected", replyCode: code, replyText: text)
    }

    /// Whether trying again later may succeed: 4xx replies, timeouts and broken connections.
    public var isTransient: Bool {
        if let replyCode { return (400..<500).contains(replyCode) }
        return code == .timeout || code == .connectionFailed
    }

    /// `code: reason (reply)`, for logs.
    public var description: String {
        var out = "SMTP \(code): \(reason)"
        if let replyCode { out += " (\(replyCode)\(replyText.map { " \($0)" } ?? ""))" }
        return out
    }
}
