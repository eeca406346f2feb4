"""A real SMTP receiver (aiosmtpd) on loopback, for the e-mails our server sends.

    box = Mailbox().start()                      # plain SMTP, no auth
    box = Mailbox(auth=("u", "p")).start()       # AUTH PLAIN/LOGIN required (allowed without TLS)
    box = Mailbox(starttls=True).start()         # STARTTLS offered and required; box.ca_file is the CA to trust
    env = box.server_env()                       # SMTP_HOST, SMTP_PORT, SMTP_FROM, [SMTP_USER, SMTP_PASSWORD], [SMTP_CA_FILE]
    msg = box.wait_for("a@example.test")         # newest message to that address (bounded wait)
    code, link = extract_code(msg), extract_link(msg)

Each received message is an `email.message.EmailMessage` with extra attributes: `envelope_from` (str),
`envelope_to` (list of str), `tls` (bool: the session had switched to TLS), `auth_login` (str or None),
`received_at` (time.time()).
"""

import datetime as dt
import email
import email.policy
import email.utils
import html
import ipaddress
import logging
import os
import re
import shutil
import socket
import ssl
import tempfile
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SMTP_FROM = "noreply@example.test"

# aiosmtpd logs a deprecation warning on every successful AUTH (it sets its own legacy login_data); keep test logs clean.
logging.getLogger("mail.log").setLevel(logging.ERROR)
START_ATTEMPTS = 5


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_test_pki(directory, hosts=("localhost",), ips=("127.0.0.1",), days=7):
    """A throwaway CA and a server certificate it signed (EC P-256) for `hosts` and `ips`, written as PEM files
    into `directory`; returns (ca_file, cert_file, key_file)."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "insforge e2e test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName(h) for h in hosts] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0] if hosts else ips[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False, key_agreement=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = os.path.join(directory, "ca.pem")
    cert_file = os.path.join(directory, "server.pem")
    key_file = os.path.join(directory, "server.key")
    with open(ca_file, "wb") as f:
        f.write(ca_cert.public_bytes(serialization.Encoding.PEM))
    with open(cert_file, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_file, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return ca_file, cert_file, key_file


class _Handler:
    def __init__(self, box):
        self.box = box

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        msg.envelope_from = envelope.mail_from
        msg.envelope_to = list(envelope.rcpt_tos)
        msg.tls = session.ssl is not None
        auth_data = getattr(session, "auth_data", None)
        login = getattr(auth_data, "login", None)
        msg.auth_login = login.decode("utf-8", "replace") if isinstance(login, bytes) else login
        msg.received_at = time.time()
        self.box._received(msg)
        return "250 Message accepted for delivery"


class _Controller(Controller):
    """aiosmtpd's Controller; `auth_without_tls=True` offers AUTH on a plain connection.

    That is `auth_require_tls=False`, set after construction: passed to the constructor, aiosmtpd warns about it
    on every connection (a UserWarning from its event-loop thread, which pytest would report)."""

    def __init__(self, handler, auth_without_tls=False, **kwargs):
        super().__init__(handler, **kwargs)
        self.auth_without_tls = auth_without_tls

    def factory(self):
        smtp = super().factory()
        if self.auth_without_tls:
            smtp._auth_require_tls = False
        return smtp


class Mailbox:
    """An SMTP server on 127.0.0.1 that keeps every message it accepts (see the module docstring)."""

    def __init__(self, starttls=False, auth=None, host="127.0.0.1"):
        self.starttls = starttls
        self.auth = auth
        self.host = host
        self.port = None
        self.ca_file = None
        self.messages = []
        self.auth_attempts = []  # (mechanism, login, success)
        self._cond = threading.Condition()
        self._controller = None
        self._tmpdir = None

    # ---- lifecycle

    def start(self):
        kwargs = {}
        if self.starttls:
            self._tmpdir = tempfile.mkdtemp(prefix="mailbox-tls-")
            self.ca_file, cert_file, key_file = make_test_pki(self._tmpdir)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(cert_file, key_file)
            kwargs.update(tls_context=context, require_starttls=True)
        if self.auth is not None:
            kwargs.update(authenticator=self._authenticate, auth_required=True)
            if not self.starttls:
                kwargs["auth_without_tls"] = True
        last = None
        for _ in range(START_ATTEMPTS):  # the free port may be taken between probing and binding
            port = _free_port()
            controller = _Controller(_Handler(self), hostname=self.host, port=port, ready_timeout=10,
                                     server_hostname="localhost", **kwargs)
            try:
                controller.start()
            except Exception as e:  # noqa: BLE001
                last = e
                continue
            self._controller, self.port = controller, port
            return self
        self._cleanup()
        raise RuntimeError(f"SMTP receiver did not start: {last!r}")

    def stop(self):
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        self._cleanup()

    def _cleanup(self):
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- configuration

    def server_env(self):
        """What our server needs to send here."""
        env = {"SMTP_HOST": self.host, "SMTP_PORT": str(self.port), "SMTP_FROM": SMTP_FROM}
        if self.auth is not None:
            env["SMTP_USER"], env["SMTP_PASSWORD"] = self.auth
        if self.ca_file is not None:
            env["SMTP_CA_FILE"] = self.ca_file
        return env

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = False
        login = None
        if mechanism in ("PLAIN", "LOGIN") and isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode("utf-8", "replace")
            password = auth_data.password.decode("utf-8", "replace")
            ok = (login, password) == tuple(self.auth)
        with self._cond:
            self.auth_attempts.append((mechanism, login, ok))
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    # ---- messages

    def _received(self, msg):
        with self._cond:
            self.messages.append(msg)
            self._cond.notify_all()

    def clear(self):
        with self._cond:
            self.messages.clear()
            self.auth_attempts.clear()

    def messages_to(self, address):
        """Messages whose envelope recipients (or To/Cc) include `address` (case-insensitive), oldest first."""
        want = address.lower()
        with self._cond:
            return [m for m in self.messages if want in _recipients(m)]

    def wait_for(self, to_address, timeout=10, predicate=None):
        """The newest message to `to_address` (that satisfies `predicate(msg)`), waiting up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        want = to_address.lower()
        with self._cond:
            while True:
                for m in reversed(self.messages):
                    if want in _recipients(m) and (predicate is None or predicate(m)):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(m.envelope_to, m.get("Subject")) for m in self.messages]
                    raise AssertionError(f"no message to {to_address!r} within {timeout}s; mailbox has {seen}")
                self._cond.wait(min(left, 0.25))


def _recipients(msg):
    out = {a.lower() for a in msg.envelope_to}
    for header in ("To", "Cc"):
        for _, addr in email.utils.getaddresses(msg.get_all(header, [])):
            if addr:
                out.add(addr.lower())
    return out


def body_text(msg, preference=("plain", "html")):
    """The decoded text of the message's preferred body part (quoted-printable, base64, multipart handled)."""
    part = msg.get_body(preferencelist=preference)
    if part is None:
        raise AssertionError(f"message has no {'/'.join(preference)} body: {msg.get_content_type()}")
    text = part.get_content()
    if part.get_content_subtype() == "html":
        text = html.unescape(text)
    return text


def _bodies(msg):
    """The plain body, then the html one (whichever exist)."""
    out = []
    for kind in ("plain", "html"):
        if msg.get_body(preferencelist=(kind,)) is not None:
            out.append(body_text(msg, (kind,)))
    if not out:
        out.append(body_text(msg))
    return out


CODE_RE = re.compile(r"(?<![\d#])(\d{6})(?!\d)")
LINK_RE = re.compile(r"https?://[^\s<>\"')\]]+")


def extract_code(msg):
    """The 6-digit code in the message's text body (plain preferred, then html)."""
    for text in _bodies(msg):
        m = CODE_RE.search(text)
        if m:
            return m.group(1)
    raise AssertionError(f"no 6-digit code in {msg.get('Subject')!r}: {_bodies(msg)[0][:500]!r}")


def extract_link(msg):
    """The first http(s) URL in the message's text body (plain preferred, then html)."""
    for text in _bodies(msg):
        m = LINK_RE.search(text)
        if m:
            return m.group(0).rstrip(".,;:!?")
    raise AssertionError(f"no link in {msg.get('Subject')!r}: {_bodies(msg)[0][:500]!r}")
