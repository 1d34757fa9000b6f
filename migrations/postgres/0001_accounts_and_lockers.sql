-- Timestamps are milliseconds since the Unix epoch (BIGINT) on both backends.

CREATE TABLE users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          TEXT   NOT NULL,
    email         TEXT   NOT NULL,
    password_hash TEXT   NOT NULL,
    role          TEXT   NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    created_at    BIGINT NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email)
);

-- One row per login; revoking it invalidates every token issued under it.
CREATE TABLE sessions (
    id            TEXT   PRIMARY KEY,
    user_id       BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at    BIGINT NOT NULL,
    revoked_at    BIGINT,
    revoke_reason TEXT
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);

-- Refresh tokens are single-use: spent on rotation, and a spent one shown
-- again revokes its session.
CREATE TABLE refresh_tokens (
    jti        TEXT   PRIMARY KEY,
    session_id TEXT   NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    issued_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    spent_at   BIGINT
);
CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);

CREATE TABLE lockers (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    location   TEXT   NOT NULL,
    -- location trimmed, inner whitespace collapsed, lower-cased: what by-place matches on
    place_key  TEXT   NOT NULL,
    name       TEXT,
    size       TEXT   NOT NULL DEFAULT 'MEDIUM' CHECK (size IN ('SMALL', 'MEDIUM', 'LARGE')),
    agent_id   TEXT,
    status     TEXT   NOT NULL DEFAULT 'AVAILABLE' CHECK (status IN ('AVAILABLE', 'OCCUPIED', 'OUT_OF_SERVICE')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX lockers_place_key_idx ON lockers (place_key, status);

CREATE TABLE audit_log (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at       BIGINT NOT NULL,
    actor_id BIGINT,
    action   TEXT   NOT NULL,
    subject  TEXT   NOT NULL,
    detail   TEXT   NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_subject_idx ON audit_log (subject, at);
