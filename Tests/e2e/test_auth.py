"""The auth API of one server: sign-up, sign-in, refresh rotation, logout, profiles, admin sessions and user
management, auth settings, forged tokens, concurrency, rate limits, and the auth events of the log.

Every request here goes through `call()`, which uses no cookie jar: cookies are sent explicitly, so one test's
session never leaks into another's. The module's server runs with a known JWT_SECRET (to forge tokens), an admin
login and a rate limit high enough never to trigger; the rate-limit test has its own deployment."""

import base64
import json
import re
import secrets
import threading
import time
import urllib.parse
import uuid

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import HTTP_TIMEOUT, assert_error, run_cli

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
COOKIE = "insforge_refresh_token"
PASSWORD = "Correct-horse-42"

JWT_SECRET = "e2e-auth-jwt-secret-" + secrets.token_hex(16)  # >= 32 characters
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "change-this-password"
AUTH_ENV = {"JWT_SECRET": JWT_SECRET, "ADMIN_EMAIL": ADMIN_EMAIL, "ADMIN_PASSWORD": ADMIN_PASSWORD,
            "RATE_LIMIT_AUTH_PER_MINUTE": "100000"}

USER_KEYS = {"id", "email", "emailVerified", "identities", "providerType", "role", "createdAt", "updatedAt", "profile",
             "metadata"}
CONFIG_KEYS = {"requireEmailVerification", "passwordMinLength", "requireNumber", "requireLowercase", "requireUppercase",
               "requireSpecialChar", "verifyEmailMethod", "resetPasswordMethod", "signInRedirectTo", "disableSignup",
               "allowedRedirectUrls"}


# --------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def server(deployment):
    """The module's server: known JWT secret, admin login, no practical rate limit."""
    return deployment.server(name="auth", **AUTH_ENV)


def call(server, method, path, key=None, headers=None, cookie=None, **kw):
    """One request without a cookie jar. `key`: None (no credential), "admin" (the admin key) or a literal
    key/token. `cookie`: a refresh token sent as the insforge_refresh_token cookie. Every answer must carry
    X-Request-Id."""
    h = dict(headers or {})
    if key == "admin":
        key = server.admin_key
    if key is not None:
        h.setdefault("Authorization", f"Bearer {key}")
    if cookie is not None:
        h["Cookie"] = f"{COOKIE}={cookie}"
    kw.setdefault("timeout", HTTP_TIMEOUT)
    r = requests.request(method, server.url(path), headers=h, **kw)
    assert r.headers.get("X-Request-Id"), (method, path, r.status_code, dict(r.headers))
    return r


def new_email(prefix="user"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


def sign_up(server, email=None, password=PASSWORD, client_type=None, name=None, **extra):
    body = {"email": email or new_email(), "password": password}
    if name is not None:
        body["name"] = name
    body.update(extra)
    params = {"client_type": client_type} if client_type else None
    return call(server, "POST", "/api/auth/users", params=params, json=body)


# Sign-up answers 200, as InsForge's does (its SDKs expect exactly that).
SIGNED_UP = (200,)


def sign_up_ok(server, client_type="mobile", **kw):
    r = sign_up(server, client_type=client_type, **kw)
    assert r.status_code in SIGNED_UP, (r.status_code, r.text)
    return r.json()


def sign_in(server, email, password=PASSWORD, client_type=None):
    params = {"client_type": client_type} if client_type else None
    return call(server, "POST", "/api/auth/sessions", params=params, json={"email": email, "password": password})


def refresh_body(server, token, field="refreshToken", path="/api/auth/refresh"):
    return call(server, "POST", path, json={field: token})


def refresh_cookie(server, token, csrf=None, path="/api/auth/refresh"):
    headers = {"X-CSRF-Token": csrf} if csrf is not None else None
    return call(server, "POST", path, cookie=token, headers=headers)


def set_cookie_headers(r):
    return r.raw.headers.getlist("Set-Cookie")


def refresh_cookie_of(r):
    """(value, {attribute-lowercase: value}) of the one insforge_refresh_token Set-Cookie of `r`."""
    found = [c for c in set_cookie_headers(r) if c.split("=", 1)[0].strip() == COOKIE]
    assert len(found) == 1, set_cookie_headers(r)
    parts = [p.strip() for p in found[0].split(";")]
    value = parts[0].split("=", 1)[1]
    attrs = {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        attrs[k.strip().lower()] = v.strip()
    return value, attrs


def assert_session_cookie(r):
    value, attrs = refresh_cookie_of(r)
    assert value, attrs
    assert attrs.get("path") == "/api/auth", attrs
    assert "httponly" in attrs, attrs
    if "max-age" in attrs:
        assert int(attrs["max-age"]) > 0, attrs
    return value


def assert_cleared_cookie(r):
    value, attrs = refresh_cookie_of(r)
    assert value == "", (value, attrs)
    assert attrs.get("max-age") == "0", attrs
    assert attrs.get("path") == "/api/auth", attrs


def assert_user(user, email=None):
    assert set(user) >= USER_KEYS, user
    assert UUID_RE.match(user["id"]), user
    if email is not None:
        assert user["email"].lower() == email.lower(), user
    assert isinstance(user["emailVerified"], bool)
    assert user["identities"] == [{"provider": "email"}], user
    assert user["providerType"] == "email", user
    assert user["role"] == "authenticated", user
    assert TIMESTAMP.match(user["createdAt"]), user
    assert TIMESTAMP.match(user["updatedAt"]), user
    assert user["updatedAt"] >= user["createdAt"], user
    assert user["profile"] is None or isinstance(user["profile"], dict), user
    assert user["metadata"] is None or isinstance(user["metadata"], dict), user


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64url_json(obj):
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def unb64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def claims_of(token):
    return jwt.decode(token, JWT_SECRET, algorithms=["HS256"])


def now_s():
    return int(time.time())


@pytest.fixture(scope="module")
def alice(server):
    """A mobile user for read-only checks: {email, user, accessToken, refreshToken}."""
    email = new_email("alice")
    body = sign_up_ok(server, email=email, name="Alice")
    return {"email": email, **body}


@pytest.fixture(scope="module")
def admin_token(server):
    r = call(server, "POST", "/api/auth/admin/sessions", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert r.status_code == 200, r.text
    return r.json()["accessToken"]


def get_config(server):
    r = call(server, "GET", "/api/auth/config", key="admin")
    assert r.status_code == 200, r.text
    return r.json()


def put_config(server, patch):
    return call(server, "PUT", "/api/auth/config", key="admin", json=patch)


class ConfigChange:
    """Applies a config patch and restores the whole previous config afterwards (the server is shared)."""

    def __init__(self, server, patch):
        self.server, self.patch = server, patch

    def __enter__(self):
        self.before = get_config(self.server)
        r = put_config(self.server, self.patch)
        assert r.status_code == 200, r.text
        return r.json()

    def __exit__(self, *exc):
        r = put_config(self.server, self.before)
        assert r.status_code == 200, r.text
        assert get_config(self.server) == self.before


# --------------------------------------------------------------------------- sign-up


@pytest.mark.parametrize("client_type", [None, "mobile"])
def test_sign_up_answers_200(server, client_type):
    r = sign_up(server, client_type=client_type)
    assert r.status_code == 200, (r.status_code, r.text[:300])


def test_sign_up_web_default(server):
    email = new_email()
    r = sign_up(server, email=email, name="Ada Lovelace", redirectTo="http://localhost:3000/welcome")
    assert r.status_code in SIGNED_UP, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"user", "accessToken", "requireEmailVerification", "csrfToken"}, body
    assert body["requireEmailVerification"] is False
    assert isinstance(body["csrfToken"], str) and body["csrfToken"]
    assert isinstance(body["accessToken"], str) and body["accessToken"].count(".") == 2
    assert_user(body["user"], email)
    assert body["user"]["email"] == email
    assert body["user"]["profile"] == {"name": "Ada Lovelace"}
    cookie = assert_session_cookie(r)
    assert cookie not in r.text  # web: the refresh token travels only in the httpOnly cookie


@pytest.mark.parametrize("client_type", ["mobile", "desktop", "server"])
def test_sign_up_other_client_types_get_refresh_token_in_body(server, client_type):
    email = new_email(client_type)
    r = sign_up(server, email=email, client_type=client_type)
    assert r.status_code in SIGNED_UP, r.text
    body = r.json()
    assert set(body) == {"user", "accessToken", "requireEmailVerification", "refreshToken"}, body
    assert body["requireEmailVerification"] is False
    assert isinstance(body["refreshToken"], str) and body["refreshToken"]
    assert_user(body["user"], email)
    assert not [c for c in set_cookie_headers(r) if c.startswith(COOKIE + "=")], set_cookie_headers(r)


def test_sign_up_web_explicit_client_type(server):
    r = sign_up(server, client_type="web")
    assert r.status_code in SIGNED_UP, r.text
    assert "csrfToken" in r.json() and "refreshToken" not in r.json()
    assert_session_cookie(r)


def test_sign_up_unknown_client_type(server):
    email = new_email()
    assert_error(sign_up(server, email=email, client_type="toaster"), 400)
    # nothing was created: the address is still free
    r = sign_up(server, email=email, client_type="mobile")
    assert r.status_code in SIGNED_UP, r.text


def test_access_token_claims(server, alice):
    token = alice["accessToken"]
    header = json.loads(unb64url(token.split(".")[0]))
    assert header["alg"] == "HS256", header
    claims = claims_of(token)  # verifies the signature with the server's JWT_SECRET
    assert set(claims) >= {"sub", "email", "role", "iat", "exp"}, claims
    assert claims["sub"] == alice["user"]["id"]
    assert claims["email"] == alice["email"]
    assert claims["role"] == "authenticated"
    assert type(claims["iat"]) is int and type(claims["exp"]) is int, claims
    assert claims["exp"] - claims["iat"] == 900, claims
    assert abs(claims["iat"] - now_s()) < 120, claims


def test_sign_up_duplicate_email_is_case_insensitive(server):
    email = new_email("dup")
    sign_up_ok(server, email=email)
    assert_error(sign_up(server, email=email), 409, "AUTH_EMAIL_EXISTS")
    assert_error(sign_up(server, email=email.upper(), password="Other-pass-99"), 409, "AUTH_EMAIL_EXISTS")


BAD_SIGN_UPS = [
    ("email not an address", {"email": "not-an-email", "password": PASSWORD}),
    ("email without domain dot", {"email": "a@localhost", "password": PASSWORD}),
    ("email without local part", {"email": "@example.com", "password": PASSWORD}),
    ("email empty", {"email": "", "password": PASSWORD}),
    ("email missing", {"password": PASSWORD}),
    ("email number", {"email": 12345, "password": PASSWORD}),
    ("email null", {"email": None, "password": PASSWORD}),
    ("password missing", {"email": "EMAIL"}),
    ("password empty", {"email": "EMAIL", "password": ""}),
    ("password 5 chars", {"email": "EMAIL", "password": "abcde"}),
    ("password 73 bytes", {"email": "EMAIL", "password": "a" * 73}),
    ("password 74 utf8 bytes in 37 chars", {"email": "EMAIL", "password": "é" * 37}),
    ("password number", {"email": "EMAIL", "password": 12345678}),
    ("password list", {"email": "EMAIL", "password": ["secret-123"]}),
    ("name number", {"email": "EMAIL", "password": PASSWORD, "name": 5}),
]


@pytest.mark.parametrize("label,body", BAD_SIGN_UPS, ids=[x[0] for x in BAD_SIGN_UPS])
def test_sign_up_rejects_bad_input(server, label, body):
    email = new_email("bad")
    body = {k: (email if v == "EMAIL" else v) for k, v in body.items()}
    assert_error(call(server, "POST", "/api/auth/users", json=body), 400, "INVALID_INPUT")
    if body.get("email") == email:  # the refused sign-up created no account
        assert list_users(server, search=email)["pagination"]["total"] == 0


RAW_BAD_BODIES = [
    ("not json", b"this is not json"),
    ("truncated json", b'{"email": "x@example.com", "password": '),
    ("array body", b'[{"email": "x@example.com", "password": "secret-123"}]'),
    ("string body", b'"x@example.com"'),
    ("null body", b"null"),
]


@pytest.mark.parametrize("label,raw", RAW_BAD_BODIES, ids=[x[0] for x in RAW_BAD_BODIES])
def test_sign_up_rejects_malformed_json(server, label, raw):
    r = call(server, "POST", "/api/auth/users", data=raw, headers={"Content-Type": "application/json"})
    assert_error(r, 400, "INVALID_INPUT")


def test_password_length_boundaries_are_accepted(server):
    for password in ["abc123", "b" * 72, "é" * 36]:  # 6 characters; 72 bytes; 72 utf-8 bytes
        email = new_email("edge")
        r = sign_up(server, email=email, password=password, client_type="mobile")
        assert r.status_code in SIGNED_UP, (password, r.status_code, r.text)
        assert sign_in(server, email, password).status_code == 200


def test_seventy_three_byte_password_does_not_sign_in_as_its_prefix(server):
    """bcrypt reads 72 bytes: a 73-byte password must be refused, not truncated into a working account."""
    email = new_email("trunc")
    assert_error(sign_up(server, email=email, password="c" * 73), 400, "INVALID_INPUT")
    assert_error(sign_in(server, email, "c" * 72), 401, "AUTH_INVALID_CREDENTIALS")


# --------------------------------------------------------------------------- sign-in


def test_sign_in_web(server):
    email = new_email("signin")
    up = sign_up_ok(server, email=email)
    r = sign_in(server, email)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"user", "accessToken", "csrfToken"}, body
    assert_user(body["user"], email)
    assert body["user"]["id"] == up["user"]["id"]
    assert claims_of(body["accessToken"])["sub"] == up["user"]["id"]
    assert_session_cookie(r)


def test_sign_in_mobile(server):
    email = new_email("signin")
    up = sign_up_ok(server, email=email)
    r = sign_in(server, email, client_type="mobile")
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"user", "accessToken", "refreshToken"}, body
    assert body["user"]["id"] == up["user"]["id"]
    assert body["refreshToken"] and body["refreshToken"] != up["refreshToken"]
    assert not [c for c in set_cookie_headers(r) if c.startswith(COOKIE + "=")]


def test_sign_in_failures_are_enumeration_safe(server, alice):
    wrong = assert_error(sign_in(server, alice["email"], "Wrong-password-1"), 401, "AUTH_INVALID_CREDENTIALS")
    unknown = assert_error(sign_in(server, new_email("nobody"), "Wrong-password-1"), 401, "AUTH_INVALID_CREDENTIALS")
    assert wrong["message"] == "Invalid credentials", wrong
    assert unknown["message"] == wrong["message"], (wrong, unknown)
    assert wrong == unknown


# --------------------------------------------------------------------------- refresh and logout


def test_refresh_with_body_rotates(server):
    up = sign_up_ok(server)
    r = refresh_body(server, up["refreshToken"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"user", "accessToken", "refreshToken"}, body
    assert body["user"]["id"] == up["user"]["id"]
    assert body["refreshToken"] and body["refreshToken"] != up["refreshToken"]
    claims = claims_of(body["accessToken"])
    assert claims["sub"] == up["user"]["id"] and claims["role"] == "authenticated"
    me = call(server, "GET", "/api/auth/sessions/current", key=body["accessToken"])
    assert me.status_code == 200 and me.json()["user"]["id"] == up["user"]["id"]
    # the snake_case field works too, and rotates again
    r2 = refresh_body(server, body["refreshToken"], field="refresh_token")
    assert r2.status_code == 200, r2.text
    assert r2.json()["refreshToken"] not in (body["refreshToken"], up["refreshToken"])


def test_refresh_reuse_revokes_the_family(server):
    up = sign_up_ok(server)
    t0 = up["refreshToken"]
    r = refresh_body(server, t0)
    assert r.status_code == 200, r.text
    t1 = r.json()["refreshToken"]
    assert_error(refresh_body(server, t0), 401, "AUTH_UNAUTHORIZED")  # reuse of the rotated token
    assert_error(refresh_body(server, t1), 401, "AUTH_UNAUTHORIZED")  # the whole family ended


def test_refresh_web_cookie_with_csrf(server):
    up = sign_up(server)
    assert up.status_code in SIGNED_UP, up.text
    cookie, csrf = assert_session_cookie(up), up.json()["csrfToken"]
    r = refresh_cookie(server, cookie, csrf)
    assert r.status_code == 200, r.text
    body = r.json()
    assert {"user", "accessToken", "csrfToken"} <= set(body), body
    assert "refreshToken" not in body, body
    assert body["user"]["id"] == up.json()["user"]["id"]
    new_cookie = assert_session_cookie(r)
    assert new_cookie != cookie
    assert body["csrfToken"] and body["csrfToken"] != csrf
    # and the new pair rotates again
    r2 = refresh_cookie(server, new_cookie, body["csrfToken"])
    assert r2.status_code == 200, r2.text
    assert assert_session_cookie(r2) not in (cookie, new_cookie)


def test_refresh_cookie_requires_the_right_csrf_token(server):
    email = new_email("csrf")
    up = sign_up(server, email=email)
    assert up.status_code in SIGNED_UP, up.text
    cookie, csrf = assert_session_cookie(up), up.json()["csrfToken"]
    other = sign_in(server, email)  # a second web session of the same user
    assert other.status_code == 200, other.text
    assert_error(refresh_cookie(server, cookie), 403, "FORBIDDEN")
    assert_error(refresh_cookie(server, cookie, "not-the-token"), 403, "FORBIDDEN")
    assert_error(refresh_cookie(server, cookie, ""), 403, "FORBIDDEN")
    assert_error(refresh_cookie(server, cookie, other.json()["csrfToken"]), 403, "FORBIDDEN")
    # the refused attempts did not use the token up
    assert refresh_cookie(server, cookie, csrf).status_code == 200


def test_refresh_reuse_of_web_cookie_revokes(server):
    up = sign_up(server)
    cookie, csrf = assert_session_cookie(up), up.json()["csrfToken"]
    r = refresh_cookie(server, cookie, csrf)
    assert r.status_code == 200, r.text
    new_cookie, new_csrf = assert_session_cookie(r), r.json()["csrfToken"]
    assert_error(refresh_cookie(server, cookie, csrf), 401, "AUTH_UNAUTHORIZED")
    assert_error(refresh_cookie(server, new_cookie, new_csrf), 401, "AUTH_UNAUTHORIZED")


@pytest.mark.parametrize("kwargs", [{}, {"json": {}}, {"json": {"refreshToken": ""}}, {"json": {"refreshToken": None}}],
                         ids=["no body", "empty object", "empty token", "null token"])
def test_refresh_without_token_is_401(server, kwargs):
    assert_error(call(server, "POST", "/api/auth/refresh", **kwargs), 401)


@pytest.mark.parametrize("token", ["garbage", "x" * 200, "eyJhbGciOiJIUzI1NiJ9.e30.c2ln", str(uuid.uuid4())])
def test_refresh_with_garbage_token_is_401(server, token):
    assert_error(refresh_body(server, token), 401)
    assert_error(refresh_body(server, token, field="refresh_token"), 401)


def test_logout_with_body(server):
    up = sign_up_ok(server)
    r = call(server, "POST", "/api/auth/logout", json={"refreshToken": up["refreshToken"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True and isinstance(body["message"], str) and body["message"], body
    assert_cleared_cookie(r)
    assert_error(refresh_body(server, up["refreshToken"]), 401)


def test_logout_with_cookie(server):
    up = sign_up(server)
    cookie, csrf = assert_session_cookie(up), up.json()["csrfToken"]
    # Without the session's CSRF token (a cross-site form, say) nothing ends and the cookie stays.
    for headers in ({}, {"X-CSRF-Token": "forged"}):
        r = call(server, "POST", "/api/auth/logout", cookie=cookie, headers=headers)
        assert_error(r, 403, "FORBIDDEN")
        assert "set-cookie" not in {k.lower() for k in r.headers}, r.headers
    r = call(server, "POST", "/api/auth/logout", cookie=cookie, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200, r.text
    assert r.json()["success"] is True
    assert_cleared_cookie(r)
    assert_error(refresh_cookie(server, cookie, csrf), 401)


# --------------------------------------------------------------------------- current session and credentials


def test_current_session(server, alice):
    r = call(server, "GET", "/api/auth/sessions/current", key=alice["accessToken"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"user"}, body
    assert_user(body["user"], alice["email"])
    assert body["user"]["id"] == alice["user"]["id"]


def test_current_session_without_credential(server):
    assert_error(call(server, "GET", "/api/auth/sessions/current"), 401, "AUTH_INVALID_CREDENTIALS")


def test_current_session_with_admin_key_is_forbidden(server):
    assert_error(call(server, "GET", "/api/auth/sessions/current", key="admin"), 403, "FORBIDDEN")


@pytest.mark.parametrize("path", ["/api/auth/sessions/current", "/api/auth/public-config"])
def test_unknown_admin_key_is_invalid_api_key(server, path):
    assert_error(call(server, "GET", path, key="ik_" + "ab" * 32), 401, "AUTH_INVALID_API_KEY")


@pytest.mark.parametrize("method,path,body", [
    ("GET", "/api/auth/users", None),
    ("GET", "/api/metadata/api-key", None),
    ("GET", "/api/auth/config", None),
    ("PUT", "/api/auth/config", {"disableSignup": True}),
    ("DELETE", "/api/auth/users", {"userIds": [str(uuid.uuid4())]}),
    ("GET", "/api/auth/admin/sessions/current", None),
    ("GET", "/api/events", None),
])
def test_admin_routes_refuse_user_tokens(server, alice, method, path, body):
    kw = {"json": body} if body is not None else {}
    assert_error(call(server, method, path, key=alice["accessToken"], **kw), 403, "FORBIDDEN")
    assert_error(call(server, method, path, **kw), 401, "AUTH_INVALID_CREDENTIALS")
    assert get_config(server)["disableSignup"] is False


def _forge(alice, kind):
    now = now_s()
    good = {"sub": alice["user"]["id"], "email": alice["email"], "role": "authenticated", "iat": now, "exp": now + 900}
    if kind == "valid":
        return jwt.encode(good, JWT_SECRET, algorithm="HS256")
    if kind == "alg none":
        return b64url_json({"alg": "none", "typ": "JWT"}) + "." + b64url_json(good) + "."
    if kind == "alg none with a signature":
        signed = jwt.encode(good, JWT_SECRET, algorithm="HS256").split(".")[2]
        return b64url_json({"alg": "none", "typ": "JWT"}) + "." + b64url_json(good) + "." + signed
    if kind == "HS256 wrong key":
        return jwt.encode(good, "a-completely-different-secret-of-enough-length", algorithm="HS256")
    if kind == "RS256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        return jwt.encode(good, pem, algorithm="RS256")
    if kind == "payload altered after signing":
        header, _, sig = alice["accessToken"].split(".")
        claims = json.loads(unb64url(alice["accessToken"].split(".")[1]))
        claims["email"] = "someone-else@example.com"
        return header + "." + b64url_json(claims) + "." + sig
    if kind == "expired":
        return jwt.encode({**good, "iat": now - 2000, "exp": now - 1100}, JWT_SECRET, algorithm="HS256")
    if kind == "role superuser":
        return jwt.encode({**good, "role": "superuser"}, JWT_SECRET, algorithm="HS256")
    if kind == "missing sub":
        return jwt.encode({k: v for k, v in good.items() if k != "sub"}, JWT_SECRET, algorithm="HS256")
    if kind == "signature removed":
        return alice["accessToken"].rsplit(".", 1)[0] + "."
    raise AssertionError(kind)


ATTACKS = ["alg none", "alg none with a signature", "HS256 wrong key", "RS256", "payload altered after signing",
           "expired", "role superuser", "missing sub", "signature removed"]


def test_forged_valid_token_is_accepted(server, alice):
    """The control for the attacks below: a token made with the configured secret is honoured, so the
    refusals are about the defect each attack carries, not about the test's key."""
    r = call(server, "GET", "/api/auth/sessions/current", key=_forge(alice, "valid"))
    assert r.status_code == 200, r.text
    assert r.json()["user"]["id"] == alice["user"]["id"]


@pytest.mark.parametrize("kind", ATTACKS)
def test_forged_tokens_are_unauthorized(server, alice, kind):
    token = _forge(alice, kind)
    assert_error(call(server, "GET", "/api/auth/sessions/current", key=token), 401, "AUTH_UNAUTHORIZED")
    assert_error(call(server, "PATCH", "/api/auth/profiles/current", key=token, json={"profile": {"pwned": True}}),
                 401, "AUTH_UNAUTHORIZED")


def test_altered_role_does_not_grant_admin(server, alice):
    header, payload, sig = alice["accessToken"].split(".")
    claims = json.loads(unb64url(payload))
    claims["role"] = "project_admin"
    forged = header + "." + b64url_json(claims) + "." + sig
    assert_error(call(server, "GET", "/api/auth/users", key=forged), 401, "AUTH_UNAUTHORIZED")
    wrong_key_admin = jwt.encode({**claims, "sub": "admin"}, "x" * 40, algorithm="HS256")
    assert_error(call(server, "GET", "/api/metadata/api-key", key=wrong_key_admin), 401, "AUTH_UNAUTHORIZED")


# --------------------------------------------------------------------------- profiles


def test_profile_update_merges_and_is_public(server):
    up = sign_up_ok(server, name="Pat")
    uid, token = up["user"]["id"], up["accessToken"]
    r = call(server, "PATCH", "/api/auth/profiles/current", key=token,
             json={"profile": {"avatar_url": "https://cdn.example.com/p.png", "bio": "hello"}})
    assert r.status_code == 200, r.text
    assert r.json() == {"id": uid, "profile": {"name": "Pat", "avatar_url": "https://cdn.example.com/p.png",
                                               "bio": "hello"}}
    r = call(server, "PATCH", "/api/auth/profiles/current", key=token,
             json={"profile": {"bio": None, "name": "Patricia", "tags": ["a", 1]}})
    assert r.status_code == 200, r.text
    expected = {"name": "Patricia", "avatar_url": "https://cdn.example.com/p.png", "tags": ["a", 1]}
    assert r.json() == {"id": uid, "profile": expected}
    public = call(server, "GET", f"/api/auth/profiles/{uid}")
    assert public.status_code == 200, public.text
    assert public.json() == {"id": uid, "profile": expected}
    me = call(server, "GET", "/api/auth/sessions/current", key=token).json()["user"]
    assert me["profile"] == expected


def test_profile_update_requires_a_user(server):
    assert_error(call(server, "PATCH", "/api/auth/profiles/current", json={"profile": {"a": 1}}), 401,
                 "AUTH_INVALID_CREDENTIALS")


def test_profile_of_unknown_or_bad_id(server):
    assert_error(call(server, "GET", f"/api/auth/profiles/{uuid.uuid4()}"), 404, "NOT_FOUND")
    assert_error(call(server, "GET", "/api/auth/profiles/not-a-uuid"), 400)


# --------------------------------------------------------------------------- admin sessions


@pytest.mark.parametrize("field", ["email", "username"])
def test_admin_sign_in(server, field):
    r = call(server, "POST", "/api/auth/admin/sessions", json={field: ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"admin", "accessToken", "csrfToken"}, body
    admin = body["admin"]
    assert set(admin) == {"id", "email", "role", "emailVerified"}, admin
    assert admin["email"] == ADMIN_EMAIL and admin["role"] == "project_admin"
    assert isinstance(admin["emailVerified"], bool) and isinstance(admin["id"], str) and admin["id"]
    claims = claims_of(body["accessToken"])
    assert claims["role"] == "project_admin" and claims["exp"] - claims["iat"] == 900
    assert_session_cookie(r)


@pytest.mark.parametrize("body", [
    {"email": ADMIN_EMAIL, "password": "wrong-password"},
    {"email": "other@example.com", "password": ADMIN_PASSWORD},
    {"username": "nobody", "password": ADMIN_PASSWORD},
], ids=["wrong password", "wrong email", "wrong username"])
def test_admin_sign_in_wrong(server, body):
    assert_error(call(server, "POST", "/api/auth/admin/sessions", json=body), 401, "AUTH_INVALID_CREDENTIALS")


def test_admin_token_works_on_admin_routes(server, admin_token):
    r = call(server, "GET", "/api/auth/users", key=admin_token)
    assert r.status_code == 200, r.text
    assert "data" in r.json() and "pagination" in r.json()
    r = call(server, "GET", "/api/metadata/api-key", key=admin_token)
    assert r.status_code == 200, r.text
    assert r.json() == {"apiKey": server.admin_key}
    r = call(server, "GET", "/api/auth/admin/sessions/current", key=admin_token)
    assert r.status_code == 200, r.text
    assert r.json()["admin"]["email"] == ADMIN_EMAIL
    assert r.json()["admin"]["role"] == "project_admin"


def test_admin_current_session_without_credential(server):
    assert_error(call(server, "GET", "/api/auth/admin/sessions/current"), 401, "AUTH_INVALID_CREDENTIALS")


def test_admin_refresh_with_cookie(server):
    r = call(server, "POST", "/api/auth/admin/sessions", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert r.status_code == 200, r.text
    cookie, csrf = assert_session_cookie(r), r.json()["csrfToken"]
    assert_error(refresh_cookie(server, cookie, "bad", path="/api/auth/admin/refresh"), 403, "FORBIDDEN")
    r2 = refresh_cookie(server, cookie, csrf, path="/api/auth/admin/refresh")
    assert r2.status_code == 200, r2.text
    body = r2.json()
    assert {"admin", "accessToken", "csrfToken"} <= set(body), body
    assert body["admin"]["email"] == ADMIN_EMAIL and body["admin"]["role"] == "project_admin"
    assert body["csrfToken"] != csrf
    new_cookie = assert_session_cookie(r2)
    assert new_cookie != cookie
    assert claims_of(body["accessToken"])["role"] == "project_admin"
    assert call(server, "GET", "/api/auth/users", key=body["accessToken"]).status_code == 200
    # rotation as for users: the old cookie is now reuse, and ends the family
    assert_error(refresh_cookie(server, cookie, csrf, path="/api/auth/admin/refresh"), 401, "AUTH_UNAUTHORIZED")
    assert_error(refresh_cookie(server, new_cookie, body["csrfToken"], path="/api/auth/admin/refresh"), 401,
                 "AUTH_UNAUTHORIZED")


def test_admin_refresh_with_body(server):
    r = call(server, "POST", "/api/auth/admin/sessions", params={"client_type": "mobile"},
             json={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"admin", "accessToken", "refreshToken"}, r.json()
    r2 = refresh_body(server, r.json()["refreshToken"], path="/api/auth/admin/refresh")
    assert r2.status_code == 200, r2.text
    body = r2.json()
    assert set(body) == {"admin", "accessToken", "refreshToken"}, body
    assert body["refreshToken"] != r.json()["refreshToken"]
    assert body["admin"]["role"] == "project_admin"


# --------------------------------------------------------------------------- user management


def list_users(server, key="admin", **params):
    # spaces as %20 (test_user_search_decodes_plus_as_space checks the form encoding `+`)
    query = urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
    r = call(server, "GET", "/api/auth/users", key=key, params=query)
    assert r.status_code == 200, r.text
    return r.json()


def test_admin_user_list_search_and_paging(server):
    tag = uuid.uuid4().hex[:10]
    users = []
    for i, name in enumerate([f"Percent Sign{tag}", f"Plain{tag}", None], start=1):
        users.append(sign_up_ok(server, email=f"list{tag}-{i}@example.com", name=name)["user"])
        time.sleep(0.02)  # distinct creation times
    u1, u2, u3 = (u["id"] for u in users)

    page = list_users(server, search=f"list{tag}")
    assert set(page) == {"data", "pagination"}
    assert [u["id"] for u in page["data"]] == [u3, u2, u1]  # newest first
    assert page["pagination"]["total"] == 3 and page["pagination"]["offset"] == 0
    for u in page["data"]:
        assert_user(u)
    assert page["data"][2] == users[0]  # the listed user is the one sign-up answered

    assert [u["id"] for u in list_users(server, search=f"LIST{tag.upper()}")["data"]] == [u3, u2, u1]
    assert [u["id"] for u in list_users(server, search=f"percent sign{tag}")["data"]] == [u1]  # name, any case
    assert [u["id"] for u in list_users(server, search=f"PLAIN{tag.upper()}")["data"]] == [u2]
    # % and _ are literal characters, not wildcards
    assert list_users(server, search=f"plain%{tag}")["data"] == []
    assert list_users(server, search=f"plai_{tag}")["data"] == []
    assert list_users(server, search=f"list{tag}-_@")["pagination"]["total"] == 0

    paged = list_users(server, search=f"list{tag}", limit=2, offset=1)
    assert [u["id"] for u in paged["data"]] == [u2, u1]
    assert paged["pagination"] == {"offset": 1, "limit": 2, "total": 3}
    first = list_users(server, search=f"list{tag}", limit=1)
    assert [u["id"] for u in first["data"]] == [u3]
    assert first["pagination"] == {"offset": 0, "limit": 1, "total": 3}

    everyone = list_users(server, limit=1000)
    assert everyone["pagination"]["total"] >= 3
    created = [u["createdAt"] for u in everyone["data"]]
    assert created == sorted(created, reverse=True)


def test_user_search_decodes_plus_as_space(server):
    """Query strings are form-encoded by browsers and the JS SDK (URLSearchParams): `+` is a space."""
    tag = uuid.uuid4().hex[:10]
    uid = sign_up_ok(server, name=f"Plus Space{tag}")["user"]["id"]
    r = call(server, "GET", "/api/auth/users", key="admin", params={"search": f"plus space{tag}"})  # search=plus+space…
    assert r.status_code == 200, r.text
    assert "+space" in r.url  # requests form-encodes the space
    assert [u["id"] for u in r.json()["data"]] == [uid], r.json()


def test_admin_get_user(server, alice):
    r = call(server, "GET", f"/api/auth/users/{alice['user']['id']}", key="admin")
    assert r.status_code == 200, r.text
    user = r.json()
    assert_user(user, alice["email"])
    assert user["id"] == alice["user"]["id"] and user["createdAt"] == alice["user"]["createdAt"]
    assert_error(call(server, "GET", f"/api/auth/users/{uuid.uuid4()}", key="admin"), 404, "NOT_FOUND")
    assert_error(call(server, "GET", "/api/auth/users/not-a-uuid", key="admin"), 400)
    assert_error(call(server, "GET", f"/api/auth/users/{alice['user']['id']}", key=alice["accessToken"]), 403,
                 "FORBIDDEN")


def test_admin_delete_users(server):
    email = new_email("doomed")
    up = sign_up_ok(server, email=email)
    uid = up["user"]["id"]
    r = call(server, "DELETE", "/api/auth/users", key=up["accessToken"], json={"userIds": [uid]})
    assert_error(r, 403, "FORBIDDEN")

    r = call(server, "DELETE", "/api/auth/users", key="admin", json={"userIds": [uid]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["deletedCount"] == 1 and isinstance(body["message"], str) and body["message"], body

    assert_error(refresh_body(server, up["refreshToken"]), 401)
    assert_error(sign_in(server, email), 401, "AUTH_INVALID_CREDENTIALS")
    assert_error(call(server, "GET", f"/api/auth/users/{uid}", key="admin"), 404, "NOT_FOUND")
    assert list_users(server, search=email)["pagination"]["total"] == 0
    # deleting it again deletes nothing
    again = call(server, "DELETE", "/api/auth/users", key="admin", json={"userIds": [uid]})
    assert again.status_code == 200 and again.json()["deletedCount"] == 0, again.text


@pytest.mark.parametrize("body", [{"userIds": ["not-a-uuid"]}, {"userIds": [123]}, {"userIds": "x"}, {}],
                         ids=["not a uuid", "number", "string", "missing"])
def test_admin_delete_users_rejects_bad_ids(server, alice, body):
    assert_error(call(server, "DELETE", "/api/auth/users", key="admin", json=body), 400)
    assert call(server, "GET", f"/api/auth/users/{alice['user']['id']}", key="admin").status_code == 200


# --------------------------------------------------------------------------- settings


def test_public_config(server):
    r = call(server, "GET", "/api/auth/public-config")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["oAuthProviders"] == []
    assert body["passwordMinLength"] == get_config(server)["passwordMinLength"]
    for key in ["requireNumber", "requireLowercase", "requireUppercase", "requireSpecialChar",
                "requireEmailVerification"]:
        assert isinstance(body[key], bool), (key, body)


def test_get_config(server):
    config = get_config(server)
    assert set(config) == CONFIG_KEYS, config
    assert config["requireEmailVerification"] is False
    assert config["disableSignup"] is False
    assert config["passwordMinLength"] == 6
    assert isinstance(config["allowedRedirectUrls"], list)
    assert config["verifyEmailMethod"] in ("code", "link")


def test_put_config_merges_partial_updates(server):
    before = get_config(server)
    try:
        r = put_config(server, {"passwordMinLength": 8, "requireLowercase": True})
        assert r.status_code == 200, r.text
        after = r.json()
        assert set(after) == CONFIG_KEYS, after
        assert after == {**before, "passwordMinLength": 8, "requireLowercase": True}
        assert get_config(server) == after
        r = put_config(server, {"verifyEmailMethod": "link"})
        assert r.status_code == 200, r.text
        assert r.json() == {**after, "verifyEmailMethod": "link"}
    finally:
        assert put_config(server, before).status_code == 200
    assert get_config(server) == before


@pytest.mark.parametrize("patch", [{"noSuchSetting": True}, {"passwordMinLength": 2}, {"verifyEmailMethod": "fax"},
                                   {"passwordMinLength": "long"}, {"disableSignup": "yes"}],
                         ids=["unknown key", "min length 2", "method fax", "min length string", "bool as string"])
def test_put_config_rejects_bad_values(server, patch):
    before = get_config(server)
    assert_error(put_config(server, patch), 400)
    assert get_config(server) == before


def test_disable_signup(server, alice):
    with ConfigChange(server, {"disableSignup": True}) as config:
        assert config["disableSignup"] is True
        assert_error(sign_up(server), 403, "AUTH_SIGNUP_DISABLED")
        assert_error(sign_up(server, client_type="mobile"), 403, "AUTH_SIGNUP_DISABLED")
    r = sign_up(server, client_type="mobile")
    assert r.status_code in SIGNED_UP, r.text


@pytest.mark.parametrize("password,rule", [
    ("Ab1!short", r"10"),
    ("Abcdefghij!", r"number"),
    ("abcdefgh1!", r"upper"),
    ("Abcdefgh12", r"special"),
], ids=["too short", "no number", "no uppercase", "no special"])
def test_password_policy_is_enforced(server, password, rule):
    policy = {"passwordMinLength": 10, "requireNumber": True, "requireUppercase": True, "requireSpecialChar": True}
    email = new_email("policy")
    with ConfigChange(server, policy):
        body = assert_error(sign_up(server, email=email, password=password), 400, "INVALID_INPUT")
        assert re.search(rule, body["message"], re.I), body
        ok = sign_up(server, email=email, password="Abcdefgh1!", client_type="mobile")
        assert ok.status_code in SIGNED_UP, ok.text
    # back to the defaults: the short password is fine again
    assert sign_up(server, password="abc123", client_type="mobile").status_code in SIGNED_UP


# --------------------------------------------------------------------------- concurrency


def test_concurrent_sign_ups_with_one_email(server):
    email = new_email("race")
    n = 8
    barrier = threading.Barrier(n)
    results = [None] * n

    def attempt(i):
        try:
            barrier.wait(timeout=30)
            r = requests.post(server.url("/api/auth/users"), params={"client_type": "mobile"},
                              json={"email": email, "password": PASSWORD}, timeout=60)
            results[i] = (r.status_code, r.json() if r.content else None)
        except Exception as e:  # noqa: BLE001
            results[i] = ("exception", repr(e))

    threads = [threading.Thread(target=attempt, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert all(r is not None for r in results), results
    statuses = [r[0] for r in results]
    assert len([x for x in statuses if x in SIGNED_UP]) == 1, results
    assert statuses.count(409) == n - 1, results
    for status, body in results:
        if status == 409:
            assert body["error"] == "AUTH_EMAIL_EXISTS", body
    page = list_users(server, search=email)
    assert page["pagination"]["total"] == 1, page
    assert [u["email"] for u in page["data"]] == [email]


# --------------------------------------------------------------------------- rate limits (own deployment)


def test_sign_in_rate_limit(deployment_factory):
    d = deployment_factory()
    s = d.server(name="ratelimited", RATE_LIMIT_AUTH_PER_MINUTE="5")
    email = new_email("rl")
    for i in range(5):
        r = call(s, "POST", "/api/auth/sessions", json={"email": email, "password": "Wrong-pass-1"})
        assert_error(r, 401, "AUTH_INVALID_CREDENTIALS")
    r = call(s, "POST", "/api/auth/sessions", json={"email": email, "password": "Wrong-pass-1"})
    assert_error(r, 429, "TOO_MANY_REQUESTS")
    retry = r.headers.get("Retry-After")
    assert retry is not None and re.fullmatch(r"\d+", retry) and 0 < int(retry) <= 60, dict(r.headers)
    assert r.headers.get("RateLimit-Limit") == "5", dict(r.headers)
    assert r.headers.get("RateLimit-Remaining") == "0", dict(r.headers)
    # the limit is on auth attempts, not on the server
    assert call(s, "GET", "/api/health").status_code == 200
    assert s.get("/api/events/stats").status_code == 200


# --------------------------------------------------------------------------- the event log


def test_auth_events_are_logged_without_secrets(server, admin_token):
    email = new_email("events")
    password = "Pw-" + secrets.token_hex(10)
    up = sign_up_ok(server, email=email, password=password)
    uid = up["user"]["id"]
    web = sign_in(server, email, password)
    assert web.status_code == 200, web.text
    web_cookie, web_csrf = assert_session_cookie(web), web.json()["csrfToken"]
    mob = refresh_body(server, up["refreshToken"])
    assert mob.status_code == 200, mob.text
    web2 = refresh_cookie(server, web_cookie, web_csrf)
    assert web2.status_code == 200, web2.text
    web2_cookie = assert_session_cookie(web2)
    assert call(server, "POST", "/api/auth/logout", json={"refreshToken": mob.json()["refreshToken"]}).status_code == 200
    assert call(server, "POST", "/api/auth/logout", cookie=web2_cookie,
                headers={"X-CSRF-Token": web2.json()["csrfToken"]}).status_code == 200

    # (ids in event data are compared case-insensitively: the API writes UUIDs in lower case, events may not)
    signed_up = [e for e in server.all_events(category="user")
                 if e["type"] == "UserSignedUp" and str(e["data"].get("userId")).lower() == uid]
    assert len(signed_up) == 1, signed_up
    data = signed_up[0]["data"]
    assert data["email"] == email
    assert re.match(r"^\$2[aby]?\$10\$", data["passwordHash"]), data["passwordHash"]

    session_events = server.all_events(category="session")
    started = [e for e in session_events
               if e["type"] == "SessionStarted" and str(e["data"].get("subject")).lower() == uid]
    assert len(started) == 2, started
    sessions = {e["data"]["sessionId"].lower() for e in started}
    mine = [e for e in session_events if str(e["data"].get("sessionId")).lower() in sessions]
    types = [e["type"] for e in mine]
    assert types.count("SessionStarted") == 2, types
    assert types.count("SessionRefreshed") == 2, types
    assert types.count("SessionRevoked") == 2, types
    for sid in sessions:
        assert [e["type"] for e in mine if e["data"]["sessionId"].lower() == sid] == [
            "SessionStarted", "SessionRefreshed", "SessionRevoked"], mine

    secrets_in_clear = {
        "password": password,
        "admin password": ADMIN_PASSWORD,
        "jwt secret": JWT_SECRET,
        "mobile refresh token": up["refreshToken"],
        "rotated mobile refresh token": mob.json()["refreshToken"],
        "web refresh token": web_cookie,
        "rotated web refresh token": web2_cookie,
        "access token (sign-up)": up["accessToken"],
        "access token (sign-in)": web.json()["accessToken"],
        "access token (refresh)": mob.json()["accessToken"],
        "access token (web refresh)": web2.json()["accessToken"],
        "admin access token": admin_token,
    }
    dumped = json.dumps(server.all_events())
    exported = server.get("/api/events/export").text
    for label, value in secrets_in_clear.items():
        assert value not in dumped, f"{label} appears in the event log"
        assert value not in exported, f"{label} appears in the exported log"
        # also not as the JWT's signature alone, nor the token's distinctive tail
        if value.count(".") == 2:
            assert value.split(".")[2] not in dumped, f"{label} signature appears in the event log"


def test_replay_verify_after_auth_activity(deployment, server):
    """Runs the auth lifecycle (sign-up, sign-in, refresh, profile, logout, delete, settings), then rebuilds
    every projection from the log and compares: the CLI must find no difference."""
    email = new_email("replay")
    up = sign_up_ok(server, email=email, name="Replay")
    web = sign_in(server, email)
    assert web.status_code == 200, web.text
    rot = refresh_body(server, up["refreshToken"])
    assert rot.status_code == 200, rot.text
    assert call(server, "PATCH", "/api/auth/profiles/current", key=up["accessToken"],
                json={"profile": {"bio": "x", "name": None}}).status_code == 200
    assert call(server, "POST", "/api/auth/logout", json={"refreshToken": rot.json()["refreshToken"]}).status_code == 200
    other = sign_up_ok(server)
    assert call(server, "DELETE", "/api/auth/users", key="admin",
                json={"userIds": [other["user"]["id"]]}).json()["deletedCount"] == 1
    with ConfigChange(server, {"passwordMinLength": 7}):
        pass
    server.wait_projection_caught_up()
    p = run_cli(["events", "replay", "--verify"], deployment.cli_env(**AUTH_ENV), timeout=120)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert "DIFF" not in p.stdout, out
