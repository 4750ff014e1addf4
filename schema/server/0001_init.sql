-- retaguarda-server: initial schema. Applied once, in order, by PRAGMA user_version.

-- Global counters. 'seq' is the last sequence given to a row change; it only grows.
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO counters (name, value) VALUES ('seq', 0);

-- The hierarchy: master -> centrals -> stores. Tokens are kept as SHA-256 hex.
CREATE TABLE nodes (
    id         TEXT PRIMARY KEY,
    parent     TEXT REFERENCES nodes (id),
    kind       TEXT NOT NULL CHECK (kind IN ('master', 'central', 'store')),
    token_hash TEXT,
    created_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE UNIQUE INDEX nodes_token ON nodes (token_hash) WHERE token_hash IS NOT NULL;
INSERT INTO nodes (id, parent, kind, token_hash, created_at)
VALUES ('master', NULL, 'master', NULL, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'));

-- Every row of every entity, generically. `seq` (the rowid) is the sequence of
-- the row's last change: a change moves the row to a new, higher seq, so a feed
-- is "rows of this entity with seq > after, in seq order". Deleted rows stay as
-- tombstones (deleted = 1, data NULL).
CREATE TABLE rows (
    seq        INTEGER PRIMARY KEY,
    entity     TEXT NOT NULL,
    key_text   TEXT NOT NULL,  -- canonical key: JSON array of the key values
    key_json   TEXT NOT NULL,  -- key columns as a JSON object (the tombstone's row)
    node       TEXT NOT NULL,  -- owner
    public     INTEGER NOT NULL,
    prev_nodes TEXT,           -- earlier owners, comma-separated (they get tombstones)
    deleted    INTEGER NOT NULL DEFAULT 0,
    data       TEXT            -- the row as a JSON object, served as-is
);
CREATE UNIQUE INDEX rows_key ON rows (entity, key_text);
CREATE INDEX rows_feed ON rows (entity);  -- (entity, rowid = seq): the feed order

-- Availability: minutes between downloads released to a store, per entity
-- (registry default when absent).
CREATE TABLE availability (
    entity  TEXT PRIMARY KEY,
    minutes INTEGER NOT NULL CHECK (minutes >= 0)
) WITHOUT ROWID;

-- Last completed download per store and entity (a page answered with more=false).
CREATE TABLE downloads (
    store        TEXT NOT NULL,
    entity       TEXT NOT NULL,
    completed_at INTEGER NOT NULL,  -- unix seconds, UTC
    next_seq     INTEGER NOT NULL,  -- the page's `next`
    PRIMARY KEY (store, entity)
) WITHOUT ROWID;

-- Stores never held back by the availability window.
CREATE TABLE exceptions (
    store    TEXT PRIMARY KEY,
    added_at TEXT NOT NULL
) WITHOUT ROWID;

-- Store documents, in the order the central accepted them (the ERP's queue).
CREATE TABLE documents (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    store       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    register    TEXT NOT NULL,
    store_seq   INTEGER NOT NULL,
    received_at TEXT NOT NULL,
    document    TEXT NOT NULL
);
