-- The ERP's verdict on each document it took from the queue (issue 16):
-- processed, or rejected with its code and message. `verdict_seq` orders
-- the verdicts a store pulls (`GET /v1/stores/{s}/verdicts?after=`).
ALTER TABLE documents ADD COLUMN verdict TEXT CHECK (verdict IN ('processed', 'rejected'));
ALTER TABLE documents ADD COLUMN verdict_code TEXT;
ALTER TABLE documents ADD COLUMN verdict_message TEXT;
ALTER TABLE documents ADD COLUMN verdict_at TEXT;
ALTER TABLE documents ADD COLUMN verdict_seq INTEGER;
CREATE INDEX documents_verdicts ON documents (store, verdict_seq) WHERE verdict_seq IS NOT NULL;
INSERT INTO counters (name, value) VALUES ('verdict_seq', 0);
