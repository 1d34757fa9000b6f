#!/bin/sh
# Writes the password files from the environment, then runs the broker: the
# workers' account for their listener, the agents' for theirs. Every password
# is required: the broker never starts open.
set -eu
: "${MQTT_WORKERS_PASSWORD:?MQTT_WORKERS_PASSWORD is required}"
: "${MQTT_AGENTS:?MQTT_AGENTS is required: agent_id:password pairs separated by spaces}"
config=/mosquitto/config
mkdir -p "$config" /mosquitto/data
cp /etc/lockerx/mosquitto.conf /etc/lockerx/acl-agents /etc/lockerx/acl-workers "$config/"
: > "$config/passwd-workers"
: > "$config/passwd-agents"
mosquitto_passwd -b "$config/passwd-workers" workers "$MQTT_WORKERS_PASSWORD"
for pair in $MQTT_AGENTS; do
    mosquitto_passwd -b "$config/passwd-agents" "${pair%%:*}" "${pair#*:}"
done
chmod 0600 "$config/passwd-workers" "$config/passwd-agents"
# The broker drops to the mosquitto user; its files must stay readable to it.
if id mosquitto >/dev/null 2>&1; then
    chown -R mosquitto:mosquitto "$config" /mosquitto/data
fi
exec mosquitto -c "$config/mosquitto.conf"
