"""Storage: buckets and objects through the API, on the local folder and on S3 (moto's S3 server).

Every test runs once per provider. Bytes are checked where they are kept: files under STORAGE_DIR for
the local provider, objects in moto read back with boto3 for S3. Access to objects is row-level
security on storage.objects evaluated as the caller; every change is an event on `bucket-<name>`.
"""

import hashlib
import http.client
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

import boto3
import pytest
import requests

from conftest import assert_error, free_port, run_cli, tail

S3_BUCKET = "insforge-e2e"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000") + b"\x00" * 64


# --------------------------------------------------------------------------- moto and the servers


class Moto:
    """moto's S3 server on a loopback port, and a boto3 client for it."""

    def __init__(self, root):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(root, "moto.log")
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                assert self.proc.poll() is None, "moto exited: " + tail(self.log_path)
                time.sleep(0.1)
        self.s3 = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                               region_name="us-east-1")
        self.s3.create_bucket(Bucket=S3_BUCKET)

    def keys(self, prefix=""):
        out = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=S3_BUCKET, Prefix=prefix):
            out += [o["Key"] for o in page.get("Contents", [])]
        return out

    def close(self):
        self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    m = Moto(str(tmp_path_factory.mktemp("moto")))
    yield m
    m.close()


class Stack:
    """One server on its own database, with the provider under test and a way to look at the bytes."""

    def __init__(self, provider, deployment, moto):
        self.provider = provider
        self.deployment = deployment
        self.moto = moto
        self.storage_dir = os.path.join(deployment.data_dir, "objects")
        env = {"STORAGE_DIR": self.storage_dir, "STORAGE_ORPHAN_GRACE_SECONDS": "8", "STORAGE_SWEEP_INTERVAL_SECONDS": "1"}
        if provider == "s3":
            env.update({"AWS_S3_BUCKET": S3_BUCKET, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": moto.endpoint, "AWS_S3_PREFIX": "p-" + secrets.token_hex(3)})
            self.prefix = env["AWS_S3_PREFIX"] + "/"
        self.server = deployment.server(**env)

    def stored(self, bucket, key):
        """Every stored copy of an object's bytes: {location: bytes}."""
        if self.provider == "local":
            folder, name = os.path.split(os.path.join(self.storage_dir, bucket, key))
            out = {}
            if os.path.isdir(folder):
                for entry in os.listdir(folder):
                    path = os.path.join(folder, entry)
                    if entry.startswith(name + "@") and re.fullmatch(r"[0-9a-f-]{36}", entry[len(name) + 1:]) and os.path.isfile(path):
                        with open(path, "rb") as f:
                            out[path] = f.read()
            return out
        prefix = f"{self.prefix}{bucket}/{key}/"
        return {k: self.moto.s3.get_object(Bucket=S3_BUCKET, Key=k)["Body"].read()
                for k in self.moto.keys(prefix) if "/" not in k[len(prefix):]}

    def all_stored(self, bucket):
        if self.provider == "local":
            out = []
            for root, _, files in os.walk(os.path.join(self.storage_dir, bucket)):
                out += [os.path.join(root, f) for f in files]
            return out
        return self.moto.keys(f"{self.prefix}{bucket}/")

    def put_stray(self, bucket, key, data):
        """Bytes that no object points at (what a crash between storing and recording leaves)."""
        version = "00000000-0000-4000-8000-" + secrets.token_hex(6)
        if self.provider == "local":
            path = os.path.join(self.storage_dir, bucket, key + "@" + version)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
            old = time.time() - 3600
            os.utime(path, (old, old))
            return path
        k = f"{self.prefix}{bucket}/{key}/{version}"
        self.moto.s3.put_object(Bucket=S3_BUCKET, Key=k, Body=data)
        return k

    def stray_exists(self, location):
        if self.provider == "local":
            return os.path.exists(location)
        return location in self.moto.keys(location)


@pytest.fixture(scope="module", params=["local", "s3"])
def stack(request, deployment_factory, moto):
    return Stack(request.param, deployment_factory(), moto)


@pytest.fixture(scope="module")
def server(stack):
    return stack.server


def sign_up(server):
    r = server.post("/api/auth/users", key=None, params={"client_type": "mobile"},
                    json={"email": f"st-{secrets.token_hex(4)}@example.com", "password": "storage-pass-1"})
    assert r.status_code == 200, r.text
    body = r.json()
    return body["accessToken"], body["user"]["id"]


@pytest.fixture(scope="module")
def alice(server):
    return sign_up(server)


@pytest.fixture(scope="module")
def bob(server):
    return sign_up(server)


def new_bucket(server, public=False):
    name = "b" + secrets.token_hex(4)
    r = server.post("/api/storage/buckets", json={"bucketName": name, "isPublic": public})
    assert r.status_code == 201, r.text
    return name


def obj(bucket, key=""):
    return f"/api/storage/buckets/{bucket}/objects" + (f"/{key}" if key else "")


def put(server, bucket, key, data, key_as="admin", content_type=None, multipart=True, filename=None):
    if multipart:
        return server.request("PUT", obj(bucket, key), key=key_as,
                              files={"file": (filename or key.split("/")[-1], data, content_type or "application/octet-stream")})
    headers = {"Content-Type": content_type} if content_type else {}
    return server.request("PUT", obj(bucket, key), key=key_as, data=data, headers=headers)


def md5_etag(data):
    return '"' + hashlib.md5(data).hexdigest() + '"'


# --------------------------------------------------------------------------- buckets


def test_bucket_lifecycle(server, alice):
    name = "pics-" + secrets.token_hex(3)
    r = server.post("/api/storage/buckets", json={"bucketName": name, "isPublic": False})
    assert r.status_code == 201, r.text
    assert r.json()["bucketName"] == name and r.json()["isPublic"] is False and r.json()["message"]
    assert_error(server.post("/api/storage/buckets", json={"bucketName": name}), 409, "STORAGE_ALREADY_EXISTS")
    listed = {b["name"]: b for b in server.get("/api/storage/buckets").json()}
    assert listed[name]["public"] is False and re.match(r"\d{4}-\d\d-\d\dT", listed[name]["createdAt"])

    r = server.request("PATCH", f"/api/storage/buckets/{name}", json={"isPublic": True})
    assert r.status_code == 200 and r.json()["isPublic"] is True, r.text
    assert {b["name"]: b for b in server.get("/api/storage/buckets").json()}[name]["public"] is True
    assert_error(server.request("PATCH", f"/api/storage/buckets/{name}", json={}), 400)
    assert_error(server.request("PATCH", "/api/storage/buckets/nope-" + secrets.token_hex(3), json={"isPublic": True}), 404,
                 "STORAGE_NOT_FOUND")

    r = server.request("DELETE", f"/api/storage/buckets/{name}")
    assert r.status_code == 200, r.text
    assert name not in {b["name"] for b in server.get("/api/storage/buckets").json()}
    assert_error(server.request("DELETE", f"/api/storage/buckets/{name}"), 404, "STORAGE_NOT_FOUND")
    # The name is free again.
    assert server.post("/api/storage/buckets", json={"bucketName": name}).status_code == 201


@pytest.mark.parametrize("name", ["bad name", "a.b", "é", "x" * 64, ""])
def test_bad_bucket_names(server, name):
    before = server.get("/api/storage/buckets").json()
    assert_error(server.post("/api/storage/buckets", json={"bucketName": name}), 400, "STORAGE_INVALID_PARAMETER")
    assert server.get("/api/storage/buckets").json() == before


def test_bucket_bodies_and_roles(server, alice, anon_key):
    assert_error(server.post("/api/storage/buckets", data="{nope", headers={"Content-Type": "application/json"}), 400, "INVALID_INPUT")
    assert_error(server.post("/api/storage/buckets", json={"isPublic": True}), 400, "INVALID_INPUT")
    assert_error(server.post("/api/storage/buckets", json={"bucketName": 5}), 400, "INVALID_INPUT")
    assert_error(server.post("/api/storage/buckets", key=None, json={"bucketName": "x1"}), 401, "AUTH_INVALID_CREDENTIALS")
    assert_error(server.post("/api/storage/buckets", key=alice[0], json={"bucketName": "x1"}), 403, "FORBIDDEN")
    assert_error(server.get("/api/storage/buckets", key=anon_key), 403, "FORBIDDEN")
    assert_error(server.post("/api/storage/buckets", key="ik_" + "0" * 64, json={"bucketName": "x1"}), 401, "AUTH_INVALID_API_KEY")


def test_deleting_a_bucket_with_objects_needs_force(stack, server):
    bucket = new_bucket(server)
    for i in range(3):
        assert put(server, bucket, f"d/{i}.txt", b"x" * (i + 1)).status_code == 201
    assert len(stack.all_stored(bucket)) == 3
    r = server.request("DELETE", f"/api/storage/buckets/{bucket}")
    assert_error(r, 409, "STORAGE_BUCKET_NOT_EMPTY")
    assert server.get(obj(bucket, "d/0.txt")).status_code == 200  # nothing was removed
    r = server.request("DELETE", f"/api/storage/buckets/{bucket}", params={"force": "true"})
    assert r.status_code == 200, r.text
    assert stack.all_stored(bucket) == []
    assert_error(server.get(obj(bucket)), 404, "STORAGE_NOT_FOUND")
    assert_error(server.get(obj(bucket, "d/0.txt")), 404, "STORAGE_NOT_FOUND")


# --------------------------------------------------------------------------- objects


def test_upload_and_download_round_trip(stack, server):
    bucket = new_bucket(server)
    data = os.urandom(300_000)
    r = put(server, bucket, "docs/2024/report.bin", data)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["key"] == "docs/2024/report.bin" and body["bucket"] == bucket and body["size"] == len(data)
    assert body["etag"] == md5_etag(data) and body["uploadedBy"] is None
    assert body["url"] == server.base + f"/api/storage/buckets/{bucket}/objects/docs%2F2024%2Freport.bin"
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", body["uploadedAt"])

    r = server.get(obj(bucket, "docs/2024/report.bin"))
    assert r.status_code == 200 and r.content == data
    assert r.headers["ETag"] == md5_etag(data) and r.headers["Content-Length"] == str(len(data))
    assert r.headers["Accept-Ranges"] == "bytes" and r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Content-Type"] == "application/octet-stream"
    # The key may come percent-encoded in one segment, as the `url` field has it.
    assert server.get(obj(bucket, "docs%2F2024%2Freport.bin")).content == data
    assert requests.get(body["url"], headers={"Authorization": f"Bearer {server.admin_key}"}, timeout=10).content == data
    assert list(stack.stored(bucket, "docs/2024/report.bin").values()) == [data]
    listed = server.get(obj(bucket)).json()["data"]
    assert [(o["key"], o["uploadedAt"], o["etag"]) for o in listed] == [(body["key"], body["uploadedAt"], body["etag"])]

    # Replacing: 200, new bytes, and only the new bytes are kept.
    new = b"second version"
    r = put(server, bucket, "docs/2024/report.bin", new, multipart=False, content_type="application/octet-stream")
    assert r.status_code == 200, r.text
    assert r.json()["size"] == len(new)
    assert server.get(obj(bucket, "docs/2024/report.bin")).content == new
    assert list(stack.stored(bucket, "docs/2024/report.bin").values()) == [new]


def test_raw_body_empty_file_and_unicode_keys(server):
    bucket = new_bucket(server)
    r = put(server, bucket, "empty.txt", b"", multipart=False)
    assert r.status_code == 201 and r.json()["size"] == 0, r.text
    r = server.get(obj(bucket, "empty.txt"))
    assert r.status_code == 200 and r.content == b"" and r.headers["Content-Length"] == "0"
    r = put(server, bucket, "empty-part.txt", b"")
    assert r.status_code == 201 and r.json()["size"] == 0, r.text

    key = "dossiers/résumé 2024 (final).txt"
    r = server.request("PUT", obj(bucket, urllib.parse.quote(key)), files={"file": ("r.txt", "ça marche".encode(), "text/plain")})
    assert r.status_code == 201, r.text
    assert r.json()["key"] == key
    assert r.json()["url"].endswith("/objects/" + urllib.parse.quote(key, safe="!~*'()"))
    r = server.get(obj(bucket, urllib.parse.quote(key)))
    assert r.content == "ça marche".encode()
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9%202024%20%28final%29.txt" in r.headers["Content-Disposition"]


def test_post_generates_a_key_or_uses_the_given_one(server, alice):
    bucket = new_bucket(server)
    r = server.post(obj(bucket), files={"file": ("My Photo.png", PNG, "image/png")})
    assert r.status_code == 201, r.text
    key = r.json()["key"]
    assert re.fullmatch(r"My-Photo-\d{13}-[a-z0-9]{6}\.png", key), key
    assert r.json()["mimeType"] == "image/png"
    assert server.get(obj(bucket, key)).content == PNG
    second = server.post(obj(bucket), files={"file": ("My Photo.png", PNG, "image/png")}).json()["key"]
    assert second != key

    # The Swift SDK's direct upload: POST to the key, multipart field `file`, as a user.
    r = server.post(obj(bucket, "users/a/avatar.png"), key=alice[0], files={"file": ("users/a/avatar.png", PNG, "image/png")})
    assert r.status_code == 201, r.text
    assert r.json()["key"] == "users/a/avatar.png" and r.json()["uploadedBy"] == alice[1]

    assert_error(server.post(obj(bucket), files={"other": ("x.txt", b"x")}), 400, "STORAGE_INVALID_PARAMETER")
    assert_error(server.post("/api/storage/buckets/nope-x/objects", files={"file": ("x.txt", b"x")}), 404, "STORAGE_NOT_FOUND")


def test_ranges_and_conditional_requests(server):
    bucket = new_bucket(server)
    data = b"0123456789abcdef"
    etag = put(server, bucket, "r.bin", data).json()["etag"]
    path = obj(bucket, "r.bin")
    cases = [("bytes=0-4", 206, b"01234", "bytes 0-4/16"), ("bytes=10-", 206, data[10:], "bytes 10-15/16"),
             ("bytes=-3", 206, b"def", "bytes 13-15/16"), ("bytes=5-1000", 206, data[5:], "bytes 5-15/16"),
             ("bytes=5-2", 200, data, None), ("items=0-1", 200, data, None), ("bytes=0-1,4-5", 200, data, None)]
    for header, status, body, content_range in cases:
        r = server.get(path, headers={"Range": header})
        assert (r.status_code, r.content, r.headers.get("Content-Range")) == (status, body, content_range), header
    for header in ["bytes=16-", "bytes=100-200", "bytes=-0"]:
        r = server.get(path, headers={"Range": header})
        assert r.status_code == 416, header
        assert r.headers["Content-Range"] == "bytes */16"
        assert r.json()["statusCode"] == 416

    r = server.get(path, headers={"If-None-Match": etag})
    assert r.status_code == 304 and r.content == b"" and r.headers["ETag"] == etag
    assert server.get(path, headers={"If-None-Match": '"other", ' + etag}).status_code == 304
    assert server.get(path, headers={"If-None-Match": '"other"'}).status_code == 200
    r = server.request("HEAD", path)
    assert r.status_code == 200 and r.headers["Content-Length"] == "16" and r.content == b""


@pytest.mark.parametrize("name,data,declared,expected,attachment", [
    ("photo.txt", PNG, "text/plain", "image/png", False),
    ("page.txt", b"<!DOCTYPE html><html><script>alert(1)</script></html>", "text/plain", "text/html", True),
    ("logo.png", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "image/png", "image/svg+xml", True),
    ("app.js", b"console.log('hi')", None, "text/javascript", True),
    ("doc.pdf", b"%PDF-1.7\n%...", "application/octet-stream", "application/pdf", False),
    ("notes.txt", b"just text", None, "text/plain", False),
])
def test_types_come_from_the_bytes_and_active_content_is_an_attachment(server, name, data, declared, expected, attachment):
    bucket = new_bucket(server, public=True)
    files = {"file": (name, data, declared)} if declared else {"file": (name, data)}
    r = server.request("PUT", obj(bucket, name), files=files)
    assert r.status_code == 201, r.text
    assert r.json()["mimeType"] == expected
    r = server.get(obj(bucket, name), key=None)
    assert r.headers["Content-Type"] == expected and r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Content-Disposition"].startswith("attachment" if attachment else "inline"), r.headers["Content-Disposition"]


def raw_request(server, method, path, body=b"", key="admin"):
    """Sends `path` exactly as written (requests would resolve `.` and `..` segments first); returns (status, json)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    headers = {"Content-Type": "application/octet-stream"}
    if key:
        headers["Authorization"] = f"Bearer {server.admin_key if key == 'admin' else key}"
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, json.loads(data) if data else None


@pytest.mark.parametrize("raw_key", ["a/../b", "..", "../../etc/passwd", "%2Fleading", "a//b", "a/./b", "nul%00byte", "back%5Cslash",
                                     "x" * 1025, ("y" * 201) + "/z", "trailing/", "bad%zzencoding"])
def test_bad_keys_are_refused_and_nothing_is_written(stack, server, raw_key):
    bucket = new_bucket(server)
    for method in ["PUT", "POST", "GET", "DELETE"]:
        status, body = raw_request(server, method, f"/api/storage/buckets/{bucket}/objects/{raw_key}", b"data")
        assert (status, body and body["error"]) == (400, "STORAGE_INVALID_PARAMETER"), (method, body)
    status, body = raw_request(server, "GET", f"/api/storage/buckets/{bucket}/download-strategy/objects/{raw_key}")
    assert status == 400, body
    assert server.get(obj(bucket)).json()["pagination"]["total"] == 0
    assert stack.all_stored(bucket) == []
    if stack.provider == "local":
        outside = os.path.dirname(stack.storage_dir)
        assert not os.path.exists(os.path.join(outside, "etc")) and not os.path.exists(os.path.join(stack.storage_dir, "b"))


def test_encoded_dot_dot_cannot_escape(stack, server):
    bucket = new_bucket(server)
    for raw in ["%2E%2E/%2E%2E/secret", "a/%2e%2e/%2e%2e/x", "..%2F..%2Fx"]:
        assert_error(server.request("PUT", f"/api/storage/buckets/{bucket}/objects/{raw}", data=b"x"), 400, "STORAGE_INVALID_PARAMETER")
    assert_error(server.request("PUT", "/api/storage/buckets/..%2F..%2Fetc/objects/x", data=b"x"), 400, "STORAGE_INVALID_PARAMETER")


def test_malformed_uploads(server):
    bucket = new_bucket(server)
    headers = {"Content-Type": "multipart/form-data; boundary=XYZ"}
    truncated = b"--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nhello"
    assert_error(server.request("PUT", obj(bucket, "t.txt"), data=truncated, headers=headers), 400, "STORAGE_INVALID_PARAMETER")
    assert_error(server.request("PUT", obj(bucket, "t.txt"), data=b"garbage", headers=headers), 400, "STORAGE_INVALID_PARAMETER")
    assert_error(server.request("PUT", obj(bucket, "t.txt"), data=b"x", headers={"Content-Type": "multipart/form-data"}), 400,
                 "STORAGE_INVALID_PARAMETER")
    only_fields = b"--XYZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n--XYZ--\r\n"
    r = server.request("PUT", obj(bucket, "t.txt"), data=only_fields, headers=headers)
    assert_error(r, 400, "STORAGE_INVALID_PARAMETER")
    assert "File is required" in r.json()["message"]
    assert_error(server.get(obj(bucket, "t.txt")), 404, "STORAGE_NOT_FOUND")
    assert_error(server.request("PUT", "/api/storage/buckets/nope-y/objects/t.txt", data=b"x"), 404, "STORAGE_NOT_FOUND")


def test_size_limit_is_enforced_while_streaming(stack, server):
    bucket = new_bucket(server)
    assert_error(server.request("PUT", "/api/storage/config", json={"maxFileSizeMb": 0}), 400, "STORAGE_INVALID_PARAMETER")
    assert_error(server.request("PUT", "/api/storage/config", json={}), 400, "STORAGE_INVALID_PARAMETER")
    r = server.request("PUT", "/api/storage/config", json={"maxFileSizeMb": 1})
    assert r.status_code == 200 and r.json()["maxFileSize"] == 1 << 20, r.text
    try:
        assert server.get("/api/storage/config").json()["maxFileSize"] == 1 << 20

        def chunks(total, size=64 * 1024):
            sent = 0
            while sent < total:
                n = min(size, total - sent)
                sent += n
                yield b"z" * n

        # No Content-Length (chunked): refused once the limit is passed.
        r = server.request("PUT", obj(bucket, "big.bin"), data=chunks((1 << 20) + 1), timeout=30)
        assert_error(r, 413, "STORAGE_INVALID_PARAMETER")
        # Declared too long: refused before reading.
        r = server.request("PUT", obj(bucket, "big2.bin"), data=b"z" * (3 << 20), timeout=30)
        assert_error(r, 413, "STORAGE_INVALID_PARAMETER")
        r = server.request("PUT", obj(bucket, "big3.bin"), files={"file": ("big3.bin", b"z" * ((1 << 20) + 10))}, timeout=30)
        assert_error(r, 413, "STORAGE_INVALID_PARAMETER")
        for key in ["big.bin", "big2.bin", "big3.bin"]:
            assert_error(server.get(obj(bucket, key)), 404, "STORAGE_NOT_FOUND")
        assert stack.all_stored(bucket) == []
        if stack.provider == "s3":
            assert stack.moto.s3.list_multipart_uploads(Bucket=S3_BUCKET).get("Uploads", []) == []
        # Exactly the limit is fine.
        r = server.request("PUT", obj(bucket, "exact.bin"), data=chunks(1 << 20), timeout=30)
        assert r.status_code == 201 and r.json()["size"] == 1 << 20, r.text
    finally:
        assert server.request("PUT", "/api/storage/config", json={"maxFileSize": 10 << 20}).status_code == 200


def test_large_upload_streams_in_parts(stack, server):
    bucket = new_bucket(server)
    data = os.urandom((9 << 20) + 12345)  # more than one 8 MiB S3 part
    r = server.request("PUT", obj(bucket, "large.bin"), data=data, timeout=60)
    assert r.status_code == 201, r.text
    assert r.json()["etag"] == md5_etag(data)
    assert hashlib.md5(server.get(obj(bucket, "large.bin"), timeout=60).content).digest() == hashlib.md5(data).digest()
    assert list(stack.stored(bucket, "large.bin").values()) == [data]
    r = server.get(obj(bucket, "large.bin"), headers={"Range": f"bytes={8 << 20}-{(8 << 20) + 99}"})
    assert r.status_code == 206 and r.content == data[8 << 20:(8 << 20) + 100]


def test_listing_with_prefix_search_and_pages(server):
    bucket = new_bucket(server)
    keys = ["a/1.txt", "a/2.txt", "a/b/3.txt", "b/4.txt", "Report_%_x.txt"]
    for k in keys:
        assert put(server, bucket, k, k.encode()).status_code == 201
    r = server.get(obj(bucket), params={"limit": 2})
    page = r.json()
    assert page["pagination"] == {"offset": 0, "limit": 2, "total": 5}
    assert [o["key"] for o in page["data"]] == sorted(keys)[:2]
    item = page["data"][0]
    assert set(item) >= {"key", "bucket", "size", "mimeType", "uploadedAt", "url"}
    all_keys = [o["key"] for off in range(0, 6, 2) for o in server.get(obj(bucket), params={"limit": 2, "offset": off}).json()["data"]]
    assert all_keys == sorted(keys)
    assert [o["key"] for o in server.get(obj(bucket), params={"prefix": "a/"}).json()["data"]] == ["a/1.txt", "a/2.txt", "a/b/3.txt"]
    assert [o["key"] for o in server.get(obj(bucket), params={"search": "REPORT_%"}).json()["data"]] == ["Report_%_x.txt"]
    assert server.get(obj(bucket), params={"search": "%"}).json()["pagination"]["total"] == 1  # % is literal
    assert server.get(obj(bucket), params={"prefix": "zzz"}).json() == {"data": [], "pagination": {"offset": 0, "limit": 100, "total": 0}}
    assert server.get(obj(bucket), params={"offset": 50}).json()["pagination"]["total"] == 5
    assert server.get(obj(bucket), params={"limit": 5000}).json()["pagination"]["limit"] == 1000
    assert_error(server.get(obj(bucket), params={"limit": "ten"}), 400, "STORAGE_INVALID_PARAMETER")
    assert_error(server.get("/api/storage/buckets/bad name/objects"), 400, "STORAGE_INVALID_PARAMETER")


def test_deleting_objects(stack, server):
    bucket = new_bucket(server)
    for k in ["x/1", "x/2", "x/3"]:
        assert put(server, bucket, k, k.encode()).status_code == 201
    r = server.request("DELETE", obj(bucket, "x/1"))
    assert r.status_code == 200 and r.json() == {"message": "Object deleted successfully"}, r.text
    assert_error(server.request("DELETE", obj(bucket, "x/1")), 404, "STORAGE_NOT_FOUND")
    assert_error(server.get(obj(bucket, "x/1")), 404, "STORAGE_NOT_FOUND")
    assert stack.stored(bucket, "x/1") == {}

    r = server.request("DELETE", obj(bucket), json={"keys": ["x/2", "x/3", "x/404", "../bad"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert sorted(body["deleted"]) == ["x/2", "x/3"] and body["notFound"] == ["x/404"]
    assert [f["key"] for f in body["failed"]] == ["../bad"]
    assert stack.all_stored(bucket) == []
    assert_error(server.request("DELETE", obj(bucket), json={"keys": []}), 400, "STORAGE_INVALID_PARAMETER")
    assert_error(server.request("DELETE", obj(bucket), json={"keys": "x"}), 400, "INVALID_INPUT")
    assert_error(server.request("DELETE", obj(bucket), data="nope", headers={"Content-Type": "application/json"}), 400, "INVALID_INPUT")


# --------------------------------------------------------------------------- access


def test_public_and_private_access(server, alice, bob, anon_key):
    public = new_bucket(server, public=True)
    private = new_bucket(server, public=False)
    assert put(server, public, "p.txt", b"public bytes").status_code == 201
    assert put(server, private, "admin.txt", b"admin bytes").status_code == 201

    # Public: readable and listable by anyone, credential or not.
    for who in [None, anon_key, alice[0]]:
        assert server.get(obj(public, "p.txt"), key=who).content == b"public bytes"
        assert server.get(obj(public), key=who).json()["pagination"]["total"] == 1
    # Private: no credential -> 401; the anon key and other users see nothing.
    assert_error(server.get(obj(private, "admin.txt"), key=None), 401, "AUTH_INVALID_CREDENTIALS")
    assert_error(server.get(obj(private), key=None), 401, "AUTH_INVALID_CREDENTIALS")
    for who in [anon_key, alice[0]]:
        assert_error(server.get(obj(private, "admin.txt"), key=who), 404, "STORAGE_NOT_FOUND")
        assert server.get(obj(private), key=who).json()["pagination"]["total"] == 0

    # The anon key cannot upload; users can, as themselves.
    assert_error(put(server, private, "anon.txt", b"x", key_as=anon_key), 403, "FORBIDDEN")
    assert_error(put(server, private, "anon.txt", b"x", key_as=None), 401, "AUTH_INVALID_CREDENTIALS")
    r = put(server, private, "alice/notes.txt", b"alice's", key_as=alice[0])
    assert r.status_code == 201 and r.json()["uploadedBy"] == alice[1], r.text

    # Owner and admin read it; bob and anon do not, and bob can neither overwrite nor delete it.
    assert server.get(obj(private, "alice/notes.txt"), key=alice[0]).content == b"alice's"
    assert server.get(obj(private, "alice/notes.txt")).content == b"alice's"
    assert_error(server.get(obj(private, "alice/notes.txt"), key=bob[0]), 404, "STORAGE_NOT_FOUND")
    assert_error(server.get(obj(private, "alice/notes.txt"), key=anon_key), 404, "STORAGE_NOT_FOUND")
    assert_error(put(server, private, "alice/notes.txt", b"bob was here", key_as=bob[0]), 403, "FORBIDDEN")
    assert_error(server.request("DELETE", obj(private, "alice/notes.txt"), key=bob[0]), 404, "STORAGE_NOT_FOUND")
    r = server.request("DELETE", obj(private), key=bob[0], json={"keys": ["alice/notes.txt"]})
    assert r.json()["deleted"] == [] and r.json()["notFound"] == ["alice/notes.txt"]
    assert_error(put(server, private, "admin.txt", b"overwrite", key_as=alice[0]), 403, "FORBIDDEN")
    assert server.get(obj(private, "alice/notes.txt")).content == b"alice's"

    # Listing as each caller: own objects only, admins everything.
    assert [o["key"] for o in server.get(obj(private), key=alice[0]).json()["data"]] == ["alice/notes.txt"]
    assert server.get(obj(private), key=bob[0]).json()["data"] == []
    assert server.get(obj(private)).json()["pagination"]["total"] == 2

    # The owner overwrites and deletes.
    assert put(server, private, "alice/notes.txt", b"v2", key_as=alice[0]).status_code == 200
    assert server.request("DELETE", obj(private, "alice/notes.txt"), key=alice[0]).status_code == 200
    assert_error(server.get(obj(private, "alice/notes.txt")), 404, "STORAGE_NOT_FOUND")

    # Making the bucket public opens it.
    assert server.request("PATCH", f"/api/storage/buckets/{private}", json={"isPublic": True}).status_code == 200
    assert server.get(obj(private, "admin.txt"), key=None).content == b"admin bytes"


def test_policies_can_be_changed_by_the_project(stack):
    """The defaults are ordinary policies: a project can replace them (here: users may read every object)."""
    server = stack.server
    db = stack.deployment.db
    bucket = new_bucket(server)
    alice, bob = sign_up(server), sign_up(server)
    assert put(server, bucket, "shared.txt", b"for everyone", key_as=alice[0]).status_code == 201
    assert_error(server.get(obj(bucket, "shared.txt"), key=bob[0]), 404, "STORAGE_NOT_FOUND")
    db.sql("CREATE POLICY users_read_all ON storage.objects FOR SELECT TO authenticated USING (true)")
    try:
        assert server.get(obj(bucket, "shared.txt"), key=bob[0]).content == b"for everyone"
    finally:
        db.sql("DROP POLICY users_read_all ON storage.objects")
    assert_error(server.get(obj(bucket, "shared.txt"), key=bob[0]), 404, "STORAGE_NOT_FOUND")


# --------------------------------------------------------------------------- strategies


def test_download_strategy(stack, server, alice, bob):
    private = new_bucket(server)
    public = new_bucket(server, public=True)
    assert put(server, private, "dir/secret.txt", b"top secret", key_as=alice[0]).status_code == 201
    assert put(server, public, "open.txt", b"open").status_code == 201

    r = server.get(f"/api/storage/buckets/{private}/download-strategy/objects/dir/secret.txt", key=alice[0],
                   params={"expiresIn": 120})
    assert r.status_code == 200, r.text
    assert r.headers["Cache-Control"] == "no-store"
    strategy = r.json()
    assert strategy["method"] == ("direct" if stack.provider == "local" else "presigned")
    assert strategy["expiresAt"]
    # Fetched with plain HTTP and no credential (the Swift SDK's way).
    assert requests.get(strategy["url"], timeout=10).content == b"top secret"

    # The deprecated POST form, with slashes in the key, as the Swift SDK sends it.
    r = server.post(f"/api/storage/buckets/{private}/objects/dir/secret.txt/download-strategy", key=alice[0], json={"expiresIn": 3600})
    assert r.status_code == 200, r.text
    assert requests.get(r.json()["url"], timeout=10).content == b"top secret"

    # Hidden from bob, unknown keys, bad expiries.
    assert_error(server.get(f"/api/storage/buckets/{private}/download-strategy/objects/dir/secret.txt", key=bob[0]), 404,
                 "STORAGE_NOT_FOUND")
    assert_error(server.get(f"/api/storage/buckets/{private}/download-strategy/objects/nope.txt"), 404, "STORAGE_NOT_FOUND")
    for bad in ["abc", "0", "604801"]:
        assert_error(server.get(f"/api/storage/buckets/{private}/download-strategy/objects/dir/secret.txt", params={"expiresIn": bad}),
                     400, "STORAGE_INVALID_PARAMETER")

    r = server.get(f"/api/storage/buckets/{public}/download-strategy/objects/open.txt", key=None)
    assert r.status_code == 200, r.text
    assert requests.get(r.json()["url"], timeout=10).content == b"open"
    if stack.provider == "local":
        assert r.json() == {"method": "direct", "url": server.base + f"/api/storage/buckets/{public}/objects/open.txt"}


def test_download_links_are_signed_and_expire(stack, server):
    bucket = new_bucket(server)
    assert put(server, bucket, "s.txt", b"signed").status_code == 201
    url = server.get(f"/api/storage/buckets/{bucket}/download-strategy/objects/s.txt", params={"expiresIn": 1}).json()["url"]
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert requests.get(url, timeout=10).content == b"signed"
    if stack.provider == "s3":
        # S3's own presigned GET: signed for exactly the requested lifetime (S3 checks it, moto does not).
        assert url.startswith(stack.moto.endpoint + f"/{S3_BUCKET}/{stack.prefix}{bucket}/s.txt/")
        assert query["X-Amz-Expires"] == "1" and query["X-Amz-SignedHeaders"] == "host"
        assert query["X-Amz-Credential"].startswith("testing/") and re.fullmatch(r"[0-9a-f]{64}", query["X-Amz-Signature"])
        return
    # Links through the API: the token binds bucket, key and expiry.
    tampered = url.replace("token=" + query["token"], "token=" + ("A" if query["token"][0] != "A" else "B") + query["token"][1:])
    assert_error(requests.get(tampered, timeout=10), 403, "STORAGE_PERMISSION_DENIED")
    assert_error(requests.get(url.replace("/objects/s.txt", "/objects/other.txt"), timeout=10), 403, "STORAGE_PERMISSION_DENIED")
    longer = url.replace("expires=" + query["expires"], "expires=" + str(int(query["expires"]) + 1000))
    assert_error(requests.get(longer, timeout=10), 403, "STORAGE_PERMISSION_DENIED")
    time.sleep(2.2)
    assert_error(requests.get(url, timeout=10), 403, "STORAGE_PERMISSION_DENIED")


def test_replacing_an_object_revokes_its_links(stack, server):
    """A link is signed for the version of the object it was made for (security review: a replaced file's old
    links kept working and served the new bytes)."""
    if stack.provider == "s3":
        pytest.skip("S3 presigned links are S3's; they reach the key, as S3 has it")
    bucket = new_bucket(server)
    assert put(server, bucket, "v.txt", b"first").status_code == 201
    url = server.get(f"/api/storage/buckets/{bucket}/download-strategy/objects/v.txt", params={"expiresIn": 3600}).json()["url"]
    assert requests.get(url, timeout=10).content == b"first"
    assert put(server, bucket, "v.txt", b"second").status_code in (200, 201)
    assert_error(requests.get(url, timeout=10), 403, "STORAGE_PERMISSION_DENIED")
    fresh = server.get(f"/api/storage/buckets/{bucket}/download-strategy/objects/v.txt", params={"expiresIn": 3600}).json()["url"]
    assert requests.get(fresh, timeout=10).content == b"second"


def test_upload_strategy_the_swift_sdk_way(stack, server, alice):
    bucket = new_bucket(server)
    key = "uploads/photo.png"
    r = server.post(f"/api/storage/buckets/{bucket}/upload-strategy", key=alice[0],
                    json={"filename": key, "contentType": "image/png", "size": len(PNG)})
    assert r.status_code == 200, r.text
    strategy = r.json()
    assert strategy["key"] == key
    if stack.provider == "local":
        assert strategy == {"method": "direct", "uploadUrl": server.base + f"/api/storage/buckets/{bucket}/objects/uploads%2Fphoto.png",
                            "key": key, "confirmRequired": False}
        # Swift POSTs the file to uploadUrl with its credential, then lists with the key as prefix.
        r = requests.post(strategy["uploadUrl"], headers={"Authorization": f"Bearer {alice[0]}"},
                          files={"file": (key, PNG, "image/png")}, timeout=10)
        assert r.status_code == 201, r.text
    else:
        assert strategy["method"] == "presigned" and strategy["confirmRequired"] is True
        assert strategy["confirmUrl"] == server.base + f"/api/storage/buckets/{bucket}/objects/uploads%2Fphoto.png/confirm-upload"
        fields = strategy["fields"]
        policy = json.loads(__import__("base64").b64decode(fields["policy"]))
        conditions = policy["conditions"]
        assert ["content-length-range", 0, len(PNG)] in conditions
        assert {"Content-Type": "image/png"} in conditions and fields["Content-Type"] == "image/png"
        assert {"key": fields["key"]} in conditions and fields["key"].startswith(stack.prefix + f"{bucket}/{key}/")
        # Swift posts the fields, then the file, with no Authorization header; then confirms itself.
        r = requests.post(strategy["uploadUrl"], data=fields, files={"file": ("file", PNG, "image/png")}, timeout=10)
        assert r.status_code in (200, 201, 204), r.text
        assert_error(server.get(obj(bucket, key)), 404, "STORAGE_NOT_FOUND")  # not an object until confirmed
        confirm = server.base + f"/api/storage/buckets/{bucket}/objects/{urllib.parse.quote(key, safe='')}/confirm-upload"
        r = requests.post(confirm, headers={"Authorization": f"Bearer {alice[0]}"}, json={"size": len(PNG), "contentType": "image/png"},
                          timeout=10)
        assert r.status_code == 201, r.text
        assert r.json()["uploadedBy"] == alice[1] and r.json()["etag"] == md5_etag(PNG)
        # Confirming again gives the object as it is.
        again = requests.post(confirm, headers={"Authorization": f"Bearer {alice[0]}"}, json={"size": len(PNG)}, timeout=10)
        assert again.status_code == 200 and again.json()["etag"] == md5_etag(PNG)
        # What we wrote is a plain S3 object.
        (s3_key,) = [k for k in stack.moto.keys(stack.prefix + f"{bucket}/{key}/")]
        assert stack.moto.s3.get_object(Bucket=S3_BUCKET, Key=s3_key)["Body"].read() == PNG
    listed = server.get(obj(bucket), key=alice[0], params={"prefix": key, "limit": 1}).json()["data"]
    assert [(o["key"], o["size"], o["mimeType"]) for o in listed] == [(key, len(PNG), "image/png")]
    assert server.get(obj(bucket, key), key=alice[0]).content == PNG

    assert_error(server.post(f"/api/storage/buckets/{bucket}/upload-strategy", key=alice[0], json={}), 400, "INVALID_INPUT")
    assert_error(server.post(f"/api/storage/buckets/{bucket}/upload-strategy", key=alice[0], json={"filename": "../x"}), 400,
                 "STORAGE_INVALID_PARAMETER")
    assert_error(server.post(f"/api/storage/buckets/{bucket}/upload-strategy", key=alice[0], json={"filename": "x", "size": 11 << 20}),
                 413, "STORAGE_INVALID_PARAMETER")
    assert_error(server.post("/api/storage/buckets/nope-z/upload-strategy", key=alice[0], json={"filename": "x"}), 404, "STORAGE_NOT_FOUND")
    assert_error(server.post(f"/api/storage/buckets/{bucket}/objects/never.txt/confirm-upload", key=alice[0], json={"size": 1}), 404,
                 "STORAGE_NOT_FOUND")


def test_confirming_uploads(stack, server):
    bucket = new_bucket(server)
    if stack.provider == "local":
        # Nothing is uploaded around the API: confirming gives the object as it is, or 404.
        assert put(server, bucket, "c.txt", b"here").status_code == 201
        r = server.post(f"/api/storage/buckets/{bucket}/objects/c.txt/confirm-upload", json={"size": 4})
        assert r.status_code == 200 and r.json()["key"] == "c.txt" and r.json()["size"] == 4, r.text
        assert_error(server.post(f"/api/storage/buckets/{bucket}/objects/none.txt/confirm-upload", json={"size": 4}), 404,
                     "STORAGE_NOT_FOUND")
        return
    assert server.request("PUT", "/api/storage/config", json={"maxFileSizeMb": 1}).status_code == 200
    try:
        strategy = server.post(f"/api/storage/buckets/{bucket}/upload-strategy", json={"filename": "big.bin", "size": 10}).json()
        # moto does not enforce the policy's content-length-range; the confirmation does.
        big = b"b" * ((1 << 20) + 1)
        r = requests.post(strategy["uploadUrl"], data=strategy["fields"], files={"file": ("file", big)}, timeout=30)
        assert r.status_code in (200, 201, 204), r.text
        assert_error(server.post(f"/api/storage/buckets/{bucket}/objects/big.bin/confirm-upload", json={"size": 10}), 413,
                     "STORAGE_INVALID_PARAMETER")
        assert stack.all_stored(bucket) == []
        assert_error(server.get(obj(bucket, "big.bin")), 404, "STORAGE_NOT_FOUND")
    finally:
        server.request("PUT", "/api/storage/config", json={"maxFileSize": 10 << 20})


# --------------------------------------------------------------------------- events, replay, crashes, orphans


def test_every_change_is_an_event_and_replay_verifies(stack, server, alice):
    bucket = new_bucket(server)
    assert put(server, bucket, "e.txt", b"event me", key_as=alice[0]).status_code == 201
    assert server.request("DELETE", obj(bucket, "e.txt"), key=alice[0]).status_code == 200
    assert server.request("PATCH", f"/api/storage/buckets/{bucket}", json={"isPublic": True}).status_code == 200
    events = server.all_events(stream=f"bucket-{bucket}")
    assert [e["type"] for e in events] == ["BucketCreated", "ObjectUploaded", "ObjectDeleted", "BucketUpdated"]
    up = events[1]["data"]
    assert (up["bucket"], up["key"], up["size"], up["mimeType"], up["etag"], up["uploadedBy"].lower()) == \
        (bucket, "e.txt", 8, "text/plain", md5_etag(b"event me"), alice[1])
    assert events[2]["data"]["version"] == up["version"]
    proc = run_cli(["events", "replay", "--verify"], stack.deployment.cli_env(), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_orphaned_bytes_are_swept(stack, server):
    bucket = new_bucket(server)
    assert put(server, bucket, "live.txt", b"keep me").status_code == 201
    stray = stack.put_stray(bucket, "live.txt", b"orphan")
    stray2 = stack.put_stray(bucket, "gone/never.txt", b"orphan too")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (stack.stray_exists(stray) or stack.stray_exists(stray2)):
        time.sleep(0.5)
    assert not stack.stray_exists(stray) and not stack.stray_exists(stray2)
    assert server.get(obj(bucket, "live.txt")).content == b"keep me"
    assert list(stack.stored(bucket, "live.txt").values()) == [b"keep me"]


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
def test_a_server_killed_mid_upload_leaves_no_object(stack, server, framing):
    """Chunked bodies go to S3 as a multipart upload, declared lengths as one streamed PUT: neither
    leaves an object (or bytes) behind when the server dies halfway."""
    bucket = new_bucket(server)
    assert server.request("PUT", "/api/storage/config", json={"maxFileSizeMb": 100}).status_code == 200
    started = threading.Event()

    def slow_body():  # 25 MB at about 3 MB/s; the kill comes after more than one 8 MiB part
        for i in range(400):
            if i == 150:
                started.set()
            yield b"k" * (64 * 1024)
            time.sleep(0.02)

    def upload():
        try:
            if framing == "chunked":
                server.session.request("PUT", server.url(obj(bucket, "half.bin")), data=slow_body(),
                                       headers={"Authorization": f"Bearer {server.admin_key}"}, timeout=30)
                return
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            conn.putrequest("PUT", obj(bucket, "half.bin"))
            conn.putheader("Authorization", f"Bearer {server.admin_key}")
            conn.putheader("Content-Length", str(400 * 64 * 1024))
            conn.endheaders()
            for chunk in slow_body():
                conn.send(chunk)
            conn.getresponse().read()
        except (requests.RequestException, OSError, http.client.HTTPException):
            pass

    t = threading.Thread(target=upload)
    t.start()
    assert started.wait(30)
    time.sleep(0.5)
    server.kill()
    t.join(30)
    server.start()
    assert_error(server.get(obj(bucket, "half.bin")), 404, "STORAGE_NOT_FOUND")
    assert server.get(obj(bucket)).json()["pagination"]["total"] == 0
    if stack.provider == "local":
        assert stack.all_stored(bucket) == []  # the unnamed file died with the process
    else:
        # Parts of the unfinished multipart upload are never an object, and the sweep aborts the upload.
        assert stack.all_stored(bucket) == []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            uploads = [u for u in stack.moto.s3.list_multipart_uploads(Bucket=S3_BUCKET).get("Uploads", [])
                       if u["Key"].startswith(stack.prefix + bucket + "/")]
            if not uploads:
                break
            time.sleep(0.5)
        assert uploads == []
    assert put(server, bucket, "half.bin", b"whole").status_code == 201
    assert server.get(obj(bucket, "half.bin")).content == b"whole"
    assert server.request("PUT", "/api/storage/config", json={"maxFileSize": 10 << 20}).status_code == 200


def test_multipart_parts_around_the_file_are_bounded(server):
    """Fields and part headers besides the file may take 1 MiB at most: a body of huge other fields is a 413, not
    memory held by the parser."""
    bucket = new_bucket(server)
    boundary = "b0und4ry"
    filler = b"".join(b"--" + boundary.encode() + b'\r\nContent-Disposition: form-data; name="f%d"\r\n\r\n' % i
                      + b"x" * 200_000 + b"\r\n" for i in range(8))
    body = filler + b"--" + boundary.encode() + b'\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\nhi\r\n--' \
        + boundary.encode() + b"--\r\n"
    r = server.request("POST", f"/api/storage/buckets/{bucket}/objects/a.txt", data=body,
                       headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 413, (r.status_code, r.text[:300])
    small = b"--" + boundary.encode() + b'\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n' \
        + b"--" + boundary.encode() + b'\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\nhi\r\n--' \
        + boundary.encode() + b"--\r\n"
    r = server.request("POST", f"/api/storage/buckets/{bucket}/objects/a.txt", data=small,
                       headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code in (200, 201), r.text
