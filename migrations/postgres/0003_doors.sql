-- Doors commanded and observed over MQTT.

ALTER TABLE lockers ADD COLUMN door_state TEXT NOT NULL DEFAULT 'unknown'
    CHECK (door_state IN ('open', 'closed', 'unknown'));
ALTER TABLE lockers ADD COLUMN door_changed_at BIGINT;

-- Site agents as last heard from (their retained status and last will).
CREATE TABLE agents (
    id        TEXT    PRIMARY KEY,
    online    INTEGER NOT NULL CHECK (online IN (0, 1)),
    status_at BIGINT  NOT NULL
);

-- The door step an item waits on: the unlock command sent for it, when the
-- door opened under it, and by when a sender must open it to drop.
ALTER TABLE items ADD COLUMN unlock_command_id TEXT;
ALTER TABLE items ADD COLUMN door_opened_at BIGINT;
ALTER TABLE items ADD COLUMN drop_deadline BIGINT;
ALTER TABLE items ADD COLUMN collect_by BIGINT;
-- set when an unlock could not be delivered: the item stays put, for an admin
ALTER TABLE items ADD COLUMN unlock_failed_at BIGINT;

-- Every unlock command sent, and the agent's answer.
CREATE TABLE commands (
    id         TEXT   PRIMARY KEY,
    agent_id   TEXT   NOT NULL,
    locker_id  BIGINT NOT NULL,
    item_id    BIGINT,
    purpose    TEXT   NOT NULL CHECK (purpose IN ('drop', 'collect', 'maintenance')),
    issued_at  BIGINT NOT NULL,
    -- the request that caused it, carried on to the jobs its door events cause
    trace_id   TEXT   NOT NULL DEFAULT '',
    acked_at   BIGINT,
    ok         INTEGER CHECK (ok IN (0, 1)),
    reason     TEXT
);

-- Door events by their id: each is applied once.
CREATE TABLE door_events (
    id          TEXT   PRIMARY KEY,
    agent_id    TEXT   NOT NULL,
    locker_id   BIGINT NOT NULL,
    kind        TEXT   NOT NULL,
    at          BIGINT NOT NULL,
    command_id  TEXT,
    received_at BIGINT NOT NULL
);
CREATE INDEX door_events_locker_idx ON door_events (locker_id, at);

-- An expired item is still in its locker until an admin clears it.
DROP INDEX items_one_active_per_locker;
CREATE UNIQUE INDEX items_one_active_per_locker ON items (locker_id)
    WHERE status IN ('AWAITING_DROP', 'STORED', 'RELEASING', 'EXPIRED');
