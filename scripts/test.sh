#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine: installs what is missing, starts a throwaway
# PostgreSQL, builds, runs the Swift tests (real PostgreSQL) and the end-to-end tests (the real
# server binary driven by Python clients).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/common.sh

install_system_packages
install_python_packages Tests/e2e/requirements.txt
start_throwaway_postgres
export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:${PG_TEST_PORT}/postgres"

say "building (debug, with tests)"
swift build --build-tests
bin=$(swift build --show-bin-path)

say "Swift tests"
swift test --skip-build

say "end-to-end tests"
INSFORGE_BIN="$bin/insforge" python3 -m pytest Tests/e2e -q -p no:cacheprovider
