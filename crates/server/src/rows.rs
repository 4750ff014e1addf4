//! The `rows` table: every row of every entity, addressed by (entity, key,
//! owner node). Writes go through here, each change at the next sequence:
//! an import's upserts and deletes, and the tombstones that make a store
//! re-resolve its keys when its place in the hierarchy changes. Reading a
//! store's view (which row wins) is the business of `Scope`, in nodes.rs.

use crate::sql::{Connection, PgValue, Queued, ToParam};

/// A stored row of one key, at one node.
#[derive(Debug, Clone)]
pub struct Stored {
    pub seq: i64,
    pub node: String,
    pub public: bool,
    pub deleted: bool,
    pub data: Option<String>,
}

/// Every row of a key, at every node: what the writer checks before a
/// change, and what a feed or a digest resolves the key's winner from.
pub fn key_rows(
    conn: &Connection,
    entity: &str,
    key_text: &str,
) -> Result<Vec<Stored>, crate::sql::Error> {
    let mut stmt = conn.prepare_cached(KEY_ROWS)?;
    let rows = stmt.query_map(params![entity, key_text], stored)?;
    rows.collect()
}

const KEY_ROWS: &str =
    "SELECT seq, node, public, deleted, data FROM rows WHERE entity = ?1 AND key_text = ?2";

/// A `Stored` from the columns `seq, node, public, deleted, data`, in
/// that order.
fn stored(r: &crate::sql::Row<'_>) -> Result<Stored, crate::sql::Error> {
    Ok(Stored {
        seq: r.get(0)?,
        node: r.get(1)?,
        public: r.get(2)?,
        deleted: r.get(3)?,
        data: r.get(4)?,
    })
}

/// The key's row at a node, and one other node's row (without its data).
const FIND_AT: &str = "SELECT seq, node, public, deleted, data, siblings FROM rows
     WHERE entity = ?1 AND key_text = ?2 AND node = ?3
     UNION ALL
     SELECT seq, node, public, deleted, data, siblings FROM (
         SELECT seq, node, public, deleted, NULL AS data, siblings FROM rows
         WHERE entity = ?1 AND key_text = ?2 AND node <> ?3 LIMIT 1
     ) AS other";

fn at_row(r: &crate::sql::Row<'_>) -> Result<(Stored, bool), crate::sql::Error> {
    Ok((stored(r)?, r.get::<_, bool>(5)?))
}

/// `FIND_AT`'s rows as the node's row and what the others are.
fn mine_and_others(rows: Vec<(Stored, bool)>, node: &str) -> (Option<Stored>, Others) {
    let (mut mine, mut others) = (None, Others::default());
    for (row, siblings) in rows {
        if row.node == node {
            mine = Some(row);
        } else {
            // A key with two rows or more has every row marked: one
            // marked row says they all are.
            others = Others {
                exist: true,
                unmarked: !siblings,
            };
        }
    }
    (mine, others)
}

/// Other nodes' rows of a key, as a write to one node's row sees them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Others {
    /// Some other node holds a row of the key.
    pub exist: bool,
    /// Some of those rows are not marked `siblings` yet.
    pub unmarked: bool,
}

impl Others {
    /// From every row of the key (`key_rows`), for a write at `node`.
    pub fn among(rows: &[Stored], node: &str) -> Others {
        let exist = rows.iter().any(|r| r.node != node);
        Others {
            exist,
            unmarked: exist,
        }
    }
}

/// Writes changes inside the caller's transaction (the central's one
/// writer holds it, so sequences commit in order), handing out sequences
/// from `seq` (the head when it was opened); [`RowWriter::finish`] stores
/// the new head.
pub struct RowWriter<'t> {
    tx: &'t Connection,
    seq: u64,
    /// Writes not sent yet, when they are queued ([`RowWriter::queue_writes`]).
    queue: Option<Vec<Queued>>,
}

impl<'t> RowWriter<'t> {
    pub fn open(tx: &'t Connection) -> Result<RowWriter<'t>, crate::sql::Error> {
        Ok(RowWriter {
            seq: crate::db::head_seq(tx)?,
            tx,
            queue: None,
        })
    }

    /// From now on writes wait in a queue and go to the database together,
    /// as one pipeline (one round trip on PostgreSQL), at the next read,
    /// [`RowWriter::flush`] or [`RowWriter::finish`]: an import of 10,000
    /// rows is a few dozen round trips, not 20,000.
    pub fn queue_writes(&mut self) {
        self.queue.get_or_insert_with(Vec::new);
    }

    /// Sends the queued writes.
    pub fn flush(&mut self) -> Result<(), crate::sql::Error> {
        match self.queue.as_mut() {
            Some(q) if !q.is_empty() => {
                let queued = std::mem::take(q);
                self.tx.execute_pipeline(&queued)
            }
            _ => Ok(()),
        }
    }

    fn exec(
        &mut self,
        sql: &'static str,
        params: &[&dyn ToParam],
    ) -> Result<(), crate::sql::Error> {
        match self.queue.as_mut() {
            Some(q) => q.push(Queued::new(sql, params)),
            None => {
                self.tx.prepare_cached(sql)?.execute(params)?;
            }
        }
        Ok(())
    }

    /// The last sequence handed out (the head when nothing changed).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn finish(mut self) -> Result<u64, crate::sql::Error> {
        self.flush()?;
        crate::db::set_head_seq(self.tx, self.seq)?;
        Ok(self.seq)
    }

    fn next(&mut self) -> i64 {
        self.seq += 1;
        self.seq as i64
    }

    /// Every row of the key, at every node.
    pub fn find(&mut self, entity: &str, key_text: &str) -> Result<Vec<Stored>, crate::sql::Error> {
        self.flush()?;
        key_rows(self.tx, entity, key_text)
    }

    /// [`RowWriter::find`] of each key, in one pipeline.
    pub fn find_many(
        &mut self,
        entity: &str,
        keys: &[&str],
    ) -> Result<Vec<Vec<Stored>>, crate::sql::Error> {
        self.flush()?;
        let runs: Vec<Vec<PgValue>> = keys.iter().map(|k| vec![entity.pg(), k.pg()]).collect();
        self.tx.query_pipeline(KEY_ROWS, &runs, stored)
    }

    /// The key's row at `node` if any, and whether other nodes hold rows
    /// of the key: what a change to `node`'s row needs, without reading
    /// every node's row (a product's stock has one per store).
    pub fn find_at(
        &mut self,
        entity: &str,
        key_text: &str,
        node: &str,
    ) -> Result<(Option<Stored>, Others), crate::sql::Error> {
        self.flush()?;
        let mut stmt = self.tx.prepare_cached(FIND_AT)?;
        let rows = stmt.query_map(params![entity, key_text, node], at_row)?;
        Ok(mine_and_others(rows.collect::<Result<Vec<_>, _>>()?, node))
    }

    /// [`RowWriter::find_at`] of each (key, node), in one pipeline.
    pub fn find_at_many(
        &mut self,
        entity: &str,
        keys: &[(&str, &str)],
    ) -> Result<Vec<(Option<Stored>, Others)>, crate::sql::Error> {
        self.flush()?;
        let runs: Vec<Vec<PgValue>> = keys
            .iter()
            .map(|(k, n)| vec![entity.pg(), k.pg(), n.pg()])
            .collect();
        Ok(self
            .tx
            .query_pipeline(FIND_AT, &runs, at_row)?
            .into_iter()
            .zip(keys)
            .map(|(rows, (_, node))| mine_and_others(rows, node))
            .collect())
    }

    /// Writes the key's row at `node` (a new one, or over `existing`, the
    /// row `node` already has): its data, or a tombstone when `data` is None.
    /// `others` says whether other nodes hold rows of the key, and whether
    /// some of them are not yet marked as having siblings.
    #[allow(clippy::too_many_arguments)]
    pub fn put(
        &mut self,
        entity: &str,
        key_text: &str,
        key_json: &str,
        node: &str,
        public: bool,
        data: Option<&str>,
        existing: Option<&Stored>,
        others: Others,
    ) -> Result<(), crate::sql::Error> {
        let seq = self.next();
        match existing {
            Some(ex) => {
                self.exec(
                    "UPDATE rows SET seq = ?1, public = ?2, deleted = ?3, data = ?4 WHERE seq = ?5",
                    params![seq, public, data.is_none(), data, ex.seq],
                )?;
            }
            None => {
                self.exec(
                    "INSERT INTO rows (seq, entity, key_text, key_json, node, public, deleted, data, siblings)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![
                        seq,
                        entity,
                        key_text,
                        key_json,
                        node,
                        public,
                        data.is_none(),
                        data,
                        others.exist
                    ],
                )?;
                if others.unmarked {
                    self.mark_siblings(entity, key_text)?;
                }
            }
        }
        Ok(())
    }

    /// Tombstones a stored row (its owner and visibility stay: the tombstone
    /// reaches exactly the stores that could see it).
    pub fn tombstone(&mut self, row: &Stored) -> Result<(), crate::sql::Error> {
        let seq = self.next();
        self.exec(
            "UPDATE rows SET seq = ?1, deleted = 1, data = NULL WHERE seq = ?2",
            params![seq, row.seq],
        )
    }

    /// Several nodes hold rows of the key: the feed resolves its winner.
    /// Only ever set: a stale mark costs a lookup, never a wrong answer.
    fn mark_siblings(&mut self, entity: &str, key_text: &str) -> Result<(), crate::sql::Error> {
        self.exec(
            "UPDATE rows SET siblings = 1 WHERE entity = ?1 AND key_text = ?2 AND siblings = 0",
            params![entity, key_text],
        )
    }

    /// `store`'s place in the hierarchy changed: every key some node of
    /// `changed` (the ancestors it left or joined) holds a row for gets a
    /// tombstone of the store's own at a new sequence, unless the store has a
    /// live row of its own for it (that row wins either way). The store's feed
    /// reaches those tombstones and sends each key's new winner, or a
    /// tombstone when none is left. Returns how many keys were touched.
    pub fn rescope(
        &mut self,
        store: &str,
        changed: &[String],
        entities: &[&'static loja_protocol::Entity],
    ) -> Result<u64, crate::sql::Error> {
        let mut touched = 0;
        for entity in entities {
            let mut seen = std::collections::HashSet::new();
            for node in changed {
                self.flush()?;
                let keys: Vec<(String, String)> = {
                    let mut stmt = self.tx.prepare_cached(
                        "SELECT key_text, key_json FROM rows WHERE entity = ?1 AND node = ?2",
                    )?;
                    stmt.query_map(params![entity.name, node], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect::<Result<_, _>>()?
                };
                for (key_text, key_json) in keys {
                    if !seen.insert(key_text.clone()) {
                        continue;
                    }
                    let rows = self.find(entity.name, &key_text)?;
                    let own = rows.iter().find(|r| r.node == store);
                    if own.is_some_and(|r| !r.deleted) {
                        continue;
                    }
                    self.put(
                        entity.name,
                        &key_text,
                        &key_json,
                        store,
                        false,
                        None,
                        own,
                        Others {
                            exist: true,
                            unmarked: true,
                        },
                    )?;
                    if own.is_some() {
                        self.mark_siblings(entity.name, &key_text)?;
                    }
                    touched += 1;
                }
            }
        }
        Ok(touched)
    }
}
