#!/usr/bin/env bash
# The issue-2 figures: release build, a fresh PostgreSQL, one run of insforge-bench
# (appends vs. baseline, catch-up, replay --verify, memory). Extra arguments go to insforge-bench.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/common.sh

install_system_packages
start_throwaway_postgres
release_build --product insforge-bench
release_build --product insforge
bench_data=$(mktemp -d /tmp/insforge-bench.XXXXXX)
on_exit 'rm -rf "$bench_data"'
DATABASE_URL="postgres://postgres@127.0.0.1:${PG_TEST_PORT}/postgres" DATA_DIR="$bench_data" \
    "$(release_build --show-bin-path)/insforge-bench" "$@"
