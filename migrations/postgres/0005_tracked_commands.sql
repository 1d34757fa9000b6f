-- An unlock job only issues its command; the command is then tracked here
-- until it is answered: sent again at `next_send_at` while it can run,
-- reported failed (`failed_at`) once it cannot. `next_send_at` is cleared
-- when nothing more is to be done for it.
ALTER TABLE commands ADD COLUMN next_send_at BIGINT;
ALTER TABLE commands ADD COLUMN sends BIGINT NOT NULL DEFAULT 1;
ALTER TABLE commands ADD COLUMN failed_at BIGINT;
CREATE INDEX commands_outstanding_idx ON commands (next_send_at) WHERE next_send_at IS NOT NULL;
-- Unanswered commands that can still run when this is applied are tracked.
UPDATE commands SET next_send_at = issued_at
    WHERE acked_at IS NULL AND expires_at > (extract(epoch FROM now()) * 1000)::BIGINT;

-- Jobs written by any process wake every relay listening (LISTEN outbox), on
-- commit; relays still poll in case a notice is missed. `announce` raises a
-- notice on the channel its trigger names.
CREATE FUNCTION announce() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_ARGV[0], '');
    RETURN NULL;
END
$$;
CREATE TRIGGER outbox_written AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION announce('outbox');
