import Testing

@testable import Gateway

/// The raw-SQL statements as PostgreSQL's parser sees them, the checks on them, and the tables API's DDL pieces.
struct SQLStatementsTests {
    func split(_ sql: String) throws -> [SQLStatements.Statement] {
        try SQLStatements.parse(sql).get()
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
        #expect(statements[0].text == #"select 'a;b', "odd;name" from t"#)
    }

    @Test func syntaxErrorsAreReportedWithTheirPosition() {
        for sql in ["select 'abc", "select \"x", "select 1 /* open", "select $a$ body", "selec 1", "select (1"] {
            #expect(throws: SQLStatements.ParseError.self) { try SQLStatements.parse(sql).get() }
        }
        if case .failure(let error) = SQLStatements.parse("select * fro t") { #expect(error.position == 10) }
        #expect((try? SQLStatements.parse("   ;  ; -- nothing").get())?.isEmpty == true)
    }

    @Test func schemasAreThoseOfObjectsNotOfTypesOrStrings() throws {
        let s = try split(#"update "system".events set x = 1 where y = 'auth.users'"#)
        #expect(s[0].schemas == ["system"])
        let t = try split("select * from public.posts p join auth.users u on u.id = p.owner")
        #expect(t[0].schemas == ["public", "auth"])
        // int is pg_catalog.int4 and extract() pg_catalog.extract in the tree: neither is a use of pg_catalog's objects.
        let c = try split("create table t (a int default extract(year from now()), b text, c system.sometype)")
        #expect(c[0].schemas.isEmpty && !c[0].touchedSchemas.contains("system"))
        #expect(try split("drop table auth.users, x")[0].schemas == ["auth"])
        #expect(try split("create function system.f() returns int language sql as 'select 1'")[0].schemas == ["system"])
        #expect(try split("grant all on auth.users to anon")[0].schemas == ["auth"])
    }

    @Test func whatWrites() throws {
        let reads = ["select 1", "values (1)", "table t", "show timezone", "explain select 1",
                     "with x as (select 1) select * from x", "select auth.uid()"]
        for sql in reads { #expect(try !split(sql)[0].writes, "\(sql)") }
        let writes = ["select * into newt from t", "with d as (delete from t returning *) select * from d",
                      "explain analyze delete from t", "select system.write_event(gen_random_uuid(), 'x-1', 'T', '{}')",
                      "create table t (a int)", "notify x", "lock t"]
        for sql in writes { #expect(try split(sql)[0].writes, "\(sql)") }
        #expect(try split("with d as (delete from t returning *) select * from d")[0].isModifyingQuery)
        #expect(try !SQLStatements.returnsRows(split("select * into newt from t")[0]))
    }

    @Test func checksRefuseWhatMustNotRun() throws {
        func problem(_ sql: String, unrestricted: Bool = false, multiple: Bool = false) throws -> String? {
            RawSQLController.problem(with: try split(sql), unrestricted: unrestricted, multiple: multiple)
        }
        #expect(try problem("select * from posts") == nil)
        #expect(try problem("select * from system.events") == nil)  // reads are fine (privileges still apply)
        #expect(try problem("create table t (id int primary key, at timestamptz default now())") == nil)
        #expect(try problem("create policy p on t to authenticated using (owner = auth.uid())") == nil)
        #expect(try problem("set local statement_timeout = 5000") == nil)
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
        // What matching text let through (security review): spelling, quoting and comments change nothing.
        let hostile = [
            "RESET/**/ROLE", "reset\n\trole", "SET \"role\" TO postgres", "set local role to postgres", "reset all",
            "select set_config('role', 'postgres', false)", "select \"set_config\"('role', 'postgres', true)",
            "select pg_catalog.set_config('role', 'postgres', false)", "set search_path = system, public",
            "with d as (delete from auth.users returning *) select * from d", "explain analyze delete from system.events",
            "select system.write_event(gen_random_uuid(), 'user-1', 'UserSignedUp', '{}')", "select 1 into system.copied",
            "alter table \"auth\".\"users\" add column x int", "create role evil", "alter system set fsync = off",
            "prepare p as select 1", "execute p", "deallocate all", "discard all", "copy t to stdout", "listen x",
            "create event trigger e on ddl_command_end execute function f()", "grant all on auth.users to anon",
            "comment on table system.events is 'x'", "truncate system.events",
        ]
        for sql in hostile {
            #expect(try problem(sql) != nil, "\(sql) was accepted")
        }
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
        let refused = #expect(throws: DomainError.self) { try TableDDL.actions(onDelete: "DROP EVERYTHING", onUpdate: nil) }
        #expect(refused?.code == .invalidInput)
        #expect(try TableDDL.actions(onDelete: "set_null", onUpdate: "cascade") == " ON DELETE SET NULL ON UPDATE CASCADE")
    }
}
