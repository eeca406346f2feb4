"""The e-mail flows of the auth API, against a real SMTP receiver (mailbox.Mailbox, aiosmtpd on loopback):
verification by code and by link, password reset by code and by link, OTP sign-in, enumeration safety, the
per-address send limit, STARTTLS + AUTH delivery, an unreachable SMTP server, and the event log (no code or
token in clear, replay --verify).

Every request goes through `call()`, which uses no cookie jar. The module's server sends to the module's
mailbox and has API_BASE_URL set to its own address, so the links in the mails point back at it. Settings are
changed with ConfigChange, which restores the previous ones (the server is shared by the tests). Every code and
link token received is remembered in RECEIVED; the event-log test looks for all of them."""

import datetime as dt
from email.utils import getaddresses, parseaddr
import json
import re
import time
import urllib.parse
import uuid

import pytest
import requests

from conftest import HTTP_TIMEOUT, assert_error, free_port, run_cli
from mailbox import SMTP_FROM, Mailbox, body_text, extract_code, extract_link

COOKIE = "insforge_refresh_token"
PASSWORD = "Correct-horse-42"
NEW_PASSWORD = "Battery-staple-77"
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "change-this-password"
LIMITS = {"RATE_LIMIT_AUTH_PER_MINUTE": "100000", "RATE_LIMIT_EMAIL_PER_HOUR": "1000"}
ALLOWED = "https://app.example.test/**"
APP_URL = "https://app.example.test/auth/done"
EVIL_URL = "https://evil.example.net/auth/done"
SENT_MESSAGE = re.compile(r"^If your email is registered, we have sent you .+\. Please check your inbox\.$")
REFUSAL = "The code is invalid or has expired"
SEND_ENDPOINTS = ["send-verification", "send-reset-password", "send-otp"]

# (label, value) of every code and link token a test received: none may appear in the event log.
RECEIVED = []


# --------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def mailbox():
    box = Mailbox(starttls=False, auth=None).start()
    yield box
    box.stop()


def start_server(deployment, box_env, name, **extra):
    env = {**box_env, "ADMIN_EMAIL": ADMIN_EMAIL, "ADMIN_PASSWORD": ADMIN_PASSWORD, **LIMITS, **extra}
    s = deployment.server(name=name, start=False, **env)
    s.extra_env["API_BASE_URL"] = s.base
    s.start()
    return s


@pytest.fixture(scope="module")
def server(deployment, mailbox):
    return start_server(deployment, mailbox.server_env(), "email")


def call(server, method, path, key=None, headers=None, **kw):
    """One request without a cookie jar. `key`: None, "admin" (the admin key) or a literal token."""
    h = dict(headers or {})
    if key == "admin":
        key = server.admin_key
    if key is not None:
        h.setdefault("Authorization", f"Bearer {key}")
    kw.setdefault("timeout", HTTP_TIMEOUT)
    r = requests.request(method, server.url(path), headers=h, **kw)
    assert r.headers.get("X-Request-Id"), (method, path, r.status_code, dict(r.headers))
    return r


def email_post(server, endpoint, body, params=None):
    return call(server, "POST", f"/api/auth/email/{endpoint}", json=body, params=params)


def new_email(prefix="mail"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


def sign_up(server, email, password=PASSWORD, client_type="mobile", **extra):
    params = {"client_type": client_type} if client_type else None
    return call(server, "POST", "/api/auth/users", params=params, json={"email": email, "password": password, **extra})


def sign_up_ok(server, email, password=PASSWORD, **kw):
    r = sign_up(server, email, password, **kw)
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()


def sign_in(server, email, password=PASSWORD):
    return call(server, "POST", "/api/auth/sessions", params={"client_type": "mobile"},
                json={"email": email, "password": password})


def otp_sign_in(server, email, otp):
    return call(server, "POST", "/api/auth/sessions", params={"client_type": "mobile"},
                json={"method": "otp", "email": email, "otp": otp})


def verify(server, email, otp):
    return email_post(server, "verify", {"email": email, "otp": otp}, params={"client_type": "mobile"})


def refresh(server, token):
    return call(server, "POST", "/api/auth/refresh", json={"refreshToken": token})


def admin_user(server, uid):
    r = call(server, "GET", f"/api/auth/users/{uid}", key="admin")
    assert r.status_code == 200, r.text
    return r.json()


def get_config(server):
    r = call(server, "GET", "/api/auth/config", key="admin")
    assert r.status_code == 200, r.text
    return r.json()


class ConfigChange:
    """Applies a config patch and restores the whole previous config afterwards (the server is shared)."""

    def __init__(self, server, patch):
        self.server, self.patch = server, patch

    def __enter__(self):
        self.before = get_config(self.server)
        r = call(self.server, "PUT", "/api/auth/config", key="admin", json=self.patch)
        assert r.status_code == 200, r.text
        return r.json()

    def __exit__(self, *exc):
        r = call(self.server, "PUT", "/api/auth/config", key="admin", json=self.before)
        assert r.status_code == 200, r.text
        assert get_config(self.server) == self.before


def assert_sent(r):
    """The one answer of every send endpoint: 202 {success: true, message: "If your email is registered..."}."""
    assert r.status_code == 202, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"success", "message"}, body
    assert body["success"] is True, body
    assert SENT_MESSAGE.match(body["message"]), body
    return body


def mail_count(box, address):
    return len(box.messages_to(address))


def next_mail(box, address, mark, timeout=10):
    """The first message to `address` after the first `mark` ones (waits up to `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        msgs = box.messages_to(address)
        if len(msgs) > mark:
            return msgs[mark]
        if time.monotonic() > deadline:
            raise AssertionError(f"no new message to {address!r} within {timeout}s "
                                 f"(had {mark}; mailbox: {[(m.envelope_to, m['Subject']) for m in box.messages]})")
        time.sleep(0.05)


def assert_no_new_mail(box, mark_total, wait=1.5):
    """No message at all arrived in `box` after the first `mark_total` (sends are done within the request;
    the wait covers a server that would send in the background)."""
    time.sleep(wait)
    extra = box.messages[mark_total:]
    assert not extra, [(m.envelope_to, m["Subject"]) for m in extra]


def code_of(msg, label):
    code = extract_code(msg)
    assert re.fullmatch(r"\d{6}", code), code
    RECEIVED.append((label, code))
    return code


def link_of(msg, label, server, path):
    link = extract_link(msg)
    assert link.startswith(f"{server.base}{path}?"), (link, server.base)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query, keep_blank_values=True)
    assert len(query.get("token", [])) == 1 and query["token"][0], link
    RECEIVED.append((label, query["token"][0]))
    return link, query


def send_and_get_code(server, box, endpoint, address, label):
    mark = mail_count(box, address)
    assert_sent(email_post(server, endpoint, {"email": address}))
    return code_of(next_mail(box, address, mark), label)


def unverified_user(server, box, email=None):
    """Signs up with requireEmailVerification on (verifyEmailMethod code); returns (email, user, code of the mail)."""
    email = email or new_email("unverified")
    mark = mail_count(box, email)
    with ConfigChange(server, {"requireEmailVerification": True, "verifyEmailMethod": "code"}):
        body = sign_up_ok(server, email)
    assert body["user"]["emailVerified"] is False, body
    return email, body["user"], code_of(next_mail(box, email, mark), "sign-up verification code")


def wrong_codes(right, n):
    out, i = [], 0
    while len(out) < n:
        c = f"{(int(right) + 1 + i * 7919) % 1_000_000:06d}"
        if c != right:
            out.append(c)
        i += 1
    return out


def redirect_query(r, expected_base):
    assert r.status_code == 302, (r.status_code, r.text)
    loc = r.headers["Location"]
    parts = urllib.parse.urlsplit(loc)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == expected_base, loc
    return {k: v[0] if len(v) == 1 else v for k, v in urllib.parse.parse_qs(parts.query, keep_blank_values=True).items()}


def assert_session(body, email):
    assert set(body) >= {"user", "accessToken", "refreshToken"}, body
    assert body["user"]["email"].lower() == email.lower(), body
    assert isinstance(body["accessToken"], str) and body["accessToken"].count(".") == 2, body
    assert isinstance(body["refreshToken"], str) and body["refreshToken"], body


# --------------------------------------------------------------------------- input and enumeration safety


@pytest.mark.parametrize("endpoint", SEND_ENDPOINTS)
@pytest.mark.parametrize("body", [{"email": "not-an-email"}, {"email": "a@"}, {"email": ""}, {}, {"email": 42}],
                         ids=["no-at", "no-domain", "empty", "missing", "number"])
def test_send_endpoints_reject_bad_email(server, mailbox, endpoint, body):
    mark = len(mailbox.messages)
    assert_error(email_post(server, endpoint, body), 400, "INVALID_INPUT")
    assert len(mailbox.messages) == mark


@pytest.mark.parametrize("endpoint", SEND_ENDPOINTS)
def test_send_endpoints_are_enumeration_safe(server, mailbox, endpoint):
    known, _, _ = unverified_user(server, mailbox)
    unknown = new_email("nobody")
    with ConfigChange(server, {"requireEmailVerification": True}):
        mark = mail_count(mailbox, known)
        r_known = email_post(server, endpoint, {"email": known})
        assert_sent(r_known)
        msg = next_mail(mailbox, known, mark)
        code_of(msg, f"{endpoint} code (enumeration test)")

        total = len(mailbox.messages)
        r_unknown = email_post(server, endpoint, {"email": unknown})
        assert_sent(r_unknown)
        assert (r_unknown.status_code, r_unknown.json()) == (r_known.status_code, r_known.json())
        assert_no_new_mail(mailbox, total)
        assert mail_count(mailbox, unknown) == 0


def test_send_verification_to_a_verified_account_sends_nothing(server, mailbox):
    email = new_email("verified")
    body = sign_up_ok(server, email)
    assert body["user"]["emailVerified"] is True, body
    total = len(mailbox.messages)
    r = email_post(server, "send-verification", {"email": email})
    assert_sent(r)
    r_unknown = email_post(server, "send-verification", {"email": new_email("nobody")})
    assert r_unknown.json() == r.json()
    assert_no_new_mail(mailbox, total)


# --------------------------------------------------------------------------- the mails themselves


@pytest.mark.parametrize("endpoint,subject", [
    ("send-verification", r"verif"),
    ("send-reset-password", r"reset|password"),
    ("send-otp", r"sign.?in|log.?in|code"),
])
def test_mail_headers_and_bodies(server, mailbox, endpoint, subject):
    email, _, _ = unverified_user(server, mailbox)
    with ConfigChange(server, {"requireEmailVerification": True}):
        mark = mail_count(mailbox, email)
        assert_sent(email_post(server, endpoint, {"email": email}))
        msg = next_mail(mailbox, email, mark)
    assert mail_count(mailbox, email) == mark + 1
    assert parseaddr(msg["From"])[1] == SMTP_FROM, msg["From"]
    assert msg.envelope_from == SMTP_FROM, msg.envelope_from
    assert [a.lower() for a in msg.envelope_to] == [email.lower()], msg.envelope_to
    assert [a.lower() for _, a in getaddresses(msg.get_all("To", []))] == [email.lower()], msg["To"]
    assert re.search(subject, msg["Subject"], re.I), msg["Subject"]
    assert msg.is_multipart(), msg.get_content_type()
    assert msg.get_body(preferencelist=("plain",)) is not None, msg.get_content_type()
    assert msg.get_body(preferencelist=("html",)) is not None, msg.get_content_type()
    assert msg["Date"] and msg["Message-ID"], dict(msg.items())
    code = code_of(msg, f"{endpoint} code (mail test)")
    assert code in body_text(msg, ("plain",)), body_text(msg, ("plain",))
    assert code in body_text(msg, ("html",)), body_text(msg, ("html",))


# --------------------------------------------------------------------------- verification by code


def test_sign_up_with_required_verification_sends_a_code_and_no_session(server, mailbox):
    email = new_email("required")
    mark = mail_count(mailbox, email)
    with ConfigChange(server, {"requireEmailVerification": True, "verifyEmailMethod": "code"}):
        r = sign_up(server, email, client_type=None)  # web: would set a cookie if it started a session
        assert r.status_code == 200, (r.status_code, r.text)
        body = r.json()
        assert body["accessToken"] is None, body
        assert body["requireEmailVerification"] is True, body
        assert body["user"]["emailVerified"] is False, body
        assert body["user"]["email"] == email, body
        assert not body.get("refreshToken") and not body.get("csrfToken"), body
        assert not [c for c in r.raw.headers.getlist("Set-Cookie") if c.startswith(COOKIE + "=")], r.headers
        code = code_of(next_mail(mailbox, email, mark), "sign-up code")
        assert re.search(r"verif", next_mail(mailbox, email, mark)["Subject"], re.I)

        body403 = assert_error(sign_in(server, email), 403, "FORBIDDEN")
        assert body403["message"] == "Email verification required", body403
        assert admin_user(server, body["user"]["id"])["emailVerified"] is False

        v = verify(server, email, code)
        assert v.status_code == 200, (v.status_code, v.text)
        session = v.json()
        assert_session(session, email)
        assert session["user"]["emailVerified"] is True, session
        assert session["user"]["id"] == body["user"]["id"], session
        me = call(server, "GET", "/api/auth/sessions/current", key=session["accessToken"])
        assert me.status_code == 200 and me.json()["user"]["id"] == body["user"]["id"], me.text
        assert refresh(server, session["refreshToken"]).status_code == 200
        assert admin_user(server, body["user"]["id"])["emailVerified"] is True
        r2 = sign_in(server, email)
        assert r2.status_code == 200, r2.text


def test_verify_with_a_wrong_code_is_refused(server, mailbox):
    email, _, code = unverified_user(server, mailbox)
    body = assert_error(verify(server, email, wrong_codes(code, 1)[0]), 400, "INVALID_INPUT")
    assert body["message"] == REFUSAL, body
    # codes are bound to their address: the right code with another address is refused too
    other, _, _ = unverified_user(server, mailbox)
    assert assert_error(verify(server, other, code), 400, "INVALID_INPUT")["message"] == REFUSAL
    assert assert_error(verify(server, new_email("nobody"), code), 400, "INVALID_INPUT")["message"] == REFUSAL
    r = verify(server, email, code)
    assert r.status_code == 200, r.text
    assert r.json()["user"]["emailVerified"] is True


def test_verification_code_is_single_use(server, mailbox):
    email, _, code = unverified_user(server, mailbox)
    assert verify(server, email, code).status_code == 200
    body = assert_error(verify(server, email, code), 400, "INVALID_INPUT")
    assert body["message"] == REFUSAL, body


def test_verification_code_allows_four_wrong_guesses(server, mailbox):
    email, _, code = unverified_user(server, mailbox)
    for guess in wrong_codes(code, 4):
        assert_error(verify(server, email, guess), 400, "INVALID_INPUT")
    r = verify(server, email, code)
    assert r.status_code == 200, (r.status_code, r.text)


def test_verification_code_dies_after_five_wrong_guesses(server, mailbox):
    email, user, code = unverified_user(server, mailbox)
    for guess in wrong_codes(code, 5):
        assert_error(verify(server, email, guess), 400, "INVALID_INPUT")
    body = assert_error(verify(server, email, code), 400, "INVALID_INPUT")
    assert body["message"] == REFUSAL, body
    assert admin_user(server, user["id"])["emailVerified"] is False
    # a new code works
    fresh = send_and_get_code(server, mailbox, "send-verification", email, "fresh verification code")
    r = verify(server, email, fresh)
    assert r.status_code == 200, (r.status_code, r.text)


def test_fifty_parallel_wrong_guesses_count_five_attempts(server, mailbox, deployment):
    """Guesses sent together are counted one after another: exactly five are judged and recorded, the rest are
    refused unheard, and the right code sent among them does not get through."""
    import concurrent.futures

    email, user, code = unverified_user(server, mailbox)
    guesses = wrong_codes(code, 49) + [code]
    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(lambda g: verify(server, email, g), guesses))
    statuses = sorted(r.status_code for r in answers)
    rejected = deployment.db.sql("SELECT count(*) FROM system.events e JOIN auth.codes c ON e.stream_id = 'authcode-' || c.id "
                                 f"WHERE lower(c.email) = lower('{email}') AND e.type = 'AuthCodeRejected'")
    if 200 in statuses:
        # The right code was judged among the first five: then at most four wrong ones were counted before it.
        assert statuses.count(200) == 1 and int(rejected) <= 4, (statuses, rejected)
    else:
        assert rejected == "5", rejected
        assert admin_user(server, user["id"])["emailVerified"] is False
        assert_error(verify(server, email, code), 400, "INVALID_INPUT")


def test_newer_verification_code_replaces_the_older(server, mailbox):
    email, _, first = unverified_user(server, mailbox)
    for _ in range(5):  # (a new code equal to the old one, one chance in a million, proves nothing)
        second = send_and_get_code(server, mailbox, "send-verification", email, "second verification code")
        if second != first:
            break
    assert second != first
    body = assert_error(verify(server, email, first), 400, "INVALID_INPUT")
    assert body["message"] == REFUSAL, body
    r = verify(server, email, second)
    assert r.status_code == 200, (r.status_code, r.text)


def test_verify_rejects_bad_input(server):
    assert_error(email_post(server, "verify", {"email": new_email(), "otp": 123456}), 400, "INVALID_INPUT")
    assert_error(email_post(server, "verify", {"email": "not-an-email", "otp": "123456"}), 400, "INVALID_INPUT")
    assert_error(email_post(server, "verify", {"email": new_email()}), 400, "INVALID_INPUT")


# --------------------------------------------------------------------------- verification by link


def test_verification_by_link_answers_json(server, mailbox):
    email = new_email("link")
    mark = mail_count(mailbox, email)
    with ConfigChange(server, {"requireEmailVerification": True, "verifyEmailMethod": "link"}):
        up = sign_up_ok(server, email)
        assert up["accessToken"] is None and up["user"]["emailVerified"] is False, up
        msg = next_mail(mailbox, email, mark)
        assert re.search(r"verif", msg["Subject"], re.I), msg["Subject"]
        link, query = link_of(msg, "verification link token", server, "/api/auth/email/verify-link")
        assert "redirectTo" not in query, link
        assert_error(sign_in(server, email), 403, "FORBIDDEN")

        r = call(server, "GET", link[len(server.base):], allow_redirects=False)
        assert r.status_code == 200, (r.status_code, r.text)
        body = r.json()
        assert body["success"] is True and isinstance(body["message"], str) and body["message"], body
        assert body["user"]["email"] == email and body["user"]["emailVerified"] is True, body
        assert admin_user(server, up["user"]["id"])["emailVerified"] is True
        assert sign_in(server, email).status_code == 200

        # used: refused
        assert_error(call(server, "GET", link[len(server.base):], allow_redirects=False), 400, "INVALID_INPUT")
    # unknown token, no redirect: 400
    assert_error(call(server, "GET", "/api/auth/email/verify-link", params={"token": "x" * 43}), 400, "INVALID_INPUT")


def test_verification_by_link_redirects(server, mailbox):
    email, user, _ = unverified_user(server, mailbox)
    with ConfigChange(server, {"verifyEmailMethod": "link", "allowedRedirectUrls": [ALLOWED]}):
        mark = mail_count(mailbox, email)
        assert_sent(email_post(server, "send-verification", {"email": email, "redirectTo": APP_URL}))
        link, query = link_of(next_mail(mailbox, email, mark), "verification link token (redirect)", server,
                              "/api/auth/email/verify-link")
        assert query.get("redirectTo") == [APP_URL], link

        r = call(server, "GET", link[len(server.base):], allow_redirects=False)
        q = redirect_query(r, APP_URL)
        assert q.get("insforge_status") == "success", q
        assert q.get("insforge_type") == "verify_email", q
        assert admin_user(server, user["id"])["emailVerified"] is True

        again = redirect_query(call(server, "GET", link[len(server.base):], allow_redirects=False), APP_URL)
        assert again.get("insforge_status") == "error", again
        assert again.get("insforge_type") == "verify_email", again
        assert again.get("insforge_error"), again

        bogus = call(server, "GET", "/api/auth/email/verify-link", params={"token": "y" * 43, "redirectTo": APP_URL},
                     allow_redirects=False)
        q = redirect_query(bogus, APP_URL)
        assert (q.get("insforge_status"), q.get("insforge_type")) == ("error", "verify_email"), q
        assert q.get("insforge_error"), q


# --------------------------------------------------------------------------- password reset by code


def test_password_reset_by_code(server, mailbox):
    email = new_email("reset")
    up = sign_up_ok(server, email)
    second = sign_in(server, email)
    assert second.status_code == 200, second.text
    refresh_tokens = [up["refreshToken"], second.json()["refreshToken"]]

    with ConfigChange(server, {"resetPasswordMethod": "code"}):
        mark = mail_count(mailbox, email)
        assert_sent(email_post(server, "send-reset-password", {"email": email}))
        msg = next_mail(mailbox, email, mark)
        assert re.search(r"reset|password", msg["Subject"], re.I), msg["Subject"]
        code = code_of(msg, "reset code")

        wrong = assert_error(email_post(server, "exchange-reset-password-token",
                                        {"email": email, "code": wrong_codes(code, 1)[0]}), 400, "INVALID_INPUT")
        assert wrong["message"] == REFUSAL, wrong
        before = dt.datetime.now(dt.timezone.utc)
        ex = email_post(server, "exchange-reset-password-token", {"email": email, "code": code})
        assert ex.status_code == 200, (ex.status_code, ex.text)
        token, expires = ex.json()["token"], ex.json()["expiresAt"]
        assert isinstance(token, str) and len(token) >= 16 and token != code, ex.json()
        RECEIVED.append(("reset token", token))
        expires_at = dt.datetime.fromisoformat(expires.replace("Z", "+00:00"))
        assert expires_at.tzinfo is not None, expires
        assert before + dt.timedelta(minutes=10) < expires_at < before + dt.timedelta(minutes=20), (before, expires)
        # the code was used up by the exchange
        assert_error(email_post(server, "exchange-reset-password-token", {"email": email, "code": code}), 400,
                     "INVALID_INPUT")
        # the sessions still work before the reset
        assert sign_in(server, email).status_code == 200

        # a weak password is refused before the token is touched
        weak = assert_error(email_post(server, "reset-password", {"newPassword": "x", "otp": token}), 400,
                            "INVALID_INPUT")
        assert "password" in weak["message"].lower() or "6" in weak["message"], weak
        # an unknown token is refused
        assert_error(email_post(server, "reset-password", {"newPassword": NEW_PASSWORD, "otp": "z" * 43}), 400,
                     "INVALID_INPUT")

        r = email_post(server, "reset-password", {"newPassword": NEW_PASSWORD, "otp": token})
        assert r.status_code == 200, (r.status_code, r.text)
        body = r.json()
        assert body["success"] is True and isinstance(body["message"], str) and body["message"], body

        assert_error(sign_in(server, email, PASSWORD), 401, "AUTH_INVALID_CREDENTIALS")
        ok = sign_in(server, email, NEW_PASSWORD)
        assert ok.status_code == 200, ok.text
        # single use
        again = assert_error(email_post(server, "reset-password", {"newPassword": "Another-pass-99", "otp": token}),
                             400, "INVALID_INPUT")
        assert again["message"] == REFUSAL, again
        assert sign_in(server, email, NEW_PASSWORD).status_code == 200
        # every earlier session was revoked
        for t in refresh_tokens:
            assert_error(refresh(server, t), 401, "AUTH_UNAUTHORIZED")
        # the session started after the reset is fine
        assert refresh(server, ok.json()["refreshToken"]).status_code == 200


def test_reset_code_is_bound_to_its_address(server, mailbox):
    a, b = new_email("reseta"), new_email("resetb")
    sign_up_ok(server, a)
    sign_up_ok(server, b)
    code = send_and_get_code(server, mailbox, "send-reset-password", a, "reset code (binding)")
    assert_error(email_post(server, "exchange-reset-password-token", {"email": b, "code": code}), 400, "INVALID_INPUT")
    r = email_post(server, "exchange-reset-password-token", {"email": a, "code": code})
    assert r.status_code == 200, r.text
    RECEIVED.append(("reset token (binding)", r.json()["token"]))


def test_reset_code_dies_after_five_wrong_guesses(server, mailbox):
    email = new_email("resetguess")
    sign_up_ok(server, email)
    code = send_and_get_code(server, mailbox, "send-reset-password", email, "reset code (guesses)")
    for guess in wrong_codes(code, 5):
        assert_error(email_post(server, "exchange-reset-password-token", {"email": email, "code": guess}), 400,
                     "INVALID_INPUT")
    assert_error(email_post(server, "exchange-reset-password-token", {"email": email, "code": code}), 400,
                 "INVALID_INPUT")
    assert sign_in(server, email).status_code == 200


# --------------------------------------------------------------------------- password reset by link


def test_password_reset_by_link(server, mailbox):
    email = new_email("resetlink")
    up = sign_up_ok(server, email)
    with ConfigChange(server, {"resetPasswordMethod": "link", "allowedRedirectUrls": [ALLOWED]}):
        total = len(mailbox.messages)
        assert_error(email_post(server, "send-reset-password", {"email": email}), 400, "INVALID_INPUT")
        assert_error(email_post(server, "send-reset-password", {"email": email, "redirectTo": EVIL_URL}), 400,
                     "INVALID_INPUT")
        assert len(mailbox.messages) == total

        mark = mail_count(mailbox, email)
        r_known = email_post(server, "send-reset-password", {"email": email, "redirectTo": APP_URL})
        assert_sent(r_known)
        r_unknown = email_post(server, "send-reset-password", {"email": new_email("nobody"), "redirectTo": APP_URL})
        assert r_unknown.status_code == 202 and r_unknown.json() == r_known.json(), r_unknown.text
        msg = next_mail(mailbox, email, mark)
        assert re.search(r"reset|password", msg["Subject"], re.I), msg["Subject"]
        link, query = link_of(msg, "reset link token", server, "/api/auth/email/reset-password-link")
        assert query.get("redirectTo") == [APP_URL], link
        token = query["token"][0]

        q = redirect_query(call(server, "GET", link[len(server.base):], allow_redirects=False), APP_URL)
        assert q.get("token") == token, q
        assert q.get("insforge_status") == "ready", q
        assert q.get("insforge_type") == "reset_password", q

        r = email_post(server, "reset-password", {"newPassword": NEW_PASSWORD, "otp": token})
        assert r.status_code == 200, (r.status_code, r.text)
        assert r.json()["success"] is True, r.json()
        assert_error(sign_in(server, email, PASSWORD), 401, "AUTH_INVALID_CREDENTIALS")
        assert sign_in(server, email, NEW_PASSWORD).status_code == 200
        assert_error(refresh(server, up["refreshToken"]), 401, "AUTH_UNAUTHORIZED")
        assert_error(email_post(server, "reset-password", {"newPassword": "Another-pass-99", "otp": token}), 400,
                     "INVALID_INPUT")

        # the used link now sends the browser to the app with an error
        q = redirect_query(call(server, "GET", link[len(server.base):], allow_redirects=False), APP_URL)
        assert (q.get("insforge_status"), q.get("insforge_type")) == ("error", "reset_password"), q
        assert "token" not in q, q


# --------------------------------------------------------------------------- OTP sign-in


def test_otp_sign_in(server, mailbox):
    email, user, _ = unverified_user(server, mailbox)
    with ConfigChange(server, {"requireEmailVerification": True}):
        assert_error(sign_in(server, email), 403, "FORBIDDEN")
        mark = mail_count(mailbox, email)
        assert_sent(email_post(server, "send-otp", {"email": email}))
        msg = next_mail(mailbox, email, mark)
        otp = code_of(msg, "sign-in code")

        assert_error(otp_sign_in(server, email, wrong_codes(otp, 1)[0]), 401, "AUTH_INVALID_CREDENTIALS")
        r = otp_sign_in(server, email, otp)
        assert r.status_code == 200, (r.status_code, r.text)
        body = r.json()
        assert_session(body, email)
        assert body["user"]["id"] == user["id"], body
        assert body["user"]["emailVerified"] is True, body
        me = call(server, "GET", "/api/auth/sessions/current", key=body["accessToken"])
        assert me.status_code == 200 and me.json()["user"]["id"] == user["id"], me.text
        assert refresh(server, body["refreshToken"]).status_code == 200
        # used up
        assert_error(otp_sign_in(server, email, otp), 401, "AUTH_INVALID_CREDENTIALS")
        # the address is now verified: the password works despite requireEmailVerification
        assert admin_user(server, user["id"])["emailVerified"] is True
        assert sign_in(server, email).status_code == 200


def test_otp_sign_in_failures(server, mailbox):
    email = new_email("otpfail")
    sign_up_ok(server, email)
    assert_error(otp_sign_in(server, email, "123456"), 401, "AUTH_INVALID_CREDENTIALS")  # none was sent
    assert_error(otp_sign_in(server, new_email("nobody"), "123456"), 401, "AUTH_INVALID_CREDENTIALS")
    otp = send_and_get_code(server, mailbox, "send-otp", email, "sign-in code (failures)")
    other = new_email("otpother")
    sign_up_ok(server, other)
    assert_error(otp_sign_in(server, other, otp), 401, "AUTH_INVALID_CREDENTIALS")
    # a verification code is not a sign-in code
    v_email, _, v_code = unverified_user(server, mailbox)
    assert_error(otp_sign_in(server, v_email, v_code), 401, "AUTH_INVALID_CREDENTIALS")
    assert otp_sign_in(server, email, otp).status_code == 200


# --------------------------------------------------------------------------- other deployments


def test_email_rate_limit_per_address(deployment_factory, mailbox):
    d = deployment_factory()
    s = start_server(d, mailbox.server_env(), "email-limited", RATE_LIMIT_EMAIL_PER_HOUR="3")
    email = new_email("limited")
    sign_up_ok(s, email)
    mark = mail_count(mailbox, email)
    for _ in range(3):
        assert_sent(email_post(s, "send-otp", {"email": email}))
    next_mail(mailbox, email, mark + 2)
    r = email_post(s, "send-otp", {"email": email})
    assert_error(r, 429, "TOO_MANY_REQUESTS")
    retry = r.headers.get("Retry-After")
    assert retry is not None and re.fullmatch(r"\d+", retry) and 0 < int(retry) <= 3600, dict(r.headers)
    # the limit is per address: the same address in other letters is the same address
    assert_error(email_post(s, "send-reset-password", {"email": email.upper()}), 429, "TOO_MANY_REQUESTS")
    time.sleep(1)
    assert mail_count(mailbox, email) == mark + 3
    # another address is not affected
    other = new_email("limited-other")
    sign_up_ok(s, other)
    assert_sent(email_post(s, "send-otp", {"email": other}))
    code_of(next_mail(mailbox, other, 0), "sign-in code (rate limit)")


def test_delivery_over_starttls_with_auth(deployment_factory):
    with Mailbox(starttls=True, auth=("mailer", "mail-password")) as box:
        env = box.server_env()
        assert env.get("SMTP_CA_FILE") and env.get("SMTP_USER") == "mailer", env
        d = deployment_factory()
        s = start_server(d, env, "email-tls")
        email = new_email("tls")
        sign_up_ok(s, email)
        assert_sent(email_post(s, "send-otp", {"email": email}))
        msg = next_mail(box, email, 0)
        assert msg.tls is True, "the message did not arrive over TLS"
        assert msg.auth_login == "mailer", msg.auth_login
        assert ("mailer", True) in [(login, ok) for _, login, ok in box.auth_attempts], box.auth_attempts
        otp = code_of(msg, "sign-in code (tls)")
        r = otp_sign_in(s, email, otp)
        assert r.status_code == 200, (r.status_code, r.text)


def test_unreachable_smtp_still_answers_202(deployment_factory):
    d = deployment_factory()
    env = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(free_port()), "SMTP_FROM": SMTP_FROM}
    s = start_server(d, env, "email-unreachable")
    email = new_email("nosmtp")
    sign_up_ok(s, email)
    for endpoint in ("send-otp", "send-reset-password"):
        started = time.monotonic()
        r = email_post(s, endpoint, {"email": email})
        assert_sent(r)
        assert time.monotonic() - started < 10, endpoint
        r_unknown = email_post(s, endpoint, {"email": new_email("nobody")})
        assert r_unknown.status_code == 202 and r_unknown.json() == r.json(), r_unknown.text
    with ConfigChange(s, {"requireEmailVerification": True}):
        pending = new_email("nosmtp-pending")
        up = sign_up(s, pending)
        assert up.status_code == 200, (up.status_code, up.text)
        assert up.json()["requireEmailVerification"] is True and up.json()["accessToken"] is None, up.json()
        assert_sent(email_post(s, "send-verification", {"email": pending}))
    assert s.alive()
    assert call(s, "GET", "/api/health").status_code == 200


# --------------------------------------------------------------------------- the event log


def test_codes_and_tokens_are_not_in_the_event_log(server, mailbox):
    # this test's own activity, so that it checks something even when run alone
    email, _, v_code = unverified_user(server, mailbox)
    assert verify(server, email, v_code).status_code == 200
    otp = send_and_get_code(server, mailbox, "send-otp", email, "sign-in code (events)")
    assert otp_sign_in(server, email, otp).status_code == 200
    r_code = send_and_get_code(server, mailbox, "send-reset-password", email, "reset code (events)")
    ex = email_post(server, "exchange-reset-password-token", {"email": email, "code": r_code})
    assert ex.status_code == 200, ex.text
    RECEIVED.append(("reset token (events)", ex.json()["token"]))
    assert email_post(server, "reset-password", {"newPassword": NEW_PASSWORD, "otp": ex.json()["token"]}).status_code == 200

    events = server.all_events()
    dumped = json.dumps(events)
    exported = server.get("/api/events/export").text
    assert exported, "empty export"
    # the flows are in the log (as events), just not their secrets
    assert re.search(r"AuthCode", dumped), sorted({e["type"] for e in events})
    assert len(RECEIVED) >= 5, RECEIVED
    for label, value in RECEIVED:
        if re.fullmatch(r"\d{6}", value):
            pattern = re.compile(r"(?<![0-9A-Za-z])" + value + r"(?![0-9A-Za-z])")
            assert not pattern.search(dumped), f"{label} {value} appears in the event log"
            assert not pattern.search(exported), f"{label} {value} appears in the exported log"
        else:
            assert value not in dumped, f"{label} appears in the event log"
            assert value not in exported, f"{label} appears in the exported log"
            assert urllib.parse.quote(value, safe="") not in dumped, f"{label} (url-encoded) appears in the event log"


def test_replay_verify_after_email_flows(deployment, server, mailbox):
    server.wait_projection_caught_up()
    env = {**mailbox.server_env(), "ADMIN_EMAIL": ADMIN_EMAIL, "ADMIN_PASSWORD": ADMIN_PASSWORD, **LIMITS}
    p = run_cli(["events", "replay", "--verify"], deployment.cli_env(**env), timeout=120)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert "DIFF" not in p.stdout, out
