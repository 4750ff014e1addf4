-- PostgreSQL twin of schema/server/0010_console_more.sql (types as in 0009_baseline).
-- The operator console, second part (issue 20): what the rollouts page
-- needs beyond issue 18's tables, per-store traffic and outbox backlog,
-- and accounts that can be disabled.

-- A store downloaded a release's artifact: until it reports, it is
-- installing or in trial (the rollouts page's "in trial"). One row per
-- (store, release); the last download wins.
CREATE TABLE release_fetches (
    store    TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    at       BIGINT NOT NULL,  -- unix seconds, UTC
    PRIMARY KEY (store, sequence)
);
CREATE INDEX release_fetches_sequence ON release_fetches (sequence);

-- An account an admin disabled: it cannot sign in, its sessions are gone.
ALTER TABLE console_users ADD COLUMN disabled BIGINT NOT NULL DEFAULT 0;

-- Requests and response bytes per store, counted in memory by the central
-- and added here by its flush loop (never a write per request); and the
-- outbox backlog the store last reported in its `Loja-Outbox` header.
CREATE TABLE store_traffic (
    store          TEXT PRIMARY KEY,
    requests       BIGINT NOT NULL DEFAULT 0,
    bytes          BIGINT NOT NULL DEFAULT 0,
    since          BIGINT NOT NULL,  -- unix seconds: when counting began
    outbox_pending BIGINT,
    outbox_failed  BIGINT,
    outbox_at      BIGINT            -- unix seconds of that report
);
