import EventStore
import Foundation

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
