-- A sale's whole life (issue 16).

-- Documents that undo another: a sale's cancellation and returns (target =
-- the sale's id), a return's cancellation (target = the return's id). A
-- cancelled sale is never cancelled again; a return never takes back more
-- than was sold less earlier returns.
CREATE TABLE sale_links (
    doc_id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    target TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX sale_links_target ON sale_links (target, kind);

-- What this store's documents do to its stock, per product, in outbox order:
-- a change (`delta`, thousandths) or a count (`counted`: the stock becomes
-- it). The POS reads the central's stock row plus the moves after the
-- document the row reflects (`stock.reflects_store_seq` in the replica).
CREATE TABLE stock_moves (
    product_code TEXT NOT NULL,
    store_seq INTEGER NOT NULL,
    delta INTEGER NOT NULL DEFAULT 0,
    counted INTEGER,
    PRIMARY KEY (product_code, store_seq)
) WITHOUT ROWID;
