"""Secrets (/api/secrets), InsForge's contract: admin only, sealed in the log, soft delete and revival,
reserved keys readable but not writable, expiry, and a changed ENCRYPTION_KEY sealing every value again."""

import json
import secrets as random

import pytest

from conftest import Deployment, assert_error, run_cli


def key(prefix="S"):
    return f"{prefix}_{random.token_hex(4).upper()}"


def create(server, k, value="v-" + random.token_hex(4), **extra):
    return server.post("/api/secrets", json={"key": k, "value": value, **extra})


def test_create_read_list_update_delete_revive(server):
    k = key("STRIPE")
    r = create(server, k, "sk_live_1")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["success"] is True and body["message"] == f"Secret {k} has been created successfully" and body["id"]
    r = server.get(f"/api/secrets/{k}")
    assert r.status_code == 200 and r.json() == {"key": k, "value": "sk_live_1"}
    listed = {s["key"]: s for s in server.get("/api/secrets").json()["secrets"]}
    meta = listed[k]
    assert meta["id"] == body["id"] and meta["isActive"] is True and meta["isReserved"] is False
    assert meta["lastUsedAt"] and meta["createdAt"] and "value" not in meta
    assert_error(create(server, k, "again"), 409, "SECRET_ALREADY_EXISTS")
    r = server.request("PUT", f"/api/secrets/{k}", json={"value": "sk_live_2"})
    assert r.status_code == 200 and r.json()["message"] == f"Secret {k} has been updated successfully", r.text
    assert server.get(f"/api/secrets/{k}").json()["value"] == "sk_live_2"
    r = server.request("DELETE", f"/api/secrets/{k}")
    assert r.status_code == 200 and r.json()["message"] == f"Secret {k} has been deleted successfully"
    assert_error(server.get(f"/api/secrets/{k}"), 404, "SECRET_NOT_FOUND")
    listed = {s["key"]: s for s in server.get("/api/secrets").json()["secrets"]}
    assert listed[k]["isActive"] is False  # soft: still listed
    r = create(server, k, "sk_live_3")  # revived: same id, new value
    assert r.status_code == 201 and r.json()["id"] == body["id"], r.text
    assert server.get(f"/api/secrets/{k}").json()["value"] == "sk_live_3"


def test_bad_input_and_missing_secrets(server):
    assert_error(server.post("/api/secrets", json={"key": "NO_VALUE"}), 400, "INVALID_INPUT")
    r = server.post("/api/secrets", json={"key": "lower-case", "value": "x"})
    body = assert_error(r, 400, "INVALID_INPUT")
    assert "Invalid key format" in body["message"]
    assert_error(server.post("/api/secrets", json={"key": "X" * 300, "value": "x"}), 400, "INVALID_INPUT")
    assert_error(server.post("/api/secrets", json={"key": key(), "value": "x" * (65 * 1024)}), 400, "INVALID_INPUT")
    assert_error(server.post("/api/secrets", data=b"[1,2", headers={"Content-Type": "application/json"}), 400, "INVALID_INPUT")
    assert_error(server.post("/api/secrets", json={"key": key(), "value": "x", "expiresAt": "tomorrow"}), 400, "INVALID_INPUT")
    missing = key("MISSING")
    assert_error(server.get(f"/api/secrets/{missing}"), 404, "SECRET_NOT_FOUND")
    assert_error(server.request("PUT", f"/api/secrets/{missing}", json={"value": "x"}), 404, "SECRET_NOT_FOUND")
    assert_error(server.request("DELETE", f"/api/secrets/{missing}"), 404, "SECRET_NOT_FOUND")
    k = key()
    assert create(server, k).status_code == 201
    assert_error(server.request("PUT", f"/api/secrets/{k}", json={}), 400, "INVALID_INPUT")
    assert_error(server.request("PUT", f"/api/secrets/{k}", json={"isActive": "yes"}), 400, "INVALID_INPUT")


def test_only_admins(server, anon_key, user_token):
    for credential, status in ((None, 401), (anon_key, 403), (user_token, 403)):
        assert_error(server.get("/api/secrets", key=credential), status)
        assert_error(server.post("/api/secrets", key=credential, json={"key": key(), "value": "x"}), status)


def test_reserved_secrets_are_readable_never_writable(server, anon_key):
    assert server.get("/api/secrets/ANON_KEY").json() == {"key": "ANON_KEY", "value": anon_key}
    assert server.get("/api/secrets/API_KEY").json()["value"] == server.admin_key
    listed = {s["key"]: s for s in server.get("/api/secrets").json()["secrets"]}
    assert listed["API_KEY"]["isReserved"] is True and "JWT_SECRET" not in listed
    assert_error(server.request("PUT", "/api/secrets/API_KEY", json={"value": "x"}), 403, "FORBIDDEN")
    assert_error(server.request("DELETE", "/api/secrets/ANON_KEY"), 403, "FORBIDDEN")
    assert_error(create(server, "API_KEY", "mine"), 409, "SECRET_ALREADY_EXISTS")
    # A secret stored as reserved is protected the same way.
    k = key("RESERVED")
    assert create(server, k, "x", isReserved=True).status_code == 201
    body = assert_error(server.request("DELETE", f"/api/secrets/{k}"), 403, "FORBIDDEN")
    assert body["message"] == f"Cannot delete reserved secret: {k}"


def test_expiry(server):
    k = key("OLD")
    assert create(server, k, "x", expiresAt="2020-01-01T00:00:00Z").status_code == 201
    assert_error(server.get(f"/api/secrets/{k}"), 404, "SECRET_NOT_FOUND")
    assert server.request("PUT", f"/api/secrets/{k}", json={"expiresAt": None}).status_code == 200
    assert server.get(f"/api/secrets/{k}").json()["value"] == "x"


def test_values_are_sealed_in_the_log_and_the_read_model(server, deployment):
    k, value = key("PLAIN"), "do-not-store-me-" + random.token_hex(8)
    assert create(server, k, value).status_code == 201
    assert server.request("PUT", f"/api/secrets/{k}", json={"value": value + "-2"}).status_code == 200
    events = server.get(f"/api/events/streams/secret-{k}").json()
    text = json.dumps(events)
    assert [e["type"] for e in events["data"]] == ["SecretStored", "SecretUpdated"], text[:500]
    assert value not in text and "k1." in text
    ciphertext = deployment.db.sql(f"SELECT ciphertext FROM system.secrets WHERE key = '{k}'").strip()
    assert value not in ciphertext and ciphertext.startswith("k1.")


def test_a_new_encryption_key_seals_every_secret_again_and_replay_restores_them(tmp_path):
    deployment = Deployment(str(tmp_path))
    try:
        _rotation(deployment)
    finally:
        deployment.close()


def _rotation(deployment):
    first = deployment.server(name="seal-a", ENCRYPTION_KEY="first-encryption-key-" + "a" * 20)
    k = key("ROTATE")
    assert create(first, k, "the-value").status_code == 201
    before = deployment.db.sql(f"SELECT ciphertext FROM system.secrets WHERE key = '{k}'").strip()
    first.stop()
    second = deployment.server(name="seal-b", ENCRYPTION_KEY="second-encryption-key-" + "b" * 20,
                               ENCRYPTION_KEYS_PREVIOUS="first-encryption-key-" + "a" * 20)
    assert second.get(f"/api/secrets/{k}").json()["value"] == "the-value"
    after = deployment.db.sql(f"SELECT ciphertext FROM system.secrets WHERE key = '{k}'").strip()
    assert after.split(".")[1] != before.split(".")[1]  # another key id
    types = [e["type"] for e in second.get(f"/api/events/streams/secret-{k}").json()["data"]]
    assert types[-1] == "SecretResealed", types
    p = run_cli(["events", "replay", "--verify"], deployment.cli_env(ENCRYPTION_KEY="second-encryption-key-" + "b" * 20), timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    second.stop()
