//! The console's accounts, sessions, form tokens and audit log.
//!
//! - Accounts: a username, an argon2id hash (PHC string) of the password,
//!   a role: viewer (reads), operator (acts on stores, documents, orders),
//!   admin (also switches and schedules, the audit log).
//! - Sessions: the cookie holds a random id; the table keeps its SHA-256
//!   only, the user, the expiry and the session's form token (CSRF), which
//!   every POST must send back in a hidden field.
//! - Audit: every action, allowed or not, with who, when, what and target.
//!
//! Nothing here logs a password, a session id or a token.

use crate::sql::{Connection, OptionalExtension};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::db::{hash_token, now_unix};

/// How long a session lasts after sign-in.
pub const SESSION_SECS: i64 = 8 * 3_600;
/// Shortest password an account may have.
pub const MIN_PASSWORD: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("username: 1 to 64 of a-z, 0-9, '.', '_', '-', '@'")]
    Username,
    #[error("password: at least {MIN_PASSWORD} characters")]
    Password,
    #[error("role: viewer, operator or admin")]
    Role,
    #[error("password hashing: {0}")]
    Hash(String),
    #[error(transparent)]
    Sql(#[from] crate::sql::Error),
}

/// What an account may do; each role may do what the ones below it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
    /// May this role do what needs `need`?
    pub fn may(self, need: Role) -> bool {
        self >= need
    }
}

/// A signed-in user, as a request sees it.
#[derive(Debug, Clone)]
pub struct Session {
    pub username: String,
    pub role: Role,
    /// The form token every POST of this session must carry.
    pub csrf: String,
}

pub fn valid_username(u: &str) -> bool {
    (1..=64).contains(&u.len())
        && u.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-' | b'@')
        })
}

/// An argon2id hash (PHC string) of `password`, with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::encode_b64(uuid::Uuid::new_v4().as_bytes())
        .map_err(|e| AuthError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// Does `password` match the PHC string `hash`? (False for a hash that
/// does not parse.)
pub fn verify_password(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(h) => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash that no password matches, verified for an unknown username so
/// that a wrong name takes as long as a wrong password.
fn decoy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| hash_password("decoy password, never valid").unwrap_or_default())
}

/// A random secret: 244 random bits (two v4 UUIDs), hex.
pub fn new_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Equal, in a time that does not depend on where they differ.
pub fn same_token(expected: &str, given: &str) -> bool {
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    if a.len() != b.len() || a.is_empty() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Creates or updates (password and role) an account.
pub fn put_user(
    conn: &Connection,
    username: &str,
    password: &str,
    role: &str,
) -> Result<(), AuthError> {
    if !valid_username(username) {
        return Err(AuthError::Username);
    }
    if password.chars().count() < MIN_PASSWORD {
        return Err(AuthError::Password);
    }
    let role = Role::parse(role).ok_or(AuthError::Role)?;
    let hash = hash_password(password)?;
    conn.execute(
        "INSERT INTO console_users (username, password_hash, role, created_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash, role = excluded.role",
        params![username, hash, role.as_str(), now_unix()],
    )?;
    // A changed password or role signs the account out everywhere.
    conn.execute(
        "DELETE FROM console_sessions WHERE username = ?1",
        params![username],
    )?;
    Ok(())
}

/// An account as the users page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub username: String,
    pub role: Role,
    pub disabled: bool,
    /// Unix seconds.
    pub created_at: i64,
}

pub fn accounts(conn: &Connection) -> Result<Vec<Account>, crate::sql::Error> {
    let mut stmt = conn.prepare(
        "SELECT username, role, disabled, created_at FROM console_users ORDER BY username",
    )?;
    let rows = stmt.query_map(params![], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (username, role, disabled, created_at) = row?;
        out.push(Account {
            username,
            // An unknown role reads as the least one.
            role: Role::parse(&role).unwrap_or(Role::Viewer),
            disabled: disabled != 0,
            created_at,
        });
    }
    Ok(out)
}

/// Creates an account; `Ok(false)` when the username is taken (the page
/// never overwrites a password by creating).
pub fn create_user(
    conn: &Connection,
    username: &str,
    password: &str,
    role: &str,
) -> Result<bool, AuthError> {
    let taken = conn
        .query_row(
            "SELECT 1 FROM console_users WHERE username = ?1",
            params![username],
            |r| r.get::<_, i64>(0),
        )
        .optional()?
        .is_some();
    if taken {
        return Ok(false);
    }
    put_user(conn, username, password, role)?;
    Ok(true)
}

/// Changes an account's role; its sessions end. False: no such account.
pub fn set_role(conn: &Connection, username: &str, role: Role) -> Result<bool, crate::sql::Error> {
    let n = conn.execute(
        "UPDATE console_users SET role = ?2 WHERE username = ?1",
        params![username, role.as_str()],
    )?;
    end_sessions(conn, username)?;
    Ok(n > 0)
}

/// Disables (or enables) an account; disabling ends its sessions. False:
/// no such account.
pub fn set_disabled(
    conn: &Connection,
    username: &str,
    disabled: bool,
) -> Result<bool, crate::sql::Error> {
    let n = conn.execute(
        "UPDATE console_users SET disabled = ?2 WHERE username = ?1",
        params![username, i64::from(disabled)],
    )?;
    end_sessions(conn, username)?;
    Ok(n > 0)
}

fn end_sessions(conn: &Connection, username: &str) -> Result<(), crate::sql::Error> {
    conn.execute(
        "DELETE FROM console_sessions WHERE username = ?1",
        params![username],
    )?;
    Ok(())
}

/// The account's role when `password` is right.
pub fn check_password(
    conn: &Connection,
    username: &str,
    password: &str,
) -> Result<Option<Role>, crate::sql::Error> {
    let row: Option<(String, String)> = conn
        .prepare_cached(
            "SELECT password_hash, role FROM console_users WHERE username = ?1 AND disabled = 0",
        )?
        .query_row(params![username], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(match row {
        Some((hash, role)) if verify_password(&hash, password) => Role::parse(&role),
        Some(_) => None,
        None => {
            let _ = verify_password(decoy_hash(), password);
            None
        }
    })
}

/// Opens a session for `username`: its id (for the cookie only).
pub fn open_session(conn: &Connection, username: &str) -> Result<String, crate::sql::Error> {
    let now = now_unix();
    conn.execute(
        "DELETE FROM console_sessions WHERE expires_at <= ?1",
        params![now],
    )?;
    let id = new_secret();
    conn.execute(
        "INSERT INTO console_sessions (id_hash, username, csrf, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            hash_token(&id),
            username,
            new_secret(),
            now,
            now + SESSION_SECS
        ],
    )?;
    Ok(id)
}

/// The live session of cookie value `id`, if any.
pub fn session(conn: &Connection, id: &str) -> Result<Option<Session>, crate::sql::Error> {
    conn.prepare_cached(
        "SELECT s.username, u.role, s.csrf FROM console_sessions s
         JOIN console_users u ON u.username = s.username
         WHERE s.id_hash = ?1 AND s.expires_at > ?2 AND u.disabled = 0",
    )?
    .query_row(params![hash_token(id), now_unix()], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })
    .optional()
    .map(|row| {
        row.and_then(|(username, role, csrf)| {
            Role::parse(&role).map(|role| Session {
                username,
                role,
                csrf,
            })
        })
    })
}

pub fn close_session(conn: &Connection, id: &str) -> Result<(), crate::sql::Error> {
    conn.execute(
        "DELETE FROM console_sessions WHERE id_hash = ?1",
        params![hash_token(id)],
    )?;
    Ok(())
}

/// Writes one audit line.
pub fn audit(
    conn: &Connection,
    username: &str,
    action: &str,
    target: &str,
    outcome: &str,
) -> Result<(), crate::sql::Error> {
    conn.execute(
        "INSERT INTO console_audit (at, username, action, target, outcome) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![now_unix(), username, action, target, outcome],
    )?;
    Ok(())
}

/// One audit line, as the audit page shows it.
#[derive(Debug, Clone)]
pub struct AuditLine {
    pub at: i64,
    pub username: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
}

/// The newest `limit` audit lines, newest first.
pub fn audit_lines(conn: &Connection, limit: u32) -> Result<Vec<AuditLine>, crate::sql::Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT at, username, action, target, outcome FROM console_audit ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map(params![limit], |r| {
        Ok(AuditLine {
            at: r.get(0)?,
            username: r.get(1)?,
            action: r.get(2)?,
            target: r.get(3)?,
            outcome: r.get(4)?,
        })
    })?;
    rows.collect()
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (crate::db::Db, tempfile::TempDir) {
        crate::test_central::with_stores(&["a"])
    }

    #[test]
    fn password_hash_round_trip() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password(&h, "correct horse battery"));
        assert!(!verify_password(&h, "correct horse batterY"));
        assert!(!verify_password("not a phc string", "x"));
        // A fresh salt each time.
        assert_ne!(h, hash_password("correct horse battery").unwrap());
    }

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Admin.may(Role::Operator));
        assert!(Role::Operator.may(Role::Operator));
        assert!(!Role::Viewer.may(Role::Operator));
        assert!(!Role::Operator.may(Role::Admin));
        assert!(Role::Viewer.may(Role::Viewer));
        for r in [Role::Viewer, Role::Operator, Role::Admin] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn form_tokens_compare_whole() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "ab"));
        assert!(!same_token("", ""));
        let s = new_secret();
        assert_eq!(s.len(), 64);
        assert_ne!(s, new_secret());
    }

    #[test]
    fn cookies_by_name() {
        let h = "a=1; loja_console=xyz; loja_lang=en";
        assert_eq!(cookie(h, "loja_console"), Some("xyz"));
        assert_eq!(cookie(h, "loja_lang"), Some("en"));
        assert_eq!(cookie(h, "loja"), None);
    }

    #[test]
    fn accounts_and_sessions() {
        let (db, _dir) = db();
        db.write(|tx| {
            assert!(matches!(
                put_user(tx, "Ana", "long enough pw", "admin"),
                Err(AuthError::Username)
            ));
            assert!(matches!(
                put_user(tx, "ana", "short", "admin"),
                Err(AuthError::Password)
            ));
            assert!(matches!(
                put_user(tx, "ana", "long enough pw", "root"),
                Err(AuthError::Role)
            ));
            put_user(tx, "ana", "long enough pw", "operator").unwrap();
            assert_eq!(
                check_password(tx, "ana", "long enough pw").unwrap(),
                Some(Role::Operator)
            );
            assert_eq!(check_password(tx, "ana", "wrong password").unwrap(), None);
            assert_eq!(check_password(tx, "bia", "long enough pw").unwrap(), None);
            let id = open_session(tx, "ana").unwrap();
            let s = session(tx, &id).unwrap().unwrap();
            assert_eq!((s.username.as_str(), s.role), ("ana", Role::Operator));
            assert_eq!(s.csrf.len(), 64);
            // Only the hash is stored.
            let stored: i64 = tx
                .query_row(
                    "SELECT count(*) FROM console_sessions WHERE id_hash = ?1",
                    params![&id],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(stored, 0);
            assert!(session(tx, "nope").unwrap().is_none());
            // A new role signs the account out.
            put_user(tx, "ana", "long enough pw", "viewer").unwrap();
            assert!(session(tx, &id).unwrap().is_none());
            let id = open_session(tx, "ana").unwrap();
            close_session(tx, &id).unwrap();
            assert!(session(tx, &id).unwrap().is_none());
            audit(tx, "ana", "sign_in", "", "ok").unwrap();
            let lines = audit_lines(tx, 10).unwrap();
            assert_eq!(lines.len(), 1);
            assert_eq!(lines[0].action, "sign_in");
            // The users page: create (never over an account), role, disable.
            assert!(!create_user(tx, "ana", "another password", "admin").unwrap());
            assert!(create_user(tx, "caio", "long enough pw", "viewer").unwrap());
            let id = open_session(tx, "caio").unwrap();
            assert!(set_role(tx, "caio", Role::Operator).unwrap());
            assert!(
                session(tx, &id).unwrap().is_none(),
                "a new role ends sessions"
            );
            let id = open_session(tx, "caio").unwrap();
            assert!(set_disabled(tx, "caio", true).unwrap());
            assert!(
                session(tx, &id).unwrap().is_none(),
                "disabling ends sessions"
            );
            assert_eq!(check_password(tx, "caio", "long enough pw").unwrap(), None);
            assert!(set_disabled(tx, "caio", false).unwrap());
            assert_eq!(
                check_password(tx, "caio", "long enough pw").unwrap(),
                Some(Role::Operator)
            );
            assert!(!set_role(tx, "nobody", Role::Admin).unwrap());
            let all = accounts(tx).unwrap();
            assert_eq!(
                all.iter().map(|a| a.username.as_str()).collect::<Vec<_>>(),
                ["ana", "caio"]
            );
            Ok::<_, crate::db::DbError>(())
        })
        .unwrap();
    }
}
