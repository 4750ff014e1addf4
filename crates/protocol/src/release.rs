//! Signed releases of lojad (issue 18): the wire types the central serves
//! and the checks a store makes before it trusts them. See docs/update.md.
//!
//! Two signed documents, each a [`Signed`] envelope whose `signed` field is
//! the payload's JSON text, signed byte for byte (no canonical-JSON step to
//! get wrong):
//!
//! - the [`Keyring`], signed by the chain's **root** key (built into lojad):
//!   the release keys in force, each with an expiry, and the revoked ones.
//!   It carries a version; a store keeps the highest it has trusted and
//!   refuses an older one (a revoked key cannot come back by replay).
//! - the [`Manifest`], signed by a **release** key of that keyring: the
//!   version, per target the artifact's sha256 and size, the lowest version
//!   it may update from, and a `sequence` that only grows. A store keeps the
//!   highest sequence it has trusted and refuses a lower one; it installs an
//!   older version only from a manifest flagged `rollback`.
//!
//! Pure data and checks, no I/O: the central signs with these types, the
//! store verifies with them.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A signed document: `signed` is the payload's JSON text; `sig` is the
/// ed25519 signature of its UTF-8 bytes by `key` (both hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed {
    pub signed: String,
    pub key: String,
    pub sig: String,
}

/// A release key the root vouches for until `expires` (RFC 3339).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseKey {
    pub key: String,
    pub expires: String,
}

/// The release keys in force, signed by the root key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keyring {
    pub version: u64,
    pub keys: Vec<ReleaseKey>,
    /// Keys no longer trusted, whatever their expiry.
    #[serde(default)]
    pub revoked: Vec<String>,
}

/// One build of a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub sha256: String,
    pub size: u64,
}

/// What a release key signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Grows with every manifest the central publishes (replay guard).
    pub sequence: u64,
    /// The lojad version this release installs (dotted numbers).
    pub version: String,
    /// The lowest version it may update from.
    pub min_from: String,
    /// Installs `version` even when it is older than the running one.
    #[serde(default)]
    pub rollback: bool,
    #[serde(default)]
    pub notes: String,
    pub published_at: String,
    /// By target (`x86_64-linux`, …).
    pub targets: BTreeMap<String, Target>,
}

/// What the central answers a store that asks for a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    pub keyring: Signed,
    pub manifest: Signed,
}

/// A store's outcome of one update attempt, sent to the central.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub from: String,
    pub to: String,
    /// `ok`, `rolled_back` or `refused`.
    pub result: String,
    #[serde(default)]
    pub error: Option<String>,
}

impl Report {
    pub const OK: &'static str = "ok";
    pub const ROLLED_BACK: &'static str = "rolled_back";
    pub const REFUSED: &'static str = "refused";
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    #[error("{what}: not valid hex of {len} bytes")]
    Hex { what: &'static str, len: usize },
    #[error("{0} is signed by a key that is not the root key")]
    NotRoot(&'static str),
    #[error("manifest signed by key {0}, which the keyring does not hold")]
    UnknownKey(String),
    #[error("manifest signed by revoked key {0}")]
    Revoked(String),
    #[error("manifest signed by key {key}, expired at {expires}")]
    Expired { key: String, expires: String },
    #[error("{0}: bad signature")]
    BadSignature(&'static str),
    #[error("{what}: not the JSON expected: {message}")]
    Json { what: &'static str, message: String },
    #[error("version {0:?} is not dotted numbers")]
    Version(String),
    #[error(
        "{what} {got} is older than {trusted}, the highest this store has trusted: replay refused"
    )]
    Replay {
        what: &'static str,
        got: u64,
        trusted: u64,
    },
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex<const N: usize>(s: &str, what: &'static str) -> Result<[u8; N], ReleaseError> {
    let s = s.trim();
    let err = || ReleaseError::Hex { what, len: N };
    if s.len() != 2 * N {
        return Err(err());
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        let pair = s.get(2 * i..2 * i + 2).ok_or_else(err)?;
        *o = u8::from_str_radix(pair, 16).map_err(|_| err())?;
    }
    Ok(out)
}

pub fn public_key(s: &str) -> Result<VerifyingKey, ReleaseError> {
    VerifyingKey::from_bytes(&unhex::<32>(s, "public key")?).map_err(|_| ReleaseError::Hex {
        what: "public key",
        len: 32,
    })
}

/// The sha256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Signs `payload` (serialized here) with `key`.
pub fn sign<T: Serialize>(payload: &T, key: &SigningKey) -> Result<Signed, ReleaseError> {
    let signed = serde_json::to_string(payload).map_err(|e| ReleaseError::Json {
        what: "payload",
        message: e.to_string(),
    })?;
    let sig = key.sign(signed.as_bytes());
    Ok(Signed {
        key: hex(key.verifying_key().as_bytes()),
        sig: hex(&sig.to_bytes()),
        signed,
    })
}

fn check_sig(s: &Signed, key: &VerifyingKey, what: &'static str) -> Result<(), ReleaseError> {
    let sig = Signature::from_bytes(&unhex::<64>(&s.sig, "signature")?);
    key.verify_strict(s.signed.as_bytes(), &sig)
        .map_err(|_| ReleaseError::BadSignature(what))
}

fn parse<T: serde::de::DeserializeOwned>(
    s: &Signed,
    what: &'static str,
) -> Result<T, ReleaseError> {
    serde_json::from_str(&s.signed).map_err(|e| ReleaseError::Json {
        what,
        message: e.to_string(),
    })
}

/// The keyring, if `root` signed it.
pub fn verify_keyring(s: &Signed, root: &VerifyingKey) -> Result<Keyring, ReleaseError> {
    if public_key(&s.key)? != *root {
        return Err(ReleaseError::NotRoot("keyring"));
    }
    check_sig(s, root, "keyring")?;
    parse(s, "keyring")
}

/// The manifest, if a key of `ring` that is neither revoked nor expired at
/// `now` signed it.
pub fn verify_manifest(
    s: &Signed,
    ring: &Keyring,
    now: time::OffsetDateTime,
) -> Result<Manifest, ReleaseError> {
    let signer = public_key(&s.key)?;
    let name = hex(signer.as_bytes());
    if ring.revoked.iter().any(|k| k.eq_ignore_ascii_case(&name)) {
        return Err(ReleaseError::Revoked(name));
    }
    let entry = ring
        .keys
        .iter()
        .find(|k| k.key.eq_ignore_ascii_case(&name))
        .ok_or_else(|| ReleaseError::UnknownKey(name.clone()))?;
    match crate::time::parse(&entry.expires) {
        Some(t) if t > now => {}
        _ => {
            return Err(ReleaseError::Expired {
                key: name,
                expires: entry.expires.clone(),
            });
        }
    }
    check_sig(s, &signer, "manifest")?;
    parse(s, "manifest")
}

/// Both documents of an offer, checked against the root key and against
/// the highest keyring version and manifest sequence this store trusted.
pub fn verify_offer(
    offer: &Offer,
    root: &VerifyingKey,
    trusted_keyring: u64,
    trusted_sequence: u64,
    now: time::OffsetDateTime,
) -> Result<(Keyring, Manifest), ReleaseError> {
    let ring = verify_keyring(&offer.keyring, root)?;
    if ring.version < trusted_keyring {
        return Err(ReleaseError::Replay {
            what: "keyring version",
            got: ring.version,
            trusted: trusted_keyring,
        });
    }
    let manifest = verify_manifest(&offer.manifest, &ring, now)?;
    if manifest.sequence < trusted_sequence {
        return Err(ReleaseError::Replay {
            what: "manifest sequence",
            got: manifest.sequence,
            trusted: trusted_sequence,
        });
    }
    Ok((ring, manifest))
}

/// Compares dotted-number versions (`0.10.2` > `0.9.7`; missing parts are 0).
pub fn compare_versions(a: &str, b: &str) -> Result<Ordering, ReleaseError> {
    let parts = |v: &str| -> Result<Vec<u64>, ReleaseError> {
        v.trim()
            .split('.')
            .map(|p| {
                p.parse::<u64>()
                    .map_err(|_| ReleaseError::Version(v.into()))
            })
            .collect()
    };
    let (mut x, mut y) = (parts(a)?, parts(b)?);
    let n = x.len().max(y.len());
    x.resize(n, 0);
    y.resize(n, 0);
    Ok(x.cmp(&y))
}

/// This build's target name (`x86_64-linux`, `x86_64-windows`, …).
pub fn this_target() -> String {
    format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn later() -> String {
        "2999-01-01T00:00:00Z".into()
    }

    fn ring(version: u64, keys: &[&SigningKey], revoked: &[&SigningKey]) -> Keyring {
        Keyring {
            version,
            keys: keys
                .iter()
                .map(|k| ReleaseKey {
                    key: hex(k.verifying_key().as_bytes()),
                    expires: later(),
                })
                .collect(),
            revoked: revoked
                .iter()
                .map(|k| hex(k.verifying_key().as_bytes()))
                .collect(),
        }
    }

    fn manifest(sequence: u64, version: &str) -> Manifest {
        Manifest {
            sequence,
            version: version.into(),
            min_from: "0.0.0".into(),
            rollback: false,
            notes: String::new(),
            published_at: "2026-11-30T00:00:00Z".into(),
            targets: BTreeMap::from([(
                "x86_64-linux".into(),
                Target {
                    sha256: sha256_hex(b"x"),
                    size: 1,
                },
            )]),
        }
    }

    fn now() -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc()
    }

    #[test]
    fn a_release_key_the_root_signed_is_trusted_and_others_are_not() {
        let (root, rel, stranger) = (key(1), key(2), key(3));
        let offer = Offer {
            keyring: sign(&ring(1, &[&rel], &[]), &root).unwrap(),
            manifest: sign(&manifest(5, "0.2.0"), &rel).unwrap(),
        };
        let (_, m) = verify_offer(&offer, &root.verifying_key(), 0, 0, now()).unwrap();
        assert_eq!(m.version, "0.2.0");

        // a manifest by a key the keyring does not hold
        let foreign = Offer {
            manifest: sign(&manifest(5, "0.2.0"), &stranger).unwrap(),
            ..offer.clone()
        };
        assert!(matches!(
            verify_offer(&foreign, &root.verifying_key(), 0, 0, now()),
            Err(ReleaseError::UnknownKey(_))
        ));
        // a keyring not signed by the root
        let forged = Offer {
            keyring: sign(&ring(1, &[&stranger], &[]), &stranger).unwrap(),
            manifest: sign(&manifest(5, "0.2.0"), &stranger).unwrap(),
        };
        assert!(matches!(
            verify_offer(&forged, &root.verifying_key(), 0, 0, now()),
            Err(ReleaseError::NotRoot(_))
        ));
        // a tampered manifest text
        let mut tampered = offer.clone();
        tampered.manifest.signed = tampered.manifest.signed.replace("0.2.0", "0.2.1");
        assert_eq!(
            verify_offer(&tampered, &root.verifying_key(), 0, 0, now()),
            Err(ReleaseError::BadSignature("manifest"))
        );
    }

    #[test]
    fn replays_revoked_and_expired_keys_are_refused() {
        let (root, rel, rel2) = (key(1), key(2), key(4));
        let offer = Offer {
            keyring: sign(&ring(3, &[&rel], &[]), &root).unwrap(),
            manifest: sign(&manifest(5, "0.2.0"), &rel).unwrap(),
        };
        let r = root.verifying_key();
        assert!(matches!(
            verify_offer(&offer, &r, 0, 6, now()),
            Err(ReleaseError::Replay {
                got: 5,
                trusted: 6,
                ..
            })
        ));
        assert!(matches!(
            verify_offer(&offer, &r, 4, 0, now()),
            Err(ReleaseError::Replay {
                got: 3,
                trusted: 4,
                ..
            })
        ));
        verify_offer(&offer, &r, 3, 5, now()).unwrap();

        let revoked = Offer {
            keyring: sign(&ring(4, &[&rel2], &[&rel]), &root).unwrap(),
            ..offer.clone()
        };
        assert!(matches!(
            verify_offer(&revoked, &r, 0, 0, now()),
            Err(ReleaseError::Revoked(_))
        ));
        let mut old = ring(5, &[&rel], &[]);
        old.keys[0].expires = "2001-01-01T00:00:00Z".into();
        let expired = Offer {
            keyring: sign(&old, &root).unwrap(),
            ..offer
        };
        assert!(matches!(
            verify_offer(&expired, &r, 0, 0, now()),
            Err(ReleaseError::Expired { .. })
        ));
    }

    #[test]
    fn versions_compare_as_numbers() {
        assert_eq!(compare_versions("0.10.0", "0.9.9"), Ok(Ordering::Greater));
        assert_eq!(compare_versions("1.0", "1.0.0"), Ok(Ordering::Equal));
        assert_eq!(compare_versions("0.1.0", "0.2"), Ok(Ordering::Less));
        assert!(compare_versions("1.x", "1").is_err());
        assert!(unhex::<2>("zz00", "t").is_err());
        assert_eq!(unhex::<2>("ff00", "t"), Ok([255, 0]));
    }
}
