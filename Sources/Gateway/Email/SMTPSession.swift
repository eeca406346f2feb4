import EventStore
import Foundation

// The SMTP client's protocol logic, free of I/O: the reply parser and line buffer, the session state machine
// (replies in, actions out) and the message formatter. `SMTPEmailSender` is the thin NIO shell that drives them.

// MARK: - Errors

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

// MARK: - Replies

/// One complete server reply: its three-digit code and the text of each of its lines.
struct SMTPReply: Sendable, Equatable {
    /// The reply code, e.g. 250.
    var code: Int
    /// The text after `NNN-` / `NNN ` on each line (for EHLO: the greeting, then one extension per line).
    var lines: [String]

    init(code: Int, lines: [String]) {
        self.code = code
        self.lines = lines
    }

    /// A reply of `code` with `lines` (test shorthand).
    init(_ code: Int, _ lines: String...) {
        self.init(code: code, lines: lines.isEmpty ? [""] : lines)
    }

    /// The lines joined by spaces, for error messages.
    var text: String { lines.joined(separator: " ") }
}

/// Collects reply lines (`250-PIPELINING` continuations, then a final `250 OK`) into `SMTPReply`s.
struct SMTPReplyParser: Sendable {
    /// More lines than this in one reply is treated as a hostile or broken server.
    static let maximumLinesPerReply = 256

    private var code: Int?
    private var lines: [String] = []

    init() {}

    /// Takes one line (without CRLF); returns the reply it completes, or nil while continuation lines come.
    mutating func parse(line: String) throws(SMTPError) -> SMTPReply? {
        let bytes = Array(line.utf8)
        guard bytes.count >= 3, bytes[0] >= UInt8(ascii: "1"), bytes[0] <= UInt8(ascii: "5"),
              bytes[1...2].allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            throw SMTPError(code: .protocolViolation, reason: "malformed reply line: \(line.prefix(80))")
        }
        let lineCode = Int(bytes[0] - 48) * 100 + Int(bytes[1] - 48) * 10 + Int(bytes[2] - 48)
        var isFinal = true
        var text = ""
        if bytes.count > 3 {
            switch bytes[3] {
            case UInt8(ascii: " "): isFinal = true
            case UInt8(ascii: "-"): isFinal = false
            default: throw SMTPError(code: .protocolViolation, reason: "malformed reply line: \(line.prefix(80))")
            }
            text = String(decoding: bytes[4...], as: UTF8.self)
        }
        if let code, code != lineCode {
            throw SMTPError(code: .protocolViolation, reason: "reply code changed from \(code) to \(lineCode) mid-reply")
        }
        guard lines.count < Self.maximumLinesPerReply else {
            throw SMTPError(code: .protocolViolation, reason: "reply longer than \(Self.maximumLinesPerReply) lines")
        }
        code = lineCode
        lines.append(text)
        guard isFinal else { return nil }
        let reply = SMTPReply(code: lineCode, lines: lines)
        code = nil
        lines = []
        return reply
    }
}

/// Splits received bytes into lines at LF (dropping a CR before it); bounded so a server cannot grow it forever.
struct SMTPLineBuffer: Sendable {
    /// RFC 5321 allows 512 octets per reply line; servers in the wild exceed it, so this is lenient.
    static let maximumLineLength = 4096

    private var bytes: [UInt8] = []
    private var start = 0

    init() {}

    /// Whether bytes are waiting that do not yet form a whole line (or have not been read as lines yet).
    var isEmpty: Bool { start == bytes.count }

    /// Adds received bytes.
    mutating func append(contentsOf newBytes: some Sequence<UInt8>) {
        if start > 0, start == bytes.count {
            bytes.removeAll(keepingCapacity: true)
            start = 0
        }
        bytes.append(contentsOf: newBytes)
    }

    /// The next complete line without its line ending, or nil when none is complete yet.
    mutating func nextLine() throws(SMTPError) -> String? {
        guard let newline = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) else {
            if bytes.count - start > Self.maximumLineLength {
                throw SMTPError(code: .protocolViolation, reason: "reply line longer than \(Self.maximumLineLength) bytes")
            }
            return nil
        }
        var end = newline
        if end > start, bytes[end - 1] == UInt8(ascii: "\r") { end -= 1 }
        guard end - start <= Self.maximumLineLength else {
            throw SMTPError(code: .protocolViolation, reason: "reply line longer than \(Self.maximumLineLength) bytes")
        }
        let line = String(decoding: bytes[start..<end], as: UTF8.self)
        start = newline + 1
        if start == bytes.count {
            bytes.removeAll(keepingCapacity: true)
            start = 0
        }
        return line
    }
}

// MARK: - Session

/// What one message's SMTP transaction needs: the validated envelope addresses and the wire-ready data.
struct SMTPEnvelope: Sendable, Equatable {
    /// The envelope sender (`MAIL FROM`).
    var from: String
    /// The envelope recipient (`RCPT TO`).
    var to: String
    /// The message as sent after `DATA`: CRLF lines, dot-stuffed, ending in CRLF.CRLF.
    var data: String
}

/// One SMTP client session as a pure state machine: feed it the server's replies, perform the actions it returns.
///
/// Flow: greeting 220 → EHLO (HELO on 5xx) → STARTTLS when offered and not yet TLS → EHLO again → AUTH PLAIN
/// (when advertised, else AUTH LOGIN) if there are credentials → MAIL FROM → RCPT TO → DATA → data → QUIT.
struct SMTPSession: Sendable {
    /// Login for SMTP AUTH; prints without the password.
    struct Credentials: Sendable, Equatable, CustomStringConvertible, CustomReflectable {
        var username: String
        var password: String

        var description: String { "Credentials(username: \(username), password: <redacted>)" }
        var customMirror: Mirror { Mirror(self, children: ["username": username, "password": "<redacted>"]) }
    }

    /// The session's fixed inputs.
    struct Configuration: Sendable, Equatable {
        /// Our name in EHLO/HELO (see `SMTPSession.clientDomain`).
        var clientDomain: String
        /// What to log in with, if anything.
        var credentials: Credentials?
        /// Whether the connection is TLS from the start (implicit TLS, port 465).
        var startsWithTLS: Bool
        /// Whether the connected peer address is a loopback address (127.0.0.0/8, ::1).
        var peerIsLoopback: Bool
    }

    /// What the I/O layer must do next.
    enum Action: Sendable, Equatable {
        /// Write this command line followed by CRLF.
        case send(String)
        /// Put TLS in front of the connection, then call `tlsEstablished()` once the handshake completes.
        case startTLS
        /// Write this message data as is (it already ends in CRLF.CRLF).
        case sendData(String)
        /// The session is over: close the connection; the message was delivered.
        case done
        /// The session failed: close the connection and report the error.
        case fail(SMTPError)
    }

    private enum State: Sendable, Equatable {
        case greeting, ehlo, helo, startTLS, tlsHandshake
        case authPlain, authPlainResponse, authLoginUsername, authLoginPassword, authLoginResult
        case mailFrom, rcptTo, data, dataAccepted, quit
        case done
        case failed(SMTPError)
    }

    let configuration: Configuration
    let envelope: SMTPEnvelope
    private var state: State = .greeting
    private var isTLS: Bool
    private var offersStartTLS = false
    /// The mechanisms of the EHLO reply's AUTH line; nil when AUTH was not advertised.
    private var authMechanisms: Set<String>?
    /// Whether the server accepted the message (250 after the data); QUIT's fate no longer matters then.
    private(set) var isDelivered = false

    init(configuration: Configuration, envelope: SMTPEnvelope) {
        self.configuration = configuration
        self.envelope = envelope
        self.isTLS = configuration.startsWithTLS
    }

    /// Whether the session has ended, delivered or failed.
    var isFinished: Bool {
        switch state {
        case .done, .failed: true
        default: false
        }
    }

    /// Takes the server's next complete reply and says what to do.
    mutating func receive(_ reply: SMTPReply) -> Action {
        switch state {
        case .greeting:
            guard reply.code == 220 else { return fail(.rejected(code: reply.code, text: reply.text, command: "connection")) }
            return sendEHLO()

        case .ehlo:
            if reply.code == 250 {
                readExtensions(reply)
                return afterHello()
            }
            if (500..<600).contains(reply.code) {
                state = .helo
                return .send("HELO \(configuration.clientDomain)")
            }
            return fail(.rejected(code: reply.code, text: reply.text, command: "EHLO"))

        case .helo:
            guard reply.code == 250 else { return fail(.rejected(code: reply.code, text: reply.text, command: "HELO")) }
            offersStartTLS = false
            authMechanisms = nil
            return afterHello()

        case .startTLS:
            guard reply.code == 220 else {
                return fail(SMTPError(code: .tlsFailed, reason: "STARTTLS was refused", replyCode: reply.code, replyText: reply.text))
            }
            state = .tlsHandshake
            return .startTLS

        case .tlsHandshake:
            // Anything here was sent in plaintext after "220 go ahead" and would be read as if it came over TLS
            // (the STARTTLS command-injection attack), so it ends the session.
            return fail(SMTPError(code: .protocolViolation, reason: "reply received before the TLS handshake completed"))

        case .authPlain:
            if reply.code == 235 { return sendMailFrom() }
            if reply.code == 334, let credentials = configuration.credentials {
                // The server asked for the initial response separately.
                state = .authPlainResponse
                return .send(Self.plainResponse(credentials))
            }
            return failAuthentication(reply, mechanism: "PLAIN")

        case .authPlainResponse:
            guard reply.code == 235 else { return failAuthentication(reply, mechanism: "PLAIN") }
            return sendMailFrom()

        case .authLoginUsername:
            guard reply.code == 334, let credentials = configuration.credentials else {
                return failAuthentication(reply, mechanism: "LOGIN")
            }
            state = .authLoginPassword
            return .send(Self.base64(credentials.username))

        case .authLoginPassword:
            guard reply.code == 334, let credentials = configuration.credentials else {
                return failAuthentication(reply, mechanism: "LOGIN")
            }
            state = .authLoginResult
            return .send(Self.base64(credentials.password))

        case .authLoginResult:
            guard reply.code == 235 else { return failAuthentication(reply, mechanism: "LOGIN") }
            return sendMailFrom()

        case .mailFrom:
            guard reply.code == 250 else { return fail(.rejected(code: reply.code, text: reply.text, command: "MAIL FROM")) }
            state = .rcptTo
            return .send("RCPT TO:<\(envelope.to)>")

        case .rcptTo:
            guard reply.code == 250 || reply.code == 251 else {
                return fail(.rejected(code: reply.code, text: reply.text, command: "RCPT TO"))
            }
            state = .data
            return .send("DATA")

        case .data:
            guard reply.code == 354 else { return fail(.rejected(code: reply.code, text: reply.text, command: "DATA")) }
            state = .dataAccepted
            return .sendData(envelope.data)

        case .dataAccepted:
            guard reply.code == 250 else {
                return fail(.rejected(code: reply.code, text: reply.text, command: "the message data"))
            }
            isDelivered = true
            state = .quit
            return .send("QUIT")

        case .quit:
            state = .done
            return .done

        case .done:
            return .done

        case .failed(let error):
            return .fail(error)
        }
    }

    /// The TLS handshake that `.startTLS` asked for has completed: greet again, as RFC 3207 requires.
    mutating func tlsEstablished() -> Action {
        if case .failed(let error) = state { return .fail(error) }
        guard state == .tlsHandshake else {
            return fail(SMTPError(code: .protocolViolation, reason: "TLS established without STARTTLS"))
        }
        isTLS = true
        offersStartTLS = false
        authMechanisms = nil
        return sendEHLO()
    }

    /// The connection closed: fine once the message was accepted, a failure before.
    mutating func connectionClosed() -> Action {
        switch state {
        case .done:
            return .done
        case .failed(let error):
            return .fail(error)
        default:
            if isDelivered {
                state = .done
                return .done
            }
            return fail(SMTPError(code: .connectionFailed, reason: "the server closed the connection during \(phase)"))
        }
    }

    /// Ends the session because of an I/O-level `error`; after delivery that is still a success.
    mutating func abort(_ error: SMTPError) -> Action {
        switch state {
        case .done: return .done
        case .failed(let first): return .fail(first)
        default:
            if isDelivered {
                state = .done
                return .done
            }
            return fail(error)
        }
    }

    /// The command whose reply is awaited, for error messages.
    var phase: String {
        switch state {
        case .greeting: "the greeting"
        case .ehlo: "EHLO"
        case .helo: "HELO"
        case .startTLS, .tlsHandshake: "STARTTLS"
        case .authPlain, .authPlainResponse, .authLoginUsername, .authLoginPassword, .authLoginResult: "AUTH"
        case .mailFrom: "MAIL FROM"
        case .rcptTo: "RCPT TO"
        case .data: "DATA"
        case .dataAccepted: "the message data"
        case .quit: "QUIT"
        case .done, .failed: "the end of the session"
        }
    }

    private mutating func sendEHLO() -> Action {
        state = .ehlo
        return .send("EHLO \(configuration.clientDomain)")
    }

    private mutating func readExtensions(_ reply: SMTPReply) {
        offersStartTLS = false
        authMechanisms = nil
        // The first line is the server's greeting text, the others one extension each: "KEYWORD params".
        for line in reply.lines.dropFirst() {
            let words = line.uppercased().split(whereSeparator: { $0 == " " || $0 == "=" }).map(String.init)
            guard let keyword = words.first else { continue }
            if keyword == "STARTTLS" { offersStartTLS = true }
            if keyword == "AUTH" { authMechanisms = (authMechanisms ?? []).union(words.dropFirst()) }
        }
    }

    private mutating func afterHello() -> Action {
        if !isTLS && offersStartTLS {
            state = .startTLS
            return .send("STARTTLS")
        }
        guard let credentials = configuration.credentials else { return sendMailFrom() }
        // Here either TLS is up or the server offers none. Credentials then go in plaintext only to a loopback
        // peer (a local relay or test receiver): those bytes never leave the machine, so no one on the network can
        // read them, while refusing would make local, TLS-less relays unusable.
        if !isTLS && !configuration.peerIsLoopback {
            return fail(SMTPError(code: .tlsRequired,
                                  reason: "the server offers no STARTTLS; credentials are sent in plaintext only to a loopback address"))
        }
        if authMechanisms?.contains("PLAIN") == true {
            state = .authPlain
            return .send("AUTH PLAIN \(Self.plainResponse(credentials))")
        }
        state = .authLoginUsername
        return .send("AUTH LOGIN")
    }

    private mutating func sendMailFrom() -> Action {
        state = .mailFrom
        return .send("MAIL FROM:<\(envelope.from)>")
    }

    private mutating func fail(_ error: SMTPError) -> Action {
        state = .failed(error)
        return .fail(error)
    }

    private mutating func failAuthentication(_ reply: SMTPReply, mechanism: String) -> Action {
        fail(SMTPError(code: .authenticationFailed, reason: "AUTH \(mechanism) was refused",
                       replyCode: reply.code, replyText: reply.text))
    }

    /// RFC 4616: base64 of "authzid NUL authcid NUL password", with an empty authzid.
    static func plainResponse(_ credentials: Credentials) -> String {
        base64("\u{0}\(credentials.username)\u{0}\(credentials.password)")
    }

    static func base64(_ text: String) -> String {
        Data(text.utf8).base64EncodedString()
    }

    /// Our EHLO name: the host name when it is a fully qualified domain, else the local address as an address
    /// literal (RFC 5321 4.1.4), else `localhost`.
    static func clientDomain(hostname: String?, localAddress: String?) -> String {
        if let hostname, hostname.contains("."), !hostname.hasPrefix("."), !hostname.hasSuffix("."),
           hostname.utf8.allSatisfy({ $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") || isAlphanumeric($0) }) {
            return hostname
        }
        if let localAddress, !localAddress.isEmpty {
            return localAddress.contains(":") ? "[IPv6:\(localAddress)]" : "[\(localAddress)]"
        }
        return "localhost"
    }

    /// Whether `ipAddress` (as `inet_ntop` prints it) is a loopback address: 127.0.0.0/8, ::1, or IPv4-mapped 127/8.
    static func isLoopback(ipAddress: String) -> Bool {
        let address = ipAddress.lowercased()
        if address == "::1" || address == "0:0:0:0:0:0:0:1" { return true }
        let v4 = address.hasPrefix("::ffff:") ? String(address.dropFirst(7)) : address
        let octets = v4.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4, octets.allSatisfy({ UInt8($0) != nil }) else { return false }
        return octets[0] == "127"
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }
}

// MARK: - Message format

/// Turns an `EmailMessage` into RFC 5322/MIME data: headers (encoded words for non-ASCII), a text/plain part and
/// an optional text/html alternative, both UTF-8 quoted-printable, CRLF lines, dot-stuffed for DATA.
struct SMTPMessageFormatter: Sendable {
    /// The sender's address.
    var from: String
    /// The sender's display name, if any.
    var fromName: String?

    /// Lines longer than this (RFC 5322's recommendation) are folded where the format allows.
    static let preferredLineLength = 78
    /// RFC 2047's limit for a header line that holds encoded words.
    static let encodedWordLineLength = 76

    /// The envelope and data for `message`; `uniqueID` makes the Message-ID and the MIME boundary.
    func envelope(for message: EmailMessage, date: Date, uniqueID: String) throws(SMTPError) -> SMTPEnvelope {
        let from = try Self.validatedAddress(from, field: "from")
        let to = try Self.validatedAddress(message.to, field: "to")
        guard !Self.containsLineBreak(message.subject) else {
            throw SMTPError(code: .invalidMessage, reason: "the subject contains a line break (header injection)")
        }
        if let fromName, Self.containsLineBreak(fromName) {
            throw SMTPError(code: .invalidMessage, reason: "the sender name contains a line break (header injection)")
        }
        guard let at = from.lastIndex(of: "@") else { throw SMTPError(code: .invalidMessage, reason: "the sender address has no domain") }
        let domain = from[from.index(after: at)...]

        var headers: [String] = []
        if let fromName, !fromName.isEmpty {
            headers.append(Self.mailbox(header: "From", displayName: fromName, address: from))
        } else {
            headers.append("From: \(from)")
        }
        headers.append("To: \(to)")
        headers.append(Self.unstructured(header: "Subject", message.subject))
        headers.append("Date: \(Self.rfc5322Date(date))")
        headers.append("Message-ID: <\(uniqueID)@\(domain)>")
        headers.append("MIME-Version: 1.0")

        var body: String
        let textPart = Self.quotedPrintable(message.text)
        if let html = message.html {
            // "=_" cannot occur in quoted-printable output ('=' is always followed by hex digits or a line break),
            // so this boundary can never collide with the content.
            let boundary = "=_\(uniqueID)"
            headers.append("Content-Type: multipart/alternative; boundary=\"\(boundary)\"")
            body = "This is a multi-part message in MIME format.\r\n"
            body += "\r\n--\(boundary)\r\n"
            body += "Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
            body += textPart
            body += "\r\n--\(boundary)\r\n"
            body += "Content-Type: text/html; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
            body += Self.quotedPrintable(html)
            body += "\r\n--\(boundary)--\r\n"
        } else {
            headers.append("Content-Type: text/plain; charset=UTF-8")
            headers.append("Content-Transfer-Encoding: quoted-printable")
            body = textPart  // dot-stuffing ends the last line with CRLF
        }
        let message = headers.joined(separator: "\r\n") + "\r\n\r\n" + body
        return SMTPEnvelope(from: from, to: to, data: Self.dotStuffed(message))
    }

    /// `address` when it is a plain `local@domain` of printable ASCII without spaces, brackets or separators.
    static func validatedAddress(_ address: String, field: String) throws(SMTPError) -> String {
        if containsLineBreak(address) {
            throw SMTPError(code: .invalidMessage, reason: "the \(field) address contains a line break (header injection)")
        }
        let forbidden = Set("<>()[],;:\\\"".utf8)
        guard !address.isEmpty, address.utf8.count <= 254,
              address.utf8.allSatisfy({ $0 > 32 && $0 < 127 && !forbidden.contains($0) }),
              let at = address.firstIndex(of: "@"), at != address.startIndex,
              address.index(after: at) != address.endIndex,
              !address[address.index(after: at)...].contains("@") else {
            throw SMTPError(code: .invalidMessage, reason: "the \(field) address is not a plain ASCII local@domain address")
        }
        return address
    }

    static func containsLineBreak(_ text: String) -> Bool {
        text.utf8.contains(where: { $0 == 13 || $0 == 10 })
    }

    /// `Header: text`, folded at spaces when long, or as RFC 2047 encoded words when it is not plain ASCII.
    static func unstructured(header: String, _ text: String) -> String {
        let prefix = "\(header): "
        let words = text.split(separator: " ", omittingEmptySubsequences: false)
        let isPlain = text.utf8.allSatisfy({ $0 >= 32 && $0 < 127 }) && !text.contains("=?")
            && words.allSatisfy({ $0.utf8.count < 900 })
        guard isPlain else {
            return prefix + encodedWords(text, firstLineUsed: prefix.utf8.count).joined(separator: "\r\n ")
        }
        var lines: [String] = []
        var current = "\(header):"
        for word in words {
            // Fold only before a non-empty word and after a non-space, so no folded line is whitespace alone.
            if current.utf8.count + 1 + word.utf8.count > preferredLineLength, !word.isEmpty,
               current.utf8.count > header.utf8.count + 1, current.last != " " {
                lines.append(current)
                current = " " + word
            } else {
                current += " " + word
            }
        }
        lines.append(current)
        return lines.joined(separator: "\r\n")
    }

    /// `From: name <address>`: the name quoted when ASCII, else as encoded words.
    static func mailbox(header: String, displayName: String, address: String) -> String {
        let prefix = "\(header): "
        var lines: [String]
        if displayName.utf8.allSatisfy({ $0 >= 32 && $0 < 127 }) && !displayName.contains("=?") {
            var quoted = "\""
            for character in displayName {
                if character == "\"" || character == "\\" { quoted.append("\\") }
                quoted.append(character)
            }
            quoted += "\""
            lines = [prefix + quoted]
        } else {
            let words = encodedWords(displayName, firstLineUsed: prefix.utf8.count)
            lines = [prefix + words[0]] + words.dropFirst().map { " " + $0 }
        }
        let angle = "<\(address)>"
        if lines[lines.count - 1].utf8.count + 1 + angle.utf8.count > preferredLineLength {
            lines.append(" " + angle)
        } else {
            lines[lines.count - 1] += " " + angle
        }
        return lines.joined(separator: "\r\n")
    }

    /// `text` as `=?UTF-8?B?...?=` words, each whole UTF-8 characters, each line (the first after
    /// `firstLineUsed` bytes, the others after one space) at most 76 bytes.
    static func encodedWords(_ text: String, firstLineUsed: Int) -> [String] {
        let overhead = "=?UTF-8?B??=".utf8.count
        func byteBudget(lineUsed: Int) -> Int {
            max(3, (encodedWordLineLength - lineUsed - overhead) / 4 * 3)
        }
        var words: [String] = []
        var chunk: [UInt8] = []
        var budget = byteBudget(lineUsed: firstLineUsed)
        for scalar in text.unicodeScalars {
            let bytes = Array(String(scalar).utf8)
            if chunk.count + bytes.count > budget, !chunk.isEmpty {
                words.append("=?UTF-8?B?\(Data(chunk).base64EncodedString())?=")
                chunk = []
                budget = byteBudget(lineUsed: 1)
            }
            chunk += bytes
        }
        if !chunk.isEmpty || words.isEmpty {
            words.append("=?UTF-8?B?\(Data(chunk).base64EncodedString())?=")
        }
        return words
    }

    /// `text` as UTF-8 quoted-printable (RFC 2045 6.7): its line breaks become CRLF hard breaks, lines longer than
    /// 76 get soft breaks, trailing spaces and tabs are encoded. No CRLF after the last line.
    static func quotedPrintable(_ text: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count + text.utf8.count / 8)
        for (index, line) in lines(of: text).enumerated() {
            if index > 0 { out += [13, 10] }
            var lineLength = 0
            for (position, byte) in line.enumerated() {
                let isLast = position == line.count - 1
                let literal = (byte >= 33 && byte <= 126 && byte != UInt8(ascii: "="))
                    || ((byte == 32 || byte == 9) && !isLast)
                let token: [UInt8] = literal ? [byte] : [UInt8(ascii: "="), hex[Int(byte >> 4)], hex[Int(byte & 15)]]
                // Keep room for the soft break's "=", except for the line's last token, which ends it.
                let limit = isLast ? 76 : 75
                if lineLength + token.count > limit {
                    out += [UInt8(ascii: "="), 13, 10]
                    lineLength = 0
                }
                out += token
                lineLength += token.count
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The lines of `text` as UTF-8 bytes, split at CRLF, CR or LF.
    static func lines(of text: String) -> [[UInt8]] {
        var result: [[UInt8]] = []
        var current: [UInt8] = []
        var previousWasCR = false
        for byte in text.utf8 {
            if byte == 10 && previousWasCR {
                previousWasCR = false
                continue
            }
            previousWasCR = byte == 13
            if byte == 10 || byte == 13 {
                result.append(current)
                current = []
            } else {
                current.append(byte)
            }
        }
        result.append(current)
        return result
    }

    /// `message` with CRLF line endings, a "." doubled at the start of every line (RFC 5321 4.5.2), and the
    /// terminating CRLF.CRLF.
    static func dotStuffed(_ message: String) -> String {
        var lines = lines(of: message)
        if lines.last?.isEmpty == true { lines.removeLast() }
        var out: [UInt8] = []
        out.reserveCapacity(message.utf8.count + 16)
        for line in lines {
            if line.first == UInt8(ascii: ".") { out.append(UInt8(ascii: ".")) }
            out += line
            out += [13, 10]
        }
        out += Array(".\r\n".utf8)
        return String(decoding: out, as: UTF8.self)
    }

    /// `date` as an RFC 5322 date-time in UTC, e.g. `Thu, 01 Jan 1970 00:00:00 +0000` (no locale involved).
    static func rfc5322Date(_ date: Date) -> String {
        let seconds = Int(date.timeIntervalSince1970.rounded(.down))
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        let (year, month, day) = JSONCoding.civilDate(daysSince1970: Int64(days))
        let weekdays = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]  // 1970-01-01 was a Thursday
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        let weekday = weekdays[((days % 7) + 7) % 7]
        func two<N: BinaryInteger>(_ n: N) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(weekday), \(two(day)) \(months[Int(month) - 1]) \(year) "
            + "\(two(secondOfDay / 3600)):\(two(secondOfDay % 3600 / 60)):\(two(secondOfDay % 60)) +0000"
    }
}
