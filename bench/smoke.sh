#!/usr/bin/env bash
# A few-second run of every scenario against the development stack, hashing
# on a locker-hasher as in production, which must finish with zero errors (no
# timing is judged). Used by CI.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${PROFILE:-debug}
cargo build ${CARGO_FLAGS:-} -p locker-exchange -p locker-hasher -p locker-bench --bins
dir=$(mktemp -d)
export DATABASE_URL="sqlite://$dir/bench.db" LISTEN_ADDR=127.0.0.1:18080 MQTT_EMBEDDED_ADDR=127.0.0.1:18884
export SMTP_HOST=127.0.0.1 SMTP_PORT=12525 SMTP_TLS=none EMAIL_FROM=lockers@bench.test
export OTP_RATE_PER_LOCKER=1000000 OTP_RATE_PER_CLIENT=1000000 OTP_RATE_PER_CONTACT=1000000 COLLECT_RATE_PER_CLIENT=1000000
export RUST_LOG=${RUST_LOG:-warn}
export HASHER_LISTEN_ADDR=127.0.0.1:18100 HASHER_URL=http://127.0.0.1:18100 HASHER_TOKEN=smoke-hasher-token-0123456789abcdef0123
"${CARGO_TARGET_DIR:-target}/$profile/locker-hasher" > "$dir/hasher.log" 2>&1 &
hasher=$!
trap 'kill $hasher 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 100); do curl -sf http://127.0.0.1:18100/healthz >/dev/null && break; sleep 0.1; done
"${CARGO_TARGET_DIR:-target}/$profile/locker-exchange" > "$dir/stack.log" 2>&1 &
stack=$!
trap 'kill $stack $hasher 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 100); do curl -sf http://127.0.0.1:18080/healthz >/dev/null && break; sleep 0.2; done

bench() {
    RUST_LOG=error "${CARGO_TARGET_DIR:-target}/$profile/locker-bench" --base http://127.0.0.1:18080 --mqtt mqtt://127.0.0.1:18884 \
        --smtp 127.0.0.1:12525 --no-ceilings --pid "stack=$stack" --pid "hasher=$hasher" "$@"
}
bench --scenario read --duration 2 --concurrency 8
bench --scenario exchange --count 12 --concurrency 4
bench --scenario unlock --count 40 --concurrency 4
echo "benchmark smoke run: no errors"
