-- An expired item can go back to its sender: RETURNING while its door is
-- open for them, RETURNED once it has closed.
ALTER TABLE items DROP CONSTRAINT items_status_check;
ALTER TABLE items ADD CONSTRAINT items_status_check CHECK (status IN (
    'AWAITING_DROP', 'STORED', 'RELEASING', 'COLLECTED', 'CANCELLED', 'EXPIRED', 'CLEARED',
    'RETURNING', 'RETURNED'));
DROP INDEX items_one_active_per_locker;
CREATE UNIQUE INDEX items_one_active_per_locker ON items (locker_id)
    WHERE status IN ('AWAITING_DROP', 'STORED', 'RELEASING', 'EXPIRED', 'RETURNING');
