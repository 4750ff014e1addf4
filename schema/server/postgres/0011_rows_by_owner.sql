-- SQLite's rows_owner (entity, node, rowid = seq), spelled out.
CREATE INDEX rows_owner ON rows (entity, node, seq);
