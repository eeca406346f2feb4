#!/usr/bin/env bash
# The issue-6 figures, release build, fresh PostgreSQL, two servers: one on the local provider, one on
# the S3 provider against moto's S3 server (loopback only):
#   1. one 100 MB object uploaded then downloaded through the API, 3 times: MB/s (best, median) and the
#      server's RSS growth during each transfer; baseline: dd writing (fdatasync) and reading the same
#      100 MB in the same filesystem, and the ratio.
#   2. 1,000 concurrent workers uploading 10 KB objects (5 each), with the admin key, then with 10 user
#      tokens: uploads/s, p50/p99 latency, errors.
#   3. the same on the S3 provider; baseline: boto3 straight to moto (put_object/get_object of 100 MB,
#      1,000 10 KB put_objects from 32 threads, scripts/storage_s3_baseline.py), and the ratio.
# Options go to insforge-storage-bench (e.g. `./scripts/bench-storage.sh --workers 500 --rounds 3`).
# SWIFT_SCRATCH_PATH=<folder> builds there instead of .build (every bench script).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/common.sh

install_system_packages
if ! python3 -c 'import moto, boto3, flask, flask_cors' >/dev/null 2>&1; then
    say "installing moto's S3 server and boto3 (scripts/bench-requirements.txt)"
    python3 -m pip install -q --disable-pip-version-check -r scripts/bench-requirements.txt
fi
command -v moto_server >/dev/null || export PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
start_throwaway_postgres
release_build --product insforge
release_build --product insforge-storage-bench
bin="$(release_build --show-bin-path)"

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
large_mb=100
work="$(mktemp -d)"
on_exit 'rm -rf "$work"'
key="ik_$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"

# A free loopback port at or above $1.
free_port() {
    local port=$1
    while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
    echo "$port"
}
wait_for() {  # URL: until it answers (any status), at most 20 s
    for _ in $(seq 1 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.2; done
    say "$1 never answered"; return 1
}

# moto's S3 server, and the bucket our S3-backed server stores into.
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1
moto_port=$(free_port 7143)
moto_server -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
kill_on_exit $!
wait_for "http://127.0.0.1:$moto_port/"
s3_endpoint="http://127.0.0.1:$moto_port"
python3 scripts/storage_s3_baseline.py --endpoint "$s3_endpoint" create-bucket insforge-bench

# start_server NAME PORT [ENV...]: our server on its own database and data folder; sets server_pid.
start_server() {
    local name=$1 port=$2; shift 2
    psql -h 127.0.0.1 -p "$PG_TEST_PORT" -U postgres -qc "DROP DATABASE IF EXISTS bench_storage_$name" -c "CREATE DATABASE bench_storage_$name"
    mkdir -p "$work/$name"
    env DATABASE_URL="postgres://postgres@127.0.0.1:${PG_TEST_PORT}/bench_storage_$name" DATA_DIR="$work/$name" \
        STORAGE_DIR="$work/$name/storage" LOGS_DIR="$work/$name" HOST=127.0.0.1 PORT="$port" ACCESS_API_KEY="$key" \
        LOG_LEVEL=warning MAX_FILE_SIZE=200MB "$@" \
        "$bin/insforge" serve >"$work/$name.log" 2>&1 &
    server_pid=$!
    kill_on_exit "$server_pid"
}
local_port=$(free_port 7141)
start_server local "$local_port"
local_pid=$server_pid
s3_port=$(free_port $((local_port + 1)))
start_server s3 "$s3_port" AWS_S3_BUCKET=insforge-bench AWS_ENDPOINT_URL="$s3_endpoint"
s3_pid=$server_pid
wait_for "http://127.0.0.1:$local_port/api/health"
wait_for "http://127.0.0.1:$s3_port/api/health"

# Baseline of the local provider: dd into the folder the server stores into (best of 3, MB = 2^20 bytes).
dd_mbps() {  # dd's summary line on stdin -> MB/s
    LC_ALL=C awk '/copied/ { for (i = 2; i <= NF; i++) if ($i == "s,") s = $(i - 1); if (s > 0) printf "%.1f\n", $1 / 1048576 / s }'
}
dd_write=0 dd_read=0
for _ in 1 2 3; do
    rm -f "$work/local/storage/dd.bin"
    w=$(LC_ALL=C dd if=/dev/zero of="$work/local/storage/dd.bin" bs=1M count=$large_mb conv=fdatasync 2>&1 | dd_mbps)
    r=$(LC_ALL=C dd if="$work/local/storage/dd.bin" of=/dev/null bs=1M 2>&1 | dd_mbps)
    say "dd: write (fdatasync) $w MB/s, read $r MB/s"
    dd_write=$(awk -v a="$dd_write" -v b="$w" 'BEGIN { print (b > a ? b : a) }')
    dd_read=$(awk -v a="$dd_read" -v b="$r" 'BEGIN { print (b > a ? b : a) }')
done
rm -f "$work/local/storage/dd.bin"

# Baseline of the S3 provider: boto3 straight to moto (figures on stderr, "put get puts" on stdout).
baseline=(--disk-write-mbps "$dd_write" --disk-read-mbps "$dd_read")
if s3_figures=$(timeout 300 python3 scripts/storage_s3_baseline.py --endpoint "$s3_endpoint" measure \
        --large-mb $large_mb --repeats 3 --small 1000 --small-kb 10); then
    read -r s3_put s3_get s3_puts <<<"$s3_figures"
    baseline+=(--s3-direct-put-mbps "$s3_put" --s3-direct-get-mbps "$s3_get" --s3-direct-puts-per-second "$s3_puts")
else
    say "the S3 baseline failed; no ratio for the S3 provider"
fi

timeout 600 "$bin/insforge-storage-bench" --api-key "$key" --large-mb $large_mb \
    --local-url "http://127.0.0.1:$local_port" --local-pid "$local_pid" \
    --s3-url "http://127.0.0.1:$s3_port" --s3-pid "$s3_pid" \
    "${baseline[@]}" "$@" \
    || { status=$?; say "insforge-storage-bench failed ($status); server logs:"; tail -n 30 "$work"/local.log "$work"/s3.log >&2; exit "$status"; }
for name in local s3; do
    if [ -s "$work/$name.log" ]; then say "$name server log (last lines):"; tail -n 10 "$work/$name.log" >&2; fi
done
