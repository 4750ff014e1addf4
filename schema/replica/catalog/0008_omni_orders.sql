-- Omni orders, typed (issue 17): the store's view of an order (its own
-- lines, `lines` as JSON of loja_protocol::omni::OrderLine), the status
-- derived from them, and up to which of this store's documents the
-- central's view reflects (the POS adds the later actions itself). The old
-- free-text rows are dropped and downloaded again in the new shape.
DROP TABLE omni_orders;
-- omni_orders (OMN): Omni-channel orders assigned to the store
CREATE TABLE omni_orders (
    id TEXT NOT NULL,
    number TEXT NOT NULL,
    channel TEXT NOT NULL,
    customer_document TEXT,
    delivery TEXT NOT NULL,
    paid INTEGER NOT NULL,
    payments TEXT,
    freight INTEGER,
    created_at TEXT NOT NULL,
    status TEXT NOT NULL,
    lines TEXT NOT NULL,
    reflects_store_seq INTEGER,
    updated_at TEXT,
    PRIMARY KEY (id)
);
-- The POS redeems a pickup by the number the customer quotes.
CREATE INDEX omni_orders_number ON omni_orders (number);
DELETE FROM watermarks WHERE entity = 'omni_orders';
