// TEMPORARY until the SMTP sender lands.
import Logging
public struct EmailMessage: Sendable, Equatable {
    public var to: String; public var subject: String; public var text: String; public var html: String?
    public init(to: String, subject: String, text: String, html: String?) { self.to = to; self.subject = subject; self.text = text; self.html = html }
}
public protocol EmailSender: Sendable { func send(_ message: EmailMessage) async throws }
public struct DisabledEmailSender: EmailSender {
    let logger: Logger
    public init(logger: Logger) { self.logger = logger }
    public func send(_ message: EmailMessage) async throws { logger.warning("no SMTP configured; not sent", metadata: ["to": "\(message.to)"]) }
}
