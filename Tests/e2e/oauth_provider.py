"""A local OAuth 2.0 / OpenID Connect provider on loopback that impersonates eight real providers.

One ThreadingHTTPServer (127.0.0.1, free port, daemon thread) serves each provider under its own path prefix:
`<base>/google/`, `/github/`, `/microsoft/`, `/discord/`, `/linkedin/`, `/x/`, `/apple/`, `/facebook/`.
`server_env()` gives the variables that point our server at it (client ids and secrets, endpoint URLs).

Per provider:
  GET  /<p>/authorize   client_id, response_type=code, redirect_uri, state, [code_challenge, code_challenge_method=S256],
                        [nonce], [scope]; X requires PKCE. 302 to redirect_uri?code=..&state=.. (Apple with
                        response_mode=form_post: a 200 HTML page with an auto-posting form, see `parse_form_post`).
  POST /<p>/token       grant_type=authorization_code, code, redirect_uri, [code_verifier]; client auth in the body
                        (client_id/client_secret) or HTTP Basic. Apple's client_secret is an ES256 JWT checked
                        against the generated team key. Codes are single use: a code is spent by the first exchange
                        that presents it with valid client credentials, whether that exchange succeeds or not.
  userinfo              the provider's own shape (see `_userinfo`), Bearer token (Facebook also ?access_token=).
  GET  /<p>/jwks        the RSA key that signs id_tokens (RS256, kid `test-rsa-1`).

Knobs for tests: `set_user` (who signs in next), `tamper_next_id_token` (a bad id_token), `deny_next_authorization`
(the user cancels), `requests` (what the provider received) and `requests_to`.
"""

import base64
import hashlib
import html
import html.parser
import http.server
import json
import secrets
import threading
import time
import urllib.parse

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

PROVIDERS = ("google", "github", "microsoft", "discord", "linkedin", "x", "apple", "facebook")
# Providers whose token answer carries an id_token (and whose JWKS our server is told about).
OIDC_PROVIDERS = ("google", "microsoft", "linkedin", "apple")
USERINFO_PATHS = {
    "google": "/userinfo",
    "github": "/user",
    "microsoft": "/me",
    "discord": "/users/@me",
    "linkedin": "/userinfo",
    "x": "/users/me",
    "facebook": "/me",
}
TAMPER_KINDS = ("wrong_key", "wrong_aud", "expired", "wrong_iss", "alg_none")
RSA_KID = "test-rsa-1"
CODE_TTL = 300
ACCESS_TOKEN_TTL = 3600
ID_TOKEN_TTL = 600
APPLE_SECRET_MAX_TTL = 15777000  # Apple: a client secret may live at most six months.

_UNSET = object()


# --------------------------------------------------------------------------- small helpers


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_uint(n):
    return b64url(n.to_bytes((n.bit_length() + 7) // 8 or 1, "big"))


def pkce_pair():
    """A fresh PKCE (verifier, S256 challenge)."""
    verifier = b64url(secrets.token_bytes(32))
    return verifier, pkce_challenge(verifier)


def pkce_challenge(verifier):
    """BASE64URL(SHA256(verifier)), the S256 code_challenge of `verifier`."""
    return b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def unverified_claims(token):
    """(header, claims) of a JWT, without checking anything (for assertions on what was issued)."""
    return jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})


class _FormPostParser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.action = None
        self.fields = {}
        self._in_form = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and self.action is None:
            self.action = a.get("action")
            self._in_form = True
        elif tag == "input" and self._in_form and a.get("name") is not None:
            self.fields[a["name"]] = a.get("value") or ""

    def handle_endtag(self, tag):
        if tag == "form":
            self._in_form = False


def parse_form_post(page):
    """(action, {name: value}) of the first form in an Apple `response_mode=form_post` page."""
    parser = _FormPostParser()
    parser.feed(page)
    parser.close()
    if parser.action is None:
        raise ValueError("no <form> in the page")
    return parser.action, parser.fields


def _random_user(provider):
    """A fresh user in the shape `set_user` stores."""
    token = secrets.token_hex(4)
    if provider == "github":
        uid = str(secrets.randbelow(10**8) + 10**7)
    elif provider in ("discord", "x"):
        uid = str(secrets.randbelow(10**17) + 10**17)
    elif provider == "apple":
        uid = f"001{secrets.randbelow(10**3):03d}.{secrets.token_hex(16)}.{secrets.randbelow(10**4):04d}"
    elif provider == "facebook":
        uid = str(secrets.randbelow(10**15) + 10**15)
    else:
        uid = secrets.token_hex(10)
    return {
        "id": uid,
        "email": f"{provider}-{token}@example.test",
        "email_verified": True,
        "name": f"Test {provider.capitalize()} {token}",
        # Discord sends an avatar hash, the others a URL (never fetched by anyone).
        "avatar": (secrets.token_hex(16) if provider == "discord"
                   else f"https://avatars.example.test/{provider}/{uid}.png"),
    }


# --------------------------------------------------------------------------- the provider


class LocalOAuthProvider:
    """Eight fake OAuth providers on one loopback port; see the module docstring for the endpoints."""

    def __init__(self):
        self.rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        # Signs "wrong_key" id_tokens: a key nobody published, under the published kid.
        self.other_rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = RSA_KID
        self.apple_key = ec.generate_private_key(ec.SECP256R1())
        self.apple_team_id = "T" + secrets.token_hex(5).upper()[:9]
        self.apple_key_id = "K" + secrets.token_hex(5).upper()[:9]
        self.clients = {}
        for p in PROVIDERS:
            client_id = f"{p}-client-{secrets.token_hex(6)}"
            if p == "apple":
                client_id = f"test.{secrets.token_hex(4)}.signin"  # a Services ID
            self.clients[p] = (client_id, secrets.token_urlsafe(24))
        # (method, path, query params (GET) or form (POST) as a dict, headers as a dict with lower-case names)
        self.requests = []
        self._lock = threading.Lock()
        self._users = {p: _random_user(p) for p in PROVIDERS}
        self._codes = {}
        self._tokens = {}
        self._apple_authorized = set()  # Apple user ids that already got the `user` form field
        self._tamper = []  # [(kind, provider or None)], first match is used
        self._deny = {}  # provider -> error for the next authorization
        self._httpd = None
        self._thread = None
        self.port = None
        self.base = None

    # ---- lifecycle

    def start(self):
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"oauth-provider-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- configuration

    @property
    def apple_issuer(self):
        return self.base + "/apple"

    def issuer(self, provider):
        """The `iss` of `provider`'s id_tokens."""
        return self.apple_issuer if provider == "apple" else f"{self.base}/{provider}"

    def client_id(self, provider):
        return self.clients[provider][0]

    def client_secret(self, provider):
        """The configured secret (for Apple: the JSON the server signs client secrets from)."""
        if provider == "apple":
            return json.dumps(self.apple_secret_config())
        return self.clients[provider][1]

    def apple_secret_config(self):
        """{teamId, keyId, privateKey}: what APPLE_CLIENT_SECRET holds."""
        pem = self.apple_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()).decode("ascii")
        return {"teamId": self.apple_team_id, "keyId": self.apple_key_id, "privateKey": pem}

    def make_apple_client_secret(self, ttl=300, **overrides):
        """An ES256 client secret as our server should make it (claims/header overridable for negative tests:
        iss, sub, aud, iat, exp, kid, key=<EC private key>)."""
        now = int(time.time())
        key = overrides.pop("key", self.apple_key)
        kid = overrides.pop("kid", self.apple_key_id)
        claims = {"iss": self.apple_team_id, "iat": now, "exp": now + ttl, "aud": self.apple_issuer,
                  "sub": self.client_id("apple")}
        claims.update(overrides)
        return jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid})

    def endpoint(self, provider, name):
        """URL of `provider`'s endpoint `name`: authorize, token, userinfo, jwks, emails (GitHub)."""
        if name == "userinfo":
            return f"{self.base}/{provider}{USERINFO_PATHS[provider]}"
        if name == "emails":
            return f"{self.base}/github/user/emails"
        return f"{self.base}/{provider}/{name}"

    def server_env(self):
        """The variables our server reads for all eight providers."""
        env = {}
        for p in PROVIDERS:
            P = p.upper()
            env[f"{P}_CLIENT_ID"] = self.client_id(p)
            env[f"{P}_CLIENT_SECRET"] = self.client_secret(p)
            env[f"{P}_AUTHORIZE_URL"] = self.endpoint(p, "authorize")
            env[f"{P}_TOKEN_URL"] = self.endpoint(p, "token")
            if p in USERINFO_PATHS:
                env[f"{P}_USERINFO_URL"] = self.endpoint(p, "userinfo")
            if p in OIDC_PROVIDERS:
                env[f"{P}_JWKS_URL"] = self.endpoint(p, "jwks")
        env["GITHUB_EMAILS_URL"] = self.endpoint("github", "emails")
        env["APPLE_ISSUER"] = self.apple_issuer
        return env

    def set_user(self, provider, id=None, email=_UNSET, email_verified=True, name=_UNSET, avatar=_UNSET, **extra):
        """Who signs in next at `provider` (unspecified fields random; `email=None`: the user has no address).

        `avatar` is a URL, except at Discord where it is the avatar hash. Extras: `public_email` (GitHub: whether
        /user shows the address; default False, so the server must read /user/emails), `login` / `username`,
        `first_name` / `last_name` (Apple's first-authorization `user` field). Returns the stored user."""
        if provider not in PROVIDERS:
            raise ValueError(f"unknown provider {provider!r}")
        user = _random_user(provider)
        if id is not None:
            user["id"] = str(id)
        if email is not _UNSET:
            user["email"] = email
        user["email_verified"] = bool(email_verified)
        if name is not _UNSET:
            user["name"] = name
        if avatar is not _UNSET:
            user["avatar"] = avatar
        elif provider != "discord":
            user["avatar"] = f"https://avatars.example.test/{provider}/{user['id']}.png"
        user.update(extra)
        with self._lock:
            self._users[provider] = user
        return dict(user)

    def user(self, provider):
        with self._lock:
            return dict(self._users[provider])

    def tamper_next_id_token(self, kind, provider=None):
        """Makes the next id_token (at `provider`, or at any provider) bad in the way `kind` says:
        wrong_key (signed by another RSA key under the same kid), wrong_aud, expired, wrong_iss, alg_none."""
        if kind not in TAMPER_KINDS:
            raise ValueError(f"unknown tamper kind {kind!r}; one of {TAMPER_KINDS}")
        with self._lock:
            self._tamper.append((kind, provider))

    def deny_next_authorization(self, provider, error="access_denied"):
        """The next authorization at `provider` redirects with ?error=<error>&state=.. (the user said no)."""
        with self._lock:
            self._deny[provider] = error

    def requests_to(self, provider, endpoint=None):
        """Logged requests to `provider` (optionally only those whose path ends with `endpoint`, e.g. "token")."""
        prefix = f"/{provider}/"
        with self._lock:
            log = list(self.requests)
        return [r for r in log if r[1].startswith(prefix) and (endpoint is None or r[1].endswith("/" + endpoint))]

    def clear_requests(self):
        with self._lock:
            self.requests.clear()

    def jwks(self):
        pub = self.rsa_key.public_key().public_numbers()
        return {"keys": [{"kty": "RSA", "n": b64url_uint(pub.n), "e": b64url_uint(pub.e), "kid": self.kid,
                          "alg": "RS256", "use": "sig"}]}

    # ---- request handling (called from the handler threads)

    def _log(self, method, path, params, headers):
        with self._lock:
            self.requests.append((method, path, params, headers))

    def _authorize(self, provider, q):
        client_id = q.get("client_id")
        redirect_uri = q.get("redirect_uri", "")
        state = q.get("state")
        if client_id != self.client_id(provider):
            return _json(400, {"error": "invalid_request", "error_description": "unknown client_id"})
        if q.get("response_type") != "code":
            return _json(400, {"error": "invalid_request", "error_description": "response_type must be code"})
        target = urllib.parse.urlsplit(redirect_uri)
        if target.scheme not in ("http", "https") or not target.netloc:
            return _json(400, {"error": "invalid_request", "error_description": "redirect_uri must be an absolute URL"})
        if not state:
            return _json(400, {"error": "invalid_request", "error_description": "state is required"})
        challenge = q.get("code_challenge")
        method = q.get("code_challenge_method")
        if challenge is not None:
            if method != "S256":
                return _json(400, {"error": "invalid_request", "error_description": "only S256 PKCE is supported"})
            if not (43 <= len(challenge) <= 128):
                return _json(400, {"error": "invalid_request", "error_description": "bad code_challenge"})
        elif method is not None:
            return _json(400, {"error": "invalid_request",
                               "error_description": "code_challenge_method without code_challenge"})
        elif provider == "x":
            return _json(400, {"error": "invalid_request", "error_description": "code_challenge is required"})

        with self._lock:
            denied = self._deny.pop(provider, None)
            user = dict(self._users[provider])
            first_apple = provider == "apple" and user["id"] not in self._apple_authorized
        if denied:
            return _redirect(_with_query(redirect_uri, {"error": denied, "state": state}))
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = {
                "provider": provider, "client_id": client_id, "redirect_uri": redirect_uri, "challenge": challenge,
                "user": user, "expires": time.time() + CODE_TTL, "scope": q.get("scope", ""), "nonce": q.get("nonce"),
            }
        if provider == "apple" and q.get("response_mode") == "form_post":
            fields = {"code": code, "state": state}
            if first_apple:
                first, _, last = (user.get("name") or "").partition(" ")
                apple_user = {"name": {"firstName": user.get("first_name", first), "lastName": user.get("last_name", last)}}
                if user.get("email"):
                    apple_user["email"] = user["email"]
                fields["user"] = json.dumps(apple_user)
                with self._lock:
                    self._apple_authorized.add(user["id"])
            inputs = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v, quote=True)}"/>'
                             for k, v in fields.items())
            page = (f'<!DOCTYPE html><html><body onload="document.forms[0].submit()">'
                    f'<form method="post" action="{html.escape(redirect_uri, quote=True)}">{inputs}</form></body></html>')
            return 200, {"Content-Type": "text/html; charset=utf-8"}, page.encode("utf-8")
        if provider == "apple":
            with self._lock:
                self._apple_authorized.add(user["id"])
        return _redirect(_with_query(redirect_uri, {"code": code, "state": state}))

    def _client_authenticated(self, provider, form, headers):
        """None if the client is who it says, else the error response."""
        body_id = form.get("client_id")
        body_secret = form.get("client_secret")
        auth = headers.get("authorization", "")
        if auth[:6].lower() == "basic ":
            try:
                raw = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
                basic_id, _, basic_secret = raw.partition(":")
            except (ValueError, UnicodeDecodeError):
                return _json(401, {"error": "invalid_client", "error_description": "bad Basic credentials"})
            # RFC 6749 2.3.1: both halves are form-urlencoded before Basic encoding.
            basic_id, basic_secret = urllib.parse.unquote_plus(basic_id), urllib.parse.unquote_plus(basic_secret)
            if body_id is not None and body_id != basic_id:
                return _json(401, {"error": "invalid_client", "error_description": "client_id differs from Basic"})
            client_id, secret = basic_id, basic_secret
        else:
            client_id, secret = body_id, body_secret
        if client_id != self.client_id(provider) or not secret:
            return _json(401, {"error": "invalid_client", "error_description": "unknown client"})
        if provider == "apple":
            problem = self._apple_secret_problem(secret)
            if problem:
                return _json(401, {"error": "invalid_client", "error_description": problem})
        elif not secrets.compare_digest(secret, self.clients[provider][1]):
            return _json(401, {"error": "invalid_client", "error_description": "wrong client_secret"})
        return None

    def _apple_secret_problem(self, secret):
        try:
            header = jwt.get_unverified_header(secret)
        except jwt.PyJWTError as e:
            return f"client_secret is not a JWT: {e}"
        if header.get("alg") != "ES256":
            return "client_secret must be ES256"
        if header.get("kid") != self.apple_key_id:
            return "client_secret kid is not the key id"
        try:
            claims = jwt.decode(secret, self.apple_key.public_key(), algorithms=["ES256"], audience=self.apple_issuer,
                                issuer=self.apple_team_id, options={"require": ["iss", "sub", "aud", "exp", "iat"]})
        except jwt.PyJWTError as e:
            return f"client_secret rejected: {e}"
        if claims.get("sub") != self.client_id("apple"):
            return "client_secret sub is not the client id"
        if claims["exp"] > time.time() + APPLE_SECRET_MAX_TTL:
            return "client_secret expires more than six months ahead"
        return None

    def _token(self, provider, form, headers):
        refused = self._client_authenticated(provider, form, headers)
        if refused:
            return refused
        if form.get("grant_type") != "authorization_code":
            return _json(400, {"error": "unsupported_grant_type"})
        with self._lock:
            grant = self._codes.pop(form.get("code", ""), None)  # spent, whatever happens next
        if grant is None or grant["provider"] != provider or grant["client_id"] != self.client_id(provider):
            return _json(400, {"error": "invalid_grant", "error_description": "unknown or used code"})
        if grant["expires"] < time.time():
            return _json(400, {"error": "invalid_grant", "error_description": "code expired"})
        if form.get("redirect_uri") != grant["redirect_uri"]:
            return _json(400, {"error": "invalid_grant", "error_description": "redirect_uri mismatch"})
        if grant["challenge"] is not None:
            verifier = form.get("code_verifier")
            if not verifier:
                return _json(400, {"error": "invalid_grant", "error_description": "code_verifier required"})
            if not secrets.compare_digest(pkce_challenge(verifier), grant["challenge"]):
                return _json(400, {"error": "invalid_grant", "error_description": "code_verifier mismatch"})
        access_token = f"{provider}-at-{secrets.token_urlsafe(24)}"
        with self._lock:
            self._tokens[access_token] = {"provider": provider, "user": grant["user"],
                                          "expires": time.time() + ACCESS_TOKEN_TTL}
        body = {"access_token": access_token, "token_type": "Bearer", "expires_in": ACCESS_TOKEN_TTL,
                "scope": grant["scope"]}
        if provider in OIDC_PROVIDERS:
            body["id_token"] = self._id_token(provider, grant["user"], grant["nonce"])
        if provider == "github" and "application/json" not in headers.get("accept", ""):
            data = urllib.parse.urlencode({k: v for k, v in body.items() if k in ("access_token", "token_type", "scope")})
            return 200, {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}, data.encode("ascii")
        return _json(200, body)

    def _id_token(self, provider, user, nonce):
        with self._lock:
            kind = None
            for i, (k, p) in enumerate(self._tamper):
                if p is None or p == provider:
                    kind = k
                    del self._tamper[i]
                    break
        now = int(time.time())
        claims = {"iss": self.issuer(provider), "aud": self.client_id(provider), "sub": user["id"],
                  "iat": now, "exp": now + ID_TOKEN_TTL}
        if user.get("email"):
            claims["email"] = user["email"]
            verified = bool(user.get("email_verified"))
            claims["email_verified"] = ("true" if verified else "false") if provider == "apple" else verified
        if provider != "apple" and user.get("name"):
            claims["name"] = user["name"]
        if provider in ("google", "linkedin") and user.get("avatar"):
            claims["picture"] = user["avatar"]
        if nonce is not None:
            claims["nonce"] = nonce
        key = self.rsa_key
        if kind == "wrong_key":
            key = self.other_rsa_key
        elif kind == "wrong_aud":
            claims["aud"] = "someone-else-" + secrets.token_hex(4)
        elif kind == "expired":
            claims["iat"], claims["exp"] = now - 3600, now - 600
        elif kind == "wrong_iss":
            claims["iss"] = "https://issuer.invalid/" + provider
        elif kind == "alg_none":
            header = {"alg": "none", "typ": "JWT", "kid": self.kid}
            return (b64url(json.dumps(header, separators=(",", ":")).encode()) + "."
                    + b64url(json.dumps(claims, separators=(",", ":")).encode()) + ".")
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": self.kid})

    def _bearer_user(self, provider, q, headers):
        auth = headers.get("authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        if token is None and provider == "facebook":
            token = q.get("access_token")
        with self._lock:
            grant = self._tokens.get(token or "")
        if grant is None or grant["provider"] != provider or grant["expires"] < time.time():
            return None
        return grant["user"]

    def _userinfo(self, provider, route, q, headers):
        user = self._bearer_user(provider, q, headers)
        if user is None:
            return _json(401, {"error": "invalid_token"}, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        email = user.get("email")
        login = user.get("login") or user.get("username") or (user.get("name") or "user").lower().replace(" ", "-")
        if provider == "google" or provider == "linkedin":
            body = {"sub": user["id"], "name": user.get("name"), "picture": user.get("avatar")}
            if email:
                body.update(email=email, email_verified=bool(user["email_verified"]))
            return _json(200, body)
        if provider == "github":
            if route == "/user":
                uid = int(user["id"]) if user["id"].isdigit() else user["id"]  # GitHub ids are numbers
                return _json(200, {"id": uid, "login": login, "name": user.get("name"),
                                   "email": email if user.get("public_email") else None,
                                   "avatar_url": user.get("avatar")})
            emails = []
            if email:
                emails.append({"email": email, "primary": True, "verified": bool(user["email_verified"]),
                               "visibility": "public" if user.get("public_email") else "private"})
            return _json(200, emails)
        if provider == "microsoft":
            return _json(200, {"id": user["id"], "displayName": user.get("name"), "mail": email,
                               "userPrincipalName": email or f"{user['id']}@contoso.onmicrosoft.com"})
        if provider == "discord":
            body = {"id": user["id"], "username": login, "global_name": user.get("name"), "avatar": user.get("avatar"),
                    "verified": bool(user["email_verified"]) if email else False, "email": email}
            return _json(200, body)
        if provider == "x":
            data = {"id": user["id"], "name": user.get("name"), "username": login,
                    "profile_image_url": user.get("avatar")}
            fields = q.get("user.fields", "").split(",")
            if email and "confirmed_email" in fields:
                data["confirmed_email"] = email
            return _json(200, {"data": data})
        if provider == "facebook":
            wanted = _graph_fields(q.get("fields", "id,name"))
            body = {"id": user["id"]}
            if "name" in wanted:
                body["name"] = user.get("name")
            if "email" in wanted and email:
                body["email"] = email
            if "picture" in wanted:
                body["picture"] = {"data": {"url": user.get("avatar"), "is_silhouette": False}}
            return _json(200, body)
        return _json(404, {"error": "not_found"})

    def _dispatch(self, method, path, q, form, headers):
        parts = path.split("/", 2)  # "", provider, rest
        if len(parts) < 3 or parts[1] not in PROVIDERS:
            return _json(404, {"error": "not_found"})
        provider, route = parts[1], "/" + parts[2]
        if method == "GET" and route == "/authorize":
            return self._authorize(provider, q)
        if route == "/token":
            if method != "POST":
                return _json(405, {"error": "invalid_request"})
            return self._token(provider, form, headers)
        if method == "GET" and route in ("/jwks", "/keys"):
            return _json(200, self.jwks())
        if method == "GET" and (route == USERINFO_PATHS.get(provider) or (provider == "github" and route == "/user/emails")):
            return self._userinfo(provider, route, q, headers)
        return _json(404, {"error": "not_found"})


# --------------------------------------------------------------------------- HTTP plumbing


def _json(status, body, headers=None):
    h = {"Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store"}
    h.update(headers or {})
    return status, h, json.dumps(body).encode("utf-8")


def _redirect(location):
    return 302, {"Location": location, "Cache-Control": "no-store"}, b""


def _with_query(url, params):
    parts = urllib.parse.urlsplit(url)
    query = parts.query + ("&" if parts.query else "") + urllib.parse.urlencode(params)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _single(pairs):
    """parse_qsl pairs as a dict (the first value of a repeated name wins)."""
    out = {}
    for k, v in pairs:
        out.setdefault(k, v)
    return out


def _graph_fields(spec):
    """Top-level names of a Graph API `fields` value: "id,name,picture.type(large){url}" -> {id, name, picture}."""
    names, depth, current = set(), 0, ""
    for ch in spec:
        if ch in "({":
            depth += 1
        elif ch in ")}":
            depth -= 1
        elif ch == "," and depth == 0:
            names.add(current.split(".")[0].strip())
            current = ""
            continue
        if depth == 0 and ch not in ")}":
            current += ch
    names.add(current.split(".")[0].strip())
    return {n for n in names if n}


def _make_handler(provider):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 15  # idle keep-alive connections are dropped after this

        def log_message(self, *args):  # quiet; `provider.requests` is the log
            pass

        def _body(self):
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                data = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return data
                    data += self.rfile.read(size)
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _handle(self, method):
            split = urllib.parse.urlsplit(self.path)
            path = urllib.parse.unquote(split.path)
            q = _single(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
            body = self._body() if method == "POST" else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            form = {}
            if method == "POST":
                form = _single(urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
            provider._log(method, path, form if method == "POST" else q, headers)
            try:
                status, h, data = provider._dispatch(method, path, q, form, headers)
            except Exception as e:  # noqa: BLE001 - a test provider answers 500 rather than dropping the connection
                status, h, data = _json(500, {"error": "server_error", "error_description": repr(e)})
            self.send_response(status)
            for k, v in h.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(data)

        def do_GET(self):
            self._handle("GET")

        def do_POST(self):
            self._handle("POST")

    return Handler
