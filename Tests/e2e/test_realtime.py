"""Realtime over Socket.IO, with python-socketio's own client (the WebSocket transport).

This covers the transport and the connection handshake so far: the Engine.IO open packet and
heartbeat, CONNECT with each kind of credential, CONNECT_ERROR for bad ones, and acks. Channels,
messages and webhooks come with the rest of the realtime issue.
"""

import json
import secrets
import time

import pytest
import requests
import socketio


@pytest.fixture(scope="module")
def user_token(server):
    r = server.post("/api/auth/users", key=None, params={"client_type": "mobile"},
                    json={"email": f"rt-{secrets.token_hex(4)}@example.com", "password": "realtime-pass-1"})
    assert r.status_code == 200, r.text
    return r.json()["accessToken"]


# python-socketio starts with polling and upgrades to WebSocket unless told otherwise.
TRANSPORTS = {"websocket": ["websocket"], "polling": ["polling"], "upgrade": None}


def connect(server, auth, transport="websocket"):
    client = socketio.Client(reconnection=False)
    client.connect(server.base, transports=TRANSPORTS[transport], auth=auth, wait_timeout=10)
    return client


@pytest.mark.parametrize("transport", list(TRANSPORTS))
@pytest.mark.parametrize("kind", ["jwt", "anon", "apikey"])
def test_connects_with_each_kind_of_credential(server, anon_key, user_token, kind, transport):
    auth = {"jwt": {"token": user_token}, "anon": {"token": anon_key}, "apikey": {"apiKey": server.admin_key}}[kind]
    client = connect(server, auth, transport)
    try:
        assert client.connected
        assert client.get_sid() and len(client.get_sid()) >= 16
        assert client.eio.sid and client.eio.sid != client.get_sid()
    finally:
        client.disconnect()


@pytest.mark.parametrize("transport", list(TRANSPORTS))
@pytest.mark.parametrize("auth", [{"token": "not.a.jwt"}, {"token": "anon_" + "0" * 40}, {"apiKey": "ik_" + "0" * 64},
                                  {"token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"}])
def test_bad_credentials_are_refused_with_connect_error(server, auth, transport):
    errors = refused_connect_errors(server, auth, transport)
    assert len(errors) == 1 and errors[0]["message"] in ("Invalid token", "Invalid API key"), errors


def refused_connect_errors(server, auth, transport):
    """Connects with `auth`, expecting CONNECT_ERROR; returns the connect_error payloads."""
    client = socketio.Client(reconnection=False)
    errors = []
    client.on("connect_error", lambda data: errors.append(data))
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect(server.base, transports=TRANSPORTS[transport], auth=auth, wait_timeout=10)
    assert not client.connected
    return errors


@pytest.mark.parametrize("transport", list(TRANSPORTS))
@pytest.mark.parametrize("auth", [None, {}, {"token": ""}])
def test_a_socket_without_a_credential_is_refused(server, auth, transport):
    """Sockets need the anon key at least, as HTTP routes do (security review: anonymous sockets could subscribe)."""
    errors = refused_connect_errors(server, auth, transport)
    assert len(errors) == 1 and errors[0]["message"] == "No token provided", errors


@pytest.fixture(scope="module")
def slow_publishers(deployment_factory):
    """A server that lets each socket publish 2 messages a second, 10 at once."""
    return deployment_factory().server(name="slow-publishers", REALTIME_PUBLISH_RATE="2", REALTIME_PUBLISH_BURST="10")


def test_publishing_is_rate_limited_per_socket(slow_publishers):
    """A socket past its budget (REALTIME_PUBLISH_BURST at once, then REALTIME_PUBLISH_RATE a second) is refused
    with REALTIME_RATE_LIMITED; the messages within the budget are published, and another socket has its own."""
    server = slow_publishers
    r = server.post("/api/realtime/channels", json={"pattern": "flood:%", "enabled": True})
    assert r.status_code in (200, 201), r.text
    anon = server.anon_key()
    first, second = connect(server, {"token": anon}), connect(server, {"token": anon})
    try:
        for client in (first, second):
            ack = client.call("realtime:subscribe", {"channel": "flood:1"}, timeout=10)
            assert ack["ok"] is True, ack
        started = time.monotonic()
        answers = [first.call("realtime:publish", {"channel": "flood:1", "event": "e", "payload": {"i": i}}, timeout=10)
                   for i in range(40)]
        elapsed = time.monotonic() - started
        limited = [a for a in answers if not a["ok"]]
        assert limited and all(a["error"]["code"] == "REALTIME_RATE_LIMITED" for a in limited), answers[-3:]
        published = sum(1 for a in answers if a["ok"])
        assert 10 <= published <= 10 + 2 * elapsed + 1, (published, elapsed)
        ack = second.call("realtime:publish", {"channel": "flood:1", "event": "e", "payload": {}}, timeout=10)
        assert ack["ok"] is True, ack
    finally:
        first.disconnect()
        second.disconnect()


@pytest.mark.parametrize("transport", list(TRANSPORTS))
def test_events_are_acknowledged_and_the_connection_stays_up(server, user_token, transport):
    client = connect(server, {"token": user_token}, transport)
    try:
        if transport == "upgrade":
            deadline = time.time() + 10
            while client.transport() != "websocket" and time.time() < deadline:
                time.sleep(0.05)
            assert client.transport() == "websocket"
        else:
            assert client.transport() == transport
        answer = client.call("no:such:event", {"x": 1}, timeout=10)
        assert answer["ok"] is False and answer["error"]["code"] == "REALTIME_UNKNOWN_EVENT", answer
        assert client.connected
        # a second round trip on the same socket
        assert client.call("still:here", timeout=10)["ok"] is False
    finally:
        client.disconnect()


def test_handshake_and_heartbeat_on_the_raw_socket(server, anon_key):
    """The Engine.IO open packet announces the timings; a malformed packet ends the session."""
    import json
    import websocket  # websocket-client, python-socketio's WebSocket transport

    ws = websocket.create_connection(server.base.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket",
                                     timeout=10)
    try:
        opened = ws.recv()
        assert opened.startswith("0"), opened
        handshake = json.loads(opened[1:])
        assert handshake["pingInterval"] == 25000 and handshake["pingTimeout"] == 20000, handshake
        assert handshake["maxPayload"] == 1000000 and handshake["upgrades"] == [], handshake
        ws.send("40")  # no credential: refused
        assert ws.recv().startswith('44{"message":"No token provided"'), "CONNECT_ERROR expected"
        ws.send("40" + json.dumps({"token": anon_key}))
        assert ws.recv().startswith('40{"sid":"')
        ws.send('42["x"]')  # an event without an ack id: no answer, and the socket stays up
        ws.send('421["y"]')  # with one: answered
        assert json.loads(ws.recv()[3:])[0]["error"]["code"] == "REALTIME_UNKNOWN_EVENT"
        ws.send("42[]")  # malformed: the server closes the session
        assert ws.recv() == ""  # its close frame
    finally:
        ws.close()


def test_other_requests_to_the_path_are_not_upgraded(server):
    r = requests.get(server.url("/socket.io/?EIO=3&transport=websocket"), timeout=10,
                     headers={"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                              "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert r.status_code != 101


def test_polling_protocol_errors(server, anon_key):
    """Engine.IO's own error answers for requests it cannot serve."""
    base = server.url("/socket.io/")
    r = requests.get(base, params={"EIO": "3", "transport": "polling"}, timeout=10)
    assert r.status_code == 400 and r.json() == {"code": 5, "message": "Unsupported protocol version"}
    r = requests.get(base, params={"EIO": "4", "transport": "carrier-pigeon"}, timeout=10)
    assert r.status_code == 400 and r.json()["code"] == 0
    r = requests.get(base, params={"EIO": "4", "transport": "polling", "sid": "nope"}, timeout=10)
    assert r.status_code == 400 and r.json() == {"code": 1, "message": "Session ID unknown"}
    r = requests.post(base, params={"EIO": "4", "transport": "polling", "sid": "nope"}, data="40", timeout=10)
    assert r.status_code == 400 and r.json()["code"] == 1
    # a real session: open, connect, then a malformed payload closes it
    r = requests.get(base, params={"EIO": "4", "transport": "polling"}, timeout=10)
    assert r.status_code == 200 and r.text.startswith("0{"), r.text
    sid = json.loads(r.text[1:])["sid"]
    assert json.loads(r.text[1:])["upgrades"] == ["websocket"]
    r = requests.post(base, params={"EIO": "4", "transport": "polling", "sid": sid}, data="40" + json.dumps({"token": anon_key}),
                      timeout=10)
    assert r.status_code == 200 and r.text == "ok"
    r = requests.get(base, params={"EIO": "4", "transport": "polling", "sid": sid}, timeout=10)
    assert r.text.startswith('40{"sid":"'), r.text
    r = requests.post(base, params={"EIO": "4", "transport": "polling", "sid": sid}, data="9garbage", timeout=10)
    assert r.status_code == 200
    r = requests.get(base, params={"EIO": "4", "transport": "polling", "sid": sid}, timeout=10)
    assert r.status_code == 400 and r.json()["code"] == 1  # the session is gone


@pytest.fixture(scope="module")
def fast_heartbeat(deployment_factory):
    """A server pinging every 600 ms and waiting 600 ms for the answer."""
    return deployment_factory().server(name="heartbeat", REALTIME_PING_INTERVAL_MS="600", REALTIME_PING_TIMEOUT_MS="600",
                                       REALTIME_MAX_PAYLOAD="2048")


def test_a_client_that_never_answers_pings_is_dropped(fast_heartbeat):
    import websocket

    ws = websocket.create_connection(fast_heartbeat.base.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket",
                                     timeout=10)
    try:
        handshake = json.loads(ws.recv()[1:])
        assert handshake["pingInterval"] == 600 and handshake["pingTimeout"] == 600 and handshake["maxPayload"] == 2048
        ws.send("40" + json.dumps({"token": fast_heartbeat.anon_key()}))
        assert ws.recv().startswith("40")
        started = time.time()
        assert ws.recv() == "2"  # the server's ping, which we leave unanswered
        frames = []
        try:
            while len(frames) < 10:
                frame = ws.recv()
                if frame == "":  # the server's close frame
                    break
                frames.append(frame)
        except websocket.WebSocketConnectionClosedException:
            pass
        assert frames == [] and time.time() - started < 5, frames
    finally:
        ws.close()


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_a_client_that_answers_pings_stays_and_oversized_messages_end_the_session(fast_heartbeat, transport):
    client = socketio.Client(reconnection=False)
    client.connect(fast_heartbeat.base, transports=[transport], auth={"token": fast_heartbeat.anon_key()},
                   wait_timeout=10)
    try:
        time.sleep(2.5)  # several heartbeats
        assert client.connected
        assert client.call("x", timeout=10)["ok"] is False
        disconnected = []
        client.on("disconnect", lambda *a: disconnected.append(True))
        client.emit("big", "x" * 4096)  # over maxPayload
        deadline = time.time() + 10
        while not disconnected and time.time() < deadline:
            time.sleep(0.05)
        assert disconnected
    finally:
        client.disconnect()


@pytest.mark.parametrize("transport", ["websocket", "upgrade"])
def test_a_second_websocket_cannot_take_over_a_session(server, user_token, transport):
    import websocket

    client = connect(server, {"token": user_token}, transport)
    try:
        deadline = time.time() + 10
        while client.transport() != "websocket" and time.time() < deadline:
            time.sleep(0.05)
        sid = client.eio.sid
        intruder = websocket.create_connection(
            server.base.replace("http://", "ws://") + f"/socket.io/?EIO=4&transport=websocket&sid={sid}", timeout=10)
        try:
            intruder.send("2probe")
            try:
                answer = intruder.recv()
            except websocket.WebSocketConnectionClosedException:
                answer = ""
            assert answer == "", answer  # closed, never "3probe"
        finally:
            intruder.close()
        # the rightful client is untouched
        assert client.call("after", timeout=10)["ok"] is False
    finally:
        client.disconnect()
