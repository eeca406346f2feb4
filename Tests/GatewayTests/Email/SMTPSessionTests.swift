import Foundation
import Testing

@testable import Gateway

// The SMTP client's pure core: reply parser, line buffer, session state machine and message formatter.

private let sampleEnvelope = SMTPEnvelope(from: "noreply@example.test", to: "a@example.test",
                                          data: "Subject: hi\r\n\r\nhello\r\n.\r\n")
private let sampleCredentials = SMTPSession.Credentials(username: "user", password: "secret")

private func makeSMTPSession(credentials: SMTPSession.Credentials? = nil, loopback: Bool = false,
                             implicitTLS: Bool = false) -> SMTPSession {
    SMTPSession(configuration: .init(clientDomain: "client.example.test", credentials: credentials,
                                     startsWithTLS: implicitTLS, peerIsLoopback: loopback),
                envelope: sampleEnvelope)
}

/// Feeds `replies` in order; returns the action after each.
private func feedReplies(_ session: inout SMTPSession, _ replies: [SMTPReply]) -> [SMTPSession.Action] {
    replies.map { session.receive($0) }
}

/// Runs `transcript` (the server's bytes) through the line buffer and parser into `session`.
private func playTranscript(_ session: inout SMTPSession, _ transcript: String) throws -> [SMTPSession.Action] {
    var buffer = SMTPLineBuffer()
    var parser = SMTPReplyParser()
    buffer.append(contentsOf: Array(transcript.utf8))
    var actions: [SMTPSession.Action] = []
    while let line = try buffer.nextLine() {
        if let reply = try parser.parse(line: line) { actions.append(session.receive(reply)) }
    }
    return actions
}

/// The tail every successful session ends with, from MAIL FROM's reply on.
private let deliveryReplies = [SMTPReply(250, "OK"), SMTPReply(250, "OK"), SMTPReply(354, "go ahead"),
                               SMTPReply(250, "queued"), SMTPReply(221, "bye")]
private let deliveryActions: [SMTPSession.Action] = [
    .send("RCPT TO:<a@example.test>"), .send("DATA"), .sendData(sampleEnvelope.data), .send("QUIT"), .done,
]

private let ehloWithStartTLS = SMTPReply(250, "mail.example.test", "PIPELINING", "STARTTLS", "AUTH PLAIN LOGIN")

private let sampleFormatter = SMTPMessageFormatter(from: "noreply@example.test", fromName: "InsForge")

private let sampleDate = Date(timeIntervalSince1970: 1_732_645_500)

private func formatSample(_ message: EmailMessage, with formatter: SMTPMessageFormatter = sampleFormatter)
    throws(SMTPError) -> SMTPEnvelope {
    try formatter.envelope(for: message, date: sampleDate, uniqueID: "0d5e1f2a-test")
}

/// The data without dot-stuffing and the final ".", split into header lines (unfolded) and body.

private func splitMessage(_ data: String) -> (headers: [String: String], body: String) {
    #expect(data.hasSuffix("\r\n.\r\n"))
    // Drop the terminating ".\r\n" (by bytes: "\r\n" is a single Character).
    let unstuffed = String(decoding: Array(data.utf8.dropLast(3)), as: UTF8.self).components(separatedBy: "\r\n")
        .map { $0.hasPrefix(".") ? String($0.dropFirst()) : $0 }.joined(separator: "\r\n")
    let parts = unstuffed.components(separatedBy: "\r\n\r\n")
    let unfolded = parts[0].replacingOccurrences(of: "\r\n ", with: " ")
    var headers: [String: String] = [:]
    for line in unfolded.components(separatedBy: "\r\n") {
        let colon = line.firstIndex(of: ":")!
        headers[String(line[..<colon])] = String(line[line.index(colon, offsetBy: 2)...])
    }
    return (headers, parts.dropFirst().joined(separator: "\r\n\r\n"))
}

/// Decodes RFC 2047 B-encoded words separated by folding whitespace (enough for what the formatter writes).

private func decodeEncodedWords(_ value: String) -> String {
    var bytes: [UInt8] = []
    for word in value.split(separator: " ") {
        #expect(word.hasPrefix("=?UTF-8?B?") && word.hasSuffix("?="))
        let payload = word.dropFirst(10).dropLast(2)
        let decoded = Data(base64Encoded: String(payload))!
        #expect(String(data: decoded, encoding: .utf8) != nil, "every encoded word holds whole characters")
        bytes += decoded
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// Decodes quoted-printable (RFC 2045 6.7) back to text with CRLF line breaks.

private func decodeQuotedPrintable(_ text: String) -> String {
    var out: [UInt8] = []
    let lines = text.components(separatedBy: "\r\n")
    for (index, line) in lines.enumerated() {
        var bytes = Array(line.utf8)[...]
        var soft = false
        if bytes.last == UInt8(ascii: "=") {
            soft = true
            bytes = bytes.dropLast()
        }
        var i = bytes.startIndex
        while i < bytes.endIndex {
            if bytes[i] == UInt8(ascii: "=") {
                out.append(UInt8(String(decoding: bytes[(i + 1)...(i + 2)], as: UTF8.self), radix: 16)!)
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        if !soft && index < lines.count - 1 { out += [13, 10] }
    }
    return String(decoding: out, as: UTF8.self)
}

/// Unit tests of the SMTP client's pure parts (no network).
struct SMTPSessionTests {
    // MARK: - Session

    @Test func plainSessionWithoutAuthDelivers() {
        var session = makeSMTPSession()
        let actions = feedReplies(&session, [SMTPReply(220, "mail.example.test ESMTP"), SMTPReply(250, "mail.example.test", "8BITMIME")]
            + deliveryReplies)
        #expect(actions == [.send("EHLO client.example.test"), .send("MAIL FROM:<noreply@example.test>")] + deliveryActions)
        #expect(session.isDelivered)
        #expect(session.isFinished)
    }

    @Test func startTLSThenAuthPlain() {
        var session = makeSMTPSession(credentials: sampleCredentials)
        var actions = feedReplies(&session, [SMTPReply(220, "ready"), ehloWithStartTLS, SMTPReply(220, "go ahead")])
        #expect(actions == [.send("EHLO client.example.test"), .send("STARTTLS"), .startTLS])
        #expect(session.tlsEstablished() == .send("EHLO client.example.test"))
        actions = feedReplies(&session, [SMTPReply(250, "mail.example.test", "AUTH LOGIN PLAIN"), SMTPReply(235, "ok")]
            + deliveryReplies)
        #expect(actions == [.send("AUTH PLAIN AHVzZXIAc2VjcmV0"), .send("MAIL FROM:<noreply@example.test>")] + deliveryActions)
        #expect(session.isDelivered)
    }

    @Test func startTLSWithoutCredentials() {
        var session = makeSMTPSession()
        _ = feedReplies(&session, [SMTPReply(220, "ready"), ehloWithStartTLS, SMTPReply(220, "go ahead")])
        #expect(session.tlsEstablished() == .send("EHLO client.example.test"))
        // Still advertising STARTTLS after TLS must not start it twice.
        let actions = feedReplies(&session, [ehloWithStartTLS] + deliveryReplies)
        #expect(actions == [.send("MAIL FROM:<noreply@example.test>")] + deliveryActions)
    }

    @Test func authLoginWhenPlainIsNotAdvertised() {
        var session = makeSMTPSession(credentials: sampleCredentials)
        _ = feedReplies(&session, [SMTPReply(220, "ready"), ehloWithStartTLS, SMTPReply(220, "go ahead")])
        _ = session.tlsEstablished()
        // After TLS the extensions are read anew: only LOGIN now.
        let actions = feedReplies(&session, [SMTPReply(250, "mail.example.test", "AUTH LOGIN"), SMTPReply(334, "VXNlcm5hbWU6"),
                                      SMTPReply(334, "UGFzc3dvcmQ6"), SMTPReply(235, "ok")])
        #expect(actions == [.send("AUTH LOGIN"), .send("dXNlcg=="), .send("c2VjcmV0"), .send("MAIL FROM:<noreply@example.test>")])
    }

    @Test func authLoginWhenAuthIsNotAdvertised() {
        var session = makeSMTPSession(credentials: sampleCredentials, loopback: true)
        let actions = feedReplies(&session, [SMTPReply(220, "ready"), SMTPReply(250, "localhost")])
        #expect(actions == [.send("EHLO client.example.test"), .send("AUTH LOGIN")])
    }

    @Test func authPlainAnswersAnEmptyChallenge() {
        var session = makeSMTPSession(credentials: sampleCredentials, implicitTLS: true)
        let actions = feedReplies(&session, [SMTPReply(220, "ready"), SMTPReply(250, "x", "AUTH PLAIN"), SMTPReply(334, ""),
                                      SMTPReply(235, "ok")])
        #expect(actions == [.send("EHLO client.example.test"), .send("AUTH PLAIN AHVzZXIAc2VjcmV0"),
                            .send("AHVzZXIAc2VjcmV0"), .send("MAIL FROM:<noreply@example.test>")])
    }

    @Test func implicitTLSNeitherStartsTLSNorRefusesCredentials() {
        var session = makeSMTPSession(credentials: sampleCredentials, loopback: false, implicitTLS: true)
        let actions = feedReplies(&session, [SMTPReply(220, "ready"), ehloWithStartTLS])
        #expect(actions == [.send("EHLO client.example.test"), .send("AUTH PLAIN AHVzZXIAc2VjcmV0")])
    }

    @Test func oldStyleAuthEqualsLineIsUnderstood() {
        var session = makeSMTPSession(credentials: sampleCredentials, implicitTLS: true)
        let actions = feedReplies(&session, [SMTPReply(220, "ready"), SMTPReply(250, "x", "AUTH=PLAIN")])
        #expect(actions.last == .send("AUTH PLAIN AHVzZXIAc2VjcmV0"))
    }

    @Test func heloFallbackWhenEHLOIsRejected() {
        var session = makeSMTPSession()
        let actions = feedReplies(&session, [SMTPReply(220, "old server"), SMTPReply(502, "command not implemented"),
                                      SMTPReply(250, "hello")] + deliveryReplies)
        #expect(actions == [.send("EHLO client.example.test"), .send("HELO client.example.test"),
                            .send("MAIL FROM:<noreply@example.test>")] + deliveryActions)
    }

    @Test func heloFallbackWithCredentialsOnLoopbackUsesAuthLogin() {
        var session = makeSMTPSession(credentials: sampleCredentials, loopback: true)
        let actions = feedReplies(&session, [SMTPReply(220, "old"), SMTPReply(500, "what?"), SMTPReply(250, "hello")])
        #expect(actions.last == .send("AUTH LOGIN"))
    }

    @Test func transientEHLOErrorFailsWithoutHELO() {
        var session = makeSMTPSession()
        let actions = feedReplies(&session, [SMTPReply(220, "ready"), SMTPReply(421, "too busy")])
        guard case .fail(let error) = actions.last else { Issue.record("expected a failure"); return }
        #expect(error.code == .rejected)
        #expect(error.replyCode == 421)
        #expect(error.isTransient)
    }

    @Test func greetingOtherThan220Fails() {
        var session = makeSMTPSession()
        let action = session.receive(SMTPReply(554, "no service for you"))
        #expect(action == .fail(.rejected(code: 554, text: "no service for you", command: "connection")))
    }

    @Test func rejectionAtRCPTFails() {
        var session = makeSMTPSession()
        let actions = feedReplies(&session, [SMTPReply(220, "ready"), SMTPReply(250, "x"), SMTPReply(250, "ok"),
                                      SMTPReply(550, "5.1.1 no such user")])
        let error = SMTPError(code: .rejected, reason: "RCPT TO was rejected", replyCode: 550, replyText: "5.1.1 no such user")
        #expect(actions.last == .fail(error))
        #expect(!error.isTransient)
        #expect(error.description == "SMTP rejected: RCPT TO was rejected (550 5.1.1 no such user)")
        #expect(!session.isDelivered)
        #expect(session.isFinished)
        // The same failure is reported again whatever comes next.
        #expect(session.connectionClosed() == .fail(error))
        #expect(session.receive(SMTPReply(250, "ok")) == .fail(error))
    }

    @Test func rejectionOfTheMessageDataFails() {
        var session = makeSMTPSession()
        let actions = feedReplies(&session, [SMTPReply(220, "ready"), SMTPReply(250, "x"), SMTPReply(250, "ok"),
                                      SMTPReply(250, "ok"), SMTPReply(354, "go"), SMTPReply(554, "spam")])
        #expect(actions.last == .fail(.rejected(code: 554, text: "spam", command: "the message data")))
        #expect(!session.isDelivered)
    }

    @Test func authFailureFails() {
        var session = makeSMTPSession(credentials: sampleCredentials, implicitTLS: true)
        let actions = feedReplies(&session, [SMTPReply(220, "ready"), SMTPReply(250, "x", "AUTH PLAIN"),
                                      SMTPReply(535, "5.7.8 bad credentials")])
        guard case .fail(let error) = actions.last else { Issue.record("expected a failure"); return }
        #expect(error.code == .authenticationFailed)
        #expect(error.replyCode == 535)
        #expect(!error.description.contains("secret"))
    }

    @Test func authLoginFailureAtThePassword() {
        var session = makeSMTPSession(credentials: sampleCredentials, implicitTLS: true)
        let actions = feedReplies(&session, [SMTPReply(220, "ready"), SMTPReply(250, "x", "AUTH LOGIN"), SMTPReply(334, "VXNlcm5hbWU6"),
                                      SMTPReply(334, "UGFzc3dvcmQ6"), SMTPReply(535, "no")])
        guard case .fail(let error) = actions.last else { Issue.record("expected a failure"); return }
        #expect(error.code == .authenticationFailed)
    }

    @Test func noCredentialsOverPlaintextToANonLoopbackServer() {
        var session = makeSMTPSession(credentials: sampleCredentials, loopback: false)
        let actions = feedReplies(&session, [SMTPReply(220, "ready"), SMTPReply(250, "mail.example.test", "AUTH PLAIN LOGIN")])
        guard case .fail(let error) = actions.last else { Issue.record("expected a failure"); return }
        #expect(error.code == .tlsRequired)
        #expect(actions.allSatisfy { !"\($0)".contains("AHVzZXIAc2VjcmV0") })
    }

    @Test func credentialsOverPlaintextToLoopbackOnlyWithoutSTARTTLS() {
        var session = makeSMTPSession(credentials: sampleCredentials, loopback: true)
        #expect(feedReplies(&session, [SMTPReply(220, "ready"), SMTPReply(250, "localhost", "AUTH PLAIN")]).last
            == .send("AUTH PLAIN AHVzZXIAc2VjcmV0"))
        // When the loopback server offers STARTTLS it is still used first.
        var offering = makeSMTPSession(credentials: sampleCredentials, loopback: true)
        #expect(feedReplies(&offering, [SMTPReply(220, "ready"), ehloWithStartTLS]).last == .send("STARTTLS"))
    }

    @Test func refusedSTARTTLSFailsInsteadOfFallingBackToPlaintext() {
        var session = makeSMTPSession(credentials: sampleCredentials, loopback: true)
        let actions = feedReplies(&session, [SMTPReply(220, "ready"), ehloWithStartTLS, SMTPReply(454, "TLS not available")])
        guard case .fail(let error) = actions.last else { Issue.record("expected a failure"); return }
        #expect(error.code == .tlsFailed)
        #expect(error.replyCode == 454)
    }

    @Test func replyBeforeTheTLSHandshakeIsAProtocolViolation() {
        var session = makeSMTPSession()
        _ = feedReplies(&session, [SMTPReply(220, "ready"), ehloWithStartTLS, SMTPReply(220, "go ahead")])
        guard case .fail(let error) = session.receive(SMTPReply(250, "injected")) else {
            Issue.record("expected a failure")
            return
        }
        #expect(error.code == .protocolViolation)
        #expect(session.tlsEstablished() == .fail(error))
    }

    @Test func tlsEstablishedWithoutSTARTTLSIsAProtocolViolation() {
        var session = makeSMTPSession()
        guard case .fail(let error) = session.tlsEstablished() else { Issue.record("expected a failure"); return }
        #expect(error.code == .protocolViolation)
    }

    @Test func connectionClosedBeforeDeliveryFails() {
        var session = makeSMTPSession()
        _ = feedReplies(&session, [SMTPReply(220, "ready"), SMTPReply(250, "x")])
        guard case .fail(let error) = session.connectionClosed() else { Issue.record("expected a failure"); return }
        #expect(error.code == .connectionFailed)
        #expect(error.reason.contains("MAIL FROM"))
    }

    @Test func connectionClosedOrBrokenAfterDeliveryIsSuccess() {
        var session = makeSMTPSession()
        _ = feedReplies(&session, [SMTPReply(220, "ready"), SMTPReply(250, "x")] + deliveryReplies.dropLast())
        #expect(session.isDelivered && !session.isFinished)
        #expect(session.connectionClosed() == .done)

        var broken = makeSMTPSession()
        _ = feedReplies(&broken, [SMTPReply(220, "ready"), SMTPReply(250, "x")] + deliveryReplies.dropLast())
        #expect(broken.abort(SMTPError(code: .connectionFailed, reason: "reset")) == .done)
    }

    @Test func abortBeforeDeliveryFails() {
        var session = makeSMTPSession()
        let error = SMTPError(code: .timeout, reason: "slow")
        #expect(session.abort(error) == .fail(error))
        #expect(session.isFinished)
    }

    @Test func wholeTranscriptWithMultiLineReplies() throws {
        var session = makeSMTPSession(credentials: sampleCredentials)
        var actions = try playTranscript(&session, """
            220-mail.example.test ESMTP\r
            220 no UCE\r
            250-mail.example.test Hello\r
            250-SIZE 35882577\r
            250-STARTTLS\r
            250 ENHANCEDSTATUSCODES\r
            220 2.0.0 Ready to start TLS\r

            """)
        #expect(actions == [.send("EHLO client.example.test"), .send("STARTTLS"), .startTLS])
        #expect(session.tlsEstablished() == .send("EHLO client.example.test"))
        actions = try playTranscript(&session, "250-mail.example.test\n250-AUTH LOGIN PLAIN XOAUTH2\n250 SMTPUTF8\n235 2.7.0 ok\n"
            + "250 2.1.0 ok\n250 2.1.5 ok\n354 go\n250 2.0.0 queued as 1234\n221 2.0.0 bye\n")
        #expect(actions == [.send("AUTH PLAIN AHVzZXIAc2VjcmV0"), .send("MAIL FROM:<noreply@example.test>")] + deliveryActions)
    }

    // MARK: - Reply parser and line buffer

    @Test func parserCollectsContinuationLines() throws {
        var parser = SMTPReplyParser()
        #expect(try parser.parse(line: "250-mail.example.test greets you") == nil)
        #expect(try parser.parse(line: "250-STARTTLS") == nil)
        #expect(try parser.parse(line: "250 AUTH PLAIN") == SMTPReply(250, "mail.example.test greets you", "STARTTLS", "AUTH PLAIN"))
        // The parser starts afresh; a bare code is a complete reply.
        #expect(try parser.parse(line: "221") == SMTPReply(code: 221, lines: [""]))
        #expect(try parser.parse(line: "354 ") == SMTPReply(354, ""))
    }

    @Test(arguments: ["", "25", "abc", "250x", "250*ok", "650 ok", "2a0 ok"])
    func parserRejectsMalformedLines(line: String) {
        var parser = SMTPReplyParser()
        #expect(throws: SMTPError.self) { try parser.parse(line: line) }
    }

    @Test func parserRejectsACodeChangeMidReply() throws {
        var parser = SMTPReplyParser()
        _ = try parser.parse(line: "250-first")
        do {
            _ = try parser.parse(line: "251 second")
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .protocolViolation)
        }
    }

    @Test func parserBoundsTheLinesOfOneReply() throws {
        var parser = SMTPReplyParser()
        for _ in 0..<SMTPReplyParser.maximumLinesPerReply { _ = try parser.parse(line: "250-x") }
        #expect(throws: SMTPError.self) { try parser.parse(line: "250-x") }
    }

    @Test func lineBufferSplitsAcrossReads() throws {
        var buffer = SMTPLineBuffer()
        #expect(buffer.isEmpty)
        buffer.append(contentsOf: Array("250-one\r\n250 tw".utf8))
        #expect(try buffer.nextLine() == "250-one")
        #expect(try buffer.nextLine() == nil)
        #expect(!buffer.isEmpty)
        buffer.append(contentsOf: Array("o\r".utf8))
        #expect(try buffer.nextLine() == nil)
        buffer.append(contentsOf: Array("\n220 bare lf\n".utf8))
        #expect(try buffer.nextLine() == "250 two")
        #expect(try buffer.nextLine() == "220 bare lf")
        #expect(try buffer.nextLine() == nil)
        #expect(buffer.isEmpty)
    }

    @Test func lineBufferRefusesEndlessLines() throws {
        var buffer = SMTPLineBuffer()
        buffer.append(contentsOf: [UInt8](repeating: UInt8(ascii: "a"), count: SMTPLineBuffer.maximumLineLength + 1))
        #expect(throws: SMTPError.self) { try buffer.nextLine() }
        var complete = SMTPLineBuffer()
        complete.append(contentsOf: [UInt8](repeating: UInt8(ascii: "a"), count: SMTPLineBuffer.maximumLineLength + 1) + [10])
        #expect(throws: SMTPError.self) { try complete.nextLine() }
    }

    // MARK: - Addresses and names

    @Test func clientDomainPrefersAQualifiedHostname() {
        #expect(SMTPSession.clientDomain(hostname: "app1.example.com", localAddress: "10.0.0.5") == "app1.example.com")
        #expect(SMTPSession.clientDomain(hostname: "4f2a9c", localAddress: "10.0.0.5") == "[10.0.0.5]")
        #expect(SMTPSession.clientDomain(hostname: "bad name.example", localAddress: "::1") == "[IPv6:::1]")
        #expect(SMTPSession.clientDomain(hostname: nil, localAddress: nil) == "localhost")
    }

    @Test func loopbackAddresses() {
        for address in ["127.0.0.1", "127.1.2.3", "::1", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1"] {
            #expect(SMTPSession.isLoopback(ipAddress: address), "\(address)")
        }
        for address in ["10.0.0.1", "128.0.0.1", "::2", "::ffff:10.0.0.1", "localhost", "127.0.0", "fe80::1"] {
            #expect(!SMTPSession.isLoopback(ipAddress: address), "\(address)")
        }
    }

    // MARK: - Message format

    @Test func formatsTextOnlyMessage() throws {
        let envelope = try formatSample(EmailMessage(to: "a@example.test", subject: "Your sign-in code", text: "Code: 123456\n", html: nil))
        #expect(envelope.from == "noreply@example.test")
        #expect(envelope.to == "a@example.test")
        let (headers, body) = splitMessage(envelope.data)
        #expect(headers["From"] == "\"InsForge\" <noreply@example.test>")
        #expect(headers["To"] == "a@example.test")
        #expect(headers["Subject"] == "Your sign-in code")
        #expect(headers["Date"] == "Tue, 26 Nov 2024 18:25:00 +0000")
        #expect(headers["Message-ID"] == "<0d5e1f2a-test@example.test>")
        #expect(headers["MIME-Version"] == "1.0")
        #expect(headers["Content-Type"] == "text/plain; charset=UTF-8")
        #expect(headers["Content-Transfer-Encoding"] == "quoted-printable")
        #expect(body == "Code: 123456\r\n")
    }

    @Test func formatsMultipartAlternative() throws {
        let envelope = try formatSample(EmailMessage(to: "a@example.test", subject: "Verify", text: "Open: https://x.test/v?t=1\n",
                                               html: "<p>Open <a href=\"https://x.test/v?t=1\">this</a></p>"))
        let (headers, body) = splitMessage(envelope.data)
        #expect(headers["Content-Type"] == "multipart/alternative; boundary=\"=_0d5e1f2a-test\"")
        let parts = body.components(separatedBy: "\r\n--=_0d5e1f2a-test")
        #expect(parts.count == 4)
        #expect(parts[1].hasPrefix("\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"))
        #expect(parts[2].hasPrefix("\r\nContent-Type: text/html; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"))
        #expect(parts[3] == "--\r\n")
        let text = parts[1].components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
        let html = parts[2].components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
        #expect(decodeQuotedPrintable(text) == "Open: https://x.test/v?t=1\r\n")
        #expect(decodeQuotedPrintable(html) == "<p>Open <a href=\"https://x.test/v?t=1\">this</a></p>")
    }

    @Test func everyLineIsCRLFTerminatedAndShort() throws {
        let long = String(repeating: "word ", count: 60) + String(repeating: "x", count: 200)
        let envelope = try formatSample(EmailMessage(to: "a@example.test", subject: long, text: "a\rb\nc\r\n" + long, html: long))
        let data = Array(envelope.data.utf8)
        for (index, byte) in data.enumerated() {
            if byte == 10 { #expect(index > 0 && data[index - 1] == 13) }
            if byte == 13 { #expect(index + 1 < data.count && data[index + 1] == 10) }
            #expect(byte < 128, "7-bit data only")
        }
        for line in envelope.data.components(separatedBy: "\r\n") { #expect(line.utf8.count <= 998) }
        let (headers, body) = splitMessage(envelope.data)
        #expect(headers["Subject"] == long)
        for line in body.components(separatedBy: "\r\n") { #expect(line.utf8.count <= 76) }
    }

    @Test func dotStuffing() throws {
        let envelope = try formatSample(EmailMessage(to: "a@example.test", subject: "s", text: ".\n..two\n.hidden\nend.\n", html: nil))
        let lines = envelope.data.components(separatedBy: "\r\n")
        #expect(lines.contains(".."))
        #expect(lines.contains("...two"))
        #expect(lines.contains("..hidden"))
        #expect(lines.contains("end."))
        // Only the terminator is a lone ".".
        #expect(lines.filter { $0 == "." }.count == 1)
        #expect(envelope.data.hasSuffix("\r\n.\r\n"))
        #expect(SMTPMessageFormatter.dotStuffed(".a\nb\r\n.\r\n") == "..a\r\nb\r\n..\r\n.\r\n")
        #expect(SMTPMessageFormatter.dotStuffed("no newline") == "no newline\r\n.\r\n")
    }

    @Test(arguments: [
        EmailMessage(to: "a@example.test\r\nBcc: victim@example.test", subject: "s", text: "t", html: nil),
        EmailMessage(to: "a@example.test\n", subject: "s", text: "t", html: nil),
        EmailMessage(to: "a@example.test", subject: "hi\r\nBcc: victim@example.test", text: "t", html: nil),
        EmailMessage(to: "a@example.test", subject: "hi\nX-Injected: 1", text: "t", html: nil),
        EmailMessage(to: "a@example.test", subject: "hi\r", text: "t", html: nil),
    ])
    func headerInjectionIsRefused(message: EmailMessage) {
        do {
            _ = try formatSample(message)
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .invalidMessage)
            #expect(error.reason.contains("header injection"))
        }
    }

    @Test func headerInjectionInTheSenderIsRefused() {
        let message = EmailMessage(to: "a@example.test", subject: "s", text: "t", html: nil)
        for formatter in [SMTPMessageFormatter(from: "x@example.test\r\nBcc: v@example.test", fromName: nil),
                          SMTPMessageFormatter(from: "x@example.test", fromName: "Evil\nBcc: v@example.test")] {
            #expect(throws: SMTPError.self) { try formatSample(message, with: formatter) }
        }
    }

    @Test(arguments: ["", "plain", "@example.test", "a@", "a b@example.test", "<a@example.test>", "Name <a@example.test>",
                      "a@b@c", "a,b@example.test", "müller@example.test", "a@example.test>\nRCPT TO:<b@example.test"])
    func invalidRecipientsAreRefused(to: String) {
        #expect(throws: SMTPError.self) { try formatSample(EmailMessage(to: to, subject: "s", text: "t", html: nil)) }
    }

    @Test func validAddressesPass() throws {
        for address in ["a@example.test", "first.last+tag@sub.example.co.uk", "x_y-z@localhost"] {
            #expect(try SMTPMessageFormatter.validatedAddress(address, field: "to") == address)
        }
    }

    @Test func nonASCIISubjectIsEncoded() throws {
        let subject = "Grüße — 你好 🎉"
        let envelope = try formatSample(EmailMessage(to: "a@example.test", subject: subject, text: "t", html: nil))
        let header = envelope.data.components(separatedBy: "\r\n").first { $0.hasPrefix("Subject: ") }!
        #expect(header.hasPrefix("Subject: =?UTF-8?B?"))
        let (headers, _) = splitMessage(envelope.data)
        #expect(decodeEncodedWords(headers["Subject"]!) == subject)
    }

    @Test func longNonASCIISubjectIsSplitIntoWholeCharacterWords() throws {
        let subject = String(repeating: "Überprüfung 你好 🎉 ", count: 8)
        let folded = SMTPMessageFormatter.unstructured(header: "Subject", subject)
        let lines = folded.components(separatedBy: "\r\n")
        #expect(lines.count > 3)
        for line in lines { #expect(line.utf8.count <= 76) }
        for line in lines.dropFirst() { #expect(line.hasPrefix(" =?UTF-8?B?")) }
        #expect(decodeEncodedWords(String(folded.dropFirst("Subject: ".count)).replacingOccurrences(of: "\r\n", with: "")) == subject)
    }

    @Test func subjectThatLooksEncodedIsEncoded() {
        let folded = SMTPMessageFormatter.unstructured(header: "Subject", "=?UTF-8?B?aGk=?=")
        #expect(decodeEncodedWords(String(folded.dropFirst(9))) == "=?UTF-8?B?aGk=?=")
    }

    @Test func longASCIISubjectIsFoldedAtSpaces() {
        let subject = (1...30).map { "word\($0)" }.joined(separator: " ")
        let folded = SMTPMessageFormatter.unstructured(header: "Subject", subject)
        let lines = folded.components(separatedBy: "\r\n")
        #expect(lines.count > 1)
        for line in lines { #expect(line.utf8.count <= 78) }
        #expect(folded.replacingOccurrences(of: "\r\n", with: "") == "Subject: " + subject)
    }

    @Test func displayNames() {
        #expect(SMTPMessageFormatter.mailbox(header: "From", displayName: "Say \"hi\" \\ Co", address: "a@example.test")
            == "From: \"Say \\\"hi\\\" \\\\ Co\" <a@example.test>")
        let encoded = SMTPMessageFormatter.mailbox(header: "From", displayName: "Zoë's App", address: "a@example.test")
        #expect(encoded.hasPrefix("From: =?UTF-8?B?"))
        #expect(encoded.hasSuffix(" <a@example.test>"))
        let name = encoded.dropFirst(6).dropLast(" <a@example.test>".count).replacingOccurrences(of: "\r\n", with: "")
        #expect(decodeEncodedWords(name) == "Zoë's App")
    }

    @Test func quotedPrintable() {
        #expect(SMTPMessageFormatter.quotedPrintable("a=b") == "a=3Db")
        #expect(SMTPMessageFormatter.quotedPrintable("é") == "=C3=A9")
        #expect(SMTPMessageFormatter.quotedPrintable("trailing \nspace\t") == "trailing=20\r\nspace=09")
        #expect(SMTPMessageFormatter.quotedPrintable("in the middle") == "in the middle")
        #expect(SMTPMessageFormatter.quotedPrintable("a\r\nb\rc\nd") == "a\r\nb\r\nc\r\nd")
        let long = String(repeating: "ab=é ", count: 40)
        let encoded = SMTPMessageFormatter.quotedPrintable(long)
        for line in encoded.components(separatedBy: "\r\n") { #expect(line.utf8.count <= 76) }
        #expect(decodeQuotedPrintable(encoded) == long)
        // Exactly 76 characters fit on one line; 77 need a soft break.
        #expect(SMTPMessageFormatter.quotedPrintable(String(repeating: "x", count: 76)) == String(repeating: "x", count: 76))
        #expect(SMTPMessageFormatter.quotedPrintable(String(repeating: "x", count: 77))
            == String(repeating: "x", count: 75) + "=\r\nxx")
    }

    @Test func rfc5322Dates() {
        #expect(SMTPMessageFormatter.rfc5322Date(Date(timeIntervalSince1970: 0)) == "Thu, 01 Jan 1970 00:00:00 +0000")
        #expect(SMTPMessageFormatter.rfc5322Date(Date(timeIntervalSince1970: 951_782_400)) == "Tue, 29 Feb 2000 00:00:00 +0000")
        #expect(SMTPMessageFormatter.rfc5322Date(Date(timeIntervalSince1970: 1_732_645_500.9)) == "Tue, 26 Nov 2024 18:25:00 +0000")
        #expect(SMTPMessageFormatter.rfc5322Date(Date(timeIntervalSince1970: -1)) == "Wed, 31 Dec 1969 23:59:59 +0000")
    }

    // MARK: - Configuration and errors

    @Test func implicitTLSDefaultsToPort465() {
        #expect(SMTPConfiguration(host: "h", port: 465, from: "a@b.test").implicitTLS)
        #expect(!SMTPConfiguration(host: "h", port: 587, from: "a@b.test").implicitTLS)
        #expect(!SMTPConfiguration(host: "h", port: 465, from: "a@b.test", implicitTLS: false).implicitTLS)
    }

    @Test func passwordsDoNotPrint() {
        let configuration = SMTPConfiguration(host: "h", username: "u", password: "hunter2", from: "a@b.test")
        #expect(!"\(configuration)".contains("hunter2"))
        #expect(!"\(sampleCredentials)".contains("secret"))
        #expect(!String(reflecting: makeSMTPSession(credentials: sampleCredentials)).contains("secret"))
        var dumped = ""
        dump(makeSMTPSession(credentials: sampleCredentials), to: &dumped)
        #expect(!dumped.contains("secret"))
    }

    @Test func transientErrors() {
        #expect(SMTPError(code: .timeout, reason: "").isTransient)
        #expect(SMTPError(code: .connectionFailed, reason: "").isTransient)
        #expect(!SMTPError(code: .authenticationFailed, reason: "", replyCode: 535).isTransient)
        #expect(SMTPError.rejected(code: 451, text: "try later", command: "DATA").isTransient)
        #expect(!SMTPError(code: .invalidMessage, reason: "").isTransient)
    }
}
