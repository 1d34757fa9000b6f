-- A change to sessions (one ended) or users (a role changed) is announced on
-- commit (channel `sessions`), so every api process forgets the sessions it
-- found live and looks them up again. Per row changed: an update that
-- changes nothing (ending a session already ended) announces nothing.
CREATE TRIGGER sessions_changed AFTER UPDATE OR DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION announce('sessions');
CREATE TRIGGER users_changed AFTER UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION announce('sessions');
