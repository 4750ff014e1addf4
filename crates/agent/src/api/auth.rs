//! Bearer tokens, one per POS terminal (`[pos] tokens` in the config).
//! The terminal's name goes into the request's tracing span; the token is
//! never logged.

use axum::extract::Request;
use axum::http::header;

/// The terminal a request authenticated as (a request extension).
#[derive(Debug, Clone)]
pub struct Terminal(pub std::sync::Arc<str>);

/// The configured tokens, kept as bytes for the comparison.
pub struct Tokens {
    /// (terminal, token): the terminal's name is shared with every request
    /// it makes (no copy per request).
    entries: Vec<(std::sync::Arc<str>, Vec<u8>)>,
}

impl Tokens {
    pub fn new(tokens: &[crate::config::PosToken]) -> Tokens {
        Tokens {
            entries: tokens
                .iter()
                .filter(|t| !t.token.is_empty())
                .map(|t| {
                    (
                        std::sync::Arc::from(t.terminal.as_str()),
                        t.token.as_bytes().to_vec(),
                    )
                })
                .collect(),
        }
    }

    /// The terminal whose token this is. Compares against every configured
    /// token in constant time per token (no early exit on the first
    /// differing byte, nor on the first match).
    pub fn terminal_for(&self, presented: &[u8]) -> Option<&std::sync::Arc<str>> {
        let mut found = None;
        for (terminal, token) in &self.entries {
            if ct_eq(token, presented) && found.is_none() {
                found = Some(terminal);
            }
        }
        found
    }

    /// The terminal whose token `req` presents (`Authorization: Bearer …`).
    pub fn terminal_for_request(&self, req: &Request) -> Option<&std::sync::Arc<str>> {
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)?;
        self.terminal_for(presented.as_bytes())
    }
}

/// Constant-time equality: the time depends on the lengths only.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    let n = a.len().max(b.len());
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0xff);
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_eq_compares_whole_values() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(!ct_eq(b"", b"a"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn finds_the_terminal() {
        let t = Tokens::new(&[
            crate::config::PosToken {
                terminal: "PDV01".into(),
                token: "t1".into(),
            },
            crate::config::PosToken {
                terminal: "PDV02".into(),
                token: "t2".into(),
            },
            crate::config::PosToken {
                terminal: "EMPTY".into(),
                token: String::new(),
            },
        ]);
        assert_eq!(t.terminal_for(b"t2").map(|t| &**t), Some("PDV02"));
        assert_eq!(t.terminal_for(b"t3").map(|t| &**t), None);
        assert_eq!(t.terminal_for(b"").map(|t| &**t), None);
    }
}
