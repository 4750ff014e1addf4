//! A store's `lojad.toml` for a test, written the way `lojad init` writes
//! one: a [`lojad::config::Config`] saved with [`Config::write`] (mode 0600,
//! temp file then rename), so no test carries a hand-written TOML file that
//! could drift from what the product reads and writes.
//!
//! ```no_run
//! use loja_e2e::config::ConfigBuilder;
//! let path = std::env::temp_dir().join("lojad.toml");
//! ConfigBuilder::new("loja-1", "/tmp/data", "http://127.0.0.1:9", "store-token")
//!     .pos_port(loja_e2e::free_port())
//!     .pos_token("pdv01", "pos-token-123456")
//!     .write(&path)
//!     .unwrap();
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context;
use lojad::config::{Config, PosToken};

use crate::store::{POS_TERMINAL, POS_TOKEN};

/// A lojad config under construction: lojad's own defaults
/// ([`Config::example`]) for every key a setter does not change.
#[derive(Debug, Clone)]
pub struct ConfigBuilder {
    config: Config,
}

impl ConfigBuilder {
    /// `[store] id`, `data_dir` and `[central] url`, `token`; one POS token,
    /// [`POS_TERMINAL`] / [`POS_TOKEN`]; everything else lojad's default
    /// (the POS API on 127.0.0.1:7878).
    pub fn new(
        store_id: &str,
        data_dir: impl AsRef<Path>,
        central_url: &str,
        central_token: &str,
    ) -> ConfigBuilder {
        let mut config = Config::example(
            store_id,
            data_dir.as_ref(),
            central_url,
            central_token,
            POS_TOKEN,
        );
        config.pos.tokens = vec![PosToken {
            terminal: POS_TERMINAL.into(),
            token: POS_TOKEN.into(),
        }];
        ConfigBuilder { config }
    }

    /// `[store] data_dir`.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.store.data_dir = dir.into();
        self
    }
    /// `[central] timeout_secs`.
    pub fn timeout_secs(mut self, s: u64) -> Self {
        self.config.central.timeout_secs = s;
        self
    }
    /// `[central] ca_cert`: an extra CA (PEM) to trust for the central.
    pub fn ca_cert(mut self, pem: Option<PathBuf>) -> Self {
        self.config.central.ca_cert = pem;
        self
    }
    /// `[pos] listen`.
    pub fn pos_listen(mut self, addr: SocketAddr) -> Self {
        self.config.pos.listen = addr;
        self
    }
    /// `[pos] listen = "127.0.0.1:PORT"` (0: the daemon picks one).
    pub fn pos_port(self, port: u16) -> Self {
        self.pos_listen(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
    }
    /// `[[pos.tokens]]`: this terminal and token only.
    pub fn pos_token(mut self, terminal: &str, token: &str) -> Self {
        self.config.pos.tokens = vec![PosToken {
            terminal: terminal.into(),
            token: token.into(),
        }];
        self
    }
    /// `[sync] page_size` (rows per feed page).
    pub fn page_size(mut self, n: u32) -> Self {
        self.config.sync.page_size = n;
        self
    }
    /// `[sync] upload_batch`.
    pub fn upload_batch(mut self, n: u32) -> Self {
        self.config.sync.upload_batch = n;
        self
    }
    /// `[sync] push` (long-poll the central for hints).
    pub fn push(mut self, on: bool) -> Self {
        self.config.sync.push = on;
        self
    }
    /// `[sync] tasks_dir`: task files overriding the embedded ones.
    pub fn tasks_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.config.sync.tasks_dir = dir;
        self
    }
    /// `[log] level`.
    pub fn log_level(mut self, level: &str) -> Self {
        self.config.log.level = level.into();
        self
    }
    /// Any other change.
    pub fn with(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(&mut self.config);
        self
    }

    pub fn config(&self) -> &Config {
        &self.config
    }
    pub fn store_id(&self) -> &str {
        &self.config.store.id
    }
    pub fn central_token(&self) -> &str {
        &self.config.central.token
    }

    /// Writes the config to `path` with [`Config::write`], as `lojad init`
    /// does; returns `path`.
    pub fn write(&self, path: impl AsRef<Path>) -> anyhow::Result<PathBuf> {
        let path = path.as_ref();
        self.config
            .write(path)
            .with_context(|| format!("write {}", path.display()))?;
        Ok(path.to_path_buf())
    }
}
