#!/usr/bin/env bash
# The OpenAPI document checked against the running server: schemathesis sends
# generated requests as an admin, as a user and anonymously, on SQLite and on
# PostgreSQL. A server error, a response outside its schema, a status the
# document does not list, or valid input refused fails the run.
#   bash .ci/schemathesis.sh [postgres-url]
set -euo pipefail
cd "$(dirname "$0")/.."

PG_URL="${1:-postgres://postgres@127.0.0.1:5432/postgres}"
VENV=target/ci-venv
ST_VERSION=4.32.5
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,positive_data_acceptance
PORT=18800
BASE="http://127.0.0.1:$PORT"
J='content-type: application/json'

if ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$ST_VERSION"; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "schemathesis==$ST_VERSION"
fi
cargo build -q --bin locker-exchange
stack_bin="${CARGO_TARGET_DIR:-$PWD/target}/debug/locker-exchange"

token() { # email password
    curl -sf "$BASE/Auth/login" -H "$J" -d "{\"email\":\"$1\",\"password\":\"$2\"}" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}

st_run() { # extra arguments
    PYTHONPATH=.ci SCHEMATHESIS_HOOKS=schemathesis_hooks "$VENV/bin/st" run "$BASE/openapi.json" "$@" \
        --checks "$CHECKS" --max-examples 40 --seed 1 --workers 2 --no-color \
        --suppress-health-check all --generation-database none
}

check_backend() { # name database-url
    local dir pid
    dir=$(mktemp -d)
    echo "-- $1"
    (cd "$dir" && DATABASE_URL="$2" LISTEN_ADDR="127.0.0.1:$PORT" \
        MQTT_EMBEDDED_ADDR="127.0.0.1:$((PORT + 1))" LOG_FORMAT=json RUST_LOG=warn \
        ADMIN_EMAIL=admin@example.com ADMIN_PASSWORD=schema-admin-password \
        exec "$stack_bin" >"$dir/stack.log" 2>&1) &
    pid=$!
    local ready=false
    for _ in $(seq 60); do
        curl -sf "$BASE/readyz" >/dev/null && ready=true && break
        sleep 1
    done
    if ! $ready; then
        echo "the stack did not start on $1:" && cat "$dir/stack.log"
        return 1
    fi
    curl -sf "$BASE/Auth/signup" -H "$J" \
        -d '{"name":"Schema User","email":"user@example.com","password":"schema-user-password"}' >/dev/null
    local admin user status=0
    admin=$(token admin@example.com schema-admin-password)
    user=$(token user@example.com schema-user-password)
    for who in admin user anonymous; do
        # A logout would end the login the rest of the run stands on.
        local auth=()
        case $who in
            admin) auth=(-H "Authorization: Bearer $admin" --exclude-path /Auth/logout) ;;
            user) auth=(-H "Authorization: Bearer $user" --exclude-path /Auth/logout) ;;
        esac
        echo "--- as $who"
        # Findings repeat under seed 1; schemathesis's own generator has been
        # seen to stop once with "inconsistent results". A failure counts
        # when a second run has it too.
        st_run "${auth[@]}" || { echo "--- as $who, again"; st_run "${auth[@]}"; } || status=1
    done
    kill "$pid"
    wait "$pid" || true
    if [ "$status" != 0 ]; then
        echo "stack log of $1:" && tail -n 50 "$dir/stack.log"
    fi
    rm -rf "$dir"
    return "$status"
}

status=0
check_backend SQLite "sqlite://locker-exchange.db" || status=1
db="schemathesis_$$"
psql -q "$PG_URL" -c "CREATE DATABASE $db"
check_backend PostgreSQL "${PG_URL%/*}/$db" || status=1
psql -q "$PG_URL" -c "DROP DATABASE $db WITH (FORCE)"
exit "$status"
