//! `lojad update --file NEW --signature SIG`: verifies the chain's ed25519
//! signature over a new lojad binary, swaps it in atomically and restarts
//! the service.
//!
//! The release public key is embedded at build time from the environment
//! variable `LOJAD_RELEASE_PUBLIC_KEY` (64 hex digits). A build without it
//! accepts only an explicit `--public-key` (tests, labs): it never installs
//! an unsigned binary.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ed25519_dalek::{Signature, VerifyingKey};

/// The chain's release key, when this build was given one.
pub const RELEASE_PUBLIC_KEY: Option<&str> = option_env!("LOJAD_RELEASE_PUBLIC_KEY");

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

pub fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A public key given as 64 hex digits, or as a file holding them (or the
/// 32 raw bytes).
pub fn parse_public_key(arg: &str) -> Result<VerifyingKey> {
    let bytes = match decode_hex(arg) {
        Some(b) if b.len() == 32 => b,
        _ => {
            let raw = std::fs::read(arg).with_context(|| {
                format!("public key `{arg}` is neither 64 hex digits nor a file")
            })?;
            match std::str::from_utf8(&raw).ok().and_then(decode_hex) {
                Some(b) if b.len() == 32 => b,
                _ if raw.len() == 32 => raw,
                _ => bail!("{arg}: not an ed25519 public key (64 hex digits or 32 bytes)"),
            }
        }
    };
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("{arg}: not 32 bytes"))?;
    VerifyingKey::from_bytes(&arr).context("not a valid ed25519 public key")
}

/// A signature file: 64 raw bytes, or 128 hex digits.
pub fn read_signature(path: &Path) -> Result<Signature> {
    let raw =
        std::fs::read(path).with_context(|| format!("reading signature {}", path.display()))?;
    let bytes = match std::str::from_utf8(&raw).ok().and_then(decode_hex) {
        Some(b) if b.len() == 64 => b,
        _ if raw.len() == 64 => raw,
        _ => bail!(
            "{}: not an ed25519 signature (64 bytes or 128 hex digits)",
            path.display()
        ),
    };
    let arr: [u8; 64] = bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("{}: not 64 bytes", path.display()))?;
    Ok(Signature::from_bytes(&arr))
}

/// The key to verify with: `--public-key` if given, else the embedded one.
pub fn key(explicit: Option<&str>) -> Result<VerifyingKey> {
    match (explicit, RELEASE_PUBLIC_KEY) {
        (Some(k), _) => parse_public_key(k),
        (None, Some(k)) => parse_public_key(k),
        (None, None) => bail!(
            "this lojad was built without a release key (LOJAD_RELEASE_PUBLIC_KEY): give --public-key"
        ),
    }
}

/// Verifies `sig` over the whole file (strict ed25519 verification).
pub fn verify(binary: &[u8], sig: &Signature, key: &VerifyingKey) -> Result<()> {
    key.verify_strict(binary, sig).map_err(|_| {
        anyhow::anyhow!("signature does not match: the file is not a release signed by this key")
    })
}

/// Verifies `file` against `signature`; returns its bytes.
pub fn verify_file(file: &Path, signature: &Path, key: &VerifyingKey) -> Result<Vec<u8>> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let sig = read_signature(signature)?;
    verify(&bytes, &sig, key).with_context(|| format!("{} rejected", file.display()))?;
    Ok(bytes)
}

/// Atomically replaces `target` with `bytes`: written beside it, fsync'd,
/// made executable, renamed over it (the running process keeps its old
/// inode on unix).
pub fn replace_file(target: &Path, bytes: &[u8]) -> Result<()> {
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp: PathBuf = dir.join(format!(".lojad-update-{}", std::process::id()));
    {
        use std::io::Write;
        let mut f =
            std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    }
    std::fs::rename(&tmp, target).with_context(|| format!("replacing {}", target.display()))?;
    Ok(())
}

/// Replaces the running executable with the verified `bytes`.
#[cfg(unix)]
fn replace_running(_file: &Path, bytes: &[u8]) -> Result<PathBuf> {
    // The running process keeps its old inode; the rename is atomic.
    let exe = std::env::current_exe().context("locating the running lojad")?;
    replace_file(&exe, bytes)?;
    Ok(exe)
}

/// Replaces the running executable with the verified `file`.
#[cfg(windows)]
fn replace_running(file: &Path, _bytes: &[u8]) -> Result<PathBuf> {
    // Windows cannot overwrite a running .exe in place; self-replace
    // renames it aside first (unchecked here: no Windows toolchain).
    self_replace::self_replace(file).context("replacing the running lojad")?;
    Ok(std::env::current_exe().unwrap_or_else(|_| PathBuf::from("lojad.exe")))
}

/// What `update` did.
#[derive(Debug, serde::Serialize)]
pub struct Outcome {
    pub verified: bool,
    pub replaced: Option<PathBuf>,
    pub restarted: bool,
    pub note: String,
}

/// `lojad update`: verify, then (unless `check_only`) replace `target` (the
/// running binary when `None`) and restart the service if it runs.
pub fn run(
    file: &Path,
    signature: &Path,
    public_key: Option<&str>,
    check_only: bool,
    target: Option<&Path>,
) -> Result<Outcome> {
    let key = key(public_key)?;
    let bytes = verify_file(file, signature, &key)?;
    if check_only {
        return Ok(Outcome {
            verified: true,
            replaced: None,
            restarted: false,
            note: "signature ok (--check: nothing replaced)".into(),
        });
    }
    let replaced = match target {
        Some(t) => {
            replace_file(t, &bytes)?;
            t.to_path_buf()
        }
        None => replace_running(file, &bytes)?,
    };
    let (restarted, note) = if target.is_some() {
        (false, "replaced (no restart: --target)".to_string())
    } else {
        restart_service()
    };
    Ok(Outcome {
        verified: true,
        replaced: Some(replaced),
        restarted,
        note,
    })
}

/// Restarts the lojad service if it is running.
fn restart_service() -> (bool, String) {
    #[cfg(windows)]
    {
        // The service cannot restart itself synchronously from its own
        // process; a detached `cmd` stops and starts it.
        let ok = std::process::Command::new("cmd")
            .args([
                "/C",
                "sc.exe stop lojad & timeout /t 5 & sc.exe start lojad",
            ])
            .spawn()
            .is_ok();
        (
            ok,
            if ok {
                "service restart requested".into()
            } else {
                "restart the lojad service by hand".into()
            },
        )
    }
    #[cfg(not(windows))]
    {
        let active = std::process::Command::new("systemctl")
            .args(["is-active", "--quiet", crate::service::UNIT_NAME])
            .status()
            .is_ok_and(|s| s.success());
        if !active {
            return (
                false,
                "the lojad service is not running under systemd: restart lojad by hand".into(),
            );
        }
        match std::process::Command::new("systemctl")
            .args(["restart", crate::service::UNIT_NAME])
            .status()
        {
            Ok(s) if s.success() => (true, "lojad.service restarted".into()),
            _ => (
                false,
                "systemctl restart lojad failed: restart it by hand".into(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn random_key() -> SigningKey {
        let mut seed = [0u8; 32];
        seed[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        seed[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        SigningKey::from_bytes(&seed)
    }

    #[test]
    fn verifies_good_and_rejects_tampered_or_foreign() {
        let key = random_key();
        let binary = b"\x7fELF new lojad".to_vec();
        let sig = key.sign(&binary);
        let public = key.verifying_key();
        verify(&binary, &sig, &public).unwrap();

        let mut tampered = binary.clone();
        tampered[5] ^= 1;
        assert!(verify(&tampered, &sig, &public).is_err());
        assert!(verify(&binary, &sig, &random_key().verifying_key()).is_err());
    }

    #[test]
    fn files_hex_and_raw_and_replace() {
        let dir = std::env::temp_dir().join(format!("lojad-update-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = random_key();
        let new = dir.join("lojad.new");
        std::fs::write(&new, b"new binary").unwrap();
        let sig_hex = dir.join("lojad.new.sig");
        std::fs::write(&sig_hex, encode_hex(&key.sign(b"new binary").to_bytes())).unwrap();
        let sig_raw = dir.join("lojad.new.sig.bin");
        std::fs::write(&sig_raw, key.sign(b"new binary").to_bytes()).unwrap();
        let pk = encode_hex(key.verifying_key().as_bytes());

        let target = dir.join("lojad");
        std::fs::write(&target, b"old binary").unwrap();
        let out = run(&new, &sig_hex, Some(&pk), true, Some(&target)).unwrap();
        assert!(out.verified && out.replaced.is_none());
        assert_eq!(std::fs::read(&target).unwrap(), b"old binary");
        run(&new, &sig_raw, Some(&pk), false, Some(&target)).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new binary");

        std::fs::write(&new, b"evil binary").unwrap();
        assert!(run(&new, &sig_hex, Some(&pk), false, Some(&target)).is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"new binary");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
