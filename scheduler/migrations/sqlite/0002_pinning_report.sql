-- The pinning retz-executor verified for each job's current attempt. The job's `json`
-- (its `pinning` object) stays authoritative; these are copies for counting
-- (`/metrics` starts its pinning counters from them). NULL: not reported (yet).
ALTER TABLE jobs ADD COLUMN pin_mechanism TEXT;
ALTER TABLE jobs ADD COLUMN pin_outcome TEXT;
