import EventStore
import Foundation

/// The auth configuration an admin edits with `PUT /api/auth/config` (InsForge's field names).
public struct AuthSettings: Codable, Sendable, Equatable {
    public var requireEmailVerification = false
    public var passwordMinLength = 6
    public var requireNumber = false
    public var requireLowercase = false
    public var requireUppercase = false
    public var requireSpecialChar = false
    /// `code` (6 digits) or `link`.
    public var verifyEmailMethod = "code"
    /// `code` (6 digits) or `link`.
    public var resetPasswordMethod = "code"
    /// Where the app sends users after sign-in (optional).
    public var signInRedirectTo: String?
    public var disableSignup = false
    /// Redirect targets allowed for OAuth and e-mail links; `*` matches within a host label or path
    /// segment, `**` anything. Empty: any http(s) URL.
    public var allowedRedirectUrls: [String] = []

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = AuthSettings()
        requireEmailVerification = try c.decodeIfPresent(Bool.self, forKey: .requireEmailVerification) ?? d.requireEmailVerification
        passwordMinLength = try c.decodeIfPresent(Int.self, forKey: .passwordMinLength) ?? d.passwordMinLength
        requireNumber = try c.decodeIfPresent(Bool.self, forKey: .requireNumber) ?? d.requireNumber
        requireLowercase = try c.decodeIfPresent(Bool.self, forKey: .requireLowercase) ?? d.requireLowercase
        requireUppercase = try c.decodeIfPresent(Bool.self, forKey: .requireUppercase) ?? d.requireUppercase
        requireSpecialChar = try c.decodeIfPresent(Bool.self, forKey: .requireSpecialChar) ?? d.requireSpecialChar
        verifyEmailMethod = try c.decodeIfPresent(String.self, forKey: .verifyEmailMethod) ?? d.verifyEmailMethod
        resetPasswordMethod = try c.decodeIfPresent(String.self, forKey: .resetPasswordMethod) ?? d.resetPasswordMethod
        signInRedirectTo = try c.decodeIfPresent(String.self, forKey: .signInRedirectTo)
        disableSignup = try c.decodeIfPresent(Bool.self, forKey: .disableSignup) ?? d.disableSignup
        allowedRedirectUrls = try c.decodeIfPresent([String].self, forKey: .allowedRedirectUrls) ?? d.allowedRedirectUrls
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(requireEmailVerification, forKey: .requireEmailVerification)
        try c.encode(passwordMinLength, forKey: .passwordMinLength)
        try c.encode(requireNumber, forKey: .requireNumber)
        try c.encode(requireLowercase, forKey: .requireLowercase)
        try c.encode(requireUppercase, forKey: .requireUppercase)
        try c.encode(requireSpecialChar, forKey: .requireSpecialChar)
        try c.encode(verifyEmailMethod, forKey: .verifyEmailMethod)
        try c.encode(resetPasswordMethod, forKey: .resetPasswordMethod)
        try c.encode(signInRedirectTo, forKey: .signInRedirectTo)
        try c.encode(disableSignup, forKey: .disableSignup)
        try c.encode(allowedRedirectUrls, forKey: .allowedRedirectUrls)
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case requireEmailVerification, passwordMinLength, requireNumber, requireLowercase, requireUppercase,
             requireSpecialChar, verifyEmailMethod, resetPasswordMethod, signInRedirectTo, disableSignup, allowedRedirectUrls
    }

    /// The password rules.
    public var passwordPolicy: PasswordPolicy {
        PasswordPolicy(minLength: passwordMinLength, requireNumber: requireNumber, requireLowercase: requireLowercase,
                       requireUppercase: requireUppercase, requireSpecialChar: requireSpecialChar)
    }

    /// Why these settings cannot be saved, or nil.
    public var problem: String? {
        if !(4...128).contains(passwordMinLength) { return "passwordMinLength must be from 4 to 128" }
        if !["code", "link"].contains(verifyEmailMethod) { return "verifyEmailMethod must be code or link" }
        if !["code", "link"].contains(resetPasswordMethod) { return "resetPasswordMethod must be code or link" }
        if allowedRedirectUrls.count > 100 { return "allowedRedirectUrls may list at most 100 patterns" }
        for pattern in allowedRedirectUrls {
            if let problem = RedirectAllowList.problem(with: pattern) { return "allowedRedirectUrls: \(problem)" }
        }
        return nil
    }
}

/// Which redirect URLs are allowed: exact URLs or glob patterns from the auth settings.
public struct RedirectAllowList: Sendable {
    let patterns: [String]
    /// The server's own origin (`scheme://host[:port]`), always allowed.
    let ownOrigin: String?

    public init(patterns: [String], ownOrigin: String? = nil) {
        self.patterns = patterns
        self.ownOrigin = ownOrigin.flatMap(Self.origin(of:))
    }

    /// Why `pattern` is not a usable pattern, or nil.
    public static func problem(with pattern: String) -> String? {
        guard pattern.hasPrefix("http://") || pattern.hasPrefix("https://") || pattern.contains("://") else {
            return "\(pattern) must be an absolute URL pattern (scheme://host/...)"
        }
        guard pattern.utf8.count <= 2048 else { return "a pattern is longer than 2048 characters" }
        return nil
    }

    /// Schemes that run or read something in the browser: never a redirect target.
    static let refusedSchemes: Set<String> = ["javascript", "data", "vbscript", "file", "blob", "about", "filesystem"]
    /// Hosts that are this machine: allowed while no pattern is configured (development).
    static let loopbackHosts: Set<String> = ["localhost", "127.0.0.1", "[::1]", "::1"]

    /// Whether `url` may be redirected to. Always: a relative path on this server (`/...`, not `//...`)
    /// and the server's own origin. With patterns: what matches one. Without: also `localhost` origins
    /// and native-app custom schemes (`myapp://callback`, protected by PKCE), but no other http(s) origin,
    /// so that an unconfigured project is not an open redirect.
    public func allows(_ url: String) -> Bool {
        guard url.utf8.count <= 2048, !url.contains(where: { $0.isNewline || $0 == "\\" }) else { return false }
        if url.hasPrefix("/") { return !url.hasPrefix("//") }
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
              components.user == nil, components.password == nil, !Self.refusedSchemes.contains(scheme)
        else { return false }
        let web = scheme == "http" || scheme == "https"
        if web {
            guard components.host?.isEmpty == false else { return false }
            if let ownOrigin, Self.origin(of: url) == ownOrigin { return true }
        }
        if patterns.isEmpty {
            if !web { return true }
            return Self.loopbackHosts.contains(components.host?.lowercased() ?? "")
        }
        let target = Self.withoutQuery(url)
        return patterns.contains { Self.glob($0, matches: target) || Self.glob($0, matches: url) }
    }

    /// Why `url` is refused, for a 400 naming `what` (`redirect_uri`, `redirectTo`) and the setting.
    public func refusal(_ what: String, _ url: String) -> DomainError {
        DomainError(.invalidInput, "\(what) is not an allowed redirect URL",
                 nextActions: patterns.isEmpty
                    ? "Until allowedRedirectUrls is set only relative paths, this server, localhost and app schemes are allowed: add the app's URL to allowedRedirectUrls with PUT /api/auth/config"
                    : "Add a pattern matching it to allowedRedirectUrls with PUT /api/auth/config")
    }

    /// `scheme://host[:port]`, lowercased, default ports dropped; nil for what has no host.
    static func origin(of url: String) -> String? {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
              let host = components.host?.lowercased(), !host.isEmpty else { return nil }
        let port = components.port.flatMap { ($0 == 80 && scheme == "http") || ($0 == 443 && scheme == "https") ? nil : $0 }
        return "\(scheme)://\(host)" + (port.map { ":\($0)" } ?? "")
    }

    static func withoutQuery(_ url: String) -> String {
        String(url.prefix { $0 != "?" && $0 != "#" })
    }

    /// `*` matches any run of characters except `/` and `.`; `**` matches anything.
    static func glob(_ pattern: String, matches text: String) -> Bool {
        let p = Array(pattern.unicodeScalars), t = Array(text.unicodeScalars)
        var memo: [Int: Bool] = [:]
        func match(_ i: Int, _ j: Int) -> Bool {
            let key = i * (t.count + 1) + j
            if let known = memo[key] { return known }
            let result: Bool
            if i == p.count {
                result = j == t.count
            } else if p[i] == "*" {
                let double = i + 1 < p.count && p[i + 1] == "*"
                let next = double ? i + 2 : i + 1
                var k = j
                var found = match(next, k)
                while !found, k < t.count, double || (t[k] != "/" && t[k] != ".") {
                    k += 1
                    found = match(next, k)
                }
                result = found
            } else {
                result = j < t.count && String(p[i]).lowercased() == String(t[j]).lowercased() && match(i + 1, j + 1)
            }
            memo[key] = result
            return result
        }
        return match(0, 0)
    }
}
