import Testing
@testable import Gateway

/// The error a throwing parse produces, or nil when it succeeds.
private func failure<T>(_ body: () throws(PostgRESTError) -> T) -> PostgRESTError? {
    do {
        _ = try body()
        return nil
    } catch {
        return error
    }
}

private typealias Query = RecordsQuery

private func field(_ name: String, _ path: [Query.JSONPathStep] = []) -> Query.Field {
    Query.Field(name: name, jsonPath: path)
}

private func key(_ name: String) -> Query.JSONPathStep { .init(.key(name)) }
private func textKey(_ name: String) -> Query.JSONPathStep { .init(.key(name), yieldsText: true) }

private func filter(_ value: String, on column: String = "c") throws(PostgRESTError) -> Query.Filter {
    try RecordsQueryParser.parseFilter(value, field: field(column))
}

@Suite("RecordsQueryParser: select")
struct RecordsSelectParserTests {
    @Test func starAndColumns() throws {
        #expect(try RecordsQueryParser.parseSelect("*") == [.allColumns])
        #expect(try RecordsQueryParser.parseSelect("id,name, age") == [
            .field(.init(field: field("id"))), .field(.init(field: field("name"))), .field(.init(field: field("age"))),
        ])
    }

    @Test func aliasesAndCasts() throws {
        #expect(try RecordsQueryParser.parseSelect("who:name") == [.field(.init(alias: "who", field: field("name")))])
        #expect(try RecordsQueryParser.parseSelect("age::text") == [.field(.init(field: field("age"), cast: "text"))])
        #expect(try RecordsQueryParser.parseSelect("n:age::bigint") == [.field(.init(alias: "n", field: field("age"), cast: "bigint"))])
        #expect(try RecordsQueryParser.parseSelect("x::double precision") == [.field(.init(field: field("x"), cast: "double precision"))])
        #expect(try RecordsQueryParser.parseSelect("t::timestamp with time zone") == [.field(.init(field: field("t"), cast: "timestamp with time zone"))])
    }

    @Test func jsonPaths() throws {
        #expect(try RecordsQueryParser.parseSelect("data->a->>b") == [.field(.init(field: field("data", [key("a"), textKey("b")])))])
        #expect(try RecordsQueryParser.parseSelect("k:data->0->>-1::int") == [
            .field(.init(alias: "k", field: field("data", [.init(.index(0)), .init(.index(-1), yieldsText: true)]), cast: "int")),
        ])
        #expect(field("data", [key("a"), textKey("b")]).outputName == "b")
        #expect(field("data", [.init(.index(2))]).outputName == "2")
        #expect(field("data").outputName == "data")
    }

    @Test func quotedNamesAndDashes() throws {
        #expect(try RecordsQueryParser.parseSelect("\"my col\",\"a,b\",\"q\\\"x\"") == [
            .field(.init(field: field("my col"))), .field(.init(field: field("a,b"))), .field(.init(field: field("q\"x"))),
        ])
        #expect(try RecordsQueryParser.parseSelect("first-name") == [.field(.init(field: field("first-name")))])
        #expect(try RecordsQueryParser.parseSelect("\"x\":id") == [.field(.init(alias: "x", field: field("id")))])
    }

    @Test func embeddings() throws {
        let parsed = try RecordsQueryParser.parseSelect("id,author:users!author_id(name,email),comments!inner(*,users(name)),tags!left(name)")
        #expect(parsed == [
            .field(.init(field: field("id"))),
            .embed(.init(alias: "author", relation: "users", hint: "author_id", items: [
                .field(.init(field: field("name"))), .field(.init(field: field("email"))),
            ])),
            .embed(.init(relation: "comments", join: .inner, items: [
                .allColumns, .embed(.init(relation: "users", items: [.field(.init(field: field("name")))])),
            ])),
            .embed(.init(relation: "tags", join: .left, items: [.field(.init(field: field("name")))])),
        ])
    }

    @Test func embeddingHintAndJoinInEitherOrder() throws {
        let expected: [Query.SelectItem] = [.embed(.init(relation: "users", hint: "fk", join: .inner, items: [.allColumns]))]
        #expect(try RecordsQueryParser.parseSelect("users!fk!inner(*)") == expected)
        #expect(try RecordsQueryParser.parseSelect("users!inner!fk(*)") == expected)
    }

    @Test func spread() throws {
        #expect(try RecordsQueryParser.parseSelect("id,...users(name)") == [
            .field(.init(field: field("id"))),
            .embed(.init(relation: "users", isSpread: true, items: [.field(.init(field: field("name")))])),
        ])
        #expect(Query.Embed(alias: "a", relation: "users", items: []).scopeName == "a")
        #expect(Query.Embed(relation: "users", items: []).scopeName == "users")
    }

    @Test(arguments: [
        "", ",", "id,", "id,,name", "users(", "users()", "users(id", "id::", "id:: ", "a:b:c", "*!x", "id!x",
        "users!a!b!c(*)", "\"unterminated", "\"\"", "data->", "data->>a->b", "data->-x", "id)",
        "id::text from users", "id::int;drop", "id::$1", "x::\"text\"", "id\u{1}",
    ])
    func rejectsMalformedSelect(_ text: String) {
        let error = failure { () throws(PostgRESTError) in try RecordsQueryParser.parseSelect(text) }
        #expect(error?.status == 400)
        #expect(error?.code == "PGRST100")
    }

    @Test func aggregatesAreRefused() {
        #expect(failure { () throws(PostgRESTError) in try RecordsQueryParser.parseSelect("count()") }?.code == "PGRST123")
        #expect(failure { () throws(PostgRESTError) in try RecordsQueryParser.parseSelect("amount.sum()") }?.code == "PGRST123")
    }

    @Test func errorMessageNamesTheParameterAndColumn() {
        let error = failure { () throws(PostgRESTError) in try RecordsQueryParser.parseSelect("id,,x") }
        #expect(error?.message == "\"failed to parse select parameter (id,,x)\" (line 1, column 4)")
    }
}

@Suite("RecordsQueryParser: filters")
struct RecordsFilterParserTests {
    @Test(arguments: RecordsQuery.Operator.allCases)
    func everyBinaryOperator(_ op: RecordsQuery.Operator) throws {
        #expect(try filter("\(op.rawValue).5") == .init(field: field("c"), operation: .binary(op, "5")))
        #expect(try filter("not.\(op.rawValue).5") == .init(field: field("c"), negated: true, operation: .binary(op, "5")))
    }

    @Test func valuesKeepEverythingAfterTheOperator() throws {
        #expect(try filter("eq.a.b,c)(\"d") == .init(field: field("c"), operation: .binary(.eq, "a.b,c)(\"d")))
        #expect(try filter("eq.") == .init(field: field("c"), operation: .binary(.eq, "")))
        #expect(try filter("like.*a*") == .init(field: field("c"), operation: .binary(.like, "*a*")))
        #expect(try filter("cs.{1,2}") == .init(field: field("c"), operation: .binary(.cs, "{1,2}")))
        #expect(try filter("ov.[1,5)") == .init(field: field("c"), operation: .binary(.ov, "[1,5)")))
    }

    @Test func inLists() throws {
        #expect(try filter("in.(1,2,3)").operation == .list(["1", "2", "3"]))
        #expect(try filter("in.(\"a,b\",c,\"d\\\"e\")").operation == .list(["a,b", "c", "d\"e"]))
        #expect(try filter("in.()").operation == .list([]))
        #expect(try filter("in.( )").operation == .list([]))
        #expect(try filter("in.(a,)").operation == .list(["a", ""]))
        #expect(try filter("in.(\"\")").operation == .list([""]))
        #expect(try filter("not.in.(x)") == .init(field: field("c"), negated: true, operation: .list(["x"])))
        // A quote that does not close the element is kept literally.
        #expect(try filter("in.(\"a\"b,c)").operation == .list(["\"a\"b", "c"]))
    }

    @Test func isValues() throws {
        #expect(try filter("is.null").operation == .is(.null))
        #expect(try filter("is.NULL").operation == .is(.null))
        #expect(try filter("is.not_null").operation == .is(.notNull))
        #expect(try filter("is.true").operation == .is(.isTrue))
        #expect(try filter("is.false").operation == .is(.isFalse))
        #expect(try filter("is.unknown").operation == .is(.unknown))
        #expect(try filter("not.is.null") == .init(field: field("c"), negated: true, operation: .is(.null)))
    }

    @Test(arguments: RecordsQuery.FullTextOperator.allCases)
    func fullText(_ op: RecordsQuery.FullTextOperator) throws {
        #expect(try filter("\(op.rawValue).cat & dog").operation == .fullText(op, configuration: nil, "cat & dog"))
        #expect(try filter("\(op.rawValue)(english).cat").operation == .fullText(op, configuration: "english", "cat"))
        #expect(try filter("not.\(op.rawValue)(simple).x").negated)
    }

    @Test func quantifiers() throws {
        #expect(try filter("eq(any).{1,2}").operation == .quantified(.eq, .any, "{1,2}"))
        #expect(try filter("like(all).{a*,*b}").operation == .quantified(.like, .all, "{a*,*b}"))
        #expect(failure { () throws(PostgRESTError) in try filter("cs(any).{1}") }?.code == "PGRST100")
        #expect(failure { () throws(PostgRESTError) in try filter("eq(some).{1}") }?.code == "PGRST100")
    }

    @Test(arguments: [
        "", "eq", "foo.1", "not.foo.1", "not.not.eq.1", "in.1,2", "in.(1,2", "in.(1,2)x", "is.maybe", "is.",
        "fts().x", "fts(english.x", "eq(any){1}", "not", "EQ.1",
    ])
    func rejectsMalformedFilters(_ value: String) {
        let error = failure { () throws(PostgRESTError) in try filter(value) }
        #expect(error?.code == "PGRST100", "\(value)")
        #expect(error?.status == 400)
    }

    @Test func unknownOperatorIsNamed() {
        let error = failure { () throws(PostgRESTError) in try filter("foo.1") }
        #expect(error?.details == "unknown single value operator foo")
        #expect(error?.message == "\"failed to parse filter (foo.1)\" (line 1, column 1)")
    }
}

@Suite("RecordsQueryParser: logic trees")
struct RecordsLogicParserTests {
    @Test func orWithNestedAnd() throws {
        let tree = try RecordsQueryParser.parseLogicTree("(a.eq.1,b.gt.2,and(c.eq.3,d.is.null))", operator: .or)
        #expect(tree == .logic(negated: false, .or, [
            .filter(.init(field: field("a"), operation: .binary(.eq, "1"))),
            .filter(.init(field: field("b"), operation: .binary(.gt, "2"))),
            .logic(negated: false, .and, [
                .filter(.init(field: field("c"), operation: .binary(.eq, "3"))),
                .filter(.init(field: field("d"), operation: .is(.null))),
            ]),
        ]))
    }

    @Test func negationsAtEveryLevel() throws {
        let tree = try RecordsQueryParser.parseLogicTree("(a.not.eq.1,not.or(b.eq.2,c.eq.3))", operator: .and, negated: true)
        #expect(tree == .logic(negated: true, .and, [
            .filter(.init(field: field("a"), negated: true, operation: .binary(.eq, "1"))),
            .logic(negated: true, .or, [
                .filter(.init(field: field("b"), operation: .binary(.eq, "2"))),
                .filter(.init(field: field("c"), operation: .binary(.eq, "3"))),
            ]),
        ]))
    }

    @Test func valuesInsideTrees() throws {
        let tree = try RecordsQueryParser.parseLogicTree(
            "(name.eq.\"a,b)\",id.in.(1,\"2,3\"),tags.cs.{x,y},data->>k.like.*z*,t.fts(english).cat,n.is.not_null, s.eq.x )",
            operator: .or)
        #expect(tree == .logic(negated: false, .or, [
            .filter(.init(field: field("name"), operation: .binary(.eq, "a,b)"))),
            .filter(.init(field: field("id"), operation: .list(["1", "2,3"]))),
            .filter(.init(field: field("tags"), operation: .binary(.cs, "{x,y}"))),
            .filter(.init(field: field("data", [textKey("k")]), operation: .binary(.like, "*z*"))),
            .filter(.init(field: field("t"), operation: .fullText(.fts, configuration: "english", "cat"))),
            .filter(.init(field: field("n"), operation: .is(.notNull))),
            .filter(.init(field: field("s"), operation: .binary(.eq, "x "))),
        ]))
    }

    @Test func deepNesting() throws {
        let tree = try RecordsQueryParser.parseLogicTree("(and(or(a.eq.1,and(b.eq.2,c.eq.3)),d.eq.4))", operator: .or)
        guard case .logic(_, .or, let top) = tree, case .logic(_, .and, let inner) = top[0],
              case .logic(_, .or, let deeper) = inner[0], case .logic(_, .and, let deepest) = deeper[1] else {
            Issue.record("unexpected tree \(tree)")
            return
        }
        #expect(deepest.count == 2)
    }

    @Test(arguments: [
        "", "()", "a.eq.1", "(a.eq.1", "(a.eq.1,)", "(,a.eq.1)", "(a)", "(a.eq)", "(xor(a.eq.1))", "(and(a.eq.1)",
        "(a.eq.1))", "(a.foo.1)", "(not.a.eq.1)", "(a.in.1,2)", "(a.eq.\"x)",
    ])
    func rejectsMalformedTrees(_ text: String) {
        let error = failure { () throws(PostgRESTError) in try RecordsQueryParser.parseLogicTree(text, operator: .or) }
        #expect(error?.code == "PGRST100", "\(text)")
    }
}

@Suite("RecordsQueryParser: order, ranges, keys")
struct RecordsOrderParserTests {
    @Test func orderTerms() throws {
        #expect(try RecordsQueryParser.parseOrder("a.desc.nullslast,b.asc,c.nullsfirst,d") == [
            .init(field: field("a"), direction: .desc, nulls: .last),
            .init(field: field("b"), direction: .asc),
            .init(field: field("c"), nulls: .first),
            .init(field: field("d")),
        ])
        #expect(try RecordsQueryParser.parseOrder("data->a->>b.desc") == [.init(field: field("data", [key("a"), textKey("b")]), direction: .desc)])
        #expect(try RecordsQueryParser.parseOrder("author(name).asc") == [.init(relation: "author", field: field("name"), direction: .asc)])
        #expect(try RecordsQueryParser.parseOrder(" a , b ") == [.init(field: field("a")), .init(field: field("b"))])
    }

    @Test(arguments: ["", "a.", "a.up", "a.desc.asc", "a.nullslast.desc", "a.nullsfirst.nullslast", "a.descc", "a,", "a(b", "a;drop table x", "a.desc x"])
    func rejectsMalformedOrder(_ text: String) {
        #expect(failure { () throws(PostgRESTError) in try RecordsQueryParser.parseOrder(text) }?.code == "PGRST100", "\(text)")
    }

    @Test func limitsAndOffsets() throws {
        let query = try RecordsQueryParser.parse([("limit", "20"), ("offset", "5"), ("comments.limit", "2"), ("comments.offset", "1")])
        #expect(query.limit == 20)
        #expect(query.offset == 5)
        #expect(query.embeddedRanges == [.init(path: ["comments"], limit: 2, offset: 1)])
        #expect(failure { () throws(PostgRESTError) in try RecordsQueryParser.parse([("limit", "abc")]) }?.code == "PGRST100")
        #expect(failure { () throws(PostgRESTError) in try RecordsQueryParser.parse([("offset", "-1")]) }?.code == "PGRST100")
        #expect(failure { () throws(PostgRESTError) in try RecordsQueryParser.parse([("limit", "")]) }?.code == "PGRST100")
        #expect(failure { () throws(PostgRESTError) in try RecordsQueryParser.parse([("limit", "99999999999999999999999")]) }?.code == "PGRST100")
        let negative = failure { () throws(PostgRESTError) in try RecordsQueryParser.parse([("limit", "-1")]) }
        #expect(negative?.status == 416)
        #expect(negative?.code == "PGRST103")
    }

    @Test func classifiesQueryItems() throws {
        let query = try RecordsQueryParser.parse([
            ("select", "id"), ("age", "gte.18"), ("name", "not.is.null"), ("comments.status", "eq.ok"),
            ("data->>a", "eq.x"), ("or", "(a.eq.1,b.eq.2)"), ("not.and", "(a.eq.1)"), ("comments.or", "(x.eq.1)"),
            ("order", "id.desc"), ("comments.order", "id"), ("on_conflict", "a,b"), ("columns", "a, b"), ("schema", "public"),
            ("apikey", "xyz"), ("_", "123"), ("weird[]", "1"),
        ])
        #expect(query.select == [.field(.init(field: field("id")))])
        #expect(query.conditions == [
            .init(.filter(.init(field: field("age"), operation: .binary(.gte, "18")))),
            .init(.filter(.init(field: field("name"), negated: true, operation: .is(.null)))),
            .init(path: ["comments"], .filter(.init(field: field("status"), operation: .binary(.eq, "ok")))),
            .init(.filter(.init(field: field("data", [textKey("a")]), operation: .binary(.eq, "x")))),
            .init(.logic(negated: false, .or, [
                .filter(.init(field: field("a"), operation: .binary(.eq, "1"))),
                .filter(.init(field: field("b"), operation: .binary(.eq, "2"))),
            ])),
            .init(.logic(negated: true, .and, [.filter(.init(field: field("a"), operation: .binary(.eq, "1")))])),
            .init(path: ["comments"], .logic(negated: false, .or, [.filter(.init(field: field("x"), operation: .binary(.eq, "1")))])),
        ])
        #expect(query.order == [.init(field: field("id"), direction: .desc)])
        #expect(query.embeddedOrders == [.init(path: ["comments"], terms: [.init(field: field("id"))])])
        #expect(query.onConflict == ["a", "b"])
        #expect(query.columns == ["a", "b"])
        // Items without an operator are not filters (PostgREST ignores them on tables).
        #expect(query.arguments == [.init(name: "apikey", value: "xyz"), .init(name: "_", value: "123"), .init(name: "weird[]", value: "1")])
    }

    @Test func nestedEmbeddingPaths() throws {
        let query = try RecordsQueryParser.parse([("posts.comments.status", "eq.ok"), ("posts.comments.limit", "1"), ("posts.not.or", "(a.eq.1)")])
        #expect(query.conditions[0].path == ["posts", "comments"])
        #expect(query.embeddedRanges == [.init(path: ["posts", "comments"], limit: 1)])
        #expect(query.conditions[1] == .init(path: ["posts"], .logic(negated: true, .or, [.filter(.init(field: field("a"), operation: .binary(.eq, "1")))])))
    }

    @Test func functionArgumentsArePickedByName() throws {
        let query = try RecordsQueryParser.parse([("a", "eq.1"), ("b", "2"), ("id", "gt.3")], argumentNames: ["a", "b"])
        #expect(query.arguments == [.init(name: "a", value: "eq.1"), .init(name: "b", value: "2")])
        #expect(query.conditions == [.init(.filter(.init(field: field("id"), operation: .binary(.gt, "3"))))])
    }

    @Test func emptySelectMeansAllColumns() throws {
        #expect(try RecordsQueryParser.parse([("select", "")]).select == [.allColumns])
        #expect(try RecordsQueryParser.parse([]).select == [.allColumns])
    }

    @Test func malformedFilterWithOperatorIsAnError() {
        #expect(failure { () throws(PostgRESTError) in try RecordsQueryParser.parse([("a", "eq")]) }?.code == "PGRST100")
        #expect(failure { () throws(PostgRESTError) in try RecordsQueryParser.parse([("a b(", "eq.1")]) }?.code == "PGRST100")
        #expect(failure { () throws(PostgRESTError) in try RecordsQueryParser.parse([("or", "a.eq.1")]) }?.code == "PGRST100")
        #expect(failure { () throws(PostgRESTError) in try RecordsQueryParser.parse([("columns", "a,")]) }?.code == "PGRST100")
        #expect(failure { () throws(PostgRESTError) in try RecordsQueryParser.parse([("on_conflict", "")]) }?.code == "PGRST100")
    }

    @Test func operatorDetection() {
        // A bare operator word is a filter too (and then fails to parse), as in PostgREST.
        for value in ["eq.1", "not.eq.1", "in.(1)", "is.null", "fts(english).x", "plfts.x", "like(any).{a}", "isdistinct.1", "eq"] {
            #expect(RecordsQueryParser.hasOperator(value), "\(value)")
        }
        for value in ["1", "not", "notice.1", "equal.1", "", "in", "is(x)"] {
            #expect(!RecordsQueryParser.hasOperator(value), "\(value)")
        }
    }
}

@Suite("Records headers and bodies")
struct RecordsHeaderParserTests {
    @Test func preferences() throws {
        let preferences = try RecordsPreferences.parse("return=representation, count=exact,resolution=merge-duplicates, missing=default,handling=lenient,tx=rollback,unknown=1")
        #expect(preferences.returnPreference == .representation)
        #expect(preferences.count == "exact")
        #expect(preferences.resolution == "merge-duplicates")
        #expect(preferences.missingDefault)
        #expect(preferences.handling == "lenient")
        #expect(try RecordsPreferences.parse("return=headers-only").returnPreference == .headersOnly)
        #expect(try RecordsPreferences.parse("count=planned").count == "planned")
        #expect(try RecordsPreferences.parse("params=single-object").singleObjectParameter)
        #expect(try RecordsPreferences.parse(nil) == RecordsPreferences())
        let strict = failure { () throws(PostgRESTError) in try RecordsPreferences.parse("handling=strict, return=everything") }
        #expect(strict?.code == "PGRST122")
        #expect(strict?.details == "Invalid preferences: return=everything")
        #expect(try RecordsPreferences.parse("handling=strict, return=minimal").returnPreference == .minimal)
    }

    @Test func rangeHeader() throws {
        #expect(try RecordsRangeHeader.parse("0-9") == .init(lower: 0, upper: 9))
        #expect(try RecordsRangeHeader.parse("items=5-") == .init(lower: 5, upper: nil))
        #expect(try RecordsRangeHeader.parse(" 3-3 ") == .init(lower: 3, upper: 3))
        #expect(try RecordsRangeHeader.parse("bytes") == nil)
        #expect(try RecordsRangeHeader.parse("a-b") == nil)
        #expect(try RecordsRangeHeader.parse(nil) == nil)
        let error = failure { () throws(PostgRESTError) in try RecordsRangeHeader.parse("9-0") }
        #expect(error?.status == 416)
        #expect(error?.code == "PGRST103")
    }

    @Test func acceptHeader() throws {
        #expect(try RecordsAcceptedMedia.parse(nil) == .json)
        #expect(try RecordsAcceptedMedia.parse("application/json, text/plain, */*") == .json)
        #expect(try RecordsAcceptedMedia.parse("application/vnd.pgrst.object+json") == .singleObject)
        #expect(try RecordsAcceptedMedia.parse("application/vnd.pgrst.object+json;nulls=stripped") == .singleObject)
        #expect(try RecordsAcceptedMedia.parse("text/csv, application/json") == .json)
        let error = failure { () throws(PostgRESTError) in try RecordsAcceptedMedia.parse("text/csv") }
        #expect(error?.status == 406)
        #expect(error?.code == "PGRST107")
    }

    @Test func jsonBodies() throws {
        let object = try RecordsRequestBody.objects(in: Array(#" {"a":1,"b":{"a":2},"c":[1,"x"],"a":3} "#.utf8))
        #expect(!object.isArray)
        #expect(object.objects.count == 1)
        #expect(object.objects[0].keys == ["a", "b", "c"])
        let array = try RecordsRequestBody.objects(in: Array(#"[{"x":1},{"y":"\u00e9\"","x":null},{}]"#.utf8))
        #expect(array.isArray)
        #expect(array.objects.map(\.keys) == [["x"], ["y", "x"], []])
        let escaped = try RecordsRequestBody.objects(in: Array(#"{"k\u00e9y\ud83d\ude00":true}"#.utf8))
        #expect(escaped.objects[0].keys == ["kéy😀"])
        #expect(try RecordsRequestBody.objects(in: Array("[]".utf8)).objects.isEmpty)
    }

    @Test(arguments: [
        "", " ", "{", "{\"a\":}", "{\"a\":1,}", "[1,]", "{\"a\" 1}", "{'a':1}", "{\"a\":01}", "{\"a\":1.}", "{\"a\":tru}",
        "{\"a\":\"\u{1}\"}", "{\"a\":\"\\x\"}", "{\"a\":1} x", "nul", "{\"a\":-}", "{\"a\":1e}", "{\"a\":\"\\u12\"}",
    ])
    func rejectsInvalidJSON(_ text: String) {
        let error = failure { () throws(PostgRESTError) in try RecordsRequestBody.objects(in: Array(text.utf8)) }
        #expect(error?.code == "PGRST102", "\(text)")
        #expect(error?.message == "Empty or invalid json")
    }

    @Test func rejectsBodiesThatAreNotObjects() {
        #expect(failure { () throws(PostgRESTError) in try RecordsRequestBody.objects(in: Array("5".utf8)) }?.code == "PGRST102")
        #expect(failure { () throws(PostgRESTError) in try RecordsRequestBody.objects(in: Array("[1,2]".utf8)) }?.code == "PGRST102")
        #expect(failure { () throws(PostgRESTError) in try RecordsRequestBody.objects(in: [0xFF, 0xFE]) }?.code == "PGRST102")
        let deep = String(repeating: "[", count: 600) + String(repeating: "]", count: 600)
        #expect(failure { () throws(PostgRESTError) in try RecordsRequestBody.anyValue(in: Array(deep.utf8)) }?.code == "PGRST102")
        #expect((try? RecordsRequestBody.anyValue(in: Array(" [1, {\"a\": null}] ".utf8))) != nil)
    }

    @Test func jsonScalarText() {
        let body = Array(#"{"s":"a\"b","n":12.5,"t":true,"z":null,"o":{}}"#.utf8)
        guard let object = try? RecordsRequestBody.objects(in: body).objects.first else {
            Issue.record("body did not parse")
            return
        }
        let texts = object.valueRanges.map { RecordsStatement.jsonScalarText(body, $0) }
        #expect(texts == ["a\"b", "12.5", "true", nil, nil])
    }
}

/// Hostile input is refused with PGRST100 before it can recurse deeply or grow a huge statement
/// (security review: `select=a(a(a(...` 10,000 deep crashed the server with a stack overflow).
@Suite("RecordsQueryParser: limits")
struct RecordsParserLimitTests {
    static func nested(_ open: String, _ inner: String, _ depth: Int) -> String {
        String(repeating: open, count: depth) + inner + String(repeating: ")", count: depth)
    }

    @Test func embeddingDepthIsBounded() {
        let limit = RecordsQueryParser.Limits.maxDepth
        #expect(failure { () throws(PostgRESTError) in try RecordsQueryParser.parseSelect(Self.nested("a(", "id", limit)) } == nil)
        for depth in [limit + 1, 5_000, 10_000, 100_000] {
            let error = failure { () throws(PostgRESTError) in try RecordsQueryParser.parseSelect(Self.nested("a(", "id", depth)) }
            #expect(error?.code == "PGRST100" && error?.status == 400, "depth \(depth)")
            #expect(error?.details?.contains("nesting") == true)
        }
        // Spread embeddings count too.
        #expect(failure { () throws(PostgRESTError) in try RecordsQueryParser.parseSelect(Self.nested("...a(", "id", 10_000)) }?.code == "PGRST100")
    }

    @Test func logicDepthIsBounded() {
        let limit = RecordsQueryParser.Limits.maxDepth
        #expect(failure { () throws(PostgRESTError) in try RecordsQueryParser.parseLogicTree("(" + Self.nested("or(", "a.eq.1", limit - 1) + ")", operator: .or) } == nil)
        for depth in [limit, 10_000, 100_000] {
            let deep = "(" + Self.nested("or(", "a.eq.1", depth) + ")"
            #expect(failure { () throws(PostgRESTError) in try RecordsQueryParser.parseLogicTree(deep, operator: .or) }?.code == "PGRST100", "depth \(depth)")
            let negated = "(" + Self.nested("not.and(", "a.eq.1", depth) + ")"
            #expect(failure { () throws(PostgRESTError) in try RecordsQueryParser.parseLogicTree(negated, operator: .and) }?.code == "PGRST100")
        }
    }

    @Test func valuesAndItemCountsAreBounded() {
        let long = String(repeating: "a", count: RecordsQueryParser.Limits.maxValueBytes + 1)
        #expect(failure { () throws(PostgRESTError) in try RecordsQueryParser.parse([("select", long)]) }?.code == "PGRST100")
        #expect(failure { () throws(PostgRESTError) in try RecordsQueryParser.parse([("name", "eq." + long)]) }?.code == "PGRST100")
        #expect(failure { () throws(PostgRESTError) in try RecordsQueryParser.parse([(long, "eq.1")]) }?.code == "PGRST100")
        let many = (0...RecordsQueryParser.Limits.maxItems).map { (name: "c\($0)", value: "eq.1") }
        #expect(failure { () throws(PostgRESTError) in try RecordsQueryParser.parse(many) }?.code == "PGRST100")
        #expect(failure { () throws(PostgRESTError) in try RecordsQueryParser.parse(Array(many.dropLast())) } == nil)
    }
}
