//! Automatic updates on the store (issue 18, docs/update.md): what this
//! store trusts, which release it has staged, whether the maintenance
//! window is open, and the restart request. The update job
//! (`jobs::update`) drives it; [`swap`] is the small piece the launcher
//! runs to switch and roll back.

pub mod swap;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use loja_protocol::release::{self as rel, Manifest, Offer, ReleaseError};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use swap::{Layout, SwapError, read_json, write_json};

/// The root key built into this binary (`LOJAD_ROOT_PUBLIC_KEY`, 64 hex
/// digits, at build time).
pub const BUILT_IN_ROOT: Option<&str> = option_env!("LOJAD_ROOT_PUBLIC_KEY");

/// The variable the launcher sets to tell a version its name.
pub const VERSION_ENV: &str = "LOJAD_INSTALLED_VERSION";

/// The version this process runs as: the name of the install dir the
/// launcher started it from, else the build's own version.
pub fn running_version() -> String {
    std::env::var(VERSION_ENV)
        .ok()
        .filter(|v| swap::valid_version(v))
        .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_owned())
}

pub fn layout(config: &Config) -> Layout {
    Layout::new(
        config
            .update
            .install_dir
            .clone()
            .unwrap_or_else(|| config.store.data_dir.join("install")),
    )
}

/// The root key releases are checked against: the built-in one, else
/// `[update] root_key`.
pub fn root_key(config: &Config) -> Result<ed25519_dalek::VerifyingKey, String> {
    match BUILT_IN_ROOT.or(config.update.root_key.as_deref()) {
        Some(k) => rel::public_key(k).map_err(|e| format!("root key: {e}")),
        None => Err("no root key (built in, or [update] root_key): updates are off".into()),
    }
}

/// The variable the launcher sets on the version it starts.
pub const LAUNCHED_ENV: &str = "LOJAD_LAUNCHED";

static LAUNCHED: AtomicBool = AtomicBool::new(false);

/// `lojad launch` runs its own daemon in this process.
pub fn mark_launched() {
    LAUNCHED.store(true, Ordering::SeqCst);
}

/// Whether this daemon was started by `lojad launch`: only then does an
/// exit for a restart lead to the launcher's switch (a plain `lojad run`
/// never switches versions).
pub fn launched() -> bool {
    LAUNCHED.load(Ordering::SeqCst) || std::env::var_os(LAUNCHED_ENV).is_some()
}

static RESTART: AtomicBool = AtomicBool::new(false);

fn restart_notify() -> &'static tokio::sync::Notify {
    static N: OnceLock<tokio::sync::Notify> = OnceLock::new();
    N.get_or_init(tokio::sync::Notify::new)
}

/// Asks the daemon to stop and exit with [`swap::RESTART_EXIT`], so that
/// the service manager starts the launcher again.
pub fn request_restart() {
    RESTART.store(true, Ordering::SeqCst);
    restart_notify().notify_one();
}

pub fn restart_requested() -> bool {
    RESTART.load(Ordering::SeqCst)
}

/// Completes when a restart was requested.
pub async fn restart_wanted() {
    if restart_requested() {
        return;
    }
    restart_notify().notified().await;
}

/// What this store has trusted so far (`trust.json`): never goes down.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trust {
    pub keyring_version: u64,
    pub manifest_sequence: u64,
    #[serde(default)]
    pub last_check: Option<String>,
    #[serde(default)]
    pub last_outcome: Option<String>,
}

/// A verified release downloaded into `versions/<version>/`, waiting for
/// the window (`staged.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Staged {
    pub version: String,
    pub sequence: u64,
    pub rollback: bool,
    pub notes: String,
    pub sha256: String,
    pub size: u64,
}

fn trust_file(l: &Layout) -> PathBuf {
    l.root.join("trust.json")
}
fn staged_file(l: &Layout) -> PathBuf {
    l.root.join("staged.json")
}
/// `lojad update --now` leaves this: the next update run applies without
/// waiting for the window (never during a sale, an upload or a request).
pub fn now_file(l: &Layout) -> PathBuf {
    l.root.join("apply-now")
}

pub fn trust(l: &Layout) -> Result<Trust, SwapError> {
    Ok(read_json(&trust_file(l))?.unwrap_or_default())
}
pub fn save_trust(l: &Layout, t: &Trust) -> Result<(), SwapError> {
    write_json(&trust_file(l), t)
}
pub fn staged(l: &Layout) -> Result<Option<Staged>, SwapError> {
    read_json(&staged_file(l))
}
pub fn save_staged(l: &Layout, s: Option<&Staged>) -> Result<(), SwapError> {
    match s {
        Some(s) => write_json(&staged_file(l), s),
        None => match std::fs::remove_file(staged_file(l)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(SwapError::Io {
                path: staged_file(l),
                source: e,
            }),
            _ => Ok(()),
        },
    }
}

/// What to do with an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Download and stage this release's artifact for `target`.
    Install(Manifest, rel::Target),
    /// Nothing to do (with why).
    Skip(String),
}

/// Checks an offer against the root key, the trust state (replays) and
/// the running version; raises the trust state to what it verified.
pub fn judge(
    offer: &Offer,
    root: &ed25519_dalek::VerifyingKey,
    trust: &mut Trust,
    running: &str,
    target: &str,
    layout: &Layout,
    now: time::OffsetDateTime,
) -> Result<Verdict, ReleaseError> {
    let (ring, m) = rel::verify_offer(
        offer,
        root,
        trust.keyring_version,
        trust.manifest_sequence,
        now,
    )?;
    trust.keyring_version = trust.keyring_version.max(ring.version);
    trust.manifest_sequence = trust.manifest_sequence.max(m.sequence);
    if !swap::valid_version(&m.version) {
        return Err(ReleaseError::Version(m.version));
    }
    let order = rel::compare_versions(&m.version, running)?;
    if order == std::cmp::Ordering::Equal {
        return Ok(Verdict::Skip(format!("{running} is current")));
    }
    if order == std::cmp::Ordering::Less && !m.rollback {
        return Ok(Verdict::Skip(format!(
            "{} is older than {running} and not signed as a rollback: refused",
            m.version
        )));
    }
    if order == std::cmp::Ordering::Greater
        && rel::compare_versions(running, &m.min_from)? == std::cmp::Ordering::Less
    {
        return Ok(Verdict::Skip(format!(
            "{} updates only from {} or later",
            m.version, m.min_from
        )));
    }
    if swap::is_bad(layout, &m.version) {
        return Ok(Verdict::Skip(format!(
            "{} failed on this store before: never retried",
            m.version
        )));
    }
    match m.targets.get(target).cloned() {
        Some(t) => Ok(Verdict::Install(m, t)),
        None => Ok(Verdict::Skip(format!(
            "{} has no build for {target}",
            m.version
        ))),
    }
}

/// A maintenance window `HH:MM-HH:MM`, local time (may cross midnight;
/// equal ends: always open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: u32,
    pub to: u32,
}

impl Window {
    pub fn parse(s: &str) -> Option<Window> {
        let minutes = |t: &str| -> Option<u32> {
            let (h, m) = t.trim().split_once(':')?;
            let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
            (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
        };
        let (a, b) = s.split_once('-')?;
        Some(Window {
            from: minutes(a)?,
            to: minutes(b)?,
        })
    }

    /// Whether `minute` of the day (0..1440) is inside.
    pub fn contains(&self, minute: u32) -> bool {
        match self.from.cmp(&self.to) {
            std::cmp::Ordering::Equal => true,
            std::cmp::Ordering::Less => minute >= self.from && minute < self.to,
            std::cmp::Ordering::Greater => minute >= self.from || minute < self.to,
        }
    }
}

/// The window in force: the central's `update_window` parameter (replica),
/// else `[update] window`.
pub fn window(config: &Config) -> (String, &'static str) {
    let central = read_only(&config.store.data_dir.join("replica.db")).and_then(|c| {
        c.query_row(
            "SELECT value FROM parameters WHERE name = 'update_window'",
            [],
            |r| r.get::<_, String>(0),
        )
        .ok()
    });
    match central {
        Some(w) if Window::parse(&w).is_some() => (w, "central parameter update_window"),
        _ => (config.update.window.clone(), "[update] window"),
    }
}

fn read_only(path: &Path) -> Option<rusqlite::Connection> {
    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()
}

/// Registers with an open cash session (outbox.db).
pub fn open_cash_sessions(data_dir: &Path) -> u64 {
    read_only(&data_dir.join("outbox.db"))
        .and_then(|c| {
            c.query_row(
                "SELECT count(*) FROM cash_sessions WHERE closed_at IS NULL",
                [],
                |r| r.get::<_, i64>(0),
            )
            .ok()
        })
        .map_or(0, |n| n.max(0) as u64)
}

/// A product code of the replica: the new version must answer it.
pub fn probe_product(data_dir: &Path) -> Option<String> {
    read_only(&data_dir.join("replica.db")).and_then(|c| {
        c.query_row("SELECT code FROM products ORDER BY code LIMIT 1", [], |r| {
            r.get::<_, String>(0)
        })
        .ok()
    })
}

/// What `lojad update --status` and the status views show.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UpdateView {
    pub version: String,
    pub channel: String,
    pub install_dir: String,
    /// The version `current` names (none: the installed binary).
    pub current: Option<String>,
    /// A verified release waiting for the window.
    pub pending: Option<String>,
    /// A switch in progress (`from → to: state`).
    pub trial: Option<String>,
    pub bad: Vec<String>,
    pub window: String,
    pub keyring_version: u64,
    pub manifest_sequence: u64,
    pub last_check: Option<String>,
    pub last_outcome: Option<String>,
}

pub fn view(config: &Config) -> UpdateView {
    let l = layout(config);
    let trust = trust(&l).unwrap_or_default();
    let mut bad: Vec<String> = std::fs::read_dir(l.bad_dir())
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    bad.sort();
    let trial = read_json::<swap::Trial>(&l.trial_file())
        .ok()
        .flatten()
        .map(|t| format!("{} → {}: {:?}", t.from_version, t.to, t.state));
    UpdateView {
        version: running_version(),
        channel: config.update.channel.clone(),
        install_dir: l.root.display().to_string(),
        current: swap::current(&l),
        pending: staged(&l).ok().flatten().map(|s| s.version),
        trial,
        bad,
        window: window(config).0,
        keyring_version: trust.keyring_version,
        manifest_sequence: trust.manifest_sequence,
        last_check: trust.last_check,
        last_outcome: trust.last_outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use std::collections::BTreeMap;

    #[test]
    fn windows() {
        let night = Window::parse("22:00-06:00").unwrap();
        assert!(night.contains(23 * 60) && night.contains(60) && !night.contains(12 * 60));
        let day = Window::parse("10:30-11:00").unwrap();
        assert!(day.contains(630) && !day.contains(660));
        assert!(Window::parse("00:00-00:00").unwrap().contains(700));
        assert!(Window::parse("25:00-01:00").is_none() && Window::parse("x").is_none());
    }

    #[test]
    fn judging_offers() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let (root, key) = (
            SigningKey::from_bytes(&[1; 32]),
            SigningKey::from_bytes(&[2; 32]),
        );
        let ring = rel::Keyring {
            version: 1,
            keys: vec![rel::ReleaseKey {
                key: rel::hex(key.verifying_key().as_bytes()),
                expires: "2999-01-01T00:00:00Z".into(),
            }],
            revoked: vec![],
        };
        let offer = |seq: u64, version: &str, rollback: bool| Offer {
            keyring: rel::sign(&ring, &root).unwrap(),
            manifest: rel::sign(
                &Manifest {
                    sequence: seq,
                    version: version.into(),
                    min_from: "0.1.0".into(),
                    rollback,
                    notes: String::new(),
                    published_at: String::new(),
                    targets: BTreeMap::from([(
                        "t".to_string(),
                        rel::Target {
                            sha256: String::new(),
                            size: 0,
                        },
                    )]),
                },
                &key,
            )
            .unwrap(),
        };
        let now = time::OffsetDateTime::now_utc();
        let r = root.verifying_key();
        let mut trust = Trust::default();
        let j = |o: &Offer, trust: &mut Trust, running: &str| {
            judge(o, &r, trust, running, "t", &layout, now)
        };
        assert!(matches!(
            j(&offer(2, "0.2.0", false), &mut trust, "0.1.0"),
            Ok(Verdict::Install(..))
        ));
        assert_eq!(trust.manifest_sequence, 2);
        // a replay of sequence 1 is refused outright
        assert!(matches!(
            j(&offer(1, "0.2.0", false), &mut trust, "0.1.0"),
            Err(ReleaseError::Replay { .. })
        ));
        // older without the rollback flag: refused; with it: installed
        assert!(matches!(
            j(&offer(3, "0.1.0", false), &mut trust, "0.2.0"),
            Ok(Verdict::Skip(_))
        ));
        assert!(matches!(
            j(&offer(4, "0.1.0", true), &mut trust, "0.2.0"),
            Ok(Verdict::Install(..))
        ));
        // below min_from; marked bad
        assert!(matches!(
            j(&offer(5, "0.3.0", false), &mut trust, "0.0.5"),
            Ok(Verdict::Skip(_))
        ));
        swap::mark_bad(&layout, "0.3.0", "x").unwrap();
        assert!(matches!(
            j(&offer(6, "0.3.0", false), &mut trust, "0.2.0"),
            Ok(Verdict::Skip(_))
        ));
    }
}
