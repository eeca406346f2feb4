/// The password rules of the auth configuration.
public struct PasswordPolicy: Sendable, Equatable {
    public var minLength: Int
    public var requireNumber: Bool
    public var requireLowercase: Bool
    public var requireUppercase: Bool
    public var requireSpecialChar: Bool

    /// bcrypt reads at most 72 bytes; longer passwords would be silently truncated, so they are refused.
    public static let maxBytes = 72

    /// Why `password` is refused, or nil.
    public func problem(with password: String) -> String? {
        if password.count < minLength { return "Password must be at least \(minLength) characters" }
        if password.utf8.count > Self.maxBytes { return "Password must be at most \(Self.maxBytes) bytes" }
        if requireNumber, !password.contains(where: \.isNumber) { return "Password must contain a number" }
        if requireLowercase, !password.contains(where: \.isLowercase) { return "Password must contain a lowercase letter" }
        if requireUppercase, !password.contains(where: \.isUppercase) { return "Password must contain an uppercase letter" }
        if requireSpecialChar, !password.contains(where: { !$0.isLetter && !$0.isNumber && !$0.isWhitespace }) {
            return "Password must contain a special character"
        }
        return nil
    }
}
