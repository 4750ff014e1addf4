-- Per-store data: a row is addressed by (entity, key, owner node), so each
-- level of the hierarchy holds its own row for a key (a store's stock, a
-- central's parameter override). The store's feed carries, per key, the row
-- that wins for that store (docs/protocol.md, "Resolution").

-- Keys held by more than one node (any row, tombstones included): the feed
-- resolves the winner of those; every other row is its key's only row.
ALTER TABLE rows ADD COLUMN siblings INTEGER NOT NULL DEFAULT 0;

DROP INDEX rows_key;
CREATE UNIQUE INDEX rows_key ON rows (entity, key_text, node);

-- The earlier owners of a moved row (prev_nodes) become tombstones of their
-- own, at new sequences: the stores that saw the row under them re-resolve.
CREATE TEMP TABLE moved AS
WITH RECURSIVE split (entity, key_text, key_json, public, rest, node) AS (
    SELECT entity, key_text, key_json, public, prev_nodes || ',', NULL
    FROM rows WHERE prev_nodes IS NOT NULL AND prev_nodes <> ''
    UNION ALL
    SELECT entity, key_text, key_json, public,
           substr(rest, instr(rest, ',') + 1), substr(rest, 1, instr(rest, ',') - 1)
    FROM split WHERE rest <> ''
)
SELECT DISTINCT entity, key_text, key_json, public, node
FROM split WHERE node IS NOT NULL AND node <> '';

INSERT INTO rows (seq, entity, key_text, key_json, node, public, prev_nodes, deleted, data, siblings)
SELECT (SELECT value FROM counters WHERE name = 'seq')
         + row_number() OVER (ORDER BY entity, key_text, node),
       entity, key_text, key_json, node, public, NULL, 1, NULL, 1
FROM moved
WHERE NOT EXISTS (SELECT 1 FROM rows r
                  WHERE r.entity = moved.entity AND r.key_text = moved.key_text
                    AND r.node = moved.node);

UPDATE counters SET value = (SELECT coalesce(max(seq), 0) FROM rows)
WHERE name = 'seq' AND value < (SELECT coalesce(max(seq), 0) FROM rows);

DROP TABLE moved;

UPDATE rows SET siblings = 1
WHERE (entity, key_text) IN (SELECT entity, key_text FROM rows
                             GROUP BY entity, key_text HAVING count(*) > 1);

ALTER TABLE rows DROP COLUMN prev_nodes;
