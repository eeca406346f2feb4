"""Webhooks: signed POSTs fed from the log through a durable outbox, retried on a schedule that
survives restarts, delivered once across nodes. Receivers are real HTTP servers on loopback and
signatures are checked with the `standardwebhooks` package."""

import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import socketio
from standardwebhooks.webhooks import Webhook

FAST = {"REALTIME_WEBHOOK_ALLOW_PRIVATE": "true", "REALTIME_WEBHOOK_RETRY_SCHEDULE": "0,300ms,300ms,300ms"}


class Receiver:
    """An HTTP server on loopback recording every request; `script[path]` lists the answers to give
    (status, headers, delay) before falling back to 200."""

    def __init__(self, port=0):
        self.requests = []
        self.script = {}
        self.cond = threading.Condition()
        self.port = port
        self.httpd = None
        self.start()

    def start(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.cond:
                    answers = receiver.script.get(self.path) or []
                    status, headers, delay = answers.pop(0) if answers else (200, {}, 0)
                if delay:
                    time.sleep(delay)
                with receiver.cond:
                    receiver.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                              "body": body.decode(), "status": status, "at": time.monotonic()})
                    receiver.cond.notify_all()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def on(self, path, *answers):
        with self.cond:
            self.script[path] = [a if isinstance(a, tuple) else (a, {}, 0) for a in answers]

    def received(self, path, status=None):
        with self.cond:
            return [r for r in self.requests if r["path"] == path and (status is None or r["status"] == status)]

    def wait(self, path, count, status=None, timeout=20):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                got = [r for r in self.requests if r["path"] == path and (status is None or r["status"] == status)]
                if len(got) >= count:
                    return got
                left = deadline - time.monotonic()
                assert left > 0, f"{path}: waited for {count} requests (status {status}), got {len(got)}"
                self.cond.wait(left)


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def server(deployment):
    return deployment.server(**FAST)


def channel_with_hooks(server, *urls, prefix="hook"):
    pattern = f"{prefix}{secrets.token_hex(3)}:%"
    r = server.post("/api/realtime/channels", json={"pattern": pattern, "webhookUrls": list(urls)})
    assert r.status_code == 201, r.text
    return r.json(), pattern[:-1]


def publish(server, channel, event="ev", payload=None):
    r = server.post("/api/realtime/messages", json={"channel": channel, "event": event, "payload": payload or {}})
    assert r.status_code == 201, r.text
    return r.json()


def deliveries(server, **params):
    r = server.get("/api/realtime/deliveries", params={"limit": 1000, **params})
    assert r.status_code == 200, r.text
    return r.json()


def wait_deliveries(server, check, timeout=20, **params):
    deadline = time.monotonic() + timeout
    while True:
        got = deliveries(server, **params)
        if check(got):
            return got
        assert time.monotonic() < deadline, got[:3]
        time.sleep(0.1)


def test_a_signed_delivery_per_message(server, receiver):
    path = f"/signed/{secrets.token_hex(3)}"
    channel, prefix = channel_with_hooks(server, receiver.url(path))
    message = publish(server, prefix + "1", "order.created", {"id": 7, "text": "héllo"})
    [req] = receiver.wait(path, 1)
    headers = req["headers"]
    payload = Webhook(channel["webhookSecret"]).verify(req["body"].encode(), {
        "webhook-id": headers["webhook-id"], "webhook-timestamp": headers["webhook-timestamp"],
        "webhook-signature": headers["webhook-signature"]})
    assert payload == {"id": 7, "text": "héllo"}
    assert headers["content-type"] == "application/json"
    assert headers["x-insforge-event"] == "order.created"
    assert headers["x-insforge-channel"] == prefix + "1"
    assert headers["x-insforge-message-id"] == message["id"]
    # A forged body or another secret does not verify.
    with pytest.raises(Exception):
        Webhook(channel["webhookSecret"]).verify(req["body"].replace("7", "8").encode(), headers)
    with pytest.raises(Exception):
        Webhook("whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=").verify(req["body"].encode(), headers)

    [delivery] = wait_deliveries(server, lambda d: d and d[0]["status"] == "delivered", messageId=message["id"])
    assert delivery["id"] == headers["webhook-id"] and delivery["attempts"] == 1 and delivery["lastStatus"] == 200
    assert delivery["url"] == receiver.url(path) and delivery["channel"] == prefix + "1"
    one = server.get(f"/api/realtime/deliveries/{delivery['id']}").json()
    assert [a["statusCode"] for a in one["attemptLog"]] == [200]
    history = server.get("/api/realtime/messages", params={"channelId": channel["id"]}).json()
    assert history[0]["whAudienceCount"] == 1 and history[0]["whDeliveredCount"] == 1

    # After a rotation, deliveries are signed with the new secret.
    rotated = server.post(f"/api/realtime/channels/{channel['id']}/rotate-secret").json()["webhookSecret"]
    publish(server, prefix + "1", "order.updated", {"id": 7})
    req2 = receiver.wait(path, 2)[1]
    assert Webhook(rotated).verify(req2["body"].encode(), req2["headers"]) == {"id": 7}


def test_socket_messages_are_delivered_too(server, receiver):
    path = f"/socket/{secrets.token_hex(3)}"
    _, prefix = channel_with_hooks(server, receiver.url(path))
    client = socketio.Client(reconnection=False)
    client.connect(server.base, transports=["websocket"], auth={"apiKey": server.admin_key}, wait_timeout=10)
    try:
        assert client.call("realtime:subscribe", {"channel": prefix + "x"}, timeout=10)["ok"]
        assert client.call("realtime:publish", {"channel": prefix + "x", "event": "typed", "payload": {"k": "v"}}, timeout=10)["ok"]
        [req] = receiver.wait(path, 1)
        assert json.loads(req["body"]) == {"k": "v"} and req["headers"]["x-insforge-event"] == "typed"
    finally:
        client.disconnect()


def test_retries_after_errors_and_honours_retry_after(server, receiver):
    path = f"/flaky/{secrets.token_hex(3)}"
    receiver.on(path, 500, 502, 200)
    _, prefix = channel_with_hooks(server, receiver.url(path))
    message = publish(server, prefix + "1")
    got = receiver.wait(path, 3)
    assert [r["status"] for r in got] == [500, 502, 200]
    assert len({r["headers"]["webhook-id"] for r in got}) == 1  # the same delivery each time
    [delivery] = wait_deliveries(server, lambda d: d and d[0]["status"] == "delivered", messageId=message["id"])
    assert delivery["attempts"] == 3
    attempts = server.get(f"/api/realtime/deliveries/{delivery['id']}/attempts").json()
    assert [a["statusCode"] for a in attempts] == [500, 502, 200] and [a["attempt"] for a in attempts] == [1, 2, 3]

    slow = f"/later/{secrets.token_hex(3)}"
    receiver.on(slow, (503, {"Retry-After": "2"}, 0), 200)
    _, prefix2 = channel_with_hooks(server, receiver.url(slow))
    publish(server, prefix2 + "1")
    first, second = receiver.wait(slow, 2)
    assert second["at"] - first["at"] >= 1.8


def test_redirects_are_not_followed(server, receiver):
    """A receiver that answers 302 is not followed (security review: a public URL could bounce a signed delivery to
    an internal address); the 302 counts as a failed attempt and the target never hears of it."""
    path, target = f"/bounce/{secrets.token_hex(3)}", f"/internal/{secrets.token_hex(3)}"
    receiver.on(path, *[(302, {"Location": receiver.url(target)}, 0)] * 4)
    _, prefix = channel_with_hooks(server, receiver.url(path))
    message = publish(server, prefix + "1")
    [delivery] = wait_deliveries(server, lambda d: d and d[0]["attempts"] >= 2, messageId=message["id"])
    attempts = server.get(f"/api/realtime/deliveries/{delivery['id']}/attempts").json()
    assert attempts and all(a["statusCode"] == 302 for a in attempts), attempts
    assert receiver.received(target) == []


def test_exhausted_deliveries_are_kept_and_can_be_resent(server, receiver):
    path = f"/down/{secrets.token_hex(3)}"
    receiver.on(path, 500, 500, 500, 500, 200)
    _, prefix = channel_with_hooks(server, receiver.url(path))
    message = publish(server, prefix + "1")
    [delivery] = wait_deliveries(server, lambda d: d and d[0]["status"] == "exhausted", messageId=message["id"])
    assert delivery["attempts"] == 4 and delivery["lastStatus"] == 500 and delivery.get("nextAttemptAt") is None
    assert deliveries(server, status="exhausted", messageId=message["id"])[0]["id"] == delivery["id"]
    time.sleep(1)
    assert len(receiver.received(path)) == 4  # nothing more on its own

    r = server.post(f"/api/realtime/deliveries/{delivery['id']}/retry")
    assert r.status_code == 202, r.text
    wait_deliveries(server, lambda d: d and d[0]["status"] == "delivered", messageId=message["id"])
    assert [x["status"] for x in receiver.received(path)] == [500, 500, 500, 500, 200]
    again = server.post(f"/api/realtime/deliveries/{delivery['id']}/retry")
    assert again.status_code == 409 and again.json()["error"] == "CONFLICT"


def test_gone_disables_the_url(server, receiver):
    gone, kept = f"/gone/{secrets.token_hex(3)}", f"/kept/{secrets.token_hex(3)}"
    receiver.on(gone, 410)
    channel, prefix = channel_with_hooks(server, receiver.url(gone), receiver.url(kept))
    message = publish(server, prefix + "1")
    receiver.wait(kept, 1)
    wait_deliveries(server, lambda d: d and d[0]["status"] == "disabled", messageId=message["id"], status="disabled")
    deadline = time.monotonic() + 10
    while receiver.url(gone) in server.get(f"/api/realtime/channels/{channel['id']}").json()["webhookUrls"]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert server.get(f"/api/realtime/channels/{channel['id']}").json()["webhookUrls"] == [receiver.url(kept)]
    types = [e["type"] for e in server.get(f"/api/events/streams/channel-{channel['id']}").json()["data"]]
    assert types[-1] == "ChannelWebhookDisabled"
    publish(server, prefix + "1")
    receiver.wait(kept, 2)
    assert len(receiver.received(gone)) == 1


def test_parallel_across_urls_and_ordered_per_url(server, receiver):
    slow, fast = f"/slow/{secrets.token_hex(3)}", f"/fast/{secrets.token_hex(3)}"
    receiver.on(slow, *[(200, {}, 0.4)] * 5)
    _, prefix = channel_with_hooks(server, receiver.url(slow), receiver.url(fast))
    for i in range(5):
        publish(server, prefix + "1", "n", {"i": i})
    fast_done = receiver.wait(fast, 5)
    slow_done = receiver.wait(slow, 5)
    assert [json.loads(r["body"])["i"] for r in fast_done] == list(range(5))
    assert [json.loads(r["body"])["i"] for r in slow_done] == list(range(5))
    assert fast_done[-1]["at"] < slow_done[-1]["at"] - 0.5  # the slow receiver did not hold the fast one back


def test_a_receiver_that_is_down_then_comes_back(server):
    probe = Receiver()
    port = probe.port
    probe.stop()  # nothing listens on the port now
    path = "/back"
    channel, prefix = channel_with_hooks(server, f"http://127.0.0.1:{port}{path}")
    for i in range(3):
        publish(server, prefix + "1", "n", {"i": i})
    failed = wait_deliveries(server, lambda d: len(d) == 3 and any(x.get("lastError") for x in d), channelId=channel["id"])
    assert all(x["status"] == "pending" for x in failed)
    back = Receiver(port)
    try:
        got = back.wait(path, 3, timeout=20)
        assert [json.loads(r["body"])["i"] for r in got][:3] == [0, 1, 2]
    finally:
        back.stop()


def test_private_destinations_are_refused_unless_allowed(deployment_factory, receiver):
    d = deployment_factory()
    strict = d.server(REALTIME_WEBHOOK_RETRY_SCHEDULE="0,200ms")
    path = f"/private/{secrets.token_hex(3)}"
    _, prefix = channel_with_hooks(strict, receiver.url(path))
    message = publish(strict, prefix + "1")
    [delivery] = wait_deliveries(strict, lambda x: x and x[0]["status"] == "exhausted", messageId=message["id"])
    assert "private address" in delivery["lastError"]
    assert receiver.received(path) == []


def test_deliveries_api_validates(server):
    assert server.get("/api/realtime/deliveries", params={"status": "nope"}).status_code == 400
    assert server.get("/api/realtime/deliveries", params={"messageId": "x"}).status_code == 400
    assert server.get("/api/realtime/deliveries", params={"limit": 5000}).status_code == 400
    assert server.get("/api/realtime/deliveries/x").status_code == 400
    assert server.get("/api/realtime/deliveries/00000000-0000-0000-0000-000000000000").status_code == 404
    assert server.post("/api/realtime/deliveries/00000000-0000-0000-0000-000000000000/retry").status_code == 404
    assert server.get("/api/realtime/deliveries", key=None).status_code == 401


def test_bad_settings_stop_the_server_with_a_message(deployment_factory):
    d = deployment_factory()
    s = d.server(start=False, REALTIME_WEBHOOK_RETRY_SCHEDULE="soon")
    s.start(wait=False)
    assert s.proc.wait(timeout=60) != 0
    assert "REALTIME_WEBHOOK_RETRY_SCHEDULE" in s.log_tail()


# --------------------------------------------------------------------------- restarts and two nodes


def test_kill_9_with_undelivered_webhooks_delivers_them_after_restart(deployment_factory):
    d = deployment_factory()
    receiver = Receiver()
    try:
        env = {"REALTIME_WEBHOOK_ALLOW_PRIVATE": "true", "REALTIME_WEBHOOK_RETRY_SCHEDULE": "0,1s,1s,1s,1s,1s,1s,1s,1s,1s"}
        node = d.server(**env)
        path = "/after-crash"
        receiver.on(path, *[503] * 1000)
        _, prefix = channel_with_hooks(node, receiver.url(path))
        ids = [publish(node, prefix + "1", "n", {"i": i})["id"] for i in range(20)]
        receiver.wait(path, 1)
        node.kill()
        with receiver.cond:
            receiver.script[path] = []  # it answers 200 from now on
        restarted = d.server(name="restarted", **env)
        got = receiver.wait(path, 20, status=200, timeout=40)
        assert {json.loads(r["body"])["i"] for r in got} >= set(range(20))
        final = wait_deliveries(restarted, lambda x: len(x) >= 20 and all(y["status"] == "delivered" for y in x))
        assert {x["messageId"] for x in final} >= set(ids)
    finally:
        receiver.stop()


def test_two_nodes_share_messages_and_deliver_each_webhook_once(deployment_factory):
    d = deployment_factory()
    receiver = Receiver()
    try:
        a = d.server(name="node-a", **FAST)
        b = d.server(name="node-b", **FAST)
        path = "/once"
        _, prefix = channel_with_hooks(a, receiver.url(path))
        sub = socketio.Client(reconnection=False)
        sub.connect(a.base, transports=["websocket"], auth={"apiKey": a.admin_key}, wait_timeout=10)
        got = []
        sub.on("tick", lambda data: got.append(data))
        try:
            assert sub.call("realtime:subscribe", {"channel": prefix + "1"}, timeout=10)["ok"]
            for i in range(30):
                publish(b if i % 2 else a, prefix + "1", "tick", {"i": i})
            deadline = time.monotonic() + 15
            while len(got) < 30 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert sorted(f["i"] for f in got) == list(range(30))  # published on either node, received on a
            requests_ = receiver.wait(path, 30)
            time.sleep(1.5)
            ids = [r["headers"]["webhook-id"] for r in receiver.received(path)]
            assert len(ids) == 30 and len(set(ids)) == 30  # once, not once per node

            # The owner dies; the other node takes over the deliveries.
            owner = a if any("owning webhook delivery" in line for line in a.log_tail(400).splitlines()) else b
            other = b if owner is a else a
            owner.kill()
            for i in range(30, 40):
                publish(other, prefix + "1", "tick", {"i": i})
            receiver.wait(path, 40, timeout=30)
            time.sleep(1)
            ids = [r["headers"]["webhook-id"] for r in receiver.received(path)]
            assert len(ids) == 40 and len(set(ids)) == 40
            assert requests_
        finally:
            sub.disconnect()
    finally:
        receiver.stop()
