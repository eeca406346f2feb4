import Testing

@testable import Gateway

struct ChannelPatternTests {
    @Test func percentMatchesAnyRunOfCharacters() {
        let chat = ChannelPattern("chat:%")
        #expect(chat.matches("chat:lobby") && chat.matches("chat:") && chat.matches("chat:a:b%c"))
        #expect(!chat.matches("chat") && !chat.matches("xchat:lobby") && !chat.matches("Chat:lobby"))
        let middle = ChannelPattern("org:%:room:%")
        #expect(middle.matches("org:1:room:2") && middle.matches("org::room:"))
        #expect(!middle.matches("org:1:hall:2"))
        #expect(ChannelPattern("%").matches("") && ChannelPattern("%").matches("anything"))
        let suffix = ChannelPattern("%:events")
        #expect(suffix.matches("orders:events") && !suffix.matches("orders:events:x"))
        // the suffix may not overlap the prefix
        #expect(!ChannelPattern("ab%ba").matches("aba"))
        #expect(ChannelPattern("ab%ba").matches("abba"))
    }

    @Test func onlyPercentIsSpecial() {
        #expect(ChannelPattern("room_1").matches("room_1"))
        #expect(!ChannelPattern("room_1").matches("roomX1"))
        #expect(!ChannelPattern("a.*").matches("abc"))
        #expect(ChannelPattern("a.*").matches("a.*"))
    }

    @Test func exactMatchWinsThenTheMostSpecificPattern() {
        let patterns = ["%", "chat:%", "chat:vip:%", "chat:vip:lounge", "news"].map(ChannelPattern.init)
        #expect(ChannelPattern.best(for: "chat:vip:lounge", among: patterns)?.text == "chat:vip:lounge")
        #expect(ChannelPattern.best(for: "chat:vip:bar", among: patterns)?.text == "chat:vip:%")
        #expect(ChannelPattern.best(for: "chat:general", among: patterns)?.text == "chat:%")
        #expect(ChannelPattern.best(for: "other", among: patterns)?.text == "%")
        #expect(ChannelPattern.best(for: "other", among: Array(patterns.dropFirst())) == nil)
        // ties are broken by name, not by order
        let tied = [ChannelPattern("x%z"), ChannelPattern("%yz")]
        #expect(ChannelPattern.best(for: "xyz", among: tied)?.text == ChannelPattern.best(for: "xyz", among: tied.reversed())?.text)
    }
}
