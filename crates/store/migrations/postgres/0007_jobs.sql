-- The durable job queue: background work that must survive a restart.
-- A worker claims a job by setting `locked_by` and a lease (`locked_until_ns`)
-- it renews while it runs; a job whose lease ran out (its instance died) is
-- claimed again. A failure is retried later (`run_at_ns`) until
-- `max_attempts`, then the job is `dead` (the dead-letter list).
-- Scheduled runs carry their schedule and slot: the unique index makes one
-- job per slot however many instances compute it.
CREATE TABLE jobs (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind TEXT NOT NULL,
    -- JSON arguments.
    payload TEXT NOT NULL DEFAULT '{}',
    -- queued | running | done | dead
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    run_at_ns BIGINT NOT NULL,
    locked_by TEXT,
    locked_until_ns BIGINT,
    last_error TEXT,
    -- JSON: what a finished run reports.
    result TEXT,
    schedule TEXT,
    scheduled_for_ns BIGINT,
    created_ns BIGINT NOT NULL,
    updated_ns BIGINT NOT NULL,
    finished_ns BIGINT
);
CREATE INDEX jobs_due ON jobs (status, run_at_ns);
CREATE UNIQUE INDEX jobs_slot ON jobs (schedule, scheduled_for_ns) WHERE schedule IS NOT NULL;

-- Each account's equity at the end of each UTC day, kept after the
-- minute-by-minute snapshots are pruned.
CREATE TABLE equity_daily (
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    day BIGINT NOT NULL,
    equity TEXT NOT NULL,
    by_currency TEXT,
    PRIMARY KEY (account_id, day)
);
