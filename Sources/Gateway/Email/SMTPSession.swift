import EventStore
import Foundation

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
