-- Journal, version 1: tickets, the integration log and the switches.

-- Every exchange with the central (the old systems' ticket/conteudoticket).
-- request/response are zstd-compressed; `bytes` is their compressed size.
CREATE TABLE tickets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    range_from INTEGER,
    range_to INTEGER,
    status TEXT NOT NULL,
    http_status INTEGER,
    items INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    error TEXT,
    duration_ms INTEGER NOT NULL,
    secret INTEGER NOT NULL DEFAULT 0,
    request BLOB NOT NULL,
    response BLOB NOT NULL
);
CREATE INDEX tickets_created_at ON tickets (created_at);

-- One row per job run, by module code (LogIntegracao).
CREATE TABLE integration_log (
    id INTEGER PRIMARY KEY,
    code TEXT NOT NULL,
    subject TEXT NOT NULL,
    started_at TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    message TEXT
);
CREATE INDEX integration_log_code ON integration_log (code, id);
CREATE INDEX integration_log_started_at ON integration_log (started_at);

-- Integration switches (InterfaceIntegracao); a job with no row is on.
CREATE TABLE switches (
    code TEXT PRIMARY KEY NOT NULL,
    enabled INTEGER NOT NULL,
    updated_at TEXT NOT NULL
) WITHOUT ROWID;
