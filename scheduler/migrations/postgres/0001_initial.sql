-- Retz store, PostgreSQL flavour. The `json` column of jobs and applications is
-- authoritative; the other columns are copies kept for indexes and filters.
CREATE TABLE users (
    key_id  TEXT PRIMARY KEY NOT NULL,
    secret  TEXT NOT NULL,
    enabled BIGINT NOT NULL,
    info    TEXT NOT NULL
);

CREATE TABLE applications (
    appid TEXT PRIMARY KEY NOT NULL,
    owner TEXT NOT NULL,
    json  TEXT NOT NULL
);
CREATE INDEX applications_owner ON applications (owner);

-- IDENTITY: ids come from a sequence, never max+1, never reused.
CREATE TABLE jobs (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner       TEXT NOT NULL,
    appid       TEXT NOT NULL,
    name        TEXT NOT NULL,
    state       TEXT NOT NULL,
    priority    BIGINT NOT NULL,
    task_id     TEXT,
    retry       BIGINT NOT NULL,
    cpus        BIGINT NOT NULL,
    finished_ms BIGINT,
    json        TEXT NOT NULL
);
CREATE INDEX jobs_owner_state ON jobs (owner, state, id);
CREATE INDEX jobs_queue ON jobs (state, priority, id);
CREATE INDEX jobs_task_id ON jobs (task_id);
CREATE INDEX jobs_finished ON jobs (finished_ms);

CREATE TABLE properties (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
