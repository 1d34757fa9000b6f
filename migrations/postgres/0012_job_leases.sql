-- A worker's claim on a job is a lease written on its row (database clock,
-- milliseconds), no longer a row lock held in a transaction open for the
-- whole job: a job waiting on a mail or SMS provider holds no connection.
-- A duplicate delivery waits while the lease runs; a worker that dies
-- leaves a lease that runs out, and the next delivery takes the job.
ALTER TABLE job_runs ADD COLUMN claimed_until BIGINT;
