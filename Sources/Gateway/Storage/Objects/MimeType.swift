import Foundation

/// What an object is: decided from its first bytes when they say (magic numbers), else from what the
/// client declared, else from the key's extension; and how it may be served.
enum MimeType {
    /// How many leading bytes `sniff` looks at.
    static let sniffLength = 512
    static let fallback = "application/octet-stream"

    /// The type of an object from its first bytes, the declared type and its name.
    static func resolve(head: some Collection<UInt8>, declared: String?, fileName: String) -> String {
        if let sniffed = sniff(Array(head.prefix(sniffLength))) { return sniffed }
        if let declared = normalized(declared), declared != fallback { return declared }
        if let byName = byExtension(fileName) { return byName }
        return fallback
    }

    /// A declared `Content-Type` without parameters, lowercased; nil when empty or not `type/subtype`.
    static func normalized(_ declared: String?) -> String? {
        guard let declared else { return nil }
        // ASCII only, so bytes will do: the part before `;`, without blanks, lowercased, `type/subtype`
        // made of token characters.
        var essence: [UInt8] = []
        var slashes = 0
        for byte in declared.utf8 {
            if byte == UInt8(ascii: ";") { break }
            if byte == 0x20 || byte == 0x09 { continue }
            guard byte > 0x20, byte < 0x7F, !"()<>@,:\\\"[]?={}".utf8.contains(byte), essence.count < 127 else { return nil }
            if byte == UInt8(ascii: "/") { slashes += 1 }
            essence.append(byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte + 32 : byte)
        }
        guard slashes == 1, essence.first != UInt8(ascii: "/"), essence.last != UInt8(ascii: "/") else { return nil }
        return String(decoding: essence, as: UTF8.self)
    }

    /// Types a browser would run as a page or script on our origin: served as attachments only.
    static func isActive(_ type: String) -> Bool {
        let active: Set<String> = [
            "text/html", "application/xhtml+xml", "image/svg+xml", "text/javascript", "application/javascript",
            "application/ecmascript", "text/ecmascript", "text/xml", "application/xml", "text/xsl", "application/x-shockwave-flash",
            "multipart/x-mixed-replace",
        ]
        return active.contains(type) || type.hasSuffix("+xml") && type != "application/atom+xml" && type != "application/rss+xml"
    }

    /// The type the bytes themselves announce, if any.
    static func sniff(_ b: [UInt8]) -> String? {
        // Compared in place: this runs on every upload.
        func starts(_ prefix: [UInt8], at offset: Int = 0) -> Bool {
            guard b.count >= offset + prefix.count else { return false }
            for (i, byte) in prefix.enumerated() where b[offset + i] != byte { return false }
            return true
        }
        func starts(_ prefix: String, at offset: Int = 0) -> Bool {
            var i = offset
            for byte in prefix.utf8 {
                guard i < b.count, b[i] == byte else { return false }
                i += 1
            }
            return true
        }

        if starts([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return "image/png" }
        if starts([0xFF, 0xD8, 0xFF]) { return "image/jpeg" }
        if starts("GIF87a") || starts("GIF89a") { return "image/gif" }
        if starts("RIFF") && starts("WEBP", at: 8) { return "image/webp" }
        if starts("RIFF") && starts("WAVE", at: 8) { return "audio/wav" }
        if starts("RIFF") && starts("AVI ", at: 8) { return "video/x-msvideo" }
        if starts("BM") && b.count >= 14 && b[6] == 0 && b[7] == 0 && b[8] == 0 && b[9] == 0 { return "image/bmp" }
        if starts([0x00, 0x00, 0x01, 0x00]) { return "image/x-icon" }
        if starts([0x49, 0x49, 0x2A, 0x00]) || starts([0x4D, 0x4D, 0x00, 0x2A]) { return "image/tiff" }
        if starts("ftyp", at: 4) {
            let brand = b.count >= 12 ? String(decoding: b[8..<12], as: UTF8.self) : ""
            switch brand {
            case "avif", "avis": return "image/avif"
            case "heic", "heix", "mif1", "msf1": return "image/heic"
            case "qt  ": return "video/quicktime"
            case "M4A ": return "audio/mp4"
            default: return "video/mp4"
            }
        }
        if starts([0x1A, 0x45, 0xDF, 0xA3]) { return "video/webm" }
        if starts("%PDF-") { return "application/pdf" }
        if starts("PK\u{03}\u{04}") || starts("PK\u{05}\u{06}") { return "application/zip" }
        if starts([0x1F, 0x8B]) { return "application/gzip" }
        if starts("7z") && starts([0xBC, 0xAF, 0x27, 0x1C], at: 2) { return "application/x-7z-compressed" }
        if starts("Rar!\u{1A}\u{07}") { return "application/vnd.rar" }
        if starts("ustar", at: 257) { return "application/x-tar" }
        if starts([0x42, 0x5A, 0x68]) { return "application/x-bzip2" }
        if starts([0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00]) { return "application/x-xz" }
        if starts("ID3") || (b.count >= 2 && b[0] == 0xFF && (b[1] & 0xE0) == 0xE0 && (b[1] & 0x06) != 0) { return "audio/mpeg" }
        if starts("OggS") { return "audio/ogg" }
        if starts("fLaC") { return "audio/flac" }
        if starts("wOFF") { return "font/woff" }
        if starts("wOF2") { return "font/woff2" }
        if starts([0x00, 0x01, 0x00, 0x00, 0x00]) { return "font/ttf" }
        if starts("OTTO") { return "font/otf" }
        if starts([0x00, 0x61, 0x73, 0x6D]) { return "application/wasm" }
        if starts([0x7F, 0x45, 0x4C, 0x46]) { return "application/x-elf" }
        if starts("SQLite format 3\u{0}") { return "application/vnd.sqlite3" }
        return sniffMarkup(b)
    }

    /// HTML, SVG and XML announce themselves in text: these are the types that must not be served inline.
    private static func sniffMarkup(_ b: [UInt8]) -> String? {
        // Only text that starts (after a byte-order mark and blanks) with `<` is worth decoding.
        var start = b.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
        while start < b.count, [0x20, 0x09, 0x0A, 0x0D, 0x0C].contains(b[start]) { start += 1 }
        guard start < b.count, b[start] == UInt8(ascii: "<") else { return nil }
        var text = String(decoding: b.prefix(sniffLength), as: UTF8.self)
        if text.hasPrefix("\u{FEFF}") { text.removeFirst() }
        let lead = text.drop(while: { $0.isWhitespace }).lowercased()
        guard lead.hasPrefix("<") else { return nil }
        if lead.hasPrefix("<svg") || (lead.hasPrefix("<?xml") && lead.contains("<svg")) || lead.contains("<!doctype svg") { return "image/svg+xml" }
        let htmlStarts = ["<!doctype html", "<html", "<head", "<body", "<script", "<iframe", "<h1", "<div", "<table", "<a ", "<title",
                          "<style", "<p>", "<p ", "<br", "<font", "<b>", "<!--"]
        if htmlStarts.contains(where: { lead.hasPrefix($0) }) { return "text/html" }
        if lead.hasPrefix("<?xml") { return "application/xml" }
        return nil
    }

    /// The type that a file name's extension usually means.
    static func byExtension(_ fileName: String) -> String? {
        guard let dot = fileName.lastIndex(of: "."), dot != fileName.startIndex else { return nil }
        let types: [String: String] = [
            "txt": "text/plain", "csv": "text/csv", "md": "text/markdown", "json": "application/json", "css": "text/css",
            "html": "text/html", "htm": "text/html", "js": "text/javascript", "mjs": "text/javascript", "svg": "image/svg+xml",
            "xml": "application/xml", "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
            "webp": "image/webp", "pdf": "application/pdf", "zip": "application/zip", "mp4": "video/mp4", "mp3": "audio/mpeg",
            "wav": "audio/wav", "ico": "image/x-icon", "yaml": "application/yaml", "yml": "application/yaml", "wasm": "application/wasm",
            "tsv": "text/tab-separated-values", "ics": "text/calendar",
        ]
        return types[fileName[fileName.index(after: dot)...].lowercased()]
    }
}
