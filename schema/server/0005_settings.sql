-- Central settings, by name. `erp_owns_stock`: 'true' when the ERP keeps the
-- stores' stock and imports it; otherwise (the default) the central applies
-- the stores' stock documents to their stock rows itself, as an ERP would.
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
