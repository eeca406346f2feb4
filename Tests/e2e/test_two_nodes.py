"""Two server processes on one database: one log, one owner per async projection, fail-over on kill -9."""

import threading
import time

import pytest

from conftest import ev, stats_counts


def owners(nodes):
    out = []
    for n in nodes:
        proj = [p for p in n.stats()["projections"] if p["name"] == "event_stats"]
        assert len(proj) == 1
        out.append(proj[0]["ownedHere"])
    return out


def append_spread(nodes, count, category, type_, threads_per_node=3):
    """Appends `count` single events spread over the nodes (several threads per node), streams `<category>-<k>`."""
    errors = []
    lock = threading.Lock()
    next_i = [0]

    def work(node):
        while True:
            with lock:
                if next_i[0] >= count:
                    return
                i = next_i[0]
                next_i[0] += 1
            r = node.append(f"{category}-{i % 7}", [ev(type_, {"i": i})])
            if r.status_code != 201:
                with lock:
                    errors.append((node.name, r.status_code, r.text[:200]))
                return

    workers = [threading.Thread(target=work, args=(n,), daemon=True) for n in nodes for _ in range(threads_per_node)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert not any(w.is_alive() for w in workers)
    assert not errors, errors[:5]


@pytest.fixture(scope="module")
def nodes(deployment):
    a = deployment.server(name="node-a")
    b = deployment.server(name="node-b")  # same database, data folder and admin key; started after a
    return a, b


def test_both_nodes_serve_one_log(nodes):
    a, b = nodes
    assert a.port != b.port
    r = a.append_ok("shared-1", [ev("Shared", {"from": "a"})])
    r2 = b.append_ok("shared-1", [ev("Shared", {"from": "b"})], expected=1)
    assert r2["positions"] == [r["positions"][0] + 1]
    assert a.get("/api/events/streams/shared-1").json() == b.get("/api/events/streams/shared-1").json()
    # the second node issued no keys of its own
    assert [e["streamId"] for e in a.all_events()[:2]] == ["apikey-admin", "apikey-anon"]
    assert len(a.all_events(category="apikey")) == 2
    assert a.get("/api/metadata/anon-key").json() == b.get("/api/metadata/anon-key").json()


def test_key_rotation_reaches_the_other_node(nodes):
    a, b = nodes
    new = a.post("/api/secrets/anon-key/rotate").json()["anonKey"]
    deadline = time.monotonic() + 10
    status = None
    while time.monotonic() < deadline:
        status = b.get("/api/health", key=new).status_code
        if status == 200:
            break
        time.sleep(0.1)
    assert status == 200, "node b never accepted the anon key rotated on node a"
    assert b.get("/api/metadata/anon-key").json() == {"anonKey": new}


def test_projection_runs_once_across_nodes_and_fails_over(nodes, deployment):
    a, b = nodes
    n = 300
    append_spread([a, b], n, "tick", "Ticked")
    stats = b.wait_projection_caught_up(timeout=15)
    assert stats_counts(stats, "tick") == {("tick", "Ticked"): n}
    assert a.stats()["types"] == stats["types"]
    own = owners([a, b])
    assert sorted(own) == [False, True], own
    owner, other = (a, b) if own[0] else (b, a)

    # positions dense across both writers
    events = other.all_events()
    assert [e["position"] for e in events] == list(range(1, len(events) + 1))
    per_stream = {}
    for e in events:
        per_stream.setdefault(e["streamId"], []).append(e["streamVersion"])
    for stream, versions in per_stream.items():
        assert versions == list(range(1, len(versions) + 1)), stream

    owner.kill()
    append_spread([other], 200, "tick", "Ticked", threads_per_node=4)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and owners([other]) != [True]:
        time.sleep(0.2)
    assert owners([other]) == [True], "the surviving node did not take the projection over within 15 s"
    stats = other.wait_projection_caught_up(timeout=15)
    assert stats_counts(stats, "tick") == {("tick", "Ticked"): n + 200}
    counts = {}
    for e in other.all_events():
        key = (e["streamId"].split("-", 1)[0], e["type"])
        counts[key] = counts.get(key, 0) + 1
    assert stats_counts(stats) == counts
    assert stats["parkedEvents"] == 0

    # the killed node comes back as a follower: still exactly one owner, counts stay exact
    back = deployment.server(name="node-back")
    append_spread([back, other], 50, "tick", "Ticked")
    stats = back.wait_projection_caught_up(timeout=15)
    assert stats_counts(stats, "tick") == {("tick", "Ticked"): n + 250}
    assert owners([back, other]) == [False, True]
