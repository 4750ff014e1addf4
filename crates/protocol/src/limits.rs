//! The bounds of document fields, and the values of their enumerated ones:
//! one source for the validation in `document.rs` (POS API, outbox and
//! central alike) and for the OpenAPI schemas generated from the same types
//! (`schema.rs`).
//!
//! Money is i64 centavos and quantities i64 thousandths; the bounds keep every
//! sum a document can hold (at most [`ITEMS_MAX`] lines, [`PAYMENTS_MAX`]
//! payments) far inside i64, and the arithmetic is checked all the same.

/// Codes: register (POS terminal), operator, product code, payment method,
/// sale modality and channel, omni order id. Characters, not bytes.
pub const CODE_MAX: usize = 60;
/// Free text: names, reasons.
pub const TEXT_MAX: usize = 200;
/// An e-mail address (RFC 5321's path limit).
pub const EMAIL_MAX: usize = 254;
/// A phone number as typed (digits, spaces, `+`, `()`, `-`).
pub const PHONE_MAX: usize = 30;
/// A card authorization code / PIX end-to-end id (32 characters).
pub const AUTHORIZATION_MAX: usize = 100;
/// The signed NFC-e/SAT XML, characters: a 990-item NFC-e is some hundreds of
/// KiB; lojad's whole body is bounded by `[pos] max_body_bytes` (2 MiB) anyway.
pub const XML_MAX: usize = 1024 * 1024;

/// Most centavos any one amount may carry: R$ 10 billion. 990 lines or 100
/// payments of this much still sum far below i64::MAX.
pub const MONEY_MAX: i64 = 1_000_000_000_000;
/// Most thousandths of a unit in one line: a million units.
pub const QTY_MAX: i64 = 1_000_000_000;
/// Largest fiscal number (NFC-e number, COO): nine digits.
pub const NUMBER_MAX: i64 = 999_999_999;
/// Largest Redução Z counter (CRZ).
pub const CRZ_MAX: i64 = 999_999;
/// IBGE city codes have seven digits.
pub const IBGE_MIN: i64 = 1_000_000;
pub const IBGE_MAX: i64 = 9_999_999;
/// Largest LGPD letter version.
pub const VERSION_MAX: i64 = 1_000_000;

/// Lines of one sale (the NFC-e's limit).
pub const ITEMS_MAX: usize = 990;
/// Payments of one sale.
pub const PAYMENTS_MAX: usize = 100;
/// Per-method totals of a cash close or a Redução Z.
pub const TOTALS_MAX: usize = 100;

/// The statuses an omni order goes through.
pub const OMNI_STATUSES: [&str; 4] = ["picking", "ready", "delivered", "cancelled"];

/// JSON Schema patterns (ECMA / Python `re`, unanchored unless `^…$`) of the
/// same rules `document.rs` checks in Rust.
pub mod pattern {
    /// Not blank: at least one character outside [`super::BLANK`], spelled
    /// out because `\S` means three things: ECMA's `\s` lacks U+0085,
    /// Python's adds U+001C–U+001F, and under `re.ASCII` (how schemathesis
    /// reads patterns) it is the six ASCII spaces only.
    pub const NOT_BLANK: &str =
        r"[^\t-\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";
    /// RFC 3339 in UTC: `Z` or `+00:00` (with `format: date-time`).
    pub const UTC: &str = r"(Z|z|\+00:00)$";
    pub const GTIN: &str = r"^([0-9]{8}|[0-9]{12,14})$";
    pub const CPF_OR_CNPJ: &str = r"^([0-9]{11}|[0-9]{14})$";
    pub const UF: &str = r"^[A-Z]{2}$";
    pub const ACCESS_KEY: &str = r"^[0-9]{44}$";
    /// An XML document starts with `<` after XML white space.
    pub const XML: &str = r"^[ \t\r\n]*<";
    pub const EMAIL: &str = "@";
}

/// The characters a blank text is made of: Unicode White_Space plus the four
/// C0 separators (U+001C–U+001F) Python's `\s` counts too. The schema's
/// [`pattern::NOT_BLANK`] lists the same ranges (a test holds them equal).
pub const BLANK: [(char, char); 11] = [
    ('\t', '\r'),
    (' ', ' '),
    ('\u{1c}', '\u{1f}'),
    ('\u{85}', '\u{85}'),
    ('\u{a0}', '\u{a0}'),
    ('\u{1680}', '\u{1680}'),
    ('\u{2000}', '\u{200a}'),
    ('\u{2028}', '\u{2029}'),
    ('\u{202f}', '\u{202f}'),
    ('\u{205f}', '\u{205f}'),
    ('\u{3000}', '\u{3000}'),
];

/// White space only (or empty), by [`BLANK`].
pub fn is_blank(s: &str) -> bool {
    s.chars()
        .all(|c| BLANK.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)))
}

/// Characters (Unicode scalar values, as JSON Schema's `maxLength` counts).
pub fn char_len(s: &str) -> usize {
    s.chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_is_what_python_calls_white_space() {
        for s in [
            "",
            " ",
            "\t\r\n",
            "\u{a0}",
            "\u{3000}",
            "\u{1c}\u{1f}",
            "\u{85}",
        ] {
            assert!(is_blank(s), "{s:?}");
        }
        for s in ["a", " a ", "\u{0}", "\u{200b}", "\u{7f}"] {
            assert!(!is_blank(s), "{s:?}");
        }
    }

    #[test]
    fn blank_is_unicode_white_space_and_the_c0_separators_and_the_pattern_lists_it() {
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            let expected = c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c);
            assert_eq!(is_blank(&c.to_string()), expected, "{c:?}");
        }
        let escape = |c: char| match c {
            '\t' => r"\t".to_owned(),
            '\r' => r"\r".to_owned(),
            ' ' => " ".to_owned(),
            c if (c as u32) < 0x100 => format!(r"\x{:02x}", c as u32),
            c => format!(r"\u{:04x}", c as u32),
        };
        let listed: String = BLANK
            .iter()
            .map(|&(lo, hi)| match (lo, hi) {
                (lo, hi) if lo == hi => escape(lo),
                (lo, hi) if hi as u32 == lo as u32 + 1 => escape(lo) + &escape(hi),
                (lo, hi) => format!("{}-{}", escape(lo), escape(hi)),
            })
            .collect();
        assert_eq!(pattern::NOT_BLANK, format!("[^{listed}]"));
    }

    #[test]
    fn sums_at_the_bounds_fit_in_i64() {
        let lines = MONEY_MAX.checked_mul(ITEMS_MAX as i64).unwrap();
        assert!(lines.checked_add(MONEY_MAX).is_some());
        assert!(
            MONEY_MAX
                .checked_mul(PAYMENTS_MAX as i64)
                .unwrap()
                .checked_add(MONEY_MAX)
                .is_some()
        );
        // qty × unit_price is computed in i128 before it is bounded.
        assert!(i128::from(QTY_MAX) * i128::from(MONEY_MAX) < i128::from(i64::MAX) * 1000);
        assert_eq!(char_len("ção"), 3);
    }
}
