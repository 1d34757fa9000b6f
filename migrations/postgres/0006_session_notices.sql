-- A change to sessions (one ended) or users (a role changed) is announced on
-- commit (channel `sessions`), so every api process forgets the sessions it
-- found live and looks them up again. Per row changed: an update that
-- changes nothing (ending a session already ended) announces nothing.
CREATE FUNCTION sessions_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sessions', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER sessions_changed AFTER UPDATE OR DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION sessions_changed();
CREATE TRIGGER users_changed AFTER UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION sessions_changed();
