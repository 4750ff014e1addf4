-- Corrections (issue 16): a document a support technician sends under a new
-- id in place of one the central or the ERP refused names it in `replaces`;
-- the refused one keeps its status and gets `replaced_by` (out of the
-- failures, out of the cash and fiscal checks, out of a sale's life).
-- One correction per document.
ALTER TABLE documents ADD COLUMN replaces TEXT;
ALTER TABLE documents ADD COLUMN replaced_by TEXT;
CREATE UNIQUE INDEX documents_replaces ON documents (replaces) WHERE replaces IS NOT NULL;
