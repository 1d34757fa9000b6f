-- The same column as on PostgreSQL, where a worker's claim on a job is a
-- lease written on its row. SQLite serves one process, whose claims are
-- kept in memory: the column stays empty here.
ALTER TABLE job_runs ADD COLUMN claimed_until BIGINT;
