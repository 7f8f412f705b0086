-- Per-user fair-share weights and quota overrides (retz-admin set-share, set-quota).
-- A NULL limit takes the server's [quota] default; 0 is unlimited for this user.
CREATE TABLE user_limits (
    key_id TEXT PRIMARY KEY NOT NULL,
    share DOUBLE PRECISION NOT NULL DEFAULT 1.0,
    max_queued_jobs BIGINT,
    max_running_cpus BIGINT,
    max_running_mem_mb BIGINT
);
