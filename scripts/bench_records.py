"""Records benchmark (issue 4): the release server against a fresh database, measured with wrk and pgbench.

Prints: primary-key reads through the API vs the same statements through pgbench (prepared, same
concurrency), their ratio, and single-row inserts through the API.
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
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from bench_auth import http, wrk  # noqa: E402


def psql(url, sql):
    return subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql], check=True, capture_output=True, text=True).stdout


def pgbench(url, script, clients, duration):
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(script)
    out = subprocess.run(["pgbench", "-n", "-M", "prepared", "-c", str(clients), "-j", "2", "-T", str(duration), "-r",
                          "-P", str(duration * 2), "-f", f.name, url], capture_output=True, text=True, timeout=duration + 60)
    os.unlink(f.name)
    tps = float(re.search(r"tps = ([\d.]+)", out.stdout).group(1))
    lat = float(re.search(r"latency average = ([\d.]+) ms", out.stdout).group(1))
    return tps, lat


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--database-url", required=True)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--port", type=int, default=7191)
    ap.add_argument("--api-only", action="store_true", help="skip the pgbench baselines (scripts/bench-ab.sh)")
    args = ap.parse_args()
    pgbench_bin = shutil.which("pgbench") or next(
        (p for p in sorted(os.popen("ls -d /usr/lib/postgresql/*/bin/pgbench 2>/dev/null").read().split())), None)
    db = "bench_records_" + secrets.token_hex(4)
    psql(args.database_url, f'CREATE DATABASE "{db}"')
    db_url = args.database_url.rsplit("/", 1)[0] + "/" + db
    data = tempfile.mkdtemp(prefix="bench-records-")
    base = f"http://127.0.0.1:{args.port}"
    admin_key = "ik_" + secrets.token_hex(32)
    env = dict(os.environ, DATABASE_URL=db_url, DATA_DIR=data, LOGS_DIR=data, HOST="127.0.0.1", PORT=str(args.port),
               ACCESS_API_KEY=admin_key, RATE_LIMIT_AUTH_PER_MINUTE="1000000", LOG_LEVEL="warning")
    server = subprocess.Popen([args.bin, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(data, "log"), "w"))
    admin = {"Authorization": f"Bearer {admin_key}"}
    try:
        for _ in range(300):
            if server.poll() is not None:
                raise RuntimeError(f"the server exited with {server.returncode}")
            try:
                if http("GET", base + "/api/health")[0] == 200:
                    break
            except Exception:
                time.sleep(0.1)
        status, body = http("POST", base + "/api/auth/users?client_type=mobile", {"email": "bench@example.com", "password": "bench-pass-1"})
        token, user_id = body["accessToken"], body["user"]["id"]
        user = {"Authorization": f"Bearer {token}"}
        status, body = http("POST", base + "/api/database/tables", {"tableName": "t", "rlsEnabled": True, "columns": [
            {"columnName": "id", "type": "integer", "isPrimaryKey": True, "isNullable": False},
            {"columnName": "name", "type": "string", "isNullable": False},
            {"columnName": "n", "type": "integer", "isNullable": True},
            {"columnName": "owner", "type": "uuid", "defaultValue": "auth.uid()", "isNullable": True}]}, headers=admin)
        assert status == 201, body
        # RLS: a user sees and writes only their own rows.
        psql(db_url, "CREATE POLICY own_rows ON t TO authenticated USING (owner = auth.uid()) WITH CHECK (owner = auth.uid())")
        psql(db_url, f"SET session_replication_role = replica; INSERT INTO t (id, name, n, owner) "
                     f"SELECT i, 'row ' || i, i % 1000, '{user_id}' FROM generate_series(1, {args.rows}) i; ANALYZE t")
        status, body = http("GET", base + "/api/database/records/t?id=eq.42", headers=user)
        assert status == 200 and len(body) == 1 and body[0]["id"] == 42, body

        c, d = args.connections, args.duration
        script = os.path.join(data, "get.lua")
        with open(script, "w") as f:
            f.write(f'math.randomseed(os.time())\nrequest = function()\n  return wrk.format("GET", '
                    f'"/api/database/records/t?id=eq." .. math.random(1, {args.rows}))\nend\n')
        wrk(base + "/api/health", c, 2)
        api_rps, api_p99, bad = wrk(base + "/", c, d, headers=[f"Authorization: Bearer {token}"], script=script)
        print(f"GET /api/database/records/t?id=eq.X (RLS, {args.rows} rows), {c} conns: {api_rps:8.0f} req/s  p99 {api_p99:6.2f} ms"
              f"  non-2xx {bad}   (target >= 8000 req/s, p99 <= 20 ms)")
        if not args.api_only:
            claims = json.dumps({"sub": user_id, "role": "authenticated", "email": "bench@example.com"})
            same_work = (f"\\set k random(1, {args.rows})\nBEGIN READ ONLY;\n"
                         f"SELECT set_config('role', 'authenticated', true), set_config('request.jwt.claims', '{claims}', true);\n"
                         "SELECT coalesce(json_agg(r), '[]')::text FROM (SELECT * FROM t WHERE id = :k) r;\nCOMMIT;\n")
            pg_tps, pg_lat = pgbench(db_url, same_work, c, d)
            # The server reaches PostgreSQL through a pool (DB_POOL_SIZE, default twice the cores, at least 4);
            # the same statements from that many clients show what PostgreSQL does without 64-way contention.
            pool = int(os.environ.get("DB_POOL_SIZE") or max(4, 2 * (os.cpu_count() or 1)))
            pooled_tps, _ = pgbench(db_url, same_work, pool, d)
            plain_tps, _ = pgbench(db_url, f"\\set k random(1, {args.rows})\nSELECT * FROM t WHERE id = :k;\n", c, d)
            print(f"pgbench, the same statements (BEGIN, set role+claims, select as JSON, COMMIT), prepared, {c} clients: {pg_tps:8.0f} tps"
                  f"  avg {pg_lat:.2f} ms")
            print(f"ratio pgbench : API = {pg_tps / api_rps:.2f}  (target <= 2.0)   [plain prepared SELECT: {plain_tps:.0f} tps]")
            print(f"pgbench, the same statements from {pool} clients (the server's pool size): {pooled_tps:8.0f} tps,"
                  f" ratio to the API {pooled_tps / api_rps:.2f}")

        insert = os.path.join(data, "insert.lua")
        with open(insert, "w") as f:
            # wrk.format with a header table replaces the -H headers: the token goes in the table too.
            # Each wrk thread has its own Lua state: seed each differently, or they insert the same ids.
            f.write('init = function(args) math.randomseed(os.time() + tonumber(string.sub(tostring({}), 8), 16)) end\n'
                    'counter = 0\nrequest = function()\n  counter = counter + 1\n'
                    f'  local id = {args.rows * 10} + math.random(1, 1000000000)\n'
                    '  return wrk.format("POST", "/api/database/records/t", {["Content-Type"] = "application/json", '
                    f'["Prefer"] = "return=minimal", ["Authorization"] = "Bearer {token}"}}, '
                    '\'{"id":\' .. id .. \',"name":"new","n":1}\')\nend\n')
        ins_rps, ins_p99, bad_i = wrk(base + "/", c, d, headers=[f"Authorization: Bearer {token}"], script=insert)
        events = psql(db_url, "SELECT count(*) FROM system.events WHERE type = 'RecordsInserted'").strip()
        print(f"POST /api/database/records/t (one row + its event), {c} conns: {ins_rps:8.0f} req/s  p99 {ins_p99:6.2f} ms"
              f"  non-2xx {bad_i}   (target >= 3000 req/s); RecordsInserted events: {events}")
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
