-- What the operators' console searches and follows.

-- The locker and item an audit entry concerns, kept beside its subject so
-- the log can be searched by either; and the reason an admin gave.
ALTER TABLE audit_log ADD COLUMN locker_id BIGINT;
ALTER TABLE audit_log ADD COLUMN item_id BIGINT;
ALTER TABLE audit_log ADD COLUMN reason TEXT;
UPDATE audit_log SET locker_id = CAST(substr(subject, 8) AS BIGINT) WHERE subject LIKE 'locker:%';
UPDATE audit_log SET item_id = CAST(substr(subject, 6) AS BIGINT) WHERE subject LIKE 'item:%';
UPDATE audit_log SET locker_id = (SELECT locker_id FROM items WHERE items.id = audit_log.item_id)
    WHERE item_id IS NOT NULL;
CREATE INDEX audit_log_locker_idx ON audit_log (locker_id, id);
CREATE INDEX audit_log_item_idx ON audit_log (item_id, id);
CREATE INDEX audit_log_at_idx ON audit_log (at);
CREATE INDEX commands_locker_idx ON commands (locker_id, issued_at);

