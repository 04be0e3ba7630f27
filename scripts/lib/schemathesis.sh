# shellcheck shell=bash
#
# API schema check for scripts/test. Sourced, not executed.
#
# schemathesis_check: builds the binary, starts `restdose serve` on a free 127.0.0.1 port with
# a temporary data directory (SQLite, mail written to the file outbox, development keys), waits
# for /readyz, creates an approved practice with an API token (scripts/lib/schemathesis_practice.py:
# the portal over HTTP plus `restdose admin practices approve`), then runs schemathesis against
# /api/v1/openapi.json: the public sign-up API, then the practice API with the token. Checks:
# no server errors, responses, status codes and content types as documented. Bounded by
# SCHEMATHESIS_MAX_EXAMPLES (default 25) per operation and a time limit per run. The server is
# stopped and the temporary directory removed whatever happens.
#
# schemathesis (PyPI, pinned below) is installed on demand into a venv under target/tools/;
# pip's cache makes repeated installs fast, an existing venv is reused.

SCHEMATHESIS_VERSION="4.32.5"
SCHEMATHESIS_PID=""
SCHEMATHESIS_TMP=""

schemathesis_cleanup() {
    if [[ -n "$SCHEMATHESIS_PID" ]]; then
        kill "$SCHEMATHESIS_PID" 2>/dev/null || true
        wait "$SCHEMATHESIS_PID" 2>/dev/null || true
        SCHEMATHESIS_PID=""
    fi
    if [[ -n "$SCHEMATHESIS_TMP" ]]; then
        rm -rf "$SCHEMATHESIS_TMP"
        SCHEMATHESIS_TMP=""
    fi
}

schemathesis_venv() {
    local venv="$ROOT/target/tools/schemathesis-$SCHEMATHESIS_VERSION"
    if [[ ! -x "$venv/bin/schemathesis" ]]; then
        echo "Installing schemathesis $SCHEMATHESIS_VERSION into $venv" >&2
        python3 -m venv "$venv" >&2
        "$venv/bin/pip" install --quiet --disable-pip-version-check \
            "schemathesis==$SCHEMATHESIS_VERSION" >&2
    fi
    printf '%s\n' "$venv"
}

schemathesis_check() {
    local venv binary port base status
    venv=$(schemathesis_venv)
    cargo build --locked -p restdose --bin restdose
    binary="$ROOT/target/debug/restdose"
    SCHEMATHESIS_TMP=$(mktemp -d "${TMPDIR:-/tmp}/restdose-schemathesis.XXXXXX")
    port=$(python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
    base="http://127.0.0.1:$port"

    # Only this run's settings: nothing from the caller's RESTDOSE_* or ./restdose.toml.
    local -a env_vars=(
        env -u RESTDOSE_CONFIG -u RESTDOSE_DATABASE_URL -u RESTDOSE_SMTP_URL -u RESTDOSE_KEYS
        -u RESTDOSE_KEYS_FILE -u RESTDOSE_PUBLIC_URL
        RESTDOSE_DATA_DIR="$SCHEMATHESIS_TMP/data"
        RESTDOSE_LISTEN="127.0.0.1:$port"
        RESTDOSE_CONFIG="$SCHEMATHESIS_TMP/restdose.toml"
    )
    : >"$SCHEMATHESIS_TMP/restdose.toml"
    mkdir -p "$SCHEMATHESIS_TMP/data"
    (cd "$SCHEMATHESIS_TMP" && exec "${env_vars[@]}" "$binary" serve) \
        >"$SCHEMATHESIS_TMP/server.log" 2>&1 &
    SCHEMATHESIS_PID=$!

    local i
    for ((i = 0; i < 300; i++)); do
        if curl -fsS -o /dev/null "$base/readyz" 2>/dev/null; then
            break
        fi
        if ! kill -0 "$SCHEMATHESIS_PID" 2>/dev/null; then
            echo "error: restdose serve ended:" >&2
            cat "$SCHEMATHESIS_TMP/server.log" >&2
            return 1
        fi
        sleep 0.1
    done
    if ! curl -fsS -o /dev/null "$base/readyz"; then
        echo "error: restdose did not become ready on $base:" >&2
        tail -n 50 "$SCHEMATHESIS_TMP/server.log" >&2
        return 1
    fi

    local token
    token=$(cd "$SCHEMATHESIS_TMP" && "${env_vars[@]}" "$venv/bin/python" \
        "$ROOT/scripts/lib/schemathesis_practice.py" "$base" "$SCHEMATHESIS_TMP/data/outbox" "$binary") || {
        echo "error: could not create a practice with an API token:" >&2
        tail -n 50 "$SCHEMATHESIS_TMP/server.log" >&2
        return 1
    }

    local -a common=(
        run "$base/api/v1/openapi.json"
        --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance
        --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-25}"
        --seed 1
        --max-time "${SCHEMATHESIS_MAX_TIME:-30}"
        --no-color
    )
    status=0
    echo "-- public API: sign-up, open statistics, readiness"
    timeout 120 "$venv/bin/schemathesis" "${common[@]}" --include-tag registrations \
        --include-tag statistics --include-tag operations || status=$?
    if ((status == 0)); then
        echo "-- practice API (bearer token)"
        timeout 120 "$venv/bin/schemathesis" "${common[@]}" --include-tag offers \
            --header "Authorization: Bearer $token" || status=$?
    fi
    if ((status != 0)); then
        echo "error: schemathesis found problems (exit $status); server log:" >&2
        tail -n 40 "$SCHEMATHESIS_TMP/server.log" >&2
    fi
    return "$status"
}
