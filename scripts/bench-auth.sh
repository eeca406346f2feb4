#!/usr/bin/env bash
# The issue-3 figures: release build, a fresh PostgreSQL, wrk against the real server.
#   1. GET /api/auth/sessions/current with a valid JWT, 64 connections, vs GET /api/health in the same run.
#   2. Sign-ins saturating bcrypt (cost from BCRYPT_COST, default 10) while /api/health is probed: its p99.
# Options go to scripts/bench_auth.py (--duration SECONDS, --connections N).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/common.sh

SYSTEM_PACKAGES+=(wrk)
install_system_packages
install_python_packages Tests/e2e/requirements.txt
start_throwaway_postgres
release_build --product insforge
python3 scripts/bench_auth.py --bin "$(release_build --show-bin-path)/insforge" \
    --database-url "postgres://postgres@127.0.0.1:${PG_TEST_PORT}/postgres" "$@"
