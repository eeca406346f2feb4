import Foundation

/// The rules for bucket names and object keys (InsForge's): checked before anything touches a provider,
/// so no key can name a path outside its bucket.
enum StorageNames {
    /// Longest bucket name.
    static let maxBucketLength = 63
    /// Longest key, in UTF-8 bytes (S3's limit).
    static let maxKeyBytes = 1024
    /// Longest part of a key between `/`s, in UTF-8 bytes (a file or folder name on the local provider,
    /// which adds `@<version>` to the last part: 200 + 37 stays under the usual 255).
    static let maxSegmentBytes = 200

    /// Why `name` cannot be a bucket name (`^[a-zA-Z0-9_-]+$`, at most 63 characters), or nil.
    static func bucketProblem(_ name: String) -> String? {
        guard !name.isEmpty, name.utf8.count <= maxBucketLength else { return "bucket name must have 1 to \(maxBucketLength) characters" }
        guard name.utf8.allSatisfy({ isAlphanumeric($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }) else {
            return "bucket name may only contain letters, digits, '_' and '-'"
        }
        return nil
    }

    /// Why `key` cannot be an object key, or nil. Keys may contain `/` but never a leading `/`, an
    /// empty, `.` or `..` part, a NUL or other control character, a backslash, or more than 1024 bytes.
    static func keyProblem(_ key: String) -> String? {
        guard !key.isEmpty else { return "key must not be empty" }
        guard key.utf8.count <= maxKeyBytes else { return "key must have at most \(maxKeyBytes) bytes" }
        guard !key.hasPrefix("/") else { return "key must not start with '/'" }
        guard key.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F && $0 != "\\" }) else {
            return "key must not contain control characters or '\\'"
        }
        for segment in key.split(separator: "/", omittingEmptySubsequences: false) {
            if segment == ".." { return "key must not contain '..'" }
            if segment.isEmpty || segment == "." { return "key must not contain empty or '.' parts" }
            if segment.utf8.count > maxSegmentBytes { return "each part of a key must have at most \(maxSegmentBytes) bytes" }
        }
        return nil
    }

    /// The last part of a key: the file name offered on download.
    static func fileName(of key: String) -> String {
        key.split(separator: "/").last.map(String.init) ?? key
    }

    /// A key made from an uploaded file's name when none is given (InsForge's scheme, which its SDKs
    /// also use): `<name, 32 safe characters>-<epoch ms>-<6 random base-36 characters><.ext>`.
    static func generatedKey(fileName: String?) -> String {
        let last = (fileName ?? "").split(separator: "/").last.map(String.init) ?? ""
        var base = last
        var ext = ""
        if let dot = last.lastIndex(of: "."), dot != last.startIndex {
            base = String(last[..<dot])
            ext = "." + String(String.UnicodeScalarView(last[last.index(after: dot)...].unicodeScalars.filter(isSafeScalar)).prefix(16))
            if ext == "." { ext = "" }
        }
        let cleaned = String(String.UnicodeScalarView(base.unicodeScalars.map { isSafeScalar($0) ? $0 : "-" })).prefix(32)
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")
        let random = String((0..<6).map { _ in alphabet[Int.random(in: 0..<alphabet.count)] })
        return "\(cleaned.isEmpty ? "file" : String(cleaned))-\(Int64(Date().timeIntervalSince1970 * 1000))-\(random)\(ext)"
    }

    private static func isSafeScalar(_ s: Unicode.Scalar) -> Bool {
        s.isASCII && (isAlphanumeric(UInt8(s.value)) || s == "-" || s == "_")
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }
}
