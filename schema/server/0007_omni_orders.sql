-- Omni-channel orders at the central (issue 17): the authoritative order
-- (loja_protocol::omni::Order, JSON) a channel created, which the stores'
-- actions and order-redeeming sales move line by line. Each store's feed
-- row of entity `omni_orders` is a projection of it (its own lines).
CREATE TABLE omni_orders (
    id         TEXT PRIMARY KEY,
    -- The number the customer quotes at the counter.
    number     TEXT NOT NULL,
    -- The order's derived status (omni::status_of), for the admin list.
    status     TEXT NOT NULL,
    -- The NewOrder as the channel posted it: the same id again with the
    -- same content is a retry; another content is refused.
    created    TEXT NOT NULL,
    -- The order now, every line with its store and state.
    body       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX omni_orders_number ON omni_orders (number);
CREATE INDEX omni_orders_status ON omni_orders (status, updated_at);

-- Every store that has or had lines of an order, and up to which of that
-- store's documents (store_seq) the central applied to the order: the
-- `reflects_store_seq` of the store's feed row.
CREATE TABLE omni_order_stores (
    order_id           TEXT NOT NULL REFERENCES omni_orders (id),
    store              TEXT NOT NULL,
    reflects_store_seq INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (order_id, store)
) WITHOUT ROWID;
CREATE INDEX omni_order_stores_store ON omni_order_stores (store, order_id);

-- What the central did with an omni action or an order-redeeming sale
-- (JSON: the order's state after it), for the ERP's queue.
ALTER TABLE documents ADD COLUMN outcome TEXT;
