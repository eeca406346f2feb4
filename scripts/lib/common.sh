# Shared by scripts/*.sh: install what is missing, start a throwaway PostgreSQL.
# Sourced, not run.

SYSTEM_PACKAGES=(libpq-dev libssl-dev libcurl4-openssl-dev liblz4-dev libpg-query-dev postgresql postgresql-contrib curl)

say() { printf '==> %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        say "need root for: $*"; return 1; fi
}

# Debian packages from the design card, installed only when missing.
install_system_packages() {
    local missing=()
    for p in "${SYSTEM_PACKAGES[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    if ! command -v swift >/dev/null; then
        for d in /opt/swift/usr/bin /usr/share/swift/usr/bin; do [ -x "$d/swift" ] && export PATH="$d:$PATH"; done
    fi
    command -v swift >/dev/null || { say "Swift 6 toolchain not found: install it from swift.org and put it on PATH"; return 1; }
}

# The Python packages a requirements file names (the e2e tests' clients, the benches' peers), installed when one is missing.
install_python_packages() {
    local req="$1"
    # Checked against this file's own requirements: the bench's (aiohttp for the realtime peer) are
    # not the tests', and a check of the tests' modules left the peer unable to start.
    if ! python3 "$(dirname "${BASH_SOURCE[0]}")/requirements_met.py" "$req" >/dev/null 2>&1; then
        say "installing Python packages ($req)"
        python3 -m pip install -q --disable-pip-version-check -r "$req"
    fi
}

# Cleanup at exit, for the shell that sources this file: `on_exit 'COMMAND'` adds COMMAND to a list that
# one EXIT trap runs, last added first (a server stops before the database it uses). Scripts add to the
# list and never set `trap ... EXIT` themselves: a second trap replaces the first (that left the
# throwaway PostgreSQL running). Ctrl-C and SIGTERM exit through the same list. A failing command does
# not stop the others, and the script keeps its own exit status.
on_exit() {
    if [ "${EXIT_COMMANDS_SHELL:-}" != "$BASHPID" ]; then
        # First use in this shell (a subshell gets its own list: it must not run its parent's).
        EXIT_COMMANDS=()
        EXIT_COMMANDS_SHELL=$BASHPID
        trap run_exit_commands EXIT
        trap 'exit 130' INT
        trap 'exit 143' TERM
    fi
    EXIT_COMMANDS+=("$1")
}

# on_exit for a background process: stop it and wait for it.
kill_on_exit() {
    on_exit "kill $1 2>/dev/null; wait $1 2>/dev/null"
}

run_exit_commands() {
    local status=$? i
    trap - INT TERM
    for ((i = ${#EXIT_COMMANDS[@]} - 1; i >= 0; i--)); do
        eval "${EXIT_COMMANDS[i]}" || true
    done
    EXIT_COMMANDS=()
    exit "$status"
}

pg_bindir() {
    local d
    d=$(pg_config --bindir 2>/dev/null || true)
    if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return; fi
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

# Starts a PostgreSQL cluster in a fresh temporary folder on a free loopback port (trust auth,
# loopback only) and stops it when the calling shell exits (on_exit). Sets PG_TEST_PORT and PG_TEST_DIR.
start_throwaway_postgres() {
    local bin port
    bin=$(pg_bindir)
    [ -n "$bin" ] || { say "PostgreSQL server binaries not found (apt-get install -y postgresql)"; return 1; }
    PG_TEST_DIR=$(mktemp -d /tmp/insforge-pg.XXXXXX)
    chmod 755 "$PG_TEST_DIR"
    local run=()
    if [ "$(id -u)" -eq 0 ]; then chown postgres "$PG_TEST_DIR"; run=(runuser -u postgres --); fi
    PG_STOP=("${run[@]}" "$bin/pg_ctl" -D "$PG_TEST_DIR/data" -m immediate -w stop)
    on_exit stop_throwaway_postgres  # before initdb: a start that fails half-way leaves nothing either
    (cd / && "${run[@]}" "$bin/initdb" -D "$PG_TEST_DIR/data" -U postgres -A trust -E UTF8 --no-instructions >"$PG_TEST_DIR/initdb.log" 2>&1 \
        ) || { cat "$PG_TEST_DIR/initdb.log"; return 1; }
    # A port nobody listens on can still be held by an outgoing connection (loopback load tests use
    # thousands of ephemeral ports): on "Address already in use" try the next one.
    port=55500
    local attempt
    for attempt in 1 2 3 4 5 6 7 8; do
        while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
        if "${run[@]}" "$bin/pg_ctl" -D "$PG_TEST_DIR/data" -l "$PG_TEST_DIR/postgres.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories='' -c max_connections=300 -c fsync=on" \
            start >/dev/null; then
            break
        fi
        if [ "$attempt" -lt 8 ] && grep -q "Address already in use" "$PG_TEST_DIR/postgres.log"; then
            port=$((port + 1 + RANDOM % 50))
            continue
        fi
        cat "$PG_TEST_DIR/postgres.log"
        return 1
    done
    PG_TEST_PORT=$port
    say "throwaway PostgreSQL on 127.0.0.1:$port ($PG_TEST_DIR)"
}

stop_throwaway_postgres() {
    if [ -n "${PG_TEST_DIR:-}" ]; then
        "${PG_STOP[@]}" >/dev/null 2>&1 || true
        rm -rf "$PG_TEST_DIR"
        PG_TEST_DIR=
    fi
}

# `swift build -c release ARGS...`, in $SWIFT_SCRATCH_PATH instead of .build when that is set.
release_build() {
    local args=(-c release)
    if [ -n "${SWIFT_SCRATCH_PATH:-}" ]; then args+=(--scratch-path "$SWIFT_SCRATCH_PATH"); fi
    swift build "${args[@]}" "$@"
}
