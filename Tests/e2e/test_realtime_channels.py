"""Realtime channels and messages, with python-socketio's client over WebSocket and long-polling.

Channels are admin CRUD; who may subscribe and publish is decided by Postgres policies on
realtime.channels and realtime.messages, evaluated as the caller. Every message is a
MessagePublished event in the log, and sockets are fed from the log: the frame carries the log
position, and `since` (or the CONNECT `offset`) replays what a client missed.
"""

import secrets
import threading
import time

import pytest
import requests
import socketio

TRANSPORTS = {"websocket": ["websocket"], "polling": ["polling"]}


class Client:
    """A python-socketio client that records every event it receives, in order."""

    def __init__(self, server, auth, transport="websocket"):
        self.events = []
        self.cond = threading.Condition()
        self.sio = socketio.Client(reconnection=False)
        self.sio.on("*", self._record)
        self.sio.connect(server.base, transports=TRANSPORTS[transport], auth=auth, wait_timeout=10)

    def _record(self, event, data=None):
        with self.cond:
            self.events.append((event, data))
            self.cond.notify_all()

    @property
    def sid(self):
        return self.sio.get_sid()

    def call(self, event, data):
        return self.sio.call(event, data, timeout=10)

    def emit(self, event, data):
        self.sio.emit(event, data)

    def named(self, name):
        with self.cond:
            return [d for e, d in self.events if e == name]

    def wait_for(self, name, count=1, timeout=10, where=lambda d: True):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                got = [d for e, d in self.events if e == name and where(d)]
                if len(got) >= count:
                    return got
                left = deadline - time.monotonic()
                assert left > 0, f"waited for {count} {name!r}, got {len(got)}: {self.events[-5:]}"
                self.cond.wait(left)

    def close(self):
        self.sio.disconnect()


def sign_up(server):
    r = server.post("/api/auth/users", key=None, params={"client_type": "mobile"},
                    json={"email": f"rt-{secrets.token_hex(4)}@example.com", "password": "realtime-pass-1"})
    assert r.status_code == 200, r.text
    body = r.json()
    return body["accessToken"], body["user"]["id"]


@pytest.fixture(scope="module")
def user(server):
    return sign_up(server)


def create_channel(server, pattern, **fields):
    r = server.post("/api/realtime/channels", json={"pattern": pattern, **fields})
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture(scope="module")
def chat(server):
    return create_channel(server, "chat:%", description="chat rooms")


def room():
    return f"chat:{secrets.token_hex(4)}"


def admin_publish(server, channel, event, payload):
    r = server.post("/api/realtime/messages", json={"channel": channel, "event": event, "payload": payload})
    assert r.status_code == 201, r.text
    return r.json()


def raw_sql(server, query):
    r = server.post("/api/database/advance/rawsql/unrestricted", json={"query": query, "allowMultipleStatements": True})
    assert r.status_code == 200, (query, r.status_code, r.text)
    return r.json()


# --------------------------------------------------------------------------- channel CRUD


def test_channel_crud_and_the_secret_shown_once(server):
    pattern = f"crud:{secrets.token_hex(3)}:%"
    created = create_channel(server, pattern, description="d", webhookUrls=["http://127.0.0.1:9/hook"])
    assert created["pattern"] == pattern and created["enabled"] is True
    assert created["webhookUrls"] == ["http://127.0.0.1:9/hook"] and created["description"] == "d"
    assert created["webhookSecret"].startswith("whsec_") and len(created["webhookSecret"]) > 30
    cid = created["id"]

    got = server.get(f"/api/realtime/channels/{cid}")
    assert got.status_code == 200 and "webhookSecret" not in got.json()
    listed = server.get("/api/realtime/channels").json()
    assert any(c["id"] == cid for c in listed) and all("webhookSecret" not in c for c in listed)

    updated = server.request("PUT", f"/api/realtime/channels/{cid}", json={"enabled": False})
    assert updated.status_code == 200, updated.text
    assert updated.json()["enabled"] is False and updated.json()["description"] == "d"
    assert updated.json()["webhookUrls"] == ["http://127.0.0.1:9/hook"]
    cleared = server.request("PATCH", f"/api/realtime/channels/{cid}", json={"description": None, "webhookUrls": []})
    assert cleared.json()["description"] is None and cleared.json()["webhookUrls"] == []

    rotated = server.post(f"/api/realtime/channels/{cid}/rotate-secret")
    assert rotated.status_code == 200
    assert rotated.json()["webhookSecret"].startswith("whsec_") and rotated.json()["webhookSecret"] != created["webhookSecret"]

    # Every change is an event on the channel's stream.
    r = server.get(f"/api/events/streams/channel-{cid}")
    assert r.status_code == 200, r.text
    types = [e["type"] for e in r.json()["data"]]
    assert types == ["ChannelCreated", "ChannelUpdated", "ChannelUpdated", "ChannelSecretRotated"]
    assert created["webhookSecret"] not in r.text  # only the ciphertext is in the log

    assert server.request("DELETE", f"/api/realtime/channels/{cid}").status_code == 200
    assert server.get(f"/api/realtime/channels/{cid}").status_code == 404
    assert server.request("DELETE", f"/api/realtime/channels/{cid}").status_code == 404


@pytest.mark.parametrize("body, status", [
    ({}, 400),
    ({"pattern": ""}, 400),
    ({"pattern": "has space"}, 400),
    ({"pattern": "x" * 201}, 400),
    ({"pattern": "ok:%", "webhookUrls": ["ftp://example.com/x"]}, 400),
    ({"pattern": "ok:%", "webhookUrls": ["not a url"]}, 400),
    ({"pattern": "ok:%", "webhookUrls": ["http://a.test/x", "http://a.test/x"]}, 400),
    ({"pattern": "ok:%", "enabled": "yes"}, 400),
    ({"pattern": 5}, 400),
])
def test_bad_channel_bodies_are_400(server, body, status):
    r = server.post("/api/realtime/channels", json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"] == "INVALID_INPUT"


def test_duplicate_patterns_conflict_and_unknown_ids_are_404(server):
    pattern = f"dup:{secrets.token_hex(3)}"
    create_channel(server, pattern)
    r = server.post("/api/realtime/channels", json={"pattern": pattern})
    assert r.status_code == 409 and r.json()["error"] == "CONFLICT"
    assert server.get("/api/realtime/channels/not-a-uuid").status_code == 400
    assert server.get("/api/realtime/channels/00000000-0000-0000-0000-000000000000").status_code == 404


def test_channels_are_admin_only(server, user, anon_key):
    token, _ = user
    assert server.get("/api/realtime/channels", key=None).status_code == 401
    assert server.get("/api/realtime/channels", key=anon_key).status_code == 403
    assert server.post("/api/realtime/channels", key=token, json={"pattern": "x"}).status_code == 403
    assert server.post("/api/realtime/messages", key=token, json={"channel": "x", "event": "e"}).status_code == 403


# --------------------------------------------------------------------------- subscribe and publish


@pytest.mark.parametrize("transport", list(TRANSPORTS))
def test_subscribe_publish_round_trip(server, chat, user, anon_key, transport):
    token, user_id = user
    name = room()
    a = Client(server, {"token": token}, transport)
    b = Client(server, {"token": anon_key}, transport)
    try:
        ack = a.call("realtime:subscribe", {"channel": name})
        assert ack["ok"] is True and ack["channel"] == name
        assert [m["presenceId"] for m in ack["presence"]["members"]] == [a.sid]
        assert b.call("realtime:subscribe", {"channel": name})["ok"] is True

        sent = a.call("realtime:publish", {"channel": name, "event": "chat.message", "payload": {"text": "hi", "n": 1}})
        assert sent["ok"] is True and sent["channel"] == name and len(sent["messageId"]) == 36
        for client in (a, b):
            [frame] = client.wait_for("chat.message")
            assert frame["text"] == "hi" and frame["n"] == 1
            meta = frame["meta"]
            assert meta["channel"] == name and meta["messageId"] == sent["messageId"]
            assert meta["senderType"] == "user" and meta["senderId"] == user_id
            assert isinstance(meta["position"], int) and meta["position"] > 0
            assert meta["timestamp"].endswith("Z")

        # The anon client publishes too (no policies yet): no senderId.
        b.call("realtime:publish", {"channel": name, "event": "chat.message", "payload": {"text": "yo"}})
        second = a.wait_for("chat.message", 2)[1]
        assert second["text"] == "yo" and second["meta"]["senderType"] == "user" and "senderId" not in second["meta"]
        assert second["meta"]["position"] > frame["meta"]["position"]

        # Payloads go through as written: a 64-bit id is not rounded to a double.
        b.call("realtime:subscribe", {"channel": name})
        a.call("realtime:publish", {"channel": name, "event": "big", "payload": {"id": 12345678901234567891, "f": 1.5}})
        [big] = b.wait_for("big")
        assert big["id"] == 12345678901234567891 and big["f"] == 1.5

        # After unsubscribing, nothing more arrives.
        assert b.call("realtime:unsubscribe", {"channel": name})["ok"] is True
        a.call("realtime:publish", {"channel": name, "event": "chat.message", "payload": {"text": "third"}})
        a.wait_for("chat.message", 3)
        time.sleep(0.3)
        assert len(b.named("chat.message")) == 2
    finally:
        a.close()
        b.close()


def test_null_fields_of_a_payload_arrive(server, chat, user):
    """A payload goes through as written, null fields included, at any depth (they were once stripped)."""
    token, _ = user
    name = room()
    a = Client(server, {"token": token})
    try:
        assert a.call("realtime:subscribe", {"channel": name})["ok"] is True
        payload = {"a": None, "b": {"c": None, "d": [None, 1]}, "e": 0}
        assert a.call("realtime:publish", {"channel": name, "event": "nulls", "payload": payload})["ok"] is True
        admin_publish(server, name, "nulls", payload)
        for frame in a.wait_for("nulls", 2):
            assert {k: v for k, v in frame.items() if k != "meta"} == payload
    finally:
        a.close()


def test_messages_keep_their_order(server, chat, user):
    token, _ = user
    name = room()
    a = Client(server, {"token": token})
    b = Client(server, {"token": token})
    try:
        a.call("realtime:subscribe", {"channel": name})
        b.call("realtime:subscribe", {"channel": name})
        for i in range(50):
            a.emit("realtime:publish", {"channel": name, "event": "seq", "payload": {"i": i}})
        got = b.wait_for("seq", 50)
        assert [f["i"] for f in got] == list(range(50))
        positions = [f["meta"]["position"] for f in got]
        assert positions == sorted(positions) and len(set(positions)) == 50
    finally:
        a.close()
        b.close()


def test_presence_join_and_leave(server, chat, user, anon_key):
    token, user_id = user
    name = room()
    a = Client(server, {"token": token})
    b = Client(server, {"token": anon_key})
    try:
        a.call("realtime:subscribe", {"channel": name})
        ack = b.call("realtime:subscribe", {"channel": name})
        members = {m["presenceId"]: m for m in ack["presence"]["members"]}
        assert set(members) == {a.sid, b.sid}
        assert members[a.sid]["userId"] == user_id and members[a.sid]["role"] == "authenticated"
        assert members[b.sid]["role"] == "anon" and "userId" not in members[b.sid]
        [join] = a.wait_for("presence:join")
        assert join["member"]["presenceId"] == b.sid and join["meta"]["channel"] == name
        assert not b.named("presence:join")  # nobody joined after b

        b_sid = b.sid
        b.close()
        [leave] = a.wait_for("presence:leave")
        assert leave["member"]["presenceId"] == b_sid and leave["meta"]["channel"] == name
    finally:
        a.close()


def test_publishing_without_subscribing_is_an_error(server, chat, user):
    token, _ = user
    a = Client(server, {"token": token})
    try:
        name = room()
        ack = a.call("realtime:publish", {"channel": name, "event": "x", "payload": {}})
        assert ack["ok"] is False and ack["error"]["code"] == "REALTIME_NOT_SUBSCRIBED"
        a.emit("realtime:publish", {"channel": name, "event": "x", "payload": {}})
        errors = a.wait_for("realtime:error", 2)
        assert all(e["code"] == "REALTIME_NOT_SUBSCRIBED" and e["channel"] == name for e in errors)
        assert a.sio.connected
    finally:
        a.close()


@pytest.mark.parametrize("event, body, code", [
    ("realtime:subscribe", {}, "REALTIME_INVALID_PAYLOAD"),
    ("realtime:subscribe", {"channel": 5}, "REALTIME_INVALID_PAYLOAD"),
    ("realtime:subscribe", {"channel": "has space"}, "REALTIME_INVALID_PAYLOAD"),
    ("realtime:subscribe", {"channel": "chat:x", "since": -1}, "REALTIME_INVALID_PAYLOAD"),
    ("realtime:subscribe", {"channel": "chat:x", "since": "abc"}, "REALTIME_INVALID_PAYLOAD"),
    ("realtime:subscribe", {"channel": "nochannel:x"}, "REALTIME_UNAUTHORIZED"),
    ("realtime:publish", {}, "REALTIME_INVALID_PAYLOAD"),
    ("no:such:event", {}, "REALTIME_UNKNOWN_EVENT"),
])
def test_bad_client_events_get_error_acks(server, chat, user, event, body, code):
    token, _ = user
    a = Client(server, {"token": token})
    try:
        ack = a.call(event, body)
        assert ack["ok"] is False and ack["error"]["code"] == code, ack
        assert a.sio.connected
    finally:
        a.close()


def test_bad_publish_bodies_once_subscribed(server, chat, user):
    token, _ = user
    name = room()
    a = Client(server, {"token": token})
    try:
        a.call("realtime:subscribe", {"channel": name})
        for body in ({"channel": name}, {"channel": name, "event": ""}, {"channel": name, "event": "e", "payload": [1]},
                     {"channel": name, "event": "e", "payload": "text"}):
            ack = a.call("realtime:publish", body)
            assert ack["ok"] is False and ack["error"]["code"] == "REALTIME_INVALID_PAYLOAD", (body, ack)
        assert a.call("realtime:publish", {"channel": name, "event": "fine"})["ok"] is True  # payload defaults to {}
        [frame] = a.wait_for("fine")
        assert set(frame) == {"meta"}
    finally:
        a.close()


def test_disabled_channels_and_exact_patterns(server, user):
    token, _ = user
    prefix = secrets.token_hex(3)
    wild = create_channel(server, f"{prefix}:%")
    exact = create_channel(server, f"{prefix}:vip", enabled=False)
    a = Client(server, {"token": token})
    try:
        # The exact pattern wins but is disabled, so the wildcard one serves `<prefix>:vip`.
        assert a.call("realtime:subscribe", {"channel": f"{prefix}:vip"})["ok"] is True
        server.request("PUT", f"/api/realtime/channels/{wild['id']}", json={"enabled": False})
        ack = a.call("realtime:subscribe", {"channel": f"{prefix}:other"})
        assert ack["ok"] is False and ack["error"]["code"] == "REALTIME_UNAUTHORIZED"
        # `_` is literal in patterns (unlike LIKE).
        create_channel(server, f"{prefix}_lit")
        assert a.call("realtime:subscribe", {"channel": f"{prefix}_lit"})["ok"] is True
        assert a.call("realtime:subscribe", {"channel": f"{prefix}xlit"})["ok"] is False
        assert exact["enabled"] is False
    finally:
        a.close()


# --------------------------------------------------------------------------- policies


def test_row_level_security_decides_subscribe_and_publish(deployment_factory):
    d = deployment_factory()
    server = d.server()
    anon = server.get("/api/metadata/anon-key").json()["anonKey"]
    token, user_id = sign_up(server)
    create_channel(server, "open:%")
    create_channel(server, "members:%")
    create_channel(server, "announce:%")
    raw_sql(server, """
        ALTER TABLE realtime.channels ENABLE ROW LEVEL SECURITY;
        CREATE POLICY see_open ON realtime.channels FOR SELECT TO anon, authenticated USING (pattern <> 'members:%');
        CREATE POLICY see_members ON realtime.channels FOR SELECT TO authenticated
            USING (pattern = 'members:%' AND realtime.channel_name() = 'members:' || auth.uid()::text);
        ALTER TABLE realtime.messages ENABLE ROW LEVEL SECURITY;
        CREATE POLICY publish_not_announce ON realtime.messages FOR INSERT TO anon, authenticated
            WITH CHECK (channel_name NOT LIKE 'announce:%');
    """)
    a = Client(server, {"token": anon})
    u = Client(server, {"token": token})
    admin = Client(server, {"apiKey": server.admin_key})
    try:
        assert a.call("realtime:subscribe", {"channel": "open:1"})["ok"] is True
        denied = a.call("realtime:subscribe", {"channel": f"members:{user_id}"})
        assert denied["ok"] is False and denied["error"]["code"] == "REALTIME_UNAUTHORIZED"
        assert u.call("realtime:subscribe", {"channel": f"members:{user_id}"})["ok"] is True
        assert u.call("realtime:subscribe", {"channel": "members:someone-else"})["ok"] is False
        assert admin.call("realtime:subscribe", {"channel": "members:anyone"})["ok"] is True  # admins always may

        for c in (a, u, admin):
            assert c.call("realtime:subscribe", {"channel": "announce:all"})["ok"] is True
        refused = u.call("realtime:publish", {"channel": "announce:all", "event": "e", "payload": {}})
        assert refused["ok"] is False and refused["error"]["code"] == "REALTIME_UNAUTHORIZED"
        assert u.wait_for("realtime:error")[0]["code"] == "REALTIME_UNAUTHORIZED"
        assert admin.call("realtime:publish", {"channel": "announce:all", "event": "news", "payload": {"v": 1}})["ok"] is True
        assert a.wait_for("news")[0]["v"] == 1
        time.sleep(0.3)
        # The refused message was never stored nor sent.
        history = server.get("/api/realtime/messages", params={"eventName": "e"}).json()
        assert history == []
        assert a.call("realtime:publish", {"channel": "open:1", "event": "fine", "payload": {}})["ok"] is True
    finally:
        for c in (a, u, admin):
            c.close()


# --------------------------------------------------------------------------- server-side publishing, history


def test_admin_publish_history_and_stats(server, chat, user):
    token, _ = user
    name = room()
    a = Client(server, {"token": token})
    try:
        a.call("realtime:subscribe", {"channel": name})
        message = admin_publish(server, name, "notice", {"level": "info", "meta": "overwritten"})
        assert message["channelName"] == name and message["eventName"] == "notice" and message["senderType"] == "system"
        assert message["channelId"] == chat["id"] and message["position"] > 0 and message["payload"]["level"] == "info"
        [frame] = a.wait_for("notice")
        assert frame["level"] == "info" and frame["meta"]["senderType"] == "system" and "senderId" not in frame["meta"]
        assert frame["meta"]["messageId"] == message["id"] and frame["meta"]["position"] == message["position"]

        a.call("realtime:publish", {"channel": name, "event": "reply", "payload": {"ok": True}})
        history = server.get("/api/realtime/messages", params={"channelId": chat["id"], "limit": 1000}).json()
        mine = [m for m in history if m["channelName"] == name]
        assert [m["eventName"] for m in mine] == ["reply", "notice"]  # newest first
        assert server.get("/api/realtime/messages", params={"eventName": "reply", "limit": 1}).json()[0]["eventName"] == "reply"
        page = server.get("/api/realtime/messages", params={"limit": 1, "offset": 1}).json()
        assert len(page) == 1

        stats = server.get("/api/realtime/messages/stats", params={"channelId": chat["id"]}).json()
        assert stats["totalMessages"] >= 2 and stats["systemMessages"] >= 1 and stats["userMessages"] >= 1
        assert any(e["eventName"] == "notice" for e in stats["topEvents"])

        # In the log, on the channel's stream, with the message id as the event id.
        events = server.get(f"/api/events/streams/realtime-{name}").json()["data"]
        assert [e["type"] for e in events] == ["MessagePublished", "MessagePublished"]
        assert events[0]["eventId"] == message["id"] and events[0]["position"] == message["position"]
    finally:
        a.close()


@pytest.mark.parametrize("body, status", [
    ({"channel": "chat:x"}, 400),
    ({"channel": "chat:x", "event": "e", "payload": [1]}, 400),
    ({"channel": "bad channel", "event": "e"}, 400),
    ({"channel": "nomatch:x", "event": "e"}, 404),
])
def test_admin_publish_validates(server, chat, body, status):
    r = server.post("/api/realtime/messages", json=body)
    assert r.status_code == status, r.text


def test_history_query_is_validated(server):
    assert server.get("/api/realtime/messages", params={"channelId": "x"}).status_code == 400
    assert server.get("/api/realtime/messages", params={"limit": 0}).status_code == 400
    assert server.get("/api/realtime/messages", params={"offset": -1}).status_code == 400


def test_sql_triggers_publish(server, chat, user, anon_key):
    token, _ = user
    create_channel(server, "order:%")
    raw_sql(server, """
        CREATE TABLE orders (id serial PRIMARY KEY, status text NOT NULL);
        CREATE FUNCTION notify_order() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM realtime.publish('order:' || NEW.id, 'order_' || lower(TG_OP), jsonb_build_object('id', NEW.id, 'status', NEW.status));
            RETURN NEW;
        END $$;
        CREATE TRIGGER orders_publish AFTER INSERT OR UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION notify_order();
        INSERT INTO orders (status) VALUES ('new');
    """)
    # Made with raw SQL, so closed to anon until exposed (and its row-level security, on by default, turned off).
    r = server.request("PATCH", "/api/database/tables/orders/schema", json={"exposed": True, "rlsEnabled": False})
    assert r.status_code == 200, r.text
    a = Client(server, {"token": token})
    try:
        a.call("realtime:subscribe", {"channel": "order:1"})
        raw_sql(server, "UPDATE orders SET status = 'paid' WHERE id = 1")
        [frame] = a.wait_for("order_update")
        assert frame["id"] == 1 and frame["status"] == "paid" and frame["meta"]["senderType"] == "system"
        # A trigger fired by an anon records-API write publishes too.
        deadline = time.monotonic() + 15
        while True:
            r = server.post("/api/database/records/orders", key=anon_key, json=[{"status": "anon"}])
            if r.status_code != 404 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert r.status_code == 201, r.text
        a.call("realtime:subscribe", {"channel": "order:2"})
        raw_sql(server, "UPDATE orders SET status = 'shipped' WHERE id = 2")
        assert a.wait_for("order_update", 2)[1]["status"] == "shipped"
        # No channel matches: a warning, no message, and the write itself still succeeds.
        raw_sql(server, "SELECT realtime.publish('nowhere:1', 'x', '{}')")
    finally:
        a.close()


# --------------------------------------------------------------------------- no lost messages across reconnects


@pytest.mark.parametrize("transport", list(TRANSPORTS))
def test_resubscribing_with_since_replays_exactly_what_was_missed(server, chat, user, transport):
    token, _ = user
    name = room()
    a = Client(server, {"token": token}, transport)
    a.call("realtime:subscribe", {"channel": name})
    for i in range(3):
        admin_publish(server, name, "m", {"i": i})
    seen = a.wait_for("m", 3)
    last = seen[-1]["meta"]["position"]
    a.close()

    for i in range(3, 8):
        admin_publish(server, name, "m", {"i": i})
    admin_publish(server, "chat:elsewhere", "m", {"i": -1})  # another channel: never replayed here

    b = Client(server, {"token": token}, transport)
    try:
        ack = b.call("realtime:subscribe", {"channel": name, "since": last})
        assert ack["ok"] is True
        replayed = b.wait_for("m", 5)
        assert [f["i"] for f in replayed] == [3, 4, 5, 6, 7]
        admin_publish(server, name, "m", {"i": 8})
        got = b.wait_for("m", 6)
        assert [f["i"] for f in got] == [3, 4, 5, 6, 7, 8]
        time.sleep(0.3)
        assert len(b.named("m")) == 6
    finally:
        b.close()


def test_replay_while_publishing_has_no_gap_and_no_duplicate(server, chat, user):
    """Messages keep coming while the client resubscribes: replayed and live ones meet exactly."""
    token, _ = user
    name = room()
    first = admin_publish(server, name, "tick", {"i": -1})
    stop = threading.Event()
    published = []

    def publisher():
        session = requests.Session()
        i = 0
        while not stop.is_set() and i < 400:
            r = session.post(server.url("/api/realtime/messages"), headers={"Authorization": f"Bearer {server.admin_key}"},
                             json={"channel": name, "event": "tick", "payload": {"i": i}}, timeout=10)
            assert r.status_code == 201
            published.append(r.json()["position"])
            i += 1

    thread = threading.Thread(target=publisher)
    thread.start()
    try:
        time.sleep(0.3)
        b = Client(server, {"token": token})
        try:
            assert b.call("realtime:subscribe", {"channel": name, "since": first["position"]})["ok"] is True
            time.sleep(0.5)
        finally:
            stop.set()
            thread.join(timeout=60)
        expected = sorted(published)
        got = b.wait_for("tick", len(expected), timeout=20)
        time.sleep(0.3)
        positions = [f["meta"]["position"] for f in b.named("tick")]
        assert positions == expected, (len(positions), len(expected))
        b.close()
    finally:
        stop.set()
        thread.join(timeout=60)
    assert len(got) == len(expected) > 10


def test_connect_offset_replays_on_subscribe(server, chat, user):
    token, _ = user
    name = room()
    first = admin_publish(server, name, "o", {"i": 0})
    admin_publish(server, name, "o", {"i": 1})
    admin_publish(server, name, "o", {"i": 2})
    b = Client(server, {"token": token, "offset": first["position"]})
    try:
        b.call("realtime:subscribe", {"channel": name})
        assert [f["i"] for f in b.wait_for("o", 2)] == [1, 2]
    finally:
        b.close()
