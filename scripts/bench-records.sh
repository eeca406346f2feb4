#!/usr/bin/env bash
# The issue-4 figures: release build, a fresh PostgreSQL, a 100,000-row table with RLS on.
#   1. GET /api/database/records/t?id=eq.X (random X), 64 connections, vs the same statements sent
#      straight to PostgreSQL by pgbench (prepared, 64 clients) in the same run, and the ratio.
#   2. Single-row inserts through the API (each with its RecordsInserted event).
#   3. Parser + SQL generation alone, one core (insforge-bench records-parser).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/common.sh

SYSTEM_PACKAGES+=(wrk)
install_system_packages
install_python_packages Tests/e2e/requirements.txt
start_throwaway_postgres
release_build --product insforge
release_build --product insforge-bench
bin="$(release_build --show-bin-path)"
python3 scripts/bench_records.py --bin "$bin/insforge" \
    --database-url "postgres://postgres@127.0.0.1:${PG_TEST_PORT}/postgres" "$@"
"$bin/insforge-bench" --records-parser
