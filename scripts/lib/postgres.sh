# shellcheck shell=bash
#
# PostgreSQL helpers for scripts/test. Sourced, not executed.
#
# The integration tests need an *admin* URL in RESTDOSE_TEST_POSTGRES_URL:
# each test CREATEs its own fresh database through it and DROPs it afterwards,
# so tests never share state and can run in parallel.
#
# Environment knobs (all optional):
#   RESTDOSE_TEST_POSTGRES_URL       use this server, start nothing.
#   RESTDOSE_TEST_FORCE_THROWAWAY_PG=1
#                                    skip the "is a server already listening on
#                                    127.0.0.1:5432?" probe and always start a
#                                    throwaway cluster (how the throwaway path
#                                    is tested on machines that do run a server).
#   RESTDOSE_TEST_PG_BIN_DIRS=DIR[:DIR...]
#                                    directories searched for PostgreSQL tools
#                                    (initdb, pg_ctl, pg_isready, psql) after
#                                    PATH, *replacing* the default search of
#                                    /usr/lib/postgresql/*/bin (newest first).
#                                    Setting it to /nonexistent together with a
#                                    PATH that lacks the tools simulates a
#                                    machine without PostgreSQL installed.

# Print the directories to search after PATH, one per line, in preference order.
pg_bin_dirs() {
    if [[ -n "${RESTDOSE_TEST_PG_BIN_DIRS+set}" ]]; then
        local IFS=:
        local d
        for d in $RESTDOSE_TEST_PG_BIN_DIRS; do
            [[ -n "$d" ]] && printf '%s\n' "$d"
        done
        return 0
    fi
    # Debian/Ubuntu install each major version side by side; prefer the newest
    # (sort -V so that 16 sorts after 9.6).
    local d
    for d in /usr/lib/postgresql/*/bin; do
        [[ -d "$d" ]] && printf '%s\n' "$d"
    done | sort -V -r
}

# pg_find_tool NAME: print the path of a PostgreSQL tool (PATH first, then
# pg_bin_dirs). Returns 1 if it is nowhere to be found.
pg_find_tool() {
    local name="$1" dir
    if command -v "$name" >/dev/null 2>&1; then
        command -v "$name"
        return 0
    fi
    while IFS= read -r dir; do
        if [[ -x "$dir/$name" ]]; then
            printf '%s\n' "$dir/$name"
            return 0
        fi
    done < <(pg_bin_dirs)
    return 1
}

# Hide the password, if any, before printing a URL to a CI log.
pg_redact_url() {
    sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#' <<<"$1"
}

# pg_port_in_use PORT: true if something accepts TCP connections on it.
# Uses bash's /dev/tcp so no extra tool is needed.
pg_port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Print a TCP port that is free right now on 127.0.0.1. Ask the kernel via
# python3 when available (no guessing), else probe upwards from 55432.
# The caller still retries on "address already in use": the port could be
# taken between this check and the server's bind().
pg_free_port() {
    local port
    if command -v python3 >/dev/null 2>&1 &&
        port=$(python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])' 2>/dev/null) &&
        [[ "$port" =~ ^[0-9]+$ ]]; then
        printf '%s\n' "$port"
        return 0
    fi
    for ((port = 55432; port < 55532; port++)); do
        if ! pg_port_in_use "$port"; then
            printf '%s\n' "$port"
            return 0
        fi
    done
    echo "error: no free TCP port found in 55432-55531" >&2
    return 1
}

# State of the throwaway cluster, read by pg_cleanup (run from an EXIT trap).
PG_TMP_DIR=""
PG_CTL=""
PG_STARTED=0

# Run a command as the cluster owner. PostgreSQL refuses to run as root, and
# CI runs this script as root, so there the cluster belongs to "postgres".
pg_as_owner() {
    if ((EUID != 0)); then
        "$@"
    elif command -v runuser >/dev/null 2>&1; then
        runuser -u postgres -- "$@"
    else
        # su needs a single command string; %q quotes each argument for bash.
        su postgres -s /bin/bash -c "$(printf '%q ' "$@")"
    fi
}

# Stop the throwaway cluster and delete its files. Safe to call at any point,
# and more than once; never fails (it runs from an EXIT trap).
pg_cleanup() {
    if [[ -z "$PG_TMP_DIR" ]]; then
        return 0
    fi
    if ((PG_STARTED)); then
        # "immediate" = no checkpoint, no waiting for clients: the data is
        # thrown away anyway.
        if ! (cd "$PG_TMP_DIR" && pg_as_owner "$PG_CTL" -D "$PG_TMP_DIR/data" -m immediate -w stop) >/dev/null 2>&1; then
            # pg_ctl could not stop it: kill the postmaster we started, by the
            # PID it recorded, so no server outlives the script.
            local pid=""
            if [[ -r "$PG_TMP_DIR/data/postmaster.pid" ]]; then
                pid=$(head -n 1 "$PG_TMP_DIR/data/postmaster.pid" 2>/dev/null || true)
            fi
            if [[ "$pid" =~ ^[0-9]+$ ]]; then
                kill -9 "$pid" 2>/dev/null || true
            fi
        fi
        PG_STARTED=0
    fi
    rm -rf "$PG_TMP_DIR" 2>/dev/null || true
    PG_TMP_DIR=""
}

# Create the "postgres" system user if it is missing (fresh CI containers
# often have the tools from a tarball or image layer but no such user).
pg_ensure_owner_user() {
    if id -u postgres >/dev/null 2>&1; then
        return 0
    fi
    echo "Creating system user 'postgres' to own the throwaway cluster"
    if ! command -v useradd >/dev/null 2>&1; then
        echo "error: running as root, no 'postgres' user and no useradd to create one" >&2
        return 1
    fi
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
        --shell /bin/false postgres
}

# Start a throwaway cluster and export RESTDOSE_TEST_POSTGRES_URL for it.
# The caller must have installed `trap pg_cleanup EXIT` beforehand.
pg_start_throwaway() {
    local initdb pg_ctl
    initdb=$(pg_find_tool initdb) || initdb=""
    # Prefer the pg_ctl installed next to initdb: same major version.
    if [[ -n "$initdb" ]]; then
        local initdb_dir
        initdb_dir=$(dirname "$(readlink -f "$initdb")")
        if [[ -x "$initdb_dir/pg_ctl" ]]; then
            pg_ctl="$initdb_dir/pg_ctl"
        else
            pg_ctl=$(pg_find_tool pg_ctl) || pg_ctl=""
        fi
    fi
    if [[ -z "$initdb" || -z "${pg_ctl:-}" ]]; then
        echo "error: PostgreSQL server binaries (initdb, pg_ctl) not found; install PostgreSQL," \
            "e.g. apt-get install postgresql, or set RESTDOSE_TEST_POSTGRES_URL" >&2
        return 1
    fi
    PG_CTL="$pg_ctl"

    if ((EUID == 0)); then
        pg_ensure_owner_user
        # Under /tmp rather than $TMPDIR: the postgres user must be able to
        # reach the directory, and e.g. /root/tmp is not traversable for it.
        PG_TMP_DIR=$(mktemp -d /tmp/restdose-pg.XXXXXX)
        chown postgres: "$PG_TMP_DIR"
    else
        PG_TMP_DIR=$(mktemp -d "${TMPDIR:-/tmp}/restdose-pg.XXXXXX")
    fi
    echo "Throwaway cluster in $PG_TMP_DIR (initdb: $initdb)"

    # trust auth: local, short-lived, bound to 127.0.0.1 only.
    # --no-sync and the fsync/full_page_writes settings below: durability is
    # pointless for data deleted at exit, and they make the tests much faster.
    # UTF8 + C locale: deterministic, and independent of the CI's LANG.
    # The subshells cd into the temp dir because the postgres user may not be
    # allowed into the repo checkout (e.g. under /root).
    if ! (cd "$PG_TMP_DIR" && pg_as_owner "$initdb" -D "$PG_TMP_DIR/data" -A trust -U postgres \
        --no-sync --encoding=UTF8 --locale=C) >"$PG_TMP_DIR/initdb.log" 2>&1; then
        echo "error: initdb failed:" >&2
        cat "$PG_TMP_DIR/initdb.log" >&2
        return 1
    fi
    # max_connections: every test opens its own pool, and tests run in
    # parallel; the default of 100 is too tight.
    # -k: the Unix socket goes into the temp dir, not /var/run/postgresql
    # (which may not exist or be writable).
    local attempt port log
    for attempt in 1 2 3 4 5; do
        port=$(pg_free_port)
        log="$PG_TMP_DIR/postgres-$attempt.log"
        if (cd "$PG_TMP_DIR" && pg_as_owner "$pg_ctl" -D "$PG_TMP_DIR/data" -l "$log" -w -t 60 \
            -o "-p $port -k $PG_TMP_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
            start) >"$PG_TMP_DIR/pg_ctl-$attempt.out" 2>&1; then
            PG_STARTED=1
            break
        fi
        # The port may have been taken since we picked it: try another one.
        # Any other failure is fatal.
        if [[ $attempt -lt 5 ]] && grep -qi 'already in use' "$log" 2>/dev/null; then
            echo "Port $port was taken, retrying with another one"
            continue
        fi
        echo "error: could not start the throwaway PostgreSQL server:" >&2
        cat "$PG_TMP_DIR/pg_ctl-$attempt.out" "$log" >&2 2>/dev/null || true
        # pg_ctl may have given up (timeout) while the server is still alive:
        # let pg_cleanup stop it.
        PG_STARTED=1
        return 1
    done

    export RESTDOSE_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
    echo "Throwaway PostgreSQL listening on 127.0.0.1:$port"
}

# Decide which PostgreSQL server the tests use and export
# RESTDOSE_TEST_POSTGRES_URL. See the header of this file for the knobs.
pg_setup_test_server() {
    if [[ -n "${RESTDOSE_TEST_POSTGRES_URL:-}" ]]; then
        echo "Using RESTDOSE_TEST_POSTGRES_URL from the environment: $(pg_redact_url "$RESTDOSE_TEST_POSTGRES_URL")"
        export RESTDOSE_TEST_POSTGRES_URL
        return 0
    fi

    # A developer machine usually runs a server already; reuse it (this
    # machine's local server uses trust auth for "postgres" on 127.0.0.1).
    if [[ "${RESTDOSE_TEST_FORCE_THROWAWAY_PG:-}" != 1 ]]; then
        local pg_isready
        if pg_isready=$(pg_find_tool pg_isready) &&
            "$pg_isready" -q -t 5 -h 127.0.0.1 -p 5432; then
            export RESTDOSE_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:5432/postgres"
            echo "Using the PostgreSQL server on 127.0.0.1:5432"
            return 0
        fi
    fi

    pg_start_throwaway
}
