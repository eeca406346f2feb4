#!/usr/bin/env bash
# The issue-5 figures, release build, fresh PostgreSQL:
#   1. Fan-out: 1,000 sockets subscribed to one channel, messages published at a steady rate from
#      one more socket (60/s: 60,000 frames/s offered); delivered frames/s and publish-to-receive
#      p50/p99, against our server and against python-socketio's own server broadcasting in memory
#      (the peer). Then the capacity run: both offered 150,000 frames/s, more than either delivers;
#      the ratio of what each delivers.
#   2. 10,000 idle connected sockets: our server's RSS.
#   3. Webhooks: 5,000 messages on a channel with one local receiver URL; signed deliveries/s.
# Options after `--` go to insforge-realtime-bench (e.g. `-- --rate 100 --sockets 1000`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/common.sh

install_system_packages
install_python_packages Tests/e2e/requirements.txt
install_python_packages scripts/bench-requirements.txt
start_throwaway_postgres
release_build --product insforge
release_build --product insforge-realtime-bench
bin="$(release_build --show-bin-path)"

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
work="$(mktemp -d)"
on_exit 'rm -rf "$work"'
key="ik_$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
port=7131
psql -h 127.0.0.1 -p "$PG_TEST_PORT" -U postgres -qc "DROP DATABASE IF EXISTS bench_realtime" -c "CREATE DATABASE bench_realtime"
DATABASE_URL="postgres://postgres@127.0.0.1:${PG_TEST_PORT}/bench_realtime" DATA_DIR="$work" LOGS_DIR="$work" HOST=127.0.0.1 \
# The load comes from one address and publishes far above a client's budget: lift the per-IP session
# cap and the per-socket publish rate that protect a real server.
PORT=$port ACCESS_API_KEY="$key" REALTIME_WEBHOOK_ALLOW_PRIVATE=true LOG_LEVEL=warning \
    REALTIME_MAX_SESSIONS=100000 REALTIME_MAX_SESSIONS_PER_IP=100000 REALTIME_PUBLISH_RATE=100000 REALTIME_PUBLISH_BURST=100000 \
    "$bin/insforge" serve >"$work/server.log" 2>&1 &
server=$!
kill_on_exit $server
python3 scripts/realtime_peer.py --port 7198 >"$work/peer.log" 2>&1 &
kill_on_exit $!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/api/health" >/dev/null && break; sleep 0.2; done
for _ in $(seq 1 100); do curl -s "http://127.0.0.1:7198/socket.io/?EIO=4&transport=polling" >/dev/null && break; sleep 0.2; done

"$bin/insforge-realtime-bench" --url "http://127.0.0.1:$port" --api-key "$key" --peer-url "http://127.0.0.1:7198" \
    --server-pid "$server" --idle-sockets 10000 --webhooks 5000 "$@"
