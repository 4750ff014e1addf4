-- Cash and fiscal reconciliation (issue 16): what the store computed from its
-- own documents when it took a cash close (expected per method, counted,
-- differences) or a Redução Z (against the day's sales of its register),
-- as JSON (loja_protocol::reconcile::Reconciliation). It goes up with the
-- document, in its envelope.
ALTER TABLE documents ADD COLUMN reconciliation TEXT;
CREATE INDEX documents_reconciled ON documents (store_seq) WHERE reconciliation IS NOT NULL;
