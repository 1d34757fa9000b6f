-- Pickup at the locker. Each stored item's pickup PIN and QR token, kept
-- only as hashes under a per-item salt (what the agent gets to check them
-- offline) and, for the pickup page, the token's SHA-256.
CREATE TABLE pickup_passes (
    item_id      BIGINT PRIMARY KEY REFERENCES items (id),
    locker_id    BIGINT NOT NULL,
    salt         TEXT   NOT NULL,
    pin_hash     TEXT   NOT NULL,
    qr_hash      TEXT   NOT NULL,
    token_digest TEXT   NOT NULL UNIQUE,
    issued_at    BIGINT NOT NULL
);
CREATE INDEX pickup_passes_locker_idx ON pickup_passes (locker_id, item_id);

-- Every code entry and offline collection an agent sent, by its id, with
-- the reply it got: a copy delivered again gets the same reply and changes
-- nothing.
CREATE TABLE pickup_requests (
    agent_id    TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    locker_id   BIGINT  NOT NULL,
    ok          INTEGER NOT NULL,
    reason      TEXT,
    received_at BIGINT  NOT NULL,
    PRIMARY KEY (agent_id, id)
);
