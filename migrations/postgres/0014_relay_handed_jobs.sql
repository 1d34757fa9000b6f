-- A process hands the jobs it commits to its own relay; a relay sweeps the
-- outbox only for jobs left behind, by polling. Commits that write jobs no
-- longer wake every relay listening.
DROP TRIGGER outbox_written ON outbox;
