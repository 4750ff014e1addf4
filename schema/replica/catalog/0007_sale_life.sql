-- A sale's whole life (issue 16).

-- return_reasons (MTD): reasons for returns and exchanges (MotivoTD).
CREATE TABLE return_reasons (
    code TEXT NOT NULL,
    description TEXT NOT NULL,
    restock INTEGER,
    omni INTEGER,
    active INTEGER,
    PRIMARY KEY (code)
) WITHOUT ROWID;

-- The central's stock row says up to which of this store's documents
-- (outbox store_seq) it reflects: the POS adds only the later ones.
ALTER TABLE stock ADD COLUMN reflects_store_seq INTEGER;
