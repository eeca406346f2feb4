#!/usr/bin/env bash
# The issue-2 figures: release build, a fresh PostgreSQL, one run of insforge-bench
# (appends vs. baseline, catch-up, replay --verify, memory). Extra arguments go to insforge-bench.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/common.sh

install_system_packages
start_throwaway_postgres
swift build -c release --product insforge-bench
swift build -c release --product insforge
bench_data=$(mktemp -d /tmp/insforge-bench.XXXXXX)
DATABASE_URL="postgres://postgres@127.0.0.1:${PG_TEST_PORT}/postgres" DATA_DIR="$bench_data" \
    "$(swift build -c release --show-bin-path)/insforge-bench" "$@"
rm -rf "$bench_data"
