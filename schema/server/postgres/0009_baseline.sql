-- retaguarda-server on PostgreSQL: the whole schema as SQLite's migrations
-- 0001..0009 leave it (schema/server/*.sql), in one step. Later migrations
-- come in pairs: schema/server/NNNN_x.sql and schema/server/postgres/NNNN_x.sql.
--
-- Types keep SQLite's storage classes, so the same statements and the same
-- Rust types serve both backends: INTEGER -> BIGINT (flags too, 0/1),
-- TEXT -> TEXT, BLOB -> BYTEA; a rowid filled in by the database ->
-- BIGSERIAL. Times stay as the application writes them (unix seconds, or
-- RFC 3339 text where SQLite's schema has TEXT).

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('seq', 0), ('verdict_seq', 0);

CREATE TABLE nodes (
    id         TEXT PRIMARY KEY,
    parent     TEXT REFERENCES nodes (id),
    kind       TEXT NOT NULL CHECK (kind IN ('master', 'central', 'store')),
    token_hash TEXT,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX nodes_token ON nodes (token_hash) WHERE token_hash IS NOT NULL;
INSERT INTO nodes (id, parent, kind, token_hash, created_at)
VALUES ('master', NULL, 'master', NULL, to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'));

-- Every row of every entity (see the SQLite schema for the columns).
CREATE TABLE rows (
    seq      BIGINT PRIMARY KEY,
    entity   TEXT NOT NULL,
    key_text TEXT NOT NULL,
    key_json TEXT NOT NULL,
    node     TEXT NOT NULL,
    public   BIGINT NOT NULL,
    deleted  BIGINT NOT NULL DEFAULT 0,
    data     TEXT,
    siblings BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX rows_key ON rows (entity, key_text, node);
-- The feed order: SQLite's (entity, rowid) index, spelled out.
CREATE INDEX rows_feed ON rows (entity, seq);

CREATE TABLE downloads (
    store        TEXT NOT NULL,
    entity       TEXT NOT NULL,
    completed_at BIGINT NOT NULL,
    next_seq     BIGINT NOT NULL,
    PRIMARY KEY (store, entity)
);

CREATE TABLE exceptions (
    store    TEXT PRIMARY KEY,
    added_at TEXT NOT NULL
);

CREATE TABLE documents (
    seq             BIGSERIAL PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    store           TEXT NOT NULL,
    kind            TEXT NOT NULL,
    register        TEXT NOT NULL,
    store_seq       BIGINT NOT NULL,
    received_at     TEXT NOT NULL,
    document        TEXT NOT NULL,
    verdict         TEXT CHECK (verdict IN ('processed', 'rejected')),
    verdict_code    TEXT,
    verdict_message TEXT,
    verdict_at      TEXT,
    verdict_seq     BIGINT,
    outcome         TEXT
);
CREATE INDEX documents_verdicts ON documents (store, verdict_seq) WHERE verdict_seq IS NOT NULL;
CREATE INDEX documents_store ON documents (store, seq);

CREATE TABLE availability (
    node    TEXT NOT NULL,
    entity  TEXT NOT NULL,
    minutes BIGINT NOT NULL CHECK (minutes >= 0),
    PRIMARY KEY (node, entity)
);

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE omni_orders (
    id         TEXT PRIMARY KEY,
    number     TEXT NOT NULL,
    status     TEXT NOT NULL,
    created    TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX omni_orders_number ON omni_orders (number);
CREATE INDEX omni_orders_status ON omni_orders (status, updated_at);

CREATE TABLE omni_order_stores (
    order_id           TEXT NOT NULL REFERENCES omni_orders (id),
    store              TEXT NOT NULL,
    reflects_store_seq BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (order_id, store)
);
CREATE INDEX omni_order_stores_store ON omni_order_stores (store, order_id);

CREATE TABLE release_keyrings (
    version BIGINT PRIMARY KEY,
    body    TEXT NOT NULL
);

CREATE TABLE releases (
    sequence     BIGINT PRIMARY KEY,
    version      TEXT NOT NULL,
    rollback     BIGINT NOT NULL DEFAULT 0,
    manifest     TEXT NOT NULL,
    pilot        TEXT NOT NULL DEFAULT '',
    waves        TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    paused       BIGINT NOT NULL DEFAULT 0,
    pause_reason TEXT,
    emergency    BIGINT NOT NULL DEFAULT 0,
    halt_percent BIGINT NOT NULL DEFAULT 10
);

CREATE TABLE release_artifacts (
    sequence BIGINT NOT NULL REFERENCES releases (sequence),
    target   TEXT NOT NULL,
    bytes    BYTEA NOT NULL,
    PRIMARY KEY (sequence, target)
);

CREATE TABLE release_pins (
    node    TEXT PRIMARY KEY,
    version TEXT NOT NULL
);

CREATE TABLE release_reports (
    store        TEXT NOT NULL,
    to_version   TEXT NOT NULL,
    from_version TEXT NOT NULL,
    result       TEXT NOT NULL,
    error        TEXT,
    at           BIGINT NOT NULL,
    PRIMARY KEY (store, to_version)
);

CREATE TABLE console_users (
    username      TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    created_at    BIGINT NOT NULL
);

CREATE TABLE console_sessions (
    id_hash    TEXT PRIMARY KEY,
    username   TEXT NOT NULL REFERENCES console_users (username),
    csrf       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);

CREATE TABLE console_audit (
    id       BIGSERIAL PRIMARY KEY,
    at       BIGINT NOT NULL,
    username TEXT NOT NULL,
    action   TEXT NOT NULL,
    target   TEXT NOT NULL,
    outcome  TEXT NOT NULL
);
CREATE INDEX console_audit_at ON console_audit (at);
