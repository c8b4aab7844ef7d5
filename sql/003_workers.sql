-- Worker presence for the admin UI: one row per worker process, refreshed
-- every worker_lease_seconds and removed on a clean exit.
CREATE TABLE workers (
    id          text PRIMARY KEY,              -- "host:pid", the prefix of its threads' worker_id
    host        text NOT NULL,
    pid         integer NOT NULL,
    threads     integer NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    seen_at     timestamptz NOT NULL DEFAULT now(),
    draining    boolean NOT NULL DEFAULT false
);
