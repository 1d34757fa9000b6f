#!/bin/sh
# Writes the password file from the environment, then runs the broker.
# Every password is required: the broker never starts open.
set -eu
: "${MQTT_WORKERS_PASSWORD:?MQTT_WORKERS_PASSWORD is required}"
: "${MQTT_AGENTS:?MQTT_AGENTS is required: agent_id:password pairs separated by spaces}"
passwd=/mosquitto/config/passwd
mkdir -p /mosquitto/config /mosquitto/data
cp /etc/lockerx/mosquitto.conf /etc/lockerx/acl /mosquitto/config/
: > "$passwd"
mosquitto_passwd -b "$passwd" workers "$MQTT_WORKERS_PASSWORD"
for pair in $MQTT_AGENTS; do
    mosquitto_passwd -b "$passwd" "${pair%%:*}" "${pair#*:}"
done
chmod 0600 "$passwd"
# The broker drops to the mosquitto user; its files must stay readable to it.
if id mosquitto >/dev/null 2>&1; then
    chown -R mosquitto:mosquitto /mosquitto/config /mosquitto/data
fi
exec mosquitto -c /mosquitto/config/mosquitto.conf
