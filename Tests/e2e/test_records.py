"""The records API (`/api/database/records/:table`, `/api/database/rpc/:fn`) against what PostgREST answers: driven
with the PyPI `postgrest` client where it has a method for the feature, and with plain `requests` for status codes,
headers and the requests the client cannot make.

The module's database gets a small library (`authors`, `books`, `reviews`) made with admin raw SQL, RLS policies on
`books` for the three request roles, and two functions. The read-only dataset is books 1-6; tests that write to
`books` use ids >= 100 and remove them afterwards, other write tests get a table of their own (`fresh_table`), so the
tests do not depend on each other's order."""

import json
import secrets
import time
import uuid

import pytest
import requests
from postgrest import APIError, SyncPostgrestClient
from postgrest.constants import DEFAULT_POSTGREST_CLIENT_HEADERS

from conftest import HTTP_TIMEOUT, psql

RECORDS = "/api/database/records"
RPC = "/api/database/rpc"
RAWSQL_UNRESTRICTED = "/api/database/advance/rawsql/unrestricted"
PASSWORD = "Correct-horse-42"
OBJECT = "application/vnd.pgrst.object+json"
PG_ERROR_KEYS = {"code", "message", "details", "hint"}

SCHEMA_SQL = """
CREATE TABLE authors (id int PRIMARY KEY, name text NOT NULL, born date);
CREATE TABLE books (
    id int PRIMARY KEY,
    title text NOT NULL,
    author_id int REFERENCES authors,
    price numeric,
    tags text[] NOT NULL DEFAULT '{}',
    meta jsonb,
    published bool,
    owner uuid
);
CREATE TABLE reviews (id serial PRIMARY KEY, book_id int REFERENCES books, stars int);
GRANT ALL ON authors, books, reviews TO anon, authenticated, project_admin;
GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO anon, authenticated, project_admin;
ALTER TABLE books ENABLE ROW LEVEL SECURITY;
CREATE POLICY pub ON books FOR SELECT TO anon USING (published);
CREATE POLICY adm ON books TO project_admin USING (true) WITH CHECK (true);
CREATE FUNCTION add(a int, b int) RETURNS int LANGUAGE sql AS 'select a+b';
CREATE FUNCTION books_by(author int) RETURNS SETOF books LANGUAGE sql STABLE AS 'select * from books where author_id = author';
INSERT INTO authors (id, name, born) VALUES
    (1, 'Ursula Le Guin', '1929-10-21'),
    (2, 'Terry Pratchett', '1948-04-28'),
    (3, 'Octavia Butler', '1947-06-22'),
    (4, 'Nobody', NULL);
INSERT INTO books (id, title, author_id, price, tags, meta, published) VALUES
    (1, 'A Wizard of Earthsea', 1, 8.99, '{fantasy,classic}', '{"pages": 205, "lang": "en", "series": "Earthsea"}', true),
    (2, 'The Left Hand of Darkness', 1, 9.50, '{scifi,classic}', '{"pages": 304, "lang": "en"}', true),
    (3, 'Guards! Guards!', 2, 7.25, '{fantasy,humor}', '{"pages": 288, "lang": "en", "series": "Discworld"}', true),
    (4, 'Mort', 2, NULL, '{fantasy}', '{"pages": 243, "lang": "de"}', false),
    (5, 'Kindred', 3, 12.00, '{scifi}', '{"pages": 264}', false),
    (6, 'Untitled, draft', NULL, 1.00, '{}', NULL, NULL);
INSERT INTO reviews (book_id, stars) VALUES (1, 5), (1, 4), (3, 5), (5, 3);
"""

# What mentions `auth.uid()`: the raw SQL route refuses it (see test_raw_sql_accepts_policies_using_auth_uid), so the
# fixture runs it with psql and then asks the server to reload its schema cache with a raw SQL DDL statement.
AUTH_SQL = """
ALTER TABLE books ALTER COLUMN owner SET DEFAULT auth.uid();
CREATE POLICY own ON books TO authenticated USING (owner = auth.uid()) WITH CHECK (owner = auth.uid());
"""

ALL_IDS = [1, 2, 3, 4, 5, 6]
TITLES = {1: "A Wizard of Earthsea", 2: "The Left Hand of Darkness", 3: "Guards! Guards!", 4: "Mort", 5: "Kindred",
          6: "Untitled, draft"}
BOOK_COLUMNS = {"id", "title", "author_id", "price", "tags", "meta", "published", "owner"}


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def server(deployment):
    return deployment.server(name="records")


def call(server, method, path, key="admin", params=None, headers=None, **kw):
    """One request without a cookie jar. `key`: "admin", None (no credential) or a literal key/token."""
    h = dict(headers or {})
    if key == "admin":
        key = server.admin_key
    if key is not None:
        h["Authorization"] = f"Bearer {key}"
    kw.setdefault("timeout", HTTP_TIMEOUT)
    return requests.request(method, server.url(path), params=params, headers=h, **kw)


def rec(server, method, table, params=None, key="admin", headers=None, **kw):
    return call(server, method, f"{RECORDS}/{table}", key=key, params=params, headers=headers, **kw)


def rows_of(r, status=200):
    assert r.status_code == status, (r.request.method, r.url, r.status_code, r.text)
    body = r.json()
    assert isinstance(body, list), body
    return body


def ids(rows):
    return [row["id"] for row in rows]


def pg_error(r, status, code=None):
    """PostgREST's error: that status and exactly {code, message, details, hint}."""
    assert r.status_code == status, (r.request.method, r.url, r.status_code, r.text)
    assert r.headers.get("Content-Type", "").startswith("application/json"), dict(r.headers)
    body = r.json()
    assert isinstance(body, dict) and set(body) == PG_ERROR_KEYS, body
    assert isinstance(body["code"], str) and body["code"], body
    assert isinstance(body["message"], str) and body["message"], body
    if code is not None:
        assert body["code"] == code, (r.url, body)
    return body


def raw_sql(server, query):
    r = call(server, "POST", RAWSQL_UNRESTRICTED, json={"query": query, "allowMultipleStatements": True})
    assert r.status_code == 200, (query, r.status_code, r.text)
    return r.json()


def wait_for_table(server, table, timeout=15):
    """The schema cache follows DDL; wait until the records API knows `table`."""
    deadline = time.monotonic() + timeout
    while True:
        r = rec(server, "GET", table, params={"limit": "0"})
        if r.status_code == 200:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"records API does not know {table}: {r.status_code} {r.text}")
        time.sleep(0.1)


def client(server, key="admin", base=RECORDS):
    headers = dict(DEFAULT_POSTGREST_CLIENT_HEADERS)
    if key == "admin":
        key = server.admin_key
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return SyncPostgrestClient(base_url=server.base + base, headers=headers)


def rpc_client(server, key="admin"):
    """The client's rpc path is `<base>/rpc/<fn>`: base `/api/database`."""
    return client(server, key, base="/api/database")


def db(deployment, sql):
    return psql(deployment.db.url, sql)


def dataset_intact(deployment):
    assert db(deployment, "SELECT to_regclass('public.books') IS NOT NULL AND to_regclass('public.authors') IS NOT NULL") == "t"
    assert db(deployment, "SELECT string_agg(id::text || ':' || title, '|' ORDER BY id) FROM books WHERE id < 100") == \
        "|".join(f"{i}:{TITLES[i]}" for i in ALL_IDS)
    assert db(deployment, "SELECT count(*) FROM authors") == "4"
    assert db(deployment, "SELECT count(*) FROM reviews") == "4"


def sign_up(server):
    r = call(server, "POST", "/api/auth/users", key=None, params={"client_type": "mobile"},
             json={"email": f"rec-{uuid.uuid4().hex[:12]}@example.com", "password": PASSWORD})
    assert r.status_code == 200, (r.status_code, r.text)
    body = r.json()
    return {"token": body["accessToken"], "id": body["user"]["id"], "email": body["user"]["email"]}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def library(server, deployment):
    raw_sql(server, SCHEMA_SQL)
    psql(deployment.db.url, AUTH_SQL)
    raw_sql(server, "COMMENT ON TABLE books IS 'the library'")
    for t in ("authors", "books", "reviews"):
        wait_for_table(server, t)
    return deployment


@pytest.fixture(scope="module")
def admin(server, library):
    return client(server)


@pytest.fixture(scope="module")
def alice(server, library):
    return sign_up(server)


@pytest.fixture(scope="module")
def bob(server, library):
    return sign_up(server)


@pytest.fixture
def cleanup_books(library):
    """Tests that write to `books` use ids >= 100: removed afterwards."""
    yield
    db(library, "DELETE FROM books WHERE id >= 100")


def fresh_table(server):
    """A table of the test's own: (id int pk, name text unique not null, qty int not null default 0, note text)."""
    name = f"w_{secrets.token_hex(4)}"
    raw_sql(server, f"CREATE TABLE {name} (id int PRIMARY KEY, name text UNIQUE NOT NULL, qty int NOT NULL DEFAULT 0, "
                    f"note text); GRANT ALL ON {name} TO anon, authenticated, project_admin")
    wait_for_table(server, name)
    return name


def table_rows(deployment, name):
    """[(id, name, qty, note)] ordered by id, read with psql."""
    out = db(deployment, f"SELECT coalesce(json_agg(json_build_array(id, name, qty, note) ORDER BY id), '[]') FROM {name}")
    return [tuple(r) for r in json.loads(out)]


# --------------------------------------------------------------------------- setup through raw SQL


def test_raw_sql_accepts_policies_using_auth_uid(server, library):
    """Owner columns defaulting to auth.uid() and policies comparing with it are how RLS is written for the records
    API; they only call the auth helpers and change nothing in the auth schema, so the admin raw SQL route must take
    them (InsForge's users write their policies through it)."""
    name = f"own_{secrets.token_hex(4)}"
    r = call(server, "POST", RAWSQL_UNRESTRICTED, json={"allowMultipleStatements": True, "query": (
        f"CREATE TABLE {name} (id int PRIMARY KEY, owner uuid DEFAULT auth.uid()); "
        f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY; "
        f"CREATE POLICY mine ON {name} TO authenticated USING (owner = auth.uid()) WITH CHECK (owner = auth.uid())")})
    assert r.status_code == 200, (r.status_code, r.text)
    assert db(library, f"SELECT string_agg(policyname, ',' ORDER BY policyname) FROM pg_policies WHERE tablename = '{name}'") \
        == "mine,project_admin_all"  # the admin's policy comes with every new table (system.secure_table)


# --------------------------------------------------------------------------- select


def test_select_columns_with_the_client(admin):
    data = admin.from_("books").select("id,title").order("id").execute().data
    assert data == [{"id": i, "title": TITLES[i]} for i in ALL_IDS]


def test_select_star_and_default_select(server, library):
    for params in ({}, {"select": "*"}):
        rows = rows_of(rec(server, "GET", "books", params={**params, "order": "id"}))
        assert ids(rows) == ALL_IDS
        assert all(set(r) == BOOK_COLUMNS for r in rows), rows
    first = rows[0]
    assert first["price"] == 8.99 and first["tags"] == ["fantasy", "classic"], first
    assert first["meta"] == {"pages": 205, "lang": "en", "series": "Earthsea"} and first["published"] is True, first
    assert first["owner"] is None and first["author_id"] == 1, first


def test_select_alias_and_cast(server, admin):
    data = admin.from_("books").select("book_title:title,id,price::text,cost:price::text").order("id").execute().data
    assert [set(r) for r in data] == [{"book_title", "id", "price", "cost"}] * 6, data
    by_id = {r["id"]: r for r in data}
    assert by_id[1] == {"book_title": TITLES[1], "id": 1, "price": "8.99", "cost": "8.99"}
    assert by_id[5]["price"] == "12.00" and by_id[4]["price"] is None, by_id
    # a cast of an int to text
    rows = rows_of(rec(server, "GET", "books", params={"select": "id::text", "id": "eq.3"}))
    assert rows == [{"id": "3"}]


def test_select_json_paths(server, library):
    rows = rows_of(rec(server, "GET", "books", params={"select": "id,meta->>lang,meta->pages,series:meta->>series",
                                                        "order": "id"}))
    assert rows[0] == {"id": 1, "lang": "en", "pages": 205, "series": "Earthsea"}, rows
    assert rows[3] == {"id": 4, "lang": "de", "pages": 243, "series": None}, rows
    assert rows[4] == {"id": 5, "lang": None, "pages": 264, "series": None}, rows
    assert rows[5] == {"id": 6, "lang": None, "pages": None, "series": None}, rows
    # filter and order on JSON paths
    assert ids(rows_of(rec(server, "GET", "books", params={"select": "id", "meta->>lang": "eq.en", "order": "id"}))) == [1, 2, 3]
    assert ids(rows_of(rec(server, "GET", "books", params={"select": "id", "meta->pages": "gt.280", "order": "id"}))) == [2, 3]
    assert ids(rows_of(rec(server, "GET", "books", params={"select": "id", "order": "meta->pages.desc.nullslast"}))) == \
        [2, 3, 5, 4, 1, 6]


def test_embed_many_to_one(server, admin):
    data = admin.from_("books").select("id,authors(name)").order("id").execute().data
    assert data[0] == {"id": 1, "authors": {"name": "Ursula Le Guin"}}, data
    assert data[3] == {"id": 4, "authors": {"name": "Terry Pratchett"}}, data
    assert data[5] == {"id": 6, "authors": None}, data
    rows = rows_of(rec(server, "GET", "books", params={"select": "title,writer:authors(name,born)", "id": "eq.5"}))
    assert rows == [{"title": "Kindred", "writer": {"name": "Octavia Butler", "born": "1947-06-22"}}]


def test_embed_one_to_many(server, library):
    rows = rows_of(rec(server, "GET", "authors", params={"select": "name,books(id,title)", "order": "id",
                                                          "books.order": "id.desc"}))
    assert rows == [
        {"name": "Ursula Le Guin", "books": [{"id": 2, "title": TITLES[2]}, {"id": 1, "title": TITLES[1]}]},
        {"name": "Terry Pratchett", "books": [{"id": 4, "title": "Mort"}, {"id": 3, "title": TITLES[3]}]},
        {"name": "Octavia Butler", "books": [{"id": 5, "title": "Kindred"}]},
        {"name": "Nobody", "books": []},
    ], rows
    rows = rows_of(rec(server, "GET", "books", params={"select": "id,reviews(stars)", "order": "id",
                                                        "reviews.order": "stars.desc"}))
    assert rows == [{"id": 1, "reviews": [{"stars": 5}, {"stars": 4}]}, {"id": 2, "reviews": []},
                    {"id": 3, "reviews": [{"stars": 5}]}, {"id": 4, "reviews": []},
                    {"id": 5, "reviews": [{"stars": 3}]}, {"id": 6, "reviews": []}], rows
    # nested: authors -> books -> reviews
    rows = rows_of(rec(server, "GET", "authors", params={"select": "id,books(id,reviews(stars))", "id": "eq.3"}))
    assert rows == [{"id": 3, "books": [{"id": 5, "reviews": [{"stars": 3}]}]}], rows


def test_embed_inner(server, admin):
    data = admin.from_("books").select("id,reviews!inner(stars)").order("id").execute().data
    assert ids(data) == [1, 3, 5], data
    rows = rows_of(rec(server, "GET", "books", params={"select": "id,reviews!inner(stars)", "reviews.stars": "eq.5",
                                                        "order": "id"}))
    assert rows == [{"id": 1, "reviews": [{"stars": 5}]}, {"id": 3, "reviews": [{"stars": 5}]}], rows
    # without !inner the filter only narrows the embedded rows
    rows = rows_of(rec(server, "GET", "books", params={"select": "id,reviews(stars)", "reviews.stars": "eq.5",
                                                        "order": "id"}))
    assert ids(rows) == ALL_IDS and rows[1]["reviews"] == [] and rows[0]["reviews"] == [{"stars": 5}], rows
    # many-to-one inner with a filter on the parent
    rows = rows_of(rec(server, "GET", "books", params={"select": "id,authors!inner(name)",
                                                        "authors.name": "like.Terry*", "order": "id"}))
    assert rows == [{"id": 3, "authors": {"name": "Terry Pratchett"}}, {"id": 4, "authors": {"name": "Terry Pratchett"}}]
    rows = rows_of(rec(server, "GET", "authors", params={"select": "name,books!inner(id)", "order": "id"}))
    assert [r["name"] for r in rows] == ["Ursula Le Guin", "Terry Pratchett", "Octavia Butler"], rows


FILTERS = [
    ("id=eq.1", [1]),
    ("id=neq.1", [2, 3, 4, 5, 6]),
    ("price=gt.9", [2, 5]),
    ("price=gte.9.5", [2, 5]),
    ("price=lt.7.25", [6]),
    ("price=lte.7.25", [3, 6]),
    ("title=eq.Guards! Guards!", [3]),
    ("title=like.*Guards*", [3]),
    ("title=like.The*", [2]),
    ("title=ilike.*WIZARD*", [1]),
    ("title=match.^The", [2]),
    ("title=match.^the", []),
    ("title=imatch.^the", [2]),
    ("title=imatch.DARK", [2]),
    ("id=in.(1,3,5)", [1, 3, 5]),
    ('title=in.("Untitled, draft",Mort)', [4, 6]),
    ('title=in.("Guards! Guards!","A Wizard of Earthsea")', [1, 3]),
    ("published=is.null", [6]),
    ("published=is.true", [1, 2, 3]),
    ("published=is.false", [4, 5]),
    ("price=is.null", [4]),
    ("tags=cs.{fantasy}", [1, 3, 4]),
    ("tags=cs.{fantasy,classic}", [1]),
    ("tags=cd.{fantasy,humor,classic}", [1, 3, 4, 6]),
    ("tags=ov.{humor,scifi}", [2, 3, 5]),
    ('meta=cs.{"lang":"de"}', [4]),
    ('meta=cs.{"series":"Discworld"}', [3]),
    ('meta=cd.{"pages":264,"lang":"en"}', [5]),
    ("title=fts.darkness", [2]),
    ("title=fts(english).wizards", [1]),
    ("title=plfts.left hand", [2]),
    ("title=phfts(english).left hand", [2]),
    ("title=phfts(english).hand left", []),
    ("title=wfts(english).wizard or mort", [1, 4]),
    ("id=not.eq.1", [2, 3, 4, 5, 6]),
    ("id=not.in.(1,2,3)", [4, 5, 6]),
    ("price=not.gt.9", [1, 3, 6]),
    ("published=not.is.null", [1, 2, 3, 4, 5]),
    ("published=not.is.true", [4, 5, 6]),
    ("tags=not.cs.{fantasy}", [2, 5, 6]),
    ("title=not.ilike.*the*", [1, 3, 4, 5, 6]),
    ("title=not.fts.darkness", [1, 3, 4, 5, 6]),
    ("or=(id.eq.1,and(author_id.eq.2,price.lt.8))", [1, 3]),
    ("or=(published.is.null,price.gt.10)", [5, 6]),
    ("or=(id.eq.4,not.and(id.gte.2,id.lte.6))", [1, 4]),
    ('or=(tags.cs.{humor},title.in.("Untitled, draft",Kindred))', [3, 5, 6]),
    ("and=(price.gte.8,price.lte.10)", [1, 2]),
    ("not.or=(id.lt.3,id.gt.4)", [3, 4]),
    ("id=gte.2&id=lte.3", [2, 3]),
    ("author_id=eq.2&price=not.is.null", [3]),
]


@pytest.mark.parametrize("query,expected", FILTERS, ids=[q for q, _ in FILTERS])
def test_filter_operators(server, library, query, expected):
    params = [tuple(part.split("=", 1)) for part in query.split("&")] + [("select", "id"), ("order", "id")]
    assert ids(rows_of(rec(server, "GET", "books", params=params))) == expected


def test_filters_with_the_client(admin):
    def q():
        return admin.from_("books").select("id").order("id")

    assert ids(q().eq("id", 2).execute().data) == [2]
    assert ids(q().neq("author_id", 1).execute().data) == [3, 4, 5]
    assert ids(q().gt("price", 9).execute().data) == [2, 5]
    assert ids(q().lte("price", 7.25).execute().data) == [3, 6]
    assert ids(q().like("title", "*Guards*").execute().data) == [3]
    assert ids(q().ilike("title", "%wizard%").execute().data) == [1]
    assert ids(q().in_("title", ["Untitled, draft", "Kindred"]).execute().data) == [5, 6]
    assert ids(q().is_("published", None).execute().data) == [6]
    assert ids(q().is_("published", False).execute().data) == [4, 5]
    assert ids(q().contains("tags", ["fantasy"]).execute().data) == [1, 3, 4]
    assert ids(q().contains("meta", {"lang": "de"}).execute().data) == [4]
    assert ids(q().contained_by("tags", ["fantasy", "humor"]).execute().data) == [3, 4, 6]
    assert ids(q().overlaps("tags", ["humor", "scifi"]).execute().data) == [2, 3, 5]
    assert ids(q().text_search("title", "darkness").execute().data) == [2]
    assert ids(q().text_search("title", "left hand", {"type": "phrase", "config": "english"}).execute().data) == [2]
    assert ids(q().or_("id.eq.1,and(author_id.eq.2,price.lt.8)").execute().data) == [1, 3]
    assert ids(q().not_.in_("id", [1, 2, 3]).execute().data) == [4, 5, 6]
    assert ids(q().match({"author_id": 2, "published": False}).execute().data) == [4]


ORDERS = [
    ("price.desc.nullslast", [5, 2, 1, 3, 6, 4]),
    ("price.asc.nullsfirst", [4, 6, 3, 1, 2, 5]),
    ("price.desc", [4, 5, 2, 1, 3, 6]),
    ("price", [6, 3, 1, 2, 5, 4]),
    ("author_id.desc.nullslast,id.desc", [5, 4, 3, 2, 1, 6]),
    ("published.nullsfirst,id.desc", [6, 5, 4, 3, 2, 1]),
    ("title", [1, 3, 5, 4, 2, 6]),
]


@pytest.mark.parametrize("order,expected", ORDERS, ids=[o for o, _ in ORDERS])
def test_order(server, library, order, expected):
    assert ids(rows_of(rec(server, "GET", "books", params={"select": "id", "order": order}))) == expected


def test_order_with_the_client(admin):
    data = admin.from_("books").select("id").order("price", desc=True, nullsfirst=False).execute().data
    assert ids(data) == [5, 2, 1, 3, 6, 4]
    data = admin.from_("books").select("id").order("price", nullsfirst=True).execute().data
    assert ids(data) == [4, 6, 3, 1, 2, 5]


def test_limit_and_offset(server, admin):
    q = {"select": "id", "order": "id"}
    assert ids(rows_of(rec(server, "GET", "books", params={**q, "limit": "2"}))) == [1, 2]
    assert ids(rows_of(rec(server, "GET", "books", params={**q, "limit": "2", "offset": "3"}))) == [4, 5]
    assert ids(rows_of(rec(server, "GET", "books", params={**q, "offset": "4"}))) == [5, 6]
    assert ids(rows_of(rec(server, "GET", "books", params={**q, "limit": "0"}))) == []
    assert ids(admin.from_("books").select("id").order("id").range(1, 3).execute().data) == [2, 3, 4]
    assert ids(admin.from_("books").select("id").order("id").limit(1).offset(5).execute().data) == [6]
    # embedded limit
    rows = rows_of(rec(server, "GET", "books", params={"select": "id,reviews(stars)", "id": "eq.1",
                                                        "reviews.order": "stars", "reviews.limit": "1"}))
    assert rows == [{"id": 1, "reviews": [{"stars": 4}]}], rows


def test_range_header_and_counts(server, library):
    q = {"select": "id", "order": "id"}
    r = rec(server, "GET", "books", params=q)
    assert ids(rows_of(r)) == ALL_IDS and r.headers.get("Content-Range") == "0-5/*", dict(r.headers)

    r = rec(server, "GET", "books", params=q, headers={"Range": "0-1", "Range-Unit": "items"})
    assert ids(rows_of(r)) == [1, 2] and r.headers.get("Content-Range") == "0-1/*", dict(r.headers)

    r = rec(server, "GET", "books", params=q, headers={"Prefer": "count=exact"})
    assert ids(rows_of(r)) == ALL_IDS and r.headers.get("Content-Range") == "0-5/6", dict(r.headers)

    r = rec(server, "GET", "books", params=q, headers={"Range": "0-1", "Range-Unit": "items", "Prefer": "count=exact"})
    assert ids(rows_of(r, 206)) == [1, 2] and r.headers.get("Content-Range") == "0-1/6", dict(r.headers)

    r = rec(server, "GET", "books", params=q, headers={"Range": "2-3", "Range-Unit": "items", "Prefer": "count=exact"})
    assert ids(rows_of(r, 206)) == [3, 4] and r.headers.get("Content-Range") == "2-3/6", dict(r.headers)

    r = rec(server, "GET", "books", params={**q, "limit": "2", "offset": "4"}, headers={"Prefer": "count=exact"})
    assert ids(rows_of(r, 206)) == [5, 6] and r.headers.get("Content-Range") == "4-5/6", dict(r.headers)

    r = rec(server, "GET", "books", params={**q, "published": "is.true"}, headers={"Prefer": "count=exact"})
    assert ids(rows_of(r)) == [1, 2, 3] and r.headers.get("Content-Range") == "0-2/3", dict(r.headers)

    r = rec(server, "GET", "books", params={**q, "id": "eq.999"}, headers={"Prefer": "count=exact"})
    assert rows_of(r) == [] and r.headers.get("Content-Range") == "*/0", dict(r.headers)


def test_offset_beyond_the_count_is_416(server, library):
    r = rec(server, "GET", "books", params={"select": "id", "offset": "10"}, headers={"Prefer": "count=exact"})
    pg_error(r, 416, "PGRST103")


def test_count_with_the_client(admin):
    res = admin.from_("books").select("id", count="exact").order("id").limit(2).execute()
    assert ids(res.data) == [1, 2] and res.count == 6, res
    res = admin.from_("books").select("id", count="exact").eq("published", True).execute()
    assert res.count == 3 and len(res.data) == 3, res


def test_head(server, admin):
    r = rec(server, "HEAD", "books", params={"select": "id"}, headers={"Prefer": "count=exact"})
    assert r.status_code == 200, (r.status_code, dict(r.headers))
    assert r.content == b"" and r.headers.get("Content-Range") == "0-5/6", (r.content, dict(r.headers))
    r = rec(server, "HEAD", "books", params={"select": "id", "limit": "2"}, headers={"Prefer": "count=exact"})
    assert r.status_code == 206 and r.content == b"" and r.headers.get("Content-Range") == "0-1/6", dict(r.headers)
    res = admin.from_("books").select("*", count="exact", head=True).eq("author_id", 2).execute()
    assert res.count == 2 and res.data == [], res
    pg_error(rec(server, "GET", "no_such_table"), 404, "PGRST205")
    assert rec(server, "HEAD", "no_such_table").status_code == 404


def test_single_object(server, admin):
    r = rec(server, "GET", "books", params={"select": "id,title", "id": "eq.1"}, headers={"Accept": OBJECT})
    assert r.status_code == 200, r.text
    assert r.headers.get("Content-Type", "").startswith(OBJECT), dict(r.headers)
    assert r.json() == {"id": 1, "title": TITLES[1]}
    for params, n in (({"id": "eq.999"}, 0), ({"id": "lt.3"}, 2), ({}, 6)):
        r = rec(server, "GET", "books", params={"select": "id", **params}, headers={"Accept": OBJECT})
        body = pg_error(r, 406, "PGRST116")
        assert body["details"] == f"The result contains {n} rows", body
    # the client's single() and maybe_single()
    assert admin.from_("books").select("title").eq("id", 3).single().execute().data == {"title": TITLES[3]}
    with pytest.raises(APIError) as e:
        admin.from_("books").select("id").eq("id", 999).single().execute()
    assert e.value.code == "PGRST116", e.value.json()
    with pytest.raises(APIError) as e:
        admin.from_("books").select("id").lt("id", 3).single().execute()
    assert e.value.code == "PGRST116", e.value.json()
    assert admin.from_("books").select("id").eq("id", 999).maybe_single().execute() is None
    assert admin.from_("books").select("id").eq("id", 4).maybe_single().execute().data == {"id": 4}


@pytest.mark.parametrize("params", [
    {"select": "id,nope"},
    {"select": "id", "nope": "eq.1"},
    {"select": "id", "order": "nope"},
    {"select": "id,authors(nope)"},
    {"select": "id", "or": "(id.eq.1,nope.eq.2)"},
], ids=["select", "filter", "order", "embedded select", "or"])
def test_unknown_column_is_400_42703(server, library, params):
    body = pg_error(rec(server, "GET", "books", params=params), 400, "42703")
    assert "nope" in body["message"], body


def test_unknown_table_is_404_pgrst205(server, admin):
    for method, kw in (("GET", {}), ("POST", {"json": {"a": 1}}), ("PATCH", {"json": {"a": 1}}),
                       ("DELETE", {"params": {"a": "eq.1"}})):
        body = pg_error(rec(server, method, "no_such_table", **kw), 404, "PGRST205")
        assert "no_such_table" in body["message"], body
    with pytest.raises(APIError) as e:
        admin.from_("no_such_table").select("*").execute()
    assert e.value.code == "PGRST205"


def test_no_relationship_is_400_pgrst200(server, library):
    pg_error(rec(server, "GET", "authors", params={"select": "id,reviews(stars)"}), 400, "PGRST200")


# --------------------------------------------------------------------------- writes


def test_insert_one_with_representation(server, library):
    t = fresh_table(server)
    r = rec(server, "POST", t, json={"id": 1, "name": "a", "qty": 2}, headers={"Prefer": "return=representation"})
    assert rows_of(r, 201) == [{"id": 1, "name": "a", "qty": 2, "note": None}]
    assert table_rows(library, t) == [(1, "a", 2, None)]
    # representation with select=, and an object back with the object Accept
    r = rec(server, "POST", t, params={"select": "id,name"}, json={"id": 2, "name": "b"},
            headers={"Prefer": "return=representation", "Accept": OBJECT})
    assert r.status_code == 201 and r.json() == {"id": 2, "name": "b"}, r.text
    assert table_rows(library, t) == [(1, "a", 2, None), (2, "b", 0, None)]


def test_insert_default_is_minimal(server, library):
    t = fresh_table(server)
    r = rec(server, "POST", t, json={"id": 1, "name": "a"})
    assert r.status_code == 201 and r.content == b"", (r.status_code, r.text)
    r = rec(server, "POST", t, json={"id": 2, "name": "b"}, headers={"Prefer": "return=minimal"})
    assert r.status_code == 201 and r.content == b"", (r.status_code, r.text)
    assert table_rows(library, t) == [(1, "a", 0, None), (2, "b", 0, None)]


def test_bulk_insert(server, library):
    t = fresh_table(server)
    c = client(server)
    data = c.from_(t).insert([{"id": i, "name": f"n{i}", "qty": i * 10, "note": None} for i in (1, 2, 3)]).execute().data
    assert sorted(ids(data)) == [1, 2, 3] and {r["qty"] for r in data} == {10, 20, 30}, data
    r = rec(server, "POST", t, json=[{"id": 4, "name": "n4"}, {"id": 5, "name": "n5"}],
            headers={"Prefer": "return=representation"})
    assert sorted(ids(rows_of(r, 201))) == [4, 5]
    r = rec(server, "POST", t, json=[{"id": 6, "name": "n6"}, {"id": 7, "name": "n7"}])
    assert r.status_code == 201 and r.content == b"", (r.status_code, r.text)
    assert [row[0] for row in table_rows(library, t)] == [1, 2, 3, 4, 5, 6, 7]


def test_bulk_insert_objects_must_have_the_same_keys(server, library):
    """Without columns=, PostgREST refuses a bulk body whose objects differ in keys: 400 PGRST102
    "All object keys must match", nothing written."""
    t = fresh_table(server)
    body = pg_error(rec(server, "POST", t, json=[{"id": 1, "name": "a", "note": "x"}, {"id": 2, "name": "b"}]),
                    400, "PGRST102")
    assert body["message"] == "All object keys must match", body
    assert table_rows(library, t) == []


def test_bulk_insert_with_columns(server, library):
    t = fresh_table(server)
    # columns= picks the columns; keys outside it are ignored, missing ones are null (or the default with missing=default)
    r = rec(server, "POST", t, params={"columns": "id,name,note"},
            json=[{"id": 1, "name": "a", "note": "x", "qty": 99}, {"id": 2, "name": "b"}],
            headers={"Prefer": "return=representation"})
    assert sorted((x["id"], x["qty"], x["note"]) for x in rows_of(r, 201)) == [(1, 0, "x"), (2, 0, None)], r.text
    r = rec(server, "POST", t, params={"columns": "id,name,qty"}, json=[{"id": 3, "name": "c"}],
            headers={"Prefer": "missing=default,return=representation"})
    assert [(x["id"], x["qty"]) for x in rows_of(r, 201)] == [(3, 0)], r.text
    data = client(server).from_(t).insert([{"id": 4, "name": "d"}, {"id": 5, "name": "e", "qty": 5}],
                                          default_to_null=False).execute().data
    assert sorted((x["id"], x["qty"]) for x in data) == [(4, 0), (5, 5)], data
    assert [row[:3] for row in table_rows(library, t)] == [(1, "a", 0), (2, "b", 0), (3, "c", 0), (4, "d", 0), (5, "e", 5)]


def test_upsert_merge_duplicates(server, library):
    t = fresh_table(server)
    rec(server, "POST", t, json=[{"id": 1, "name": "a", "qty": 1}, {"id": 2, "name": "b", "qty": 2}])
    r = rec(server, "POST", t, json=[{"id": 1, "name": "a", "qty": 10}, {"id": 3, "name": "c", "qty": 3}],
            headers={"Prefer": "resolution=merge-duplicates,return=representation"})
    assert sorted((x["id"], x["qty"]) for x in rows_of(r, 201)) == [(1, 10), (3, 3)], r.text
    assert table_rows(library, t) == [(1, "a", 10, None), (2, "b", 2, None), (3, "c", 3, None)]
    # the client's upsert (merge-duplicates)
    data = client(server).from_(t).upsert({"id": 2, "name": "b", "qty": 20, "note": "x"}).execute().data
    assert data == [{"id": 2, "name": "b", "qty": 20, "note": "x"}], data
    assert table_rows(library, t)[1] == (2, "b", 20, "x")


def test_upsert_ignore_duplicates(server, library):
    t = fresh_table(server)
    rec(server, "POST", t, json={"id": 1, "name": "a", "qty": 1})
    r = rec(server, "POST", t, json=[{"id": 1, "name": "a", "qty": 10}, {"id": 3, "name": "c", "qty": 3}],
            headers={"Prefer": "resolution=ignore-duplicates,return=representation"})
    assert [(x["id"], x["qty"]) for x in rows_of(r, 201)] == [(3, 3)], r.text
    assert table_rows(library, t) == [(1, "a", 1, None), (3, "c", 3, None)]
    data = client(server).from_(t).upsert({"id": 3, "name": "c", "qty": 30, "note": None},
                                           ignore_duplicates=True).execute().data
    assert data == [], data
    assert table_rows(library, t) == [(1, "a", 1, None), (3, "c", 3, None)]


def test_upsert_on_conflict(server, library):
    t = fresh_table(server)
    rec(server, "POST", t, json={"id": 1, "name": "a", "qty": 1})
    # conflict on the unique name: the existing row takes every value of the body, id included
    r = rec(server, "POST", t, params={"on_conflict": "name"}, json={"id": 50, "name": "a", "qty": 7},
            headers={"Prefer": "resolution=merge-duplicates,return=representation"})
    assert rows_of(r, 201) == [{"id": 50, "name": "a", "qty": 7, "note": None}], r.text
    assert table_rows(library, t) == [(50, "a", 7, None)]
    # on the primary key (the default target) the same body is an insert that breaks the name's uniqueness
    r = rec(server, "POST", t, json={"id": 51, "name": "a", "qty": 8}, headers={"Prefer": "resolution=merge-duplicates"})
    pg_error(r, 409, "23505")
    # ignore-duplicates on name
    r = rec(server, "POST", t, params={"on_conflict": "name"}, json=[{"id": 52, "name": "a"}, {"id": 53, "name": "z"}],
            headers={"Prefer": "resolution=ignore-duplicates,return=representation"})
    assert ids(rows_of(r, 201)) == [53], r.text
    # the client with on_conflict
    data = client(server).from_(t).upsert({"id": 60, "name": "z", "qty": 9, "note": "c"}, on_conflict="name").execute().data
    assert data == [{"id": 60, "name": "z", "qty": 9, "note": "c"}], data
    assert table_rows(library, t) == [(50, "a", 7, None), (60, "z", 9, "c")]
    pg_error(rec(server, "POST", t, params={"on_conflict": "nope"}, json={"id": 1, "name": "q"},
                 headers={"Prefer": "resolution=merge-duplicates"}), 400)


def test_put_upserts_one_row_by_primary_key(server, library):
    t = fresh_table(server)
    r = rec(server, "PUT", t, params={"id": "eq.7"}, json={"id": 7, "name": "p", "qty": 1, "note": None},
            headers={"Prefer": "return=representation"})
    assert r.status_code in (200, 201) and r.json() == [{"id": 7, "name": "p", "qty": 1, "note": None}], r.text
    r = rec(server, "PUT", t, params={"id": "eq.7"}, json={"id": 7, "name": "p1", "qty": 1, "note": None},
            headers={"Prefer": "return=representation"})
    assert rows_of(r) == [{"id": 7, "name": "p1", "qty": 1, "note": None}], r.text
    r = rec(server, "PUT", t, params={"id": "eq.7"}, json={"id": 7, "name": "p2", "qty": 2, "note": "n"})
    assert r.status_code == 204 and r.content == b"", (r.status_code, r.text)
    assert table_rows(library, t) == [(7, "p2", 2, "n")]
    pg_error(rec(server, "PUT", t, params={"id": "eq.7"}, json={"id": 8, "name": "p", "qty": 1, "note": None}),
             400, "PGRST115")
    pg_error(rec(server, "PUT", t, params={"name": "eq.p"}, json={"id": 8, "name": "p", "qty": 1, "note": None}),
             405, "PGRST105")
    assert table_rows(library, t) == [(7, "p2", 2, "n")]


def test_update_with_filters(server, library):
    t = fresh_table(server)
    rec(server, "POST", t, json=[{"id": i, "name": f"n{i}", "qty": i} for i in range(1, 7)])
    r = rec(server, "PATCH", t, params={"qty": "lt.3"}, json={"note": "low"}, headers={"Prefer": "return=representation"})
    assert sorted((x["id"], x["note"]) for x in rows_of(r)) == [(1, "low"), (2, "low")], r.text
    r = rec(server, "PATCH", t, params={"or": "(id.eq.5,id.eq.6)"}, json={"qty": 0})
    assert r.status_code == 204 and r.content == b"", (r.status_code, r.text)
    r = rec(server, "PATCH", t, params={"id": "eq.999"}, json={"qty": 1}, headers={"Prefer": "return=representation"})
    assert rows_of(r) == []
    data = client(server).from_(t).update({"note": "mid"}).gte("qty", 3).lte("qty", 4).execute().data
    assert sorted(ids(data)) == [3, 4] and {x["note"] for x in data} == {"mid"}, data
    assert table_rows(library, t) == [(1, "n1", 1, "low"), (2, "n2", 2, "low"), (3, "n3", 3, "mid"),
                                      (4, "n4", 4, "mid"), (5, "n5", 0, None), (6, "n6", 0, None)]


def test_delete_with_filters(server, library):
    t = fresh_table(server)
    rec(server, "POST", t, json=[{"id": i, "name": f"n{i}", "qty": i} for i in range(1, 7)])
    r = rec(server, "DELETE", t, params={"id": "in.(1,2)"}, headers={"Prefer": "return=representation"})
    assert sorted(ids(rows_of(r))) == [1, 2], r.text
    r = rec(server, "DELETE", t, params={"qty": "gt.5"})
    assert r.status_code == 204 and r.content == b"", (r.status_code, r.text)
    data = client(server).from_(t).delete().eq("name", "n3").execute().data
    assert ids(data) == [3], data
    r = rec(server, "DELETE", t, params={"id": "eq.999"}, headers={"Prefer": "return=representation"})
    assert rows_of(r) == []
    assert [row[0] for row in table_rows(library, t)] == [4, 5]


def test_write_with_object_accept_and_not_one_row_rolls_back(server, library):
    """PostgREST checks the row count inside the transaction: a PATCH/DELETE asked for one object that touches 2
    rows is answered 406 and changes nothing."""
    t = fresh_table(server)
    rec(server, "POST", t, json=[{"id": 1, "name": "a", "qty": 1}, {"id": 2, "name": "b", "qty": 1}])
    before = table_rows(library, t)
    r = rec(server, "PATCH", t, params={"qty": "eq.1"}, json={"note": "both"},
            headers={"Prefer": "return=representation", "Accept": OBJECT})
    pg_error(r, 406, "PGRST116")
    assert table_rows(library, t) == before, "the PATCH answered 406 but was committed"
    r = rec(server, "DELETE", t, params={"qty": "eq.1"}, headers={"Prefer": "return=representation", "Accept": OBJECT})
    pg_error(r, 406, "PGRST116")
    assert table_rows(library, t) == before, "the DELETE answered 406 but was committed"


def test_unique_violation_is_409_23505(server, library):
    t = fresh_table(server)
    rec(server, "POST", t, json={"id": 1, "name": "a"})
    pg_error(rec(server, "POST", t, json={"id": 1, "name": "other"}), 409, "23505")
    pg_error(rec(server, "POST", t, json=[{"id": 2, "name": "b"}, {"id": 3, "name": "a"}]), 409, "23505")
    assert table_rows(library, t) == [(1, "a", 0, None)], "a failed bulk insert must insert nothing"
    rec(server, "POST", t, json={"id": 2, "name": "b"})
    pg_error(rec(server, "PATCH", t, params={"id": "eq.2"}, json={"name": "a"}), 409, "23505")
    with pytest.raises(APIError) as e:
        client(server).from_(t).insert({"id": 1, "name": "zz"}).execute()
    assert e.value.code == "23505"


def test_fk_violation_is_409_23503(server, library, cleanup_books):
    body = pg_error(rec(server, "POST", "books", json={"id": 900, "title": "Orphan", "author_id": 999}), 409, "23503")
    assert body["details"], body
    assert db(library, "SELECT count(*) FROM books WHERE id = 900") == "0"
    pg_error(rec(server, "PATCH", "books", params={"id": "eq.6"}, json={"author_id": 999}), 409, "23503")
    # deleting a referenced row
    pg_error(rec(server, "DELETE", "authors", params={"id": "eq.1"}), 409, "23503")
    dataset_intact(library)


def test_unknown_column_in_body_is_400_pgrst204(server, library):
    t = fresh_table(server)
    body = pg_error(rec(server, "POST", t, json={"id": 1, "name": "a", "nope": 1}), 400, "PGRST204")
    assert "nope" in body["message"], body
    pg_error(rec(server, "POST", t, json=[{"id": 1, "name": "a"}, {"id": 2, "name": "b", "nope": 1}]), 400, "PGRST204")
    rec(server, "POST", t, json={"id": 1, "name": "a"})
    pg_error(rec(server, "PATCH", t, params={"id": "eq.1"}, json={"nope": 2}), 400, "PGRST204")
    assert table_rows(library, t) == [(1, "a", 0, None)]


@pytest.mark.parametrize("payload", ['{"id": 1,', "not json", '{"id": 1} trailing', "[1, 2", ""],
                         ids=["truncated", "word", "trailing", "array", "empty"])
def test_malformed_json_is_400_pgrst102(server, library, payload):
    t = fresh_table(server)
    h = {"Content-Type": "application/json"}
    pg_error(rec(server, "POST", t, data=payload, headers=h), 400, "PGRST102")
    if payload:
        pg_error(rec(server, "PATCH", t, params={"id": "eq.1"}, data=payload, headers=h), 400, "PGRST102")
    assert table_rows(library, t) == []


# --------------------------------------------------------------------------- rpc


def test_rpc_scalar(server, library, anon_key):
    r = call(server, "POST", f"{RPC}/add", json={"a": 2, "b": 3})
    assert r.status_code == 200 and r.json() == 5, (r.status_code, r.text)
    r = call(server, "GET", f"{RPC}/add", params={"a": "2", "b": "3"})
    assert r.status_code == 200 and r.json() == 5, (r.status_code, r.text)
    r = call(server, "GET", f"{RPC}/add", key=anon_key, params={"a": "-7", "b": "3"})
    assert r.status_code == 200 and r.json() == -4, (r.status_code, r.text)
    # No credential at all: 401 in the API's shape, as InsForge answers (the anon key at least is needed).
    r = call(server, "GET", f"{RPC}/add", key=None, params={"a": "-7", "b": "3"})
    assert r.status_code == 401 and r.json()["error"] == "AUTH_INVALID_CREDENTIALS", r.text
    rc = rpc_client(server)
    assert rc.rpc("add", {"a": 2, "b": 3}).execute().data == 5
    assert rc.rpc("add", {"a": 40, "b": 2}, get=True).execute().data == 42


def test_rpc_set_returning(server, library):
    r = call(server, "POST", f"{RPC}/books_by", json={"author": 2})
    rows = rows_of(r)
    assert sorted(ids(rows)) == [3, 4] and set(rows[0]) == BOOK_COLUMNS, rows
    r = call(server, "POST", f"{RPC}/books_by", params={"select": "id,title", "order": "id.desc", "limit": "1"},
             json={"author": 2})
    assert rows_of(r) == [{"id": 4, "title": "Mort"}]
    r = call(server, "POST", f"{RPC}/books_by", params={"select": "id", "price": "not.is.null"}, json={"author": 2})
    assert ids(rows_of(r)) == [3]
    r = call(server, "GET", f"{RPC}/books_by", params={"author": "1", "select": "id,authors(name)", "order": "id"})
    assert rows_of(r) == [{"id": 1, "authors": {"name": "Ursula Le Guin"}}, {"id": 2, "authors": {"name": "Ursula Le Guin"}}]
    data = rpc_client(server).rpc("books_by", {"author": 1}).select("id").eq("published", True).order("id", desc=True).execute().data
    assert ids(data) == [2, 1], data
    # a single object from a set
    r = call(server, "POST", f"{RPC}/books_by", params={"select": "title", "id": "eq.5"}, json={"author": 3},
             headers={"Accept": OBJECT})
    assert r.status_code == 200 and r.json() == {"title": "Kindred"}, r.text


def test_rpc_count_and_range(server, library):
    """A function's result set gets the same Content-Range and 200/206 as a table read."""
    r = call(server, "POST", f"{RPC}/books_by", params={"select": "id", "order": "id"}, json={"author": 1})
    assert ids(rows_of(r)) == [1, 2] and r.headers.get("Content-Range") == "0-1/*", dict(r.headers)
    r = call(server, "POST", f"{RPC}/books_by", params={"select": "id", "order": "id"}, json={"author": 1},
             headers={"Prefer": "count=exact"})
    assert ids(rows_of(r)) == [1, 2] and r.headers.get("Content-Range") == "0-1/2", dict(r.headers)
    r = call(server, "POST", f"{RPC}/books_by", params={"select": "id", "order": "id"}, json={"author": 1},
             headers={"Prefer": "count=exact", "Range": "0-0", "Range-Unit": "items"})
    assert (r.status_code, ids(r.json()), r.headers.get("Content-Range")) == (206, [1], "0-0/2"), (r.url, r.status_code, r.text)
    r = call(server, "GET", f"{RPC}/books_by", params={"author": "1", "select": "id", "order": "id", "limit": "1"},
             headers={"Prefer": "count=exact"})
    assert (r.status_code, ids(r.json()), r.headers.get("Content-Range")) == (206, [1], "0-0/2"), (r.url, r.status_code, r.text)


def test_rpc_runs_as_the_caller(server, library, anon_key):
    """books_by is SECURITY INVOKER: anon sees only the published books through it."""
    for key in (anon_key,):
        r = call(server, "POST", f"{RPC}/books_by", key=key, params={"select": "id", "order": "id"}, json={"author": 2})
        assert ids(rows_of(r)) == [3], r.text


def test_rpc_unknown_function_is_404_pgrst202(server, library):
    pg_error(call(server, "POST", f"{RPC}/no_such_fn", json={}), 404, "PGRST202")
    pg_error(call(server, "GET", f"{RPC}/no_such_fn"), 404, "PGRST202")
    # a known name with arguments it does not take
    pg_error(call(server, "POST", f"{RPC}/add", json={"x": 1, "y": 2}), 404, "PGRST202")
    with pytest.raises(APIError) as e:
        rpc_client(server).rpc("no_such_fn", {}).execute()
    assert e.value.code == "PGRST202"


# --------------------------------------------------------------------------- row-level security


@pytest.fixture
def user_books(server, library, alice, bob, cleanup_books):
    """Alice inserts books 101 and 102 (unpublished), Bob 103 (published); owner defaults to auth.uid()."""
    a = client(server, alice["token"])
    data = a.from_("books").insert([{"id": 101, "title": "Alice 1", "author_id": 1},
                                    {"id": 102, "title": "Alice 2", "author_id": 2}]).execute().data
    assert sorted(ids(data)) == [101, 102] and {r["owner"] for r in data} == {alice["id"]}, data
    r = rec(server, "POST", "books", key=bob["token"], json={"id": 103, "title": "Bob 1", "published": True},
            headers={"Prefer": "return=representation"})
    assert rows_of(r, 201)[0]["owner"] == bob["id"], r.text
    assert db(library, "SELECT string_agg(id || ':' || owner, ',' ORDER BY id) FROM books WHERE id >= 100") == \
        f"101:{alice['id']},102:{alice['id']},103:{bob['id']}"
    return a


def test_rls_users_see_only_their_own(server, alice, bob, user_books):
    assert ids(user_books.from_("books").select("id").order("id").execute().data) == [101, 102]
    r = rec(server, "GET", "books", key=bob["token"], params={"select": "id,owner"})
    assert rows_of(r) == [{"id": 103, "owner": bob["id"]}]
    r = rec(server, "GET", "books", key=alice["token"], params={"select": "id"}, headers={"Prefer": "count=exact"})
    assert r.headers.get("Content-Range") == "0-1/2", dict(r.headers)
    r = rec(server, "GET", "books", key=alice["token"], params={"id": "eq.103"}, headers={"Accept": OBJECT})
    pg_error(r, 406, "PGRST116")


def test_rls_cannot_update_or_delete_other_users_rows(server, library, alice, bob, user_books):
    r = rec(server, "PATCH", "books", key=alice["token"], params={"id": "eq.103"}, json={"title": "hacked"},
            headers={"Prefer": "return=representation"})
    assert rows_of(r) == [], r.text
    r = rec(server, "DELETE", "books", key=alice["token"], params={"id": "eq.103"},
            headers={"Prefer": "return=representation"})
    assert rows_of(r) == [], r.text
    r = rec(server, "DELETE", "books", key=alice["token"], params={"id": "eq.103"})
    assert r.status_code == 204, (r.status_code, r.text)
    assert db(library, "SELECT title FROM books WHERE id = 103") == "Bob 1"
    # without a filter, an update reaches only the caller's rows
    data = user_books.from_("books").update({"price": 5}).gte("id", 0).execute().data
    assert sorted(ids(data)) == [101, 102], data
    assert db(library, "SELECT string_agg(id || ':' || coalesce(price::text, '-'), ',' ORDER BY id) FROM books") == \
        "1:8.99,2:9.50,3:7.25,4:-,5:12.00,6:1.00,101:5,102:5,103:-"
    # the dataset rows (no owner) are out of reach as well
    r = rec(server, "DELETE", "books", key=bob["token"], params={"id": "lt.100"}, headers={"Prefer": "return=representation"})
    assert rows_of(r) == []
    dataset_intact(library)


def test_rls_insert_or_update_with_another_owner_is_403_42501(server, library, alice, bob, user_books, anon_key):
    r = rec(server, "POST", "books", key=alice["token"], json={"id": 110, "title": "Forged", "owner": bob["id"]})
    pg_error(r, 403, "42501")
    with pytest.raises(APIError) as e:
        user_books.from_("books").insert({"id": 111, "title": "Forged", "owner": bob["id"]}).execute()
    assert e.value.code == "42501"
    # moving one's own row to someone else fails the WITH CHECK
    r = rec(server, "PATCH", "books", key=alice["token"], params={"id": "eq.101"}, json={"owner": bob["id"]})
    pg_error(r, 403, "42501")
    # anon has no insert policy: 401 for anon
    pg_error(rec(server, "POST", "books", key=anon_key, json={"id": 112, "title": "Anon"}), 401, "42501")
    assert db(library, "SELECT string_agg(id || ':' || owner, ',' ORDER BY id) FROM books WHERE id >= 100") == \
        f"101:{alice['id']},102:{alice['id']},103:{bob['id']}"


def test_rls_anon_sees_published_admin_sees_all(server, anon_key, user_books):
    for key in (anon_key,):
        r = rec(server, "GET", "books", key=key, params={"select": "id", "order": "id"})
        assert ids(rows_of(r)) == [1, 2, 3, 103], (key, r.text)
        with_client = client(server, key).from_("books").select("id").order("id").execute().data
        assert ids(with_client) == [1, 2, 3, 103]
    assert ids(client(server).from_("books").select("id").order("id").execute().data) == ALL_IDS + [101, 102, 103]
    # anon cannot change the published rows it can see
    r = rec(server, "PATCH", "books", key=anon_key, params={"id": "eq.1"}, json={"title": "x"},
            headers={"Prefer": "return=representation"})
    assert rows_of(r) == []


# --------------------------------------------------------------------------- injection


INJECTIONS = [
    [("select", "id;drop table books")],
    [("select", '"id\\"; drop')],
    [("select", "*,(select 1)")],
    [("select", "id,title::text);drop table books;--")],
    [("select", "id,title::text;drop")],
    [("select", "meta->>'x');drop table books;--")],
    [("select", "id,authors(name);drop table books")],
    [("order", "id;delete")],
    [("order", "id);delete from books;--")],
    [("order", "id.desc;drop table books")],
    [("id", "eq.1);drop table books;--")],
    [("id", "in.(1);drop table books;--")],
    [("id", "xx.1")],
    [("id", "not.xx.1")],
    [("id;drop table books", "eq.1")],
    [('"id\\"; drop', "eq.1")],
    [("or", "(id.eq.1);drop table books;--")],
    [("or", "(id.eq.1,title.xx.2)")],
    [("limit", "1;drop table books")],
    [("offset", "0);drop table books;--")],
]


@pytest.fixture(scope="module")
def victims(server, library):
    """A table for the writing half of the injection tests: (id int pk, title text, meta jsonb), rows 1-3."""
    raw_sql(server, "CREATE TABLE victims (id int PRIMARY KEY, title text, meta jsonb); "
                    "GRANT ALL ON victims TO anon, authenticated, project_admin")
    wait_for_table(server, "victims")
    return "victims"


VICTIM_ROWS = "1:one|2:two|3:three"


def reseed_victims(deployment):
    db(deployment, "TRUNCATE victims; INSERT INTO victims VALUES (1, 'one', '{}'), (2, 'two', '{}'), (3, 'three', '{}')")


def victims_left(deployment):
    return db(deployment, "SELECT coalesce(string_agg(id || ':' || title, '|' ORDER BY id), '') FROM victims")


@pytest.mark.parametrize("params", INJECTIONS, ids=[f"{k}={v}" for p in INJECTIONS for k, v in p])
def test_injection_is_refused_with_400(server, library, victims, params):
    """Read on books, delete and update on victims: each refused with PostgREST's 400, nothing changed. All three
    requests are made before anything is asserted, so a failure reports each of them."""
    reseed_victims(library)
    read = rec(server, "GET", "books", params=params)
    books_ok = db(library, "SELECT count(*) FROM books WHERE id < 100") == "6"
    deleted = rec(server, "DELETE", victims, params=params)
    after_delete = victims_left(library)
    reseed_victims(library)
    patched = rec(server, "PATCH", victims, params=params, json={"title": "changed"})
    after_patch = victims_left(library)
    outcome = {"GET": (read.status_code, books_ok), "DELETE": (deleted.status_code, after_delete),
               "PATCH": (patched.status_code, after_patch)}
    assert outcome == {"GET": (400, True), "DELETE": (400, VICTIM_ROWS), "PATCH": (400, VICTIM_ROWS)}, outcome
    for r in (read, deleted, patched):
        pg_error(r, 400)
    dataset_intact(library)


def test_injection_in_writes_is_refused(server, library):
    pg_error(rec(server, "POST", "books", params={"on_conflict": "id);drop table books;--"},
                 json={"id": 1, "title": "x"}, headers={"Prefer": "resolution=merge-duplicates"}), 400)
    pg_error(rec(server, "POST", "books", params={"columns": "id,title);drop table books;--"},
                 json={"id": 900, "title": "x"}), 400)
    pg_error(rec(server, "POST", "books", json={'id"); drop table books;--': 1}), 400, "PGRST204")
    pg_error(rec(server, "PATCH", "books", params={"id": "eq.1"}, json={"title = 'x'; drop table books;--": 1}),
             400, "PGRST204")
    pg_error(rec(server, "PATCH", "books", params={"id": "xx.1"}, json={"title": "x"}), 400)
    dataset_intact(library)


def test_values_are_bound_not_spliced(server, library):
    for value in ("x' OR '1'='1", "x'); drop table books;--", "' OR 1=1 --"):
        assert rows_of(rec(server, "GET", "books", params={"title": f"eq.{value}"})) == []
        assert rows_of(rec(server, "GET", "books", params={"title": f"in.(\"{value}\",nothing)"})) == []
        r = rec(server, "PATCH", "books", params={"title": f"eq.{value}"}, json={"price": 0},
                headers={"Prefer": "return=representation"})
        assert rows_of(r) == []
    # a title that is itself SQL round-trips as data
    r = rec(server, "GET", "books", params={"select": "id", "title": "eq.Untitled, draft"})
    assert ids(rows_of(r)) == [6]
    dataset_intact(library)


# --------------------------------------------------------------------------- events


def table_events(server, after):
    return [e for e in server.all_events(after=after, category="table") if e["streamId"] == "table-books"]


def test_writes_append_record_events(server, library, alice, bob, cleanup_books):
    head = server.head()
    a = client(server, alice["token"])
    a.from_("books").insert([{"id": 120, "title": "E1"}, {"id": 121, "title": "E2"}]).execute()
    r = rec(server, "PATCH", "books", key=alice["token"], params={"id": "eq.121"}, json={"price": 3})
    assert r.status_code == 204, r.text
    r = rec(server, "DELETE", "books", key=alice["token"], params={"id": "in.(120,121)"})
    assert r.status_code == 204, r.text
    events = table_events(server, head)
    assert [(e["type"], e["data"]["count"]) for e in events] == \
        [("RecordsInserted", 2), ("RecordsUpdated", 1), ("RecordsDeleted", 2)], events
    for e in events:
        assert e["metadata"]["actor"] == {"type": "user", "id": alice["id"]}, e["metadata"]
        assert e["data"]["table"] == "books" and e["data"]["primaryKey"] == ["id"], e["data"]
    assert sorted(x["id"] for x in events[0]["data"]["records"]) == [120, 121]
    assert all(x["owner"] == alice["id"] for x in events[0]["data"]["records"])
    upd = events[1]["data"]["records"][0]
    assert upd["old"]["price"] is None and upd["new"]["price"] == 3 and upd["new"]["id"] == 121, upd

    # writes that change nothing or fail append nothing: no match, RLS-hidden row, violations
    head = server.head()
    rec(server, "POST", "books", key=bob["token"], json={"id": 130, "title": "Bob's"})
    bob_head = server.head()
    assert rec(server, "PATCH", "books", key=alice["token"], params={"id": "eq.130"}, json={"price": 1}).status_code == 204
    assert rec(server, "DELETE", "books", key=alice["token"], params={"id": "eq.130"}).status_code == 204
    assert rec(server, "PATCH", "books", params={"id": "eq.999"}, json={"price": 1}).status_code == 204
    pg_error(rec(server, "POST", "books", json=[{"id": 131, "title": "ok"}, {"id": 1, "title": "dup"}]), 409, "23505")
    pg_error(rec(server, "POST", "books", key=alice["token"], json={"id": 132, "title": "x", "owner": bob["id"]}), 403)
    events = table_events(server, head)
    assert [(e["type"], e["data"]["count"], e["metadata"]["actor"].get("id")) for e in events] == \
        [("RecordsInserted", 1, bob["id"])], events
    assert server.head() == bob_head

    # the admin key's writes are the admin's
    r = rec(server, "PATCH", "books", params={"id": "eq.130"}, json={"price": 2})
    assert r.status_code == 204
    events = table_events(server, bob_head)
    assert [(e["type"], e["data"]["count"]) for e in events] == [("RecordsUpdated", 1)], events
    assert events[0]["metadata"]["actor"]["type"] == "admin", events[0]["metadata"]
    # and the category filter of the events API shows them
    r = call(server, "GET", "/api/events", params={"category": "table", "after": bob_head})
    assert r.status_code == 200, r.text
    assert [e["type"] for e in r.json()["data"] if e["streamId"] == "table-books"] == ["RecordsUpdated"]
