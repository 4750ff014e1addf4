//! The order in which this store charges price lists: its own list (named
//! by its node id), then its centrals' lists, nearest first, then the
//! chain's `base` (the master's list). The central sends the store's place
//! in the hierarchy with every feed page (`Loja-Scope`); the lookup ranks a
//! product's price rows by it (`product_answer::PriceChoice`).

use std::path::Path;

use rusqlite::{Connection, params};

use crate::Result;
use crate::error::SqlCtx;

/// The list name of the master's (the whole chain's) prices.
pub const BASE: &str = "base";

/// The stored order, nearest first.
pub(crate) fn order(conn: &Connection, path: &Path) -> Result<Vec<String>> {
    let mut stmt = conn
        .prepare_cached("SELECT list FROM price_list_order ORDER BY rank")
        .ctx(path, "read price list order")?;
    let lists = stmt
        .query_map([], |r| r.get(0))
        .ctx(path, "read price list order")?
        .collect::<rusqlite::Result<Vec<String>>>()
        .ctx(path, "read price list order")?;
    Ok(lists)
}

/// The lists `scope` (the store's node, then its ancestors up to the
/// master) charges from, nearest first: each node's own, then `base`.
pub fn lists_of(scope: &[String]) -> Vec<String> {
    let mut lists: Vec<String> = scope.iter().filter(|n| *n != BASE).cloned().collect();
    lists.push(BASE.to_owned());
    lists
}

/// Replaces the stored order with `lists` (inside the caller's transaction).
pub(crate) fn replace(conn: &Connection, lists: &[String], path: &Path) -> Result<()> {
    conn.execute("DELETE FROM price_list_order", [])
        .ctx(path, "write price list order")?;
    let mut stmt = conn
        .prepare_cached("INSERT OR IGNORE INTO price_list_order (list, rank) VALUES (?1, ?2)")
        .ctx(path, "write price list order")?;
    for (rank, list) in lists.iter().enumerate() {
        stmt.execute(params![list, rank as i64])
            .ctx(path, "write price list order")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_comes_last_once() {
        let scope = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            lists_of(&scope(&["loja-a", "sul", "master"])),
            scope(&["loja-a", "sul", "master", "base"])
        );
        assert_eq!(
            lists_of(&scope(&["base", "master"])),
            scope(&["master", "base"])
        );
    }
}
