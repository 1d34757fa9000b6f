-- Every change to what `GET /lockers/by-place` answers is announced on
-- commit (channel `places`), so every api process forgets the answers it
-- keeps for that place. The payload is the place's key; a locker moved to
-- another place announces both. An agent coming, going, or going on- or
-- offline changes its lockers' `agent_online` wherever they are: announced
-- with an empty payload (`announce`), which means every place (rare, and
-- spares a lookup).
CREATE FUNCTION announce_place() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM pg_notify('places', OLD.place_key);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        PERFORM pg_notify('places', NEW.place_key);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER lockers_placed AFTER INSERT OR UPDATE OR DELETE ON lockers
    FOR EACH ROW EXECUTE FUNCTION announce_place();
CREATE TRIGGER agents_presence AFTER UPDATE OF online ON agents
    FOR EACH ROW WHEN (OLD.online IS DISTINCT FROM NEW.online)
    EXECUTE FUNCTION announce('places');
CREATE TRIGGER agents_come_and_go AFTER INSERT OR DELETE ON agents
    FOR EACH STATEMENT EXECUTE FUNCTION announce('places');
