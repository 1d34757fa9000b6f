-- Worker processes that apply agents' messages, by MQTT client id, and when
-- each was last heard from (database clock, milliseconds). The broker keeps
-- what a process received but had not acknowledged in that process's
-- session; when it falls silent, a peer adopts the session (`adopted_by`,
-- until `adopted_until`) and applies what is left there.
CREATE TABLE worker_sessions (
    client_id     TEXT   PRIMARY KEY,
    seen_at       BIGINT NOT NULL,
    adopted_by    TEXT,
    adopted_until BIGINT
);
