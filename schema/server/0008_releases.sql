-- Signed lojad releases and their staged rollout (issue 18, docs/update.md).

-- The keyring documents the root key signed, newest = highest version.
-- body: the `Signed` envelope's JSON.
CREATE TABLE release_keyrings (
    version INTEGER PRIMARY KEY,
    body    TEXT NOT NULL
);

-- One row per published manifest. sequence = the manifest's sequence.
-- pilot: comma-separated node ids (a store, or a central whose stores are
-- the pilot group); waves: `AFTER:PERCENT,…` counted from started_at
-- (seconds since the epoch). A paused release is offered to no new store;
-- an emergency one is offered to every store at once.
CREATE TABLE releases (
    sequence     INTEGER PRIMARY KEY,
    version      TEXT NOT NULL,
    rollback     INTEGER NOT NULL DEFAULT 0,
    manifest     TEXT NOT NULL,
    pilot        TEXT NOT NULL DEFAULT '',
    waves        TEXT NOT NULL,
    started_at   INTEGER NOT NULL,
    paused       INTEGER NOT NULL DEFAULT 0,
    pause_reason TEXT,
    emergency    INTEGER NOT NULL DEFAULT 0,
    -- the share (percent) of reporting stores that rolled back above which
    -- the release pauses by itself
    halt_percent INTEGER NOT NULL DEFAULT 10
);

CREATE TABLE release_artifacts (
    sequence INTEGER NOT NULL REFERENCES releases(sequence),
    target   TEXT NOT NULL,
    bytes    BLOB NOT NULL,
    PRIMARY KEY (sequence, target)
);

-- A store or a group (a central node) held at one version.
CREATE TABLE release_pins (
    node    TEXT PRIMARY KEY,
    version TEXT NOT NULL
);

-- Each store's last outcome per version it tried.
CREATE TABLE release_reports (
    store        TEXT NOT NULL,
    to_version   TEXT NOT NULL,
    from_version TEXT NOT NULL,
    result       TEXT NOT NULL,
    error        TEXT,
    at           INTEGER NOT NULL,
    PRIMARY KEY (store, to_version)
);
