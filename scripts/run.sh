#!/usr/bin/env bash
# Installs what is missing, builds the server (release) and runs it on port 7130 (PORT) with its
# own embedded PostgreSQL under ./data (set DATABASE_URL or POSTGRES_* to use an existing server).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/common.sh

install_system_packages
say "building (release)"
swift build -c release --product insforge
exec "$(swift build -c release --show-bin-path)/insforge" serve "$@"
