import Hummingbird
import Testing

@testable import Gateway

/// The byte-level helpers on the records hot path: query decoding, token trimming, placeholder rewriting.
struct RequestDecodingTests {
    @Test func formDecodingTurnsPlusIntoSpaceThenDecodesEscapes() {
        #expect(Request.formDecode("id") == "id")
        #expect(Request.formDecode("a+b") == "a b")
        #expect(Request.formDecode("eq.caf%C3%A9") == "eq.café")
        #expect(Request.formDecode("in.(1%2C2)") == "in.(1,2)")
        #expect(Request.formDecode("%2B1") == "+1")
        #expect(Request.formDecode("like.*%25*") == "like.*%*")
        #expect(Request.formDecode("名前") == "名前")
    }

    @Test func malformedEscapesAreKeptLiterally() {
        #expect(Request.formDecode("100%") == "100%")
        #expect(Request.formDecode("%zz+x") == "%zz x")
        #expect(Request.formDecode("%C3") == "%C3")  // not UTF-8 once decoded
        #expect(Request.formDecode("%FF%FE") == "%FF%FE")
    }

    @Test func bearerTokensLoseOnlySurroundingBlanks() {
        #expect(Substring("  abc.def \t").trimmingASCIIWhitespace() == "abc.def")
        #expect(Substring("a b").trimmingASCIIWhitespace() == "a b")
        #expect(Substring("   ").trimmingASCIIWhitespace() == "")
        #expect(Substring("").trimmingASCIIWhitespace() == "")
    }

    @Test func placeholdersBecomeArrayElementsOutsideQuotes() {
        #expect(RecordsController.arrayPlaceholders(#"SELECT "t"."$1" FROM t WHERE a = $1::int AND b = $12 AND c = '$3'"#)
            == #"SELECT "t"."$1" FROM t WHERE a = $1[1]::int AND b = $1[12] AND c = '$3'"#)
        #expect(RecordsController.arrayPlaceholders("SELECT 'é$1', \"ü\" = $2") == "SELECT 'é$1', \"ü\" = $1[2]")
        #expect(RecordsController.arrayPlaceholders("SELECT $ , $x, 1$") == "SELECT $ , $x, 1$")
    }
}
