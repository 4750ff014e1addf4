-- The operator console (issue 20, console/): its accounts, their sessions,
-- and the audit log of every action taken through it.

-- One account: argon2 PHC string, never the password.
CREATE TABLE console_users (
    username      TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    created_at    INTEGER NOT NULL  -- unix seconds, UTC
) WITHOUT ROWID;

-- A signed-in browser. The cookie holds the session id; only its SHA-256
-- is kept here, with the form token (CSRF) that every POST must carry.
CREATE TABLE console_sessions (
    id_hash    TEXT PRIMARY KEY,
    username   TEXT NOT NULL REFERENCES console_users (username),
    csrf       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);

-- Who did what, when, to what, and whether it was allowed.
CREATE TABLE console_audit (
    id       INTEGER PRIMARY KEY,
    at       INTEGER NOT NULL,
    username TEXT NOT NULL,
    action   TEXT NOT NULL,
    target   TEXT NOT NULL,
    outcome  TEXT NOT NULL   -- ok, denied, failed
);
CREATE INDEX console_audit_at ON console_audit (at);
