#!/usr/bin/env bash
# Runs the production Mosquitto configuration (deploy/mosquitto) on spare
# ports with the local mosquitto, and checks what it must enforce: no
# anonymous clients, agents and workers each on a listener of their own,
# each agent confined to its own topics and its own session while the
# workers see every agent's events through a shared subscription.
set -euo pipefail
cd "$(dirname "$0")/mosquitto"
port=${CHECK_BROKER_PORT:-18883}
workers_port=$((port + 1))
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT

sed -e "s#/mosquitto/data/#$dir/data/#" -e "s#/mosquitto/config/#$dir/#" \
    -e "s#^listener 1883#listener $port 127.0.0.1#" -e "s#^listener 1884#listener $workers_port 127.0.0.1#" \
    -e "s#^log_dest stdout#log_dest file $dir/log#" \
    mosquitto.conf > "$dir/mosquitto.conf"
cp acl-agents acl-workers "$dir/"
mkdir -p "$dir/data"
: > "$dir/passwd-workers"
: > "$dir/passwd-agents"
mosquitto_passwd -b "$dir/passwd-workers" workers workers-pw
mosquitto_passwd -b "$dir/passwd-agents" site-1 site1-pw
mosquitto_passwd -b "$dir/passwd-agents" site-2 site2-pw
chmod 0600 "$dir/passwd-workers" "$dir/passwd-agents"
# Started as root, mosquitto drops to its own user, which must read all this.
if [ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1; then
    chmod 0755 "$dir"
    chown -R mosquitto "$dir"
fi
mosquitto -c "$dir/mosquitto.conf" & pid=$!
for p in "$port" "$workers_port"; do
    for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break; sleep 0.1; done
done

fail() { echo "broker check failed: $*" >&2; cat "$dir/log" >&2; exit 1; }
# Each account on its listener: the workers on theirs, agents on theirs.
port_of() { if [ "$1" = workers ]; then echo "$workers_port"; else echo "$port"; fi; }
sub() { # user password topic seconds -> messages received, each as "topic payload"
    timeout "$4" mosquitto_sub -p "$(port_of "$1")" -u "$1" -P "$2" -t "$3" -q 1 -i "check-$RANDOM" -v 2>/dev/null || true
}
publish() { mosquitto_pub -p "$(port_of "$1")" -u "$1" -P "$2" -t "$3" -q 1 -m "$4" 2>/dev/null; }

# No anonymous clients, no wrong passwords, no account on the other's
# listener.
for p in "$port" "$workers_port"; do
    if mosquitto_pub -p "$p" -t lockerx/agents/site-1/events -m x 2>/dev/null; then fail "anonymous publish accepted on $p"; fi
done
if mosquitto_pub -p "$port" -u site-1 -P wrong -t lockerx/agents/site-1/events -m x 2>/dev/null; then fail "wrong password accepted"; fi
if mosquitto_pub -p "$workers_port" -u site-1 -P site1-pw -t lockerx/agents/site-1/events -m x 2>/dev/null; then fail "an agent logged in on the workers' listener"; fi
if mosquitto_pub -p "$port" -u workers -P workers-pw -t lockerx/agents/site-1/commands -m x 2>/dev/null; then fail "the workers logged in on the agents' listener"; fi

# The workers see site-1's events through the shared subscription; what
# site-1 writes on site-2's topics never arrives.
sub workers workers-pw '$share/lockerx-workers/lockerx/agents/+/events' 3 > "$dir/events" & listener=$!
sleep 1
publish site-1 site1-pw lockerx/agents/site-1/events own-event
publish site-1 site1-pw lockerx/agents/site-2/events forged-event || true
wait "$listener" || true
grep -qx "lockerx/agents/site-1/events own-event" "$dir/events" || fail "workers did not receive site-1's event"
if grep -q forged-event "$dir/events"; then fail "site-1 wrote on site-2's topic"; fi

# An agent cannot read another agent's commands; it reads its own. (One
# connection: an agent's client id is its user name, so a second would
# take the first one's place.)
sub site-1 site1-pw 'lockerx/agents/+/commands' 3 > "$dir/commands" & agent=$!
sleep 1
publish workers workers-pw lockerx/agents/site-2/commands for-site-2
publish workers workers-pw lockerx/agents/site-1/commands for-site-1
wait "$agent" || true
if grep -q for-site-2 "$dir/commands"; then fail "site-1 read site-2's commands"; fi
grep -qx "lockerx/agents/site-1/commands for-site-1" "$dir/commands" || fail "site-1 did not receive its own command"

# Pickup grants: an agent reads its own (retained), never another's; the
# workers read its pickup entries.
publish_retained() { mosquitto_pub -p "$(port_of "$1")" -u "$1" -P "$2" -t "$3" -q 1 -r -m "$4" 2>/dev/null; }
publish_retained workers workers-pw lockerx/agents/site-1/grants/7 grant-for-site-1
publish_retained workers workers-pw lockerx/agents/site-2/grants/8 grant-for-site-2
sub site-1 site1-pw 'lockerx/agents/+/grants/+' 2 > "$dir/grants"
grep -qx "lockerx/agents/site-1/grants/7 grant-for-site-1" "$dir/grants" || fail "site-1 did not receive its own grant"
if grep -q grant-for-site-2 "$dir/grants"; then fail "site-1 read site-2's grants"; fi
sub workers workers-pw '$share/lockerx-workers/lockerx/agents/+/pickups' 3 > "$dir/pickups" & listener=$!
sleep 1
publish site-1 site1-pw lockerx/agents/site-1/pickups own-entry
publish site-1 site1-pw lockerx/agents/site-2/pickups forged-entry || true
wait "$listener" || true
grep -qx "lockerx/agents/site-1/pickups own-entry" "$dir/pickups" || fail "workers did not receive site-1's pickup entry"
if grep -q forged-entry "$dir/pickups"; then fail "site-1 wrote on site-2's pickups"; fi

# An agent asking for a worker's client id is given its own: the worker's
# session, away meanwhile, keeps the event queued for it. (Given the
# worker's, the agent would have taken the session, and the ACL would have
# dropped the event.)
worker_session() { # seconds -> the events the workers' persistent session receives
    timeout "$1" mosquitto_sub -p "$workers_port" -u workers -P workers-pw -i workers-check -c -q 1 \
        -t '$share/lockerx-workers/lockerx/agents/+/events' 2>/dev/null || true
}
worker_session 1 > /dev/null
timeout 2 mosquitto_sub -p "$port" -u site-1 -P site1-pw -i workers-check -c -q 1 \
    -t lockerx/agents/site-1/commands > /dev/null 2>&1 & impostor=$!
sleep 0.5
publish site-1 site1-pw lockerx/agents/site-1/events while-impersonated
wait "$impostor" || true
worker_session 2 > "$dir/kept"
grep -qx while-impersonated "$dir/kept" || fail "an agent took a worker's session and the events queued for it"

echo "broker configuration: anonymous refused, agents and workers each on their own listener, agents confined to their topics, grants and sessions, workers share events and pickup entries"
