-- Availability minutes per level: the chain's (node 'master'), a central's,
-- a store's; the nearest level that sets an entity wins, else the registry.
CREATE TABLE availability_by_node (
    node    TEXT NOT NULL,
    entity  TEXT NOT NULL,
    minutes INTEGER NOT NULL CHECK (minutes >= 0),
    PRIMARY KEY (node, entity)
) WITHOUT ROWID;
INSERT INTO availability_by_node (node, entity, minutes)
SELECT 'master', entity, minutes FROM availability;
DROP TABLE availability;
ALTER TABLE availability_by_node RENAME TO availability;
