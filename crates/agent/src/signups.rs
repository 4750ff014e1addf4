//! Customer sign-ups at the POS: the replica row a sign-up gets, so the
//! lookup by CPF/CNPJ finds the customer before the central has it, and the
//! recovery at start that writes the rows a crash kept from being written.
//!
//! A sign-up is acknowledged once the outbox has it (`synchronous=FULL`);
//! its replica row is written right after, in another file. A crash between
//! the two leaves the customer out of the replica, and the POS's retry is a
//! duplicate. So: the answer to a duplicate writes the row too when it is
//! missing, and every start of the daemon, before the POS API serves, writes
//! the row of every sign-up still in the outbox whose customer the replica
//! does not have. The outbox keeps a sign-up until it is delivered and
//! `delivered_days` have passed (the purge); by then the ERP has imported
//! the customer and the central's row has normally arrived.
//!
//! Only missing rows are written on a duplicate or at start: a row already
//! there (the central's, or a newer sign-up's) is never replaced with an
//! older sign-up.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use loja_protocol::DocumentKind;
use loja_protocol::document::CustomerSignup;
use loja_replica::{Catalog, LocalWrite, Outbox, ReplicaError};
use serde_json::{Map, Value};

/// The replica row (`customers` registry columns) of a sign-up;
/// `updated_at` is when the store took it.
pub fn customer_row(s: &CustomerSignup, updated_at: &str) -> Map<String, Value> {
    let mut row = Map::new();
    row.insert("document".into(), s.document.clone().into());
    row.insert("name".into(), s.name.clone().into());
    let opt = |row: &mut Map<String, Value>, k: &str, v: &Option<String>| {
        if let Some(v) = v {
            row.insert(k.into(), v.clone().into());
        }
    };
    opt(&mut row, "email", &s.email);
    opt(&mut row, "phone", &s.phone);
    opt(&mut row, "birth_date", &s.birth_date);
    opt(&mut row, "uf", &s.uf);
    if let Some(c) = s.city_ibge_code {
        row.insert("city_ibge_code".into(), c.into());
    }
    row.insert("lgpd_consent".into(), s.lgpd_consent.into());
    row.insert("updated_at".into(), updated_at.into());
    row
}

/// How a local row is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// A new sign-up: the POS's data is the newest, it replaces any row.
    Replace,
    /// A retry or the recovery: only a sign-up whose row was never written,
    /// and only when the customer is not there (a customer the central
    /// erased since stays erased).
    IfMissing,
}

fn customers() -> Result<&'static loja_protocol::Entity, ReplicaError> {
    loja_protocol::entity_named("customers").ok_or_else(|| {
        ReplicaError::Invalid(loja_protocol::FieldError::new(
            "entity",
            "the registry has no customers entity",
        ))
    })
}

/// Writes the row of sign-up `id` into the replica (blocking: it waits for
/// the replica's writer), recording `id` in the same transaction. Returns
/// whether a row was written.
pub fn write_local(
    catalog: &Mutex<Catalog>,
    id: &uuid::Uuid,
    row: &Map<String, Value>,
    how: Write,
) -> Result<bool, ReplicaError> {
    let entity = customers()?;
    let how = match how {
        Write::Replace => LocalWrite::Replace,
        Write::IfMissing => LocalWrite::IfNew,
    };
    let mut c = catalog.lock().unwrap_or_else(|p| p.into_inner());
    c.upsert_local_document(entity, row, &id.to_string(), how)
}

/// What [`recover`] found and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Customers with a sign-up in the outbox.
    pub customers: usize,
    /// Rows written because the replica did not have the customer.
    pub written: usize,
    /// Rows that could not be written (logged one by one).
    pub failed: usize,
}

/// At start, before the POS API serves and before the jobs run: writes into
/// the replica every customer with a sign-up still in the outbox that the
/// replica does not have (the newest sign-up per customer; nothing present
/// is replaced). Blocking. A row that cannot be written is logged and
/// counted, and does not stop the start.
pub fn recover(dir: &Path, catalog: &Mutex<Catalog>) -> Result<Recovered, ReplicaError> {
    let docs = Outbox::open(dir)?.documents_of_kind(DocumentKind::Customer)?;
    let in_outbox: HashSet<String> = docs.iter().map(|d| d.id.to_string()).collect();
    // The newest sign-up of each customer (documents come oldest first).
    let mut newest: BTreeMap<String, (uuid::Uuid, Map<String, Value>)> = BTreeMap::new();
    for d in docs {
        match serde_json::from_value::<CustomerSignup>(d.body) {
            Ok(s) => {
                let row = customer_row(&s, &d.accepted_at);
                newest.insert(s.document, (d.id, row));
            }
            Err(e) => {
                tracing::warn!(id = %d.id, error = %e, "sign-up recovery: an outbox customer document does not read as a sign-up; skipped");
            }
        }
    }
    let mut out = Recovered {
        customers: newest.len(),
        ..Recovered::default()
    };
    for (id, row) in newest.values() {
        match write_local(catalog, id, row, Write::IfMissing) {
            Ok(false) => {}
            Ok(true) => {
                out.written += 1;
                tracing::info!(id = %id, "sign-up recovery: the customer of an acknowledged sign-up was missing from the replica; written");
            }
            Err(e) => {
                out.failed += 1;
                tracing::warn!(id = %id, error = %e, "sign-up recovery: the customer of an acknowledged sign-up could not be written to the replica");
            }
        }
    }
    // Sign-ups the outbox has purged can never be written again: forget them.
    let mut c = catalog.lock().unwrap_or_else(|p| p.into_inner());
    c.prune_local_documents(&in_outbox)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use loja_replica::{CatalogReader, NewDocument};
    use serde_json::json;

    fn signup(document: &str, name: &str) -> NewDocument {
        NewDocument {
            id: uuid::Uuid::new_v4(),
            kind: DocumentKind::Customer,
            body: json!({"document": document, "name": name, "lgpd_consent": true, "register": "PDV01"}),
        }
    }

    #[test]
    fn recovery_writes_only_the_missing_customers_and_the_newest_signup() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Mutex::new(Catalog::open(dir.path()).unwrap());
        {
            let mut o = Outbox::open(dir.path()).unwrap();
            for d in [
                signup("52998224725", "Maria"),
                signup("52998224725", "Maria da Silva"),
                signup("11144477735", "João"),
                signup("11222333000181", "Padaria"),
            ] {
                o.accept(&d).unwrap();
            }
        }
        // The central's row of one customer is there already: kept.
        let central = json!({"document": "11144477735", "name": "João (ERP)", "updated_at": "2026-11-26T12:00:00Z"});
        catalog
            .lock()
            .unwrap()
            .upsert_local(customers().unwrap(), central.as_object().unwrap())
            .unwrap();

        let r = recover(dir.path(), &catalog).unwrap();
        assert_eq!(
            r,
            Recovered {
                customers: 3,
                written: 2,
                failed: 0
            }
        );
        let reader = CatalogReader::open(dir.path()).unwrap();
        let name = |d: &str| reader.customer_by_document(d).unwrap().unwrap()["name"].clone();
        assert_eq!(name("52998224725"), "Maria da Silva");
        assert_eq!(name("11144477735"), "João (ERP)");
        assert_eq!(name("11222333000181"), "Padaria");
        // Nothing left to do the second time.
        assert_eq!(recover(dir.path(), &catalog).unwrap().written, 0);
        // A customer the central erased since stays erased on the next start.
        let customers = customers().unwrap();
        catalog
            .lock()
            .unwrap()
            .apply_page(
                customers,
                &serde_json::from_value(
                    json!({"entity": "customers", "after": 0, "next": 9, "more": false,
                    "items": [{"seq": 9, "op": "delete", "row": {"document": "11222333000181"}}]}),
                )
                .unwrap(),
            )
            .unwrap();
        assert_eq!(recover(dir.path(), &catalog).unwrap().written, 0);
        let reader = CatalogReader::open(dir.path()).unwrap();
        assert!(
            reader
                .customer_by_document("11222333000181")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn if_missing_never_replaces_a_row() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Mutex::new(Catalog::open(dir.path()).unwrap());
        let s: CustomerSignup =
            serde_json::from_value(signup("52998224725", "Maria").body).unwrap();
        let row = customer_row(&s, "2026-11-26T12:00:00Z");
        let (first, second) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        assert!(write_local(&catalog, &first, &row, Write::IfMissing).unwrap());
        let mut newer = row.clone();
        newer.insert("name".into(), "Maria S.".into());
        assert!(!write_local(&catalog, &second, &newer, Write::IfMissing).unwrap());
        assert!(write_local(&catalog, &second, &newer, Write::Replace).unwrap());
        let reader = CatalogReader::open(dir.path()).unwrap();
        assert_eq!(
            reader.customer_by_document("52998224725").unwrap().unwrap()["name"],
            "Maria S."
        );
    }
}
