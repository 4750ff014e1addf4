-- Omni returns (issue 17): a store of the chain takes back goods of an
-- order it may not have delivered. The central's whole order, as lojad last
-- fetched it for a return, is what an `omni_return` is checked against
-- (with this store's returns of the order it does not count yet); the
-- store's own orders are in the replica already.
CREATE TABLE omni_remote_orders (
    order_id TEXT PRIMARY KEY NOT NULL,
    body TEXT NOT NULL,
    fetched_at TEXT NOT NULL
) WITHOUT ROWID;
