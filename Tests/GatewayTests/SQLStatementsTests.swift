import Testing

@testable import Gateway

/// The raw-SQL lexer and checks, and the tables API's DDL pieces.
struct SQLStatementsTests {
    func split(_ sql: String) throws -> [SQLStatements.Statement] {
        try SQLStatements.split(sql).get()
    }

    @Test func splitsOnlyOnTopLevelSemicolons() throws {
        let statements = try split("""
            select 'a;b', "odd;name" from t; -- trailing; comment
            /* block; /* nested; */ */ insert into x values ($1, $tag$ ; $tag$) returning id;
            do $$ begin perform 1; end $$;
            """)
        #expect(statements.map(\.keyword) == ["SELECT", "INSERT", "DO"])
        #expect(statements[1].hasReturning && !statements[0].hasReturning)
        #expect(statements[2].text.hasSuffix("end $$"))
    }

    @Test func unterminatedPartsAreReported() {
        for sql in ["select 'abc", "select \"x", "select 1 /* open", "select $a$ body"] {
            #expect(throws: SQLStatements.SplitError.self) { try SQLStatements.split(sql).get() }
        }
        #expect((try? SQLStatements.split("   ;  ; -- nothing").get())?.isEmpty == true)
    }

    @Test func schemasAreSeenOutsideStrings() throws {
        let s = try split(#"update "system".events set x = 1 where y = 'auth.users'"#)
        #expect(s[0].schemas == ["system"])
        let t = try split("select * from public.posts p join auth.users u on u.id = p.owner")
        #expect(t[0].schemas.isSuperset(of: ["public", "auth"]))  // qualifiers (aliases too)
    }

    @Test func checksRefuseWhatMustNotRun() throws {
        func problem(_ sql: String, unrestricted: Bool = false, multiple: Bool = false) throws -> String? {
            RawSQLController.problem(with: try split(sql), unrestricted: unrestricted, multiple: multiple)
        }
        #expect(try problem("select * from posts") == nil)
        #expect(try problem("select * from system.events") == nil)  // reads are fine (privileges still apply)
        #expect(try problem("delete from system.events") != nil)
        #expect(try problem("drop table auth.users", unrestricted: true) != nil)
        #expect(try problem("insert into \"system\".events default values") != nil)
        #expect(try problem("select 1; select 2") != nil)
        #expect(try problem("select 1; select 2", multiple: true) == nil)
        #expect(try problem("commit") != nil)
        #expect(try problem("begin; select 1", multiple: true) != nil)
        #expect(try problem("reset role") != nil)
        #expect(try problem("set role postgres") != nil)
        #expect(try problem("SET SESSION AUTHORIZATION postgres", unrestricted: true) != nil)
        #expect(try problem("do $$ begin perform 1; end $$") != nil)
        #expect(try problem("do $$ begin perform 1; end $$", unrestricted: true) == nil)
        #expect(try problem("") != nil)
    }

    @Test func ddlPiecesAreValidatedAndQuoted() throws {
        #expect(TableDDL.identifierProblem("posts", what: "t") == nil)
        #expect(TableDDL.identifierProblem("_x1", what: "t") == nil)
        for bad in ["", "1abc", "a-b", "a b", "x\"; drop table y; --", "pg_class", String(repeating: "a", count: 64), "é"] {
            #expect(TableDDL.identifierProblem(bad, what: "t") != nil, "\(bad) was accepted")
        }
        #expect(TableDDL.builtinType("string") == "text" && TableDDL.builtinType("datetime") == "timestamptz")
        #expect(TableDDL.builtinType("json") == "jsonb" && TableDDL.builtinType("float") == "double precision")
        #expect(TableDDL.isPlausibleTypeName("numeric(10,2)") && TableDDL.isPlausibleTypeName("text[]"))
        #expect(!TableDDL.isPlausibleTypeName("text; drop table x"))
        #expect(TableDDL.defaultExpression("now()", type: "timestamptz") == "now()")
        #expect(TableDDL.defaultExpression("it's; drop", type: "text") == "'it''s; drop'::text")
        #expect(TableDDL.defaultExpression("42", type: "integer") == "'42'::integer")
        #expect(throws: APIError.self) { try TableDDL.actions(onDelete: "DROP EVERYTHING", onUpdate: nil) }
        #expect(try TableDDL.actions(onDelete: "set_null", onUpdate: "cascade") == " ON DELETE SET NULL ON UPDATE CASCADE")
    }
}
