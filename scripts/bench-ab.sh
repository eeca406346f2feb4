#!/usr/bin/env bash
# A/B of the core, records and realtime figures between two builds, in interleaved runs on one fresh
# PostgreSQL.
#
#   scripts/bench-ab.sh snapshot NAME          release-build this work tree's insforge, insforge-bench and
#                                              insforge-realtime-bench and keep them (with the resource
#                                              bundles beside them) as NAME
#   scripts/bench-ab.sh compare A B [ROUNDS]   ROUNDS (default 3) rounds of A then B, each figure run on a
#                                              fresh database (and a fresh server); prints every run, the
#                                              medians per figure, their spread, the ratio B/A and the
#                                              median of each round's B/A (scripts/bench_ab.py)
#
# The figures (AB_FIGURES, default "core records realtime", picks some of them):
#   core      insforge-bench's store appends (64 writers, group commit): events/s   (scripts/bench.sh)
#   records   GET /api/database/records/t?id=eq.X as a user on a 100,000-row RLS table, then single-row
#             POSTs, 64 connections (wrk): req/s and p99 (scripts/bench_records.py --api-only, as in
#             scripts/bench-records.sh, without its pgbench baselines)
#   realtime  Socket.IO fan-out to 1,000 sockets on one channel (scripts/bench-realtime.sh, no peer): the
#             publish-to-receive p99 at the steady load (60 messages/s, all delivered) and the frames/s
#             delivered when offered more than the server delivers (150 messages/s)
# A round of all three takes about 3 minutes with the defaults (175-220 s on 2026-12-08, the machine shared).
#
# Why: on this machine the same build's figures drift by 30% within an hour, so one run of each side
# says little; interleaved runs share the drift. A snapshot keeps the binaries with their resource
# bundles (the migrations): a binary left in the build folder reads the bundle there, so it would run
# the newer build's migrations. The load tools are the snapshot's own; bench_records.py, wrk and the
# database are this work tree's for both sides.
#
# Snapshots go to AB_SNAPSHOTS, by default .build-bench-snapshots in the repository's main work tree
# (the same folder from every `git worktree`), so an older commit checked out in a worktree, with this
# script and bench_ab.py copied into its scripts/, can be snapshotted and compared from the main one.
# Extra environment: APPENDS (core, per writer, default 2000), RECORDS_SECONDS (records, per wrk run,
# default 8), REALTIME_SECONDS (realtime, seconds of publishing per load, default 5), REALTIME_SOCKETS
# (default 1000).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/common.sh

snapshots=${AB_SNAPSHOTS:-$(cd "$(git rev-parse --git-common-dir)/.." && pwd)/.build-bench-snapshots}
products=(insforge insforge-bench insforge-realtime-bench)

snapshot() {
    local name=$1 bin product
    [[ "$name" =~ ^[A-Za-z0-9._-]+$ ]] || { say "snapshot names are letters, digits, '.', '_' and '-'"; exit 2; }
    for product in "${products[@]}"; do release_build --product "$product"; done
    bin=$(release_build --show-bin-path)
    rm -rf "${snapshots:?}/$name"
    mkdir -p "$snapshots/$name"
    for product in "${products[@]}"; do cp "$bin/$product" "$snapshots/$name/"; done
    if compgen -G "$bin/*.resources" >/dev/null; then cp -R "$bin"/*.resources "$snapshots/$name/"; fi
    # What the binaries are built of: a copy of this script in an older commit's scripts/ is no change.
    git log -1 --format='%h %s' | cut -c1-120 >"$snapshots/$name/COMMIT"
    git diff --quiet HEAD -- . ':(exclude)scripts' || echo "+ uncommitted changes" >>"$snapshots/$name/COMMIT"
    say "kept $(head -c 200 "$snapshots/$name/COMMIT" | tr '\n' ' ')as $snapshots/$name"
}

# record FIGURE UNIT BETTER VALUE: one run's figure for the summary (BETTER: higher or lower), of side $side.
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$side" "$4" >>"$results"; }

fresh_database() {
    PGOPTIONS="-c client_min_messages=warning" psql -h 127.0.0.1 -p "$PG_TEST_PORT" -U postgres -qAt \
        -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" >/dev/null
}

# The store's appends of snapshot $1 (insforge-bench, store only) on a fresh database.
run_core() {
    local name=$1 line
    fresh_database ab
    local data
    data=$(mktemp -d /tmp/insforge-ab.XXXXXX)
    on_exit "rm -rf $data"
    line=$(DATABASE_URL="postgres://postgres@127.0.0.1:${PG_TEST_PORT}/ab" DATA_DIR="$data" \
        "$snapshots/$name/insforge-bench" --log-size 1000 --skip-baseline --appends-per-writer "${APPENDS:-2000}" 2>&1 \
        | awk '/^event store \(group commit\)/ && !n++') || true
    [ -n "$line" ] || { say "$name printed no append figure (run it alone to see why)"; exit 1; }
    printf '  %-10s core      %s\n' "$name" "${line#event store (group commit): }" >&2
    record "core appends" "events/s" higher "$(sed -E 's/.*: ([0-9]+) events\/s.*/\1/' <<<"$line")"
}

# The records API of snapshot $1's server: bench_records.py starts it on a database of its own.
run_records() {
    local name=$1 out get post
    out=$(python3 scripts/bench_records.py --bin "$snapshots/$name/insforge" --api-only --duration "${RECORDS_SECONDS:-8}" \
        --database-url "postgres://postgres@127.0.0.1:${PG_TEST_PORT}/postgres" 2>&1) || { printf '%s\n' "$out" >&2; exit 1; }
    get=$(grep '^GET /api/database/records' <<<"$out") && post=$(grep '^POST /api/database/records' <<<"$out") \
        || { printf '%s\n' "$out" >&2; say "$name printed no records figures"; exit 1; }
    printf '  %-10s records   GET %s\n  %-10s records   POST %s\n' "$name" "${get#*conns: }" "$name" "${post#*conns: }" >&2
    # Refused requests would be fast ones: a run with more than 1% of them is no figure (a random insert id
    # taken twice is one, now and then).
    local line
    for line in "$get" "$post"; do
        awk '{ for (i = 1; i < NF; i++) { if ($(i + 1) == "req/s") r = $i; if ($i == "non-2xx") b = $(i + 1) } }
             END { exit !(b > r * s / 100) }' s="${RECORDS_SECONDS:-8}" <<<"$line" \
            && { say "$name: too many records requests failed: $line"; exit 1; }
    done
    record "records GET" "req/s" higher "$(sed -E 's/.*conns: +([0-9.]+) req\/s.*/\1/' <<<"$get")"
    record "records GET p99" "ms" lower "$(sed -E 's/.*p99 +([0-9.]+) ms.*/\1/' <<<"$get")"
    record "records POST" "req/s" higher "$(sed -E 's/.*conns: +([0-9.]+) req\/s.*/\1/' <<<"$post")"
    record "records POST p99" "ms" lower "$(sed -E 's/.*p99 +([0-9.]+) ms.*/\1/' <<<"$post")"
}

# The Socket.IO fan-out of snapshot $1's server on a fresh database: the steady load, then the capacity load.
run_realtime() {
    local name=$1 data key port=7131 server steady capacity
    fresh_database ab_realtime
    data=$(mktemp -d /tmp/insforge-ab.XXXXXX)
    on_exit "rm -rf $data"
    key="ik_$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    # All the load tool's sockets come from one address, and its publisher sends up to 150 messages/s:
    # past the default limits per client (500 sessions, 100 publishes/s).
    DATABASE_URL="postgres://postgres@127.0.0.1:${PG_TEST_PORT}/ab_realtime" DATA_DIR="$data" LOGS_DIR="$data" HOST=127.0.0.1 \
    PORT=$port ACCESS_API_KEY="$key" LOG_LEVEL=warning REALTIME_MAX_SESSIONS_PER_IP=100000 REALTIME_MAX_SESSIONS=100000 \
    REALTIME_PUBLISH_RATE=100000 REALTIME_PUBLISH_BURST=100000 \
        "$snapshots/$name/insforge" serve >"$data/server.log" 2>&1 &
    server=$!
    kill_on_exit $server
    for _ in $(seq 1 150); do curl -sf "http://127.0.0.1:$port/api/health" >/dev/null && break; sleep 0.2; done
    fan_out() {  # messages/s → the bench's "insforge: ..." line
        "$snapshots/$name/insforge-realtime-bench" --url "http://127.0.0.1:$port" --api-key "$key" \
            --sockets "${REALTIME_SOCKETS:-1000}" --rate "$1" --seconds "${REALTIME_SECONDS:-5}" --saturate-rate 0 2>&1 \
            | grep '^insforge: ' || { tail -n 20 "$data/server.log" >&2; say "$name printed no fan-out figure"; exit 1; }
    }
    steady=$(fan_out 60)
    capacity=$(fan_out 150)
    printf '  %-10s realtime  60/s: %s\n  %-10s realtime  150/s: %s\n' "$name" "${steady#insforge: }" "$name" "${capacity#insforge: }" >&2
    record "realtime p99 at 60 msg/s" "ms" lower "$(sed -E 's/.* p99 ([0-9.]+) ms.*/\1/' <<<"$steady")"
    record "realtime frames at 150 msg/s" "frames/s" higher "$(sed -E 's/.* = ([0-9]+) frames\/s.*/\1/' <<<"$capacity")"
}

compare() {
    local a=$1 b=$2 rounds=$3 i name figure product started
    local figures=(${AB_FIGURES:-core records realtime})
    for figure in "${figures[@]}"; do
        [[ " core records realtime " == *" $figure "* ]] || { say "unknown figure $figure (core, records, realtime)"; exit 2; }
    done
    for name in "$a" "$b"; do
        for product in "${products[@]}"; do
            [ -x "$snapshots/$name/$product" ] || { say "no $product in snapshot $name (scripts/bench-ab.sh snapshot $name)"; exit 2; }
        done
        say "$name: $(head -c 200 "$snapshots/$name/COMMIT" 2>/dev/null | tr '\n' ' ')"
    done
    SYSTEM_PACKAGES+=(wrk)
    install_system_packages
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    start_throwaway_postgres
    results=$(mktemp /tmp/insforge-ab-results.XXXXXX)
    on_exit "rm -f $results"
    for ((i = 1; i <= rounds; i++)); do
        started=$SECONDS
        say "round $i of $rounds"
        for figure in "${figures[@]}"; do
            # A subshell a run: what it starts (a server, a data folder) is gone when it ends (on_exit).
            (side=A; run_"$figure" "$a")
            (side=B; run_"$figure" "$b")
        done
        say "round $i took $((SECONDS - started)) s"
    done
    python3 scripts/bench_ab.py "$a" "$b" <"$results"
}

case "${1:-}" in
    snapshot) [ $# -eq 2 ] || { say "usage: $0 snapshot NAME"; exit 2; }; snapshot "$2" ;;
    compare) [ $# -ge 3 ] && [ $# -le 4 ] || { say "usage: $0 compare A B [ROUNDS]"; exit 2; }; compare "$2" "$3" "${4:-3}" ;;
    *) say "usage: $0 snapshot NAME | compare A B [ROUNDS]"; exit 2 ;;
esac
