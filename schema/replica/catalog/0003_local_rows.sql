-- Rows written at the store ahead of the central (a customer signed up at
-- the POS): the replica verify leaves them out of its digest and never
-- deletes them, until a feed page or a repair brings the central's row for
-- the key (which clears the mark). `key` is Entity::key_text (a JSON array).
CREATE TABLE local_rows (
    entity TEXT NOT NULL,
    key    TEXT NOT NULL,
    PRIMARY KEY (entity, key)
) WITHOUT ROWID;

-- Store documents whose row was written (a sign-up's id): a retry or the
-- recovery at start writes a document's row only once, so a row the central
-- deleted since (an LGPD erasure) does not come back. Pruned of ids the
-- outbox no longer holds.
CREATE TABLE local_documents (
    id TEXT PRIMARY KEY
) WITHOUT ROWID;
