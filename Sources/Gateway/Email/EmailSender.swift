import Logging

/// One e-mail to send.
public struct EmailMessage: Sendable, Equatable {
    /// The recipient's address (a bare `local@domain`, no display name).
    public var to: String
    /// The subject line (any Unicode; encoded for the wire as needed).
    public var subject: String
    /// The plain-text body.
    public var text: String
    /// An HTML alternative to `text`, if any.
    public var html: String?

    /// A message to `to`.
    public init(to: String, subject: String, text: String, html: String?) {
        self.to = to
        self.subject = subject
        self.text = text
        self.html = html
    }
}

/// Sends e-mail (auth codes, links). Implementations: `SMTPEmailSender`, and `DisabledEmailSender` (no SMTP
/// configured: logs a warning with the recipient and subject only, never the body, and succeeds).
public protocol EmailSender: Sendable {
    /// Sends `message`, or throws (`SMTPError` for the SMTP sender).
    func send(_ message: EmailMessage) async throws
}

/// The sender used when no SMTP server is configured: the message is dropped with a warning.
public struct DisabledEmailSender: EmailSender {
    let logger: Logger

    /// A sender that logs to `logger`.
    public init(logger: Logger) {
        self.logger = logger
    }

    /// Logs the recipient and subject (never the body: it holds codes and sign-in links) and succeeds.
    public func send(_ message: EmailMessage) async throws {
        logger.warning("no SMTP server configured; e-mail not sent",
                       metadata: ["email.to": "\(message.to)", "email.subject": "\(message.subject)"])
    }
}
