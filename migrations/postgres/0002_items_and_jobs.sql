-- Items in lockers, their one-time codes, and the job pipeline's tables.

CREATE TABLE items (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- kept when a locker is deleted later: the item's history outlives it
    locker_id       BIGINT REFERENCES lockers (id) ON DELETE SET NULL,
    sender_id       BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name            TEXT   NOT NULL,
    description     TEXT,
    receiver_phone  TEXT,
    receiver_email  TEXT,
    status          TEXT   NOT NULL CHECK (status IN ('AWAITING_DROP', 'STORED', 'RELEASING', 'COLLECTED', 'CANCELLED', 'EXPIRED', 'CLEARED')),
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
    CHECK (receiver_phone IS NOT NULL OR receiver_email IS NOT NULL)
);
CREATE INDEX items_sender_idx ON items (sender_id, id);
-- At most one item in a locker at a time.
CREATE UNIQUE INDEX items_one_active_per_locker ON items (locker_id)
    WHERE status IN ('AWAITING_DROP', 'STORED', 'RELEASING');

-- Jobs written in the same transaction as the state change they follow from;
-- the relay publishes them and stamps published_at.
CREATE TABLE outbox (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         TEXT   NOT NULL,
    payload      TEXT   NOT NULL,
    trace_id     TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    published_at BIGINT
);
CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL;

-- One row per job taken up; done_at once its effect is done. A worker holds
-- the row (locked, on PostgreSQL) while it works, so a duplicate delivery
-- waits, then finds it done and does nothing.
CREATE TABLE job_runs (
    job_id  BIGINT PRIMARY KEY,
    kind    TEXT   NOT NULL,
    done_at BIGINT
);

-- Fixed-window counters shared by every api instance.
CREATE TABLE rate_limits (
    key          TEXT    PRIMARY KEY,
    window_start BIGINT  NOT NULL,
    hits         INTEGER NOT NULL
);
