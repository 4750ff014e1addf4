//! The piece that swaps versions: small, synchronous, and meant to change
//! rarely, because a bad release must not break the way back. `lojad
//! launch` (what the service manager starts) runs only this before it
//! hands the process over to a version; the rollback lives here, so a
//! release that cannot even start is still rolled back by the launcher.
//!
//! The install dir:
//!
//! ```text
//! versions/<version>/lojad   one dir per installed or staged version
//! current                    the version to start (a one-line file; absent:
//!                            the launcher's own binary, as installed)
//! trial.json                 a switch in progress (Switching → Trying → gone,
//!                            or → Failed → rolled back)
//! backup/<from>/             the databases as they were before the switch
//! bad/<version>              versions that failed here: never retried
//! reports/<to>.json          outcomes waiting to go to the central
//! ```
//!
//! Every file is written beside its place, fsync'd and renamed over it, so
//! a kill -9 at any step leaves either the old or the new content; every
//! step of [`prepare`] can be repeated, so the next start finishes (or
//! undoes) what the killed one began. No step overwrites a running binary.

use std::path::{Path, PathBuf};

use loja_protocol::release::Report;
use serde::{Deserialize, Serialize};

/// The exit code with which lojad asks its service manager to start it
/// again (an update switched versions, or a new version failed its health
/// check and the launcher must roll it back). `EX_TEMPFAIL`; the systemd
/// unit lists it in `RestartForceExitStatus=`.
pub const RESTART_EXIT: u8 = 75;

/// Starts of a new version that may end without a verdict (a crash at
/// start, a kill) before the launcher rolls it back.
pub const MAX_ATTEMPTS: u32 = 3;

/// The databases backed up before a switch (the data dir's files).
pub const DATABASES: [&str; 3] = ["replica.db", "outbox.db", "journal.db"];

/// The binary's name inside `versions/<version>/`.
pub const BINARY: &str = if cfg!(windows) { "lojad.exe" } else { "lojad" };

#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Sql {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SwapError + '_ {
    move |source| SwapError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Where a switch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrialState {
    /// Decided by the old version; the launcher backs up and switches.
    Switching,
    /// The new version was started (`attempts` times) and has not
    /// proven itself yet.
    Trying,
    /// The new version failed its health check: roll back.
    Failed,
    /// A rollback began (a kill here: the launcher finishes it).
    RollingBack,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trial {
    /// The version dir to return to (`None`: the installed binary).
    pub from: Option<String>,
    /// The version running before the switch.
    pub from_version: String,
    pub to: String,
    pub state: TrialState,
    pub attempts: u32,
    /// A product code the old version could answer: the new one must too.
    pub probe: Option<String>,
    pub started_at: String,
    #[serde(default)]
    pub error: Option<String>,
}

/// The install dir's paths.
#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Layout {
        Layout { root: root.into() }
    }
    pub fn versions(&self) -> PathBuf {
        self.root.join("versions")
    }
    pub fn binary(&self, version: &str) -> PathBuf {
        self.versions().join(version).join(BINARY)
    }
    pub fn current_file(&self) -> PathBuf {
        self.root.join("current")
    }
    pub fn trial_file(&self) -> PathBuf {
        self.root.join("trial.json")
    }
    pub fn backup_dir(&self, from_version: &str) -> PathBuf {
        self.root.join("backup").join(from_version)
    }
    pub fn bad_dir(&self) -> PathBuf {
        self.root.join("bad")
    }
    pub fn reports_dir(&self) -> PathBuf {
        self.root.join("reports")
    }
}

/// Writes `bytes` to `path` through a fsync'd temporary file renamed over
/// it (and syncs the directory on unix).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SwapError> {
    use std::io::Write as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io(path))?;
    sync_dir(dir);
    Ok(())
}

fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), SwapError> {
    let text = serde_json::to_vec_pretty(value).map_err(|e| SwapError::Corrupt {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    write_atomic(path, &text)
}

pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, SwapError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| SwapError::Corrupt {
                path: path.to_owned(),
                message: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SwapError::Io {
            path: path.to_owned(),
            source: e,
        }),
    }
}

/// A version name is dotted numbers: never a path.
pub fn valid_version(v: &str) -> bool {
    !v.is_empty()
        && v.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The version `current` names, when its binary is there.
pub fn current(layout: &Layout) -> Option<String> {
    let text = std::fs::read_to_string(layout.current_file()).ok()?;
    let v = text.trim();
    (valid_version(v) && layout.binary(v).is_file()).then(|| v.to_owned())
}

/// Points `current` at `version` (`None`: back to the installed binary).
pub fn point_current(layout: &Layout, version: Option<&str>) -> Result<(), SwapError> {
    let path = layout.current_file();
    match version {
        Some(v) => write_atomic(&path, v.as_bytes()),
        None => match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(SwapError::Io { path, source: e }),
        },
    }
}

pub fn is_bad(layout: &Layout, version: &str) -> bool {
    layout.bad_dir().join(version).exists()
}

pub fn mark_bad(layout: &Layout, version: &str, why: &str) -> Result<(), SwapError> {
    write_atomic(&layout.bad_dir().join(version), why.as_bytes())
}

/// Queues an outcome for the central (the update job sends it).
pub fn queue_report(layout: &Layout, report: &Report) -> Result<(), SwapError> {
    write_json(
        &layout.reports_dir().join(format!("{}.json", report.to)),
        report,
    )
}

/// What the launcher starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// `versions/<version>/lojad`, told its version.
    Exec { binary: PathBuf, version: String },
    /// The launcher's own binary (nothing installed by an update yet).
    Base,
}

fn plan_of_current(layout: &Layout) -> Plan {
    match current(layout) {
        Some(version) => Plan::Exec {
            binary: layout.binary(&version),
            version,
        },
        None => Plan::Base,
    }
}

/// The launcher's one decision at every start: finishes a switch the old
/// version decided (backs the databases up, points `current` at the new
/// version), counts the new version's starts, and rolls back a version
/// that failed or kept dying. Then says what to start.
pub fn prepare(layout: &Layout, data_dir: &Path) -> Result<Plan, SwapError> {
    let Some(mut trial) = read_json::<Trial>(&layout.trial_file())? else {
        return Ok(plan_of_current(layout));
    };
    if !valid_version(&trial.to) || !layout.binary(&trial.to).is_file() {
        let why = format!("version {} is not installed", trial.to);
        return rollback(layout, data_dir, trial, why);
    }
    match trial.state {
        TrialState::Switching => {
            backup(data_dir, &layout.backup_dir(&trial.from_version))?;
            point_current(layout, Some(&trial.to))?;
            trial.state = TrialState::Trying;
            trial.attempts = 1;
            write_json(&layout.trial_file(), &trial)?;
        }
        TrialState::Trying if trial.attempts < MAX_ATTEMPTS => {
            trial.attempts += 1;
            write_json(&layout.trial_file(), &trial)?;
        }
        TrialState::Trying => {
            let why = format!(
                "started {} times without passing its health check",
                trial.attempts
            );
            return rollback(layout, data_dir, trial, why);
        }
        TrialState::Failed | TrialState::RollingBack => {
            let why = trial
                .error
                .clone()
                .unwrap_or_else(|| "failed its health check".into());
            return rollback(layout, data_dir, trial, why);
        }
    }
    Ok(Plan::Exec {
        binary: layout.binary(&trial.to),
        version: trial.to,
    })
}

/// Puts the previous version back: its databases (where the new version
/// changed their schema), `current`, the new version marked bad, the
/// outcome queued for the central. Each step can be repeated.
fn rollback(
    layout: &Layout,
    data_dir: &Path,
    mut trial: Trial,
    why: String,
) -> Result<Plan, SwapError> {
    if trial.state != TrialState::RollingBack {
        trial.state = TrialState::RollingBack;
        trial.error = Some(why);
        write_json(&layout.trial_file(), &trial)?;
    }
    let error = trial.error.clone().unwrap_or_default();
    restore(data_dir, &layout.backup_dir(&trial.from_version))?;
    point_current(layout, trial.from.as_deref())?;
    if valid_version(&trial.to) {
        mark_bad(layout, &trial.to, &error)?;
        queue_report(
            layout,
            &Report {
                from: trial.from_version.clone(),
                to: trial.to.clone(),
                result: Report::ROLLED_BACK.into(),
                error: Some(error.clone()),
            },
        )?;
    }
    remove(&layout.trial_file())?;
    tracing::warn!(from = %trial.from_version, to = %trial.to, error = %error, "update rolled back");
    Ok(plan_of_current(layout))
}

/// The new version proved itself: the switch is over. Queues the report
/// and keeps only the new and the previous version.
pub fn commit(layout: &Layout, trial: &Trial) -> Result<(), SwapError> {
    queue_report(
        layout,
        &Report {
            from: trial.from_version.clone(),
            to: trial.to.clone(),
            result: Report::OK.into(),
            error: None,
        },
    )?;
    remove(&layout.trial_file())?;
    prune(layout, &[Some(trial.to.as_str()), trial.from.as_deref()]);
    Ok(())
}

/// Removes every version dir but `keep` (and backups but the newest).
fn prune(layout: &Layout, keep: &[Option<&str>]) {
    let Ok(entries) = std::fs::read_dir(layout.versions()) else {
        return;
    };
    let staged: Option<String> = read_json::<serde_json::Value>(&layout.root.join("staged.json"))
        .ok()
        .flatten()
        .and_then(|v| v.get("version")?.as_str().map(str::to_owned));
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if keep.iter().flatten().any(|k| *k == name) || staged.as_deref() == Some(name.as_str()) {
            continue;
        }
        let _ = std::fs::remove_dir_all(e.path());
    }
}

fn remove(path: &Path) -> Result<(), SwapError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SwapError::Io {
            path: path.to_owned(),
            source: e,
        }),
    }
}

/// Copies the closed databases (with their WAL, if one is left) into
/// `dir`, once: a `done` marker says the copy is whole. Older backups go.
pub fn backup(data_dir: &Path, dir: &Path) -> Result<(), SwapError> {
    if dir.join("done").is_file() {
        return Ok(());
    }
    let tmp = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    for db in DATABASES {
        for suffix in ["", "-wal"] {
            let name = format!("{db}{suffix}");
            let src = data_dir.join(&name);
            if src.is_file() {
                copy_synced(&src, &tmp.join(&name))?;
            }
        }
    }
    write_atomic(&tmp.join("done"), b"")?;
    if let Some(parent) = dir.parent()
        && let Ok(entries) = std::fs::read_dir(parent)
    {
        for e in entries.flatten() {
            if e.path() != tmp {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    std::fs::rename(&tmp, dir).map_err(io(dir))?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent);
    }
    Ok(())
}

fn copy_synced(src: &Path, dst: &Path) -> Result<(), SwapError> {
    std::fs::copy(src, dst).map_err(io(src))?;
    std::fs::File::open(dst)
        .and_then(|f| f.sync_all())
        .map_err(io(dst))
}

/// The schema version of a database file (`PRAGMA user_version`).
fn user_version(path: &Path) -> Result<i64, SwapError> {
    let sql = |source| SwapError::Sql {
        path: path.to_owned(),
        source,
    };
    let conn = rusqlite::Connection::open(path).map_err(sql)?;
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sql)
}

/// Puts back each backed-up database whose schema the new version changed
/// (the old version cannot read it); a database with the same schema is
/// kept as it is, so documents taken during the trial stay.
fn restore(data_dir: &Path, dir: &Path) -> Result<(), SwapError> {
    if !dir.join("done").is_file() {
        // the switch never got past its backup: nothing was migrated
        return Ok(());
    }
    for db in DATABASES {
        let saved = dir.join(db);
        let live = data_dir.join(db);
        if !saved.is_file() {
            continue;
        }
        if live.is_file() && user_version(&live)? == user_version(&saved)? {
            continue;
        }
        let staging = data_dir.join(format!("{db}.restore"));
        copy_synced(&saved, &staging)?;
        for suffix in ["-wal", "-shm"] {
            remove(&data_dir.join(format!("{db}{suffix}")))?;
        }
        let saved_wal = dir.join(format!("{db}-wal"));
        if saved_wal.is_file() {
            copy_synced(&saved_wal, &data_dir.join(format!("{db}-wal")))?;
        }
        std::fs::rename(&staging, &live).map_err(io(&live))?;
        sync_dir(data_dir);
        tracing::warn!(
            database = db,
            "database restored from the pre-update backup"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Layout, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().join("install"));
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        for (db, v) in [("replica.db", 3), ("outbox.db", 2), ("journal.db", 1)] {
            let c = rusqlite::Connection::open(data.join(db)).unwrap();
            c.execute_batch(&format!(
                "CREATE TABLE t (x); INSERT INTO t VALUES ('{db} before'); PRAGMA user_version = {v};"
            ))
            .unwrap();
        }
        for v in ["0.1.0", "0.2.0"] {
            std::fs::create_dir_all(layout.versions().join(v)).unwrap();
            std::fs::write(layout.binary(v), v).unwrap();
        }
        point_current(&layout, Some("0.1.0")).unwrap();
        (dir, layout, data)
    }

    fn trial(state: TrialState) -> Trial {
        Trial {
            from: Some("0.1.0".into()),
            from_version: "0.1.0".into(),
            to: "0.2.0".into(),
            state,
            attempts: 0,
            probe: None,
            started_at: String::new(),
            error: None,
        }
    }

    fn rows(data: &Path, db: &str) -> Vec<String> {
        let c = rusqlite::Connection::open(data.join(db)).unwrap();
        let mut s = c.prepare("SELECT x FROM t").unwrap();
        s.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn exec(v: &str, layout: &Layout) -> Plan {
        Plan::Exec {
            binary: layout.binary(v),
            version: v.into(),
        }
    }

    #[test]
    fn a_switch_then_a_commit() {
        let (_d, layout, data) = setup();
        assert_eq!(prepare(&layout, &data).unwrap(), exec("0.1.0", &layout));
        write_json(&layout.trial_file(), &trial(TrialState::Switching)).unwrap();
        assert_eq!(prepare(&layout, &data).unwrap(), exec("0.2.0", &layout));
        assert!(layout.backup_dir("0.1.0").join("replica.db").is_file());
        let t: Trial = read_json(&layout.trial_file()).unwrap().unwrap();
        assert_eq!((t.state, t.attempts), (TrialState::Trying, 1));
        std::fs::create_dir_all(layout.versions().join("0.0.9")).unwrap();
        commit(&layout, &t).unwrap();
        assert!(!layout.trial_file().exists());
        assert!(!layout.versions().join("0.0.9").exists());
        assert!(layout.binary("0.1.0").is_file());
        assert_eq!(prepare(&layout, &data).unwrap(), exec("0.2.0", &layout));
        let r: Report = read_json(&layout.reports_dir().join("0.2.0.json"))
            .unwrap()
            .unwrap();
        assert_eq!(r.result, "ok");
    }

    #[test]
    fn a_version_that_keeps_dying_or_fails_is_rolled_back_with_its_migrations() {
        let (_d, layout, data) = setup();
        write_json(&layout.trial_file(), &trial(TrialState::Switching)).unwrap();
        for _ in 0..MAX_ATTEMPTS {
            assert_eq!(prepare(&layout, &data).unwrap(), exec("0.2.0", &layout));
        }
        // the new version migrated the replica and took a document
        let c = rusqlite::Connection::open(data.join("replica.db")).unwrap();
        c.execute_batch("INSERT INTO t VALUES ('migrated'); PRAGMA user_version = 4;")
            .unwrap();
        drop(c);
        let c = rusqlite::Connection::open(data.join("outbox.db")).unwrap();
        c.execute_batch("INSERT INTO t VALUES ('sale during the trial')")
            .unwrap();
        drop(c);
        assert_eq!(prepare(&layout, &data).unwrap(), exec("0.1.0", &layout));
        assert_eq!(rows(&data, "replica.db"), vec!["replica.db before"]);
        assert_eq!(
            rows(&data, "outbox.db"),
            vec!["outbox.db before", "sale during the trial"]
        );
        assert!(is_bad(&layout, "0.2.0"));
        assert!(!layout.trial_file().exists());
        let r: Report = read_json(&layout.reports_dir().join("0.2.0.json"))
            .unwrap()
            .unwrap();
        assert_eq!(r.result, "rolled_back");
        assert!(r.error.unwrap().contains("without passing"));

        // a health check's verdict rolls back at once
        let _ = std::fs::remove_file(layout.bad_dir().join("0.2.0"));
        write_json(&layout.trial_file(), &trial(TrialState::Switching)).unwrap();
        prepare(&layout, &data).unwrap();
        let mut t: Trial = read_json(&layout.trial_file()).unwrap().unwrap();
        t.state = TrialState::Failed;
        t.error = Some("lookup of 123 answered 404".into());
        write_json(&layout.trial_file(), &t).unwrap();
        assert_eq!(prepare(&layout, &data).unwrap(), exec("0.1.0", &layout));
        assert!(is_bad(&layout, "0.2.0"));
    }

    /// A kill -9 after each step of a switch and of a rollback: the next
    /// start runs the old or the new version, never nothing, and the
    /// databases are whole. Each step's files are written by rename, so
    /// "killed after step k" is "the steps up to k happened".
    #[test]
    fn a_kill_after_any_step_starts_old_or_new() {
        for step in 0..6 {
            let (_d, layout, data) = setup();
            // the steps of a switch, as prepare() runs them, cut after `step`
            if step >= 1 {
                write_json(&layout.trial_file(), &trial(TrialState::Switching)).unwrap();
            }
            if step >= 2 {
                backup(&data, &layout.backup_dir("0.1.0")).unwrap();
            }
            if step >= 3 {
                point_current(&layout, Some("0.2.0")).unwrap();
            }
            if step >= 4 {
                let mut t = trial(TrialState::Trying);
                t.attempts = 1;
                write_json(&layout.trial_file(), &t).unwrap();
            }
            if step >= 5 {
                // a rollback cut after its first step
                let mut t = trial(TrialState::RollingBack);
                t.error = Some("x".into());
                write_json(&layout.trial_file(), &t).unwrap();
            }
            let plan = prepare(&layout, &data).unwrap();
            match &plan {
                Plan::Exec { binary, version } => {
                    assert!(binary.is_file(), "step {step}: {plan:?}");
                    assert!(version == "0.1.0" || version == "0.2.0");
                }
                Plan::Base => panic!("step {step}: nothing to start"),
            }
            for db in DATABASES {
                assert_eq!(rows(&data, db), vec![format!("{db} before")], "step {step}");
            }
            // and the start after that agrees with itself
            let again = prepare(&layout, &data).unwrap();
            assert!(matches!(again, Plan::Exec { .. }), "step {step}");
        }
    }

    #[test]
    fn a_partial_backup_is_redone_and_a_missing_version_rolls_back() {
        let (_d, layout, data) = setup();
        let dir = layout.backup_dir("0.1.0");
        std::fs::create_dir_all(dir.with_extension("partial")).unwrap();
        std::fs::write(dir.with_extension("partial").join("replica.db"), b"half").unwrap();
        backup(&data, &dir).unwrap();
        assert_eq!(
            user_version(&dir.join("replica.db")).unwrap(),
            3,
            "a whole copy"
        );
        let mut t = trial(TrialState::Switching);
        t.to = "0.9.0".into();
        write_json(&layout.trial_file(), &t).unwrap();
        assert_eq!(prepare(&layout, &data).unwrap(), exec("0.1.0", &layout));
        assert!(!valid_version("../x") && valid_version("0.10.2"));
    }
}
