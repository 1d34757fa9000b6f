-- A command's lifetime is fixed when it is first issued: every copy sent
-- (retries, redeliveries) carries the same times and signature, so none of
-- them outlives the first.
ALTER TABLE commands ADD COLUMN expires_at BIGINT;
