//! Task files: one TOML file per scheduled job (the old TaskManager's task
//! list). The shipped defaults (`tasks/*.toml` in the source tree) are
//! embedded in the binary; a store overrides them with files of the same
//! `code` in `[sync] tasks_dir`.
//!
//! ```toml
//! code = "PRC"            # module code: the integration log and switches use it
//! subject = "prices"      # a registry entity, "documents" or "maintenance"
//! direction = "download"  # download | upload | maintenance
//! every = "10m"           # or: cron = "17 3 * * *" (local time)
//! active = true
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use loja_protocol::{ENTITIES, entity_named};
use serde::Serialize;

use crate::config::Config;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_tasks.rs"));
}

/// What a job moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Central → store: one registry entity's feed.
    Download,
    /// Store → central: the outbox's documents.
    Upload,
    /// Local housekeeping: retention purges.
    Maintenance,
    /// Compares the replica with the central's view and repairs what
    /// drifted (`jobs::verify`): subject `all` or one entity.
    Verify,
    /// Checks for a new lojad release, stages it, applies it in the
    /// maintenance window (`jobs::update`): subject `lojad`.
    Update,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Download => "download",
            Direction::Upload => "upload",
            Direction::Maintenance => "maintenance",
            Direction::Verify => "verify",
            Direction::Update => "update",
        }
    }
}

/// When a job runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// Every so long, counted from the end of the previous run.
    Every(#[serde(with = "duration_text")] Duration),
    /// A cron pattern (5 or 6 fields, croner syntax), local time.
    Cron(String),
}

impl Schedule {
    /// The first run time after `now` (UTC) for a cron schedule; `None` for
    /// an interval or a pattern with no future match.
    pub fn next_cron_after(
        &self,
        now: chrono::DateTime<chrono::Local>,
    ) -> Option<chrono::DateTime<chrono::Local>> {
        match self {
            Schedule::Every(_) => None,
            Schedule::Cron(pattern) => croner::Cron::from_str(pattern)
                .ok()?
                .find_next_occurrence(&now, false)
                .ok(),
        }
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Schedule::Every(d) => write!(f, "every {}", duration_text::format(*d)),
            Schedule::Cron(p) => write!(f, "cron {p}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Task {
    /// Module code (`PRC`, `UPL`, `MNT`…): the integration log and switch key.
    pub code: String,
    /// Entity name, `documents` or `maintenance`.
    pub subject: String,
    pub direction: Direction,
    pub schedule: Schedule,
    /// An inactive task is not scheduled at all (unlike a disabled switch,
    /// which keeps the job running and logging that it did nothing).
    pub active: bool,
    /// Where the task came from: `embedded:prices.toml` or the override's path.
    pub source: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("task file {file}: {message}")]
    Syntax { file: String, message: String },
    #[error("task file {file}: key `{key}`: {message}")]
    Key {
        file: String,
        key: String,
        message: String,
    },
    #[error("tasks dir {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("task code {code} is defined twice: {first} and {second}")]
    Duplicate {
        code: String,
        first: String,
        second: String,
    },
}

/// The shipped defaults, overridden (by `code`) and extended by the files
/// in `config.sync.tasks_dir`; sorted by code.
pub fn load(config: &Config) -> Result<Vec<Task>, TaskError> {
    let mut tasks = defaults()?;
    if let Some(dir) = &config.sync.tasks_dir {
        for task in load_dir(dir)? {
            tasks.insert(task.code.clone(), task);
        }
    }
    Ok(tasks.into_values().collect())
}

/// The embedded task files, by code.
pub fn defaults() -> Result<BTreeMap<String, Task>, TaskError> {
    let mut tasks: BTreeMap<String, Task> = BTreeMap::new();
    for (name, text) in embedded::EMBEDDED {
        let task = parse(&format!("embedded:{name}"), text)?;
        insert_unique(&mut tasks, task)?;
    }
    Ok(tasks)
}

fn load_dir(dir: &Path) -> Result<Vec<Task>, TaskError> {
    let io = |source| TaskError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let mut by_code = BTreeMap::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|source| TaskError::Io {
            path: f.clone(),
            source,
        })?;
        insert_unique(&mut by_code, parse(&f.display().to_string(), &text)?)?;
    }
    Ok(by_code.into_values().collect())
}

fn insert_unique(tasks: &mut BTreeMap<String, Task>, task: Task) -> Result<(), TaskError> {
    if let Some(first) = tasks.get(&task.code) {
        return Err(TaskError::Duplicate {
            code: task.code.clone(),
            first: first.source.clone(),
            second: task.source,
        });
    }
    tasks.insert(task.code.clone(), task);
    Ok(())
}

/// Parses one task file; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Task, TaskError> {
    let table: toml::Table = toml::from_str(text).map_err(|e| TaskError::Syntax {
        file: file.into(),
        message: e.to_string(),
    })?;
    let key_err = |key: &str, message: String| TaskError::Key {
        file: file.into(),
        key: key.into(),
        message,
    };
    let text_of = |key: &str| -> Result<Option<String>, TaskError> {
        match table.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(key_err(
                key,
                format!("must be a string, found {}", other.type_str()),
            )),
        }
    };
    for key in table.keys() {
        if ![
            "code",
            "subject",
            "direction",
            "every",
            "cron",
            "active",
            "description",
        ]
        .contains(&key.as_str())
        {
            return Err(key_err(
                key,
                "unknown key (expected code, subject, direction, every or cron, active, description)".into(),
            ));
        }
    }
    let code = text_of("code")?.ok_or_else(|| key_err("code", "is required".into()))?;
    if code.is_empty()
        || code.len() > 16
        || !code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(key_err(
            "code",
            format!("{code:?} is not a valid code (1-16 letters, digits, _ or -)"),
        ));
    }
    let direction = match text_of("direction")?.as_deref() {
        Some("download") => Direction::Download,
        Some("upload") => Direction::Upload,
        Some("maintenance") => Direction::Maintenance,
        Some("verify") => Direction::Verify,
        Some("update") => Direction::Update,
        Some(other) => {
            return Err(key_err(
                "direction",
                format!("{other:?}: expected download, upload, maintenance, verify or update"),
            ));
        }
        None => return Err(key_err("direction", "is required".into())),
    };
    let subject = text_of("subject")?.ok_or_else(|| key_err("subject", "is required".into()))?;
    match direction {
        Direction::Download if entity_named(&subject).is_none() => {
            return Err(key_err(
                "subject",
                format!("{subject:?} is not an entity of the registry"),
            ));
        }
        Direction::Upload if subject != "documents" => {
            return Err(key_err(
                "subject",
                format!("{subject:?}: an upload task's subject is \"documents\""),
            ));
        }
        Direction::Maintenance if subject != "maintenance" => {
            return Err(key_err(
                "subject",
                format!("{subject:?}: a maintenance task's subject is \"maintenance\""),
            ));
        }
        Direction::Update if subject != "lojad" => {
            return Err(key_err(
                "subject",
                format!("{subject:?}: an update task's subject is \"lojad\""),
            ));
        }
        Direction::Verify
            if subject != "all" && entity_named(&subject).is_none_or(|e| e.secret) =>
        {
            return Err(key_err(
                "subject",
                format!(
                    "{subject:?}: a verify task's subject is \"all\" or a (not secret) registry entity"
                ),
            ));
        }
        _ => {}
    }
    let schedule = match (text_of("every")?, text_of("cron")?) {
        (Some(_), Some(_)) => {
            return Err(key_err(
                "cron",
                "give either `every` or `cron`, not both".into(),
            ));
        }
        (None, None) => return Err(key_err("every", "is required (or `cron`)".into())),
        (Some(every), None) => {
            let d = duration_text::parse(&every).map_err(|m| key_err("every", m))?;
            if d < Duration::from_secs(1) {
                return Err(key_err("every", "must be at least 1s".into()));
            }
            Schedule::Every(d)
        }
        (None, Some(cron)) => {
            croner::Cron::from_str(&cron).map_err(|e| key_err("cron", format!("{cron:?}: {e}")))?;
            Schedule::Cron(cron)
        }
    };
    let active = match table.get("active") {
        None => true,
        Some(toml::Value::Boolean(b)) => *b,
        Some(other) => {
            return Err(key_err(
                "active",
                format!("must be true or false, found {}", other.type_str()),
            ));
        }
    };
    text_of("description")?;
    Ok(Task {
        code,
        subject,
        direction,
        schedule,
        active,
        source: file.into(),
    })
}

/// The download task of every registry entity must exist: used by the
/// scheduler to map push hints (entity names) to jobs.
pub fn download_codes(tasks: &[Task]) -> BTreeMap<String, String> {
    tasks
        .iter()
        .filter(|t| t.direction == Direction::Download)
        .map(|t| (t.subject.clone(), t.code.clone()))
        .collect()
}

/// Registry entities with no download task (a store override may drop one
/// by making it inactive, never by omission; this lists omissions).
pub fn missing_downloads(tasks: &[Task]) -> Vec<&'static str> {
    ENTITIES
        .iter()
        .filter(|e| {
            !tasks
                .iter()
                .any(|t| t.direction == Direction::Download && t.subject == e.name)
        })
        .map(|e| e.name)
        .collect()
}

/// `90s`, `10m`, `1h30m`, `1d`; a bare number is seconds.
pub mod duration_text {
    use std::time::Duration;

    pub fn parse(s: &str) -> Result<Duration, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty duration".into());
        }
        if let Ok(secs) = s.parse::<u64>() {
            return Ok(Duration::from_secs(secs));
        }
        let mut total = 0u64;
        let mut num = String::new();
        for ch in s.chars() {
            if ch.is_ascii_digit() {
                num.push(ch);
                continue;
            }
            let unit = match ch {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                _ => {
                    return Err(format!(
                        "{s:?}: unknown unit {ch:?} (use s, m, h or d, e.g. \"10m\")"
                    ));
                }
            };
            let n: u64 = num
                .parse()
                .map_err(|_| format!("{s:?}: a number must come before {ch:?}"))?;
            total = total.saturating_add(n.saturating_mul(unit));
            num.clear();
        }
        if !num.is_empty() {
            return Err(format!("{s:?}: the last number has no unit"));
        }
        Ok(Duration::from_secs(total))
    }

    pub fn format(d: Duration) -> String {
        let mut secs = d.as_secs();
        if secs == 0 {
            return "0s".into();
        }
        let mut out = String::new();
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
            if secs >= size {
                out.push_str(&format!("{}{unit}", secs / size));
                secs %= size;
            }
        }
        out
    }

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(tasks_dir: Option<PathBuf>) -> Config {
        let text = format!(
            "[store]\nid = \"s1\"\ndata_dir = \"/tmp/x\"\n[central]\nurl = \"http://127.0.0.1:1\"\ntoken = \"t\"\n[pos]\n{}",
            match &tasks_dir {
                Some(d) => format!("[sync]\ntasks_dir = {:?}\n", d.display().to_string()),
                None => String::new(),
            }
        );
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn every_entity_has_exactly_one_download_task() {
        let tasks = load(&config(None)).unwrap();
        for e in ENTITIES {
            let n = tasks
                .iter()
                .filter(|t| t.direction == Direction::Download && t.subject == e.name)
                .count();
            assert_eq!(n, 1, "entity {} has {n} download tasks", e.name);
            let t = tasks.iter().find(|t| t.subject == e.name).unwrap();
            assert_eq!(t.code, e.code, "entity {}'s task code", e.name);
            assert_eq!(t.schedule, Schedule::Every(Duration::from_secs(600)));
            assert!(t.active);
        }
        assert!(missing_downloads(&tasks).is_empty());
        let upl = tasks.iter().find(|t| t.code == "UPL").unwrap();
        assert_eq!(
            (upl.direction, upl.subject.as_str()),
            (Direction::Upload, "documents")
        );
        assert_eq!(upl.schedule, Schedule::Every(Duration::from_secs(600)));
        let mnt = tasks.iter().find(|t| t.code == "MNT").unwrap();
        assert_eq!(mnt.direction, Direction::Maintenance);
        assert!(matches!(mnt.schedule, Schedule::Cron(_)));
        assert!(mnt.schedule.next_cron_after(chrono::Local::now()).is_some());
        let vrf = tasks.iter().find(|t| t.code == "VRF").unwrap();
        assert_eq!(
            (vrf.direction, vrf.subject.as_str()),
            (Direction::Verify, "all")
        );
        assert!(matches!(vrf.schedule, Schedule::Cron(_)));
        let upd = tasks.iter().find(|t| t.code == "UPD").unwrap();
        assert_eq!(
            (upd.direction, upd.subject.as_str()),
            (Direction::Update, "lojad")
        );
        // uploads, maintenance, verify, update
        assert_eq!(tasks.len(), ENTITIES.len() + 4);
    }

    #[test]
    fn a_bad_key_or_value_names_the_file_and_key() {
        let err = parse(
            "x.toml",
            "code = \"PRC\"\nsubject = \"prices\"\ndirection = \"download\"\nevery = \"10x\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("x.toml") && err.contains("`every`"), "{err}");
        let err = parse(
            "y.toml",
            "code = \"PRC\"\nsubject = \"pricez\"\ndirection = \"download\"\nevery = \"10m\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("y.toml") && err.contains("`subject`"), "{err}");
        let err = parse(
            "z.toml",
            "code = \"PRC\"\nsubject = \"prices\"\ndirection = \"download\"\nevry = \"10m\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("z.toml") && err.contains("`evry`"), "{err}");
        let err = parse("c.toml", "code = \"MNT\"\nsubject = \"maintenance\"\ndirection = \"maintenance\"\ncron = \"99 * * * *\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("c.toml") && err.contains("`cron`"), "{err}");
        let err = parse("a.toml", "code = \"PRC\"\nsubject = \"prices\"\ndirection = \"download\"\nevery = \"1m\"\nactive = \"yes\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("a.toml") && err.contains("`active`"), "{err}");
        assert!(
            parse("s.toml", "code = [")
                .unwrap_err()
                .to_string()
                .contains("s.toml")
        );
    }

    #[test]
    fn a_tasks_dir_overrides_by_code() {
        let dir = std::env::temp_dir().join(format!("lojad-tasks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("prices.toml"),
            "code = \"PRC\"\nsubject = \"prices\"\ndirection = \"download\"\nevery = \"1h30m\"\nactive = false\n",
        )
        .unwrap();
        let tasks = load(&config(Some(dir.clone()))).unwrap();
        let prc = tasks.iter().find(|t| t.code == "PRC").unwrap();
        assert_eq!(prc.schedule, Schedule::Every(Duration::from_secs(5400)));
        assert!(!prc.active);
        assert_eq!(tasks.len(), ENTITIES.len() + 4);
        std::fs::write(
            dir.join("bad.toml"),
            "code = \"UPL\"\nsubject = \"documents\"\ndirection = \"upload\"\nevery = \"-1\"\n",
        )
        .unwrap();
        let err = load(&config(Some(dir.clone()))).unwrap_err().to_string();
        assert!(err.contains("bad.toml") && err.contains("`every`"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn durations_round_trip() {
        for (text, secs) in [
            ("10m", 600),
            ("1h30m", 5400),
            ("45", 45),
            ("1d", 86_400),
            ("90s", 90),
        ] {
            assert_eq!(
                duration_text::parse(text).unwrap(),
                Duration::from_secs(secs)
            );
        }
        assert_eq!(duration_text::format(Duration::from_secs(5400)), "1h30m");
        assert!(duration_text::parse("m").is_err());
        assert!(duration_text::parse("10").is_ok());
        assert!(duration_text::parse("10q").is_err());
    }
}
