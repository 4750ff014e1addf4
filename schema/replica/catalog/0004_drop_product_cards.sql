-- The product cards (0002) are gone: the barcode lookup reads the tables,
-- which answer a store's load well inside its latency targets, and the
-- cards cost 75 % of the replica's size and most of a first sync's time
-- (docs/benchmarks.md). A derived table: nothing is lost.
DROP TABLE IF EXISTS product_cards;
