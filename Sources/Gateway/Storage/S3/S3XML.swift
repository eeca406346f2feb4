/// Minimal, dependency-free reading and writing of the small XML documents S3 exchanges
/// (ListObjectsV2, ListMultipartUploads, InitiateMultipartUpload, Error, ...).
///
/// This is not a general XML parser: it finds elements by name with a text scan. That
/// suits S3's responses, whose elements never nest inside an element of the same name,
/// and it avoids FoundationXML, which is not always available on Linux.
///
/// Typical use:
/// ```swift
/// for item in S3XML.blocks(of: "Contents", in: body) {
///     let key = S3XML.values(of: "Key", in: item).first
/// }
/// ```
enum S3XML {
    /// The decoded text of every `<tag>...</tag>` element, in document order.
    ///
    /// Opening tags may carry attributes (`<ListBucketResult xmlns="...">`); a
    /// self-closing `<tag/>` yields `""`. Entities (`&amp;` `&lt;` `&gt;` `&quot;`
    /// `&apos;`, `&#NN;`, `&#xHH;`) are decoded and CDATA sections unwrapped. For an
    /// element with child elements the result is its inner XML, decoded.
    static func values(of tag: String, in xml: String) -> [String] {
        elements(named: tag, in: xml).map { decodeText($0) }
    }

    /// The raw inner XML of every `<tag>...</tag>` element, in document order: for example
    /// each `<Contents>` of ListObjectsV2 or `<Upload>` of ListMultipartUploads, to pass to
    /// ``values(of:in:)``.
    static func blocks(of tag: String, in xml: String) -> [String] {
        elements(named: tag, in: xml).map { String($0) }
    }

    /// Escapes text for an XML element or attribute value (e.g. part ETags in a
    /// CompleteMultipartUpload body). A carriage return becomes `&#13;` so that XML
    /// line-end normalisation cannot change it.
    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for character in s.unicodeScalars {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\r": out += "&#13;"
            default: out.unicodeScalars.append(character)
            }
        }
        return out
    }

    // MARK: - Scanning

    /// The inner content of each element named `tag`.
    private static func elements(named tag: String, in xml: String) -> [Substring] {
        guard !tag.isEmpty else { return [] }
        let open = "<" + tag
        let close = "</" + tag + ">"
        var results: [Substring] = []
        var rest = xml[...]

        while let start = rest.firstRange(of: open) {
            rest = rest[start.upperBound...]
            // The name must end here, or `<Key` would also match `<KeyCount>`.
            guard let next = rest.first, next == ">" || next == "/" || next.isWhitespace else { continue }
            guard let tagEnd = rest.firstIndex(of: ">") else { break }
            let selfClosing = rest[..<tagEnd].last == "/"
            rest = rest[rest.index(after: tagEnd)...]
            if selfClosing {
                results.append("")
                continue
            }
            guard let end = rest.firstRange(of: close) else { break }
            results.append(rest[..<end.lowerBound])
            rest = rest[end.upperBound...]
        }
        return results
    }

    /// Unwraps CDATA sections and decodes entities everywhere else.
    private static func decodeText(_ text: Substring) -> String {
        var out = ""
        var rest = text
        while let cdata = rest.firstRange(of: "<![CDATA[") {
            out += decodeEntities(rest[..<cdata.lowerBound])
            rest = rest[cdata.upperBound...]
            guard let end = rest.firstRange(of: "]]>") else { break }
            out += rest[..<end.lowerBound]
            rest = rest[end.upperBound...]
        }
        return out + decodeEntities(rest)
    }

    /// Decodes the predefined entities and numeric character references; anything else
    /// that starts with `&` is kept as it is.
    private static func decodeEntities(_ text: Substring) -> String {
        guard text.contains("&") else { return String(text) }
        var out = ""
        var rest = text
        while let amp = rest.firstIndex(of: "&") {
            out += rest[..<amp]
            rest = rest[amp...]
            // Entities are short; look for the `;` within a few characters only.
            if let semi = rest.prefix(12).firstIndex(of: ";"),
               let decoded = entity(rest[rest.index(after: amp)..<semi]) {
                out += decoded
                rest = rest[rest.index(after: semi)...]
            } else {
                out += "&"
                rest = rest.dropFirst()
            }
        }
        return out + rest
    }

    /// The text of one entity body (between `&` and `;`), or nil if unknown.
    private static func entity(_ name: Substring) -> String? {
        switch name {
        case "amp": return "&"
        case "lt": return "<"
        case "gt": return ">"
        case "quot": return "\""
        case "apos": return "'"
        default:
            guard name.first == "#" else { return nil }
            let digits = name.dropFirst()
            let code: UInt32?
            if digits.first == "x" || digits.first == "X" {
                code = UInt32(digits.dropFirst(), radix: 16)
            } else {
                code = UInt32(digits, radix: 10)
            }
            guard let code, let scalar = Unicode.Scalar(code) else { return nil }
            return String(Character(scalar))
        }
    }
}
