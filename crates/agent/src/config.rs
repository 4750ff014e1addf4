//! lojad's configuration: one TOML file in the OS-standard place, every key
//! overridable by environment (`LOJAD_<SECTION>_<KEY>`) and by flag.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub store: StoreSection,
    pub central: CentralSection,
    pub pos: PosSection,
    #[serde(default)]
    pub sync: SyncSection,
    #[serde(default)]
    pub retention: RetentionSection,
    #[serde(default)]
    pub log: LogSection,
    #[serde(default)]
    pub omni: OmniSection,
    #[serde(default)]
    pub update: UpdateSection,
}

/// Automatic updates (docs/update.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateSection {
    /// The root public key (64 hex digits) releases are checked against,
    /// when this build has none built in (`LOJAD_ROOT_PUBLIC_KEY` at build
    /// time); a built-in key wins. Without either, nothing is installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_key: Option<String>,
    /// Where versions are installed (`versions/<version>/`, `current`);
    /// default `<data_dir>/install`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_dir: Option<PathBuf>,
    /// The maintenance window, local time `HH:MM-HH:MM` (may cross
    /// midnight), unless the central's `update_window` parameter says
    /// otherwise.
    #[serde(default = "default_update_window")]
    pub window: String,
    /// How long a new version has to prove itself healthy.
    #[serde(default = "default_health_secs")]
    pub health_secs: u64,
    /// The channel shown by the status views.
    #[serde(default = "default_channel")]
    pub channel: String,
}

fn default_update_window() -> String {
    "22:00-06:00".into()
}
fn default_health_secs() -> u64 {
    120
}
fn default_channel() -> String {
    "stable".into()
}

impl Default for UpdateSection {
    fn default() -> Self {
        UpdateSection {
            root_key: None,
            install_dir: None,
            window: default_update_window(),
            health_secs: default_health_secs(),
            channel: default_channel(),
        }
    }
}

/// Omni-channel orders at the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OmniSection {
    /// Accepting an order's line holds its stock this long (the POS's
    /// sellable figure) unless it is delivered, rejected or cancelled first.
    #[serde(default = "default_reservation_hours")]
    pub reservation_hours: u32,
    /// A line waiting on the store (accepted and not picked, ready and not
    /// collected…) longer than this is shown as stuck (`lojad status`, the
    /// status page, `/metrics`).
    #[serde(default = "default_stuck_minutes")]
    pub stuck_minutes: u32,
}

fn default_reservation_hours() -> u32 {
    24
}
fn default_stuck_minutes() -> u32 {
    120
}

impl Default for OmniSection {
    fn default() -> Self {
        OmniSection {
            reservation_hours: default_reservation_hours(),
            stuck_minutes: default_stuck_minutes(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// The store's node id at the central.
    pub id: String,
    /// Where replica.db, outbox.db, journal.db, secrets/ and logs/ live.
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentralSection {
    /// e.g. `https://retaguarda.example.com.br` (plain http only for loopback).
    pub url: String,
    /// The store's bearer token at the central. Secret: masked in `config show`, never logged.
    pub token: String,
    /// Extra CA certificate (PEM) to trust for the central, besides the OS's.
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Allow plain `http://` to a non-loopback central (tests, labs). Off by
    /// default: a store token must not cross a network in clear.
    #[serde(default)]
    pub allow_insecure: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PosSection {
    /// 127.0.0.1 by default; the POS API is for this PC only.
    #[serde(default = "default_pos_listen")]
    pub listen: SocketAddr,
    /// One token per POS terminal.
    #[serde(default)]
    pub tokens: Vec<PosToken>,
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PosToken {
    pub terminal: String,
    /// Secret: masked in `config show`, never logged.
    pub token: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSection {
    /// Rows per feed page asked of the central.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Long-poll the central's events endpoint for push hints.
    #[serde(default = "default_true")]
    pub push: bool,
    /// Documents per upload batch.
    #[serde(default = "default_upload_batch")]
    pub upload_batch: u32,
    /// Directory of task files overriding the embedded defaults.
    #[serde(default)]
    pub tasks_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSection {
    /// Delivered documents are purged after this many days.
    #[serde(default = "default_delivered_days")]
    pub delivered_days: u32,
    /// Sale XML is kept at least this long (fiscal rule: 5 years by default).
    #[serde(default = "default_xml_days")]
    pub xml_days: u32,
    #[serde(default = "default_ticket_days")]
    pub ticket_days: u32,
    #[serde(default = "default_ticket_max_mb")]
    pub ticket_max_mb: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// tracing filter, e.g. `info` or `lojad=debug`.
    #[serde(default = "default_log_level")]
    pub level: String,
    /// Days of rolling log files kept in DATA_DIR/logs.
    #[serde(default = "default_log_days")]
    pub keep_days: u32,
}

fn default_timeout_secs() -> u64 {
    30
}
fn default_pos_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7878))
}
fn default_max_body_bytes() -> usize {
    2 * 1024 * 1024
}
fn default_page_size() -> u32 {
    10_000
}
fn default_true() -> bool {
    true
}
fn default_upload_batch() -> u32 {
    500
}
fn default_delivered_days() -> u32 {
    30
}
fn default_xml_days() -> u32 {
    5 * 366
}
fn default_ticket_days() -> u32 {
    30
}
fn default_ticket_max_mb() -> u64 {
    512
}
fn default_log_level() -> String {
    "info".into()
}
fn default_log_days() -> u32 {
    14
}

impl Default for SyncSection {
    fn default() -> Self {
        SyncSection {
            page_size: default_page_size(),
            push: true,
            upload_batch: default_upload_batch(),
            tasks_dir: None,
        }
    }
}

impl Default for RetentionSection {
    fn default() -> Self {
        RetentionSection {
            delivered_days: default_delivered_days(),
            xml_days: default_xml_days(),
            ticket_days: default_ticket_days(),
            ticket_max_mb: default_ticket_max_mb(),
        }
    }
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            level: default_log_level(),
            keep_days: default_log_days(),
        }
    }
}

// ---------------------------------------------------------------------------
// Loading, overrides, validation, masking, writing.
// ---------------------------------------------------------------------------

use std::path::Path;

/// Environment variable naming the config file (same as `--config`).
pub const CONFIG_ENV: &str = "LOJAD_CONFIG";

/// The sections of the file; `LOJAD_<SECTION>_<KEY>` overrides `[section] key`.
pub const SECTIONS: [&str; 8] = [
    "store",
    "central",
    "pos",
    "sync",
    "retention",
    "log",
    "omni",
    "update",
];

/// Keys whose value is a number (env values are parsed as such).
const NUMERIC_KEYS: [&str; 12] = [
    "update.health_secs",
    "central.timeout_secs",
    "pos.max_body_bytes",
    "sync.page_size",
    "sync.upload_batch",
    "retention.delivered_days",
    "retention.xml_days",
    "retention.ticket_days",
    "retention.ticket_max_mb",
    "log.keep_days",
    "omni.reservation_hours",
    "omni.stuck_minutes",
];
const BOOL_KEYS: [&str; 2] = ["sync.push", "central.allow_insecure"];

/// A config that cannot be used; the message names the key and where it came
/// from (file and line, or the environment variable).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config {path}, line {line}{}: {message}", key.as_ref().map(|k| format!(", key `{k}`")).unwrap_or_default())]
    Parse {
        path: PathBuf,
        line: usize,
        key: Option<String>,
        message: String,
    },
    #[error("environment variable {var} (key `{key}`): {message}")]
    Env {
        var: String,
        key: String,
        message: String,
    },
    #[error("config {path}: key `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("cannot write config {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One `LOJAD_<SECTION>_<KEY>` override (or a flag), already split.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// Where it came from, for errors: `LOJAD_POS_LISTEN` or `--pos-listen`.
    pub origin: String,
    pub section: String,
    pub key: String,
    pub value: String,
}

impl Override {
    /// A command-line flag `origin` that sets `section.key`.
    pub fn flag(origin: &str, section: &str, key: &str, value: impl Into<String>) -> Override {
        Override {
            origin: origin.into(),
            section: section.into(),
            key: key.into(),
            value: value.into(),
        }
    }
    fn dotted(&self) -> String {
        format!("{}.{}", self.section, self.key)
    }
}

/// The `LOJAD_<SECTION>_<KEY>` variables of `vars` (pass `std::env::vars()`).
/// `LOJAD_POS_TOKENS=terminal:token,terminal2:token2` sets the POS tokens.
pub fn env_overrides(vars: impl IntoIterator<Item = (String, String)>) -> Vec<Override> {
    let mut out: Vec<Override> = vars
        .into_iter()
        .filter_map(|(name, value)| {
            let rest = name.strip_prefix("LOJAD_")?;
            let (section, key) = rest.split_once('_')?;
            let section = section.to_ascii_lowercase();
            if !SECTIONS.contains(&section.as_str()) || key.is_empty() {
                return None;
            }
            Some(Override {
                origin: name.clone(),
                section,
                key: key.to_ascii_lowercase(),
                value,
            })
        })
        .collect();
    out.sort_by(|a, b| a.origin.cmp(&b.origin));
    out
}

fn override_value(o: &Override) -> Result<toml::Value, String> {
    let dotted = o.dotted();
    if NUMERIC_KEYS.contains(&dotted.as_str()) {
        return o
            .value
            .trim()
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| format!("`{}` is not a whole number", o.value));
    }
    if BOOL_KEYS.contains(&dotted.as_str()) {
        return match o.value.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(toml::Value::Boolean(true)),
            "0" | "false" | "no" | "off" => Ok(toml::Value::Boolean(false)),
            _ => Err(format!("`{}` is not true/false", o.value)),
        };
    }
    if dotted == "pos.tokens" {
        let mut list = Vec::new();
        for pair in o.value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (terminal, token) = pair
                .split_once(':')
                .ok_or_else(|| "expected `terminal:token[,terminal:token…]`".to_string())?;
            let mut t = toml::Table::new();
            t.insert(
                "terminal".into(),
                toml::Value::String(terminal.trim().into()),
            );
            t.insert("token".into(), toml::Value::String(token.trim().into()));
            list.push(toml::Value::Table(t));
        }
        return Ok(toml::Value::Array(list));
    }
    Ok(toml::Value::String(o.value.clone()))
}

fn apply_override(table: &mut toml::Table, o: &Override) -> Result<(), String> {
    let value = override_value(o)?;
    let section = table
        .entry(o.section.clone())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    match section {
        toml::Value::Table(t) => {
            t.insert(o.key.clone(), value);
            Ok(())
        }
        _ => Err(format!("`{}` in the file is not a section", o.section)),
    }
}

/// 1-based line of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

/// The `section.key` a byte offset of the file belongs to, read from the
/// text: the nearest `[section]` header above and the `key =` of its line.
fn key_at(text: &str, at: usize) -> Option<String> {
    let at = at.min(text.len());
    let line_start = text[..at].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line_end = text[at..].find('\n').map(|i| at + i).unwrap_or(text.len());
    let line = &text[line_start..line_end];
    let mut section = None;
    for l in text[..line_start].lines().rev() {
        let l = l.trim();
        if l.starts_with('[') {
            section = Some(l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
            break;
        }
    }
    let trimmed = line.trim();
    if trimmed.starts_with('[') {
        return Some(
            trimmed
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_string(),
        );
    }
    let key = trimmed
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_string());
    match (section, key) {
        (Some(s), Some(k)) => Some(format!("{s}.{k}")),
        (None, Some(k)) => Some(k),
        (Some(s), None) => Some(s),
        (None, None) => None,
    }
}

/// `unknown field `x`` and `missing field `x`` carry the field name: put
/// it in the key when the span does not point at it.
fn field_in_message(message: &str) -> Option<String> {
    for prefix in ["unknown field `", "missing field `", "duplicate key `"] {
        if let Some(rest) = message.split(prefix).nth(1) {
            return rest.split('`').next().map(str::to_owned);
        }
    }
    None
}

fn parse_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let message = e.message().trim().to_string();
    let (line, mut key) = match e.span() {
        Some(span) => (line_of(text, span.start), key_at(text, span.start)),
        None => (1, None),
    };
    if let Some(field) = field_in_message(&message) {
        // The span of "unknown field" points at the key itself; of "missing
        // field" at the section: name section.field.
        key = match key {
            Some(k) if k.ends_with(&format!(".{field}")) || k == field => Some(k),
            Some(k) if message.starts_with("missing") => Some(format!("{k}.{field}")),
            Some(k) => Some(match k.split_once('.') {
                Some((s, _)) => format!("{s}.{field}"),
                None => format!("{k}.{field}"),
            }),
            None => Some(field),
        };
    }
    ConfigError::Parse {
        path: path.to_path_buf(),
        line,
        key,
        message,
    }
}

impl Config {
    /// Reads `path`, applies `overrides` (env first, then flags: later wins),
    /// and validates. Warnings (e.g. a POS API on a non-loopback address) are
    /// returned beside the config for the caller to log or print.
    pub fn load_with(
        path: &Path,
        overrides: &[Override],
    ) -> Result<(Config, Vec<String>), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let config = Config::parse_with(path, &text, overrides)?;
        let warnings = config
            .validate()
            .map_err(|(key, message)| ConfigError::Invalid {
                path: path.into(),
                key: key.into(),
                message,
            })?;
        Ok((config, warnings))
    }

    /// `load_with` with the process environment's overrides.
    pub fn load(path: &Path) -> Result<(Config, Vec<String>), ConfigError> {
        Config::load_with(path, &env_overrides(std::env::vars()))
    }

    /// Parses TOML text (no validation): errors name the key and line.
    pub fn parse_with(
        path: &Path,
        text: &str,
        overrides: &[Override],
    ) -> Result<Config, ConfigError> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| parse_error(path, text, &e))?;
        // The file alone, for errors with a line: only "missing field" may
        // still be filled by an override.
        match toml::from_str::<Config>(text) {
            Ok(config) if overrides.is_empty() => return Ok(config),
            Err(e) if overrides.is_empty() || !e.message().starts_with("missing field") => {
                return Err(parse_error(path, text, &e));
            }
            _ => {}
        }
        for o in overrides {
            apply_override(&mut table, o).map_err(|message| ConfigError::Env {
                var: o.origin.clone(),
                key: o.dotted(),
                message,
            })?;
        }
        match toml::Value::Table(table.clone()).try_into::<Config>() {
            Ok(c) => Ok(c),
            Err(e) => {
                // Blame the override whose key the message names, or the
                // first one whose value alone breaks the file.
                let message = e.message().trim().to_string();
                let named = field_in_message(&message);
                let culprit = overrides
                    .iter()
                    .find(|o| Some(&o.key) == named.as_ref())
                    .or_else(|| {
                        overrides.iter().find(|o| {
                            let mut t: toml::Table = toml::from_str(text).unwrap_or_default();
                            apply_override(&mut t, o).is_ok()
                                && toml::Value::Table(t)
                                    .try_into::<Config>()
                                    .is_err_and(|e| !e.message().starts_with("missing field"))
                        })
                    });
                match culprit {
                    Some(o) if !message.starts_with("missing field") => Err(ConfigError::Env {
                        var: o.origin.clone(),
                        key: o.dotted(),
                        message,
                    }),
                    _ => Err(ConfigError::Parse {
                        path: path.into(),
                        line: 1,
                        key: named.map(|f| {
                            section_of_field(&f)
                                .map(|s| format!("{s}.{f}"))
                                .unwrap_or(f)
                        }),
                        message,
                    }),
                }
            }
        }
    }

    /// Checks values serde cannot: returns warnings, or the key at fault and why.
    pub fn validate(&self) -> Result<Vec<String>, (&'static str, String)> {
        let mut warnings = Vec::new();
        if self.store.id.trim().is_empty() {
            return Err(("store.id", "must not be empty".into()));
        }
        if self.store.data_dir.as_os_str().is_empty() {
            return Err(("store.data_dir", "must not be empty".into()));
        }
        let url = reqwest::Url::parse(&self.central.url).map_err(|e| {
            (
                "central.url",
                format!("`{}` is not a URL: {e}", self.central.url),
            )
        })?;
        match url.scheme() {
            "https" => {}
            "http" => {
                let host = url
                    .host_str()
                    .unwrap_or("")
                    .trim_start_matches('[')
                    .trim_end_matches(']');
                let loopback = host.eq_ignore_ascii_case("localhost")
                    || host
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback());
                if !loopback && !self.central.allow_insecure {
                    return Err((
                        "central.url",
                        format!(
                            "plain http to {} would send the store token in clear: use https, \
                             or set central.allow_insecure = true for a lab",
                            url.host_str().unwrap_or("?")
                        ),
                    ));
                }
                if !loopback {
                    warnings.push(format!(
                        "central.url {} is plain http (allow_insecure is on)",
                        self.central.url
                    ));
                }
            }
            other => {
                return Err((
                    "central.url",
                    format!("scheme `{other}` is not http or https"),
                ));
            }
        }
        if self.central.token.trim().is_empty() {
            return Err(("central.token", "must not be empty".into()));
        }
        if self.central.timeout_secs == 0 {
            return Err(("central.timeout_secs", "must be at least 1".into()));
        }
        if self.pos.tokens.is_empty() {
            return Err((
                "pos.tokens",
                "at least one POS token is needed ([[pos.tokens]] terminal/token)".into(),
            ));
        }
        for t in &self.pos.tokens {
            if t.token.len() < 8 {
                return Err((
                    "pos.tokens",
                    format!(
                        "the token of terminal `{}` is shorter than 8 characters",
                        t.terminal
                    ),
                ));
            }
        }
        if !self.pos.listen.ip().is_loopback() {
            warnings.push(format!(
                "WARNING: pos.listen {} is not a loopback address: the POS API is reachable from the network",
                self.pos.listen
            ));
        }
        if self.sync.page_size == 0 {
            return Err(("sync.page_size", "must be at least 1".into()));
        }
        if self.sync.upload_batch == 0 {
            return Err(("sync.upload_batch", "must be at least 1".into()));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err((
                "log.level",
                format!(
                    "`{}` is not a log filter (e.g. info, lojad=debug)",
                    self.log.level
                ),
            ));
        }
        Ok(warnings)
    }

    /// The config with every secret masked, for `config show`.
    pub fn masked(&self) -> Config {
        let mut c = self.clone();
        c.central.token = mask(&c.central.token);
        for t in &mut c.pos.tokens {
            t.token = mask(&t.token);
        }
        c
    }

    /// The TOML text of this config.
    pub fn to_toml(&self) -> String {
        // Every field is a string, number, bool, table or array of them:
        // serializing cannot fail, but a message beats a panic if it ever does.
        toml::to_string_pretty(self)
            .unwrap_or_else(|e| format!("# this config cannot be shown as TOML: {e}\n"))
    }

    /// Writes the config to `path` (parent dirs created), readable by its
    /// owner only: it holds tokens. Atomic: temp file then rename.
    pub fn write(&self, path: &Path) -> Result<(), ConfigError> {
        let err = |source| ConfigError::Write {
            path: path.into(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(err)?;
        }
        let text = format!(
            "# lojad configuration. Every key can be overridden by LOJAD_<SECTION>_<KEY>.\n\
             # Holds secrets (central.token, pos.tokens): keep this file mode 0600.\n\n{}",
            self.to_toml()
        );
        let tmp = path.with_extension("toml.tmp");
        write_private(&tmp, text.as_bytes()).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }
}

fn section_of_field(field: &str) -> Option<&'static str> {
    let probe = Config::example("x", Path::new("/x"), "http://127.0.0.1", "t", "tttttttt");
    let v = toml::Value::try_from(&probe).ok()?;
    SECTIONS
        .into_iter()
        .find(|s| v.get(s).and_then(|t| t.get(field)).is_some())
}

/// `****` plus the last 2 characters (fully masked when short).
pub fn mask(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() < 12 {
        "****".into()
    } else {
        format!(
            "****{}",
            chars[chars.len() - 2..].iter().collect::<String>()
        )
    }
}

/// Writes `bytes` to `path` with mode 0600 (owner only) on unix, fsync'd.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(bytes)?;
    f.sync_all()
}

impl Config {
    /// A complete config with defaults for everything but what a store must
    /// say (the demo, `init` and tests build theirs from this).
    pub fn example(
        store_id: &str,
        data_dir: &Path,
        central_url: &str,
        central_token: &str,
        pos_token: &str,
    ) -> Config {
        Config {
            store: StoreSection {
                id: store_id.into(),
                data_dir: data_dir.into(),
            },
            central: CentralSection {
                url: central_url.into(),
                token: central_token.into(),
                ca_cert: None,
                timeout_secs: default_timeout_secs(),
                allow_insecure: false,
            },
            pos: PosSection {
                listen: default_pos_listen(),
                tokens: vec![PosToken {
                    terminal: "PDV01".into(),
                    token: pos_token.into(),
                }],
                max_body_bytes: default_max_body_bytes(),
            },
            sync: SyncSection::default(),
            retention: RetentionSection::default(),
            log: LogSection::default(),
            omni: OmniSection::default(),
            update: UpdateSection::default(),
        }
    }
}

/// Where things go by default: a user's config dir, or the system's when
/// lojad runs as a service.
pub mod paths {
    use std::path::{Path, PathBuf};

    /// Creates `dir` (and parents) and restricts it to its owner on unix.
    pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }

    /// `/etc/loja/lojad.toml` (Linux) / `%ProgramData%\Loja\lojad.toml` (Windows).
    pub fn system_config() -> PathBuf {
        #[cfg(windows)]
        {
            program_data().join("lojad.toml")
        }
        #[cfg(not(windows))]
        {
            PathBuf::from("/etc/loja/lojad.toml")
        }
    }

    /// `/var/lib/loja` (Linux) / `%ProgramData%\Loja\data` (Windows).
    pub fn system_data_dir() -> PathBuf {
        #[cfg(windows)]
        {
            program_data().join("data")
        }
        #[cfg(not(windows))]
        {
            PathBuf::from("/var/lib/loja")
        }
    }

    #[cfg(windows)]
    fn program_data() -> PathBuf {
        std::env::var_os("ProgramData")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"))
            .join("Loja")
    }

    fn project() -> Option<directories::ProjectDirs> {
        directories::ProjectDirs::from("br.com", "Loja", "lojad")
    }

    /// The user's config file (e.g. `~/.config/lojad/lojad.toml`).
    pub fn user_config() -> Option<PathBuf> {
        project().map(|p| p.config_dir().join("lojad.toml"))
    }

    /// The user's data dir (e.g. `~/.local/share/lojad`).
    pub fn user_data_dir() -> Option<PathBuf> {
        project().map(|p| p.data_dir().to_path_buf())
    }

    /// The config `lojad` reads when neither `--config` nor LOJAD_CONFIG
    /// is given: the user's if it exists, else the system's if it exists,
    /// else the user's (for the error message).
    pub fn default_config() -> PathBuf {
        let user = user_config();
        if let Some(u) = user.as_ref().filter(|u| u.exists()) {
            return u.clone();
        }
        let system = system_config();
        if system.exists() {
            return system;
        }
        user.unwrap_or(system)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[store]
id = "loja-1"
data_dir = "/var/lib/loja"

[central]
url = "https://central.example.com"
token = "store-token-123456"

[pos]
listen = "127.0.0.1:7878"

[[pos.tokens]]
terminal = "pdv01"
token = "pos-token-abcdef"
"#;

    fn parse(text: &str, ov: &[Override]) -> Result<Config, ConfigError> {
        Config::parse_with(Path::new("/etc/loja/lojad.toml"), text, ov)
    }

    #[test]
    fn good_file_parses_and_validates() {
        let c = parse(GOOD, &[]).unwrap();
        assert_eq!(c.store.id, "loja-1");
        assert!(c.validate().unwrap().is_empty());
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let text = GOOD.replace("listen = ", "listn = ");
        let e = parse(&text, &[]).unwrap_err().to_string();
        assert!(e.contains("line 11"), "{e}");
        assert!(e.contains("pos.listn"), "{e}");
        assert!(e.contains("/etc/loja/lojad.toml"), "{e}");
    }

    #[test]
    fn bad_value_names_key_and_line() {
        let text = GOOD.replace("\"127.0.0.1:7878\"", "\"nonsense\"");
        let e = parse(&text, &[]).unwrap_err().to_string();
        assert!(e.contains("line 11"), "{e}");
        assert!(e.contains("pos.listen"), "{e}");
    }

    #[test]
    fn env_overrides_apply_and_errors_name_the_variable() {
        let ov = env_overrides(vec![
            ("LOJAD_POS_LISTEN".to_string(), "127.0.0.1:9999".to_string()),
            ("LOJAD_SYNC_PAGE_SIZE".to_string(), "500".to_string()),
            ("LOJAD_CONFIG".to_string(), "/x".to_string()),
            (
                "LOJAD_CENTRAL_URL".to_string(),
                "http://127.0.0.1:1".to_string(),
            ),
        ]);
        assert_eq!(ov.len(), 3);
        let c = parse(GOOD, &ov).unwrap();
        assert_eq!(c.pos.listen.port(), 9999);
        assert_eq!(c.sync.page_size, 500);
        assert_eq!(c.central.url, "http://127.0.0.1:1");

        let bad = env_overrides(vec![("LOJAD_POS_LISTEN".to_string(), "nope".to_string())]);
        let e = parse(GOOD, &bad).unwrap_err().to_string();
        assert!(
            e.contains("LOJAD_POS_LISTEN") && e.contains("pos.listen"),
            "{e}"
        );
        let bad = env_overrides(vec![(
            "LOJAD_SYNC_PAGE_SIZE".to_string(),
            "many".to_string(),
        )]);
        let e = parse(GOOD, &bad).unwrap_err().to_string();
        assert!(e.contains("LOJAD_SYNC_PAGE_SIZE"), "{e}");
        let bad = env_overrides(vec![("LOJAD_SYNC_PAGESIZE".to_string(), "5".to_string())]);
        let e = parse(GOOD, &bad).unwrap_err().to_string();
        assert!(e.contains("LOJAD_SYNC_PAGESIZE"), "{e}");
    }

    #[test]
    fn env_can_fill_a_missing_secret() {
        let text = GOOD.replace("token = \"store-token-123456\"\n", "");
        assert!(
            parse(&text, &[])
                .unwrap_err()
                .to_string()
                .contains("central.token")
        );
        let ov = env_overrides(vec![(
            "LOJAD_CENTRAL_TOKEN".to_string(),
            "from-env-123".to_string(),
        )]);
        assert_eq!(parse(&text, &ov).unwrap().central.token, "from-env-123");
        let ov = env_overrides(vec![(
            "LOJAD_POS_TOKENS".to_string(),
            "a:tok-aaaaaaaa,b:tok-bbbbbbbb".to_string(),
        )]);
        assert_eq!(parse(GOOD, &ov).unwrap().pos.tokens.len(), 2);
    }

    #[test]
    fn validation() {
        let mut c = parse(GOOD, &[]).unwrap();
        c.central.url = "http://central.example.com".into();
        assert_eq!(c.validate().unwrap_err().0, "central.url");
        c.central.allow_insecure = true;
        assert_eq!(c.validate().unwrap().len(), 1);
        c.central.url = "http://127.0.0.1:8080".into();
        c.central.allow_insecure = false;
        assert!(c.validate().unwrap().is_empty());
        c.pos.listen = "0.0.0.0:7878".parse().unwrap();
        assert!(c.validate().unwrap()[0].contains("not a loopback"));
        c.pos.tokens.clear();
        assert_eq!(c.validate().unwrap_err().0, "pos.tokens");
    }

    #[test]
    fn masking_and_round_trip() {
        let c = parse(GOOD, &[]).unwrap();
        let m = c.masked();
        assert_eq!(m.central.token, "****56");
        assert_eq!(m.pos.tokens[0].token, "****ef");
        assert_eq!(mask("short"), "****");
        let dir = std::env::temp_dir().join(format!("lojad-cfg-{}", uuid::Uuid::new_v4()));
        let path = dir.join("lojad.toml");
        c.write(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert_eq!(Config::load_with(&path, &[]).unwrap().0, c);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
