//! Signed lojad releases and their staged rollout (issue 18,
//! docs/update.md): the keyring the root key signs, published manifests and
//! artifacts, which release each store is offered (waves by a hash of the
//! store id, pilot groups, pins, pause, emergency), and the stores' reports,
//! which pause a release by themselves when too many of its stores rolled
//! back.
//!
//! The HTTP routes live here too ([`store_routes`], [`admin_routes`]); they
//! are generic over the server state through [`HasDb`], so this module does
//! not depend on `http` (which merges them; the admin ones behind its admin
//! token layer).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::sql::{Connection, OptionalExtension, Transaction};
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use ed25519_dalek::SigningKey;
use loja_protocol::release::{
    self as rel, Keyring, Manifest, Offer, ReleaseKey, Report, Signed, Target,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::db::{Db, DbError, now_unix};
use crate::nodes::{self, Scope};

/// The default waves: 1 % of the stores after an hour, 10 % after a day,
/// all after three days (the pilot group at once).
pub const DEFAULT_WAVES: &str = "1h:1,24h:10,72h:100";

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Signing(#[from] rel::ReleaseError),
    #[error("{path}: {message}")]
    File { path: String, message: String },
}

impl From<crate::sql::Error> for ReleaseError {
    fn from(e: crate::sql::Error) -> Self {
        ReleaseError::Db(DbError::Sql(e))
    }
}

// ---------------------------------------------------------------- keys

/// A new ed25519 key from the OS's random source.
pub fn generate_key() -> Result<SigningKey, ReleaseError> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed)
        .map_err(|e| ReleaseError::Invalid(format!("no OS randomness: {e}")))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Writes a key file: the 32-byte seed as 64 hex digits, mode 0600. Refuses
/// to overwrite one.
pub fn write_key_file(path: &Path, key: &SigningKey) -> Result<(), ReleaseError> {
    use std::io::Write as _;
    let file_err = |e: std::io::Error| ReleaseError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(file_err)?;
    f.write_all(rel::hex(&key.to_bytes()).as_bytes())
        .map_err(file_err)?;
    f.sync_all().map_err(file_err)
}

pub fn read_key_file(path: &Path) -> Result<SigningKey, ReleaseError> {
    let text = std::fs::read_to_string(path).map_err(|e| ReleaseError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let seed = rel::unhex::<32>(&text, "key file").map_err(|_| ReleaseError::File {
        path: path.display().to_string(),
        message: "not a key file (64 hex digits)".into(),
    })?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The newest keyring the root signed, as stored.
pub fn current_keyring(conn: &Connection) -> Result<Option<(Keyring, Signed)>, ReleaseError> {
    let body: Option<String> = conn
        .query_row(
            "SELECT body FROM release_keyrings ORDER BY version DESC LIMIT 1",
            params![],
            |r| r.get(0),
        )
        .optional()?;
    let Some(body) = body else { return Ok(None) };
    let signed: Signed = serde_json::from_str(&body)
        .map_err(|e| ReleaseError::Invalid(format!("stored keyring: {e}")))?;
    let ring: Keyring = serde_json::from_str(&signed.signed)
        .map_err(|e| ReleaseError::Invalid(format!("stored keyring: {e}")))?;
    Ok(Some((ring, signed)))
}

/// Stores the next keyring: the current one changed by `change`, signed by
/// `root` (which must be the root that signed the previous ones).
fn next_keyring(
    tx: &Transaction<'_>,
    root: &SigningKey,
    change: impl FnOnce(&mut Keyring),
) -> Result<Keyring, ReleaseError> {
    let current = current_keyring(tx)?;
    if let Some((_, signed)) = &current
        && signed.key != rel::hex(root.verifying_key().as_bytes())
    {
        return Err(ReleaseError::Invalid(
            "this is not the root key that signed the current keyring".into(),
        ));
    }
    let mut ring = current.map(|(r, _)| r).unwrap_or(Keyring {
        version: 0,
        keys: Vec::new(),
        revoked: Vec::new(),
    });
    ring.version += 1;
    change(&mut ring);
    let signed = rel::sign(&ring, root)?;
    let body = serde_json::to_string(&signed)
        .map_err(|e| ReleaseError::Invalid(format!("keyring: {e}")))?;
    tx.execute(
        "INSERT INTO release_keyrings (version, body) VALUES (?1, ?2)",
        params![ring.version as i64, body],
    )?;
    Ok(ring)
}

/// The root vouches for `key` (hex public key) until `expires` (RFC 3339).
pub fn sign_key(
    db: &Db,
    root: &SigningKey,
    key: &str,
    expires: &str,
) -> Result<Keyring, ReleaseError> {
    let key = rel::hex(rel::public_key(key)?.as_bytes());
    if loja_protocol::time::parse(expires).is_none() {
        return Err(ReleaseError::Invalid(format!(
            "--expires {expires:?} is not an RFC 3339 time"
        )));
    }
    db.write(|tx| {
        next_keyring(tx, root, |ring| {
            ring.keys.retain(|k| k.key != key);
            ring.revoked.retain(|k| *k != key);
            ring.keys.push(ReleaseKey {
                key: key.clone(),
                expires: expires.to_owned(),
            });
        })
    })
}

/// The root withdraws `key`: stores refuse manifests it signed from the
/// next keyring they fetch on.
pub fn revoke_key(db: &Db, root: &SigningKey, key: &str) -> Result<Keyring, ReleaseError> {
    let key = rel::hex(rel::public_key(key)?.as_bytes());
    db.write(|tx| {
        next_keyring(tx, root, |ring| {
            ring.keys.retain(|k| k.key != key);
            if !ring.revoked.contains(&key) {
                ring.revoked.push(key.clone());
            }
        })
    })
}

// ------------------------------------------------------------- publish

/// What `release publish` takes.
pub struct Publish<'a> {
    pub version: String,
    pub min_from: String,
    pub notes: String,
    pub rollback: bool,
    pub emergency: bool,
    /// Node ids whose stores take the release at once.
    pub pilot: Vec<String>,
    pub waves: String,
    pub halt_percent: u32,
    /// By target, the artifact's bytes.
    pub artifacts: BTreeMap<String, Vec<u8>>,
    pub key: &'a SigningKey,
}

/// `AFTER:PERCENT,…` (after: `30s`, `10m`, `1h`, `3d`; percent 0–100) →
/// (seconds, percent), in the order given.
pub fn parse_waves(text: &str) -> Result<Vec<(i64, u32)>, ReleaseError> {
    let bad = || {
        ReleaseError::Invalid(format!(
            "waves {text:?}: expected AFTER:PERCENT,… such as {DEFAULT_WAVES}"
        ))
    };
    text.split(',')
        .filter(|w| !w.trim().is_empty())
        .map(|w| {
            let (after, pct) = w.trim().split_once(':').ok_or_else(bad)?;
            let (n, unit) = after.split_at(after.len().saturating_sub(1));
            let n: i64 = n.parse().map_err(|_| bad())?;
            let secs = match unit {
                "s" => n,
                "m" => n * 60,
                "h" => n * 3600,
                "d" => n * 86_400,
                _ => return Err(bad()),
            };
            let pct: u32 = pct.parse().map_err(|_| bad())?;
            if pct > 100 || secs < 0 {
                return Err(bad());
            }
            Ok((secs, pct))
        })
        .collect()
}

/// Signs the manifest of `p` and stores it with its artifacts; returns the
/// manifest. The signing key must be in the current keyring (else every
/// store would refuse the release).
pub fn publish(db: &Db, p: Publish<'_>) -> Result<Manifest, ReleaseError> {
    rel::compare_versions(&p.version, &p.min_from)?;
    parse_waves(&p.waves)?;
    if p.artifacts.is_empty() {
        return Err(ReleaseError::Invalid("no artifact given".into()));
    }
    let signer = rel::hex(p.key.verifying_key().as_bytes());
    db.write(|tx| {
        let (ring, _) = current_keyring(tx)?.ok_or_else(|| {
            ReleaseError::Invalid("no keyring yet: `release key sign` a release key first".into())
        })?;
        if !ring.keys.iter().any(|k| k.key == signer) {
            return Err(ReleaseError::Invalid(format!(
                "release key {signer} is not in the current keyring (sign it with the root first)"
            )));
        }
        let last: i64 = tx.query_row(
            "SELECT COALESCE(MAX(sequence), 0) FROM releases",
            params![],
            |r| r.get(0),
        )?;
        let manifest = Manifest {
            sequence: last as u64 + 1,
            version: p.version.clone(),
            min_from: p.min_from.clone(),
            rollback: p.rollback,
            notes: p.notes.clone(),
            published_at: loja_protocol::time::now_rfc3339(),
            targets: p
                .artifacts
                .iter()
                .map(|(t, b)| {
                    (
                        t.clone(),
                        Target {
                            sha256: rel::sha256_hex(b),
                            size: b.len() as u64,
                        },
                    )
                })
                .collect(),
        };
        let signed = rel::sign(&manifest, p.key)?;
        let body = serde_json::to_string(&signed)
            .map_err(|e| ReleaseError::Invalid(format!("manifest: {e}")))?;
        tx.execute(
            "INSERT INTO releases (sequence, version, rollback, manifest, pilot, waves, started_at, emergency, halt_percent) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                manifest.sequence as i64,
                manifest.version,
                p.rollback,
                body,
                p.pilot.join(","),
                p.waves,
                now_unix(),
                p.emergency,
                p.halt_percent,
            ],
        )?;
        for (target, bytes) in &p.artifacts {
            tx.execute(
                "INSERT INTO release_artifacts (sequence, target, bytes) VALUES (?1, ?2, ?3)",
                params![manifest.sequence as i64, target, bytes],
            )?;
        }
        Ok(manifest)
    })
}

// -------------------------------------------------------------- rollout

/// A store's fixed place in the rollout, 0..10000 (hundredths of a percent):
/// the first 8 bytes of sha256(store id).
pub fn place(store: &str) -> u64 {
    let h = Sha256::digest(store.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[..8]);
    u64::from_be_bytes(b) % 10_000
}

/// The share of stores (percent) a release started `elapsed` seconds ago
/// has reached.
pub fn wave_percent(waves: &[(i64, u32)], elapsed: i64) -> u32 {
    waves
        .iter()
        .filter(|(after, _)| elapsed >= *after)
        .map(|(_, pct)| *pct)
        .max()
        .unwrap_or(0)
}

struct Row {
    sequence: i64,
    version: String,
    manifest: String,
    pilot: String,
    waves: String,
    started_at: i64,
    paused: bool,
    emergency: bool,
}

fn rows(conn: &Connection) -> Result<Vec<Row>, ReleaseError> {
    let mut stmt = conn.prepare_cached(
        "SELECT sequence, version, manifest, pilot, waves, started_at, paused, emergency \
         FROM releases ORDER BY sequence DESC",
    )?;
    let out = stmt
        .query_map(params![], |r| {
            Ok(Row {
                sequence: r.get(0)?,
                version: r.get(1)?,
                manifest: r.get(2)?,
                pilot: r.get(3)?,
                waves: r.get(4)?,
                started_at: r.get(5)?,
                paused: r.get(6)?,
                emergency: r.get(7)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(out)
}

/// Whether release `r` is offered to the store of `scope` at `now`.
fn reaches(r: &Row, scope: &Scope, now: i64) -> bool {
    if r.emergency {
        return true;
    }
    if r.paused {
        return false;
    }
    let pilot = r
        .pilot
        .split(',')
        .any(|g| !g.is_empty() && scope.nodes.iter().any(|n| n == g));
    if pilot {
        return true;
    }
    let waves = parse_waves(&r.waves).unwrap_or_default();
    let pct = wave_percent(&waves, now - r.started_at);
    place(&scope.store) < u64::from(pct) * 100
}

/// The pin of the store or of its nearest group, if any.
fn pin_of(conn: &Connection, scope: &Scope) -> Result<Option<String>, ReleaseError> {
    for node in &scope.nodes {
        let v: Option<String> = conn
            .query_row(
                "SELECT version FROM release_pins WHERE node = ?1",
                params![node],
                |r| r.get(0),
            )
            .optional()?;
        if v.is_some() {
            return Ok(v);
        }
    }
    Ok(None)
}

/// The release offered to the store of `scope`: with a pin, the newest
/// release of the pinned version (whatever its wave or pause); otherwise
/// the newest release that reaches the store. The store decides whether it
/// is new to it.
pub fn offered(
    conn: &Connection,
    scope: &Scope,
    now: i64,
) -> Result<Option<(u64, Offer)>, ReleaseError> {
    let Some((_, keyring)) = current_keyring(conn)? else {
        return Ok(None);
    };
    let pin = pin_of(conn, scope)?;
    let chosen = rows(conn)?.into_iter().find(|r| match &pin {
        Some(v) => r.version == *v,
        None => reaches(r, scope, now),
    });
    let Some(r) = chosen else { return Ok(None) };
    let manifest: Signed = serde_json::from_str(&r.manifest)
        .map_err(|e| ReleaseError::Invalid(format!("stored manifest: {e}")))?;
    Ok(Some((r.sequence as u64, Offer { keyring, manifest })))
}

/// The artifact of release `sequence` for `target`, if that release is the
/// one offered to the store.
pub fn artifact(
    conn: &Connection,
    scope: &Scope,
    sequence: u64,
    target: &str,
    now: i64,
) -> Result<Option<Vec<u8>>, ReleaseError> {
    match offered(conn, scope, now)? {
        Some((seq, _)) if seq == sequence => {}
        _ => return Ok(None),
    }
    Ok(conn
        .query_row(
            "SELECT bytes FROM release_artifacts WHERE sequence = ?1 AND target = ?2",
            params![sequence as i64, target],
            |r| r.get(0),
        )
        .optional()?)
}

/// Records a store's report; pauses the newest release of that version when
/// more than its `halt_percent` of the reporting stores rolled back.
/// Returns the pause reason when this report paused it.
pub fn record_report(
    tx: &Transaction<'_>,
    store: &str,
    report: &Report,
) -> Result<Option<String>, ReleaseError> {
    tx.execute(
        "INSERT INTO release_reports (store, to_version, from_version, result, error, at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT (store, to_version) DO UPDATE SET from_version = excluded.from_version, \
         result = excluded.result, error = excluded.error, at = excluded.at",
        params![
            store,
            report.to,
            report.from,
            report.result,
            report.error,
            now_unix()
        ],
    )?;
    if report.result != Report::ROLLED_BACK {
        return Ok(None);
    }
    let (total, rolled): (i64, i64) = tx.query_row(
        "SELECT count(*), COALESCE(SUM(CASE WHEN result = 'rolled_back' THEN 1 ELSE 0 END), 0) FROM release_reports WHERE to_version = ?1",
        params![report.to],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let release: Option<(i64, i64, bool)> = tx
        .query_row(
            "SELECT sequence, halt_percent, paused FROM releases WHERE version = ?1 AND rollback = 0 \
             ORDER BY sequence DESC LIMIT 1",
            params![report.to],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((sequence, halt, paused)) = release else {
        return Ok(None);
    };
    if paused || rolled * 100 <= halt * total {
        return Ok(None);
    }
    let reason = format!(
        "paused by itself: {rolled} of {total} reporting stores rolled back (more than {halt} %)"
    );
    tx.execute(
        "UPDATE releases SET paused = 1, pause_reason = ?2 WHERE sequence = ?1",
        params![sequence, reason],
    )?;
    tracing::warn!(sequence, version = %report.to, rolled, total, "release paused: too many rollbacks");
    Ok(Some(reason))
}

/// Notes that `store` downloaded release `sequence`'s artifact.
pub fn record_fetch(tx: &Transaction<'_>, store: &str, sequence: u64) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO release_fetches (store, sequence, at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (store, sequence) DO UPDATE SET at = excluded.at",
        params![store, sequence as i64, now_unix()],
    )?;
    Ok(())
}

/// An operator's change to a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Pause,
    Resume,
    Emergency,
}

pub fn control(db: &Db, sequence: u64, what: Control) -> Result<(), ReleaseError> {
    let sql = match what {
        Control::Pause => {
            "UPDATE releases SET paused = 1, pause_reason = 'paused by an operator' WHERE sequence = ?1"
        }
        Control::Resume => {
            "UPDATE releases SET paused = 0, pause_reason = NULL WHERE sequence = ?1"
        }
        Control::Emergency => "UPDATE releases SET emergency = 1, paused = 0 WHERE sequence = ?1",
    };
    let n = db.write(|tx| {
        tx.execute(sql, params![sequence as i64])
            .map_err(DbError::from)
    })?;
    if n == 0 {
        return Err(ReleaseError::NotFound(format!("no release {sequence}")));
    }
    Ok(())
}

/// Holds a store or group at `version` (`None`: removes the pin).
pub fn pin(db: &Db, node: &str, version: Option<&str>) -> Result<(), ReleaseError> {
    if let Some(v) = version {
        rel::compare_versions(v, v)?;
    }
    db.write(|tx| {
        match version {
            Some(v) => tx.execute(
                "INSERT INTO release_pins (node, version) VALUES (?1, ?2) \
                 ON CONFLICT (node) DO UPDATE SET version = excluded.version",
                params![node, v],
            ),
            None => tx.execute("DELETE FROM release_pins WHERE node = ?1", params![node]),
        }
        .map_err(DbError::from)
    })?;
    Ok(())
}

/// One release as `release list` and `GET /v1/admin/releases` show it.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseView {
    pub sequence: u64,
    pub version: String,
    pub rollback: bool,
    pub pilot: String,
    pub waves: String,
    pub reached_percent: u32,
    /// When its waves started counting (unix seconds).
    pub started_at: i64,
    pub paused: bool,
    pub pause_reason: Option<String>,
    pub emergency: bool,
    pub halt_percent: u32,
    pub reports_ok: u64,
    pub reports_rolled_back: u64,
}

pub fn list(conn: &Connection) -> Result<Vec<ReleaseView>, ReleaseError> {
    let now = now_unix();
    let mut stmt = conn.prepare_cached(
        "SELECT r.sequence, r.version, r.rollback, r.pilot, r.waves, r.started_at, r.paused, \
                r.pause_reason, r.emergency, r.halt_percent, \
                (SELECT count(*) FROM release_reports p WHERE p.to_version = r.version AND p.result = 'ok'), \
                (SELECT count(*) FROM release_reports p WHERE p.to_version = r.version AND p.result = 'rolled_back') \
         FROM releases r ORDER BY r.sequence",
    )?;
    let out = stmt
        .query_map(params![], |r| {
            let waves: String = r.get(4)?;
            let started: i64 = r.get(5)?;
            Ok(ReleaseView {
                sequence: r.get::<_, i64>(0)? as u64,
                version: r.get(1)?,
                rollback: r.get(2)?,
                pilot: r.get(3)?,
                reached_percent: wave_percent(
                    &parse_waves(&waves).unwrap_or_default(),
                    now - started,
                ),
                started_at: started,
                waves,
                paused: r.get(6)?,
                pause_reason: r.get(7)?,
                emergency: r.get(8)?,
                halt_percent: r.get(9)?,
                reports_ok: r.get::<_, i64>(10)? as u64,
                reports_rolled_back: r.get::<_, i64>(11)? as u64,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(out)
}

// ------------------------------------------------------ rollout progress

/// Stores of one wave, by where they stand with the release's version
/// (from their reports and their artifact downloads).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WaveCounts {
    pub stores: u64,
    /// Reported `ok`: running the new version.
    pub updated: u64,
    /// Downloaded the artifact, not reported yet: installing or in trial.
    pub in_trial: u64,
    pub rolled_back: u64,
    /// Reported `refused` (the release did not verify or install).
    pub failed: u64,
}

impl WaveCounts {
    /// Not yet touched by the release.
    pub fn waiting(&self) -> u64 {
        self.stores
            .saturating_sub(self.updated + self.in_trial + self.rolled_back + self.failed)
    }
}

/// One wave of a release: the pilot group (`after_secs: None`), or the
/// stores whose place falls between the previous wave's share and this
/// one's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaveProgress {
    pub after_secs: Option<i64>,
    pub percent: u32,
    /// Its time has come (the pilot's always has).
    pub due: bool,
    pub counts: WaveCounts,
}

/// A release with its waves' progress.
#[derive(Debug, Clone)]
pub struct RolloutView {
    pub release: ReleaseView,
    pub waves: Vec<WaveProgress>,
    /// Stores in no wave (the last wave is below 100 %).
    pub outside: WaveCounts,
}

/// Every store with its scope (itself, then its ancestors), from one read
/// of the node table.
fn store_scopes(conn: &Connection) -> Result<Vec<Scope>, ReleaseError> {
    let all = nodes::list(conn)?;
    let parent: std::collections::HashMap<&str, Option<&str>> = all
        .iter()
        .map(|n| (n.id.as_str(), n.parent.as_deref()))
        .collect();
    let mut out = Vec::new();
    for n in all.iter().filter(|n| n.kind == nodes::NodeKind::Store) {
        let mut chain = vec![n.id.clone()];
        let mut cur = n.parent.as_deref();
        // Bounded like nodes::ancestors: deeper is a loop.
        while let Some(p) = cur.filter(|_| chain.len() < 64) {
            chain.push(p.to_owned());
            cur = parent.get(p).copied().flatten();
        }
        out.push(Scope {
            store: n.id.clone(),
            nodes: chain,
        });
    }
    Ok(out)
}

/// Which wave of `r` the store of `scope` belongs to: `Some(0)` the pilot
/// (when `r` has one), then the waves in order; `None` in no wave.
fn wave_index(pilot: &[&str], waves: &[(i64, u32)], scope: &Scope) -> Option<usize> {
    let has_pilot = usize::from(!pilot.is_empty());
    if pilot.iter().any(|g| scope.contains(g)) {
        return Some(0);
    }
    let place = place(&scope.store);
    let mut reached = 0u32;
    for (i, (_, pct)) in waves.iter().enumerate() {
        reached = reached.max(*pct);
        if place < u64::from(reached) * 100 {
            return Some(i + has_pilot);
        }
    }
    None
}

/// Each release (newest first) with the progress of each of its waves.
pub fn rollouts(conn: &Connection) -> Result<Vec<RolloutView>, ReleaseError> {
    let now = now_unix();
    let scopes = store_scopes(conn)?;
    let mut out = Vec::new();
    for release in list(conn)?.into_iter().rev() {
        let reports: std::collections::HashMap<String, String> = conn
            .prepare("SELECT store, result FROM release_reports WHERE to_version = ?1")?
            .query_map(params![release.version], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let fetched: std::collections::HashSet<String> = conn
            .prepare("SELECT store FROM release_fetches WHERE sequence = ?1")?
            .query_map(params![release.sequence as i64], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let pilot: Vec<&str> = release.pilot.split(',').filter(|g| !g.is_empty()).collect();
        let waves = parse_waves(&release.waves).unwrap_or_default();
        let mut progress: Vec<WaveProgress> = Vec::new();
        if !pilot.is_empty() {
            progress.push(WaveProgress {
                after_secs: None,
                percent: 0,
                due: true,
                counts: WaveCounts::default(),
            });
        }
        for (after, pct) in &waves {
            progress.push(WaveProgress {
                after_secs: Some(*after),
                percent: *pct,
                due: now - release.started_at >= *after,
                counts: WaveCounts::default(),
            });
        }
        let mut outside = WaveCounts::default();
        for scope in &scopes {
            let counts = match wave_index(&pilot, &waves, scope) {
                Some(i) => match progress.get_mut(i) {
                    Some(w) => &mut w.counts,
                    None => &mut outside,
                },
                None => &mut outside,
            };
            counts.stores += 1;
            match reports.get(&scope.store).map(String::as_str) {
                Some(Report::OK) => counts.updated += 1,
                Some(Report::ROLLED_BACK) => counts.rolled_back += 1,
                Some(Report::REFUSED) => counts.failed += 1,
                _ if fetched.contains(&scope.store) => counts.in_trial += 1,
                _ => {}
            }
        }
        out.push(RolloutView {
            release,
            waves: progress,
            outside,
        });
    }
    Ok(out)
}

// ----------------------------------------------------------------- HTTP

/// The server state the release routes need.
pub trait HasDb: Send + Sync + 'static {
    fn db(&self) -> &Db;
}

struct HttpError(StatusCode, String);

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let code = match self.0 {
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST => "invalid",
            _ => "internal",
        };
        (self.0, Json(loja_protocol::ErrorBody::new(code, self.1))).into_response()
    }
}

impl From<ReleaseError> for HttpError {
    fn from(e: ReleaseError) -> Self {
        match e {
            ReleaseError::NotFound(m) => HttpError(StatusCode::NOT_FOUND, m),
            ReleaseError::Invalid(m) => HttpError(StatusCode::UNPROCESSABLE_ENTITY, m),
            ReleaseError::Signing(e) => HttpError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
            other => {
                tracing::warn!(error = %other, "release route failed");
                HttpError(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
            }
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, HttpError> + Send + 'static,
) -> Result<T, HttpError> {
    tokio::task::spawn_blocking(f).await.map_err(|_| {
        HttpError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "worker task failed".into(),
        )
    })?
}

/// The store's scope when the bearer token is that store's.
fn store_scope(conn: &Connection, store: &str, headers: &HeaderMap) -> Result<Scope, HttpError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| HttpError(StatusCode::UNAUTHORIZED, "missing bearer token".into()))?;
    let owner = nodes::store_of_token(conn, token)
        .map_err(ReleaseError::from)?
        .ok_or_else(|| HttpError(StatusCode::UNAUTHORIZED, "unknown store token".into()))?;
    if owner != store {
        return Err(HttpError(
            StatusCode::FORBIDDEN,
            "this token belongs to another store".into(),
        ));
    }
    nodes::scope(conn, store)
        .map_err(ReleaseError::from)?
        .ok_or_else(|| HttpError(StatusCode::NOT_FOUND, format!("no such store {store}")))
}

/// `GET /v1/stores/{store}/release` (the offer, or 204),
/// `GET /v1/stores/{store}/release/{sequence}/{target}` (the artifact),
/// `POST /v1/stores/{store}/release/reports`.
pub fn store_routes<S: HasDb>() -> Router<Arc<S>> {
    Router::new()
        .route("/v1/stores/{store}/release", get(get_offer::<S>))
        .route(
            "/v1/stores/{store}/release/{sequence}/{target}",
            get(get_artifact::<S>),
        )
        .route("/v1/stores/{store}/release/reports", post(post_report::<S>))
}

/// `GET /v1/admin/releases`, `POST /v1/admin/releases/{sequence}/{action}`
/// (pause, resume, emergency), `PUT /v1/admin/releases/pins/{node}` (body
/// `{"version"}`; `null` removes the pin). The caller puts them behind the
/// admin token.
pub fn admin_routes<S: HasDb>() -> Router<Arc<S>> {
    Router::new()
        .route("/v1/admin/releases", get(admin_list::<S>))
        .route(
            "/v1/admin/releases/{sequence}/{action}",
            post(admin_control::<S>),
        )
        .route("/v1/admin/releases/pins/{node}", put(admin_pin::<S>))
}

async fn get_offer<S: HasDb>(
    State(st): State<Arc<S>>,
    UrlPath(store): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    blocking(move || {
        st.db().read(|conn| {
            let scope = store_scope(conn, &store, &headers)?;
            Ok(match offered(conn, &scope, now_unix())? {
                Some((_, offer)) => Json(offer).into_response(),
                None => StatusCode::NO_CONTENT.into_response(),
            })
        })
    })
    .await
}

async fn get_artifact<S: HasDb>(
    State(st): State<Arc<S>>,
    UrlPath((store, sequence, target)): UrlPath<(String, u64, String)>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    blocking(move || {
        let bytes = st.db().read(|conn| {
            let scope = store_scope(conn, &store, &headers)?;
            artifact(conn, &scope, sequence, &target, now_unix())?.ok_or_else(|| {
                HttpError(
                    StatusCode::NOT_FOUND,
                    format!("release {sequence} for {target} is not offered to this store"),
                )
            })
        })?;
        // The rollouts page's "in trial" (downloaded, not reported yet). An
        // artifact download is rare (once per store and release), so one
        // write each is cheap; failing to note it must not fail the download.
        if let Err(e) = st.db().write(|tx| record_fetch(tx, &store, sequence)) {
            tracing::warn!(%store, sequence, error = %e, "cannot note the release download");
        }
        Ok((
            [(header::CONTENT_TYPE, "application/octet-stream")],
            Bytes::from(bytes),
        )
            .into_response())
    })
    .await
}

async fn post_report<S: HasDb>(
    State(st): State<Arc<S>>,
    UrlPath(store): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, HttpError> {
    let report: Report = serde_json::from_slice(&body)
        .map_err(|e| HttpError(StatusCode::UNPROCESSABLE_ENTITY, format!("report: {e}")))?;
    blocking(move || {
        st.db().write(|tx| {
            store_scope(tx, &store, &headers)?;
            let paused = record_report(tx, &store, &report)?;
            tracing::info!(%store, from = %report.from, to = %report.to, result = %report.result,
                error = report.error.as_deref().unwrap_or(""), "release report");
            Ok(Json(serde_json::json!({"recorded": true, "paused": paused})).into_response())
        })
    })
    .await
}

async fn admin_list<S: HasDb>(State(st): State<Arc<S>>) -> Result<Response, HttpError> {
    blocking(move || st.db().read(|conn| Ok(Json(list(conn)?).into_response()))).await
}

async fn admin_control<S: HasDb>(
    State(st): State<Arc<S>>,
    UrlPath((sequence, action)): UrlPath<(u64, String)>,
) -> Result<Response, HttpError> {
    let what = match action.as_str() {
        "pause" => Control::Pause,
        "resume" => Control::Resume,
        "emergency" => Control::Emergency,
        other => {
            return Err(HttpError(
                StatusCode::NOT_FOUND,
                format!("no release action {other:?} (pause, resume, emergency)"),
            ));
        }
    };
    blocking(move || {
        control(st.db(), sequence, what)?;
        Ok(Json(serde_json::json!({"sequence": sequence, "action": action})).into_response())
    })
    .await
}

async fn admin_pin<S: HasDb>(
    State(st): State<Arc<S>>,
    UrlPath(node): UrlPath<String>,
    body: Bytes,
) -> Result<Response, HttpError> {
    #[derive(serde::Deserialize)]
    struct Body {
        version: Option<String>,
    }
    let b: Body = serde_json::from_slice(&body)
        .map_err(|e| HttpError(StatusCode::UNPROCESSABLE_ENTITY, format!("pin: {e}")))?;
    blocking(move || {
        pin(st.db(), &node, b.version.as_deref())?;
        Ok(Json(serde_json::json!({"node": node, "version": b.version})).into_response())
    })
    .await
}

impl From<DbError> for HttpError {
    fn from(e: DbError) -> Self {
        ReleaseError::Db(e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::for_tests(dir.path());
        (dir, db)
    }

    fn scope(store: &str, group: &str) -> Scope {
        Scope {
            store: store.into(),
            nodes: vec![store.into(), group.into(), "master".into()],
        }
    }

    fn publish_one(db: &Db, key: &SigningKey, version: &str, pilot: &[&str], waves: &str) -> u64 {
        publish(
            db,
            Publish {
                version: version.into(),
                min_from: "0.0.0".into(),
                notes: String::new(),
                rollback: false,
                emergency: false,
                pilot: pilot.iter().map(|s| s.to_string()).collect(),
                waves: waves.into(),
                halt_percent: 10,
                artifacts: BTreeMap::from([("t".to_string(), b"bin".to_vec())]),
                key,
            },
        )
        .unwrap()
        .sequence
    }

    #[test]
    fn waves_pilot_pins_pause_and_emergency() {
        let (_d, db) = db();
        let (root, key) = (
            SigningKey::from_bytes(&[1; 32]),
            SigningKey::from_bytes(&[2; 32]),
        );
        sign_key(
            &db,
            &root,
            &rel::hex(key.verifying_key().as_bytes()),
            "2999-01-01T00:00:00Z",
        )
        .unwrap();
        let seq = publish_one(&db, &key, "0.2.0", &["pilots"], "1h:50,2h:100");
        let now = now_unix();
        let pilot = scope("s-pilot", "pilots");
        // every store of the pilot group at once; the others by their place
        let offered_to =
            |s: &Scope, at: i64| db.read(|c| offered(c, s, at)).unwrap().map(|(q, _)| q);
        assert_eq!(offered_to(&pilot, now), Some(seq));
        let stores: Vec<Scope> = (0..200).map(|i| scope(&format!("s{i}"), "g")).collect();
        assert!(stores.iter().all(|s| offered_to(s, now).is_none()));
        let half = stores
            .iter()
            .filter(|s| offered_to(s, now + 3600).is_some())
            .count();
        assert!((60..140).contains(&half), "{half} of 200 in a 50 % wave");
        assert!(
            stores
                .iter()
                .all(|s| offered_to(s, now + 7200) == Some(seq))
        );
        // a store's place never moves
        assert_eq!(place("s1"), place("s1"));

        control(&db, seq, Control::Pause).unwrap();
        assert_eq!(offered_to(&pilot, now), None);
        control(&db, seq, Control::Emergency).unwrap();
        assert_eq!(offered_to(&stores[0], now), Some(seq));

        // a group pinned to a version gets that version's release, whatever
        // is newer
        let newer = publish_one(&db, &key, "0.3.0", &[], "0s:100");
        // (its wave starts when it is published, after `now`)
        assert_eq!(offered_to(&stores[0], now_unix() + 1), Some(newer));
        pin(&db, "g", Some("0.2.0")).unwrap();
        assert_eq!(offered_to(&stores[0], now), Some(seq));
        pin(&db, "g", None).unwrap();
        // (its wave starts when it is published, after `now`)
        assert_eq!(offered_to(&stores[0], now_unix() + 1), Some(newer));
    }

    #[test]
    fn progress_per_wave_from_reports_and_downloads_and_pause_stops_offers() {
        let (_d, db) = db();
        let (root, key) = (
            SigningKey::from_bytes(&[1; 32]),
            SigningKey::from_bytes(&[2; 32]),
        );
        sign_key(
            &db,
            &root,
            &rel::hex(key.verifying_key().as_bytes()),
            "2999-01-01T00:00:00Z",
        )
        .unwrap();
        db.write(|tx| {
            for n in ["pilots", "g"] {
                nodes::upsert_node(
                    tx,
                    &nodes::NewNode {
                        id: n.into(),
                        parent: "master".into(),
                        kind: nodes::NodeKind::Central,
                        token: None,
                    },
                )
                .unwrap();
            }
            for (s, g) in [("s-pilot", "pilots"), ("a", "g"), ("b", "g"), ("c", "g")] {
                nodes::upsert_node(
                    tx,
                    &nodes::NewNode {
                        id: s.into(),
                        parent: g.into(),
                        kind: nodes::NodeKind::Store,
                        token: Some(format!("token-of-{s}")),
                    },
                )
                .unwrap();
            }
            Ok::<_, DbError>(())
        })
        .unwrap();
        let seq = publish_one(&db, &key, "0.2.0", &["pilots"], "0s:100");
        let report = |store: &str, result: &str| {
            db.write(|tx| {
                record_report(
                    tx,
                    store,
                    &Report {
                        from: "0.1.0".into(),
                        to: "0.2.0".into(),
                        result: result.into(),
                        error: None,
                    },
                )
            })
            .unwrap();
        };
        report("s-pilot", Report::OK);
        report("a", Report::REFUSED);
        db.write(|tx| record_fetch(tx, "b", seq)).unwrap();
        let views = db.read(rollouts).unwrap();
        assert_eq!(views.len(), 1);
        let w = &views[0].waves;
        assert_eq!(w.len(), 2, "{w:?}");
        assert_eq!(w[0].after_secs, None);
        assert_eq!(
            w[0].counts,
            WaveCounts {
                stores: 1,
                updated: 1,
                ..WaveCounts::default()
            }
        );
        assert_eq!(
            w[1].counts,
            WaveCounts {
                stores: 3,
                in_trial: 1,
                failed: 1,
                ..WaveCounts::default()
            }
        );
        assert_eq!(w[1].counts.waiting(), 1);
        assert!(w[1].due);

        // Paused: a store asking for its release gets no new version;
        // resumed: it does again.
        let c = scope("c", "g");
        let offered_to = |at: i64| db.read(|conn| offered(conn, &c, at)).unwrap().map(|o| o.0);
        let now = now_unix();
        assert_eq!(offered_to(now), Some(seq));
        control(&db, seq, Control::Pause).unwrap();
        assert_eq!(offered_to(now), None);
        assert!(db.read(list).unwrap()[0].paused);
        control(&db, seq, Control::Resume).unwrap();
        assert_eq!(offered_to(now), Some(seq));
    }

    #[test]
    fn rollbacks_pause_a_release_past_its_share_and_revoked_keys_cannot_publish() {
        let (_d, db) = db();
        let (root, key) = (
            SigningKey::from_bytes(&[1; 32]),
            SigningKey::from_bytes(&[2; 32]),
        );
        let pk = rel::hex(key.verifying_key().as_bytes());
        sign_key(&db, &root, &pk, "2999-01-01T00:00:00Z").unwrap();
        let seq = publish_one(&db, &key, "0.2.0", &[], "0s:100");
        let report = |result: &str| Report {
            from: "0.1.0".into(),
            to: "0.2.0".into(),
            result: result.into(),
            error: None,
        };
        let paused = |store: &str, result: &str| {
            db.write(|tx| record_report(tx, store, &report(result)))
                .unwrap()
        };
        for i in 0..10 {
            assert_eq!(paused(&format!("ok{i}"), Report::OK), None);
        }
        // 1 of 11 rolled back: not more than 10 %
        assert_eq!(paused("bad1", Report::ROLLED_BACK), None);
        assert!(paused("bad2", Report::ROLLED_BACK).is_some());
        let view = db.read(list).unwrap();
        assert!(view[0].paused && view[0].sequence == seq && view[0].reports_rolled_back == 2);

        // a foreign root cannot extend the keyring; a revoked key cannot publish
        let other = SigningKey::from_bytes(&[9; 32]);
        assert!(sign_key(&db, &other, &pk, "2999-01-01T00:00:00Z").is_err());
        let ring = revoke_key(&db, &root, &pk).unwrap();
        assert_eq!(ring.version, 2);
        assert!(ring.keys.is_empty() && ring.revoked == vec![pk]);
        assert!(
            publish(
                &db,
                Publish {
                    version: "0.4.0".into(),
                    min_from: "0.0.0".into(),
                    notes: String::new(),
                    rollback: false,
                    emergency: false,
                    pilot: vec![],
                    waves: DEFAULT_WAVES.into(),
                    halt_percent: 10,
                    artifacts: BTreeMap::from([("t".to_string(), b"bin".to_vec())]),
                    key: &key,
                }
            )
            .is_err()
        );
    }

    #[test]
    fn waves_parse() {
        assert_eq!(
            parse_waves(DEFAULT_WAVES).unwrap(),
            vec![(3600, 1), (86_400, 10), (259_200, 100)]
        );
        assert!(parse_waves("1h:101").is_err());
        assert!(parse_waves("1x:5").is_err());
        assert_eq!(wave_percent(&[(0, 5), (10, 50)], 9), 5);
    }
}
