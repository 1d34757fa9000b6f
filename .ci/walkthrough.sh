#!/usr/bin/env bash
# The README's curl walk-through, exactly as written, run twice against
# `cargo run`'s binary: each run must take an item from STORED to COLLECTED.
# Only the person is replaced: the code they would read off the console and
# type at `read -p` is read from the console log.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build -q --bin locker-exchange
stack_bin="${CARGO_TARGET_DIR:-$PWD/target}/debug/locker-exchange"
dir=$(mktemp -d)
log="$dir/console.log"
(cd "$dir" && exec "$stack_bin" >"$log" 2>&1) &
stack=$!
trap 'kill $stack 2>/dev/null || true; rm -rf "$dir"' EXIT
ready=false
for _ in $(seq 60); do
    curl -sf http://127.0.0.1:8000/readyz >/dev/null && ready=true && break
    sleep 1
done
$ready || { echo "the stack did not start:" && cat "$log"; exit 1; }

# The fenced block after "A whole exchange with curl:" in the README, then
# the one after "pickup PIN from the", run in the same shell.
block() {
    awk -v start="$1" 'index($0, start) {found=1} found && /^```sh/ {inside=1; next}
         inside && /^```/ {exit} inside {print}' README.md
}
{ block "exchange with curl:"; block "pickup PIN from the"; } >"$dir/walk.sh"
grep -q "read -p 'code: '" "$dir/walk.sh" || { echo "the walk-through has no code prompt" >&2; exit 1; }
grep -q "read -p 'PIN: '" "$dir/walk.sh" || { echo "the walk-through has no PIN prompt" >&2; exit 1; }
sed -i "s#read -p 'code: ' C;#sleep 1; C=\$(grep -oE 'code is [0-9]{6}' '$log' | tail -1 | grep -oE '[0-9]{6}');#" "$dir/walk.sh"
sed -i "s#read -p 'PIN: ' P;#P=\$(grep -oE 'pickup PIN is [0-9]{8}' '$log' | tail -1 | grep -oE '[0-9]{8}');#" "$dir/walk.sh"
# The stack serves its keypads in the directory it runs in.
export AGENT_KEYPAD_SOCKET="$dir/locker-agent.sock"

for run in 1 2; do
    out=$(bash "$dir/walk.sh")
    echo "-- run $run"
    echo "$out"
    [ "$(grep -o '"STORED"' <<<"$out" | wc -l)" = 2 ] || { echo "run $run: the items were not STORED" >&2; exit 1; }
    [ "$(grep -o '"COLLECTED"' <<<"$out" | wc -l)" = 2 ] || { echo "run $run: the items were not COLLECTED" >&2; exit 1; }
    grep -qx accepted <<<"$out" || { echo "run $run: the PIN was not accepted" >&2; exit 1; }
done
echo "the README walk-through ran twice"
