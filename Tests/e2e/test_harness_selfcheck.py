"""Checks the suite's own fakes (oauth_provider.py, mailbox.py) without our server: if these fail, the auth
end-to-end tests would be testing the harness rather than the server."""

import base64
import json
import os
import smtplib
import ssl
import time
import urllib.parse
from email.message import EmailMessage

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mailbox import Mailbox, body_text, extract_code, extract_link
from oauth_provider import (OIDC_PROVIDERS, PROVIDERS, TAMPER_KINDS, LocalOAuthProvider, parse_form_post, pkce_pair,
                            unverified_claims)

TIMEOUT = 10
REDIRECT = "http://127.0.0.1:9/api/auth/oauth/callback"  # never contacted: redirects are not followed


@pytest.fixture(scope="module")
def provider():
    p = LocalOAuthProvider().start()
    yield p
    p.stop()


# --------------------------------------------------------------------------- OAuth helpers


def authorize(provider, p, pkce=True, redirect_uri=REDIRECT, extra=None):
    """Runs the browser half: returns (code, state, verifier, form fields or None)."""
    env = provider.server_env()
    verifier, challenge = pkce_pair() if pkce else (None, None)
    state = "st-" + p
    params = {"client_id": env[f"{p.upper()}_CLIENT_ID"], "response_type": "code", "redirect_uri": redirect_uri,
              "state": state, "scope": "openid email"}
    if pkce:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    if p == "apple":
        params["response_mode"] = "form_post"
    params.update(extra or {})
    r = requests.get(env[f"{p.upper()}_AUTHORIZE_URL"], params=params, allow_redirects=False, timeout=TIMEOUT)
    if p == "apple" and params.get("response_mode") == "form_post":
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"].startswith("text/html")
        action, fields = parse_form_post(r.text)
        assert action == redirect_uri
        assert fields["state"] == state
        return fields["code"], state, verifier, fields
    assert r.status_code == 302, (r.status_code, r.text)
    location = urllib.parse.urlsplit(r.headers["Location"])
    assert urllib.parse.urlunsplit(location._replace(query="")) == redirect_uri
    q = dict(urllib.parse.parse_qsl(location.query))
    assert q["state"] == state
    return q["code"], state, verifier, None


def apple_client_secret(env, **overrides):
    """An Apple client secret made the way our server must: ES256 with the team key from APPLE_CLIENT_SECRET."""
    config = json.loads(env["APPLE_CLIENT_SECRET"])
    key = serialization.load_pem_private_key(config["privateKey"].encode(), password=None)
    now = int(time.time())
    claims = {"iss": config["teamId"], "iat": now, "exp": now + 300, "aud": [env["APPLE_ISSUER"]],
              "sub": env["APPLE_CLIENT_ID"]}
    kid = overrides.pop("kid", config["keyId"])
    key = overrides.pop("key", key)
    claims.update(overrides)
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid})


def exchange(provider, p, code, verifier, redirect_uri=REDIRECT, basic=None, secret=None, accept_json=True):
    """POSTs the token request (X uses Basic like our server does, the others the body)."""
    env = provider.server_env()
    P = p.upper()
    client_id = env[f"{P}_CLIENT_ID"]
    if secret is None:
        secret = apple_client_secret(env) if p == "apple" else env[f"{P}_CLIENT_SECRET"]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if verifier is not None:
        form["code_verifier"] = verifier
    headers = {"Accept": "application/json"} if accept_json else {}
    if basic is None:
        basic = p == "x"
    if basic:
        headers["Authorization"] = "Basic " + base64.b64encode(
            f"{urllib.parse.quote_plus(client_id)}:{urllib.parse.quote_plus(secret)}".encode()).decode()
        form["client_id"] = client_id
    else:
        form.update(client_id=client_id, client_secret=secret)
    return requests.post(env[f"{P}_TOKEN_URL"], data=form, headers=headers, timeout=TIMEOUT)


def verify_id_token(provider, p, token):
    env = provider.server_env()
    jwks = requests.get(env[f"{p.upper()}_JWKS_URL"], timeout=TIMEOUT).json()
    header = jwt.get_unverified_header(token)
    keys = {k["kid"]: k for k in jwks["keys"]}
    if header.get("alg") != "RS256" or header.get("kid") not in keys:
        raise jwt.InvalidTokenError(f"unexpected header {header}")
    key = jwt.PyJWK(keys[header["kid"]]).key
    issuer = env["APPLE_ISSUER"] if p == "apple" else f"{provider.base}/{p}"
    return jwt.decode(token, key, algorithms=["RS256"], audience=env[f"{p.upper()}_CLIENT_ID"], issuer=issuer)


def userinfo(provider, p, access_token):
    env = provider.server_env()
    url = env[f"{p.upper()}_USERINFO_URL"]
    if p == "x":
        url += "?user.fields=profile_image_url,confirmed_email"
    elif p == "facebook":
        url += "?fields=id,name,email,picture.type(large)"
    r = requests.get(url, headers={"Authorization": f"Bearer {access_token}"}, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    return r.json()


# --------------------------------------------------------------------------- OAuth provider


def test_server_env_names(provider):
    env = provider.server_env()
    for p in PROVIDERS:
        P = p.upper()
        for suffix in ("CLIENT_ID", "CLIENT_SECRET", "AUTHORIZE_URL", "TOKEN_URL"):
            assert env[f"{P}_{suffix}"], (P, suffix)
        assert (f"{P}_USERINFO_URL" in env) == (p != "apple")
        assert (f"{P}_JWKS_URL" in env) == (p in OIDC_PROVIDERS)
        assert env[f"{P}_AUTHORIZE_URL"].startswith("http://127.0.0.1:")
    assert env["GITHUB_EMAILS_URL"] == provider.base + "/github/user/emails"
    assert env["APPLE_ISSUER"] == provider.base + "/apple"
    config = json.loads(env["APPLE_CLIENT_SECRET"])
    assert set(config) == {"teamId", "keyId", "privateKey"}
    key = serialization.load_pem_private_key(config["privateKey"].encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert "BEGIN PRIVATE KEY" in config["privateKey"]  # PKCS#8


@pytest.mark.parametrize("p", PROVIDERS)
def test_round_trip(provider, p):
    user = provider.set_user(p, email=f"alice.{p}@example.test", name="Alice Liddell", public_email=True)
    code, _, verifier, fields = authorize(provider, p, extra={"nonce": "n-" + p})
    r = exchange(provider, p, code, verifier)
    assert r.status_code == 200, r.text
    tokens = r.json()
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 3600 and tokens["access_token"]
    assert ("id_token" in tokens) == (p in OIDC_PROVIDERS)
    if p in OIDC_PROVIDERS:
        claims = verify_id_token(provider, p, tokens["id_token"])
        assert claims["sub"] == user["id"] and claims["email"] == user["email"] and claims["nonce"] == "n-" + p
        assert claims["email_verified"] == ("true" if p == "apple" else True)
        assert claims["exp"] - claims["iat"] == 600
    if p == "apple":
        apple_user = json.loads(fields["user"])
        assert apple_user == {"name": {"firstName": "Alice", "lastName": "Liddell"}, "email": user["email"]}
        return
    info = userinfo(provider, p, tokens["access_token"])
    if p in ("google", "linkedin"):
        assert info == {"sub": user["id"], "email": user["email"], "email_verified": True, "name": "Alice Liddell",
                        "picture": user["avatar"]}
    elif p == "github":
        assert info["id"] == int(user["id"]) and info["email"] == user["email"] and info["name"] == "Alice Liddell"
        assert set(info) == {"id", "login", "name", "email", "avatar_url"}
        emails = requests.get(provider.server_env()["GITHUB_EMAILS_URL"], timeout=TIMEOUT,
                              headers={"Authorization": f"Bearer {tokens['access_token']}"}).json()
        assert emails == [{"email": user["email"], "primary": True, "verified": True, "visibility": "public"}]
    elif p == "microsoft":
        assert info == {"id": user["id"], "displayName": "Alice Liddell", "mail": user["email"],
                        "userPrincipalName": user["email"]}
    elif p == "discord":
        assert info["id"] == user["id"] and info["email"] == user["email"] and info["verified"] is True
        assert info["global_name"] == "Alice Liddell" and info["avatar"] == user["avatar"] and info["username"]
    elif p == "x":
        assert info == {"data": {"id": user["id"], "name": "Alice Liddell", "username": info["data"]["username"],
                                 "profile_image_url": user["avatar"], "confirmed_email": user["email"]}}
    elif p == "facebook":
        assert info == {"id": user["id"], "name": "Alice Liddell", "email": user["email"],
                        "picture": {"data": {"url": user["avatar"], "is_silhouette": False}}}
    # The provider saw PKCE on both legs.
    auth_req = provider.requests_to(p, "authorize")[-1]
    token_req = provider.requests_to(p, "token")[-1]
    assert auth_req[2]["code_challenge_method"] == "S256" and auth_req[2]["code_challenge"]
    assert token_req[2]["code_verifier"] == verifier


def test_wrong_verifier_refused_and_code_spent(provider):
    code, _, verifier, _ = authorize(provider, "google")
    r = exchange(provider, "google", code, "x" * 43)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    r = exchange(provider, "google", code, verifier)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_missing_verifier_refused(provider):
    code, _, _, _ = authorize(provider, "discord")
    r = exchange(provider, "discord", code, None)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_without_pkce_no_verifier_needed_except_x(provider):
    code, _, _, _ = authorize(provider, "github", pkce=False)
    assert exchange(provider, "github", code, None).status_code == 200
    env = provider.server_env()
    r = requests.get(env["X_AUTHORIZE_URL"], allow_redirects=False, timeout=TIMEOUT,
                     params={"client_id": env["X_CLIENT_ID"], "response_type": "code", "redirect_uri": REDIRECT,
                             "state": "s"})
    assert r.status_code == 400 and r.json() == {"error": "invalid_request",
                                                 "error_description": "code_challenge is required"}


def test_reused_code_refused(provider):
    code, _, verifier, _ = authorize(provider, "microsoft")
    assert exchange(provider, "microsoft", code, verifier).status_code == 200
    r = exchange(provider, "microsoft", code, verifier)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_redirect_uri_must_match(provider):
    code, _, verifier, _ = authorize(provider, "linkedin")
    r = exchange(provider, "linkedin", code, verifier, redirect_uri=REDIRECT + "x")
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_client_authentication(provider):
    code, _, verifier, _ = authorize(provider, "google")
    r = exchange(provider, "google", code, verifier, secret="wrong")
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    # Basic works for every provider, body for X too.
    code, _, verifier, _ = authorize(provider, "google")
    assert exchange(provider, "google", code, verifier, basic=True).status_code == 200
    code, _, verifier, _ = authorize(provider, "x")
    assert exchange(provider, "x", code, verifier, basic=False).status_code == 200
    code, _, verifier, _ = authorize(provider, "x")
    r = exchange(provider, "x", code, verifier, basic=True, secret="nope")
    assert r.status_code == 401


def test_bad_authorize_requests(provider):
    env = provider.server_env()
    good = {"client_id": env["GOOGLE_CLIENT_ID"], "response_type": "code", "redirect_uri": REDIRECT, "state": "s"}
    for change in ({"client_id": "other"}, {"response_type": "token"}, {"state": None}, {"redirect_uri": "/relative"},
                   {"code_challenge": "a" * 43, "code_challenge_method": "plain"}, {"code_challenge": "a" * 43}):
        params = {k: v for k, v in {**good, **change}.items() if v is not None}
        r = requests.get(env["GOOGLE_AUTHORIZE_URL"], params=params, allow_redirects=False, timeout=TIMEOUT)
        assert r.status_code == 400 and r.json()["error"] == "invalid_request", (change, r.text)


def test_denied_authorization(provider):
    provider.deny_next_authorization("facebook")
    env = provider.server_env()
    r = requests.get(env["FACEBOOK_AUTHORIZE_URL"], allow_redirects=False, timeout=TIMEOUT,
                     params={"client_id": env["FACEBOOK_CLIENT_ID"], "response_type": "code", "redirect_uri": REDIRECT,
                             "state": "s1"})
    assert r.status_code == 302
    assert dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(r.headers["Location"]).query)) == {
        "error": "access_denied", "state": "s1"}
    authorize(provider, "facebook")  # one-shot


def test_github_shapes(provider):
    user = provider.set_user("github", email="private@example.test", email_verified=True)  # not public
    code, _, verifier, _ = authorize(provider, "github")
    r = exchange(provider, "github", code, verifier, accept_json=False)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    form = dict(urllib.parse.parse_qsl(r.text))
    assert form["token_type"] == "Bearer"
    info = userinfo(provider, "github", form["access_token"])
    assert info["email"] is None
    emails = requests.get(provider.server_env()["GITHUB_EMAILS_URL"], timeout=TIMEOUT,
                          headers={"Authorization": f"Bearer {form['access_token']}"}).json()
    assert emails == [{"email": user["email"], "primary": True, "verified": True, "visibility": "private"}]


def test_userinfo_needs_a_valid_token(provider):
    env = provider.server_env()
    for p in ("google", "github", "microsoft", "discord", "linkedin", "x", "facebook"):
        r = requests.get(env[f"{p.upper()}_USERINFO_URL"], timeout=TIMEOUT)
        assert r.status_code == 401, p
        r = requests.get(env[f"{p.upper()}_USERINFO_URL"], headers={"Authorization": "Bearer nope"}, timeout=TIMEOUT)
        assert r.status_code == 401, p
    code, _, verifier, _ = authorize(provider, "google")
    google_token = exchange(provider, "google", code, verifier).json()["access_token"]
    r = requests.get(env["DISCORD_USERINFO_URL"], headers={"Authorization": f"Bearer {google_token}"}, timeout=TIMEOUT)
    assert r.status_code == 401  # tokens are per provider


def test_x_email_only_when_asked_and_facebook_query_token(provider):
    user = provider.set_user("x")
    code, _, verifier, _ = authorize(provider, "x")
    token = exchange(provider, "x", code, verifier).json()["access_token"]
    r = requests.get(provider.server_env()["X_USERINFO_URL"], headers={"Authorization": f"Bearer {token}"},
                     timeout=TIMEOUT)
    assert "confirmed_email" not in r.json()["data"] and r.json()["data"]["id"] == user["id"]
    provider.set_user("x", email=None)
    code, _, verifier, _ = authorize(provider, "x")
    token = exchange(provider, "x", code, verifier).json()["access_token"]
    assert "confirmed_email" not in userinfo(provider, "x", token)["data"]

    provider.set_user("facebook", email=None)
    code, _, verifier, _ = authorize(provider, "facebook")
    token = exchange(provider, "facebook", code, verifier).json()["access_token"]
    r = requests.get(provider.server_env()["FACEBOOK_USERINFO_URL"], timeout=TIMEOUT,
                     params={"fields": "id,name,email", "access_token": token})
    assert r.status_code == 200 and set(r.json()) == {"id", "name"}


def test_apple_client_secret_validation(provider):
    env = provider.server_env()
    other_key = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    bad = {
        "wrong kid": apple_client_secret(env, kid="OTHERKEY"),
        "wrong key": apple_client_secret(env, key=other_key),
        "wrong aud": apple_client_secret(env, aud="https://appleid.apple.com"),
        "wrong iss": apple_client_secret(env, iss="SOMETEAM"),
        "wrong sub": apple_client_secret(env, sub="other.client"),
        "expired": apple_client_secret(env, iat=now - 1000, exp=now - 100),
        "too long": apple_client_secret(env, exp=now + 200 * 86400),
        "not a jwt": "plain-secret",
        "the json": env["APPLE_CLIENT_SECRET"],
        "HS256": jwt.encode({"iss": "x"}, "k" * 32, algorithm="HS256", headers={"kid": json.loads(
            env["APPLE_CLIENT_SECRET"])["keyId"]}),
    }
    for what, secret in bad.items():
        code, _, verifier, _ = authorize(provider, "apple")
        r = exchange(provider, "apple", code, verifier, secret=secret)
        assert r.status_code == 401 and r.json()["error"] == "invalid_client", (what, r.text)
    code, _, verifier, _ = authorize(provider, "apple")
    good = apple_client_secret(env, aud=env["APPLE_ISSUER"], exp=now + 150 * 86400)  # string aud, ~5 months
    assert exchange(provider, "apple", code, verifier, secret=good).status_code == 200
    code, _, verifier, _ = authorize(provider, "apple")
    assert exchange(provider, "apple", code, verifier, secret=provider.make_apple_client_secret()).status_code == 200


def test_apple_user_field_only_first_time(provider):
    user = provider.set_user("apple", email="bob@privaterelay.example.test", email_verified=False, name="Bob Stone")
    _, _, _, fields = authorize(provider, "apple")
    assert json.loads(fields["user"]) == {"name": {"firstName": "Bob", "lastName": "Stone"}, "email": user["email"]}
    code, _, verifier, fields = authorize(provider, "apple")
    assert "user" not in fields
    claims = verify_id_token(provider, "apple", exchange(provider, "apple", code, verifier).json()["id_token"])
    assert claims["email_verified"] == "false" and claims["iss"] == provider.server_env()["APPLE_ISSUER"]


@pytest.mark.parametrize("kind", TAMPER_KINDS)
def test_tampered_id_tokens_fail_verification(provider, kind):
    provider.tamper_next_id_token(kind, provider="google")
    code, _, verifier, _ = authorize(provider, "google")
    token = exchange(provider, "google", code, verifier).json()["id_token"]
    header, claims = unverified_claims(token)
    assert header["kid"] == provider.kid
    with pytest.raises(jwt.InvalidTokenError):
        verify_id_token(provider, "google", token)
    # Only the next one.
    code, _, verifier, _ = authorize(provider, "google")
    verify_id_token(provider, "google", exchange(provider, "google", code, verifier).json()["id_token"])


def test_jwks_shape(provider):
    jwks = requests.get(provider.server_env()["MICROSOFT_JWKS_URL"], timeout=TIMEOUT).json()
    (key,) = jwks["keys"]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig" and key["kid"] == "test-rsa-1"
    assert jwt.PyJWK(key).key.key_size == 2048


# --------------------------------------------------------------------------- mailbox


def make_message(to, code="493817"):
    msg = EmailMessage()
    msg["From"] = "InsForge <noreply@example.test>"
    msg["To"] = to
    msg["Subject"] = "Your verification code"
    # Long lines and '=' force quoted-printable; the link must come out intact.
    link = "https://app.example.test/verify?token=" + "a" * 90 + "&next=%2Fhome"
    msg.set_content(f"Your code is {code}.\n\nOr open {link}.\n", cte="quoted-printable")
    msg.add_alternative(f"<p>Your code is <b>{code}</b>.</p><p><a href=\"{link.replace('&', '&amp;')}\">Verify</a></p>",
                        subtype="html", cte="quoted-printable")
    return msg, link


def test_mailbox_plain():
    with Mailbox() as box:
        env = box.server_env()
        assert env == {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(box.port), "SMTP_FROM": "noreply@example.test"}
        msg, link = make_message("Carol <carol@example.test>")
        with smtplib.SMTP(env["SMTP_HOST"], int(env["SMTP_PORT"]), timeout=TIMEOUT) as s:
            s.send_message(msg, from_addr="noreply@example.test", to_addrs=["carol@example.test"])
        got = box.wait_for("CAROL@example.test", timeout=5)
        assert got.envelope_from == "noreply@example.test" and got.envelope_to == ["carol@example.test"]
        assert got["Subject"] == "Your verification code" and not got.tls and got.auth_login is None
        assert extract_code(got) == "493817"
        assert extract_link(got) == link
        assert "Verify" in body_text(got, ("html",))
        assert got.get_body(preferencelist=("plain",))["Content-Transfer-Encoding"] == "quoted-printable"
        # Newest match wins; predicate filters; clear empties.
        with smtplib.SMTP(box.host, box.port, timeout=TIMEOUT) as s:
            s.send_message(make_message("carol@example.test", code="111222")[0])
        assert extract_code(box.wait_for("carol@example.test", predicate=lambda m: "111222" in body_text(m))) == "111222"
        assert extract_code(box.wait_for("carol@example.test")) == "111222"
        assert len(box.messages_to("carol@example.test")) == 2
        box.clear()
        started = time.monotonic()
        with pytest.raises(AssertionError):
            box.wait_for("carol@example.test", timeout=0.3)
        assert time.monotonic() - started < 2


def test_mailbox_auth():
    with Mailbox(auth=("mailer", "s3cret pass")) as box:
        env = box.server_env()
        assert env["SMTP_USER"] == "mailer" and env["SMTP_PASSWORD"] == "s3cret pass" and "SMTP_CA_FILE" not in env
        msg, _ = make_message("dave@example.test")
        with smtplib.SMTP(box.host, box.port, timeout=TIMEOUT) as s:
            with pytest.raises(smtplib.SMTPSenderRefused):
                s.send_message(msg)  # no AUTH: 530
        with smtplib.SMTP(box.host, box.port, timeout=TIMEOUT) as s:
            with pytest.raises(smtplib.SMTPAuthenticationError):
                s.login("mailer", "wrong")
        with smtplib.SMTP(box.host, box.port, timeout=TIMEOUT) as s:
            s.login(env["SMTP_USER"], env["SMTP_PASSWORD"])  # PLAIN
            s.send_message(msg)
        assert box.wait_for("dave@example.test").auth_login == "mailer"
        with smtplib.SMTP(box.host, box.port, timeout=TIMEOUT) as s:
            s.ehlo()
            s.user, s.password = "mailer", "s3cret pass"
            code, _ = s.auth("LOGIN", s.auth_login)
            assert code == 235
            s.send_message(make_message("dave@example.test", code="654321")[0])
        assert extract_code(box.wait_for("dave@example.test", predicate=lambda m: "654321" in body_text(m))) == "654321"
        # smtplib tries PLAIN then LOGIN with the wrong password; then PLAIN and LOGIN succeed.
        assert box.auth_attempts == [("PLAIN", "mailer", False), ("LOGIN", "mailer", False),
                                     ("PLAIN", "mailer", True), ("LOGIN", "mailer", True)]


def test_mailbox_starttls():
    with Mailbox(starttls=True) as box:
        env = box.server_env()
        assert env["SMTP_CA_FILE"] == box.ca_file and "SMTP_USER" not in env
        msg, _ = make_message("erin@example.test")
        with smtplib.SMTP(box.host, box.port, timeout=TIMEOUT) as s:
            s.ehlo()
            assert s.has_extn("starttls")
            with pytest.raises(smtplib.SMTPSenderRefused):
                s.send_message(msg)  # 530 STARTTLS first
        with smtplib.SMTP(box.host, box.port, timeout=TIMEOUT) as s:
            with pytest.raises(ssl.SSLCertVerificationError):
                s.starttls(context=ssl.create_default_context())  # the system roots do not know our CA
        for host in ("127.0.0.1", "localhost"):
            with smtplib.SMTP(host, box.port, timeout=TIMEOUT) as s:
                s.starttls(context=ssl.create_default_context(cafile=env["SMTP_CA_FILE"]))
                s.send_message(msg)
        got = box.wait_for("erin@example.test")
        assert got.tls and extract_code(got) == "493817"
        assert len(box.messages_to("erin@example.test")) == 2


def test_mailbox_starttls_with_auth():
    with Mailbox(starttls=True, auth=("u", "p")) as box:
        env = box.server_env()
        assert {"SMTP_USER", "SMTP_PASSWORD", "SMTP_CA_FILE"} <= set(env)
        with smtplib.SMTP(box.host, box.port, timeout=TIMEOUT) as s:
            s.ehlo()
            assert not s.has_extn("auth")  # AUTH only after TLS
            s.starttls(context=ssl.create_default_context(cafile=box.ca_file))
            s.login("u", "p")
            s.send_message(make_message("frank@example.test")[0])
        got = box.wait_for("frank@example.test")
        assert got.tls and got.auth_login == "u"
    assert box.ca_file and not os.path.exists(box.ca_file)  # cleaned up on stop
