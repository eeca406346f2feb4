"""Durability and concurrency: what was acknowledged survives kill -9; optimistic concurrency holds under contention."""

import threading
import time
import uuid

import pytest
import requests

from conftest import HTTP_TIMEOUT, run_cli, stats_counts


class Load:
    """`threads` workers, each appending single events to its own stream `load-<n>` until stopped,
    `max_requests` in total or `max_seconds`. Records every acknowledged (eventId -> response)."""

    def __init__(self, server, threads=8, max_requests=3000, max_seconds=20, prefix="load"):
        self.server = server
        self.threads = threads
        self.max_requests = max_requests
        self.deadline = time.monotonic() + max_seconds
        self.prefix = prefix
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.sent = 0
        self.attempted = {}  # eventId -> (stream, n)
        self.acked = {}  # eventId -> (stream, n, position, version)
        self.bad_status = []  # (status, text) of answers that were neither 201 nor a dead connection
        self.connection_errors = 0
        self.workers = [threading.Thread(target=self._work, args=(t,), daemon=True) for t in range(threads)]

    def start(self):
        for w in self.workers:
            w.start()
        return self

    def stop(self):
        self.stop_flag.set()

    def join(self, timeout=60):
        end = time.monotonic() + timeout
        for w in self.workers:
            w.join(max(0.1, end - time.monotonic()))
        assert not any(w.is_alive() for w in self.workers), "load workers did not stop"

    def acked_count(self):
        with self.lock:
            return len(self.acked)

    def _work(self, t):
        session = requests.Session()
        stream = f"{self.prefix}-{t}"
        url = self.server.url(f"/api/events/streams/{stream}")
        headers = {"Authorization": f"Bearer {self.server.admin_key}"}
        n = 0
        while not self.stop_flag.is_set() and time.monotonic() < self.deadline:
            with self.lock:
                if self.sent >= self.max_requests:
                    return
                self.sent += 1
            n += 1
            eid = str(uuid.uuid4())
            with self.lock:
                self.attempted[eid] = (stream, n)
            body = {"events": [{"type": "LoadTick", "data": {"thread": t, "n": n}, "eventId": eid}]}
            try:
                r = session.post(url, json=body, headers=headers, timeout=HTTP_TIMEOUT)
            except requests.RequestException:
                with self.lock:
                    self.connection_errors += 1
                return  # the server is gone (or unreachable): this worker is done
            with self.lock:
                if r.status_code == 201:
                    b = r.json()
                    self.acked[eid] = (stream, n, b["positions"][0], b["nextExpectedVersion"])
                else:
                    self.bad_status.append((r.status_code, r.text[:300]))


def check_log_holds(server, load):
    """Every acknowledged event is in the log where the server said; the log is dense; streams are dense."""
    events = server.all_events()
    by_id = {e["eventId"]: e for e in events}
    assert [e["position"] for e in events] == list(range(1, len(events) + 1)), "positions are not dense"
    missing = [eid for eid in load.acked if eid not in by_id]
    assert not missing, f"{len(missing)} of {len(load.acked)} acknowledged events are lost, e.g. {missing[:3]}"
    for eid, (stream, n, position, version) in load.acked.items():
        e = by_id[eid]
        assert (e["streamId"], e["position"], e["streamVersion"], e["data"]["n"]) == (stream, position, version, n), e
    per_stream = {}
    for e in events:
        per_stream.setdefault(e["streamId"], []).append(e)
    for stream, evs in per_stream.items():
        assert [e["streamVersion"] for e in evs] == list(range(1, len(evs) + 1)), f"{stream} has gaps"
        if stream.startswith(load.prefix + "-"):
            # only events the load sent, in the order each worker sent them
            assert all(e["eventId"] in load.attempted for e in evs)
            ns = [e["data"]["n"] for e in evs]
            assert ns == sorted(ns)
    return events


def log_counts(events):
    counts = {}
    for e in events:
        key = (e["streamId"].split("-", 1)[0], e["type"])
        counts[key] = counts.get(key, 0) + 1
    return counts


def live_server(deployment):
    """The module's most recent server if it still runs, else a new one on the same database."""
    alive = [s for s in deployment.servers if s.alive()]
    return alive[-1] if alive else deployment.server(name="fresh")


@pytest.fixture(scope="module")
def survivor(deployment):
    """Set by the kill -9 test: the server restarted on the killed one's database."""
    return {}


def test_kill_9_during_load_loses_nothing_acknowledged(deployment, survivor):
    s = deployment.server(name="victim")
    load = Load(s, threads=8, max_requests=3000, max_seconds=20).start()
    # let it run about 2 s (at least a few acknowledgements), then kill -9
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2.0 or (load.acked_count() < 20 and time.monotonic() - t0 < 10):
        time.sleep(0.05)
    s.kill()
    load.stop()
    load.join()
    assert not load.bad_status, load.bad_status[:5]
    assert len(load.acked) >= 20, f"only {len(load.acked)} appends acknowledged before the kill"

    print(f"kill -9: {len(load.acked)} acknowledged of {load.sent} sent, {load.connection_errors} cut off")
    s2 = deployment.server(name="restarted")
    events = check_log_holds(s2, load)
    # keys were not issued again at the restart
    assert [e["streamId"] for e in events].count("apikey-admin") == 1
    assert [e["streamId"] for e in events].count("apikey-anon") == 1
    # the async projection resumes from its checkpoint: exact counts, nothing applied twice
    stats = s2.wait_projection_caught_up()
    assert stats_counts(stats) == log_counts(events)
    survivor["server"] = s2
    survivor["load"] = load


def test_replay_verify_after_crash(deployment, survivor):
    if "server" not in survivor:
        pytest.skip("needs the kill -9 test")
    survivor["server"].wait_projection_caught_up()
    p = run_cli(["events", "replay", "--verify"], deployment.cli_env(), timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "DIFF" not in p.stdout


def test_graceful_stop_during_load(deployment):
    s = deployment.server(name="graceful")
    load = Load(s, threads=6, max_requests=2000, max_seconds=15, prefix="soft").start()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.5 or (load.acked_count() < 10 and time.monotonic() - t0 < 10):
        time.sleep(0.05)
    code = s.stop(timeout=20)
    load.stop()
    load.join()
    assert code == 0, s.log_tail()
    assert not [b for b in load.bad_status if b[0] != 503], load.bad_status[:5]
    s2 = deployment.server(name="after-graceful")
    check_log_holds(s2, load)


def test_concurrent_expected_version_on_one_stream(deployment):
    s = live_server(deployment)
    stream = "race-" + uuid.uuid4().hex[:8]
    threads, target, deadline = 16, 150, time.monotonic() + 20
    lock = threading.Lock()
    wins, conflicts, others = [], [], []
    barrier = threading.Barrier(threads)

    def work():
        session = requests.Session()
        headers = {"Authorization": f"Bearer {s.admin_key}"}
        known = 0
        barrier.wait(timeout=10)
        for _ in range(200):
            with lock:
                if len(wins) >= target or time.monotonic() > deadline:
                    return
            r = session.get(s.url(f"/api/events/streams/{stream}"), params={"afterVersion": known, "limit": 10000},
                            headers=headers, timeout=HTTP_TIMEOUT)
            if r.status_code != 200:
                with lock:
                    others.append((r.status_code, r.text[:200]))
                return
            v = r.json()["version"]
            body = {"events": [{"type": "RaceWon", "data": {"at": v}}], "expectedVersion": v}
            r = session.post(s.url(f"/api/events/streams/{stream}"), json=body, headers=headers, timeout=HTTP_TIMEOUT)
            with lock:
                if r.status_code == 201:
                    wins.append((v, r.json()))
                elif r.status_code == 409 and r.json().get("error") == "CONFLICT":
                    conflicts.append(v)
                else:
                    others.append((r.status_code, r.text[:200]))
            known = v + 1 if r.status_code == 201 else v

    workers = [threading.Thread(target=work, daemon=True) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert not any(w.is_alive() for w in workers)
    assert not others, others[:5]

    print(f"race: {len(wins)} appended, {len(conflicts)} conflicts")
    data = s.get(f"/api/events/streams/{stream}", params={"limit": 10000}).json()["data"]
    versions = [e["streamVersion"] for e in data]
    assert versions == list(range(1, len(data) + 1))
    assert len(data) == len(wins), (len(data), len(wins))
    assert sorted(b["nextExpectedVersion"] for _, b in wins) == versions
    for v, b in wins:
        assert b["nextExpectedVersion"] == v + 1 and b["duplicate"] is False
    # each winner's event sits at the version it claimed
    assert [e["data"]["at"] for e in data] == list(range(0, len(data)))
    assert len(conflicts) > 0, "16 contending writers never conflicted"
    assert len(wins) >= 10


def test_concurrent_retries_of_the_same_event(deployment):
    """The same eventId (or Idempotency-Key) sent by 8 clients at once: one append, the rest duplicates."""
    s = live_server(deployment)
    threads = 8
    for round_ in range(10):
        eid = str(uuid.uuid4())
        stream = f"retry-{round_}"
        key = f"idem-{uuid.uuid4()}"
        results = []
        lock = threading.Lock()
        barrier = threading.Barrier(threads)

        def work(i):
            session = requests.Session()
            barrier.wait(timeout=10)
            headers = {"Authorization": f"Bearer {s.admin_key}"}
            if i % 2:
                body = {"events": [{"type": "Retried", "data": {"r": round_}, "eventId": eid}]}
                path = f"/api/events/streams/{stream}"
            else:
                headers["Idempotency-Key"] = key
                body = {"events": [{"type": "Retried", "data": {"r": round_}}, {"type": "Retried", "data": {}}]}
                path = f"/api/events/streams/{stream}-idem"
            r = session.post(s.url(path), json=body, headers=headers, timeout=HTTP_TIMEOUT)
            with lock:
                results.append((i % 2, r.status_code, r.json()))

        ws = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(threads)]
        for w in ws:
            w.start()
        for w in ws:
            w.join(30)
        assert len(results) == threads
        for kind in (0, 1):
            mine = [(st, b) for k, st, b in results if k == kind]
            assert all(st == 201 for st, _ in mine), mine
            assert sum(1 for _, b in mine if b["duplicate"] is False) == 1, mine
            assert len({tuple(b["positions"]) for _, b in mine}) == 1, mine
        assert len(s.get(f"/api/events/streams/{stream}").json()["data"]) == 1
        assert len(s.get(f"/api/events/streams/{stream}-idem").json()["data"]) == 2
