#!/usr/bin/env bash
# Runs the production Mosquitto configuration (deploy/mosquitto) on a spare
# port with the local mosquitto, and checks what it must enforce: no
# anonymous clients, and each agent confined to its own topics while the
# workers see every agent's events through a shared subscription.
set -euo pipefail
cd "$(dirname "$0")/mosquitto"
port=${CHECK_BROKER_PORT:-18883}
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT

sed -e "s#/mosquitto/data/#$dir/data/#" -e "s#/mosquitto/config/#$dir/#" \
    -e "s#^listener 1883#listener $port 127.0.0.1#" -e "s#^log_dest stdout#log_dest file $dir/log#" \
    mosquitto.conf > "$dir/mosquitto.conf"
cp acl "$dir/acl"
mkdir -p "$dir/data"
: > "$dir/passwd"
mosquitto_passwd -b "$dir/passwd" workers workers-pw
mosquitto_passwd -b "$dir/passwd" site-1 site1-pw
mosquitto_passwd -b "$dir/passwd" site-2 site2-pw
chmod 0600 "$dir/passwd"
# Started as root, mosquitto drops to its own user, which must read all this.
if [ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1; then
    chmod 0755 "$dir"
    chown -R mosquitto "$dir"
fi
mosquitto -c "$dir/mosquitto.conf" & pid=$!
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

fail() { echo "broker check failed: $*" >&2; cat "$dir/log" >&2; exit 1; }
sub() { # user password topic seconds -> messages received
    timeout "$4" mosquitto_sub -p "$port" -u "$1" -P "$2" -t "$3" -q 1 -i "check-$RANDOM" 2>/dev/null || true
}
publish() { mosquitto_pub -p "$port" -u "$1" -P "$2" -t "$3" -q 1 -m "$4" 2>/dev/null; }

# No anonymous clients, no wrong passwords.
if mosquitto_pub -p "$port" -t lockerx/agents/site-1/events -m x 2>/dev/null; then fail "anonymous publish accepted"; fi
if mosquitto_pub -p "$port" -u site-1 -P wrong -t lockerx/agents/site-1/events -m x 2>/dev/null; then fail "wrong password accepted"; fi

# The workers see site-1's events through the shared subscription; what
# site-1 writes on site-2's topics never arrives.
sub workers workers-pw '$share/lockerx-workers/lockerx/agents/+/events' 3 > "$dir/events" & listener=$!
sleep 1
publish site-1 site1-pw lockerx/agents/site-1/events own-event
publish site-1 site1-pw lockerx/agents/site-2/events forged-event || true
wait "$listener" || true
grep -qx own-event "$dir/events" || fail "workers did not receive site-1's event"
if grep -q forged-event "$dir/events"; then fail "site-1 wrote on site-2's topic"; fi

# An agent cannot read another agent's commands; it reads its own.
sub site-1 site1-pw lockerx/agents/site-2/commands 3 > "$dir/stolen" & thief=$!
sub site-1 site1-pw lockerx/agents/site-1/commands 3 > "$dir/own" & owner=$!
sleep 1
publish workers workers-pw lockerx/agents/site-2/commands for-site-2
publish workers workers-pw lockerx/agents/site-1/commands for-site-1
wait "$thief" "$owner" || true
if [ -s "$dir/stolen" ]; then fail "site-1 read site-2's commands"; fi
grep -qx for-site-1 "$dir/own" || fail "site-1 did not receive its own command"

# Pickup grants: an agent reads its own (retained), never another's; the
# workers read its pickup entries.
publish_retained() { mosquitto_pub -p "$port" -u "$1" -P "$2" -t "$3" -q 1 -r -m "$4" 2>/dev/null; }
publish_retained workers workers-pw lockerx/agents/site-1/grants/7 grant-for-site-1
publish_retained workers workers-pw lockerx/agents/site-2/grants/8 grant-for-site-2
sub site-1 site1-pw 'lockerx/agents/site-1/grants/+' 2 > "$dir/grants" & own=$!
sub site-1 site1-pw 'lockerx/agents/site-2/grants/+' 2 > "$dir/stolen-grants" & thief=$!
wait "$own" "$thief" || true
grep -qx grant-for-site-1 "$dir/grants" || fail "site-1 did not receive its own grant"
if [ -s "$dir/stolen-grants" ]; then fail "site-1 read site-2's grants"; fi
sub workers workers-pw '$share/lockerx-workers/lockerx/agents/+/pickups' 3 > "$dir/pickups" & listener=$!
sleep 1
publish site-1 site1-pw lockerx/agents/site-1/pickups own-entry
publish site-1 site1-pw lockerx/agents/site-2/pickups forged-entry || true
wait "$listener" || true
grep -qx own-entry "$dir/pickups" || fail "workers did not receive site-1's pickup entry"
if grep -q forged-entry "$dir/pickups"; then fail "site-1 wrote on site-2's pickups"; fi

echo "broker configuration: anonymous refused, agents confined to their topics and grants, workers share events and pickup entries"
