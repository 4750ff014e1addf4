//! Tests only: a central database with stores under the master, each with
//! the token `token-` + its id four times (long enough for the token rule).

use crate::db::{Db, DbError};
use crate::nodes::{NewNode, NodeKind, upsert_node};

pub(crate) fn with_stores(stores: &[&str]) -> (Db, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::for_tests(dir.path());
    db.write(|tx| {
        for id in stores {
            let n = NewNode {
                id: (*id).into(),
                parent: "master".into(),
                kind: NodeKind::Store,
                token: Some(format!("token-{}", id.repeat(4))),
            };
            upsert_node(tx, &n).unwrap();
        }
        Ok::<_, DbError>(())
    })
    .unwrap();
    (db, dir)
}
