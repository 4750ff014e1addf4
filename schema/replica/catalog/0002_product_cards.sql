-- Catalog replica, version 2: product cards.
--
-- The barcode lookup's answer kept ready, one row per barcode, so that the
-- POS's hottest query is one B-tree search instead of eight (product, price
-- rows, taxes, stock, kits, barcodes). Derived, never synced: built in the
-- background by lojad from products, barcodes, prices, product_taxes, stock
-- and kits (loja_replica::cards), and deleted in the same transaction as any
-- change to those rows, so a card is either current or absent; an absent
-- (or other store's, or older format's) card means the lookup reads the
-- tables themselves.
--
-- The answer is `head` + the price chosen from the stored price row at the
-- moment of the request (a promotion ends by the clock, not by a sync) +
-- `tail`.
--
-- Keyed by `slot`, a 64-bit hash of the barcode (FNV-1a, loja_replica
-- cards::slot), not by the barcode: a search on an integer key compares
-- integers, where a text key decodes and compares a record at every step.
-- The row keeps its barcode, checked on read; the rare barcode whose slot
-- another holds simply has no card.
CREATE TABLE product_cards (
    slot INTEGER PRIMARY KEY,
    barcode TEXT NOT NULL,
    product_code TEXT NOT NULL,
    store TEXT NOT NULL,
    format INTEGER NOT NULL,
    head BLOB NOT NULL,
    price_list TEXT,
    price INTEGER,
    promo_price INTEGER,
    promo_until TEXT,
    tail BLOB NOT NULL
);

-- Invalidation finds a product's cards by its code.
CREATE INDEX product_cards_by_product ON product_cards (product_code);
