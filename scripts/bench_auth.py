"""Auth benchmark (issue 3): starts the release server on a database URL and measures with wrk.

Prints, for one run on one machine:
  - GET /api/auth/sessions/current (valid JWT) and GET /api/health: requests/s and p99 at 64 connections, and the ratio;
  - sign-ins/s with bcrypt saturating the CPU, the bcrypt cost, and /api/health's p99 meanwhile;
  - the server's RSS.
"""

import argparse
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request


def http(method, url, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, json.loads(r.read() or b"null")


def wrk(url, connections, duration, threads=2, headers=(), script=None):
    """Runs wrk; returns (requests/s, p99 ms, non-2xx count)."""
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s"]
    for h in headers:
        cmd += ["-H", h]
    if script:
        cmd += ["-s", script]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=duration + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rps, float(p99.group(1)) * scale, int(bad.group(1)) if bad else 0


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--database-url", required=True, help="an admin URL; a fresh database is created on it")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--port", type=int, default=7190)
    args = ap.parse_args()

    db = "bench_auth_" + secrets.token_hex(4)
    subprocess.run(["psql", args.database_url, "-qc", f'CREATE DATABASE "{db}"'], check=True)
    db_url = args.database_url.rsplit("/", 1)[0] + "/" + db
    data = tempfile.mkdtemp(prefix="bench-auth-")
    base = f"http://127.0.0.1:{args.port}"
    env = dict(os.environ, DATABASE_URL=db_url, DATA_DIR=data, LOGS_DIR=data, HOST="127.0.0.1", PORT=str(args.port),
               ADMIN_EMAIL="admin@example.com", ADMIN_PASSWORD="bench-admin-password",
               RATE_LIMIT_AUTH_PER_MINUTE="1000000", LOG_LEVEL="warning")
    cost = int(env.get("BCRYPT_COST", "10"))
    server = subprocess.Popen([args.bin, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(data, "log"), "w"))
    try:
        for _ in range(300):
            if server.poll() is not None:
                raise RuntimeError(f"the server exited with {server.returncode}")
            try:
                if http("GET", base + "/api/health")[0] == 200:
                    break
            except Exception:
                time.sleep(0.1)
        email, password = "bench@example.com", "bench-password-1"
        status, body = http("POST", base + "/api/auth/users?client_type=mobile", {"email": email, "password": password})
        assert status == 200, body
        token = body["accessToken"]
        status, body = http("GET", base + "/api/auth/sessions/current", headers={"Authorization": f"Bearer {token}"})
        assert status == 200 and body["user"]["email"] == email, body

        c, d = args.connections, args.duration
        wrk(base + "/api/health", c, 2)  # warm-up
        health_rps, health_p99, bad_h = wrk(base + "/api/health", c, d)
        cur_rps, cur_p99, bad_c = wrk(base + "/api/auth/sessions/current", c, d, headers=[f"Authorization: Bearer {token}"])
        rss_load = rss_mb(server.pid)
        print(f"GET /api/auth/sessions/current  {c} conns: {cur_rps:10.0f} req/s  p99 {cur_p99:6.2f} ms  non-2xx {bad_c}"
              f"   (target >= 10000 req/s, p99 <= 20 ms)")
        print(f"GET /api/health                 {c} conns: {health_rps:10.0f} req/s  p99 {health_p99:6.2f} ms  non-2xx {bad_h}")
        print(f"ratio sessions/current : health = {cur_rps / health_rps:.2f}")

        script = os.path.join(data, "signin.lua")
        with open(script, "w") as f:
            f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                    f'wrk.body = \'{json.dumps({"email": email, "password": password})}\'\n')
        result = {}

        def sign_ins():
            result["signin"] = wrk(base + "/api/auth/sessions?client_type=mobile", 16, d, script=script)

        t = threading.Thread(target=sign_ins)
        t.start()
        time.sleep(1)
        probe_rps, probe_p99, _ = wrk(base + "/api/health", 4, max(2, d - 2), threads=1)
        t.join()
        sin_rps, sin_p99, bad_s = result["signin"]
        print(f"POST /api/auth/sessions (bcrypt cost {cost}) 16 conns: {sin_rps:8.1f} sign-ins/s  p99 {sin_p99:7.1f} ms  non-2xx {bad_s}")
        print(f"GET /api/health during the sign-ins, 4 conns: {probe_rps:8.0f} req/s  p99 {probe_p99:6.2f} ms   (target p99 <= 20 ms)")
        print(f"server RSS after the load: {rss_mb(server.pid):.0f} MB (during sessions/current: {rss_load:.0f} MB)")
    except BaseException:
        with open(os.path.join(data, "log")) as f:
            print("server log tail:\n" + "".join(f.readlines()[-20:]), file=sys.stderr)
        raise
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        subprocess.run(["psql", args.database_url, "-qc", f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'])
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
