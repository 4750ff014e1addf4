-- A node's rows of an entity in feed order (seq is the rowid): whether a
-- change concerns a store is a few index probes (one per node it sees)
-- instead of a walk over every node's changes since its position, and a
-- store's own rows (its stock) are read without the other stores'.
CREATE INDEX rows_owner ON rows (entity, node);
