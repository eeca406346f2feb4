"""Every route of GET /api/openapi.json refuses a missing or lesser credential exactly as its `x-access` declares,
and lets the declared credential through.

Access levels: `public` (not walked), `anon` (any valid credential: anon key, user token, admin key or token),
`user` (an access token: a signed-in user's, or the admin's; keys are refused), `admin`. Refusals, as InsForge
answers them: no credential -> 401 AUTH_INVALID_CREDENTIALS ("No admin
token provided" on admin routes, "No token provided" elsewhere); a JWT that is not valid -> 401 AUTH_UNAUTHORIZED; a
key-shaped token that is not ours -> 401 AUTH_INVALID_API_KEY; a valid credential below the route's level -> 403
FORBIDDEN.

Nothing here changes state: a refused request never reaches its handler, refusals carry no body, and the admitted
requests are GET/HEAD, or writes of non-admin routes on a table, function and bucket that do not exist, without a
body (a 400 or 404). The module runs its own server.
"""

import re
import secrets
import time
import uuid
import warnings

import jwt
import pytest

from conftest import assert_error

JWT_SECRET = "e2e-access-jwt-secret-" + secrets.token_hex(16)
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "change-this-password"

ADMITTED = {  # access level -> the credentials it admits
    "anon": {"anon key", "user token", "admin key", "admin token"},
    "user": {"user token", "admin token"},
    "admin": {"admin key", "admin token"},
}
NORMALIZED = {"anon": "anon", "user": "user", "admin": "admin"}

# Path parameters: things that do not exist, so that an admitted request finds nothing to act on.
PLACEHOLDERS = {"provider": "google", "table": "access_probe_no_such_table", "fn": "access_probe_no_such_fn",
                "streamId": "access-probe-stream", "bucket": "access-probe-no-such-bucket", "path": "probe.txt"}

# Routes whose handler refuses a credential that the declaration admits: (method, path, credential) -> why. Tolerated
# (the walk prints them); once the handler or the declaration changes (e.g. to `user`, which refuses the anon key), the
# entry draws a warning: remove it then.
KNOWN_MISMATCHES = {
    ("PATCH", "/api/auth/profiles/current", "admin token"): "an admin has no profile to update (403)",
}


@pytest.fixture(scope="module")
def server(deployment):
    """The module's server: a known JWT secret (to sign an expired token) and an admin login (for an admin token)."""
    return deployment.server(name="access", JWT_SECRET=JWT_SECRET, ADMIN_EMAIL=ADMIN_EMAIL,
                             ADMIN_PASSWORD=ADMIN_PASSWORD)


@pytest.fixture(scope="module")
def operations(server):
    """[(method, path template, access)] for every documented operation."""
    r = server.get("/api/openapi.json", key=None)
    assert r.status_code == 200, r.text
    ops = []
    for path, item in r.json()["paths"].items():
        for method, op in item.items():
            if not isinstance(op, dict) or method not in ("get", "head", "post", "put", "patch", "delete"):
                continue
            access = op.get("x-access")
            assert access == "public" or access in NORMALIZED, f"{method.upper()} {path}: unknown x-access {access!r}"
            ops.append((method.upper(), path, access))
    assert sum(access != "public" for _, _, access in ops) > 50, ops
    return ops


@pytest.fixture(scope="module")
def credentials(server, anon_key, user_token):
    """Every credential the walk sends, by name."""
    r = server.post("/api/auth/admin/sessions", key=None, json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert r.status_code == 200, r.text
    user = jwt.decode(user_token, JWT_SECRET, algorithms=["HS256"])
    now = int(time.time())
    return {
        "admin key": server.admin_key,
        "admin token": r.json()["accessToken"],
        "anon key": anon_key,
        "user token": user_token,
        "garbage": "not-a-credential",
        "forged admin token": jwt.encode({"sub": str(uuid.uuid4()), "email": ADMIN_EMAIL, "role": "project_admin",
                                          "iat": now, "exp": now + 900}, "another-secret-" + "x" * 32, algorithm="HS256"),
        "expired user token": jwt.encode({**user, "iat": now - 2000, "exp": now - 1100}, JWT_SECRET, algorithm="HS256"),
        "unknown admin key": "ik_" + secrets.token_hex(32),
        "unknown anon key": "anon_" + secrets.token_hex(32),
    }


def concrete(path):
    """The path with its parameters filled (a fresh UUID for ids, a placeholder for the rest)."""
    return re.sub(r"\{(\w+)\}", lambda m: PLACEHOLDERS.get(m.group(1), str(uuid.uuid4())), path)


def send(server, method, path, credential):
    return server.request(method, concrete(path), key=credential)


def refusal(access, name):
    """(status, code, message or None) the declaration demands for credential `name`, or None when it admits it."""
    level = NORMALIZED[access]
    if name == "no credential":
        return 401, "AUTH_INVALID_CREDENTIALS", "No admin token provided" if level == "admin" else "No token provided"
    if name in ("garbage", "forged admin token", "expired user token"):
        return 401, "AUTH_UNAUTHORIZED", None
    if name in ("unknown admin key", "unknown anon key"):
        return 401, "AUTH_INVALID_API_KEY", None
    return None if name in ADMITTED[level] else (403, "FORBIDDEN", None)


def check_refused(r, method, status, code, message):
    """None when `r` is the refusal, else what is wrong (HEAD answers carry no body: the status alone)."""
    if method == "HEAD":
        return None if r.status_code == status else f"{r.status_code}, expected {status}"
    try:
        body = assert_error(r, status, code)
    except AssertionError as e:
        return f"{r.status_code} {r.text[:160]!r}, expected {status} {code} ({e})"
    if message is not None and body["message"] != message:
        return f"message {body['message']!r}, expected {message!r}"
    return None


@pytest.mark.parametrize("name", ["no credential", "garbage", "forged admin token", "expired user token",
                                  "unknown admin key", "unknown anon key", "anon key", "user token"])
def test_refused_as_declared(server, operations, credentials, name):
    """Every non-public route refuses `name` with the declared status, code and (without a credential) message;
    the anon key only where the route wants more than anon, a user token only on admin routes."""
    walked, wrong = 0, []
    for method, path, access in operations:
        if access == "public" or (expected := refusal(access, name)) is None:
            continue
        walked += 1
        problem = check_refused(send(server, method, path, credentials.get(name)), method, *expected)
        if problem:
            wrong.append(f"{method} {path} (x-access {access}): {problem}")
    assert walked > 0, f"no route walked for {name}"
    assert not wrong, f"{len(wrong)} of {walked} routes do not refuse {name} as declared:\n" + "\n".join(wrong)


def admitted_requests(operations, name):
    """The (method, path, access) on which `name` is sent to see it admitted: every GET/HEAD, and the writes of
    non-admin routes (their placeholders name nothing, and no body is sent)."""
    for method, path, access in operations:
        if access == "public" or name not in ADMITTED[NORMALIZED[access]]:
            continue
        if method in ("GET", "HEAD") or NORMALIZED[access] != "admin":
            yield method, path, access


@pytest.mark.parametrize("name", ["admin key", "admin token", "anon key", "user token"])
def test_declared_credential_is_admitted(server, operations, credentials, name):
    """A credential the declaration admits gets past the access check: no 401 or 403 (a 404 for the placeholder
    or a 400 for the missing body is fine)."""
    walked, wrong, tolerated = set(), [], []
    for method, path, access in admitted_requests(operations, name):
        key = (method, path, name)
        walked.add(key)
        r = send(server, method, path, credentials[name])
        if r.status_code in (401, 403):
            line = f"{method} {path} (x-access {access}): {r.status_code} {r.text[:160]!r}"
            if key in KNOWN_MISMATCHES:
                tolerated.append(f"{line}: {KNOWN_MISMATCHES[key]}")
            else:
                wrong.append(line)
        elif key in KNOWN_MISMATCHES:
            warnings.warn(f"{method} {path} now admits {name} ({r.status_code}): remove it from KNOWN_MISMATCHES")
    for key in KNOWN_MISMATCHES.keys() - walked:
        if key[2] == name:
            warnings.warn(f"{key[0]} {key[1]} is no longer declared to admit {name}: remove it from KNOWN_MISMATCHES")
    if tolerated:
        print(f"known mismatches ({name}):\n" + "\n".join(tolerated))
    assert walked, f"no route admits {name}"
    assert not wrong, f"{len(wrong)} of {len(walked)} routes refuse {name} although declared to admit it:\n" + "\n".join(wrong)
