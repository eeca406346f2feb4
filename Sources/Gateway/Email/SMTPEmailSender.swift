import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Sends each message over its own SMTP connection (STARTTLS or implicit TLS, AUTH PLAIN/LOGIN), bounded by
/// `SMTPConfiguration.timeout`; failures are thrown as `SMTPError`.
public struct SMTPEmailSender: EmailSender {
    let configuration: SMTPConfiguration
    let eventLoopGroup: any EventLoopGroup
    let logger: Logger
    private let formatter: SMTPMessageFormatter
    /// Built once; a bad CA file surfaces as `tlsFailed` when a send needs TLS.
    private let tlsContext: Result<NIOSSLContext, SMTPError>
    private let hostname: String?

    /// A sender for `configuration`, on `eventLoopGroup`.
    public init(configuration: SMTPConfiguration, eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                logger: Logger) {
        self.configuration = configuration
        self.eventLoopGroup = eventLoopGroup
        var logger = logger
        logger[metadataKey: "smtp.server"] = "\(configuration.host):\(configuration.port)"
        self.logger = logger
        self.formatter = SMTPMessageFormatter(from: configuration.from, fromName: configuration.fromName)
        self.tlsContext = Self.makeTLSContext(caFile: configuration.caFile)
        self.hostname = Self.systemHostname()
    }

    /// Formats `message`, then connects, runs the SMTP dialogue and disconnects; throws `SMTPError`
    /// (or `CancellationError` when the task is cancelled).
    public func send(_ message: EmailMessage) async throws {
        let uniqueID = UUID().uuidString.lowercased()
        let envelope = try formatter.envelope(for: message, date: Date(), uniqueID: uniqueID)
        let started = ContinuousClock.now
        try await deliver(envelope)
        logger.debug("e-mail sent", metadata: [
            "email.to": "\(envelope.to)", "email.id": "\(uniqueID)", "smtp.duration": "\(ContinuousClock.now - started)",
        ])
    }

    private func deliver(_ envelope: SMTPEnvelope) async throws {
        let implicitTLS = configuration.implicitTLS ? try tlsContext.get() : nil
        let eventLoop = eventLoopGroup.next()
        let promise = eventLoop.makePromise(of: Void.self)
        let timeout = TimeAmount(configuration.timeout)
        let configuration = configuration
        // Set by the handler once the server accepted the message: a QUIT that hangs after that is no failure.
        let delivered = NIOLoopBoundBox.makeBoxSendingValue(false, eventLoop: eventLoop)
        let timeoutTask = eventLoop.scheduleTask(in: timeout) {
            if delivered.value {
                promise.succeed(())
            } else {
                promise.fail(SMTPError(code: .timeout, reason: "no delivery within \(configuration.timeout)"))
            }
        }
        promise.futureResult.whenComplete { _ in timeoutTask.cancel() }

        let serverHostname = Self.serverHostname(for: configuration.host)
        let credentials = configuration.username.map {
            SMTPSession.Credentials(username: $0, password: configuration.password ?? "")
        }
        let handlerSettings = SMTPClientHandler.Settings(
            envelope: envelope, credentials: credentials, hostname: hostname, implicitTLS: configuration.implicitTLS,
            tlsContext: tlsContext, serverHostname: serverHostname)
        let logger = logger

        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let implicitTLS {
                        try channel.pipeline.syncOperations.addHandler(
                            NIOSSLClientHandler(context: implicitTLS, serverHostname: serverHostname))
                    }
                    try channel.pipeline.syncOperations.addHandler(
                        SMTPClientHandler(settings: handlerSettings, promise: promise, delivered: delivered, logger: logger))
                }
            }
        bootstrap.connect(host: configuration.host, port: configuration.port).whenComplete { result in
            switch result {
            case .success(let channel):
                // Whatever ends the send (reply, timeout, cancellation) also ends the connection.
                promise.futureResult.whenComplete { _ in channel.close(promise: nil) }
            case .failure(let error):
                promise.fail(SMTPError(code: .connectionFailed,
                                       reason: "cannot connect to \(configuration.host):\(configuration.port): \(error)"))
            }
        }
        try await withTaskCancellationHandler {
            try await promise.futureResult.get()
        } onCancel: {
            promise.fail(CancellationError())
        }
    }

    /// The TLS client settings: system trust roots plus the certificates of `caFile`, if any.
    static func makeTLSContext(caFile: String?) -> Result<NIOSSLContext, SMTPError> {
        do {
            var tls = TLSConfiguration.makeClientConfiguration()
            if let caFile {
                tls.additionalTrustRoots = [.certificates(try NIOSSLCertificate.fromPEMFile(caFile))]
            }
            return .success(try NIOSSLContext(configuration: tls))
        } catch {
            return .failure(SMTPError(code: .tlsFailed, reason: "cannot set up TLS (CA file \(caFile ?? "none")): \(error)"))
        }
    }

    /// The name to send in SNI and check the certificate against; nil for an IP address, whose certificate
    /// NIOSSL then checks against the peer address (IP SANs).
    static func serverHostname(for host: String) -> String? {
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        return (try? SocketAddress(ipAddress: bare, port: 0)) == nil ? host : nil
    }

    private static func systemHostname() -> String? {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return nil }
        return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}

/// Drives one `SMTPSession` over a channel: splits the bytes into reply lines, feeds the replies in, performs
/// the actions (writes, STARTTLS) and completes `promise` once the session ends.
final class SMTPClientHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// What the handler needs besides the promise.
    struct Settings: Sendable {
        var envelope: SMTPEnvelope
        var credentials: SMTPSession.Credentials?
        var hostname: String?
        var implicitTLS: Bool
        var tlsContext: Result<NIOSSLContext, SMTPError>
        var serverHostname: String?
    }

    private let settings: Settings
    private let promise: EventLoopPromise<Void>
    private let delivered: NIOLoopBoundBox<Bool>
    private let logger: Logger
    private var session: SMTPSession
    private var parser = SMTPReplyParser()
    private var lines = SMTPLineBuffer()
    private var awaitingHandshake = false

    init(settings: Settings, promise: EventLoopPromise<Void>, delivered: NIOLoopBoundBox<Bool>, logger: Logger) {
        self.settings = settings
        self.promise = promise
        self.delivered = delivered
        self.logger = logger
        // Replaced in channelActive, once the addresses are known.
        self.session = Self.makeSession(settings: settings, localAddress: nil, peerIsLoopback: false)
    }

    private static func makeSession(settings: Settings, localAddress: String?, peerIsLoopback: Bool) -> SMTPSession {
        SMTPSession(
            configuration: .init(clientDomain: SMTPSession.clientDomain(hostname: settings.hostname, localAddress: localAddress),
                                 credentials: settings.credentials, startsWithTLS: settings.implicitTLS,
                                 peerIsLoopback: peerIsLoopback),
            envelope: settings.envelope)
    }

    func channelActive(context: ChannelHandlerContext) {
        // The loopback exception for plaintext AUTH is judged on the address actually connected to, not on the
        // configured name.
        let peer = context.channel.remoteAddress?.ipAddress
        session = Self.makeSession(settings: settings, localAddress: context.channel.localAddress?.ipAddress,
                                   peerIsLoopback: peer.map(SMTPSession.isLoopback(ipAddress:)) ?? false)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        lines.append(contentsOf: buffer.readableBytesView)
        do {
            while !session.isFinished, let line = try lines.nextLine() {
                guard let reply = try parser.parse(line: line) else { continue }
                logger.trace("SMTP reply", metadata: ["smtp.phase": "\(session.phase)", "smtp.code": "\(reply.code)"])
                perform(session.receive(reply), context: context)
            }
        } catch {
            perform(session.abort(error), context: context)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if awaitingHandshake, let event = event as? TLSUserEvent, case .handshakeCompleted = event {
            awaitingHandshake = false
            perform(session.tlsEstablished(), context: context)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !session.isFinished {
            complete(session.connectionClosed())
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard !session.isFinished else { return }
        // After delivery (e.g. a TLS close without close_notify after QUIT) the session reports success.
        let isTLSError = awaitingHandshake || error is NIOSSLError || error is NIOSSLExtraError
        perform(session.abort(SMTPError(code: isTLSError ? .tlsFailed : .connectionFailed,
                                        reason: "\(isTLSError ? "TLS" : "connection") error during \(session.phase): \(error)")),
                context: context)
    }

    private func perform(_ action: SMTPSession.Action, context: ChannelHandlerContext) {
        delivered.value = session.isDelivered
        switch action {
        case .send(let line):
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: line + "\r\n")), promise: nil)
        case .sendData(let data):
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: data)), promise: nil)
        case .startTLS:
            startTLS(context: context)
        case .done, .fail:
            complete(action)
            context.close(promise: nil)
        }
    }

    private func complete(_ action: SMTPSession.Action) {
        switch action {
        case .done: promise.succeed(())
        case .fail(let error): promise.fail(error)
        case .send, .sendData, .startTLS: break
        }
    }

    private func startTLS(context: ChannelHandlerContext) {
        // Bytes already here arrived in plaintext after "220 ready to start TLS"; taking them as if they came over
        // TLS is the STARTTLS command-injection attack, so they end the session.
        guard lines.isEmpty else {
            perform(session.abort(SMTPError(code: .protocolViolation, reason: "data arrived after the STARTTLS reply")),
                    context: context)
            return
        }
        do {
            let tls = try NIOSSLClientHandler(context: try settings.tlsContext.get(), serverHostname: settings.serverHostname)
            awaitingHandshake = true
            try context.pipeline.syncOperations.addHandler(tls, position: .first)
        } catch let error as SMTPError {
            perform(session.abort(error), context: context)
        } catch {
            perform(session.abort(SMTPError(code: .tlsFailed, reason: "cannot start TLS: \(error)")), context: context)
        }
    }
}
