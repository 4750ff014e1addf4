//! The SQLite side of the interface: rusqlite, as the server always used it.

use super::ToParam;

/// The parameters as rusqlite takes them (no copy: each is its own `ToSql`).
pub(super) fn params<'p>(
    params: &'p [&'p dyn ToParam],
) -> rusqlite::ParamsFromIter<impl Iterator<Item = &'p dyn rusqlite::ToSql>> {
    rusqlite::params_from_iter(params.iter().map(|p| *p as &dyn rusqlite::ToSql))
}
