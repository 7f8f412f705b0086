-- Idempotent submission: the client's `Idempotency-Key` of the POST /job that created
-- a job (NULL when it sent none). One key names one job per user, so a retried or
-- replayed submission finds the job already created instead of making a new one.
ALTER TABLE jobs ADD COLUMN idempotency_key TEXT;
CREATE UNIQUE INDEX jobs_idempotency ON jobs (owner, idempotency_key);
