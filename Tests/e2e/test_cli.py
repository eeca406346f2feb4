"""The operator commands of the same binary: migrate, events stats/export/replay, and bad environments."""

import json
import os
import subprocess
import time

import lz4.frame
import pytest
import requests

from conftest import BIN, ScratchDatabase, Server, ev, free_port, run_cli, server_env, stats_counts


@pytest.fixture(scope="module")
def loaded(deployment):
    """A server on the module's database with a few categories of events, projection caught up."""
    s = deployment.server(name="cli")
    for i in range(20):
        s.append_ok(f"cli-{i % 4}", [ev("CliCreated", {"i": i}), ev("CliUpdated", {"i": i})])
    s.append_ok("other-1", [ev("OtherThing", {"x": "ü\n\"quoted\""})])
    s.wait_projection_caught_up()
    return s


def test_events_stats_json(deployment, loaded):
    p = run_cli(["events", "stats", "--json"], deployment.cli_env())
    assert p.returncode == 0, p.stderr
    cli = json.loads(p.stdout)
    http = loaded.stats()
    assert cli["head"] == http["head"] and cli["totalEvents"] == http["totalEvents"]
    assert stats_counts(cli) == stats_counts(http)
    assert stats_counts(cli, "cli") == {("cli", "CliCreated"): 20, ("cli", "CliUpdated"): 20}
    assert [p["name"] for p in cli["projections"]] == ["event_stats", "webhook_outbox"]
    assert cli["projections"][0]["checkpoint"] == http["head"]
    assert cli["parkedEvents"] == 0


def test_events_export_files(deployment, loaded, tmp_path):
    plain_path, packed_path = tmp_path / "events.ndjson", tmp_path / "events.ndjson.lz4"
    p = run_cli(["events", "export", "--format", "ndjson", "-o", str(plain_path)], deployment.cli_env())
    assert p.returncode == 0, p.stderr
    p = run_cli(["events", "export", "--format", "ndjson.lz4", "-o", str(packed_path)], deployment.cli_env())
    assert p.returncode == 0, p.stderr
    plain = plain_path.read_bytes()
    http = loaded.get("/api/events/export").content
    assert plain == http
    assert [json.loads(line)["position"] for line in plain.decode().splitlines()] == list(range(1, loaded.head() + 1))
    assert lz4.frame.decompress(packed_path.read_bytes()) == plain
    # to standard output
    p = subprocess.run([BIN, "events", "export"], env=deployment.cli_env(), capture_output=True, timeout=60)
    assert p.returncode == 0 and p.stdout == plain
    bad = run_cli(["events", "export", "--format", "zip", "-o", str(tmp_path / "x")], deployment.cli_env())
    assert bad.returncode != 0


def replay(deployment):
    p = run_cli(["events", "replay", "--verify"], deployment.cli_env(), timeout=120)
    return p, p.stdout + p.stderr


def test_replay_verify_matches(deployment, loaded):
    p, out = replay(deployment)
    assert p.returncode == 0, out
    ok = [line for line in p.stdout.splitlines() if line.startswith("ok  ")]
    assert any("system.event_stats" in line for line in ok), out
    assert any("system.api_keys" in line for line in ok), out
    assert "DIFF" not in p.stdout


def test_replay_detects_tampered_event_stats(deployment, loaded):
    loaded.wait_projection_caught_up()
    deployment.db.sql("UPDATE system.event_stats SET count = count + 1 WHERE category = 'cli' AND type = 'CliCreated'")
    try:
        p, out = replay(deployment)
        assert p.returncode != 0, out
        assert any(line.startswith("DIFF") and "system.event_stats" in line for line in p.stdout.splitlines()), out
    finally:
        deployment.db.sql("UPDATE system.event_stats SET count = count - 1 WHERE category = 'cli' AND type = 'CliCreated'")
    p, out = replay(deployment)
    assert p.returncode == 0, out


def test_replay_detects_tampered_api_keys(deployment, loaded):
    original = deployment.db.sql("SELECT fingerprint FROM system.api_keys WHERE kind = 'anon'")
    deployment.db.sql("UPDATE system.api_keys SET fingerprint = 'x' WHERE kind = 'anon'")
    try:
        p, out = replay(deployment)
        assert p.returncode != 0, out
        assert any(line.startswith("DIFF") and "system.api_keys" in line for line in p.stdout.splitlines()), out
    finally:
        deployment.db.sql(f"UPDATE system.api_keys SET fingerprint = '{original}' WHERE kind = 'anon'")
    p, out = replay(deployment)
    assert p.returncode == 0, out


def test_replay_requires_verify(deployment, loaded):
    p = run_cli(["events", "replay"], deployment.cli_env())
    assert p.returncode != 0


# --------------------------------------------------------------------------- migrations


def test_migrate_twice_then_detect_edit(tmp_path):
    db = ScratchDatabase()
    try:
        env = server_env(db.url, str(tmp_path), "ik_" + "1" * 64)
        p = run_cli(["migrate"], env)
        assert p.returncode == 0, p.stderr
        rows = db.sql("SELECT version, checksum, applied_at FROM system.migrations ORDER BY version")
        assert len(rows.splitlines()) >= 2
        p = run_cli(["migrate"], env)
        assert p.returncode == 0, p.stderr
        assert db.sql("SELECT version, checksum, applied_at FROM system.migrations ORDER BY version") == rows
        assert db.sql("SELECT count(*) FROM system.events") == "0"  # migrate issues no keys

        db.sql("UPDATE system.migrations SET checksum = 'x' WHERE version = 1")
        p = run_cli(["migrate"], env)
        assert p.returncode != 0, p.stdout
        assert "edited" in (p.stdout + p.stderr), p.stdout + p.stderr

        # the server refuses to start on it too, quickly and with the same message
        port = free_port()
        started = time.monotonic()
        p = subprocess.run([BIN, "serve"], env=dict(env, PORT=str(port)), capture_output=True, text=True, timeout=60)
        assert p.returncode != 0
        assert "edited" in (p.stdout + p.stderr)
        assert time.monotonic() - started < 30
    finally:
        db.drop()


# --------------------------------------------------------------------------- bad environments


@pytest.mark.parametrize("var,value", [("JWT_SECRET", "short"), ("ACCESS_API_KEY", "nope"),
                                       ("ACCESS_API_KEY", "ik_" + "z" * 64), ("PORT", "notaport"),
                                       ("DATABASE_URL", "mysql://x@127.0.0.1/db")])
def test_bad_environment_exits_quickly(tmp_path, var, value):
    env = server_env("postgres://postgres@127.0.0.1:1/none", str(tmp_path), "ik_" + "1" * 64, free_port())
    env[var] = value
    started = time.monotonic()
    proc = subprocess.run([BIN, "serve"], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    assert time.monotonic() - started < 15
    assert var in (proc.stderr + proc.stdout), proc.stderr
    assert not os.path.exists(tmp_path / "jwt-secret")


def test_generated_admin_key_is_written_for_the_operator(tmp_path):
    """Without ACCESS_API_KEY the server generates the admin key, writes it to <DATA_DIR>/admin-key (0600, kept
    current through rotations) and `insforge keys show` prints it: a newcomer has a way in."""
    db = ScratchDatabase()
    data_dir = str(tmp_path / "data")
    s = Server(db.url, data_dir, None, name="nokey")
    try:
        s.start()
        path = os.path.join(data_dir, "admin-key")
        assert os.path.exists(path), s.log_tail(40)
        assert os.stat(path).st_mode & 0o777 == 0o600
        key = open(path).read().strip()
        assert key.startswith("ik_") and len(key) > 40, key
        assert "admin-key" in s.log_tail(200)
        r = requests.get(s.base + "/api/auth/users", headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert r.status_code == 200, r.text
        shown = run_cli(["keys", "show"], server_env(db.url, data_dir, None))
        assert shown.returncode == 0, shown.stderr
        assert f"admin: {key}" in shown.stdout and "anon: anon_" in shown.stdout, shown.stdout
        rotated = requests.post(s.base + "/api/secrets/api-key/rotate", headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert rotated.status_code == 200, rotated.text
        new = open(path).read().strip()
        assert new != key and new == rotated.json()["apiKey"], (new, rotated.json())
        s.stop()
        s.start()  # a restart keeps the same key (it lives in the log, not in the file)
        assert open(path).read().strip() == new
    finally:
        s.kill()
        db.drop()
