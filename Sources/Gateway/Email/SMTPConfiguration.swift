/// Where and how `SMTPEmailSender` delivers mail.
public struct SMTPConfiguration: Sendable, Equatable, CustomStringConvertible {
    /// The submission server's host name or IP address.
    public var host: String
    /// The server's port: 587 (submission, STARTTLS), 465 (implicit TLS) or 25.
    public var port: Int
    /// The login for SMTP AUTH; nil to send without authenticating.
    public var username: String?
    /// The password for SMTP AUTH (an absent password with a username is sent as empty).
    public var password: String?
    /// The envelope sender and `From:` address (a bare `local@domain`).
    public var from: String
    /// The display name in `From:`, if any.
    public var fromName: String?
    /// A PEM file of extra trust roots for TLS (trusted in addition to the system's), e.g. a test CA.
    public var caFile: String?
    /// Whether TLS starts right at connect (SMTPS, port 465) instead of by STARTTLS.
    public var implicitTLS: Bool
    /// The bound on one whole send: connect, TLS, dialogue and QUIT.
    public var timeout: Duration

    /// A configuration; `implicitTLS` defaults to `port == 465`.
    public init(host: String, port: Int = 587, username: String? = nil, password: String? = nil,
                from: String, fromName: String? = nil, caFile: String? = nil,
                implicitTLS: Bool? = nil, timeout: Duration = .seconds(30)) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.from = from
        self.fromName = fromName
        self.caFile = caFile
        self.implicitTLS = implicitTLS ?? (port == 465)
        self.timeout = timeout
    }

    /// The settings for logs, without the password.
    public var description: String {
        "SMTPConfiguration(\(host):\(port), username: \(username ?? "none"), password: \(password == nil ? "none" : "<redacted>"), "
            + "from: \(from), implicitTLS: \(implicitTLS), caFile: \(caFile ?? "none"), timeout: \(timeout))"
    }
}
