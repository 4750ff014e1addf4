-- The price lists this store charges from, nearest first: its own list
-- (named by its node id), its centrals' lists, then the chain's `base`.
-- Written from the central's `Loja-Scope` header (the store's place in the
-- hierarchy, store first); empty until the first feed page arrives, when the
-- store's own list and then `base` are the only ones charged.
CREATE TABLE price_list_order (
    list TEXT PRIMARY KEY,
    rank INTEGER NOT NULL
) WITHOUT ROWID;
