/// A channel pattern of `/api/realtime/channels`: literal text where `%` stands for any run of
/// characters (`chat:%` matches `chat:lobby` and `chat:` itself). Only `%` is special; `_` and
/// every other character are literal, unlike SQL's LIKE, so `room_1` does not match `roomX1`.
struct ChannelPattern: Sendable, Hashable {
    let text: String
    private let pieces: [Substring]

    init(_ text: String) {
        self.text = text
        pieces = text.split(separator: "%", omittingEmptySubsequences: false)
    }

    var isExact: Bool { pieces.count == 1 }

    /// How many literal characters the pattern pins down (more is more specific).
    var literalCount: Int { pieces.reduce(0) { $0 + $1.count } }

    func matches(_ channel: String) -> Bool {
        guard pieces.count > 1 else { return channel == text }
        var rest = Substring(channel)
        guard rest.hasPrefix(pieces[0]) else { return false }
        rest = rest.dropFirst(pieces[0].count)
        let last = pieces[pieces.count - 1]
        for piece in pieces.dropFirst().dropLast() where !piece.isEmpty {
            guard let found = rest.range(of: piece) else { return false }
            rest = rest[found.upperBound...]
        }
        return rest.count >= last.count && rest.hasSuffix(last)
    }

    /// The pattern that governs `channel` among `patterns`: an exact match wins, then the
    /// wildcard pattern with the most literal characters, then the alphabetically first (so the
    /// choice never depends on the order they were created in).
    static func best(for channel: String, among patterns: [ChannelPattern]) -> ChannelPattern? {
        let matching = patterns.filter { $0.matches(channel) }
        if let exact = matching.first(where: \.isExact) { return exact }
        return matching.max { a, b in
            a.literalCount != b.literalCount ? a.literalCount < b.literalCount : a.text > b.text
        }
    }
}
