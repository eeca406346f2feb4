"""Shared machinery for the end-to-end suite: throwaway databases, server processes, HTTP helpers.

Environment:
  INSFORGE_BIN       the server binary (default /work/main/.build/debug/insforge)
  TEST_DATABASE_URL  a PostgreSQL *admin* URL; every test module creates (and drops) its own database on that server
"""

import os
import re
import secrets
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import uuid

import pytest
import requests

BIN = os.environ.get("INSFORGE_BIN", "/work/main/.build/debug/insforge")
ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:55432/postgres")
HTTP_TIMEOUT = 15
START_TIMEOUT = 60

# Every server started by the suite, so a failing test can show their logs and teardown can kill leftovers.
_SERVERS = []


# --------------------------------------------------------------------------- PostgreSQL


def database_url(name):
    """ADMIN_URL with its database replaced by `name` (keeps user, password, host, port and query)."""
    parts = urllib.parse.urlsplit(ADMIN_URL)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def psql(url, sql, check=True):
    """Runs SQL with the psql command line; returns stdout (unaligned, tuples only)."""
    proc = subprocess.run(
        ["psql", url, "-v", "ON_ERROR_STOP=1", "-X", "-q", "-A", "-t", "-c", sql],
        capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise RuntimeError(f"psql failed ({proc.returncode}) for {sql!r}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def create_database():
    name = "e2e_" + secrets.token_hex(6)
    psql(ADMIN_URL, f'CREATE DATABASE "{name}"')
    return name


def drop_database(name):
    psql(ADMIN_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', check=False)


class ScratchDatabase:
    """A fresh database on the test server; `sql()` runs statements in it."""

    def __init__(self):
        self.name = create_database()
        self.url = database_url(self.name)

    def sql(self, statement):
        return psql(self.url, statement)

    def drop(self):
        drop_database(self.name)


# --------------------------------------------------------------------------- processes


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_admin_key():
    return "ik_" + secrets.token_hex(32)


def server_env(db_url, data_dir, admin_key, port=None, **extra):
    env = dict(os.environ)
    for key in ("JWT_SECRET", "ENCRYPTION_KEY", "POSTGRES_HOST", "API_BASE_URL", "ACCESS_API_KEY"):
        env.pop(key, None)
    env.update({
        "DATABASE_URL": db_url,
        "HOST": "127.0.0.1",
        "DATA_DIR": data_dir,
        "LOGS_DIR": os.path.join(data_dir, "logs"),
        "EVENT_POLL_INTERVAL_MS": "200",
    })
    if admin_key is not None:  # None: the server generates one and writes it to <DATA_DIR>/admin-key
        env["ACCESS_API_KEY"] = admin_key
    if port is not None:
        env["PORT"] = str(port)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def tail(path, lines=40):
    try:
        with open(path, "r", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError as e:
        return f"(no log: {e})"


def run_cli(args, env, timeout=60):
    """Runs `insforge <args>`; returns the CompletedProcess (text)."""
    return subprocess.run([BIN] + list(args), env=env, capture_output=True, text=True, timeout=timeout)


class Server:
    """One `insforge serve` subprocess with its own port; stderr/stdout go to a log file."""

    def __init__(self, db_url, data_dir, admin_key, name="server", port=None, **extra_env):
        self.db_url = db_url
        self.data_dir = data_dir
        self.admin_key = admin_key
        self.name = name
        self.port = port or free_port()
        self.extra_env = extra_env
        self.proc = None
        self.log_path = os.path.join(data_dir, f"{name}-{self.port}.log")
        self.session = requests.Session()
        self.base = f"http://127.0.0.1:{self.port}"

    @property
    def env(self):
        return server_env(self.db_url, self.data_dir, self.admin_key, self.port, **self.extra_env)

    def start(self, wait=True):
        os.makedirs(self.data_dir, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([BIN, "serve"], env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        _SERVERS.append(self)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=START_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} while starting; log tail:\n"
                                   + tail(self.log_path))
            try:
                r = requests.get(self.base + "/api/health", timeout=2)
                if r.status_code == 200:
                    return
                last = r.status_code
            except requests.RequestException as e:
                last = e
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not healthy after {timeout}s (last: {last}); log tail:\n" + tail(self.log_path))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """SIGKILL, and wait for the process to be gone."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=30)

    def stop(self, timeout=20):
        """SIGTERM (graceful), falling back to SIGKILL; returns the exit code."""
        if self.proc is None:
            return None
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        return self.proc.returncode

    def log_tail(self, lines=40):
        return tail(self.log_path, lines)

    # ---- HTTP

    def url(self, path):
        return self.base + path

    def request(self, method, path, key="admin", headers=None, **kw):
        """`key`: "admin" (this server's admin key), None (no credential), or a literal key/token."""
        h = dict(headers or {})
        if key == "admin":
            key = self.admin_key
        if key is not None:
            h.setdefault("Authorization", f"Bearer {key}")
        kw.setdefault("timeout", HTTP_TIMEOUT)
        return self.session.request(method, self.url(path), headers=h, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def anon_key(self):
        """This server's anon key (admin route)."""
        r = self.get("/api/metadata/anon-key")
        assert r.status_code == 200, r.text
        return r.json()["anonKey"]

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def append(self, stream, events, expected=None, headers=None, key="admin"):
        """POST events (list of dicts: type, data, eventId?) to a stream; returns the response."""
        body = {"events": events}
        if expected is not None:
            body["expectedVersion"] = expected
        return self.post(f"/api/events/streams/{stream}", json=body, headers=headers, key=key)

    def append_ok(self, stream, events, expected=None, headers=None):
        r = self.append(stream, events, expected=expected, headers=headers)
        assert r.status_code == 201, (r.status_code, r.text)
        return r.json()

    def head(self):
        r = self.get("/api/events/stats")
        assert r.status_code == 200, r.text
        return r.json()["head"]

    def stats(self):
        r = self.get("/api/events/stats")
        assert r.status_code == 200, r.text
        return r.json()

    def all_events(self, after=0, page=1000, **filters):
        """Every event after `after`, paging with nextPosition."""
        out = []
        for _ in range(100_000):
            params = {"after": after, "limit": page, **filters}
            r = self.get("/api/events", params=params)
            assert r.status_code == 200, r.text
            body = r.json()
            out.extend(body["data"])
            if not body["data"]:
                assert body["nextPosition"] == after
                return out
            assert body["nextPosition"] == body["data"][-1]["position"]
            after = body["nextPosition"]
        raise AssertionError("paging did not end")

    def wait_projection_caught_up(self, timeout=15):
        """Polls stats until event_stats' checkpoint equals the head; returns the stats.

        The stats route reads head, counts and checkpoints in separate statements (not one snapshot:
        see test_api.py::test_stats_response_is_a_consistent_snapshot), so a response can show the new
        checkpoint with the counts of just before. Once the checkpoint was seen at the head, a second
        read is consistent (nothing is being appended), and that is the one returned."""
        deadline = time.monotonic() + timeout
        stats = None
        seen_at_head = None
        while time.monotonic() < deadline:
            stats = self.stats()
            proj = [p for p in stats["projections"] if p["name"] == "event_stats"]
            if proj and proj[0]["checkpoint"] == stats["head"]:
                if seen_at_head == stats["head"]:
                    return stats
                seen_at_head = stats["head"]
                continue
            seen_at_head = None
            time.sleep(0.1)
        raise AssertionError(f"event_stats did not catch up within {timeout}s: {stats}")


def ev(type_="Thing", data=None, event_id=None):
    e = {"type": type_, "data": data if data is not None else {}}
    if event_id is not None:
        e["eventId"] = str(event_id)
    return e


def new_id():
    return str(uuid.uuid4())


ERROR_KEYS = {"error", "message", "statusCode", "nextActions"}


def assert_error(r, status, code=None):
    """The API's error shape: {error, message, statusCode, nextActions?}, status == statusCode."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    body = r.json()
    assert isinstance(body, dict), body
    assert set(body) <= ERROR_KEYS, body
    assert isinstance(body.get("error"), str) and re.fullmatch(r"[A-Z][A-Z0-9_]*", body["error"]), body
    assert isinstance(body.get("message"), str) and body["message"], body
    assert body.get("statusCode") == status, body
    if "nextActions" in body:
        assert isinstance(body["nextActions"], str)
    if code is not None:
        assert body["error"] == code, body
    assert r.headers.get("X-Request-Id"), r.headers
    return body


def stats_counts(stats, category=None):
    """{(category, type): count} from a stats body."""
    return {(t["category"], t["type"]): t["count"] for t in stats["types"]
            if category is None or t["category"] == category}


# --------------------------------------------------------------------------- fixtures


class Deployment:
    """A database, a data folder and an admin key: what one or more servers share."""

    def __init__(self, tmp_root):
        self.db = ScratchDatabase()
        self.data_dir = tempfile.mkdtemp(prefix="data-", dir=tmp_root)
        self.admin_key = new_admin_key()
        self.servers = []

    def server(self, name="server", data_dir=None, start=True, **extra_env):
        s = Server(self.db.url, data_dir or self.data_dir, self.admin_key, name=name, **extra_env)
        self.servers.append(s)
        if start:
            s.start()
        return s

    def cli_env(self, **extra):
        return server_env(self.db.url, self.data_dir, self.admin_key, **extra)

    def close(self):
        for s in self.servers:
            try:
                s.kill()
            except Exception:
                pass
        self.db.drop()


@pytest.fixture(scope="module")
def deployment_factory(tmp_path_factory):
    """Creates deployments (fresh database each); everything is torn down at module end."""
    made = []
    root = str(tmp_path_factory.mktemp("e2e"))

    def make():
        d = Deployment(root)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


@pytest.fixture(scope="module")
def deployment(deployment_factory):
    return deployment_factory()


@pytest.fixture(scope="module")
def anon_key(server):
    return server.anon_key()


@pytest.fixture(scope="module")
def user_token(server):
    """A signed-in user's access token on the module's server (a fresh sign-up)."""
    body = {"email": f"user-{secrets.token_hex(6)}@example.com", "password": "Correct-horse-42"}
    r = server.post("/api/auth/users", key=None, params={"client_type": "mobile"}, json=body)
    assert r.status_code in (200, 201), r.text
    return r.json()["accessToken"]


@pytest.fixture(scope="module")
def server(deployment):
    """One server on the module's own database."""
    return deployment.server()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and _SERVERS:
        for s in _SERVERS[-4:]:
            state = "running" if s.alive() else f"exited {s.proc.returncode if s.proc else '-'}"
            report.sections.append((f"{s.name} :{s.port} ({state}) log tail", s.log_tail(30)))


def pytest_sessionfinish(session, exitstatus):
    for s in _SERVERS:
        try:
            if s.alive():
                s.kill()
        except Exception:
            pass


def pytest_configure(config):
    if not os.path.isfile(BIN) or not os.access(BIN, os.X_OK):
        raise pytest.UsageError(f"INSFORGE_BIN {BIN!r} is not an executable file")
    try:
        psql(ADMIN_URL, "SELECT 1")
    except Exception as e:  # noqa: BLE001
        raise pytest.UsageError(f"TEST_DATABASE_URL {ADMIN_URL!r} is not reachable: {e}")

