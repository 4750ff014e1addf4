-- Omni orders at the store (issue 17).
--
-- Which outbox documents act on which order (omni actions, and sales that
-- redeem an order): the store's view of an order is the central's row plus
-- these, after the row's `reflects_store_seq`.
CREATE TABLE omni_actions (
    store_seq INTEGER PRIMARY KEY NOT NULL,
    order_id TEXT NOT NULL
);
CREATE INDEX omni_actions_order ON omni_actions (order_id, store_seq);

-- A register redeeming a pickup at the POS holds the order until its sale
-- (or a release, or the end of its cash session).
CREATE TABLE omni_claims (
    order_id TEXT PRIMARY KEY NOT NULL,
    register TEXT NOT NULL,
    session_id TEXT NOT NULL,
    claimed_at TEXT NOT NULL
) WITHOUT ROWID;

-- Stock held for accepted lines until they are delivered, rejected or
-- cancelled, or until `expires_at`: the POS's sellable figure is the stock
-- less these.
CREATE TABLE omni_reservations (
    product_code TEXT NOT NULL,
    order_id TEXT NOT NULL,
    line_id TEXT NOT NULL,
    qty INTEGER NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (product_code, order_id, line_id)
) WITHOUT ROWID;
CREATE INDEX omni_reservations_order ON omni_reservations (order_id);
