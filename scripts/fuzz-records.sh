#!/usr/bin/env bash
# The records query fuzzer (Tests/GatewayTests/RecordsQueryFuzzTests.swift) for longer than CI runs it:
#   scripts/fuzz-records.sh [CASES] [SEED]     (default 2,000,000 cases, a random seed, printed)
# It needs no database. A failure prints the case number, the query and the SQL; rerun with the same
# seed to reproduce it.
set -euo pipefail
cd "$(dirname "$0")/.."
cases="${1:-2000000}"
seed="${2:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}"
echo "records fuzz: $cases cases, seed $seed" >&2
swift build --build-tests >/dev/null
RECORDS_FUZZ_ITERATIONS="$cases" RECORDS_FUZZ_SEED="$seed" swift test --skip-build --filter RecordsQueryFuzzTests
