import EventStore
import Foundation

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
