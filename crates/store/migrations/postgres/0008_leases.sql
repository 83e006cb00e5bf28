-- Named leases: one holder at a time, until `expires_ns`. The cluster's
-- leader holds the `leader` lease and renews it; when it stops renewing, it
-- expires and a standby takes it (with a higher `epoch`). Times are the
-- database server's clock, so instances' clocks need not agree.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    -- Where other instances reach the holder (http://10.0.0.7:8080).
    address TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    acquired_ns BIGINT NOT NULL,
    expires_ns BIGINT NOT NULL
);
