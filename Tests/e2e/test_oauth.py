"""OAuth sign-in end to end: our server against LocalOAuthProvider (eight fake providers on loopback).

The flow, as an app drives it:
  1. app: PKCE pair; GET /api/auth/oauth/<p>?redirect_uri&code_challenge -> {authUrl}
  2. browser: authUrl -> 302 to our callback with code+state (Apple: an auto-posting form)
  3. our callback: code -> provider tokens -> user -> 302 to redirect_uri?insforge_code=... (or ?error=...)
  4. app: POST /api/auth/oauth/exchange {code, code_verifier} -> session

Every request goes through `call()`, which uses no cookie jar, so one test's session never leaks into another.
"""

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
import urllib.parse
import uuid

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from conftest import HTTP_TIMEOUT, assert_error, psql, run_cli
from oauth_provider import PROVIDERS, TAMPER_KINDS, LocalOAuthProvider, parse_form_post, pkce_challenge, pkce_pair, \
    unverified_claims

JWT_SECRET = "e2e-oauth-jwt-secret-" + secrets.token_hex(16)  # known, so test_expired_* can seal tokens
APP = "http://127.0.0.1:9/app/cb"  # the app's redirect URI: never contacted, redirects are not followed
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "change-this-password"
COOKIE = "insforge_refresh_token"
PASSWORD = "Correct-horse-42"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
CONFIG_VIEW_KEYS = {"provider", "clientId", "hasClientSecret", "scopes", "redirectUri", "source", "updatedAt"}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def provider():
    p = LocalOAuthProvider().start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def server(deployment, provider):
    s = deployment.server(name="oauth", start=False, **provider.server_env(), ADMIN_EMAIL=ADMIN_EMAIL,
                          ADMIN_PASSWORD=ADMIN_PASSWORD, RATE_LIMIT_AUTH_PER_MINUTE="100000",
                          JWT_SECRET=JWT_SECRET)
    s.extra_env["API_BASE_URL"] = s.base  # the callback URL is API_BASE_URL + /api/auth/oauth/<p>/callback
    s.start()
    return s


# --------------------------------------------------------------------------- helpers


def call(server, method, path, key=None, headers=None, **kw):
    """One request, no cookie jar. `key`: None, "admin" or a literal token. Never follows redirects."""
    h = dict(headers or {})
    if key == "admin":
        key = server.admin_key
    if key is not None:
        h.setdefault("Authorization", f"Bearer {key}")
    kw.setdefault("timeout", HTTP_TIMEOUT)
    kw.setdefault("allow_redirects", False)
    return requests.request(method, server.url(path), headers=h, **kw)


def query_of(url):
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query, keep_blank_values=True))


def without_query(url):
    return urllib.parse.urlunsplit(urllib.parse.urlsplit(url)._replace(query="", fragment=""))


def callback_url(server, p):
    return f"{server.base}/api/auth/oauth/{p}/callback"


def start(server, p, redirect_uri=APP, challenge=None, **extra):
    params = {"redirect_uri": redirect_uri}
    if challenge is not None:
        params["code_challenge"] = challenge
    params.update(extra)
    return call(server, "GET", f"/api/auth/oauth/{p}", params=params)


def auth_url(server, p, challenge, redirect_uri=APP):
    r = start(server, p, redirect_uri=redirect_uri, challenge=challenge)
    assert r.status_code == 200, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"authUrl"}, body
    return body["authUrl"]


def browse(url):
    """The browser at the provider: returns (method, callback URL, fields) of the way back to our server."""
    r = requests.get(url, allow_redirects=False, timeout=HTTP_TIMEOUT)
    if r.status_code == 200:  # Apple's form_post page
        assert r.headers["Content-Type"].startswith("text/html"), r.headers
        action, fields = parse_form_post(r.text)
        return "POST", action, fields
    assert r.status_code == 302, (r.status_code, r.text)
    location = r.headers["Location"]
    return "GET", without_query(location), query_of(location)


def back_to_server(method, url, fields):
    """The provider's redirect back, delivered to our callback (not followed further)."""
    if method == "POST":
        return requests.post(url, data=fields, allow_redirects=False, timeout=HTTP_TIMEOUT)
    return requests.get(url, params=fields, allow_redirects=False, timeout=HTTP_TIMEOUT)


def to_app(r, redirect_uri=APP):
    """The callback's 302 to the app: its query as a dict (checks it goes to `redirect_uri`)."""
    assert r.status_code == 302, (r.status_code, r.text)
    location = r.headers["Location"]
    assert without_query(location) == without_query(redirect_uri), location
    return query_of(location)


class Flow:
    """One sign-in up to the app's redirect: verifier, authUrl, what came back, the callback response."""

    def __init__(self, server, p, redirect_uri=APP):
        self.server, self.p, self.redirect_uri = server, p, redirect_uri
        self.verifier, self.challenge = pkce_pair()
        self.auth_url = auth_url(server, p, self.challenge, redirect_uri)
        self.method, self.back_url, self.fields = browse(self.auth_url)
        self.response = back_to_server(self.method, self.back_url, self.fields)
        self.app_query = to_app(self.response, redirect_uri)

    @property
    def insforge_code(self):
        assert "insforge_code" in self.app_query and "error" not in self.app_query, self.app_query
        return self.app_query["insforge_code"]

    def error(self):
        assert "insforge_code" not in self.app_query, self.app_query
        assert self.app_query.get("error"), self.app_query
        assert self.app_query.get("error_description"), self.app_query
        return self.app_query["error"]


def exchange(server, code, verifier, client_type="mobile"):
    params = {"client_type": client_type} if client_type else None
    return call(server, "POST", "/api/auth/oauth/exchange", params=params,
                json={"code": code, "code_verifier": verifier})


def sign_in(server, p, client_type="mobile"):
    """A whole sign-in; returns (exchange body, current user as /sessions/current shows it)."""
    flow = Flow(server, p)
    r = exchange(server, flow.insforge_code, flow.verifier, client_type)
    assert r.status_code == 200, (r.status_code, r.text)
    body = r.json()
    me = call(server, "GET", "/api/auth/sessions/current", key=body["accessToken"])
    assert me.status_code == 200, me.text
    return body, me.json()["user"]


def identities(user):
    return sorted(i["provider"] for i in user["identities"])


def sign_up_password(server, email):
    r = call(server, "POST", "/api/auth/users", params={"client_type": "mobile"},
             json={"email": email, "password": PASSWORD, "name": "Password Person"})
    assert r.status_code in (200, 201), r.text  # (the status of sign-up is test_auth.py's business)
    return r.json()["user"]


def admin_user_by_email(server, email):
    r = call(server, "GET", "/api/auth/users", key="admin", params={"search": email, "limit": 100})
    assert r.status_code == 200, r.text
    return [u for u in r.json()["data"] if u["email"].lower() == email.lower()]


def put_auth_config(server, patch):
    r = call(server, "PUT", "/api/auth/config", key="admin", json=patch)
    assert r.status_code == 200, r.text
    return r.json()


def configs(server):
    r = call(server, "GET", "/api/auth/oauth/configs", key="admin")
    assert r.status_code == 200, r.text
    return {c["provider"]: c for c in r.json()["data"]}


def delete_config(server, p):
    return call(server, "DELETE", f"/api/auth/oauth/{p}/config", key="admin")


def seal(purpose, value, exp):
    """A token sealed the way the server seals OAuth states ("oauth state") and insforge codes ("insforge code"):
    AES-256-GCM under HMAC-SHA256(JWT secret, "insforge sealed <purpose>"), base64url(nonce | ciphertext | tag)
    of {"value": ..., "exp": <unix seconds>}. Used only to make tokens that are genuine but expired; each use is
    paired with an unexpired control, so a wrong guess at the format cannot make a test pass."""
    key = hmac.new(JWT_SECRET.encode(), f"insforge sealed {purpose}".encode(), hashlib.sha256).digest()
    nonce = os.urandom(12)
    plain = json.dumps({"value": value, "exp": int(exp)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(nonce + AESGCM(key).encrypt(nonce, plain, None)).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def user_token(server, provider):
    """An ordinary (non-admin) user's access token, from a Google sign-in."""
    provider.set_user("google")
    body, _ = sign_in(server, "google")
    return body["accessToken"]


# --------------------------------------------------------------------------- start


@pytest.mark.parametrize("p", PROVIDERS)
def test_authorize_url(server, provider, p):
    verifier, challenge = pkce_pair()
    url = auth_url(server, p, challenge)
    assert without_query(url) == provider.endpoint(p, "authorize"), url
    q = query_of(url)
    assert q["client_id"] == provider.client_id(p)
    assert q["redirect_uri"] == callback_url(server, p)
    assert q["response_type"] == "code"
    assert q["scope"].strip(), q
    assert q["state"] and verifier not in q["state"]
    # Server-side PKCE with the provider: its own challenge, not the app's.
    assert q["code_challenge_method"] == "S256"
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", q["code_challenge"]), q
    assert q["code_challenge"] != challenge
    if p == "apple":
        assert q.get("response_mode") == "form_post", q
    # Every start makes a fresh state and a fresh provider-side challenge.
    q2 = query_of(auth_url(server, p, challenge))
    assert q2["state"] != q["state"] and q2["code_challenge"] != q["code_challenge"]


def test_start_needs_no_credential_but_a_code_challenge(server):
    _, challenge = pkce_pair()
    assert start(server, "google", challenge=challenge).status_code == 200  # public: no Authorization header
    assert_error(start(server, "google"), 400, "INVALID_INPUT")
    assert_error(start(server, "google", challenge=""), 400, "INVALID_INPUT")


def test_start_rejects_malformed_code_challenge(server):
    for bad in ("short", "a" * 42, "a" * 129, "a" * 42 + "!", "a" * 42 + "="):
        assert_error(start(server, "github", challenge=bad), 400, "INVALID_INPUT")
    _, challenge = pkce_pair()
    assert_error(start(server, "github", challenge=challenge, code_challenge_method="plain"), 400, "INVALID_INPUT")
    assert start(server, "github", challenge=challenge, code_challenge_method="S256").status_code == 200


def test_start_rejects_unsupported_provider(server):
    _, challenge = pkce_pair()
    assert_error(start(server, "myspace", challenge=challenge), 400)
    r = call(server, "GET", "/api/auth/oauth/myspace/callback", params={"code": "c", "state": "s"})
    assert_error(r, 400)


def test_start_requires_redirect_uri(server):
    _, challenge = pkce_pair()
    r = call(server, "GET", "/api/auth/oauth/google", params={"code_challenge": challenge})
    assert_error(r, 400, "INVALID_INPUT")


def test_allowed_redirect_urls(server):
    _, challenge = pkce_pair()
    outside = "http://evil.example.test/steal"
    try:
        put_auth_config(server, {"allowedRedirectUrls": ["http://127.0.0.1:9/app/*"]})
        assert_error(start(server, "google", redirect_uri=outside, challenge=challenge), 400)
        assert_error(start(server, "google", redirect_uri="http://127.0.0.1:9/other/cb", challenge=challenge), 400)
        assert start(server, "google", redirect_uri=APP, challenge=challenge).status_code == 200
    finally:
        put_auth_config(server, {"allowedRedirectUrls": []})
    # Nothing configured: no open redirect. Other web origins are refused with a message naming the setting;
    # localhost, this server, relative paths and native-app schemes (the Swift SDK's, PKCE-protected) pass.
    r = start(server, "google", redirect_uri=outside, challenge=challenge)
    assert_error(r, 400, "INVALID_INPUT")
    assert "allowedRedirectUrls" in r.json().get("nextActions", ""), r.json()
    for allowed in (APP, "http://localhost:3000/cb", server.base + "/done", "/signed-in", "myapp://auth/callback",
                    "com.example.app:/oauth2redirect"):
        r = start(server, "google", redirect_uri=allowed, challenge=challenge)
        assert r.status_code == 200, (allowed, r.text)
    for refused in ("//evil.example.test/x", "javascript:alert(1)", "data:text/html,hi", "https://user:pw@localhost/x"):
        assert_error(start(server, "google", redirect_uri=refused, challenge=challenge), 400)


def test_public_config_lists_all_providers(server, provider):
    r = call(server, "GET", "/api/auth/public-config")
    assert r.status_code == 200, r.text
    body = r.json()
    assert sorted(body["oAuthProviders"]) == sorted(PROVIDERS), body
    assert "allowedRedirectUrls" not in body
    for p in PROVIDERS:
        assert provider.clients[p][1] not in r.text


# --------------------------------------------------------------------------- full round trips


@pytest.mark.parametrize("p", PROVIDERS)
def test_round_trip(server, provider, p):
    user = provider.set_user(p, name="Grace Hopper")
    flow = Flow(server, p)
    if p == "apple":
        assert flow.method == "POST" and flow.back_url == callback_url(server, p)
        assert json.loads(flow.fields["user"])["name"] == {"firstName": "Grace", "lastName": "Hopper"}
    else:
        assert flow.method == "GET" and flow.back_url == callback_url(server, p)
    code = flow.insforge_code
    assert code and flow.verifier not in code

    r = exchange(server, code, flow.verifier)
    assert r.status_code == 200, r.text
    body = r.json()
    assert {"user", "accessToken", "refreshToken"} <= set(body), body
    assert "csrfToken" not in body
    created = body["user"]
    assert UUID_RE.match(created["id"]), created
    assert created["email"] == user["email"]
    _, claims = unverified_claims(body["accessToken"])
    assert claims["sub"] == created["id"] and claims["role"] == "authenticated"

    me = call(server, "GET", "/api/auth/sessions/current", key=body["accessToken"])
    assert me.status_code == 200, me.text
    u = me.json()["user"]
    assert u["id"] == created["id"]
    assert u["email"] == user["email"]
    assert u["identities"] == [{"provider": p}], u
    assert u["providerType"] == p
    assert u["role"] == "authenticated"
    assert TIMESTAMP.match(u["createdAt"]) and TIMESTAMP.match(u["updatedAt"]), u
    # Microsoft's addresses are never treated as verified; the others vouch for theirs.
    assert u["emailVerified"] is (p != "microsoft"), u
    assert isinstance(u["profile"], dict), u
    assert u["profile"].get("name") == "Grace Hopper", u
    if p == "discord":
        cdn = f"https://cdn.discordapp.com/avatars/{user['id']}/{user['avatar']}.png"
        assert u["profile"].get("avatar_url") == cdn, u
    elif p in ("google", "github", "linkedin", "x", "facebook"):
        assert u["profile"].get("avatar_url") == user["avatar"], u

    # Server-side PKCE: the verifier the server sent at the token endpoint matches the challenge it sent at
    # authorize (and neither is the app's).
    authorize_q = query_of(flow.auth_url)
    token_reqs = [req for req in provider.requests_to(p, "token") if req[2].get("code") == flow.fields["code"]]
    assert len(token_reqs) == 1, token_reqs
    form = token_reqs[0][2]
    assert form["code_verifier"] and pkce_challenge(form["code_verifier"]) == authorize_q["code_challenge"]
    assert form["code_verifier"] != flow.verifier
    assert form["redirect_uri"] == callback_url(server, p)
    if p == "apple":
        header, secret_claims = unverified_claims(form["client_secret"])
        assert header["alg"] == "ES256" and header["kid"] == provider.apple_key_id
        assert secret_claims["iss"] == provider.apple_team_id and secret_claims["sub"] == provider.client_id(p)

    # The same identity signs in to the same account next time.
    provider.set_user(p, id=user["id"], email=user["email"], name="Grace Hopper")
    again, u2 = sign_in(server, p)
    assert u2["id"] == created["id"]
    assert u2["identities"] == [{"provider": p}]
    assert again["refreshToken"] != body["refreshToken"]


def test_web_exchange_sets_refresh_cookie(server, provider):
    provider.set_user("facebook")
    flow = Flow(server, "facebook")
    r = exchange(server, flow.insforge_code, flow.verifier, client_type=None)
    assert r.status_code == 200, r.text
    body = r.json()
    assert {"user", "accessToken", "csrfToken"} <= set(body), body
    assert "refreshToken" not in body
    cookies = [c for c in r.raw.headers.getlist("Set-Cookie") if c.split("=", 1)[0].strip() == COOKIE]
    assert len(cookies) == 1, r.raw.headers.getlist("Set-Cookie")
    attrs = [a.strip().lower() for a in cookies[0].split(";")[1:]]
    assert cookies[0].split(";")[0].split("=", 1)[1], cookies
    assert "httponly" in attrs and "path=/api/auth" in attrs, cookies
    assert call(server, "GET", "/api/auth/sessions/current", key=body["accessToken"]).status_code == 200


def test_redirect_uri_query_is_kept(server, provider):
    provider.set_user("github")
    target = APP + "?from=login&x=1"
    flow = Flow(server, "github", redirect_uri=target)
    assert flow.app_query.get("from") == "login" and flow.app_query.get("x") == "1", flow.app_query
    assert exchange(server, flow.insforge_code, flow.verifier).status_code == 200


# --------------------------------------------------------------------------- exchange


def test_exchange_wrong_verifier(server, provider):
    provider.set_user("google")
    flow = Flow(server, "google")
    other_verifier, _ = pkce_pair()
    body = assert_error(exchange(server, flow.insforge_code, other_verifier), 400, "AUTH_UNAUTHORIZED")
    assert "PKCE" in body["message"], body
    # The provider-side verifier is not the app's either.
    token_form = provider.requests_to("google", "token")[-1][2]
    assert_error(exchange(server, flow.insforge_code, token_form["code_verifier"]), 400, "AUTH_UNAUTHORIZED")


def test_exchange_code_is_single_use(server, provider):
    provider.set_user("discord")
    flow = Flow(server, "discord")
    assert exchange(server, flow.insforge_code, flow.verifier).status_code == 200
    body = assert_error(exchange(server, flow.insforge_code, flow.verifier), 400, "INVALID_INPUT")
    assert "code" in body["message"].lower(), body
    assert_error(exchange(server, flow.insforge_code, flow.verifier, client_type=None), 400, "INVALID_INPUT")


def test_exchange_rejects_garbage(server):
    verifier, _ = pkce_pair()
    for code in ("garbage", "A" * 200, base64.urlsafe_b64encode(secrets.token_bytes(64)).decode().rstrip("=")):
        assert_error(exchange(server, code, verifier), 400, "INVALID_INPUT")
    assert_error(call(server, "POST", "/api/auth/oauth/exchange", json={"code": "garbage"}), 400, "INVALID_INPUT")
    assert_error(call(server, "POST", "/api/auth/oauth/exchange", json={"code_verifier": verifier}), 400,
                 "INVALID_INPUT")
    assert_error(call(server, "POST", "/api/auth/oauth/exchange", data="{not json",
                      headers={"Content-Type": "application/json"}), 400, "INVALID_INPUT")


def test_state_is_not_an_insforge_code(server):
    """A sealed state is a different kind of token: it must not be accepted as an insforge_code."""
    verifier, challenge = pkce_pair()
    state = query_of(auth_url(server, "google", challenge))["state"]
    assert_error(exchange(server, state, verifier), 400, "INVALID_INPUT")


# --------------------------------------------------------------------------- callback: state and errors


def test_callback_state_checks(server, provider):
    provider.set_user("google")
    _, challenge = pkce_pair()
    _, url, fields = browse(auth_url(server, "google", challenge))
    state = fields["state"]
    cb = "/api/auth/oauth/google/callback"
    # missing, garbage, tampered (one character changed)
    assert_error(call(server, "GET", cb, params={"code": fields["code"]}), 400, "INVALID_INPUT")
    assert_error(call(server, "GET", cb, params={"code": fields["code"], "state": "garbage"}), 400, "INVALID_INPUT")
    i = len(state) // 2
    tampered = state[:i] + ("A" if state[i] != "A" else "B") + state[i + 1:]
    assert_error(call(server, "GET", cb, params={"code": fields["code"], "state": tampered}), 400, "INVALID_INPUT")
    # a provider error with a bad state is still refused as such (no redirect to an unknown place)
    assert_error(call(server, "GET", cb, params={"error": "access_denied", "state": tampered}), 400, "INVALID_INPUT")
    # an insforge_code is not a state either
    other = Flow(server, "google")
    assert_error(call(server, "GET", cb, params={"code": fields["code"], "state": other.insforge_code}), 400,
                 "INVALID_INPUT")
    # the genuine state still works
    assert "insforge_code" in to_app(call(server, "GET", cb, params=fields))


def test_state_of_one_provider_refused_at_another(server, provider):
    provider.set_user("google")
    _, challenge = pkce_pair()
    _, _, fields = browse(auth_url(server, "google", challenge))
    r = call(server, "GET", "/api/auth/oauth/github/callback", params=fields)
    assert_error(r, 400, "INVALID_INPUT")
    assert all(req[2].get("code") != fields["code"] for req in provider.requests_to("github", "token"))


def test_user_denies_authorization(server, provider):
    provider.deny_next_authorization("facebook")
    token_calls = len(provider.requests_to("facebook", "token"))
    flow = Flow(server, "facebook")
    assert flow.fields.get("error") == "access_denied" and "code" not in flow.fields
    assert flow.error() == "access_denied"
    assert len(provider.requests_to("facebook", "token")) == token_calls  # nothing to exchange


def test_provider_code_replayed_at_callback(server, provider):
    """The provider's code is single use: delivering the same callback twice yields an error the second time."""
    provider.set_user("linkedin")
    flow = Flow(server, "linkedin")
    assert flow.insforge_code
    again = to_app(back_to_server(flow.method, flow.back_url, flow.fields))
    assert "insforge_code" not in again and again.get("error") == "token_exchange_failed", again


@pytest.mark.parametrize("kind", TAMPER_KINDS)
def test_apple_tampered_id_token(server, provider, kind):
    email = f"tampered-{kind}-{uuid.uuid4().hex[:8]}@example.test"
    user = provider.set_user("apple", email=email)
    provider.tamper_next_id_token(kind, provider="apple")
    flow = Flow(server, "apple")
    assert flow.error() == "invalid_id_token", flow.app_query
    assert admin_user_by_email(server, user["email"]) == []
    # The next, untampered sign-in of the same person works.
    flow = Flow(server, "apple")
    r = exchange(server, flow.insforge_code, flow.verifier)
    assert r.status_code == 200, r.text
    assert r.json()["user"]["email"] == user["email"]


def test_expired_state_refused(server, provider):
    provider.set_user("google")
    _, challenge = pkce_pair()
    server_verifier, _ = pkce_pair()
    _, url, fields = browse(auth_url(server, "google", challenge))
    state = {"p": "google", "r": APP, "c": challenge, "v": server_verifier}
    cb = "/api/auth/oauth/google/callback"
    expired = seal("oauth state", state, time.time() - 5)
    assert_error(call(server, "GET", cb, params={"code": fields["code"], "state": expired}), 400, "INVALID_INPUT")
    # control: the same state, unexpired, is accepted (it reaches the provider, whose code was for another
    # verifier, so the sign-in fails there and the app is told)
    fresh = seal("oauth state", state, time.time() + 600)
    assert to_app(call(server, "GET", cb, params={"code": fields["code"], "state": fresh})).get("error") \
        == "token_exchange_failed"
    # a state sealed as an insforge code is not a state
    as_code = seal("insforge code", state, time.time() + 600)
    assert_error(call(server, "GET", cb, params={"code": "c", "state": as_code}), 400, "INVALID_INPUT")


def test_expired_insforge_code_refused(server, provider):
    provider.set_user("google")
    _, u = sign_in(server, "google")
    verifier, challenge = pkce_pair()

    def code(exp, purpose="insforge code"):
        return seal(purpose, {"u": u["id"].upper(), "p": "google", "c": challenge, "n": str(uuid.uuid4()).upper()}, exp)

    assert_error(exchange(server, code(time.time() - 5), verifier), 400, "INVALID_INPUT")
    assert_error(exchange(server, code(time.time() + 600, purpose="oauth state"), verifier), 400, "INVALID_INPUT")
    # control: unexpired, it is a valid code for that user
    r = exchange(server, code(time.time() + 300), verifier)
    assert r.status_code == 200, r.text
    assert r.json()["user"]["id"] == u["id"]


def test_concurrent_exchanges_of_one_code(server, provider):
    provider.set_user("github")
    flow = Flow(server, "github")
    results = [None] * 8
    barrier = threading.Barrier(len(results))

    def run(i):
        barrier.wait()
        results[i] = exchange(server, flow.insforge_code, flow.verifier)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(results))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200] + [400] * (len(results) - 1), [(r.status_code, r.text) for r in results]
    for r in results:
        if r.status_code == 400:
            assert_error(r, 400, "INVALID_INPUT")


def test_concurrent_first_sign_ins_make_one_account(server, provider):
    """Two callbacks for the same new identity at once (double click): one account, both sign in to it."""
    user = provider.set_user("facebook")
    flows = []
    for _ in range(2):
        verifier, challenge = pkce_pair()
        method, url, fields = browse(auth_url(server, "facebook", challenge))
        flows.append((verifier, method, url, fields))
    answers = [None, None]
    barrier = threading.Barrier(2)

    def run(i):
        barrier.wait()
        answers[i] = back_to_server(*flows[i][1:])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = set()
    for (verifier, *_), answer in zip(flows, answers):
        q = to_app(answer)
        assert "insforge_code" in q, q
        r = exchange(server, q["insforge_code"], verifier)
        assert r.status_code == 200, r.text
        ids.add(r.json()["user"]["id"])
    assert len(ids) == 1, ids
    users = admin_user_by_email(server, user["email"])
    assert len(users) == 1 and users[0]["identities"] == [{"provider": "facebook"}], users


def test_provider_tokens_not_in_event_log(server, provider):
    """What the provider handed our server (access tokens, id_tokens, our PKCE verifiers, Apple client secrets)
    is used and forgotten, never written to the log."""
    for p in ("google", "apple", "x"):
        provider.set_user(p)
        sign_in(server, p)
    leaked = set()
    for method, path, params, headers in provider.requests:
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            leaked.add(auth[7:].strip())
        for name in ("code_verifier", "client_secret"):
            if params.get(name):
                leaked.add(params[name])
    assert len(leaked) > 5, leaked
    dumped = json.dumps(server.all_events())
    assert "OAuthCodeExchanged" in dumped
    found = [t for t in leaked if t in dumped]
    assert found == [], found


# --------------------------------------------------------------------------- accounts


def test_a_provider_does_not_link_to_an_account_that_never_proved_its_address(server, provider):
    """Pre-account takeover: someone signs up with the victim's address and a password of theirs (no verification
    required, so the account shows as verified), then the victim signs in with Google. Linking would let the first
    party into the victim's account with their password; the sign-in is refused with a clear reason instead."""
    email = f"victim-{uuid.uuid4().hex[:10]}@example.test"
    squatter = sign_up_password(server, email)
    assert squatter["emailVerified"] is True, squatter  # shown verified, proven by nobody
    provider.set_user("google", email=email, email_verified=True, name="The Real Owner")
    assert Flow(server, "google").error() == "account_email_not_verified"
    users = admin_user_by_email(server, email)
    assert [u["id"] for u in users] == [squatter["id"]] and identities(users[0]) == ["email"], users
    # The squatter's password still opens only the squatter's (identity-less) account.
    r = call(server, "POST", "/api/auth/sessions", params={"client_type": "mobile"},
             json={"email": email, "password": PASSWORD})
    assert r.status_code == 200 and identities(r.json()["user"]) == ["email"], r.text


def test_link_to_an_account_a_provider_proved(server, provider):
    """An account made by a provider that verified the address has proven it: another verified provider links."""
    email = f"linkme-{uuid.uuid4().hex[:10]}@example.test"
    provider.set_user("github", email=email, email_verified=True)
    _, first = sign_in(server, "github")
    provider.set_user("google", email=email, email_verified=True, name="Linked Person")
    _, u = sign_in(server, "google")
    assert u["id"] == first["id"]
    assert identities(u) == ["github", "google"], u
    assert u["emailVerified"] is True, u
    _, u2 = sign_in(server, "google")
    assert u2["id"] == first["id"] and identities(u2) == ["github", "google"]


def test_link_email_case_insensitive(server, provider):
    local = f"CaseUser-{uuid.uuid4().hex[:8]}"
    provider.set_user("github", email=f"{local}@example.test".lower(), email_verified=True)
    _, existing = sign_in(server, "github")
    provider.set_user("facebook", email=f"{local}@Example.TEST")
    _, u = sign_in(server, "facebook")
    assert u["id"] == existing["id"], u
    assert identities(u) == ["facebook", "github"]


def test_microsoft_existing_email_not_linked(server, provider):
    email = f"ms-{uuid.uuid4().hex[:10]}@example.test"
    existing = sign_up_password(server, email)
    provider.set_user("microsoft", email=email, email_verified=True)
    flow = Flow(server, "microsoft")
    assert flow.error() == "email_not_verified"
    users = admin_user_by_email(server, email)
    assert [u["id"] for u in users] == [existing["id"]]
    assert identities(users[0]) == ["email"], users


def test_unverified_email_not_linked(server, provider):
    email = f"unverified-{uuid.uuid4().hex[:10]}@example.test"
    existing = sign_up_password(server, email)
    provider.set_user("google", email=email, email_verified=False)
    assert Flow(server, "google").error() == "email_not_verified"
    provider.set_user("discord", email=email, email_verified=False)
    assert Flow(server, "discord").error() == "email_not_verified"
    users = admin_user_by_email(server, email)
    assert [u["id"] for u in users] == [existing["id"]] and identities(users[0]) == ["email"]


def test_two_providers_same_verified_email_share_account(server, provider):
    email = f"both-{uuid.uuid4().hex[:10]}@example.test"
    provider.set_user("github", email=email, name="Two Hats")
    _, first = sign_in(server, "github")
    assert first["providerType"] == "github"
    provider.set_user("linkedin", email=email)
    _, second = sign_in(server, "linkedin")
    assert second["id"] == first["id"]
    assert identities(second) == ["github", "linkedin"]
    assert second["providerType"] == "github"


def test_github_private_email_from_emails_endpoint(server, provider):
    email = f"private-{uuid.uuid4().hex[:10]}@example.test"
    provider.set_user("github", email=email, public_email=False, name="Private Octo")
    before = len(provider.requests_to("github", "emails"))
    _, u = sign_in(server, "github")
    assert u["email"] == email and u["emailVerified"] is True, u
    assert len(provider.requests_to("github", "emails")) > before


def test_github_unverified_primary_email_not_trusted(server, provider):
    """/user/emails lists the address but unverified: not vouched for, so not linked to an existing account."""
    email = f"ghunv-{uuid.uuid4().hex[:10]}@example.test"
    existing = sign_up_password(server, email)
    provider.set_user("github", email=email, email_verified=False, public_email=False)
    flow = Flow(server, "github")
    if "insforge_code" in flow.app_query:  # a separate account (the unverified address ignored) is acceptable
        r = exchange(server, flow.insforge_code, flow.verifier)
        assert r.status_code == 200, r.text
        assert r.json()["user"]["id"] != existing["id"], r.json()
        assert r.json()["user"]["email"] != email and r.json()["user"]["emailVerified"] is False, r.json()
    else:
        assert flow.error() == "email_not_verified"
    users = admin_user_by_email(server, email)
    assert [u["id"] for u in users] == [existing["id"]] and identities(users[0]) == ["email"], users


def test_x_without_email_gets_placeholder(server, provider):
    user = provider.set_user("x", email=None, name="No Mail")
    _, u = sign_in(server, "x")
    assert u["email"] == f"x-{user['id']}@users.noreply.insforge.invalid", u
    assert u["emailVerified"] is False
    assert u["identities"] == [{"provider": "x"}] and u["providerType"] == "x"
    assert u["profile"]["name"] == "No Mail"
    # the server asked X for the address
    userinfo = provider.requests_to("x", "me")[-1]
    assert "confirmed_email" in userinfo[2].get("user.fields", ""), userinfo
    # and the same X account lands on the same user
    provider.set_user("x", id=user["id"], email=None)
    _, u2 = sign_in(server, "x")
    assert u2["id"] == u["id"]


def test_apple_name_only_from_first_sign_in(server, provider):
    user = provider.set_user("apple", name="Ada Lovelace")
    first = Flow(server, "apple")
    assert "user" in first.fields
    r = exchange(server, first.insforge_code, first.verifier)
    assert r.status_code == 200, r.text
    uid = r.json()["user"]["id"]
    assert r.json()["user"]["profile"]["name"] == "Ada Lovelace"
    second = Flow(server, "apple")
    assert "user" not in second.fields  # Apple sends the name only once
    r = exchange(server, second.insforge_code, second.verifier)
    assert r.status_code == 200, r.text
    assert r.json()["user"]["id"] == uid
    assert r.json()["user"]["profile"]["name"] == "Ada Lovelace"
    assert r.json()["user"]["email"] == user["email"]


def test_apple_unverified_email_not_linked(server, provider):
    email = f"apple-unv-{uuid.uuid4().hex[:8]}@example.test"
    sign_up_password(server, email)
    provider.set_user("apple", email=email, email_verified=False)
    assert Flow(server, "apple").error() == "email_not_verified"


def test_signup_disabled(server, provider):
    known = provider.set_user("discord", name="Old Timer")
    _, existing = sign_in(server, "discord")
    try:
        put_auth_config(server, {"disableSignup": True})
        newcomer = provider.set_user("discord")
        assert Flow(server, "discord").error() == "signup_disabled"
        assert admin_user_by_email(server, newcomer["email"]) == []
        provider.set_user("discord", id=known["id"], email=known["email"])
        _, again = sign_in(server, "discord")
        assert again["id"] == existing["id"]
    finally:
        put_auth_config(server, {"disableSignup": False})
    provider.set_user("discord")
    _, fresh = sign_in(server, "discord")
    assert fresh["id"] != existing["id"]


# --------------------------------------------------------------------------- admin: provider configuration


def test_configs_list_environment(server, provider):
    r = call(server, "GET", "/api/auth/oauth/configs", key="admin")
    assert r.status_code == 200, r.text
    body = r.json()
    data = body["data"]
    assert sorted(c["provider"] for c in data) == sorted(PROVIDERS) and len(data) == 8, data
    for c in data:
        assert set(c) == CONFIG_VIEW_KEYS, c
        p = c["provider"]
        assert c["source"] == "environment", c
        assert c["clientId"] == provider.client_id(p)
        assert c["hasClientSecret"] is True
        assert c["updatedAt"] is None
    for p in PROVIDERS:
        assert provider.clients[p][1] not in r.text
    assert "PRIVATE KEY" not in r.text
    one = call(server, "GET", "/api/auth/oauth/google/config", key="admin")
    assert one.status_code == 200 and one.json()["source"] == "environment" and set(one.json()) == CONFIG_VIEW_KEYS


def test_configs_need_admin(server, user_token):
    routes = [("GET", "/api/auth/oauth/configs", None),
              ("POST", "/api/auth/oauth/configs", {"provider": "google", "clientId": "x", "clientSecret": "y"}),
              ("GET", "/api/auth/oauth/google/config", None),
              ("PUT", "/api/auth/oauth/google/config", {"clientId": "x", "clientSecret": "y"}),
              ("DELETE", "/api/auth/oauth/google/config", None),
              ("PUT", "/api/auth/config", {"disableSignup": True})]
    for method, path, body in routes:
        assert_error(call(server, method, path, json=body), 401)
        assert_error(call(server, method, path, key=user_token, json=body), 403)
    # nothing changed
    assert configs(server)["google"]["source"] == "environment"
    assert call(server, "GET", "/api/auth/public-config").json()["disableSignup"] is False


def test_stored_config_takes_precedence(server, provider):
    wrong = "wrong-secret-" + secrets.token_hex(8)
    r = call(server, "POST", "/api/auth/oauth/configs", key="admin",
             json={"provider": "discord", "clientId": provider.client_id("discord"), "clientSecret": wrong})
    try:
        assert r.status_code == 201, r.text
        view = r.json()
        assert set(view) == CONFIG_VIEW_KEYS, view
        assert view["provider"] == "discord" and view["source"] == "database" and view["hasClientSecret"] is True
        assert TIMESTAMP.match(view["updatedAt"]), view
        assert wrong not in r.text
        assert configs(server)["discord"]["source"] == "database"
        got = call(server, "GET", "/api/auth/oauth/discord/config", key="admin")
        assert got.status_code == 200 and got.json()["source"] == "database" and wrong not in got.text
        # The stored (wrong) secret is what the server now presents to the provider.
        provider.set_user("discord")
        flow = Flow(server, "discord")
        assert flow.error() == "token_exchange_failed"
        sent = [req for req in provider.requests_to("discord", "token") if req[2].get("code") == flow.fields["code"]]
        assert len(sent) == 1 and sent[0][2].get("client_secret") == wrong, sent
    finally:
        d = delete_config(server, "discord")
    assert d.status_code == 200, d.text
    assert configs(server)["discord"]["source"] == "environment"
    assert_error(delete_config(server, "discord"), 404)
    provider.set_user("discord")
    _, u = sign_in(server, "discord")
    assert u["providerType"] == "discord"


def test_put_config_with_scopes(server, provider):
    scopes = ["openid", "profile", "email", "extra.scope"]
    r = call(server, "PUT", "/api/auth/oauth/linkedin/config", key="admin",
             json={"clientId": provider.client_id("linkedin"), "clientSecret": provider.client_secret("linkedin"),
                   "scopes": scopes})
    try:
        assert r.status_code == 200, r.text
        assert r.json()["source"] == "database" and r.json()["scopes"] == scopes and r.json()["hasClientSecret"] is True
        _, challenge = pkce_pair()
        assert query_of(auth_url(server, "linkedin", challenge))["scope"] == " ".join(scopes)
        provider.set_user("linkedin")
        _, u = sign_in(server, "linkedin")  # the stored (correct) credentials work
        assert u["providerType"] == "linkedin"
        # a partial update keeps the stored secret
        r = call(server, "PUT", "/api/auth/oauth/linkedin/config", key="admin", json={"scopes": ["openid", "email"]})
        assert r.status_code == 200, r.text
        assert r.json()["scopes"] == ["openid", "email"] and r.json()["hasClientSecret"] is True
        provider.set_user("linkedin")
        sign_in(server, "linkedin")
    finally:
        assert delete_config(server, "linkedin").status_code == 200
    assert configs(server)["linkedin"]["source"] == "environment"


def test_config_validation(server, provider):
    assert_error(call(server, "POST", "/api/auth/oauth/configs", key="admin",
                      json={"provider": "myspace", "clientId": "a", "clientSecret": "b"}), 400)
    assert_error(call(server, "POST", "/api/auth/oauth/configs", key="admin",
                      json={"clientId": "a", "clientSecret": "b"}), 400, "INVALID_INPUT")
    assert_error(call(server, "POST", "/api/auth/oauth/configs", key="admin",
                      json={"provider": "facebook", "clientId": "a"}), 400, "INVALID_INPUT")
    assert_error(call(server, "POST", "/api/auth/oauth/configs", key="admin",
                      json={"provider": "facebook", "clientSecret": "b"}), 400, "INVALID_INPUT")
    assert_error(delete_config(server, "facebook"), 404)  # nothing stored
    assert_error(delete_config(server, "myspace"), 400)
    assert configs(server)["facebook"]["source"] == "environment"


def test_apple_config_secret_must_be_team_key_json(server, provider):
    rsa_pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    good = provider.apple_secret_config()
    bad_secrets = ["plain-secret",
                   json.dumps({"teamId": good["teamId"], "keyId": good["keyId"]}),
                   json.dumps({**good, "privateKey": "not a pem"}),
                   json.dumps({**good, "privateKey": rsa_pem})]
    for bad in bad_secrets:
        r = call(server, "POST", "/api/auth/oauth/configs", key="admin",
                 json={"provider": "apple", "clientId": provider.client_id("apple"), "clientSecret": bad})
        assert_error(r, 400, "INVALID_INPUT")
    assert configs(server)["apple"]["source"] == "environment"
    # the right shape is accepted, and works
    r = call(server, "POST", "/api/auth/oauth/configs", key="admin",
             json={"provider": "apple", "clientId": provider.client_id("apple"), "clientSecret": json.dumps(good)})
    try:
        assert r.status_code == 201, r.text
        assert r.json()["source"] == "database"
        provider.set_user("apple")
        _, u = sign_in(server, "apple")
        assert u["providerType"] == "apple"
    finally:
        assert delete_config(server, "apple").status_code == 200


def test_stored_secrets_never_in_clear(server, provider, deployment):
    canary = "canary-secret-" + secrets.token_hex(12)
    apple_key = ec.generate_private_key(ec.SECP256R1())
    apple_pem = apple_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()).decode()
    pem_lines = [line for line in apple_pem.splitlines() if "-----" not in line]
    apple_secret = json.dumps({"teamId": provider.apple_team_id, "keyId": provider.apple_key_id,
                               "privateKey": apple_pem})
    r1 = call(server, "POST", "/api/auth/oauth/configs", key="admin",
              json={"provider": "facebook", "clientId": "fb-canary-client", "clientSecret": canary})
    r2 = call(server, "POST", "/api/auth/oauth/configs", key="admin",
              json={"provider": "apple", "clientId": "apple.canary.client", "clientSecret": apple_secret})
    try:
        assert r1.status_code == 201, r1.text
        assert r2.status_code == 201, r2.text
        # a PUT that changes the secret, too
        canary2 = canary + "-rotated"
        r3 = call(server, "PUT", "/api/auth/oauth/facebook/config", key="admin", json={"clientSecret": canary2})
        assert r3.status_code == 200, r3.text

        events = server.all_events()
        dumped = json.dumps(events)
        types = {e.get("type") for e in events}
        assert "OAuthProviderConfigured" in types, sorted(t for t in types if t)
        assert "fb-canary-client" in dumped  # we are looking at the right events
        assert canary not in dumped and canary2 not in dumped
        for line in pem_lines:
            assert line not in dumped
        assert base64.b64encode(canary.encode()).decode().rstrip("=") not in dumped

        rows = psql(deployment.db.url, "SELECT coalesce(string_agg(row_to_json(c)::text, E'\\n'), '') "
                                       "FROM auth.oauth_configs c")
        assert "fb-canary-client" in rows and "apple.canary.client" in rows, rows
        assert canary not in rows and canary2 not in rows
        for line in pem_lines:
            assert line not in rows
        for text in (r1.text, r2.text, r3.text, call(server, "GET", "/api/auth/oauth/configs", key="admin").text):
            assert canary not in text and "PRIVATE KEY" not in text
        with open(server.log_path, errors="replace") as f:
            log = f.read()
        assert canary not in log and canary2 not in log and pem_lines[1] not in log
    finally:
        delete_config(server, "facebook")
        delete_config(server, "apple")
    assert configs(server)["facebook"]["source"] == "environment"
    assert configs(server)["apple"]["source"] == "environment"


# --------------------------------------------------------------------------- the log


def test_events_replay_verify(server, deployment):
    """Everything above (sign-ups, links, sessions, config changes) rebuilds to the same read models."""
    server.wait_projection_caught_up()
    p = run_cli(["events", "replay", "--verify"], deployment.cli_env(), timeout=120)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert "DIFF" not in p.stdout, out


def test_a_password_reset_detaches_identities_linked_since_the_address_was_last_proven(deployment, provider):
    """Resetting the password by e-mail proves the address; identities linked after the previous proof are taken off
    (IdentityUnlinked), and one that is signed in with again is linked anew."""
    from mailbox import Mailbox, extract_code

    box = Mailbox(starttls=False, auth=None).start()
    try:
        s = deployment.server(name="oauth-mail", start=False, **provider.server_env(), **box.server_env(),
                              RATE_LIMIT_AUTH_PER_MINUTE="100000", RATE_LIMIT_EMAIL_PER_HOUR="1000", JWT_SECRET=JWT_SECRET)
        s.extra_env["API_BASE_URL"] = s.base
        s.start()
        email = f"reset-{uuid.uuid4().hex[:10]}@example.test"
        provider.set_user("github", email=email, email_verified=True)
        _, first = sign_in(s, "github")  # made by a provider that verified the address: proven
        provider.set_user("google", email=email, email_verified=True)
        _, linked = sign_in(s, "google")
        assert linked["id"] == first["id"] and identities(linked) == ["github", "google"], linked
        r = call(s, "POST", "/api/auth/email/send-reset-password", json={"email": email})
        assert r.status_code in (200, 202), r.text
        deadline = time.monotonic() + 10
        while not box.messages_to(email):
            assert time.monotonic() < deadline, "no reset mail"
            time.sleep(0.1)
        code = extract_code(box.messages_to(email)[-1])
        r = call(s, "POST", "/api/auth/email/exchange-reset-password-token", json={"email": email, "code": code})
        assert r.status_code == 200, r.text
        r = call(s, "POST", "/api/auth/email/reset-password", json={"newPassword": "Brand-new-pass-9", "otp": r.json()["token"]})
        assert r.status_code == 200, r.text
        [user] = admin_user_by_email(s, email)
        assert identities(user) == ["email", "github"], user
        events = [e for e in s.all_events(stream=f"user-{first['id']}")]
        unlinked = [e["data"] for e in events if e["type"] == "IdentityUnlinked"]
        assert [(u["provider"], u["reason"]) for u in unlinked] == [("google", "password reset")], unlinked
        # Signing in with Google again links it anew (the address is proven now).
        _, again = sign_in(s, "google")
        assert again["id"] == first["id"] and identities(again) == ["email", "github", "google"], again
    finally:
        box.stop()
