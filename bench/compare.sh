#!/usr/bin/env bash
# Runs the same scenarios against two builds, in one run on this machine, in
# the production topology (locker-api + locker-workers over PostgreSQL,
# RabbitMQ and Mosquitto), and prints the figures side by side with the
# ceilings each run measured. The same locker-bench drives both
# unless BENCH_BEFORE names another.
#
#   bench/compare.sh BEFORE_DIR AFTER_DIR
#
# Each DIR holds release binaries locker-api and locker-workers (e.g.
# target/release of two checkouts). A DIR that also holds locker-hasher runs
# the hashing there, as the production topology does: in a session of its
# own (a CPU group, with sched_autogroup) at the lowest weight (nice 19), as
# compose gives its container the lowest cpu_shares. Settings (environment):
#   SCENARIOS  which runs, in order (default: "read:32 read:64 unlock exchange");
#              "mixed:64" reads at 64 connections while exchanges run at the
#              same places (reported beside the reads)
#   DURATION   seconds per run (default 15)
#   ROUNDS     how many times each scenario runs, before and after in turn
#              (default 1; the machine's noise shows between rounds)
#   BENCH      the locker-bench binary (default AFTER_DIR/locker-bench)
#   BENCH_BEFORE  the one that drives BEFORE_DIR's runs (default BENCH): to
#              measure a change to the benchmark itself, on one build
#   DATABASE_SERVER  postgres://postgres@127.0.0.1:5432 (a scratch database
#              lockerx_compare is made there for every run)
#   AMQP_URL   the local RabbitMQ
#   MQTT_URL   a broker to use; unset, a scratch Mosquitto runs on port
#              MQTT_PORT (default 18831) with the production configuration's
#              settings (deploy/mosquitto/mosquitto.conf) but no accounts
#   OUT        where each run's JSON report and logs go (default target/compare)
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: $0 BEFORE_DIR AFTER_DIR" >&2; exit 2; }
before=$(cd "$1" && pwd)
after=$(cd "$2" && pwd)
scenarios=${SCENARIOS:-"read:32 read:64 unlock exchange"}
duration=${DURATION:-15}
rounds=${ROUNDS:-1}
bench=${BENCH:-$after/locker-bench}
bench_before=${BENCH_BEFORE:-$bench}
server=${DATABASE_SERVER:-postgres://postgres@127.0.0.1:5432}
out=${OUT:-target/compare}
mkdir -p "$out"

export AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
broker_pid=
if [ -z "${MQTT_URL:-}" ]; then
    port=${MQTT_PORT:-18831}
    broker_dir=$(mktemp -d)
    # The production broker's settings, open to anonymous clients on a spare port.
    grep -vE '^(per_listener_settings|listener|allow_anonymous|use_username_as_clientid|password_file|acl_file|persistence|log_dest)' \
        deploy/mosquitto/mosquitto.conf > "$broker_dir/mosquitto.conf"
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n' \
        "$port" >> "$broker_dir/mosquitto.conf"
    chmod -R a+rX "$broker_dir"
    mosquitto -c "$broker_dir/mosquitto.conf" & broker_pid=$!
    for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    MQTT_URL=mqtt://127.0.0.1:$port
fi
export MQTT_URL
export DATABASE_URL="$server/lockerx_compare"
export LISTEN_ADDR=127.0.0.1:18400
export ACCESS_SECRET_KEY=compare-access-secret-0123456789abcdef
export REFRESH_SECRET_KEY=compare-refresh-secret-0123456789abcdef
export OTP_SECRET=compare-otp-secret-0123456789abcdef0123
export AGENT_SIGNING_SECRET=compare-agent-secret-0123456789abcdef0
export ADMIN_EMAIL=admin@bench.test ADMIN_PASSWORD=compare-admin-password
export SMTP_HOST=127.0.0.1 SMTP_PORT=12526 SMTP_TLS=none EMAIL_FROM=lockers@bench.test
export OTP_RATE_PER_LOCKER=1000000 OTP_RATE_PER_CLIENT=1000000 \
       OTP_RATE_PER_CONTACT=1000000 COLLECT_RATE_PER_CLIENT=1000000
export RUST_LOG=warn LOG_FORMAT=json
export HASHER_TOKEN=compare-hasher-token-0123456789abcdef0123
hasher_addr=127.0.0.1:18410

pids=()
stop_stack() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
}
trap 'stop_stack; [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null; true' EXIT

# One run: a fresh database, queues and topics, the build's two processes,
# the benchmark, then both processes stopped.
run() {
    local label=$1 dir=$2 scenario=$3 concurrency=$4 name=$5
    psql -q "$server/postgres" -c "DROP DATABASE IF EXISTS lockerx_compare" -c "CREATE DATABASE lockerx_compare"
    export AMQP_QUEUE_PREFIX="compare-$label-$name" MQTT_TOPIC_ROOT="compare-$label-$name" WORKER_ID="compare-$label-$name"
    unset HASHER_URL
    local hasher=
    if [ -x "$dir/locker-hasher" ]; then
        HASHER_LISTEN_ADDR=$hasher_addr setsid "$dir/locker-hasher" > "$out/$label-$name.hasher.log" 2>&1 &
        hasher=$!
        pids+=("$hasher")
        for _ in $(seq 50); do curl -sf "http://$hasher_addr/healthz" >/dev/null && break; sleep 0.1; done
        # Only once it answers has setsid surely made its group: lowered
        # before, the group lowered would be this script's, the api's and
        # the workers'.
        if [ "$(cat "/proc/$hasher/autogroup")" != "$(cat /proc/$$/autogroup)" ]; then
            echo 19 > "/proc/$hasher/autogroup"
        else
            echo "$label: the hasher has no CPU group of its own (no sched_autogroup?)" >&2
        fi
        export HASHER_URL=http://$hasher_addr
    fi
    "$dir/locker-api" > "$out/$label-$name.api.log" 2>&1 &
    pids+=($!)
    local api=$!
    for _ in $(seq 150); do curl -sf "http://$LISTEN_ADDR/healthz" >/dev/null && break; sleep 0.2; done
    curl -sf "http://$LISTEN_ADDR/healthz" >/dev/null || { echo "$label: locker-api did not start" >&2; cat "$out/$label-$name.api.log" >&2; exit 1; }
    "$dir/locker-workers" > "$out/$label-$name.workers.log" 2>&1 &
    pids+=($!)
    local workers=$!
    sleep 2
    local mosquitto=$broker_pid
    [ -n "$mosquitto" ] || mosquitto=$(pgrep -x mosquitto | head -1 || true)
    local stack=(--base "http://$LISTEN_ADDR" --mqtt "$MQTT_URL" --topic-root "$MQTT_TOPIC_ROOT")
    local measured=$scenario smtp="$SMTP_HOST:$SMTP_PORT" beside= drive=$bench
    [ "$label" = before ] && drive=$bench_before
    echo "== $label: $name" >&2
    if [ "$scenario" = mixed ]; then
        # Exchanges (16 in flight) at the places the reads ask for, started
        # first so that the reads' run falls within theirs.
        "$drive" "${stack[@]}" --scenario exchange --duration $((duration + 10)) --concurrency 16 \
            --smtp "$smtp" --places 10 --lockers 16 --agents 4 --no-ceilings \
            --json "$out/$label-$name.exchanges.json" > "$out/$label-$name.exchanges.txt" 2>&1 &
        beside=$!
        sleep 6
        measured=read smtp="$SMTP_HOST:$((SMTP_PORT + 1))"
    fi
    local args=("${stack[@]}" --scenario "$measured" --duration "$duration" --concurrency "$concurrency"
                --smtp "$smtp" --database-url "$DATABASE_URL"
                --pid "api=$api" --pid "workers=$workers" --json "$out/$label-$name.json")
    [ -n "$mosquitto" ] && args+=(--pid "mosquitto=$mosquitto")
    [ -n "$hasher" ] && args+=(--pid "hasher=$hasher")
    case $scenario in
        read) args+=(--places 10 --lockers 200 --agents 0) ;;
        # pgbench beside the exchanges would measure nothing steady.
        mixed) args+=(--places 10 --lockers 200 --agents 0 --no-ceilings) ;;
        *) args+=(--lockers "$concurrency" --agents 4) ;;
    esac
    "$drive" "${args[@]}" > "$out/$label-$name.txt" 2>"$out/$label-$name.bench.log" \
        || echo "$label $name: the benchmark reported errors (see $out/$label-$name.txt)" >&2
    if [ -n "$beside" ]; then
        wait "$beside" || echo "$label $name: the exchanges reported errors (see $out/$label-$name.exchanges.txt)" >&2
    fi
    stop_stack
    # Each run's 18 quorum queues would otherwise pile up in the broker.
    rabbitmqctl -q list_queues name 2>/dev/null | grep "^$AMQP_QUEUE_PREFIX\." \
        | xargs -r -n 1 -P 6 rabbitmqctl -q delete_queue >/dev/null 2>&1 || true
}

names=()
for entry in $scenarios; do
    scenario=${entry%%:*}
    concurrency=16
    [ "$entry" != "$scenario" ] && concurrency=${entry#*:}
    for round in $(seq "$rounds"); do
        name="$scenario-$concurrency"
        [ "$rounds" -gt 1 ] && name="$name-round$round"
        names+=("$name")
        # Before and after back to back, so both meet the same machine.
        run before "$before" "$scenario" "$concurrency" "$name"
        run after "$after" "$scenario" "$concurrency" "$name"
    done
done

python3 bench/compare_report.py "$out" "${names[@]}"
