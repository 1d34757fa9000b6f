-- An expired item can go back to its sender: RETURNING while its door is
-- open for them, RETURNED once it has closed. SQLite cannot change a CHECK
-- constraint in place: the table is made again with it, rows copied, ids
-- kept. No other table's foreign key points at items.
CREATE TABLE items_new (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    -- kept when a locker is deleted later: the item's history outlives it
    locker_id       BIGINT REFERENCES lockers (id) ON DELETE SET NULL,
    sender_id       BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name            TEXT   NOT NULL,
    description     TEXT,
    receiver_phone  TEXT,
    receiver_email  TEXT,
    status          TEXT   NOT NULL CHECK (status IN (
        'AWAITING_DROP', 'STORED', 'RELEASING', 'COLLECTED', 'CANCELLED', 'EXPIRED', 'CLEARED',
        'RETURNING', 'RETURNED')),
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    stored_at       BIGINT,
    collected_at    BIGINT,
    cleared_at      BIGINT,
    -- the current one-time code: its Argon2id hash, never the code
    otp_hash        TEXT,
    otp_expires_at  BIGINT,
    -- the outbox job that issued it: an older job never overwrites a newer code
    otp_job_id      BIGINT,
    -- wrong tries on the current code, and on the item across codes
    otp_attempts    INTEGER NOT NULL DEFAULT 0,
    otp_failures    INTEGER NOT NULL DEFAULT 0,
    otp_locked_until BIGINT,
    unlock_command_id TEXT,
    door_opened_at  BIGINT,
    drop_deadline   BIGINT,
    collect_by      BIGINT,
    unlock_failed_at BIGINT,
    reminded_at     BIGINT,
    extensions      INTEGER NOT NULL DEFAULT 0,
    CHECK (receiver_phone IS NOT NULL OR receiver_email IS NOT NULL)
);
INSERT INTO items_new (id, locker_id, sender_id, name, description, receiver_phone,
    receiver_email, status, created_at, updated_at, stored_at, collected_at, cleared_at,
    otp_hash, otp_expires_at, otp_job_id, otp_attempts, otp_failures, otp_locked_until,
    unlock_command_id, door_opened_at, drop_deadline, collect_by, unlock_failed_at,
    reminded_at, extensions)
SELECT id, locker_id, sender_id, name, description, receiver_phone,
    receiver_email, status, created_at, updated_at, stored_at, collected_at, cleared_at,
    otp_hash, otp_expires_at, otp_job_id, otp_attempts, otp_failures, otp_locked_until,
    unlock_command_id, door_opened_at, drop_deadline, collect_by, unlock_failed_at,
    reminded_at, extensions
FROM items;
DROP TABLE items;
ALTER TABLE items_new RENAME TO items;
CREATE INDEX items_sender_idx ON items (sender_id, id);
CREATE INDEX items_collect_by_idx ON items (status, collect_by);
CREATE UNIQUE INDEX items_one_active_per_locker ON items (locker_id)
    WHERE status IN ('AWAITING_DROP', 'STORED', 'RELEASING', 'EXPIRED', 'RETURNING');
