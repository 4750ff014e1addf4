-- Outbox, version 1: the store's documents until the central acknowledges them.

CREATE TABLE documents (
    -- Position in the store's outbox; AUTOINCREMENT so a seq is never
    -- reused, even after the newest documents are purged.
    store_seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    register TEXT NOT NULL,
    accepted_at TEXT NOT NULL,
    -- The body as JSON text; strings (the sale XML) round-trip byte for byte.
    body TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    -- Journal ticket of the upload that settled it.
    ticket INTEGER,
    delivered_at TEXT,
    -- 1 when the document carries fiscal XML (sale_xml, or a sale with
    -- `xml`): kept for the fiscal retention period, not the delivered one.
    has_xml INTEGER NOT NULL DEFAULT 0
);

-- The queue, in order (next_batch), and the purge by age.
CREATE INDEX documents_status_seq ON documents (status, store_seq);
CREATE INDEX documents_delivered ON documents (delivered_at) WHERE status = 'delivered';

-- Cash sessions, opened by cash_open (session_id = its document id) and
-- closed by cash_close. Never purged while open.
CREATE TABLE cash_sessions (
    session_id TEXT PRIMARY KEY NOT NULL,
    register TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    closed_at TEXT
) WITHOUT ROWID;

-- A register has at most one open session.
CREATE UNIQUE INDEX cash_sessions_open ON cash_sessions (register) WHERE closed_at IS NULL;
