-- The ERP's verdicts on this store's documents (issue 16): every verdict
-- read from the central, in its order (`seq`); a rejected document is parked
-- with the ERP's message. `reoffer`: the document was requeued after it had
-- been delivered (or rejected by the ERP): the central offers it to the ERP
-- again instead of answering a mere duplicate.
CREATE TABLE verdicts (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    status TEXT NOT NULL,
    code TEXT,
    message TEXT,
    at TEXT NOT NULL
);
ALTER TABLE documents ADD COLUMN reoffer INTEGER NOT NULL DEFAULT 0;
