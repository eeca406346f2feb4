import Testing
@testable import Gateway

/// A catalog shaped like a small blog: users, posts (two foreign keys to users), comments,
/// tags through a junction table, a one-to-one profile, a self-reference, a view and functions.
private let recordsTestCatalog: SchemaCatalog = {
    typealias Column = SchemaCatalog.Column
    typealias Key = SchemaCatalog.ForeignKey
    func key(_ name: String, _ columns: [String], _ table: String, _ referenced: [String] = ["id"]) -> Key {
        Key(name: name, columns: columns, referencedSchema: "public", referencedTable: table, referencedColumns: referenced)
    }
    let tables: [SchemaCatalog.Table] = [
        .init(schema: "public", name: "users", columns: [
            Column(name: "id", type: "integer", nullable: false, hasDefault: true), Column(name: "name", type: "text"),
            Column(name: "email", type: "citext"), Column(name: "age", type: "integer"), Column(name: "data", type: "jsonb"),
            Column(name: "settings", type: "json"), Column(name: "tags", type: "text[]"),
            Column(name: "created_at", type: "timestamp with time zone", hasDefault: true), Column(name: "search", type: "tsvector"),
            Column(name: "nick", type: "character varying(20)"), Column(name: "Weird \"Col\"", type: "text"),
        ], primaryKey: ["id"]),
        .init(schema: "public", name: "posts", columns: [
            Column(name: "id", type: "integer"), Column(name: "author_id", type: "integer"), Column(name: "editor_id", type: "integer"),
            Column(name: "title", type: "text"), Column(name: "period", type: "int4range"), Column(name: "published", type: "boolean"),
        ], primaryKey: ["id"], foreignKeys: [
            key("posts_author_id_fkey", ["author_id"], "users"), key("posts_editor_id_fkey", ["editor_id"], "users"),
        ]),
        .init(schema: "public", name: "comments", columns: [
            Column(name: "id", type: "integer"), Column(name: "post_id", type: "integer"), Column(name: "user_id", type: "integer"),
            Column(name: "body", type: "text"), Column(name: "status", type: "text"),
        ], primaryKey: ["id"], foreignKeys: [key("comments_post_id_fkey", ["post_id"], "posts"), key("comments_user_id_fkey", ["user_id"], "users")]),
        .init(schema: "public", name: "tags", columns: [Column(name: "id", type: "integer"), Column(name: "name", type: "text")], primaryKey: ["id"]),
        .init(schema: "public", name: "posts_tags", columns: [Column(name: "post_id", type: "integer"), Column(name: "tag_id", type: "integer")],
              primaryKey: ["post_id", "tag_id"], foreignKeys: [key("posts_tags_post_id_fkey", ["post_id"], "posts"), key("posts_tags_tag_id_fkey", ["tag_id"], "tags")]),
        .init(schema: "public", name: "profiles", columns: [Column(name: "user_id", type: "integer"), Column(name: "bio", type: "text")],
              primaryKey: ["user_id"], foreignKeys: [key("profiles_user_id_fkey", ["user_id"], "users")]),
        .init(schema: "public", name: "employees", columns: [Column(name: "id", type: "integer"), Column(name: "name", type: "text"), Column(name: "manager_id", type: "integer")],
              primaryKey: ["id"], foreignKeys: [key("employees_manager_id_fkey", ["manager_id"], "employees")]),
        .init(schema: "public", name: "adults", columns: [Column(name: "id", type: "integer"), Column(name: "name", type: "text")], isView: true),
        .init(schema: "api", name: "things", columns: [Column(name: "id", type: "integer")], primaryKey: ["id"]),
    ]
    let functions: [SchemaCatalog.Function] = [
        .init(schema: "public", name: "add_them", arguments: [("a", "integer", false), ("b", "integer", false)], returnType: "integer", returnsSet: false, returnsTable: false, isVolatile: false),
        .init(schema: "public", name: "greet", arguments: [("name", "text", false), ("greeting", "text", true)], returnType: "text", returnsSet: false, returnsTable: false, isVolatile: false),
        .init(schema: "public", name: "search_users", arguments: [("q", "text", false)], returnType: "SETOF users", returnsSet: true, returnsTable: true, isVolatile: false),
        .init(schema: "public", name: "user_stats", arguments: [], returnType: "TABLE(total bigint, \"avg age\" numeric)", returnsSet: true, returnsTable: true, isVolatile: false),
        .init(schema: "public", name: "first_user", arguments: [], returnType: "users", returnsSet: false, returnsTable: true, isVolatile: false),
        .init(schema: "public", name: "numbers", arguments: [("n", "integer", false)], returnType: "SETOF integer", returnsSet: true, returnsTable: false, isVolatile: false),
        .init(schema: "public", name: "do_nothing", arguments: [], returnType: "void", returnsSet: false, returnsTable: false, isVolatile: true),
        .init(schema: "public", name: "echo_json", arguments: [("", "jsonb", false)], returnType: "jsonb", returnsSet: false, returnsTable: false, isVolatile: false),
        .init(schema: "public", name: "bump", arguments: [("amount", "integer", true)], returnType: "integer", returnsSet: false, returnsTable: false, isVolatile: true),
        .init(schema: "public", name: "sum_array", arguments: [("arr", "integer[]", false)], returnType: "integer", returnsSet: false, returnsTable: false, isVolatile: false),
    ]
    return SchemaCatalog(tables: tables, functions: functions, exposedSchemas: ["public", "api"])
}()

/// A GET request with the query string given as `a=b&c=d` (values already decoded).
private func request(_ target: RecordsRequest.Target, _ query: String = "",
                     prefer: String? = nil, accept: String? = nil, range: String? = nil, body: String? = nil,
                     schema: String? = nil) -> RecordsRequest {
    request(.get, target, query, prefer: prefer, accept: accept, range: range, body: body, schema: schema)
}

/// A request with the query string given as `a=b&c=d` (values already decoded).
private func request(_ method: RecordsRequest.Method, _ target: RecordsRequest.Target, _ query: String = "",
                     prefer: String? = nil, accept: String? = nil, range: String? = nil, body: String? = nil,
                     schema: String? = nil) -> RecordsRequest {
    let items: [(name: String, value: String)] = query.isEmpty ? [] : query.split(separator: "&").map { part in
        let pieces = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        return (String(pieces[0]), pieces.count > 1 ? String(pieces[1]) : "")
    }
    return RecordsRequest(method: method, target: target, schema: schema, query: items, prefer: prefer, accept: accept,
                          range: range, body: body.map { Array($0.utf8) })
}

private func build(_ request: RecordsRequest) throws(PostgRESTError) -> GeneratedSQL {
    try RecordsSQLBuilder.build(request, catalog: recordsTestCatalog)
}

private func buildError(_ request: RecordsRequest) -> PostgRESTError? {
    do {
        _ = try build(request)
        return nil
    } catch {
        return error
    }
}

/// The SQL with double-quoted identifiers and single-quoted literals removed: what remains is ours.
private func sqlOutsideQuotes(_ sql: String) -> String {
    var result = ""
    var quote: Character?
    var iterator = Array(sql)
    var index = 0
    while index < iterator.count {
        let character = iterator[index]
        if let open = quote {
            if character == open {
                if index + 1 < iterator.count, iterator[index + 1] == open {
                    index += 2
                    continue
                }
                quote = nil
            }
        } else if character == "\"" || character == "'" {
            quote = character
        } else {
            result.append(character)
        }
        index += 1
    }
    iterator.removeAll()
    return quote == nil ? result : "UNBALANCED QUOTES"
}

/// Every `$n` in the SQL is followed by an explicit cast, and the numbers cover exactly the binds.
private func checkPlaceholders(_ generated: GeneratedSQL, sourceLocation: SourceLocation = #_sourceLocation) {
    // `$1` inside a quoted identifier (an alias such as "$1") is just a name.
    let characters = Array(sqlOutsideQuotes(generated.sql))
    var seen = Set<Int>()
    var index = 0
    while index < characters.count {
        if characters[index] == "$" {
            var end = index + 1
            while end < characters.count, characters[end].isNumber { end += 1 }
            if let number = Int(String(characters[(index + 1)..<end])) {
                seen.insert(number)
                #expect(end + 1 < characters.count && characters[end] == ":" && characters[end + 1] == ":",
                        "$\(number) without a cast", sourceLocation: sourceLocation)
            }
            index = end
        } else {
            index += 1
        }
    }
    #expect(seen == Set(generated.binds.isEmpty ? [] : Array(1...generated.binds.count)), sourceLocation: sourceLocation)
}

@Suite("RecordsSQLBuilder: reads")
struct RecordsReadBuilderTests {
    @Test func typicalRequestIsExactlyThis() throws {
        let generated = try build(request(.table("users"), "select=id,name,age&age=gte.18&name=ilike.*a*&order=id.desc&limit=20"))
        #expect(generated.sql == """
            WITH pgrst_source AS (SELECT "t0"."id", "t0"."name", "t0"."age" FROM "public"."users" AS "t0" \
            WHERE ("t0"."age" >= $1::integer) AND ("t0"."name" ILIKE $2::text) ORDER BY "t0"."id" DESC LIMIT $3::bigint) \
            SELECT count(*) AS page_total, NULL::bigint AS total, coalesce(json_agg(_pgrst_t), '[]')::text AS body FROM pgrst_source AS _pgrst_t
            """)
        #expect(generated.binds == ["18", "%a%", "20"])
        #expect(generated.readOnly)
        #expect(!generated.singleObject)
        #expect(generated.countRequested == nil)
        #expect(generated.rangeOffset == 0)
        #expect(!generated.returnMinimal)
        checkPlaceholders(generated)
    }

    @Test func starAndDefaultSelect() throws {
        #expect(try build(request(.table("tags"))).sql.hasPrefix("WITH pgrst_source AS (SELECT \"t0\".* FROM \"public\".\"tags\" AS \"t0\")"))
        #expect(try build(request(.table("tags"), "select=*")).sql.hasPrefix("WITH pgrst_source AS (SELECT \"t0\".* FROM"))
    }

    @Test func aliasesCastsAndJSONPaths() throws {
        let generated = try build(request(.table("users"), "select=who:name,age::text,b:data->a->>b,data->n,settings->>k"))
        #expect(generated.sql.contains(#""t0"."name" AS "who", "t0"."age"::text AS "age", ("t0"."data"->$1::text->>$2::text) AS "b", ("t0"."data"->$3::text) AS "n", ("t0"."settings"->>$4::text) AS "k""#))
        #expect(generated.binds == ["a", "b", "n", "k"])
        let index = try build(request(.table("users"), "select=data->0"))
        #expect(index.sql.contains(#"("t0"."data"->$1::integer) AS "0""#))
        #expect(index.binds == ["0"])
    }

    @Test func identifiersAreQuotedAndEscaped() throws {
        let generated = try build(request(.table("users"), "select=\"Weird \\\"Col\\\"\"&\"Weird \\\"Col\\\"\"=eq.x"))
        #expect(generated.sql.contains(#""t0"."Weird ""Col""""#))
        #expect(generated.binds == ["x"])
    }

    @Test(arguments: [
        ("age=eq.5", #""t0"."age" = $1::integer"#, ["5"]),
        ("age=neq.5", #""t0"."age" <> $1::integer"#, ["5"]),
        ("age=gt.5", #""t0"."age" > $1::integer"#, ["5"]),
        ("age=gte.5", #""t0"."age" >= $1::integer"#, ["5"]),
        ("age=lt.5", #""t0"."age" < $1::integer"#, ["5"]),
        ("age=lte.5", #""t0"."age" <= $1::integer"#, ["5"]),
        ("age=isdistinct.5", #""t0"."age" IS DISTINCT FROM $1::integer"#, ["5"]),
        ("name=like.a*b", #""t0"."name" LIKE $1::text"#, ["a%b"]),
        ("name=ilike.*A", #""t0"."name" ILIKE $1::text"#, ["%A"]),
        ("age=like.4*", #""t0"."age"::text LIKE $1::text"#, ["4%"]),
        ("email=ilike.x", #""t0"."email" ILIKE $1::text"#, ["x"]),
        ("nick=like.x", #""t0"."nick" LIKE $1::text"#, ["x"]),
        ("name=match.^a", #""t0"."name" ~ $1::text"#, ["^a"]),
        ("name=imatch.^a", #""t0"."name" ~* $1::text"#, ["^a"]),
        ("age=in.(1,2)", #""t0"."age" = ANY($1::integer[])"#, [#"{"1","2"}"#]),
        ("name=in.(\"a,b\",\"c\\\"d\",e\\f)", #""t0"."name" = ANY($1::text[])"#, [#"{"a,b","c\"d","e\\f"}"#]),
        ("age=in.()", #""t0"."age" = ANY($1::integer[])"#, ["{}"]),
        ("age=is.null", #""t0"."age" IS NULL"#, []),
        ("age=is.not_null", #""t0"."age" IS NOT NULL"#, []),
        ("age=is.true", #""t0"."age" IS TRUE"#, []),
        ("age=is.false", #""t0"."age" IS FALSE"#, []),
        ("age=is.unknown", #""t0"."age" IS UNKNOWN"#, []),
        ("tags=cs.{a,b}", #""t0"."tags" @> $1::text[]"#, ["{a,b}"]),
        ("tags=cd.{a}", #""t0"."tags" <@ $1::text[]"#, ["{a}"]),
        ("tags=ov.(a,b)", #""t0"."tags" && $1::text[]"#, ["{a,b}"]),
        ("data=cs.{\"a\":1}", #""t0"."data" @> $1::jsonb"#, [#"{"a":1}"#]),
        ("data=cd.{}", #""t0"."data" <@ $1::jsonb"#, ["{}"]),
        ("tags=eq(any).{a,b}", #""t0"."tags" = ANY($1::text[][])"#, ["{a,b}"]),
        ("age=gt(all).{1,2}", #""t0"."age" > ALL($1::integer[])"#, ["{1,2}"]),
        ("name=like(any).{a*,*b}", #""t0"."name" LIKE ANY($1::text[])"#, ["{a%,%b}"]),
        ("search=fts.cat", #""t0"."search" @@ to_tsquery($1::text)"#, ["cat"]),
        ("search=plfts(english).fat cats", #""t0"."search" @@ plainto_tsquery($1::regconfig, $2::text)"#, ["english", "fat cats"]),
        ("search=phfts.a b", #""t0"."search" @@ phraseto_tsquery($1::text)"#, ["a b"]),
        ("name=wfts(simple).\"a b\" -c", #"to_tsvector($1::regconfig, "t0"."name") @@ websearch_to_tsquery($2::regconfig, $3::text)"#, ["simple", "simple", "\"a b\" -c"]),
        ("age=not.eq.5", #"NOT "t0"."age" = $1::integer"#, ["5"]),
        ("age=not.is.null", #"NOT "t0"."age" IS NULL"#, []),
        ("data->a->>b=eq.x", #"("t0"."data"->$1::text->>$2::text) = $3::text"#, ["a", "b", "x"]),
        ("data->n=eq.2", #"("t0"."data"->$1::text) = $2::jsonb"#, ["n", "2"]),
        ("settings->k=eq.2", #"("t0"."settings"->$1::text) = $2::json"#, ["k", "2"]),
        ("created_at=lt.2020-01-01", #""t0"."created_at" < $1::timestamp with time zone"#, ["2020-01-01"]),
    ] as [(String, String, [String?])])
    func filterOperators(_ query: String, _ fragment: String, _ binds: [String?]) throws {
        let generated = try build(request(.table("users"), "select=id&" + query))
        #expect(generated.sql.contains(" WHERE " + fragment + ")") || generated.sql.contains(" WHERE " + fragment + " "), "\(generated.sql)")
        #expect(generated.binds == binds)
        checkPlaceholders(generated)
    }

    @Test func rangeOperators() throws {
        for (op, symbol) in [("sl", "<<"), ("sr", ">>"), ("nxr", "&<"), ("nxl", "&>"), ("adj", "-|-"), ("ov", "&&")] {
            let generated = try build(request(.table("posts"), "select=id&period=\(op).[1,5)"))
            #expect(generated.sql.contains(#" WHERE "t0"."period" \#(symbol) $1::int4range)"#), "\(generated.sql)")
            #expect(generated.binds == ["[1,5)"])
        }
    }

    @Test func logicTrees() throws {
        let generated = try build(request(.table("users"), "select=id&or=(age.lt.18,and(name.eq.a,email.is.null))&not.and=(id.gt.1,id.lt.5)&id=neq.3"))
        #expect(generated.sql.contains(#"WHERE (("t0"."age" < $1::integer) OR (("t0"."name" = $2::text) AND ("t0"."email" IS NULL))) AND NOT (("t0"."id" > $3::integer) AND ("t0"."id" < $4::integer)) AND ("t0"."id" <> $5::integer))"#), "\(generated.sql)")
        #expect(generated.binds == ["18", "a", "1", "5", "3"])
    }

    @Test func orderTerms() throws {
        let generated = try build(request(.table("users"), "select=id&order=age.desc.nullslast,name.asc,email.nullsfirst,data->>k"))
        #expect(generated.sql.contains(#"ORDER BY "t0"."age" DESC NULLS LAST, "t0"."name" ASC, "t0"."email" NULLS FIRST, ("t0"."data"->>$1::text))"#))
        #expect(generated.binds == ["k"])
    }

    @Test func limitOffsetAndRangeHeader() throws {
        let paged = try build(request(.table("users"), "select=id&limit=10&offset=20"))
        #expect(paged.sql.contains(" LIMIT $1::bigint OFFSET $2::bigint)"))
        #expect(paged.binds == ["10", "20"])
        #expect(paged.rangeOffset == 20)
        let ranged = try build(request(.table("users"), "select=id", range: "5-14"))
        #expect(ranged.binds == ["10", "5"])
        #expect(ranged.rangeOffset == 5)
        let both = try build(request(.table("users"), "select=id&limit=3", range: "0-9"))
        #expect(both.binds == ["3"])
        let open = try build(request(.table("users"), "select=id", range: "items=7-"))
        #expect(open.binds == ["7"])
        #expect(open.sql.contains(" OFFSET $1::bigint)"))
        let zero = try build(request(.table("users"), "select=id&limit=0"))
        #expect(zero.binds == ["0"])
        // Huge bounds do not overflow.
        let huge = try build(request(.table("users"), "select=id&limit=9223372036854775807&offset=9223372036854775807", range: "9223372036854775806-9223372036854775807"))
        #expect(huge.binds.count == 2)
    }

    @Test func countAddsATotalOverTheSameFilters() throws {
        let generated = try build(request(.table("users"), "select=id&age=gte.18&limit=1", prefer: "count=exact"))
        #expect(generated.sql.contains(#"(SELECT count(*) FROM "public"."users" AS "t0" WHERE "t0"."age" >= $1::integer) AS total"#), "\(generated.sql)")
        #expect(generated.countRequested == "exact")
        #expect(generated.preferenceApplied == ["count=exact"])
        #expect(try build(request(.table("users"), prefer: "count=estimated")).preferenceApplied == ["count=estimated"])
    }

    @Test func headNeedsNoBody() throws {
        let generated = try build(request(.head, .table("users"), "select=id", prefer: "count=exact"))
        #expect(generated.returnMinimal)
        #expect(generated.readOnly)
        #expect(generated.sql.hasSuffix("NULL::text AS body FROM pgrst_source AS _pgrst_t"))
    }

    @Test func singleObjectAndSchemas() throws {
        #expect(try build(request(.table("users"), accept: "application/vnd.pgrst.object+json")).singleObject)
        #expect(try build(request(.table("things"), schema: "api")).sql.contains(#"FROM "api"."things" AS "t0""#))
        let error = buildError(request(.table("users"), schema: "secret"))
        #expect(error == PostgRESTError(status: 406, code: "PGRST106", message: "The schema must be one of the following: public, api",
                                        hint: "Only the following schemas are exposed: public, api"))
        #expect(buildError(request(.table("users"), accept: "text/xml"))?.code == "PGRST107")
    }

    @Test func unknownNames() {
        #expect(buildError(request(.table("nope"))) == PostgRESTError(status: 404, code: "PGRST205", message: "Could not find the table 'public.nope' in the schema cache"))
        #expect(buildError(request(.table("users"), "select=nope")) == PostgRESTError(status: 400, code: "42703", message: "column users.nope does not exist"))
        #expect(buildError(request(.table("users"), "nope=eq.1"))?.message == "column users.nope does not exist")
        #expect(buildError(request(.table("users"), "order=nope.desc"))?.code == "42703")
        #expect(buildError(request(.table("users"), "or=(nope.eq.1)"))?.code == "42703")
        #expect(buildError(request(.table("users"), "data->>x=eq.1&nope->a=eq.1"))?.code == "42703")
    }

    @Test func badRange() {
        let error = buildError(request(.table("users"), range: "9-1"))
        #expect(error?.status == 416)
        #expect(error?.code == "PGRST103")
    }
}

@Suite("RecordsSQLBuilder: embedding")
struct RecordsEmbedBuilderTests {
    @Test func manyToOne() throws {
        let generated = try build(request(.table("posts"), "select=id,author:users!author_id(name)"))
        #expect(generated.sql == """
            WITH pgrst_source AS (SELECT "t0"."id", "e1".v AS "author" FROM "public"."posts" AS "t0" \
            LEFT JOIN LATERAL (SELECT row_to_json(_pgrst_e) AS v FROM (SELECT "t1"."name" FROM "public"."users" AS "t1" \
            WHERE "t1"."id" = "t0"."author_id") AS _pgrst_e) AS "e1" ON TRUE) \
            SELECT count(*) AS page_total, NULL::bigint AS total, coalesce(json_agg(_pgrst_t), '[]')::text AS body FROM pgrst_source AS _pgrst_t
            """)
    }

    @Test func oneToManyWithScopedParameters() throws {
        let generated = try build(request(.table("posts"), "select=id,comments(id,body)&comments.status=eq.ok&comments.order=id.desc&comments.limit=2&comments.offset=1"))
        #expect(generated.sql.contains(#"coalesce("e1".v, '[]') AS "comments""#))
        #expect(generated.sql.contains(#"LEFT JOIN LATERAL (SELECT json_agg(_pgrst_e) AS v FROM (SELECT "t1"."id", "t1"."body" FROM "public"."comments" AS "t1" WHERE "t1"."post_id" = "t0"."id" AND ("t1"."status" = $1::text) ORDER BY "t1"."id" DESC LIMIT $2::bigint OFFSET $3::bigint) AS _pgrst_e) AS "e1" ON TRUE"#), "\(generated.sql)")
        #expect(generated.binds == ["ok", "2", "1"])
    }

    @Test func innerJoinFiltersParentsAndCount() throws {
        let generated = try build(request(.table("posts"), "select=id,comments!inner(id)&comments.status=eq.spam", prefer: "count=exact"))
        #expect(generated.sql.contains(#"INNER JOIN LATERAL (SELECT json_agg(_pgrst_e) AS v FROM"#))
        #expect(generated.sql.contains(#"AS "e1" ON "e1".v IS NOT NULL"#))
        // The count repeats the inner join with the same bind.
        #expect(generated.sql.split(separator: "INNER JOIN LATERAL").count == 3)
        #expect(generated.binds == ["spam"])
    }

    @Test func disambiguation() throws {
        let ambiguous = buildError(request(.table("posts"), "select=*,users(*)"))
        #expect(ambiguous?.status == 300)
        #expect(ambiguous?.code == "PGRST201")
        #expect(ambiguous?.message == "Could not embed because more than one relationship was found for 'posts' and 'users'")
        #expect(ambiguous?.hint == "Try changing 'users' to one of the following: 'users!posts_author_id_fkey', 'users!posts_editor_id_fkey'. Find the desired relationship in the 'details' key.")
        #expect(ambiguous?.details?.contains("many-to-one: posts_author_id_fkey using posts(author_id) and users(id)") == true)
        #expect(try build(request(.table("posts"), "select=*,users!posts_editor_id_fkey(*)")).sql.contains(#""t1"."id" = "t0"."editor_id""#))
        #expect(try build(request(.table("posts"), "select=*,users!editor_id(*)")).sql.contains(#""t1"."id" = "t0"."editor_id""#))
        #expect(try build(request(.table("posts"), "select=*,author_id(*)")).sql.contains(#""t1"."id" = "t0"."author_id""#))
        #expect(try build(request(.table("posts"), "select=*,posts_author_id_fkey(*)")).sql.contains(#""t1"."id" = "t0"."author_id""#))
        #expect(try build(request(.table("users"), "select=*,posts!author_id(*)")).sql.contains(#""t1"."author_id" = "t0"."id""#))
    }

    @Test func unknownRelationship() {
        let error = buildError(request(.table("users"), "select=*,nope(*)"))
        #expect(error == PostgRESTError(status: 400, code: "PGRST200", message: "Could not find a relationship between 'users' and 'nope' in the schema cache",
                                        details: "Searched for a foreign key relationship between 'users' and 'nope' in the schema 'public', but no matches were found."))
        #expect(buildError(request(.table("tags"), "select=*,users(*)"))?.code == "PGRST200")
        #expect(buildError(request(.table("posts"), "select=*,users!nope(*)"))?.details?.contains("using the hint 'nope'") == true)
    }

    @Test func manyToManyThroughJunction() throws {
        let generated = try build(request(.table("posts"), "select=id,tags(name)"))
        #expect(generated.sql.contains(#"FROM "public"."tags" AS "t1" INNER JOIN "public"."posts_tags" AS "t2" ON "t2"."tag_id" = "t1"."id" WHERE "t2"."post_id" = "t0"."id""#), "\(generated.sql)")
        #expect(try build(request(.table("posts"), "select=id,tags!posts_tags(name)")).sql.contains("posts_tags"))
    }

    @Test func oneToOneIsAnObject() throws {
        let generated = try build(request(.table("users"), "select=id,profiles(bio)"))
        #expect(generated.sql.contains(#"SELECT row_to_json(_pgrst_e) AS v FROM (SELECT "t1"."bio" FROM "public"."profiles" AS "t1" WHERE "t1"."user_id" = "t0"."id")"#))
        #expect(generated.sql.contains(#""e1".v AS "profiles""#))
    }

    @Test func selfReference() throws {
        #expect(try build(request(.table("employees"), "select=name,manager:manager_id(name)")).sql.contains(#""t1"."id" = "t0"."manager_id""#))
        #expect(try build(request(.table("employees"), "select=name,reports:employees(name)")).sql.contains(#""t1"."manager_id" = "t0"."id""#))
        #expect(try build(request(.table("employees"), "select=name,reports:employees!manager_id(name)")).sql.contains(#""t1"."manager_id" = "t0"."id""#))
    }

    @Test func nestedThreeLevels() throws {
        let generated = try build(request(.table("users"), "select=name,posts!author_id(title,comments(body,users(name)))&posts.comments.status=eq.ok"))
        #expect(generated.sql.contains(#"FROM "public"."users" AS "t3" WHERE "t3"."id" = "t2"."user_id""#))
        #expect(generated.sql.contains(#"WHERE "t2"."post_id" = "t1"."id" AND ("t2"."status" = $1::text)"#))
        #expect(generated.sql.contains(#"WHERE "t1"."author_id" = "t0"."id""#))
    }

    @Test func spreadMergesColumns() throws {
        let generated = try build(request(.table("posts"), "select=id,...users!author_id(author_name:name)"))
        #expect(generated.sql.contains(#"SELECT "t0"."id", "e1".* FROM"#))
        #expect(generated.sql.contains(#"LEFT JOIN LATERAL (SELECT "t1"."name" AS "author_name" FROM "public"."users" AS "t1" WHERE "t1"."id" = "t0"."author_id") AS "e1" ON TRUE"#))
        #expect(buildError(request(.table("posts"), "select=id,...comments(id)"))?.code == "PGRST119")
    }

    @Test func nullFiltersOnEmbeddings() throws {
        let generated = try build(request(.table("posts"), "select=id,users!editor_id(name)&users=is.null", prefer: "count=exact"))
        #expect(generated.sql.contains(#" WHERE "e1".v IS NULL"#))
        // The count needs the joined embedding too.
        #expect(generated.sql.contains(#"(SELECT count(*) FROM "public"."posts" AS "t0" LEFT JOIN LATERAL"#))
        #expect(try build(request(.table("posts"), "select=id,users!editor_id(name)&users=not.is.null")).sql.contains(#" WHERE "e1".v IS NOT NULL"#))
        #expect(buildError(request(.table("posts"), "select=id,users!editor_id(name)&users=eq.1"))?.code == "PGRST120")
    }

    @Test func orderByToOneEmbedding() throws {
        let generated = try build(request(.table("posts"), "select=id,author:users!author_id(name)&order=author(name).desc"))
        #expect(generated.sql.contains(#"ORDER BY (SELECT "t2"."name" FROM "public"."users" AS "t2" WHERE "t2"."id" = "t0"."author_id") DESC"#))
        #expect(buildError(request(.table("users"), "select=id,posts!author_id(id)&order=posts(id)"))?.code == "PGRST118")
        #expect(buildError(request(.table("posts"), "select=id&order=author(name)"))?.code == "PGRST108")
    }

    @Test func scopedParametersNeedAnEmbedding() {
        let error = buildError(request(.table("posts"), "select=id&comments.status=eq.ok"))
        #expect(error == PostgRESTError(status: 400, code: "PGRST108", message: "'comments' is not an embedded resource in this request",
                                        hint: "Verify that 'comments' is included in the 'select' query parameter."))
        #expect(buildError(request(.table("posts"), "select=id,comments(id)&comments.users.limit=1"))?.message == "'users' is not an embedded resource in this request")
        #expect(buildError(request(.table("posts"), "select=id&x.order=id"))?.code == "PGRST108")
        #expect(buildError(request(.table("posts"), "select=id,comments(nope)"))?.message == "column comments.nope does not exist")
    }

    @Test func aliasedEmbeddingScopesByAlias() throws {
        let generated = try build(request(.table("posts"), "select=id,c:comments(id)&c.status=eq.ok"))
        #expect(generated.sql.contains(#"("t1"."status" = $1::text)"#))
        #expect(generated.sql.contains(#"AS "c""#))
    }
}

@Suite("RecordsSQLBuilder: writes")
struct RecordsWriteBuilderTests {
    @Test func insertDefaultsToMinimal() throws {
        let generated = try build(request(.post, .table("tags"), body: #"{"name":"x"}"#))
        #expect(generated.sql == """
            WITH pgrst_source AS (INSERT INTO "public"."tags" AS "t0" ("name") SELECT pgrst_body."name" \
            FROM json_populate_recordset(NULL::"public"."tags", $1::json) AS pgrst_body RETURNING 1) \
            SELECT count(*) AS page_total, NULL::bigint AS total, NULL::text AS body FROM pgrst_source
            """)
        #expect(generated.binds == [#"[{"name":"x"}]"#])
        #expect(generated.returnMinimal)
        #expect(!generated.readOnly)
        #expect(generated.preferenceApplied == [])
    }

    @Test func insertRepresentationWithEmbedding() throws {
        let generated = try build(request(.post, .table("posts"), "select=title,author:users!author_id(name)", prefer: "return=representation", body: #"[{"title":"a","author_id":1},{"title":"b","author_id":null}]"#))
        #expect(generated.sql.contains(#"INSERT INTO "public"."posts" AS "t0" ("title", "author_id") SELECT pgrst_body."title", pgrst_body."author_id""#))
        #expect(generated.sql.contains(#"RETURNING "t0".*), pgrst_result AS (SELECT "t0"."title", "e1".v AS "author" FROM pgrst_source AS "t0" LEFT JOIN LATERAL"#))
        #expect(generated.binds == [#"[{"title":"a","author_id":1},{"title":"b","author_id":null}]"#])
        #expect(!generated.returnMinimal)
        #expect(generated.preferenceApplied == ["return=representation"])
    }

    @Test func insertColumnsParameter() throws {
        let generated = try build(request(.post, .table("users"), "columns=name,age", body: #"{"name":"z","other":1}"#))
        #expect(generated.sql.contains(#"("name", "age") SELECT pgrst_body."name", pgrst_body."age""#))
        #expect(buildError(request(.post, .table("users"), "columns=nope", body: "{}"))?.code == "PGRST204")
    }

    @Test func missingDefaultSplitsRowsByKeys() throws {
        let generated = try build(request(.post, .table("users"), prefer: "missing=default, return=representation", body: #"[{"name":"a"},{"name":"b","age":2},{"name":"c"}]"#))
        #expect(generated.sql.contains(#"pgrst_insert_1 AS (INSERT INTO "public"."users" AS "t0" ("name") SELECT"#))
        #expect(generated.sql.contains(#"pgrst_insert_2 AS (INSERT INTO "public"."users" AS "t0" ("name", "age") SELECT"#))
        #expect(generated.sql.contains("pgrst_source AS (SELECT * FROM pgrst_insert_1 UNION ALL SELECT * FROM pgrst_insert_2)"))
        #expect(generated.binds == [#"[{"name":"a"},{"name":"c"}]"#, #"[{"name":"b","age":2}]"#])
        #expect(generated.preferenceApplied == ["return=representation", "missing=default"])
    }

    @Test func upserts() throws {
        let merge = try build(request(.post, .table("tags"), prefer: "resolution=merge-duplicates", body: #"{"id":1,"name":"a"}"#))
        #expect(merge.sql.contains(#"ON CONFLICT ("id") DO UPDATE SET "id" = EXCLUDED."id", "name" = EXCLUDED."name" RETURNING 1"#))
        #expect(merge.preferenceApplied == ["resolution=merge-duplicates"])
        let ignore = try build(request(.post, .table("tags"), prefer: "resolution=ignore-duplicates", body: #"{"id":1}"#))
        #expect(ignore.sql.contains(#"ON CONFLICT ("id") DO NOTHING"#))
        let target = try build(request(.post, .table("tags"), "on_conflict=name", prefer: "resolution=merge-duplicates", body: #"{"name":"a"}"#))
        #expect(target.sql.contains(#"ON CONFLICT ("name") DO UPDATE SET "name" = EXCLUDED."name""#))
        #expect(buildError(request(.post, .table("tags"), "on_conflict=nope", prefer: "resolution=merge-duplicates", body: "{}"))?.code == "42703")
        // A view has no primary key: the resolution cannot apply.
        #expect(try build(request(.post, .table("adults"), prefer: "resolution=merge-duplicates", body: #"{"name":"a"}"#)).preferenceApplied == [])
    }

    @Test func insertErrors() {
        #expect(buildError(request(.post, .table("tags"), body: #"{"nope":1}"#)) == PostgRESTError(status: 400, code: "PGRST204", message: "Could not find the 'nope' column of 'tags' in the schema cache"))
        #expect(buildError(request(.post, .table("tags"), body: #"{"name":"#))?.code == "PGRST102")
        #expect(buildError(request(.post, .table("tags")))?.code == "PGRST102")
        #expect(buildError(request(.post, .table("tags"), body: "[1]"))?.code == "PGRST102")
    }

    @Test func headersOnlyReturnsThePrimaryKey() throws {
        let generated = try build(request(.post, .table("tags"), prefer: "return=headers-only", body: #"{"name":"x"}"#))
        #expect(generated.sql.contains(#"RETURNING "t0"."id")"#))
        #expect(generated.sql.hasSuffix("coalesce(json_agg(_pgrst_t), '[]')::text AS body FROM pgrst_source AS _pgrst_t"))
        #expect(generated.returnMinimal)
        #expect(generated.preferenceApplied == ["return=headers-only"])
    }

    @Test func update() throws {
        let generated = try build(request(.patch, .table("users"), "id=eq.1&select=id,age", prefer: "return=representation, count=exact", body: #"{"age":31,"name":"n"}"#))
        #expect(generated.sql.hasPrefix(#"WITH pgrst_source AS (UPDATE "public"."users" AS "t0" SET "age" = pgrst_body."age", "name" = pgrst_body."name" FROM json_populate_record(NULL::"public"."users", $1::json) AS pgrst_body WHERE "t0"."id" = $2::integer RETURNING "t0".*)"#), "\(generated.sql)")
        #expect(generated.sql.contains("(SELECT count(*) FROM pgrst_source) AS total"))
        #expect(generated.binds == [#"{"age":31,"name":"n"}"#, "1"])
        #expect(generated.preferenceApplied == ["return=representation", "count=exact"])
    }

    @Test func updateEdgeCases() throws {
        let empty = try build(request(.patch, .table("users"), "id=eq.1", body: "{}"))
        #expect(empty.sql.hasPrefix(#"WITH pgrst_source AS (SELECT "t0".* FROM "public"."users" AS "t0" WHERE false)"#))
        let limited = try build(request(.patch, .table("users"), "age=gt.1&order=id&limit=2", body: #"{"age":1}"#))
        #expect(limited.sql.contains(#"WHERE "t0".ctid = ANY(ARRAY(SELECT "t0".ctid FROM "public"."users" AS "t0" WHERE "t0"."age" > $2::integer ORDER BY "t0"."id" LIMIT $3::bigint))"#), "\(limited.sql)")
        #expect(buildError(request(.patch, .table("adults"), "limit=1", body: #"{"name":"x"}"#))?.status == 400)
        #expect(buildError(request(.patch, .table("users"), body: #"[{"age":1}]"#))?.code == "PGRST102")
        #expect(buildError(request(.patch, .table("users"), body: #"{"nope":1}"#))?.code == "PGRST204")
        #expect(try build(request(.patch, .table("users"), "columns=age", body: #"{"age":1,"x":2}"#)).sql.contains(#"SET "age" = pgrst_body."age" FROM"#))
        #expect(try build(request(.patch, .table("users"), "columns=age,name", prefer: "missing=default", body: #"{"age":1}"#)).sql.contains(#"SET "age" = pgrst_body."age", "name" = DEFAULT"#))
    }

    @Test func delete() throws {
        let generated = try build(request(.delete, .table("comments"), "status=eq.spam&or=(id.eq.1,id.eq.2)"))
        #expect(generated.sql == """
            WITH pgrst_source AS (DELETE FROM "public"."comments" AS "t0" WHERE ("t0"."status" = $1::text) AND \
            (("t0"."id" = $2::integer) OR ("t0"."id" = $3::integer)) RETURNING 1) \
            SELECT count(*) AS page_total, NULL::bigint AS total, NULL::text AS body FROM pgrst_source
            """)
        let everything = try build(request(.delete, .table("comments")))
        #expect(everything.sql.hasPrefix(#"WITH pgrst_source AS (DELETE FROM "public"."comments" AS "t0" RETURNING 1)"#))
    }

    @Test func writesRefuseItemsThatAreNotFilters() {
        // Items that are not filters are refused (an ignored `id=eq;1` would delete every row).
        #expect(buildError(request(.delete, .table("users"), "id=eq;1"))?.code == "PGRST100")
        #expect(buildError(request(.patch, .table("users"), "id=1", body: #"{"age":1}"#))?.code == "PGRST100")
        #expect(buildError(request(.get, .table("users"), "id=1"))?.code == "PGRST100")
    }

    @Test func put() throws {
        let generated = try build(request(.put, .table("tags"), "id=eq.5", body: #"{"id":5,"name":"five"}"#))
        #expect(generated.sql.contains(#"ON CONFLICT ("id") DO UPDATE SET "id" = EXCLUDED."id", "name" = EXCLUDED."name""#))
        #expect(generated.binds == [#"[{"id":5,"name":"five"}]"#])
        #expect(buildError(request(.put, .table("tags"), "name=eq.x", body: #"{"id":5}"#))?.code == "PGRST105")
        #expect(buildError(request(.put, .table("tags"), "id=gt.5", body: #"{"id":5}"#))?.code == "PGRST105")
        #expect(buildError(request(.put, .table("tags"), "id=eq.5&id=eq.6", body: #"{"id":5}"#))?.code == "PGRST105")
        #expect(buildError(request(.put, .table("tags"), "id=eq.6", body: #"{"id":5}"#))?.code == "PGRST115")
        #expect(buildError(request(.put, .table("tags"), "id=eq.5", body: #"{"name":"x"}"#))?.code == "PGRST115")
        #expect(buildError(request(.put, .table("tags"), "id=eq.5&limit=1", body: #"{"id":5}"#))?.code == "PGRST114")
        #expect(buildError(request(.put, .table("tags"), "id=eq.5", body: #"[{"id":5}]"#))?.code == "PGRST102")
        #expect(try build(request(.put, .table("users"), "id=eq.7", body: #"{"id":"7","name":"s"}"#)).binds.count == 1)
    }
}

@Suite("RecordsSQLBuilder: functions")
struct RecordsCallBuilderTests {
    @Test func scalarFromBody() throws {
        let generated = try build(request(.post, .rpc("add_them"), body: #"{"a":1,"b":2}"#))
        #expect(generated.sql == """
            WITH pgrst_args AS (SELECT * FROM json_to_record($1::json) AS _pgrst_a("a" integer, "b" integer)), \
            pgrst_source AS (SELECT "public"."add_them"("a" => pgrst_args."a", "b" => pgrst_args."b") AS pgrst_scalar FROM pgrst_args) \
            SELECT 1::bigint AS page_total, NULL::bigint AS total, coalesce(to_json(pgrst_scalar)::text, 'null') AS body FROM pgrst_source
            """)
        #expect(!generated.readOnly)
        #expect(!generated.singleObject)
    }

    @Test func scalarFromQueryString() throws {
        let generated = try build(request(.rpc("greet"), "name=ann"))
        #expect(generated.sql.contains(#""public"."greet"("name" => $1::text) AS pgrst_scalar"#))
        #expect(generated.binds == ["ann"])
        #expect(generated.readOnly)
        let array = try build(request(.rpc("sum_array"), "arr=1&arr=2"))
        #expect(array.binds == [#"{"1","2"}"#])
        #expect(array.sql.contains(#""arr" => $1::integer[]"#))
    }

    @Test func setReturningFunctionsReadLikeTables() throws {
        let generated = try build(request(.post, .rpc("search_users"), "select=id,name,posts!author_id(title)&age=gte.18&order=id&limit=5", body: #"{"q":"a"}"#))
        #expect(generated.sql.contains(#"FROM pgrst_args, LATERAL "public"."search_users"("q" => pgrst_args."q") AS "t0""#), "\(generated.sql)")
        #expect(generated.sql.contains(#"WHERE "t0"."age" >= "#))
        #expect(generated.sql.contains(#"FROM "public"."posts" AS "t1" WHERE "t1"."author_id" = "t0"."id""#))
        let counted = try build(request(.rpc("search_users"), "q=a&limit=1", prefer: "count=exact"))
        #expect(counted.sql.contains(#"pgrst_call AS MATERIALIZED (SELECT "t0".* FROM "public"."search_users"("q" => $1::text) AS "t0")"#))
        #expect(counted.sql.contains("(SELECT count(*) FROM pgrst_call AS \"t0\") AS total"))
        #expect(buildError(request(.rpc("search_users"), "q=a&select=nope"))?.code == "42703")
    }

    @Test func tableResultColumnsComeFromTheSignature() throws {
        let generated = try build(request(.rpc("user_stats"), "select=total,\"avg age\"&total=gt.1"))
        #expect(generated.sql.contains(#"SELECT "t0"."total", "t0"."avg age" FROM "public"."user_stats"() AS "t0" WHERE "t0"."total" > $1::bigint"#))
    }

    @Test func singleCompositeIsAnObject() throws {
        let generated = try build(request(.rpc("first_user"), "select=id", accept: "application/vnd.pgrst.object+json"))
        #expect(generated.sql.hasSuffix("coalesce((json_agg(_pgrst_t)->0)::text, 'null') AS body FROM pgrst_source AS _pgrst_t"))
        #expect(!generated.singleObject)
    }

    @Test func setOfScalars() throws {
        let generated = try build(request(.rpc("numbers"), "n=5&limit=2&offset=1"))
        #expect(generated.sql.contains(#"SELECT "t0".pgrst_scalar FROM "public"."numbers"("n" => $1::integer) AS "t0"(pgrst_scalar) LIMIT $2::bigint OFFSET $3::bigint"#))
        #expect(generated.sql.contains("coalesce(json_agg(pgrst_scalar), '[]')::text AS body"))
    }

    @Test func voidAndSingleJSONArgument() throws {
        #expect(try build(request(.post, .rpc("do_nothing"))).sql.contains("'null'::text AS body"))
        let echo = try build(request(.post, .rpc("echo_json"), body: #"[1,{"a":2}]"#))
        #expect(echo.sql.contains(#""public"."echo_json"($1::jsonb) AS pgrst_scalar"#))
        #expect(echo.binds == [#"[1,{"a":2}]"#])
    }

    @Test func volatileFunctionsThroughGETAreReadOnly() throws {
        #expect(try build(request(.rpc("bump"))).readOnly)
        #expect(try !build(request(.post, .rpc("bump"))).readOnly)
    }

    @Test func argumentErrors() {
        #expect(buildError(request(.post, .rpc("nope"), body: #"{"a":1}"#)) == PostgRESTError(
            status: 404, code: "PGRST202", message: "Could not find the function public.nope(a) in the schema cache",
            details: "Searched for the function public.nope with parameter a or with a single unnamed json/jsonb parameter, but no matches were found in the schema cache."))
        #expect(buildError(request(.post, .rpc("nope")))?.message == "Could not find the function public.nope without parameters in the schema cache")
        #expect(buildError(request(.post, .rpc("add_them"), body: #"{"a":1,"c":2}"#))?.code == "PGRST202")
        #expect(buildError(request(.rpc("add_them"), "a=1"))?.code == "PGRST202")
        #expect(buildError(request(.rpc("add_them"), "a=1&b=2&c=3"))?.code == "PGRST202")
        #expect(buildError(request(.post, .rpc("add_them"), body: "[1]"))?.code == "PGRST102")
        #expect(buildError(request(.delete, .rpc("add_them"))) == PostgRESTError(status: 405, code: "PGRST101", message: "Cannot use the DELETE method on RPC"))
        #expect(buildError(request(.patch, .rpc("add_them")))?.code == "PGRST101")
    }
}

@Suite("RecordsSQLBuilder: injection")
struct RecordsInjectionTests {
    static let payloads = [
        "\"; drop table users; --", "x\"; drop table users; --", "'; drop table users; --", "id) ; drop table users; --",
        "id;drop table users", "a\u{0}b", "$1", "id::text; drop table users", "users--", "id/*", "*/drop",
    ]

    /// Whatever goes wrong, request text never reaches the SQL outside a quoted identifier or a bind.
    private func checkSafe(_ request: RecordsRequest, payload: String, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            let generated = try build(request)
            let bare = sqlOutsideQuotes(generated.sql).lowercased()
            #expect(!bare.contains("drop"), "payload reached SQL: \(generated.sql)", sourceLocation: sourceLocation)
            #expect(!bare.contains(";"), "payload reached SQL: \(generated.sql)", sourceLocation: sourceLocation)
            #expect(!bare.contains("--"), "payload reached SQL: \(generated.sql)", sourceLocation: sourceLocation)
            #expect(!generated.sql.contains("\u{0}"), sourceLocation: sourceLocation)
            checkPlaceholders(generated, sourceLocation: sourceLocation)
        } catch {
            #expect([300, 400, 404, 406].contains(error.status), "\(error)", sourceLocation: sourceLocation)
        }
    }

    @Test(arguments: payloads)
    func throughNames(_ payload: String) {
        let quoted = "\"" + payload.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"") + "\""
        let targets: [RecordsRequest] = [
            RecordsRequest(method: .get, target: .table("users"), query: [("select", payload)]),
            RecordsRequest(method: .get, target: .table("users"), query: [("select", quoted)]),
            RecordsRequest(method: .get, target: .table("users"), query: [("select", quoted + ":id")]),
            RecordsRequest(method: .get, target: .table("users"), query: [("select", "id::" + payload)]),
            RecordsRequest(method: .get, target: .table("users"), query: [("select", "data->" + quoted)]),
            RecordsRequest(method: .get, target: .table("users"), query: [("select", "posts!" + quoted + "(id)")]),
            RecordsRequest(method: .get, target: .table("users"), query: [(payload, "eq.1")]),
            RecordsRequest(method: .get, target: .table("users"), query: [("data->>" + quoted, "eq.1")]),
            RecordsRequest(method: .get, target: .table("users"), query: [("id", payload)]),
            RecordsRequest(method: .get, target: .table("users"), query: [("id", "eq." + payload)]),
            RecordsRequest(method: .get, target: .table("users"), query: [("id", "in.(" + payload + ")")]),
            RecordsRequest(method: .get, target: .table("users"), query: [("search", "fts(" + payload + ").x")]),
            RecordsRequest(method: .get, target: .table("users"), query: [("order", payload)]),
            RecordsRequest(method: .get, target: .table("users"), query: [("order", quoted + ".desc")]),
            RecordsRequest(method: .get, target: .table("users"), query: [("or", "(" + payload + ")")]),
            RecordsRequest(method: .get, target: .table("users"), query: [("or", "(id.eq." + payload + ")")]),
            RecordsRequest(method: .get, target: .table("users"), query: [("limit", payload)]),
            RecordsRequest(method: .get, target: .table(payload)),
            RecordsRequest(method: .get, target: .table("users"), schema: payload),
            RecordsRequest(method: .post, target: .table("users"), query: [("columns", payload)], body: Array("{}".utf8)),
            RecordsRequest(method: .post, target: .table("users"), query: [("on_conflict", payload)], prefer: "resolution=merge-duplicates", body: Array("{}".utf8)),
            RecordsRequest(method: .post, target: .table("users"), body: Array(("{" + jsonString(payload) + ":1}").utf8)),
            RecordsRequest(method: .patch, target: .table("users"), body: Array(("{" + jsonString(payload) + ":1}").utf8)),
            RecordsRequest(method: .post, target: .rpc(payload), body: Array("{}".utf8)),
            RecordsRequest(method: .post, target: .rpc("add_them"), body: Array(("{" + jsonString(payload) + ":1}").utf8)),
            RecordsRequest(method: .get, target: .rpc("greet"), query: [("name", payload)]),
            RecordsRequest(method: .get, target: .table("users"), query: [], prefer: payload, accept: "application/json", range: payload),
        ]
        for request in targets { checkSafe(request, payload: payload) }
    }

    private func jsonString(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case _ where scalar.value < 0x20: result += "\\u00" + (scalar.value < 16 ? "0" : "") + String(scalar.value, radix: 16)
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }

    @Test func valuesNeverAppearInline() throws {
        let marker = "v4lue'\"x"
        let requests = [
            request(.table("users"), "select=id&name=eq.\(marker)&age=in.(\(marker))&or=(name.like.\(marker),email.ilike.\(marker))&data->>\"v4lue'\\\"x\"=eq.\(marker)"),
            request(.table("users"), "select=id&search=fts(english).\(marker)&tags=cs.\(marker)&name=match.\(marker)"),
            request(.post, .table("users"), prefer: "return=representation", body: #"{"name":"v4lue'\"x"}"#),
            request(.patch, .table("users"), "name=eq.\(marker)", body: #"{"name":"v4lue'\"x"}"#),
            request(.rpc("greet"), "name=\(marker)"),
        ]
        for item in requests {
            let generated = try build(item)
            #expect(!generated.sql.contains("v4lue"), "\(generated.sql)")
            #expect(generated.binds.contains { $0?.contains("v4lue") == true })
            checkPlaceholders(generated)
        }
    }

    @Test func quotedIdentifierCannotEscape() throws {
        let generated = try build(request(.table("users"), "select=\"x\\\" from users; --\":id"))
        #expect(generated.sql.contains(#""t0"."id" AS "x"" from users; --""#))
        #expect(!sqlOutsideQuotes(generated.sql).contains(";"))
    }
}
