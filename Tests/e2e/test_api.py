"""The HTTP API of one server: health, docs, metrics, credentials, keys, the event log routes, errors, CORS."""

import datetime as dt
import json
import re
import threading
import time

import lz4.frame
import pytest
import requests

from conftest import assert_error, ev, new_id, stats_counts

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ORIGIN = "http://example.test"


def parse_ts(s):
    return dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc)


# --------------------------------------------------------------------------- health, docs, metrics


def test_health(server):
    r = server.get("/api/health", key=None)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["status"] == "ok"
    assert body["service"] == "insforge"
    assert isinstance(body["version"], str) and body["version"]
    assert TIMESTAMP.match(body["timestamp"]), body["timestamp"]
    assert abs((parse_ts(body["timestamp"]) - dt.datetime.now(dt.timezone.utc)).total_seconds()) < 120
    assert r.headers.get("X-Request-Id")


def test_health_with_admin_key(server):
    assert server.get("/api/health").status_code == 200
    assert server.get("/api/health", key=None, headers={"x-api-key": server.admin_key}).status_code == 200


def test_request_id_is_echoed_or_generated(server):
    r = server.get("/api/health", key=None, headers={"X-Request-Id": "e2e-req-123"})
    assert r.headers["X-Request-Id"] == "e2e-req-123"
    # errors carry it too
    r = server.get("/api/nope", key=None, headers={"X-Request-Id": "e2e-req-404"})
    assert r.status_code == 404
    assert r.headers["X-Request-Id"] == "e2e-req-404"
    # an insane one (too long) is replaced
    r = server.get("/api/health", key=None, headers={"X-Request-Id": "x" * 300})
    assert r.headers["X-Request-Id"] and r.headers["X-Request-Id"] != "x" * 300
    # none sent: a fresh one per request
    a = server.get("/api/health", key=None).headers["X-Request-Id"]
    b = server.get("/api/health", key=None).headers["X-Request-Id"]
    assert a and b and a != b


def test_openapi_document(server):
    r = server.get("/api/openapi.json", key=None)
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    for path in ["/api/health", "/api/events", "/api/events/streams/{streamId}", "/api/events/export",
                 "/api/metadata/api-key", "/api/metadata/anon-key"]:
        assert path in doc["paths"], (path, sorted(doc["paths"]))
    assert "post" in doc["paths"]["/api/events/streams/{streamId}"]
    assert "get" in doc["paths"]["/api/events/streams/{streamId}"]


def test_metrics(server, anon_key):
    server.append_ok("metric-1", [ev("MetricTouched")])
    server.get("/api/health", key=None)
    # Metrics name routes, tables and counts: admins only.
    assert server.get("/metrics", key=None).status_code == 401
    assert server.get("/metrics", key=anon_key).status_code == 403
    r = server.get("/metrics")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    text = r.text
    assert "insforge_events_appended_total" in text
    m = re.search(r"^insforge_events_appended_total(?:\{[^}]*\})? (\d+(?:\.\d+)?)$", text, re.M)
    assert m and float(m.group(1)) >= 1, text[:2000]
    # hummingbird's request metrics, labelled by route
    assert re.search(r'^\w+\{[^}]*http_route="/api/health"', text, re.M), text[:2000]
    assert "http_server_request_duration" in text or "hb_request" in text


# --------------------------------------------------------------------------- credentials

BAD_IK_SHAPE = "ik_123"
UNKNOWN_IK = "ik_" + "0" * 64
BAD_ANON_SHAPE = "anon_xyz"
UNKNOWN_ANON = "anon_" + "f" * 64
JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"


def test_no_credential_on_admin_route(server):
    for path in ["/api/events", "/api/events/stats", "/api/metadata/api-key", "/api/events/export"]:
        body = assert_error(server.get(path, key=None), 401, "AUTH_INVALID_CREDENTIALS")
        assert body["message"]
    assert_error(server.append("nokey-1", [ev()], key=None), 401, "AUTH_INVALID_CREDENTIALS")


@pytest.mark.parametrize("path", ["/api/events", "/api/health"])
@pytest.mark.parametrize("token", [BAD_IK_SHAPE, UNKNOWN_IK, BAD_ANON_SHAPE, UNKNOWN_ANON, "ik_" + "g" * 64])
def test_bad_api_key_is_refused_even_on_public_routes(server, path, token):
    assert_error(server.get(path, key=token), 401, "AUTH_INVALID_API_KEY")
    assert_error(server.get(path, key=None, headers={"x-api-key": token}), 401, "AUTH_INVALID_API_KEY")


@pytest.mark.parametrize("path", ["/api/events", "/api/health"])
@pytest.mark.parametrize("token", [JWT, "whatever", "sk_" + "a" * 64])
def test_other_bearer_tokens_are_unauthorized(server, path, token):
    assert_error(server.get(path, key=token), 401, "AUTH_UNAUTHORIZED")


def test_basic_auth_is_unauthorized(server):
    assert_error(server.get("/api/events", key=None, headers={"Authorization": "Basic x"}), 401, "AUTH_UNAUTHORIZED")
    assert_error(server.get("/api/health", key=None, headers={"Authorization": "Basic dXNlcjpwYXNz"}), 401,
                 "AUTH_UNAUTHORIZED")


def test_admin_key_via_x_api_key(server):
    r = server.get("/api/events", key=None, headers={"x-api-key": server.admin_key})
    assert r.status_code == 200, r.text


def test_metadata_api_key(server):
    r = server.get("/api/metadata/api-key")
    assert r.status_code == 200, r.text
    assert r.json() == {"apiKey": server.admin_key}


def test_anon_key(server, anon_key):
    assert re.fullmatch(r"anon_[0-9a-f]{64}", anon_key), anon_key
    assert server.get("/api/health", key=anon_key).status_code == 200
    assert server.get("/api/health", key=None, headers={"x-api-key": anon_key}).status_code == 200
    assert_error(server.get("/api/events", key=anon_key), 403, "FORBIDDEN")
    assert_error(server.get("/api/metadata/api-key", key=anon_key), 403, "FORBIDDEN")
    assert_error(server.append("anon-1", [ev()], key=anon_key), 403, "FORBIDDEN")
    assert_error(server.post("/api/secrets/anon-key/rotate", key=anon_key), 403, "FORBIDDEN")


def test_anon_key_rotation(server):
    old = server.get("/api/metadata/anon-key").json()["anonKey"]
    head_before = server.head()
    r = server.post("/api/secrets/anon-key/rotate")
    assert r.status_code in (200, 201), r.text
    body = r.json()
    new = body["anonKey"]
    assert re.fullmatch(r"anon_[0-9a-f]{64}", new) and new != old
    until = parse_ts(body["previousKeyValidUntil"])
    remaining = (until - dt.datetime.now(dt.timezone.utc)).total_seconds()
    assert 86400 - 600 < remaining < 86400 + 600, body
    # both keys work now; the metadata route names the new one
    assert server.get("/api/health", key=new).status_code == 200
    assert server.get("/api/health", key=old).status_code == 200
    assert_error(server.get("/api/events", key=new), 403, "FORBIDDEN")
    assert server.get("/api/metadata/anon-key").json() == {"anonKey": new}
    # the rotation is an event of the log, by the admin
    events = server.all_events(after=head_before, stream="apikey-anon")
    assert [e["type"] for e in events] == ["ApiKeyIssued"]
    assert events[0]["metadata"]["actor"]["type"] == "admin"
    assert new not in json.dumps(events) and old not in json.dumps(events)  # keys are stored only encrypted


# --------------------------------------------------------------------------- appending and reading


def test_first_events_are_the_keys(server):
    first = server.get("/api/events", params={"after": 0, "limit": 2}).json()["data"]
    assert [(e["position"], e["streamId"], e["type"]) for e in first] == [
        (1, "apikey-admin", "ApiKeyIssued"), (2, "apikey-anon", "ApiKeyIssued")]


def test_append_and_read_back(server):
    head = server.head()
    payload = {"orderId": "o-1", "total": 12.5, "items": [1, 2], "nested": {"ok": True, "none": None}}
    eid = new_id()
    r = server.append("order-100", [ev("OrderPlaced", payload, eid), ev("OrderPaid", {"amount": 12.5})],
                      headers={"X-Request-Id": "append-req-1"})
    assert r.status_code == 201, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.headers["X-Request-Id"] == "append-req-1"
    body = r.json()
    assert body == {"streamId": "order-100", "positions": [head + 1, head + 2], "nextExpectedVersion": 2,
                    "duplicate": False}

    stream = server.get("/api/events/streams/order-100")
    assert stream.status_code == 200
    s = stream.json()
    assert s["streamId"] == "order-100" and s["version"] == 2
    assert [e["streamVersion"] for e in s["data"]] == [1, 2]
    first = s["data"][0]
    assert set(first) >= {"position", "streamId", "streamVersion", "eventId", "type", "data", "metadata", "recordedAt"}
    assert first["position"] == head + 1
    assert first["streamId"] == "order-100"
    assert first["eventId"] == eid
    assert first["type"] == "OrderPlaced"
    assert first["data"] == payload
    assert first["metadata"]["actor"]["type"] == "admin"
    assert first["metadata"]["requestId"] == "append-req-1"
    assert TIMESTAMP.match(first["recordedAt"])
    assert UUID_RE.match(s["data"][1]["eventId"])

    glob = server.get("/api/events", params={"after": head}).json()
    assert [e["position"] for e in glob["data"]] == [head + 1, head + 2]
    assert glob["data"] == s["data"]
    assert glob["nextPosition"] == head + 2


def test_stream_read_paging(server):
    server.append_ok("page-1", [ev("Paged", {"i": i}) for i in range(1, 8)])
    s = server.get("/api/events/streams/page-1", params={"afterVersion": 2, "limit": 3}).json()
    assert [e["data"]["i"] for e in s["data"]] == [3, 4, 5]
    assert [e["streamVersion"] for e in s["data"]] == [3, 4, 5]
    assert s["version"] == 5
    s = server.get("/api/events/streams/page-1", params={"afterVersion": 7}).json()
    assert s["data"] == []
    empty = server.get("/api/events/streams/nothing-here").json()
    assert empty["data"] == [] and empty["version"] == 0 and empty["streamId"] == "nothing-here"
    assert_error(server.get("/api/events/streams/nodash"), 400, "INVALID_INPUT")
    assert_error(server.get("/api/events/streams/page-1", params={"afterVersion": "-1"}), 400, "INVALID_INPUT")
    assert_error(server.get("/api/events/streams/page-1", params={"limit": "0"}), 400, "INVALID_INPUT")


def test_expected_version(server):
    s = "ev-" + new_id()[:8]
    assert_error(server.append(s, [ev()], expected="stream_exists"), 409, "CONFLICT")
    assert_error(server.append(s, [ev()], expected=3), 409, "CONFLICT")
    assert server.append_ok(s, [ev()], expected="no_stream")["nextExpectedVersion"] == 1
    assert_error(server.append(s, [ev()], expected="no_stream"), 409, "CONFLICT")
    assert_error(server.append(s, [ev()], expected=0), 409, "CONFLICT")
    assert_error(server.append(s, [ev()], expected=2), 409, "CONFLICT")
    assert server.append_ok(s, [ev(), ev()], expected=1)["nextExpectedVersion"] == 3
    assert server.append_ok(s, [ev()], expected="stream_exists")["nextExpectedVersion"] == 4
    assert server.append_ok(s, [ev()], expected="any")["nextExpectedVersion"] == 5
    assert server.append_ok(s, [ev()])["nextExpectedVersion"] == 6
    s2 = "ev-" + new_id()[:8]
    assert server.append_ok(s2, [ev()], expected=0)["nextExpectedVersion"] == 1
    versions = [e["streamVersion"] for e in server.get(f"/api/events/streams/{s}").json()["data"]]
    assert versions == [1, 2, 3, 4, 5, 6]


def test_event_id_deduplication(server):
    a, b = new_id(), new_id()
    first = server.append_ok("dedup-1", [ev("Deduped", {"n": 1}, a), ev("Deduped", {"n": 2}, b)])
    assert first["duplicate"] is False
    head = server.head()
    again = server.append_ok("dedup-1", [ev("Deduped", {"n": 1}, a), ev("Deduped", {"n": 2}, b)])
    assert again["duplicate"] is True
    assert again["positions"] == first["positions"]
    assert again["nextExpectedVersion"] == first["nextExpectedVersion"]
    assert server.head() == head  # nothing new in the log
    # a single id of the pair, retried alone
    one = server.append_ok("dedup-1", [ev("Deduped", {"n": 1}, a)])
    assert one["duplicate"] is True and one["positions"] == first["positions"][:1]
    # the same id in another stream is a conflict
    assert_error(server.append("dedup-2", [ev("Deduped", {}, a)]), 409, "CONFLICT")
    assert server.head() == head
    assert server.get("/api/events/streams/dedup-2").json()["data"] == []
    assert len(server.get("/api/events/streams/dedup-1").json()["data"]) == 2


def test_idempotency_key(server):
    key = "idem-" + new_id()
    body = [ev("Idem", {"x": 1}), ev("Idem", {"x": 2})]
    first = server.append_ok("idem-1", body, headers={"Idempotency-Key": key})
    assert first["duplicate"] is False
    head = server.head()
    again = server.append_ok("idem-1", body, headers={"Idempotency-Key": key})
    assert again["duplicate"] is True and again["positions"] == first["positions"]
    assert server.head() == head
    other = server.append_ok("idem-1", body, headers={"Idempotency-Key": key + "-other"})
    assert other["duplicate"] is False and other["positions"] == [head + 1, head + 2]
    # without a key, the same body is appended again
    plain = server.append_ok("idem-1", body)
    assert plain["duplicate"] is False and plain["positions"] == [head + 3, head + 4]


RAW_BAD_BODIES = [
    ("not json", b"this is not json"),
    ("truncated json", b'{"events": ['),
    ("array body", b'[{"type": "A", "data": {}}]'),
    ("string body", b'"events"'),
    ("null body", b"null"),
    ("empty body", b""),
]


@pytest.mark.parametrize("label,raw", RAW_BAD_BODIES, ids=[x[0] for x in RAW_BAD_BODIES])
def test_append_rejects_non_object_bodies(server, label, raw):
    head = server.head()
    r = server.post("/api/events/streams/bad-1", data=raw, headers={"Content-Type": "application/json"})
    assert_error(r, 400, "INVALID_INPUT")
    assert server.head() == head


DUP = new_id()
BAD_BODIES = [
    ("events missing", {}),
    ("events null", {"events": None}),
    ("events empty", {"events": []}),
    ("events object", {"events": {"type": "A", "data": {}}}),
    ("events string", {"events": "A"}),
    ("too many events", {"events": [{"type": "A", "data": {}}] * 1001}),
    ("event not object", {"events": ["A"]}),
    ("event number", {"events": [1]}),
    ("missing type", {"events": [{"data": {}}]}),
    ("type not string", {"events": [{"type": 5, "data": {}}]}),
    ("type with space", {"events": [{"type": "bad type", "data": {}}]}),
    ("type lower", {"events": [{"type": "lower", "data": {}}]}),
    ("type empty", {"events": [{"type": "", "data": {}}]}),
    ("type snake", {"events": [{"type": "Order_Placed", "data": {}}]}),
    ("data missing", {"events": [{"type": "A"}]}),
    ("data array", {"events": [{"type": "A", "data": [1, 2]}]}),
    ("data string", {"events": [{"type": "A", "data": "x"}]}),
    ("data number", {"events": [{"type": "A", "data": 3}]}),
    ("data null", {"events": [{"type": "A", "data": None}]}),
    ("eventId not uuid", {"events": [{"type": "A", "data": {}, "eventId": "abc"}]}),
    ("eventId number", {"events": [{"type": "A", "data": {}, "eventId": 7}]}),
    ("expectedVersion -1", {"events": [{"type": "A", "data": {}}], "expectedVersion": -1}),
    ("expectedVersion true", {"events": [{"type": "A", "data": {}}], "expectedVersion": True}),
    ("expectedVersion weird", {"events": [{"type": "A", "data": {}}], "expectedVersion": "weird"}),
    ("expectedVersion float", {"events": [{"type": "A", "data": {}}], "expectedVersion": 1.5}),
    ("expectedVersion object", {"events": [{"type": "A", "data": {}}], "expectedVersion": {}}),
    ("duplicate eventIds", {"events": [{"type": "A", "data": {}, "eventId": DUP},
                                       {"type": "A", "data": {}, "eventId": DUP}]}),
    ("second event bad", {"events": [{"type": "A", "data": {}}, {"type": "A", "data": []}]}),
]


@pytest.mark.parametrize("label,body", BAD_BODIES, ids=[x[0] for x in BAD_BODIES])
def test_append_rejects_bad_input(server, label, body):
    head = server.head()
    r = server.post("/api/events/streams/bad-1", json=body)
    assert_error(r, 400, "INVALID_INPUT")
    assert server.head() == head


@pytest.mark.parametrize("stream", ["nodash", "Order-1", "1order-1", "ord er-1", "-1", "order-", "or.der-1"])
def test_append_rejects_bad_stream_ids(server, stream):
    head = server.head()
    r = server.post(f"/api/events/streams/{stream}", json={"events": [{"type": "A", "data": {}}]})
    assert_error(r, 400, "INVALID_INPUT")
    assert server.head() == head


def test_append_1000_events_is_allowed(server):
    head = server.head()
    body = server.append_ok("bulk-1", [ev("Bulk", {"i": i}) for i in range(1000)])
    assert body["positions"] == list(range(head + 1, head + 1001))
    assert body["nextExpectedVersion"] == 1000


def big_body(size):
    """An append body of exactly `size` bytes (events of <= 250 KB data each)."""
    events = [{"type": "Big", "data": {"x": "a" * 250_000}} for _ in range(4)]
    base = json.dumps({"events": events + [{"type": "Big", "data": {"x": ""}}]})
    pad = size - len(base)
    assert 0 <= pad <= 250_000
    events.append({"type": "Big", "data": {"x": "b" * pad}})
    raw = json.dumps({"events": events}).encode()
    assert len(raw) == size
    return raw


def test_body_of_exactly_1_mib_is_accepted(server):
    r = server.post("/api/events/streams/big-1", data=big_body(1 << 20), headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text[:300]


def test_body_over_1_mib_is_413(server):
    head = server.head()
    try:
        r = server.post("/api/events/streams/big-2", data=big_body((1 << 20) + 1),
                        headers={"Content-Type": "application/json"})
    except requests.ConnectionError as e:  # the server may close early; that is not the documented answer
        pytest.fail(f"connection error instead of a 413 response: {e}")
    assert_error(r, 413, "PAYLOAD_TOO_LARGE")
    assert server.head() == head


# --------------------------------------------------------------------------- reading the log


def test_positions_are_dense(server):
    events = server.all_events(page=250)
    assert [e["position"] for e in events] == list(range(1, len(events) + 1))
    assert server.head() == len(events)
    per_stream = {}
    for e in events:
        per_stream.setdefault(e["streamId"], []).append(e["streamVersion"])
    for stream, versions in per_stream.items():
        assert versions == list(range(1, len(versions) + 1)), stream
    assert len({e["eventId"] for e in events}) == len(events)


def test_read_filters(server):
    server.append_ok("filt-a", [ev("FiltOne", {"i": 1}), ev("FiltTwo", {"i": 2})])
    server.append_ok("filt-b", [ev("FiltOne", {"i": 3})])
    server.append_ok("filtx-a", [ev("FiltOne", {"i": 4})])
    by_cat = server.all_events(category="filt")
    assert [e["data"]["i"] for e in by_cat] == [1, 2, 3]
    by_stream = server.all_events(stream="filt-a")
    assert [e["data"]["i"] for e in by_stream] == [1, 2]
    by_type = server.all_events(type="FiltOne")
    assert [e["data"]["i"] for e in by_type] == [1, 3, 4]
    both = server.all_events(type="FiltOne,FiltTwo", category="filt")
    assert [e["data"]["i"] for e in both] == [1, 2, 3]
    assert server.all_events(category="nosuchcat") == []


def test_read_limit_after_next_position(server):
    head = server.head()
    r = server.get("/api/events", params={"after": 0, "limit": 1}).json()
    assert [e["position"] for e in r["data"]] == [1] and r["nextPosition"] == 1
    r = server.get("/api/events", params={"after": 1, "limit": 3}).json()
    assert [e["position"] for e in r["data"]] == [2, 3, 4] and r["nextPosition"] == 4
    r = server.get("/api/events", params={"after": head + 1000}).json()
    assert r == {"data": [], "nextPosition": head + 1000}
    r = server.get("/api/events", params={"limit": 1000}).json()
    assert len(r["data"]) == min(1000, head)
    r = server.get("/api/events").json()  # defaults
    assert r["data"][0]["position"] == 1


@pytest.mark.parametrize("params", [
    {"limit": "0"}, {"limit": "1001"}, {"limit": "x"}, {"limit": "-5"}, {"limit": "1.5"},
    {"after": "-1"}, {"after": "abc"},
    {"category": "Bad"}, {"category": "1x"}, {"category": "a-b"},
    {"type": "lower"}, {"type": "Bad Type"}, {"type": "Good,bad"},
    {"stream": "nodash"}, {"stream": "Order-1"},
], ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items()))
def test_read_rejects_bad_query(server, params):
    assert_error(server.get("/api/events", params=params), 400, "INVALID_INPUT")


def test_export_ndjson(server):
    head = server.head()
    r = server.get("/api/events/export")
    assert r.status_code == 200
    lines = r.content.decode().splitlines()
    exported = [json.loads(line) for line in lines]
    assert r.content.endswith(b"\n")
    assert exported == server.all_events()[:len(exported)]
    assert [e["position"] for e in exported] == list(range(1, head + 1))
    r2 = server.get("/api/events/export", params={"after": head - 3, "format": "ndjson"})
    assert [json.loads(line)["position"] for line in r2.content.decode().splitlines()] == [head - 2, head - 1, head]
    assert server.get("/api/events/export", params={"after": head + 5}).content == b""


def test_export_lz4_frame_matches_ndjson(server):
    server.append_ok("export-1", [ev("Exported", {"i": i, "text": "x" * 100}) for i in range(200)])
    plain = server.get("/api/events/export", params={"format": "ndjson"})
    packed = server.get("/api/events/export", params={"format": "ndjson.lz4"})
    assert plain.status_code == 200 and packed.status_code == 200
    assert packed.content[:4] == b"\x04\x22\x4d\x18"  # LZ4 frame magic
    assert lz4.frame.decompress(packed.content) == plain.content
    assert len(packed.content) < len(plain.content)
    some = server.get("/api/events/export", params={"format": "ndjson.lz4", "after": 5}).content
    assert lz4.frame.decompress(some) == server.get("/api/events/export", params={"after": 5}).content


@pytest.mark.parametrize("params", [{"format": "zip"}, {"format": "json"}, {"after": "-1"}, {"after": "x"}])
def test_export_rejects_bad_query(server, params):
    assert_error(server.get("/api/events/export", params=params), 400, "INVALID_INPUT")


def test_stats_counts_are_exact(server):
    expected = {("statcat", "StatA"): 7, ("statcat", "StatB"): 3, ("statcat", "StatC"): 1}
    last = {}
    for i in range(7):
        last["StatA"] = server.append_ok(f"statcat-{i % 3}", [ev("StatA", {"i": i})])["positions"][-1]
    r = server.append_ok("statcat-9", [ev("StatB"), ev("StatB"), ev("StatB"), ev("StatC")])
    last["StatB"], last["StatC"] = r["positions"][2], r["positions"][3]
    stats = server.wait_projection_caught_up()
    assert stats_counts(stats, "statcat") == expected
    for t in stats["types"]:
        if t["category"] == "statcat":
            assert t["lastPosition"] == last[t["type"]]
    assert stats["totalEvents"] == stats["head"]
    assert stats["parkedEvents"] == 0
    proj = [p for p in stats["projections"] if p["name"] == "event_stats"]
    assert len(proj) == 1
    assert proj[0]["lag"] == 0 and proj[0]["ownedHere"] is True and not proj[0].get("lastError")
    # the counts of every type equal the log
    log_counts = {}
    for e in server.all_events():
        key = (e["streamId"].split("-", 1)[0], e["type"])
        log_counts[key] = log_counts.get(key, 0) + 1
    assert stats_counts(stats) == log_counts


def test_stats_response_is_a_consistent_snapshot(server):
    """Every stats answer describes one state: event_stats counts every event, so the counts of a
    response must add up to that response's checkpoint (and the checkpoint cannot pass the head).
    Polled while a bounded load (4 writers, <= 800 appends, <= 6 s) keeps the projection moving."""
    stop = threading.Event()
    budget = [800]
    lock = threading.Lock()
    deadline = time.monotonic() + 6

    def write(t):
        session = requests.Session()
        while not stop.is_set() and time.monotonic() < deadline:
            with lock:
                if budget[0] <= 0:
                    return
                budget[0] -= 1
            session.post(server.url(f"/api/events/streams/snap-{t}"), timeout=15,
                         headers={"Authorization": f"Bearer {server.admin_key}"},
                         json={"events": [{"type": "Snapped", "data": {}}]})

    writers = [threading.Thread(target=write, args=(t,), daemon=True) for t in range(4)]
    for w in writers:
        w.start()
    inconsistent, seen = [], 0
    try:
        while any(w.is_alive() for w in writers) and time.monotonic() < deadline + 1:
            stats = server.stats()
            seen += 1
            checkpoint = [p for p in stats["projections"] if p["name"] == "event_stats"][0]["checkpoint"]
            total = sum(t["count"] for t in stats["types"])
            if total != checkpoint or checkpoint > stats["head"]:
                inconsistent.append({"head": stats["head"], "checkpoint": checkpoint, "sumOfCounts": total})
    finally:
        stop.set()
        for w in writers:
            w.join(30)
    assert not inconsistent, f"{len(inconsistent)} of {seen} stats responses mix states, e.g. {inconsistent[:3]}"


def test_parked_events(server):
    r = server.get("/api/events/parked")
    assert r.status_code == 200
    assert r.json() == {"data": []}
    assert_error(server.get("/api/events/parked", key=None), 401, "AUTH_INVALID_CREDENTIALS")


# --------------------------------------------------------------------------- errors and CORS


@pytest.mark.parametrize("method,path", [("GET", "/api/nope"), ("GET", "/nothing"), ("POST", "/api/health/x"),
                                         ("GET", "/api/events/streams"), ("DELETE", "/api/zzz")])
def test_unknown_route_is_404_json(server, method, path):
    assert_error(server.request(method, path, key=None), 404, "NOT_FOUND")


def test_cors_simple_request(server):
    """A page on another origin gets CORS for bearer-token calls, never credentials: it cannot ride a signed-in
    user's cookie. localhost origins (no allowedRedirectUrls set) may send credentials."""
    for origin, credentialed in ((ORIGIN, False), ("http://localhost:5173", True), ("http://127.0.0.1:3000", True)):
        for r in [server.get("/api/health", key=None, headers={"Origin": origin}),
                  server.get("/api/events", headers={"Origin": origin}),
                  server.get("/api/events", key=None, headers={"Origin": origin})]:  # an error answer too
            assert r.headers.get("Access-Control-Allow-Origin") == (origin if credentialed else "*"), (r.status_code, r.headers)
            assert r.headers.get("Access-Control-Allow-Credentials") == ("true" if credentialed else None), r.headers


def test_cors_credentials_follow_the_redirect_allow_list(server):
    r = server.request("PUT", "/api/auth/config", json={"allowedRedirectUrls": [ORIGIN + "/auth/*"]})
    assert r.status_code == 200, r.text
    try:
        deadline = time.monotonic() + 15  # the allowed origins are read again every few seconds
        while True:
            r = server.get("/api/health", key=None, headers={"Origin": ORIGIN})
            if r.headers.get("Access-Control-Allow-Credentials") == "true" or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert r.headers.get("Access-Control-Allow-Origin") == ORIGIN, r.headers
        other = server.get("/api/health", key=None, headers={"Origin": "http://localhost:5173"})
        assert other.headers.get("Access-Control-Allow-Origin") == "*", other.headers
    finally:
        assert server.request("PUT", "/api/auth/config", json={"allowedRedirectUrls": []}).status_code == 200
        deadline = time.monotonic() + 15
        while server.get("/api/health", key=None, headers={"Origin": "http://localhost:5173"}).headers.get(
                "Access-Control-Allow-Credentials") != "true":
            assert time.monotonic() < deadline, "localhost origins did not get credentials back"
            time.sleep(0.5)


def test_cors_preflight(server):
    r = server.request("OPTIONS", "/api/events/streams/cors-1", key=None, headers={
        "Origin": "http://localhost:8080", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert 200 <= r.status_code < 300, (r.status_code, r.text)
    assert r.headers.get("Access-Control-Allow-Origin") == "http://localhost:8080"
    assert r.headers.get("Access-Control-Allow-Credentials") == "true"
    methods = [m.strip().upper() for m in r.headers.get("Access-Control-Allow-Methods", "").split(",")]
    assert "POST" in methods
    allowed = [h.strip().lower() for h in r.headers.get("Access-Control-Allow-Headers", "").split(",")]
    assert "authorization" in allowed and "content-type" in allowed
    exposed = [h.strip().lower() for h in r.headers.get("Access-Control-Expose-Headers", "").split(",")]
    assert "content-range" in exposed and "preference-applied" in exposed


def test_cors_expose_headers_on_actual_response(server):
    """Browsers only read Access-Control-Expose-Headers from the actual (non-preflight) response."""
    r = server.get("/api/events", headers={"Origin": ORIGIN})
    assert r.status_code == 200
    exposed = [h.strip().lower() for h in r.headers.get("Access-Control-Expose-Headers", "").split(",")]
    assert "content-range" in exposed and "preference-applied" in exposed, dict(r.headers)


# --------------------------------------------------------------------------- admin key rotation (own server)


def test_admin_key_rotation_and_restart(deployment_factory):
    d = deployment_factory()
    s = d.server(name="rotate")
    configured = d.admin_key
    r = s.post("/api/secrets/api-key/rotate")
    assert r.status_code in (200, 201), r.text
    body = r.json()
    new = body["apiKey"]
    assert re.fullmatch(r"ik_[0-9a-f]{64}", new) and new != configured
    remaining = (parse_ts(body["previousKeyValidUntil"]) - dt.datetime.now(dt.timezone.utc)).total_seconds()
    assert 86400 - 600 < remaining < 86400 + 600
    assert s.get("/api/events", key=new).status_code == 200
    assert s.get("/api/events", key=configured).status_code == 200  # grace period
    assert s.get("/api/metadata/api-key", key=new).json() == {"apiKey": new}
    rotated_events = s.all_events(stream="apikey-admin")
    assert [e["data"].get("reason") for e in rotated_events][-1] == "rotated"

    # a graceful stop exits 0; at the next start the configured key is issued again
    assert s.stop() == 0, s.log_tail()
    s2 = d.server(name="rotate2")
    assert s2.get("/api/metadata/api-key", key=configured).json() == {"apiKey": configured}
    assert s2.get("/api/events", key=configured).status_code == 200
    reasons = [e["data"].get("reason") for e in s2.all_events(stream="apikey-admin")]
    assert reasons == ["configured", "rotated", "configured"]
    # restarting again with the same configuration issues nothing new
    head = s2.head()
    assert s2.stop() == 0
    s3 = d.server(name="rotate3")
    assert s3.head() == head


@pytest.fixture(scope="module")
def small_pool(deployment_factory):
    """A server with the smallest pool (DB_POOL_SIZE=2), where few connections serve every request."""
    return deployment_factory().server(name="pool2", DB_POOL_SIZE="2")


def create_titles_table(server, name):
    r = server.post("/api/database/tables", json={"tableName": name, "columns": [
        {"columnName": "title", "type": "string", "isNullable": False}]})
    assert r.status_code == 201, r.text


def test_the_smallest_pool_still_serves_everything(small_pool):
    # DB_POOL_SIZE counts the connections requests share. The connections the server holds for as
    # long as it runs (projection runners, the webhook dispatcher, the log's LISTEN) come on top:
    # with 2, it used to start and never answer, every pooled connection held by a follower.
    s = small_pool
    create_titles_table(s, "pooled")
    errors = []

    def work(n):
        try:
            for i in range(10):
                assert s.append(f"pool-{n}", [ev("Pooled", {"i": i})]).status_code == 201
                r = s.post("/api/database/records/pooled", json={"title": f"{n}-{i}"})
                assert r.status_code == 201, r.text
                assert s.get("/api/database/records/pooled?limit=1").status_code == 200
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert s.get("/api/database/records/pooled", headers={"Prefer": "count=exact"}).headers["Content-Range"] == "0-79/80"
    s.wait_projection_caught_up()
    assert sum(stats_counts(s.stats(), "pool").values()) == 80


def test_more_query_shapes_than_a_connection_keeps(small_pool):
    # Each connection prepares at most 500 records statement shapes, then drops them and starts over.
    # The drop must not take the server's own prepared statements with it, and a shape prepared in a
    # transaction that failed must still be usable.
    s = small_pool
    create_titles_table(s, "shaped")
    assert s.post("/api/database/records/shaped", json={"title": "only"}).status_code == 201
    for i in range(1200):
        r = s.get(f"/api/database/records/shaped?select=a{i}:title")
        assert r.status_code == 200 and r.json() == [{f"a{i}": "only"}], (i, r.status_code, r.text)
    representation = {"Prefer": "return=representation"}
    for _ in range(4):
        # not-null violation: the statement is prepared, then its transaction fails
        r = s.post("/api/database/records/shaped?select=b:title", json={"title": None}, headers=representation)
        assert r.status_code == 400 and r.json()["code"] == "23502", r.text
    r = s.post("/api/database/records/shaped?select=b:title", json={"title": "second"}, headers=representation)
    assert r.status_code == 201 and r.json() == [{"b": "second"}], r.text
