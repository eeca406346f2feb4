import Foundation

/// The auth e-mails (default templates): verification, password reset and sign-in codes or links.
public struct AuthMailer: Sendable {
    let sender: any EmailSender
    let appName: String

    public init(sender: any EmailSender, appName: String = "InsForge") {
        self.sender = sender
        self.appName = appName
    }

    /// What a message is about.
    enum Kind {
        case verifyEmail, resetPassword, signIn

        var subject: String {
            switch self {
            case .verifyEmail: "Verify your e-mail address"
            case .resetPassword: "Reset your password"
            case .signIn: "Your sign-in code"
            }
        }

        var intro: String {
            switch self {
            case .verifyEmail: "Confirm that this is your e-mail address"
            case .resetPassword: "Someone (hopefully you) asked to reset your password"
            case .signIn: "Use this code to sign in"
            }
        }
    }

    /// Sends a code and/or link of `kind` to `to`, valid for `minutes`.
    func send(_ kind: Kind, to: String, code: String?, link: String?, minutes: Int) async throws {
        var text = "\(kind.intro).\n\n"
        var html = "<p>\(Self.escape(kind.intro)).</p>"
        if let code {
            text += "Your code: \(code)\n\n"
            html += "<p>Your code: <strong style=\"font-size:20px;letter-spacing:3px\">\(code)</strong></p>"
        }
        if let link {
            text += "Open this link:\n\(link)\n\n"
            html += "<p><a href=\"\(Self.escape(link))\">Continue</a></p><p style=\"color:#666\">\(Self.escape(link))</p>"
        }
        text += "It expires in \(minutes) minutes. If you did not ask for this, ignore this message.\n\n\(appName)\n"
        html += "<p style=\"color:#666\">It expires in \(minutes) minutes. If you did not ask for this, ignore this message.</p>"
        try await sender.send(EmailMessage(to: to, subject: "\(appName): \(kind.subject)", text: text, html: html))
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
