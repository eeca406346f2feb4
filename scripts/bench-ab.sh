#!/usr/bin/env bash
# A/B of the store's append figure between two builds, in interleaved runs on one fresh PostgreSQL.
#
#   scripts/bench-ab.sh snapshot NAME          release-build insforge-bench and keep it as NAME
#   scripts/bench-ab.sh compare A B [ROUNDS]   ROUNDS (default 3) runs of each, A B A B ..., each on
#                                              a fresh database; prints every run and the medians
#
# Why: on this machine the same build's append rate drifts by 30% within an hour, so one run of each
# side says little; interleaved runs share the drift. A snapshot is a copy of the binary, which
# carries its own schema (schema/ is compiled in).
# Extra environment: APPENDS (per writer, default 2000).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/common.sh

snapshots=.build-bench-snapshots

snapshot() {
    local name=$1 bin
    [[ "$name" =~ ^[A-Za-z0-9._-]+$ ]] || { say "snapshot names are letters, digits, '.', '_' and '-'"; exit 2; }
    release_build --product insforge-bench
    bin=$(release_build --show-bin-path)
    rm -rf "${snapshots:?}/$name"
    mkdir -p "$snapshots/$name"
    cp "$bin/insforge-bench" "$snapshots/$name/"
    say "kept $(git rev-parse --short HEAD)$(git diff --quiet || echo ' + uncommitted changes') as $snapshots/$name"
}

# One store-only run of snapshot $1 on a fresh database; prints its events/s.
run_once() {
    local name=$1 data line
    PGOPTIONS="-c client_min_messages=warning" psql -h 127.0.0.1 -p "$PG_TEST_PORT" -U postgres -qAt -c "DROP DATABASE IF EXISTS ab" -c "CREATE DATABASE ab" >/dev/null
    data=$(mktemp -d /tmp/insforge-ab.XXXXXX)
    line=$(DATABASE_URL="postgres://postgres@127.0.0.1:${PG_TEST_PORT}/ab" DATA_DIR="$data" \
        "$snapshots/$name/insforge-bench" --log-size 1000 --skip-baseline --appends-per-writer "${APPENDS:-2000}" 2>&1 \
        | awk '/^event store \(group commit\)/ && !n++') || true
    rm -rf "$data"
    [ -n "$line" ] || { say "$name printed no append figure (run it alone to see why)"; exit 1; }
    printf '  %-12s %s\n' "$name" "${line#event store (group commit): }" >&2
    sed -E 's/.*: ([0-9]+) events\/s.*/\1/' <<<"$line"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

compare() {
    local a=$1 b=$2 rounds=${3:-3} i ma mb
    for name in "$a" "$b"; do
        [ -x "$snapshots/$name/insforge-bench" ] || { say "no snapshot $name (scripts/bench-ab.sh snapshot $name)"; exit 2; }
    done
    install_system_packages
    start_throwaway_postgres
    local ra=() rb=()
    for ((i = 1; i <= rounds; i++)); do
        ra+=("$(run_once "$a")")
        rb+=("$(run_once "$b")")
    done
    ma=$(printf '%s\n' "${ra[@]}" | median)
    mb=$(printf '%s\n' "${rb[@]}" | median)
    printf 'median of %d runs: %s %s events/s, %s %s events/s, %s/%s = %s\n' "$rounds" "$a" "$ma" "$b" "$mb" "$b" "$a" \
        "$(awk -v a="$ma" -v b="$mb" 'BEGIN { printf "%.2f", b / a }')"
}

case "${1:-}" in
    snapshot) [ $# -eq 2 ] || { say "usage: $0 snapshot NAME"; exit 2; }; snapshot "$2" ;;
    compare) [ $# -ge 3 ] && [ $# -le 4 ] || { say "usage: $0 compare A B [ROUNDS]"; exit 2; }; compare "$2" "$3" "${4:-3}" ;;
    *) say "usage: $0 snapshot NAME | compare A B [ROUNDS]"; exit 2 ;;
esac
