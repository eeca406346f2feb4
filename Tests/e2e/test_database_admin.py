"""The admin database API of one server: the tables API (create, list, describe, alter, drop), raw SQL (restricted
and unrestricted), the checks raw SQL passes before anything runs, how PostgreSQL errors surface, and the events
all of it appends: `TableCreated`/`TableAltered`/`TableDropped` on `schema-<table>`, `RawSQLExecuted` on
`sql-<uuid>`, and `RecordsInserted`/`RecordsUpdated`/`RecordsDeleted` on `table-<name>`, written by triggers in the
transaction of the change.

Every table name is unique to its test (`fresh()`), so tests do not depend on each other's order. "Nothing ran"
is checked from outside the server with psql: the event log's size and position, and the rows of a witness table."""

import json
import re
import secrets
import time
import uuid

import pytest
import requests

from conftest import HTTP_TIMEOUT, assert_error, psql, run_cli

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
SQL_STREAM = re.compile(r"^sql-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ISO_TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
AUTO_FIELDS = ["id", "created_at", "updated_at"]
RAWSQL = "/api/database/advance/rawsql"
RAWSQL_UNRESTRICTED = "/api/database/advance/rawsql/unrestricted"
PASSWORD = "Correct-horse-42"


# --------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def server(deployment):
    return deployment.server(name="dbadmin")


def call(server, method, path, key="admin", **kw):
    """One request (no cookie jar). `key`: "admin", None (no credential) or a literal token. Every answer must
    carry X-Request-Id."""
    headers = dict(kw.pop("headers", None) or {})
    if key == "admin":
        key = server.admin_key
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    kw.setdefault("timeout", HTTP_TIMEOUT)
    r = requests.request(method, server.url(path), headers=headers, **kw)
    assert r.headers.get("X-Request-Id"), (method, path, r.status_code, dict(r.headers))
    return r


def fresh(prefix="t"):
    """A table name no other test uses."""
    return f"{prefix}_{secrets.token_hex(4)}"


def db(deployment, sql):
    return psql(deployment.db.url, sql)


def log_state(deployment):
    """(number of events, highest position) of the log, read with psql."""
    count, head = db(deployment, "SELECT count(*), coalesce(max(position), 0) FROM system.events").split("|")
    return int(count), int(head)


def table_exists(deployment, name):
    return db(deployment, f"SELECT to_regclass('public.\"{name}\"') IS NOT NULL") == "t"


def create_table(server, name, columns, **extra):
    return call(server, "POST", "/api/database/tables", json={"tableName": name, "columns": columns, **extra})


def create_ok(server, name, columns, **extra):
    r = create_table(server, name, columns, **extra)
    assert r.status_code == 201, (r.status_code, r.text)
    return r.json()


def list_tables(server):
    r = call(server, "GET", "/api/database/tables")
    assert r.status_code == 200, r.text
    return r.json()


def get_schema(server, name):
    r = call(server, "GET", f"/api/database/tables/{name}/schema")
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()


def columns_of(server, name):
    """{columnName: column} of the table's schema."""
    return {c["columnName"]: c for c in get_schema(server, name)["columns"]}


def alter(server, name, body):
    return call(server, "PATCH", f"/api/database/tables/{name}/schema", json=body)


def alter_ok(server, name, body):
    r = alter(server, name, body)
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()


def sql(server, query, params=None, unrestricted=False, multiple=None, key="admin"):
    body = {"query": query}
    if params is not None:
        body["params"] = params
    if multiple is not None:
        body["allowMultipleStatements"] = multiple
    return call(server, "POST", RAWSQL_UNRESTRICTED if unrestricted else RAWSQL, key=key, json=body)


def sql_ok(server, query, params=None, unrestricted=False, multiple=None):
    r = sql(server, query, params=params, unrestricted=unrestricted, multiple=multiple)
    assert r.status_code == 200, (query, r.status_code, r.text)
    body = r.json()
    assert set(body) >= {"rows", "rowCount", "fields"}, body
    assert isinstance(body["rows"], list) and isinstance(body["rowCount"], int), body
    return body


def field_names(body):
    return [f["name"] for f in body["fields"]]


def stream_events(server, stream):
    return server.all_events(stream=stream)


def sql_events(server, query):
    """The RawSQLExecuted events whose query is exactly `query`."""
    return [e for e in server.all_events(category="sql") if e["type"] == "RawSQLExecuted" and e["data"].get("query") == query]


def sign_up_user(server):
    r = call(server, "POST", "/api/auth/users", key=None, params={"client_type": "mobile"},
             json={"email": f"db-{uuid.uuid4().hex[:12]}@example.com", "password": PASSWORD})
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()


@pytest.fixture(scope="module")
def user(server):
    return sign_up_user(server)


@pytest.fixture(scope="module")
def witness(server, deployment):
    """A table the refused requests would write to (or drop) if they ran: it must stay there, empty."""
    name = fresh("witness")
    create_ok(server, name, [{"columnName": "note", "type": "string"}])
    assert db(deployment, f'SELECT count(*) FROM public."{name}"') == "0"
    return name


def witness_untouched(deployment, witness):
    assert table_exists(deployment, witness), f"{witness} was dropped"
    assert db(deployment, f'SELECT count(*) FROM public."{witness}"') == "0", f"{witness} was written to"


def products_table(server, name=None, rls=None):
    """An API-made table {name text unique, qty integer}."""
    name = name or fresh("products")
    extra = {} if rls is None else {"rlsEnabled": rls}
    create_ok(server, name, [{"columnName": "name", "type": "string", "isUnique": True, "isNullable": False},
                             {"columnName": "qty", "type": "integer"}], **extra)
    return name


# --------------------------------------------------------------------------- access


ADMIN_ROUTES = [
    ("GET", "/api/database/tables", None),
    ("POST", "/api/database/tables", {"tableName": "made_by_intruder", "columns": [{"columnName": "a", "type": "string"}]}),
    ("GET", "/api/database/tables/{w}/schema", None),
    ("PATCH", "/api/database/tables/{w}/schema", {"addColumns": [{"columnName": "intruder", "type": "string"}]}),
    ("DELETE", "/api/database/tables/{w}", None),
    ("POST", RAWSQL, {"query": "INSERT INTO public.\"{w}\" (note) VALUES ('intruder')"}),
    ("POST", RAWSQL_UNRESTRICTED, {"query": "INSERT INTO public.\"{w}\" (note) VALUES ('intruder')"}),
]


@pytest.mark.parametrize("method,path,body", ADMIN_ROUTES, ids=[f"{m} {p}" for m, p, _ in ADMIN_ROUTES])
def test_database_routes_require_the_admin(server, deployment, user, witness, method, path, body):
    path = path.replace("{w}", witness)
    kw = {"json": json.loads(json.dumps(body).replace("{w}", witness))} if body is not None else {}
    before = log_state(deployment)
    assert_error(call(server, method, path, key=None, **kw), 401, "AUTH_INVALID_CREDENTIALS")
    assert_error(call(server, method, path, key=user["accessToken"], **kw), 403, "FORBIDDEN")
    witness_untouched(deployment, witness)
    assert "intruder" not in columns_of(server, witness)
    assert not table_exists(deployment, "made_by_intruder")
    assert log_state(deployment) == before


# --------------------------------------------------------------------------- create


def test_create_table_answer_and_described_schema(server, deployment):
    name = fresh("people")
    columns = [
        {"columnName": "name", "type": "string", "isNullable": False},
        {"columnName": "born", "type": "date"},
        {"columnName": "seen_at", "type": "datetime"},
        {"columnName": "age", "type": "integer"},
        {"columnName": "score", "type": "float"},
        {"columnName": "active", "type": "boolean"},
        {"columnName": "ref", "type": "uuid", "isUnique": True},
        {"columnName": "extra", "type": "json"},
    ]
    r = create_table(server, name, columns)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["message"] == "Table created successfully", body
    assert body["tableName"] == name
    assert [c["columnName"] for c in body["columns"]] == [c["columnName"] for c in columns], body
    assert body["autoFields"] == AUTO_FIELDS, body
    assert isinstance(body.get("nextActions"), str) and body["nextActions"], body

    schema = get_schema(server, name)
    assert schema["tableName"] == name
    assert schema["rlsEnabled"] is True, schema
    cols = {c["columnName"]: c for c in schema["columns"]}
    assert set(cols) == {c["columnName"] for c in columns} | set(AUTO_FIELDS), cols
    expected_types = {"name": "text", "born": "date", "seen_at": "timestamp with time zone", "age": "integer",
                      "score": "double precision", "active": "boolean", "ref": "uuid", "extra": "jsonb",
                      "id": "uuid", "created_at": "timestamp with time zone", "updated_at": "timestamp with time zone"}
    assert {k: c["type"] for k, c in cols.items()} == expected_types
    for c in cols.values():
        assert set(c) >= {"columnName", "type", "isNullable", "isUnique", "isPrimaryKey"}, c
        assert c.get("foreignKey") is None, c
    assert cols["id"]["isPrimaryKey"] is True and cols["id"]["isNullable"] is False
    assert cols["id"]["defaultValue"] == "gen_random_uuid()", cols["id"]
    for auto in ("created_at", "updated_at"):
        assert cols[auto]["isNullable"] is False, cols[auto]
        assert cols[auto]["defaultValue"] == "now()", cols[auto]
        assert cols[auto]["isPrimaryKey"] is False
    assert cols["name"]["isNullable"] is False
    assert cols["age"]["isNullable"] is True
    assert cols["ref"]["isUnique"] is True and cols["age"]["isUnique"] is False
    assert [k for k, c in cols.items() if c["isPrimaryKey"]] == ["id"]
    # RLS is really on in PostgreSQL, and the table is in the list
    assert db(deployment, f"SELECT relrowsecurity FROM pg_class WHERE oid = 'public.\"{name}\"'::regclass") == "t"
    assert name in list_tables(server)


def test_schema_lists_default_value_even_when_there_is_none(server):
    name = fresh("nodefault")
    create_ok(server, name, [{"columnName": "plain", "type": "string"}])
    cols = columns_of(server, name)
    assert "defaultValue" in cols["plain"] and cols["plain"]["defaultValue"] is None, cols["plain"]
    assert cols["id"]["defaultValue"] == "gen_random_uuid()", cols["id"]


def test_create_table_with_postgres_type_names(server):
    name = fresh("typed")
    create_ok(server, name, [
        {"columnName": "price", "type": "numeric(10,2)"},
        {"columnName": "tags", "type": "text[]"},
        {"columnName": "big", "type": "bigint"},
        {"columnName": "code", "type": "varchar(20)"},
        {"columnName": "span", "type": "interval"},
    ])
    # the types are real: numeric(10,2) rounds to 2 places, a value too long for varchar(20) is refused
    body = sql_ok(server, f"INSERT INTO {name} (price, tags) VALUES (12.345, ARRAY['a','b']) RETURNING price, tags")
    assert body["rows"] == [{"price": 12.35, "tags": ["a", "b"]}], body
    assert_error(sql(server, f"INSERT INTO {name} (code) VALUES ('{'x' * 21}')"), 400)
    types = {k: c["type"] for k, c in columns_of(server, name).items()}
    assert types["price"] == "numeric(10,2)", types
    assert types["tags"] == "text[]", types
    assert types["big"] == "bigint", types
    assert types["code"] == "character varying(20)", types
    assert types["span"] == "interval", types


@pytest.mark.parametrize("type_", ["nosuchtype", "integer; drop table x", "text)", "", "strin g", "int4range)--"])
def test_unknown_column_type_is_invalid_input(server, deployment, type_):
    name = fresh("badtype")
    before = log_state(deployment)
    assert_error(create_table(server, name, [{"columnName": "a", "type": type_}]), 400, "INVALID_INPUT")
    assert not table_exists(deployment, name)
    assert log_state(deployment) == before


BAD_NAMES = ["1x", "a-b", 'x"; drop table y; --', "pg_x", "PG_catalogish", "a" * 64, "", "has space", "dollar$",
             "naïve", "semi;colon"]


@pytest.mark.parametrize("bad", BAD_NAMES, ids=[repr(n)[:20] for n in BAD_NAMES])
def test_bad_table_names_are_refused(server, deployment, witness, bad):
    before = log_state(deployment)
    tables = list_tables(server)
    assert_error(create_table(server, bad, [{"columnName": "a", "type": "string"}]), 400, "INVALID_INPUT")
    assert list_tables(server) == tables
    witness_untouched(deployment, witness)
    assert log_state(deployment) == before


@pytest.mark.parametrize("bad", BAD_NAMES, ids=[repr(n)[:20] for n in BAD_NAMES])
def test_bad_column_names_are_refused(server, deployment, bad):
    name = fresh("badcol")
    before = log_state(deployment)
    assert_error(create_table(server, name, [{"columnName": "ok", "type": "string"}, {"columnName": bad, "type": "string"}]),
                 400, "INVALID_INPUT")
    assert not table_exists(deployment, name)
    assert log_state(deployment) == before


def test_injection_in_table_name_drops_nothing(server, deployment):
    victim = fresh("victim")
    create_ok(server, victim, [{"columnName": "a", "type": "string"}])
    for bad in [f'x"; drop table {victim}; --', f"x; drop table {victim}", f"{victim} cascade"]:
        assert_error(create_table(server, bad, [{"columnName": "a", "type": "string"}]), 400, "INVALID_INPUT")
        assert_error(call(server, "DELETE", f"/api/database/tables/{requests.utils.quote(bad, safe='')}"), 400,
                     "INVALID_INPUT")
    assert table_exists(deployment, victim)


def test_names_of_63_characters_are_accepted(server, deployment):
    name = ("n" + secrets.token_hex(4) + "_" * 62)[:63]
    column = "c" * 63
    create_ok(server, name, [{"columnName": column, "type": "string"}])
    assert table_exists(deployment, name)
    assert column in columns_of(server, name)
    assert name in list_tables(server)


def test_duplicate_column_names_are_refused(server, deployment):
    name = fresh("dupcol")
    before = log_state(deployment)
    r = create_table(server, name, [{"columnName": "a", "type": "string"}, {"columnName": "a", "type": "integer"}])
    assert_error(r, 400, "INVALID_INPUT")
    assert not table_exists(deployment, name)
    assert log_state(deployment) == before


def test_existing_table_is_a_conflict(server, deployment):
    name = fresh("twice")
    create_ok(server, name, [{"columnName": "a", "type": "string"}])
    sql_ok(server, f"INSERT INTO {name} (a) VALUES ('kept')")
    schema = get_schema(server, name)
    before = log_state(deployment)
    r = create_table(server, name, [{"columnName": "b", "type": "integer"}])
    assert_error(r, 409, "DATABASE_DUPLICATE")
    assert log_state(deployment) == before
    assert get_schema(server, name) == schema
    assert sql_ok(server, f"SELECT a FROM {name}")["rows"] == [{"a": "kept"}]


def test_create_table_body_is_validated(server, deployment):
    before = log_state(deployment)
    for body in [{}, {"tableName": fresh("nocols")}, {"tableName": fresh("x"), "columns": "a"},
                 {"tableName": fresh("x"), "columns": [{"columnName": "a"}]},
                 {"tableName": 5, "columns": []}, {"tableName": fresh("x"), "columns": [{"type": "string"}]}]:
        r = call(server, "POST", "/api/database/tables", json=body)
        assert_error(r, 400, "INVALID_INPUT")
    r = call(server, "POST", "/api/database/tables", data="{not json", headers={"Content-Type": "application/json"})
    assert_error(r, 400, "INVALID_INPUT")
    assert log_state(deployment) == before


def test_rls_can_be_disabled(server, deployment):
    on, off = fresh("rls_on"), fresh("rls_off")
    create_ok(server, on, [{"columnName": "a", "type": "string"}], rlsEnabled=True)
    create_ok(server, off, [{"columnName": "a", "type": "string"}], rlsEnabled=False)
    assert get_schema(server, on)["rlsEnabled"] is True
    assert get_schema(server, off)["rlsEnabled"] is False
    assert db(deployment, f"SELECT relrowsecurity FROM pg_class WHERE oid = 'public.\"{off}\"'::regclass") == "f"
    # RLS on, but the restricted route (project_admin) still reads and writes the table
    sql_ok(server, f"INSERT INTO {on} (a) VALUES ('one')")
    assert sql_ok(server, f"SELECT a FROM {on}")["rows"] == [{"a": "one"}]


def test_user_primary_key_replaces_id_as_the_key(server, deployment):
    name = fresh("coded")
    create_ok(server, name, [{"columnName": "code", "type": "string", "isPrimaryKey": True},
                             {"columnName": "label", "type": "string"}])
    cols = columns_of(server, name)
    assert cols["code"]["isPrimaryKey"] is True, cols
    assert [k for k, c in cols.items() if c["isPrimaryKey"]] == ["code"], cols
    sql_ok(server, f"INSERT INTO {name} (code, label) VALUES ('A', 'first')")
    assert_error(sql(server, f"INSERT INTO {name} (code, label) VALUES ('A', 'again')"), 409, "DATABASE_DUPLICATE")
    inserted = [e for e in stream_events(server, f"table-{name}") if e["type"] == "RecordsInserted"]
    assert len(inserted) == 1, inserted
    assert inserted[0]["data"]["primaryKey"] == ["code"], inserted[0]["data"]


def test_default_values(server, deployment):
    name = fresh("defaults")
    injection = "x'); drop table " + name + "; --"
    create_ok(server, name, [
        {"columnName": "label", "type": "string", "defaultValue": "hello"},
        {"columnName": "nasty", "type": "string", "defaultValue": injection},
        {"columnName": "quoted", "type": "string", "defaultValue": "it's \"quoted\""},
        {"columnName": "n", "type": "integer", "defaultValue": "42"},
        {"columnName": "flag", "type": "boolean", "defaultValue": "true"},
        {"columnName": "off", "type": "boolean", "defaultValue": "false"},
        {"columnName": "nothing", "type": "string", "defaultValue": "null"},
        {"columnName": "token", "type": "uuid", "defaultValue": "gen_random_uuid()"},
        {"columnName": "at", "type": "datetime", "defaultValue": "now()"},
        {"columnName": "day", "type": "date", "defaultValue": "current_date"},
        {"columnName": "owner", "type": "uuid", "defaultValue": "auth.uid()"},
        {"columnName": "looks_like_call", "type": "string", "defaultValue": "pg_sleep(10)"},
    ])
    assert table_exists(deployment, name)
    cols = columns_of(server, name)
    assert cols["token"]["defaultValue"] == "gen_random_uuid()", cols["token"]
    assert cols["at"]["defaultValue"] == "now()", cols["at"]
    row = sql_ok(server, f"INSERT INTO {name} DEFAULT VALUES RETURNING *")["rows"][0]
    assert row["label"] == "hello"
    assert row["nasty"] == injection
    assert row["quoted"] == "it's \"quoted\""
    assert row["n"] == 42
    assert row["flag"] is True and row["off"] is False
    assert row["nothing"] is None
    assert UUID_RE.match(row["token"]), row
    assert ISO_TS.match(row["at"]), row
    assert re.match(r"^\d{4}-\d\d-\d\d$", row["day"]), row
    assert row["owner"] is None, row  # the admin key has no user id
    assert row["looks_like_call"] == "pg_sleep(10)", row
    assert UUID_RE.match(row["id"]), row
    assert table_exists(deployment, name)
    # a literal that does not fit the type is refused, not a 500
    r = create_table(server, fresh("baddefault"), [{"columnName": "n", "type": "integer", "defaultValue": "abc"}])
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert_error(r, r.status_code)


def test_updated_at_is_maintained_on_update(server):
    name = products_table(server)
    first = sql_ok(server, f"INSERT INTO {name} (name, qty) VALUES ('w', 1) RETURNING id, created_at, updated_at")["rows"][0]
    assert first["created_at"] == first["updated_at"], first
    second = sql_ok(server, f"UPDATE {name} SET qty = 2 WHERE id = $1 RETURNING created_at, updated_at",
                    params=[first["id"]])["rows"][0]
    assert second["created_at"] == first["created_at"], (first, second)
    assert second["updated_at"] > first["updated_at"], (first, second)
    # even when the statement tries to set it back
    third = sql_ok(server, f"UPDATE {name} SET qty = 3, updated_at = '2000-01-01' WHERE id = $1 RETURNING updated_at",
                   params=[first["id"]])["rows"][0]
    assert not third["updated_at"].startswith("2000-"), third


def test_foreign_keys(server, deployment):
    parent = fresh("parent")
    child = fresh("child")
    create_ok(server, parent, [{"columnName": "title", "type": "string"}])
    create_ok(server, child, [
        {"columnName": "parent_id", "type": "uuid",
         "foreignKey": {"referenceTable": parent, "referenceColumn": "id", "onDelete": "CASCADE", "onUpdate": "CASCADE"}},
        {"columnName": "other_id", "type": "uuid"},
        {"columnName": "note", "type": "string"},
    ], foreignKeys=[{"columnName": "other_id", "referenceTable": parent, "referenceColumn": "id", "onDelete": "SET NULL"}])
    cols = columns_of(server, child)
    fk = cols["parent_id"].get("foreignKey")
    assert fk and fk["referenceTable"] == parent and fk["referenceColumn"] == "id", cols["parent_id"]
    assert fk.get("onDelete") == "CASCADE", fk
    fk2 = cols["other_id"].get("foreignKey")
    assert fk2 and fk2["referenceTable"] == parent and fk2["referenceColumn"] == "id", cols["other_id"]
    assert fk2.get("onDelete") == "SET NULL", fk2
    assert cols["note"].get("foreignKey") is None

    p1, p2 = (r["id"] for r in sql_ok(server, f"INSERT INTO {parent} (title) VALUES ('a'), ('b') RETURNING id")["rows"])
    sql_ok(server, f"INSERT INTO {child} (parent_id, other_id, note) VALUES ($1, $2, 'c1')", params=[p1, p2])
    sql_ok(server, f"INSERT INTO {child} (parent_id, other_id, note) VALUES ($1, $1, 'c2')", params=[p2])
    # a missing parent is refused by PostgreSQL: 400
    r = sql(server, f"INSERT INTO {child} (parent_id) VALUES ($1)", params=[str(uuid.uuid4())])
    assert_error(r, 400)
    # ON DELETE SET NULL on other_id, CASCADE on parent_id
    sql_ok(server, f"DELETE FROM {parent} WHERE id = $1", params=[p2])
    rows = sql_ok(server, f"SELECT note, parent_id, other_id FROM {child} ORDER BY note")["rows"]
    assert rows == [{"note": "c1", "parent_id": p1, "other_id": None}], rows


@pytest.mark.parametrize("action", ["EXPLODE", "CASCADE; drop table x", "", "cascade cascade"])
def test_bad_referential_action_is_refused(server, deployment, action):
    parent = fresh("p")
    create_ok(server, parent, [{"columnName": "a", "type": "string"}])
    name = fresh("badaction")
    before = log_state(deployment)
    r = create_table(server, name, [{"columnName": "p", "type": "uuid", "foreignKey": {
        "referenceTable": parent, "referenceColumn": "id", "onDelete": action}}])
    assert_error(r, 400, "INVALID_INPUT")
    r = create_table(server, name, [{"columnName": "p", "type": "uuid"}], foreignKeys=[
        {"columnName": "p", "referenceTable": parent, "referenceColumn": "id", "onUpdate": action}])
    assert_error(r, 400, "INVALID_INPUT")
    assert not table_exists(deployment, name)
    assert log_state(deployment) == before


@pytest.mark.parametrize("target", [("no_such_table_zz", "id"), ("PARENT", "no_such_column")])
def test_foreign_key_to_missing_target_is_a_client_error(server, deployment, target):
    parent = fresh("realparent")
    create_ok(server, parent, [{"columnName": "a", "type": "string"}])
    table, column = target
    table = parent if table == "PARENT" else table
    name = fresh("orphan")
    before = log_state(deployment)
    r = create_table(server, name, [{"columnName": "p", "type": "uuid",
                                     "foreignKey": {"referenceTable": table, "referenceColumn": column}}])
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert_error(r, r.status_code)
    assert not table_exists(deployment, name)
    assert log_state(deployment) == before


# --------------------------------------------------------------------------- list, describe


def test_list_tables_is_sorted_and_public_only(server, deployment):
    names = ["zz_" + secrets.token_hex(3), "aa_" + secrets.token_hex(3), "Mixed_" + secrets.token_hex(3),
             "mm_" + secrets.token_hex(3)]
    for n in names:
        create_ok(server, n, [{"columnName": "a", "type": "string"}])
    tables = list_tables(server)
    assert isinstance(tables, list) and all(isinstance(t, str) for t in tables), tables
    assert set(names) <= set(tables), tables
    assert tables == sorted(tables), tables
    assert len(tables) == len(set(tables)), tables
    public = db(deployment, "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                            "WHERE n.nspname = 'public' AND relkind IN ('r','p')").split("\n")
    assert set(public) <= set(tables)
    for private in ("events", "checkpoints", "sessions", "identities", "api_keys"):
        assert private not in tables, tables


@pytest.mark.parametrize("name", ["no_such_table_here", "users", "events", "sessions"])
def test_schema_of_unknown_table_is_404(server, name):
    assert_error(call(server, "GET", f"/api/database/tables/{name}/schema"), 404, "NOT_FOUND")


# --------------------------------------------------------------------------- alter


def test_alter_columns(server, deployment):
    name = fresh("alter")
    create_ok(server, name, [{"columnName": "a", "type": "string"}, {"columnName": "b", "type": "string"},
                             {"columnName": "c", "type": "string", "defaultValue": "old"}])
    sql_ok(server, f"INSERT INTO {name} (a, b) VALUES ('row1', 'bee')")
    body = alter_ok(server, name, {
        "addColumns": [{"columnName": "n", "type": "integer", "defaultValue": "7", "isNullable": False},
                       {"columnName": "labels", "type": "text[]"}],
        "dropColumns": ["b"],
        "updateColumns": [{"columnName": "a", "newColumnName": "title"},
                          {"columnName": "c", "dropDefault": True}],
    })
    assert body["tableName"] == name, body
    assert isinstance(body.get("message"), str) and body["message"], body
    cols = columns_of(server, name)
    assert set(cols) == {"id", "title", "c", "n", "labels", "created_at", "updated_at"}, cols
    assert cols["n"]["type"] == "integer" and cols["n"]["isNullable"] is False, cols["n"]
    assert cols["labels"]["type"] == "text[]", cols["labels"]
    assert cols["c"].get("defaultValue") is None, cols["c"]  # (absent or null: see the test on defaultValue)
    # the existing row got the new column's default; the renamed column kept its value
    assert sql_ok(server, f"SELECT title, n, c FROM {name}")["rows"] == [{"title": "row1", "n": 7, "c": "old"}]

    alter_ok(server, name, {"updateColumns": [{"columnName": "title", "defaultValue": "fresh'); drop table x; --"}]})
    row = sql_ok(server, f"INSERT INTO {name} DEFAULT VALUES RETURNING title, n, c")["rows"][0]
    assert row == {"title": "fresh'); drop table x; --", "n": 7, "c": None}, row


def test_alter_foreign_keys(server, deployment):
    parent = fresh("fkparent")
    child = fresh("fkchild")
    create_ok(server, parent, [{"columnName": "a", "type": "string"}])
    create_ok(server, child, [{"columnName": "p", "type": "uuid"}])
    alter_ok(server, child, {"addForeignKeys": [{"columnName": "p", "referenceTable": parent, "referenceColumn": "id",
                                                 "onDelete": "CASCADE"}]})
    fk = columns_of(server, child)["p"].get("foreignKey")
    assert fk and fk["referenceTable"] == parent and fk["referenceColumn"] == "id" and fk.get("onDelete") == "CASCADE", fk
    assert_error(sql(server, f"INSERT INTO {child} (p) VALUES ($1)", params=[str(uuid.uuid4())]), 400)

    constraint = db(deployment, f"SELECT conname FROM pg_constraint WHERE conrelid = 'public.\"{child}\"'::regclass "
                                "AND contype = 'f'")
    assert constraint, "no foreign key constraint in PostgreSQL"
    alter_ok(server, child, {"dropForeignKeys": [constraint]})
    assert columns_of(server, child)["p"].get("foreignKey") is None
    sql_ok(server, f"INSERT INTO {child} (p) VALUES ($1)", params=[str(uuid.uuid4())])

    # a column added with its own foreign key
    alter_ok(server, child, {"addColumns": [{"columnName": "q", "type": "uuid", "foreignKey": {
        "referenceTable": parent, "referenceColumn": "id", "onDelete": "SET NULL"}}]})
    fk = columns_of(server, child)["q"].get("foreignKey")
    assert fk and fk["referenceTable"] == parent and fk.get("onDelete") == "SET NULL", fk


def test_rename_table(server, deployment):
    old, new = fresh("before"), fresh("after")
    create_ok(server, old, [{"columnName": "a", "type": "string"}])
    sql_ok(server, f"INSERT INTO {old} (a) VALUES ('kept')")
    body = alter_ok(server, old, {"renameTable": {"newTableName": new}})
    assert body["tableName"] == new, body
    assert_error(call(server, "GET", f"/api/database/tables/{old}/schema"), 404, "NOT_FOUND")
    assert get_schema(server, new)["tableName"] == new
    tables = list_tables(server)
    assert new in tables and old not in tables
    assert sql_ok(server, f"SELECT a FROM {new}")["rows"] == [{"a": "kept"}]
    # the renamed table still publishes its changes, under its new name
    sql_ok(server, f"INSERT INTO {new} (a) VALUES ('after rename')")
    inserted = [e for e in stream_events(server, f"table-{new}") if e["type"] == "RecordsInserted"]
    assert len(inserted) == 1 and inserted[0]["data"]["records"][0]["a"] == "after rename", inserted


def test_rename_table_onto_an_existing_one_is_a_conflict(server, deployment):
    a, b = fresh("ra"), fresh("rb")
    create_ok(server, a, [{"columnName": "x", "type": "string"}])
    create_ok(server, b, [{"columnName": "y", "type": "string"}])
    before = log_state(deployment)
    assert_error(alter(server, a, {"renameTable": {"newTableName": b}}), 409, "DATABASE_DUPLICATE")
    assert "x" in columns_of(server, a) and "y" in columns_of(server, b)
    assert log_state(deployment) == before


ALTER_ERRORS = [
    ("empty body", {}),
    ("empty lists", {"addColumns": [], "dropColumns": [], "updateColumns": []}),
    ("drop unknown column", {"dropColumns": ["nope"]}),
    ("drop id", {"dropColumns": ["id"]}),
    ("drop created_at", {"dropColumns": ["created_at"]}),
    ("drop updated_at", {"dropColumns": ["updated_at"]}),
    ("update unknown column", {"updateColumns": [{"columnName": "nope", "newColumnName": "yes"}]}),
    ("bad new column name", {"updateColumns": [{"columnName": "a", "newColumnName": "a-b"}]}),
    ("bad added column name", {"addColumns": [{"columnName": "1x", "type": "string"}]}),
    ("unknown added type", {"addColumns": [{"columnName": "z", "type": "nosuchtype"}]}),
    ("bad new table name", {"renameTable": {"newTableName": 'x"; drop table y; --'}}),
    ("pg_ new table name", {"renameTable": {"newTableName": "pg_mine"}}),
    ("bad drop fk name", {"dropForeignKeys": ["a b"]}),
    ("valid then invalid", {"addColumns": [{"columnName": "z", "type": "string"}], "dropColumns": ["nope"]}),
    ("not an object", ["dropColumns"]),
]


@pytest.mark.parametrize("label,body", ALTER_ERRORS, ids=[label for label, _ in ALTER_ERRORS])
def test_alter_refusals_change_nothing(server, deployment, label, body):
    name = fresh("altbad")
    create_ok(server, name, [{"columnName": "a", "type": "string"}])
    schema = get_schema(server, name)
    before = log_state(deployment)
    assert_error(alter(server, name, body), 400, "INVALID_INPUT")
    assert get_schema(server, name) == schema
    assert log_state(deployment) == before


def test_alter_unknown_table_is_404(server, deployment):
    before = log_state(deployment)
    assert_error(alter(server, "no_such_table_alter", {"dropColumns": ["a"]}), 404, "NOT_FOUND")
    assert log_state(deployment) == before


# --------------------------------------------------------------------------- delete


def test_delete_table(server, deployment):
    name = fresh("doomed")
    create_ok(server, name, [{"columnName": "a", "type": "string"}])
    r = call(server, "DELETE", f"/api/database/tables/{name}")
    assert r.status_code == 200, r.text
    assert r.json() == {"message": "Table deleted successfully", "tableName": name}
    assert not table_exists(deployment, name)
    assert name not in list_tables(server)
    assert_error(call(server, "GET", f"/api/database/tables/{name}/schema"), 404, "NOT_FOUND")
    assert_error(call(server, "DELETE", f"/api/database/tables/{name}"), 404, "NOT_FOUND")


@pytest.mark.parametrize("name", ["no_such_table_del", "users", "events"])
def test_delete_unknown_table_is_404(server, deployment, name):
    before = log_state(deployment)
    users = db(deployment, "SELECT count(*) FROM auth.users")
    assert_error(call(server, "DELETE", f"/api/database/tables/{name}"), 404, "NOT_FOUND")
    assert db(deployment, "SELECT to_regclass('auth.users') IS NOT NULL AND to_regclass('system.events') IS NOT NULL") == "t"
    assert db(deployment, "SELECT count(*) FROM auth.users") == users
    assert log_state(deployment) == before


# --------------------------------------------------------------------------- schema events


def test_ddl_events(server, deployment):
    name = fresh("evented")
    renamed = fresh("evented_new")
    columns = [{"columnName": "title", "type": "string", "isNullable": False}, {"columnName": "n", "type": "integer"}]
    create_ok(server, name, columns)
    alter_ok(server, name, {"addColumns": [{"columnName": "extra", "type": "boolean"}]})
    alter_ok(server, name, {"renameTable": {"newTableName": renamed}})
    r = call(server, "DELETE", f"/api/database/tables/{renamed}")
    assert r.status_code == 200, r.text

    schema_events = server.all_events(category="schema")
    assert all(e["streamId"].startswith("schema-") for e in schema_events), schema_events
    mine = [e for e in schema_events if e["streamId"] == f"schema-{name}"]
    later = [e for e in schema_events if e["streamId"] == f"schema-{renamed}"]
    assert [e["type"] for e in mine] == ["TableCreated", "TableAltered", "TableAltered"], mine
    assert [e["type"] for e in later] == ["TableDropped"], later
    assert [e["streamVersion"] for e in mine] == sorted(e["streamVersion"] for e in mine)
    created = mine[0]["data"]
    assert created["table"] == name, created
    assert [c["columnName"] for c in created["columns"]] == ["title", "n"], created
    assert [c["type"] for c in created["columns"]] == ["string", "integer"], created
    assert isinstance(created.get("sql"), str) and "CREATE TABLE" in created["sql"].upper(), created
    assert name in created["sql"], created
    assert "ADD COLUMN" in mine[1]["data"]["sql"].upper() and "extra" in mine[1]["data"]["sql"], mine[1]
    assert renamed in mine[2]["data"]["sql"], mine[2]
    assert later[0]["data"]["table"] == renamed, later
    for e in mine + later:
        assert e["metadata"]["actor"]["type"] == "admin", e
    # the same events read by stream
    assert [e["type"] for e in stream_events(server, f"schema-{name}")] == ["TableCreated", "TableAltered", "TableAltered"]


def test_failed_ddl_appends_no_schema_event(server, deployment):
    name = fresh("noevent")
    before = len(server.all_events(category="schema"))
    assert create_table(server, name, [{"columnName": "a", "type": "nosuchtype"}]).status_code == 400
    assert create_table(server, name, [{"columnName": "p", "type": "uuid",
                                        "foreignKey": {"referenceTable": "missing_zz", "referenceColumn": "id"}}]).status_code in (400, 404)
    assert not stream_events(server, f"schema-{name}")
    assert len(server.all_events(category="schema")) == before


# --------------------------------------------------------------------------- raw SQL: results


def test_select_rows_and_fields_in_order(server):
    body = sql_ok(server, "SELECT 1 AS zeta, 'x' AS alpha, NULL::int AS mid, true AS flag, "
                          "'{\"k\": [1, 2]}'::jsonb AS doc, 2.5::float8 AS num, ARRAY[1,2] AS arr")
    assert body["rows"] == [{"zeta": 1, "alpha": "x", "mid": None, "flag": True, "doc": {"k": [1, 2]}, "num": 2.5,
                             "arr": [1, 2]}], body
    assert body["rowCount"] == 1
    assert field_names(body) == ["zeta", "alpha", "mid", "flag", "doc", "num", "arr"], body


@pytest.mark.parametrize("column", ["r", "f", "k", "insforge_raw"])
def test_any_column_name_comes_back_as_selected(server, column):
    """Column names are the caller's: whatever the server wraps the query in must not capture them."""
    body = sql_ok(server, f'SELECT 7 AS "{column}", 8 AS other')
    assert body["rows"] == [{column: 7, "other": 8}], body
    assert field_names(body) == [column, "other"], body
    name = fresh("cols")
    sql_ok(server, f'CREATE TABLE {name} ("{column}" int, other int)')
    sql_ok(server, f'INSERT INTO {name} VALUES (1, 2), (3, 4)')
    body = sql_ok(server, f"SELECT * FROM {name} ORDER BY other")
    assert body["rows"] == [{column: 1, "other": 2}, {column: 3, "other": 4}], body
    assert body["rowCount"] == 2


def test_select_many_rows(server):
    body = sql_ok(server, "SELECT g AS n, g * g AS sq FROM generate_series(1, 50) g ORDER BY g DESC")
    assert body["rowCount"] == 50
    assert body["rows"][0] == {"n": 50, "sq": 2500} and body["rows"][-1] == {"n": 1, "sq": 1}, body["rows"][:2]
    assert field_names(body) == ["n", "sq"]


def test_empty_select_still_names_its_fields(server):
    name = products_table(server)
    body = sql_ok(server, f"SELECT name, qty FROM {name} WHERE false")
    assert body["rows"] == [] and body["rowCount"] == 0, body
    assert field_names(body) == ["name", "qty"], body


def test_dml_results(server, deployment):
    name = products_table(server)
    body = sql_ok(server, f"INSERT INTO {name} (name, qty) VALUES ('a', 1), ('b', 2) RETURNING name, qty")
    assert body["rows"] == [{"name": "a", "qty": 1}, {"name": "b", "qty": 2}], body
    assert body["rowCount"] == 2 and field_names(body) == ["name", "qty"]

    body = sql_ok(server, f"INSERT INTO {name} (name, qty) VALUES ('c', 3), ('d', 4), ('e', 5)")
    assert body["rows"] == [] and body["rowCount"] == 3, body
    body = sql_ok(server, f"UPDATE {name} SET qty = qty + 10 WHERE qty >= 3")
    assert body["rows"] == [] and body["rowCount"] == 3, body
    body = sql_ok(server, f"UPDATE {name} SET qty = 0 WHERE false")
    assert body["rows"] == [] and body["rowCount"] == 0, body
    body = sql_ok(server, f"DELETE FROM {name} WHERE name IN ('a', 'e')")
    assert body["rows"] == [] and body["rowCount"] == 2, body
    body = sql_ok(server, f"DELETE FROM {name} WHERE name = 'b' RETURNING qty")
    assert body["rows"] == [{"qty": 2}] and body["rowCount"] == 1, body
    assert db(deployment, f"SELECT string_agg(name || ':' || qty, ',' ORDER BY name) FROM {name}") == "c:13,d:14"

    other = fresh("ddl")
    body = sql_ok(server, f"CREATE TABLE {other} (x int)")
    assert body["rows"] == [] and body["rowCount"] == 0, body
    body = sql_ok(server, f"ALTER TABLE {other} ADD COLUMN y text")
    assert body["rows"] == [] and body["rowCount"] == 0, body
    assert table_exists(deployment, other)


def test_data_modifying_cte_returns_its_rows(server, deployment):
    name = products_table(server)
    body = sql_ok(server, f"WITH ins AS (INSERT INTO {name} (name, qty) VALUES ('cte', 9) RETURNING name, qty) "
                          "SELECT name, qty * 2 AS double FROM ins")
    assert body["rows"] == [{"name": "cte", "double": 18}], body
    assert db(deployment, f"SELECT qty FROM {name} WHERE name = 'cte'") == "9"


def test_values_table_and_show(server):
    name = products_table(server)
    sql_ok(server, f"INSERT INTO {name} (name, qty) VALUES ('v', 1)")
    body = sql_ok(server, "VALUES (1, 'one'), (2, 'two')")
    assert body["rowCount"] == 2 and [list(r.values()) for r in body["rows"]] == [[1, "one"], [2, "two"]], body
    body = sql_ok(server, f"TABLE {name}")
    assert body["rowCount"] == 1 and body["rows"][0]["name"] == "v", body
    body = sql_ok(server, "SHOW server_version_num")
    assert body["rowCount"] == 1 and list(body["rows"][0].values())[0].isdigit(), body
    body = sql_ok(server, "SHOW ALL")
    assert body["rowCount"] > 100, body


def test_params_are_bound_with_inferred_types(server):
    body = sql_ok(server, "SELECT $1::int + 1 AS n, $2::text AS s, $3::boolean AS b, $4::text IS NULL AS isnull, "
                          "($5::jsonb)->>'k' AS key, $6::float8 * 2 AS dbl, $7 AS plain",
                  params=[41, "hello", True, None, {"k": "v", "n": [1]}, 1.25, "untyped"])
    assert body["rows"] == [{"n": 42, "s": "hello", "b": True, "isnull": True, "key": "v", "dbl": 2.5, "plain": "untyped"}], body
    # values are data, never SQL
    evil = "'); DROP TABLE x; --"
    assert sql_ok(server, "SELECT $1::text AS s", params=[evil])["rows"] == [{"s": evil}]
    assert sql_ok(server, "SELECT $1::text AS s", params=["$2"])["rows"] == [{"s": "$2"}]


def test_params_in_writes(server, deployment):
    name = products_table(server)
    body = sql_ok(server, f"INSERT INTO {name} (name, qty) VALUES ($1, $2) RETURNING name, qty", params=["p'1", 7])
    assert body["rows"] == [{"name": "p'1", "qty": 7}], body
    body = sql_ok(server, f"UPDATE {name} SET qty = $1 WHERE name = $2", params=[8, "p'1"])
    assert body["rowCount"] == 1
    assert db(deployment, f"SELECT qty FROM {name}") == "8"


def test_params_mismatch_is_a_client_error(server):
    problems = []
    for query, params in [("SELECT $1::int AS a, $2::int AS b", [1]), ("SELECT $1::int AS a", ["not a number"]),
                          ("SELECT 1 AS a", [1, 2])]:
        r = sql(server, query, params=params)
        if not 400 <= r.status_code < 500:
            problems.append((query, params, r.status_code, r.text))
            continue
        assert_error(r, r.status_code)
    assert not problems, problems


def test_rawsql_body_is_validated(server, deployment):
    before = log_state(deployment)
    for body in [{}, {"query": 5}, {"query": "SELECT 1", "params": "x"}, {"query": "SELECT 1", "params": {"a": 1}},
                 {"query": None}]:
        assert_error(call(server, "POST", RAWSQL, json=body), 400, "INVALID_INPUT")
    assert_error(call(server, "POST", RAWSQL, data="{", headers={"Content-Type": "application/json"}), 400, "INVALID_INPUT")
    assert log_state(deployment) == before


def test_multiple_statements_when_allowed(server, deployment):
    name = products_table(server)
    query = (f"INSERT INTO {name} (name, qty) VALUES ('m1', 1); INSERT INTO {name} (name, qty) VALUES ('m;2', 2);\n"
             f"SELECT count(*)::int AS n FROM {name}")
    body = sql_ok(server, query, multiple=True)
    assert body["rows"] == [{"n": 2}], body
    assert db(deployment, f"SELECT string_agg(name, ',' ORDER BY name) FROM {name}") == "m1,m;2"
    # ; inside strings, quoted identifiers, dollar quotes and comments does not split
    for one in ["SELECT 'a;b' AS s", 'SELECT 1 AS "x;y"', "SELECT $q$a;b$q$ AS s", "SELECT 1 AS s -- ; drop\n",
                "SELECT /* ; */ 1 AS s", "SELECT 'it''s;' AS s"]:
        body = sql_ok(server, one)
        assert body["rowCount"] == 1, (one, body)
    # a failure in a later statement undoes the earlier ones
    r = sql(server, f"INSERT INTO {name} (name, qty) VALUES ('m3', 3); SELECT 1/0", multiple=True)
    assert_error(r, 400)
    assert db(deployment, f"SELECT count(*) FROM {name}") == "2"


def test_do_block_only_unrestricted(server, deployment):
    name = products_table(server)
    block = f"DO $$ BEGIN INSERT INTO public.{name} (name, qty) VALUES ('from do', 1); END $$"
    before = log_state(deployment)
    assert_error(sql(server, block), 400, "INVALID_INPUT")
    assert db(deployment, f"SELECT count(*) FROM {name}") == "0"
    assert log_state(deployment) == before
    sql_ok(server, block, unrestricted=True)
    assert db(deployment, f"SELECT name FROM {name}") == "from do"


# --------------------------------------------------------------------------- raw SQL: refused before running


REFUSED = [
    ("two statements", "INSERT INTO {w} (note) VALUES ('1'); INSERT INTO {w} (note) VALUES ('2')", False),
    ("two statements, second harmless", "INSERT INTO {w} (note) VALUES ('1'); SELECT 1", False),
    ("begin", "BEGIN", True),
    ("start transaction", "START TRANSACTION", True),
    ("commit", "COMMIT", True),
    ("rollback", "ROLLBACK", True),
    ("end", "END", True),
    ("savepoint", "SAVEPOINT s1", True),
    ("release", "RELEASE SAVEPOINT s1", True),
    ("copy", "COPY {w} FROM STDIN", True),
    ("copy to program", "COPY (SELECT 1) TO PROGRAM 'touch /tmp/pwned'", True),
    ("vacuum", "VACUUM {w}", True),
    ("lowercase vacuum", "vacuum", True),
    # the server's prepared statements live on the pooled connections: dropping them broke every later request there
    ("deallocate all", "DEALLOCATE ALL", True),
    ("deallocate one", "DEALLOCATE records_run_as", True),
    ("discard all", "DISCARD ALL", True),
    ("set role", "SET ROLE postgres", True),
    ("set local role", "SET LOCAL ROLE postgres", True),
    ("reset role", "RESET ROLE", True),
    ("set session authorization", "SET SESSION AUTHORIZATION postgres", True),
    ("commented begin", "/* hi */ begin", True),
    ("delete system.events", "DELETE FROM system.events", True),
    ("update auth.users", "UPDATE auth.users SET email = 'x@example.com'", True),
    ("drop auth.sessions", "DROP TABLE auth.sessions", True),
    ("truncate system.events", "TRUNCATE system.events", True),
    ("insert system.events", "INSERT INTO system.events (stream_id) VALUES ('x')", True),
    ("quoted schema", 'DELETE FROM "auth"."sessions"', True),
    ("upper-case schema", "DELETE FROM AUTH.sessions", True),
    ("create in system", "CREATE TABLE system.mine (x int)", True),
    ("alter auth table", "ALTER TABLE auth.users ADD COLUMN pwned text", True),
    ("create function in auth", "CREATE FUNCTION auth.pwned() RETURNS int LANGUAGE sql AS 'select 1'", True),
    ("unterminated quote", "SELECT 'abc", True),
    ("unterminated identifier", 'SELECT "abc', True),
    ("unterminated comment", "SELECT 1 /* never closed", True),
    ("unterminated dollar quote", "SELECT $x$abc", True),
    ("empty", "", True),
    ("blank", "   \n\t ", True),
    ("only a comment", "-- nothing here", True),
    ("only semicolons", ";;;", True),
]


@pytest.mark.parametrize("label,query,both", REFUSED, ids=[label for label, _, _ in REFUSED])
def test_refused_before_running(server, deployment, witness, label, query, both):
    query = query.replace("{w}", witness)
    before = log_state(deployment)
    routes = [False, True] if both else [False]
    for unrestricted in routes:
        r = sql(server, query, unrestricted=unrestricted)
        assert_error(r, 400, "INVALID_INPUT")
        assert "insforge_raw" not in r.text
    witness_untouched(deployment, witness)
    assert log_state(deployment) == before
    assert db(deployment, "SELECT to_regclass('auth.sessions') IS NOT NULL") == "t"


def test_restricted_route_cannot_read_private_schemas(server, deployment):
    before = log_state(deployment)
    for query in ["SELECT count(*) FROM system.events", "SELECT * FROM system.events LIMIT 1",
                  "SELECT email, password_hash FROM auth.users", "SELECT * FROM auth.sessions",
                  "SELECT * FROM system.api_keys"]:
        r = sql(server, query)
        assert_error(r, 403)
        assert log_state(deployment) == before, query
    # the unrestricted route reads them
    body = sql_ok(server, "SELECT count(*)::int AS n FROM system.events", unrestricted=True)
    assert body["rows"][0]["n"] >= before[0], body


def test_restricted_route_runs_as_project_admin(server):
    body = sql_ok(server, "SELECT current_user AS who, auth.role() AS claimed")
    assert body["rows"] == [{"who": "project_admin", "claimed": "project_admin"}], body
    body = sql_ok(server, "SELECT current_user AS who", unrestricted=True)
    assert body["rows"][0]["who"] != "project_admin", body


def test_restricted_route_cannot_switch_role_through_set_config(server, deployment):
    """set_config('role', ...) is SET ROLE under another name: it must not lift the restricted route out of
    project_admin (to read auth.users, say)."""
    before = log_state(deployment)
    r = sql(server, "SELECT set_config('role', session_user, true) AS was; SELECT current_user AS who, "
                    "(SELECT count(*) FROM auth.users) AS users", multiple=True)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert_error(r, r.status_code)
    assert log_state(deployment) == before


@pytest.fixture(scope="module")
def attack(deployment_factory):
    """A deployment of its own for attempts that may succeed (and so damage the read models): the module's
    deployment must still pass `events replay --verify` at the end."""
    d = deployment_factory()
    return d, d.server(name="attack")


INDIRECT_WRITES = [
    ("cte", "WITH d AS (DELETE FROM auth.sessions WHERE subject = '{uid}') SELECT 1 AS one", False),
    ("explain analyze", "EXPLAIN ANALYZE DELETE FROM auth.sessions WHERE subject = '{uid}'", False),
    ("search_path", "SET LOCAL search_path TO auth; DELETE FROM sessions WHERE subject = '{uid}'", True),
    ("select into", "SELECT * INTO system.copied_users FROM auth.users", False),
]


@pytest.mark.parametrize("label,query,multiple", INDIRECT_WRITES, ids=[x[0] for x in INDIRECT_WRITES])
def test_unrestricted_route_cannot_write_private_schemas_by_indirection(attack, label, query, multiple):
    """Writes to auth/system are refused even unrestricted, also when hidden in a CTE, under EXPLAIN ANALYZE,
    behind search_path, or as SELECT INTO; and a refusal is a 4xx, not a 500."""
    deployment, server = attack
    victim = sign_up_user(server)
    uid = victim["user"]["id"]
    sessions = f"SELECT count(*) FROM auth.sessions WHERE subject = '{uid}'"
    n = db(deployment, sessions)
    assert n != "0", "the victim has no session to protect"
    before = log_state(deployment)
    r = sql(server, query.replace("{uid}", uid), unrestricted=True, multiple=multiple or None)
    effects = []
    if db(deployment, sessions) != n:
        effects.append("deleted the victim's session")
    if db(deployment, "SELECT to_regclass('system.copied_users') IS NULL") != "t":
        effects.append("created system.copied_users")
        db(deployment, "DROP TABLE system.copied_users")
    if log_state(deployment) != before:
        effects.append(f"appended to the log ({before} -> {log_state(deployment)})")
    assert not effects and 400 <= r.status_code < 500, (r.status_code, r.text, effects)
    assert_error(r, r.status_code)


def test_session_settings_do_not_leak_into_later_requests(deployment_factory):
    """Each request is its own transaction: a SET in one must not change what later requests (on whichever
    pooled connection) see. Settings that redirect names or identities are refused outright; harmless ones
    are reset after the request. (Its own deployment: a leak would break every later test.)"""
    server = deployment_factory().server(name="leak")
    for sql in ["SET search_path TO pg_catalog", "SET insforge_e2e.marker = 'x'", "RESET search_path",
                "SELECT set_config('search_path', 'auth', false)"]:
        r = server.post("/api/database/advance/rawsql/unrestricted", json={"query": sql})
        assert_error(r, 400, "INVALID_INPUT")
    before = sql_ok(server, "SELECT current_setting('TimeZone') AS tz")["rows"][0]["tz"]
    zone = "Pacific/Chatham" if before != "Pacific/Chatham" else "Asia/Tokyo"
    sql_ok(server, f"SET TimeZone = '{zone}'")
    sql_ok(server, "SET statement_timeout = '1234ms'")
    seen = set()
    for _ in range(30):
        body = sql_ok(server, "SELECT current_setting('TimeZone') AS z, current_setting('statement_timeout') AS t, "
                              "current_setting('search_path') AS p")
        row = body["rows"][0]
        seen.add((row["z"], row["t"], row["p"]))
    assert all(z == before for z, _, _ in seen), seen
    assert all(t != "1234ms" for _, t, _ in seen), seen
    assert all("pg_catalog" != p for _, _, p in seen), seen


# --------------------------------------------------------------------------- raw SQL: errors


SQL_ERRORS = [
    ("syntax", "SELEC 1", 400, "DATABASE_ERROR", "syntax error"),
    ("syntax at end", "SELECT 1 FROM", 400, "DATABASE_ERROR", "syntax error"),
    ("unknown table", "SELECT * FROM no_such_table_q", 400, None, None),
    ("unknown column", "SELECT no_such_column_q FROM (SELECT 1 AS a) s", 400, "DATABASE_ERROR", "no_such_column_q"),
    ("unknown function", "SELECT no_such_function_q()", 400, "DATABASE_ERROR", "no_such_function_q"),
    ("bad value", "SELECT 'abc'::int", 400, None, None),
    ("bad uuid", "SELECT 'nope'::uuid", 400, None, None),
    ("division by zero", "SELECT 1/0", 400, "DATABASE_ERROR", "division by zero"),
    ("insert into unknown column", "INSERT INTO {p} (nope) VALUES (1)", 400, "DATABASE_ERROR", "nope"),
    ("not null", "INSERT INTO {p} (qty) VALUES (1)", 400, None, None),
    ("duplicate", "INSERT INTO {p} (name) VALUES ('dup')", 409, "DATABASE_DUPLICATE", None),
    ("existing table", "CREATE TABLE {p} (x int)", 409, "DATABASE_DUPLICATE", None),
    ("drop unknown", "DROP TABLE no_such_table_q", 400, None, None),
]


@pytest.fixture(scope="module")
def error_table(server):
    name = products_table(server)
    sql_ok(server, f"INSERT INTO {name} (name, qty) VALUES ('dup', 1)")
    return name


@pytest.mark.parametrize("label,query,status,code,fragment", SQL_ERRORS, ids=[x[0] for x in SQL_ERRORS])
@pytest.mark.parametrize("unrestricted", [False, True], ids=["restricted", "unrestricted"])
def test_sql_errors_are_client_errors(server, deployment, error_table, unrestricted, label, query, status, code,
                                      fragment):
    query = query.replace("{p}", error_table)
    before = log_state(deployment)
    r = sql(server, query, unrestricted=unrestricted)
    body = assert_error(r, status, code)
    if status == 400:
        assert body["error"] == "INVALID_INPUT" or body["error"].startswith("DATABASE_"), body
    if fragment:
        assert fragment in body["message"], body
    assert "insforge_raw" not in r.text, body
    assert log_state(deployment) == before
    assert db(deployment, f"SELECT count(*) FROM {error_table}") == "1"


def test_raise_exception_in_do_block_is_a_client_error(server, deployment):
    before = log_state(deployment)
    r = sql(server, "DO $$ BEGIN RAISE EXCEPTION 'custom failure %', 42; END $$", unrestricted=True)
    body = assert_error(r, 400)
    assert "custom failure 42" in body["message"], body
    assert log_state(deployment) == before


# --------------------------------------------------------------------------- raw SQL: the audit event


def test_rawsql_executed_event_without_parameter_values(server, deployment):
    name = products_table(server)
    secret = "sk_live_" + secrets.token_hex(16)
    query = f"INSERT INTO {name} (name, qty) SELECT $1, $2 WHERE $3::text LIKE 'sk_live_%' RETURNING id"
    body = sql_ok(server, query, params=["visible", 5, secret])
    assert body["rowCount"] == 1, body  # the secret was bound: the WHERE held
    unrestricted_query = f"SELECT count(*) AS n FROM {name} WHERE name <> $1"
    sql_ok(server, unrestricted_query, params=[secret], unrestricted=True)

    events = sql_events(server, query)
    assert len(events) == 1, events
    e = events[0]
    assert SQL_STREAM.match(e["streamId"]), e["streamId"]
    assert e["data"]["parameterCount"] == 3, e["data"]
    assert e["metadata"]["actor"]["type"] == "admin", e["metadata"]
    other = sql_events(server, unrestricted_query)
    assert len(other) == 1 and other[0]["data"]["parameterCount"] == 1, other
    assert other[0]["streamId"] != e["streamId"]

    # the parameter value is nowhere in the log: not through the API, not in the export, not in the table
    assert secret not in json.dumps(server.all_events())
    assert secret not in server.get("/api/events/export").text
    assert db(deployment, f"SELECT count(*) FROM system.events WHERE data::text LIKE '%{secret}%' "
                          f"OR metadata::text LIKE '%{secret}%'") == "0"


def test_every_execution_appends_one_event(server):
    query = f"SELECT '{secrets.token_hex(6)}' AS tag"
    for _ in range(3):
        sql_ok(server, query)
    events = sql_events(server, query)
    assert len(events) == 3, events
    assert len({e["streamId"] for e in events}) == 3, events
    assert all(e["data"]["parameterCount"] == 0 for e in events), events


# --------------------------------------------------------------------------- record change events


def test_record_events_for_insert_update_delete(server, deployment):
    name = products_table(server)
    stream = f"table-{name}"
    inserted = sql_ok(server, f"INSERT INTO {name} (name, qty) VALUES ('a', 1), ('b', 2), ('c', 3) RETURNING *")["rows"]
    events = stream_events(server, stream)
    assert [e["type"] for e in events] == ["RecordsInserted"], events
    data = events[0]["data"]
    assert data["count"] == 3, data
    assert data["primaryKey"] == ["id"], data
    assert len(data["records"]) == 3, data
    assert {r["id"] for r in data["records"]} == {r["id"] for r in inserted}
    for rec in data["records"]:
        assert set(rec) == {"id", "name", "qty", "created_at", "updated_at"}, rec
    assert sorted((r["name"], r["qty"]) for r in data["records"]) == [("a", 1), ("b", 2), ("c", 3)]
    assert events[0]["metadata"]["actor"]["type"] == "admin", events[0]["metadata"]

    sql_ok(server, f"UPDATE {name} SET qty = qty * 10 WHERE name IN ('a', 'b')")
    events = stream_events(server, stream)
    assert [e["type"] for e in events] == ["RecordsInserted", "RecordsUpdated"], events
    data = events[1]["data"]
    assert data["count"] == 2 and data["primaryKey"] == ["id"], data
    pairs = sorted(((r["old"]["name"], r["old"]["qty"], r["new"]["qty"]) for r in data["records"]))
    assert pairs == [("a", 1, 10), ("b", 2, 20)], data["records"]
    for r in data["records"]:
        assert r["old"]["id"] == r["new"]["id"], r
    assert events[1]["metadata"]["actor"]["type"] == "admin"

    sql_ok(server, f"DELETE FROM {name} WHERE name = 'c'")
    events = stream_events(server, stream)
    assert [e["type"] for e in events] == ["RecordsInserted", "RecordsUpdated", "RecordsDeleted"], events
    data = events[2]["data"]
    assert data["count"] == 1 and [r["name"] for r in data["records"]] == ["c"], data
    assert data["records"][0]["qty"] == 3 and data["records"][0]["id"] in {r["id"] for r in inserted}, data

    # statements that change nothing append nothing
    sql_ok(server, f"UPDATE {name} SET qty = 0 WHERE false")
    sql_ok(server, f"DELETE FROM {name} WHERE name = 'zzz'")
    sql_ok(server, f"INSERT INTO {name} (name, qty) SELECT 'x', 1 WHERE false")
    assert len(stream_events(server, stream)) == 3
    assert [e["streamVersion"] for e in events] == sorted(e["streamVersion"] for e in events)


def test_record_events_through_the_unrestricted_route(server):
    name = products_table(server)
    sql_ok(server, f"INSERT INTO {name} (name, qty) VALUES ('u1', 1), ('u2', 2)", unrestricted=True)
    events = stream_events(server, f"table-{name}")
    assert [e["type"] for e in events] == ["RecordsInserted"], events
    assert events[0]["data"]["count"] == 2
    assert events[0]["metadata"]["actor"]["type"] == "admin", events[0]["metadata"]


def test_failing_statement_changes_nothing_and_appends_nothing(server, deployment):
    name = products_table(server)
    sql_ok(server, f"INSERT INTO {name} (name, qty) VALUES ('taken', 1)")
    stream_before = stream_events(server, f"table-{name}")
    before = log_state(deployment)
    query = f"INSERT INTO {name} (name, qty) VALUES ('new1', 1), ('taken', 2), ('new2', 3)"
    assert_error(sql(server, query), 409, "DATABASE_DUPLICATE")
    assert db(deployment, f"SELECT string_agg(name, ',') FROM {name}") == "taken"
    assert stream_events(server, f"table-{name}") == stream_before
    assert log_state(deployment) == before
    assert sql_events(server, query) == []
    # an update that fails halfway (a check on the last row) too
    assert_error(sql(server, f"UPDATE {name} SET qty = 1 / (qty - 1)"), 400)
    assert stream_events(server, f"table-{name}") == stream_before
    assert log_state(deployment) == before


def test_table_made_by_raw_sql_is_tracked(server, deployment):
    name = fresh("rawmade")
    sql_ok(server, f"CREATE TABLE {name} (id serial PRIMARY KEY, label text NOT NULL)")
    assert name in list_tables(server)
    cols = columns_of(server, name)
    assert cols["id"]["isPrimaryKey"] is True and cols["label"]["type"] == "text", cols
    sql_ok(server, f"INSERT INTO {name} (label) VALUES ('r1'), ('r2')")
    sql_ok(server, f"UPDATE {name} SET label = 'r2b' WHERE label = 'r2'")
    sql_ok(server, f"DELETE FROM {name} WHERE label = 'r1'")
    events = stream_events(server, f"table-{name}")
    assert [e["type"] for e in events] == ["RecordsInserted", "RecordsUpdated", "RecordsDeleted"], events
    assert events[0]["data"]["count"] == 2 and events[0]["data"]["primaryKey"] == ["id"], events[0]["data"]
    assert sorted(r["label"] for r in events[0]["data"]["records"]) == ["r1", "r2"]
    assert events[1]["data"]["records"] == [{"old": {"id": 2, "label": "r2"}, "new": {"id": 2, "label": "r2b"}}], events[1]
    assert events[2]["data"]["records"] == [{"id": 1, "label": "r1"}], events[2]
    # also when the table is made on the unrestricted route
    other = fresh("rawmade_u")
    sql_ok(server, f"CREATE TABLE {other} (k text PRIMARY KEY)", unrestricted=True)
    sql_ok(server, f"INSERT INTO {other} VALUES ('one')")
    events = stream_events(server, f"table-{other}")
    assert [e["type"] for e in events] == ["RecordsInserted"] and events[0]["data"]["primaryKey"] == ["k"], events


def test_dropped_table_by_raw_sql_is_gone_from_the_api(server, deployment):
    name = products_table(server)
    sql_ok(server, f"DROP TABLE {name}", unrestricted=True)
    assert name not in list_tables(server)
    assert_error(call(server, "GET", f"/api/database/tables/{name}/schema"), 404, "NOT_FOUND")


# --------------------------------------------------------------------------- the log as a whole


def test_replay_verify_after_database_activity(deployment, server):
    name = products_table(server)
    sql_ok(server, f"INSERT INTO {name} (name, qty) VALUES ('r', 1)")
    alter_ok(server, name, {"addColumns": [{"columnName": "z", "type": "string"}]})
    assert call(server, "DELETE", f"/api/database/tables/{name}").status_code == 200
    server.wait_projection_caught_up()
    p = run_cli(["events", "replay", "--verify"], deployment.cli_env(), timeout=120)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert "DIFF" not in p.stdout, out
    assert server.alive(), server.log_tail()


def test_rows_changed_outside_the_server_still_reach_the_log(server, deployment):
    """Changes made with psql queue their events; the server's sequencer moves them into the log on its timer."""
    name = fresh("outside")
    sql_ok(server, f"CREATE TABLE {name} (id int PRIMARY KEY, label text)")
    deployment.db.sql(f"INSERT INTO {name} VALUES (1, 'a'), (2, 'b')")
    deployment.db.sql(f"UPDATE {name} SET label = 'c' WHERE id = 2")
    deadline = time.time() + 15
    while True:
        events = stream_events(server, f"table-{name}")
        if len(events) == 2 or time.time() > deadline:
            break
        time.sleep(0.2)
    assert [e["type"] for e in events] == ["RecordsInserted", "RecordsUpdated"], events
    assert [e["streamVersion"] for e in events] == [1, 2] and events[0]["position"] < events[1]["position"], events
    assert events[1]["data"]["records"] == [{"old": {"id": 2, "label": "b"}, "new": {"id": 2, "label": "c"}}]
    assert deployment.db.sql("SELECT count(*) FROM system.pending_events").strip() == "0"
