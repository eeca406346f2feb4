// Writes a Swift file holding every `.sql` file of a schema folder, by path below it, with its text
// byte for byte (the migrator checksums it).
// Usage: EmbedSchemaTool <schema folder> <output file> <each file of the folder the build plan knows>...
// A file that breaks the layout (`migrations/NNN_<name>.sql` with distinct numbers,
// `functions/<area>/<name>.sql`) fails the build, not the first deployment.
import Foundation

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    exit(1)
}

/// `text` as a multi-line raw string literal holding it exactly: with more `#`s than any run of them
/// in the text, nothing in it can end the literal or start an escape.
func literal(_ text: String) -> String {
    var longest = 0, run = 0
    for character in text {
        run = character == "#" ? run + 1 : 0
        longest = max(longest, run)
    }
    let hashes = String(repeating: "#", count: longest + 1)
    return hashes + "\"\"\"\n" + text + "\n\"\"\"" + hashes
}

let arguments = CommandLine.arguments
guard arguments.count >= 3 else { fail("usage: EmbedSchemaTool <schema folder> <output file> <planned file>...") }
let root = URL(fileURLWithPath: arguments[1]).standardizedFileURL
guard let walk = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil) else {
    fail("\(root.path) is not a folder")
}

var files: [(path: String, text: String)] = []
var versions: [Int: String] = [:]
for case let url as URL in walk where url.pathExtension == "sql" {
    let path = String(url.standardizedFileURL.path.dropFirst(root.path.count + 1))
    // Paths go into the generated source as plain string literals.
    guard path.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "_-./".contains($0)) }) else {
        fail("schema/\(path): names are letters, digits, '_', '-' and '.'")
    }
    let parts = path.split(separator: "/")
    switch (parts.first, parts.count) {
    case ("migrations", 2):
        let name = String(parts[1])
        guard let version = Int(name.prefix { $0.isNumber }), name.dropFirst(name.prefix { $0.isNumber }.count).hasPrefix("_") else {
            fail("schema/\(path): a migration is named NNN_<name>.sql")
        }
        if let other = versions.updateValue(name, forKey: version) {
            fail("schema/\(path): version \(version) is taken by migrations/\(other)")
        }
    case ("functions", 3):
        break
    default:
        fail("schema/\(path): SQL goes in schema/migrations/NNN_<name>.sql or schema/functions/<area>/<name>.sql")
    }
    guard let data = FileManager.default.contents(atPath: url.path), let text = String(data: data, encoding: .utf8) else {
        fail("schema/\(path) is not readable UTF-8")
    }
    // A string literal turns CR LF into LF, and the checksum is of the text as stored.
    guard !text.unicodeScalars.contains("\r") else { fail("schema/\(path): use LF line endings") }
    files.append((path, text))
}
files.sort { Array($0.path.utf8).lexicographicallyPrecedes(Array($1.path.utf8)) }

// A file the plan does not know is embedded now, but a later edit of it would not run this tool again.
let planned = Set(arguments.dropFirst(3).map { URL(fileURLWithPath: $0).standardizedFileURL.path })
let unplanned = files.map(\.path).filter { !planned.contains(root.appending(path: $0).standardizedFileURL.path) }
if !unplanned.isEmpty {
    fail("""
        schema/\(unplanned.joined(separator: ", schema/")) is new to SwiftPM's build plan, which would not see \
        later edits of it; SwiftPM plans again when Package.swift changes: touch Package.swift and build again
        """)
}

var source = """
    // Generated at build time from schema/ by the EmbedSchema plugin (Plugins/EmbedSchema): do not edit.

    enum EmbeddedSchema {
        /// Every `.sql` file of `schema/`, by path below it, in path order, with its text as stored.
        static let files: [(path: String, text: String)] = [

    """
for file in files {
    source += "        (\"\(file.path)\", \(literal(file.text))),\n"
}
source += "    ]\n}\n"
do {
    // Written only when it changed, so an unchanged schema does not recompile the target.
    let output = URL(fileURLWithPath: arguments[2])
    if FileManager.default.contents(atPath: output.path) != Data(source.utf8) {
        try Data(source.utf8).write(to: output, options: .atomic)
    }
} catch {
    fail("cannot write \(arguments[2]): \(error)")
}
