-- Pickup deadlines people can live with: the receiver is reminded once
-- before the deadline (again after an extension), and the sender may move
-- the deadline a limited number of times.
ALTER TABLE items ADD COLUMN reminded_at BIGINT;
ALTER TABLE items ADD COLUMN extensions INTEGER NOT NULL DEFAULT 0;
CREATE INDEX items_collect_by_idx ON items (status, collect_by);
