//! The console's language: one Fluent catalogue per language, embedded
//! (`i18n/pt-BR.ftl`, `i18n/en.ftl`), Brazilian Portuguese by default; and
//! the formatters of what the pages show (money from integer centavos,
//! dates, quantities in thousandths) in that language's conventions.

use std::sync::OnceLock;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use time::{OffsetDateTime, UtcOffset};
use unic_langid::LanguageIdentifier;

const PT_BR: &str = include_str!("i18n/pt-BR.ftl");
const EN: &str = include_str!("i18n/en.ftl");

/// The console's languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    PtBr,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::PtBr => "pt-BR",
            Lang::En => "en",
        }
    }

    /// `pt-BR`, `pt`, `en`, `en-US`…: the language it names, if the console has it.
    pub fn parse(tag: &str) -> Option<Lang> {
        let tag = tag.trim().to_ascii_lowercase();
        let primary = tag.split(['-', '_']).next().unwrap_or("");
        match primary {
            "pt" => Some(Lang::PtBr),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The language of an `Accept-Language` header: the preferred (highest
    /// q, then first) of the tags the console has.
    pub fn from_accept_language(header: &str) -> Option<Lang> {
        let mut best: Option<(f32, Lang)> = None;
        for part in header.split(',') {
            let mut it = part.split(';');
            let Some(lang) = it.next().and_then(Lang::parse) else {
                continue;
            };
            let q = it
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
        best.map(|(_, l)| l)
    }
}

struct Catalogues {
    pt_br: FluentBundle<FluentResource>,
    en: FluentBundle<FluentResource>,
}

fn bundle(tag: &str, source: &'static str) -> FluentBundle<FluentResource> {
    let id: LanguageIdentifier = tag.parse().unwrap_or_default();
    let mut b = FluentBundle::new_concurrent(vec![id]);
    // No Unicode isolation marks around arguments: they end up in HTML
    // attributes and in text the tests read.
    b.set_use_isolating(false);
    // A catalogue with a syntax error keeps the messages it could read
    // (the unit tests refuse any error).
    let res = FluentResource::try_new(source.to_owned()).unwrap_or_else(|(res, _)| res);
    let _ = b.add_resource(res);
    b
}

fn catalogues() -> &'static Catalogues {
    static C: OnceLock<Catalogues> = OnceLock::new();
    C.get_or_init(|| Catalogues {
        pt_br: bundle("pt-BR", PT_BR),
        en: bundle("en", EN),
    })
}

/// Message `id` in `lang`, with `args` (each already formatted); the id
/// itself when the catalogue lacks it (the parity test keeps both whole).
pub fn t(lang: Lang, id: &str, args: &[(&str, &str)]) -> String {
    let c = catalogues();
    let b = match lang {
        Lang::PtBr => &c.pt_br,
        Lang::En => &c.en,
    };
    let Some(pattern) = b.get_message(id).and_then(|m| m.value()) else {
        return id.to_owned();
    };
    let mut fa = FluentArgs::new();
    for (k, v) in args {
        fa.set(*k, FluentValue::from(*v));
    }
    let mut errors = Vec::new();
    b.format_pattern(pattern, (!args.is_empty()).then_some(&fa), &mut errors)
        .into_owned()
}

/// Groups the digits of `n` by thousands with `sep`.
fn grouped(n: u64, sep: char) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(sep);
        }
        out.push(ch);
    }
    out
}

/// The language's thousands and decimal separators.
fn separators(lang: Lang) -> (char, char) {
    match lang {
        Lang::PtBr => ('.', ','),
        Lang::En => (',', '.'),
    }
}

/// Integer centavos as money: `R$ 1.234,56` (pt-BR), `R$ 1,234.56` (en);
/// a negative amount `-R$ 1,50`.
pub fn money(lang: Lang, centavos: i64) -> String {
    let (thousands, decimal) = separators(lang);
    let abs = centavos.unsigned_abs();
    let sign = if centavos < 0 { "-" } else { "" };
    format!(
        "{sign}R$ {}{decimal}{:02}",
        grouped(abs / 100, thousands),
        abs % 100
    )
}

/// A quantity in thousandths: `1,5` / `1.5`, `12` (no trailing zeros),
/// `1.234,567`.
pub fn qty(lang: Lang, thousandths: i64) -> String {
    let (thousands, decimal) = separators(lang);
    let abs = thousandths.unsigned_abs();
    let sign = if thousandths < 0 { "-" } else { "" };
    let whole = grouped(abs / 1000, thousands);
    let frac = abs % 1000;
    if frac == 0 {
        return format!("{sign}{whole}");
    }
    let frac = format!("{frac:03}");
    format!("{sign}{whole}{decimal}{}", frac.trim_end_matches('0'))
}

/// A count grouped by thousands: `12.345` / `12,345`.
pub fn count(lang: Lang, n: u64) -> String {
    grouped(n, separators(lang).0)
}

/// A size in bytes: `512 B`, `1,5 KB`, `12,3 MB` (one decimal, the
/// language's separator; 1 KB = 1024 B).
pub fn bytes(lang: Lang, n: u64) -> String {
    let (thousands, decimal) = separators(lang);
    let units = ["KB", "MB", "GB", "TB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut unit = 0;
    // Tenths of the unit, in integers.
    let mut tenths = n * 10 / 1024;
    while tenths >= 10 * 1024 && unit + 1 < units.len() {
        tenths /= 1024;
        unit += 1;
    }
    format!(
        "{}{decimal}{} {}",
        grouped(tenths / 10, thousands),
        tenths % 10,
        units[unit]
    )
}

/// Brasília time (UTC−3, no daylight saving since 2019): the chain's
/// support team reads the central's UTC times in it.
fn brasilia() -> UtcOffset {
    UtcOffset::from_hms(-3, 0, 0).unwrap_or(UtcOffset::UTC)
}

/// A moment as `dd/mm/aaaa hh:mm` (pt-BR) or `yyyy-mm-dd hh:mm` (en), in
/// Brasília time.
pub fn date_time(lang: Lang, t: OffsetDateTime) -> String {
    let t = t.to_offset(brasilia());
    let (y, m, d) = (t.year(), u8::from(t.month()), t.day());
    let (h, min) = (t.hour(), t.minute());
    match lang {
        Lang::PtBr => format!("{d:02}/{m:02}/{y:04} {h:02}:{min:02}"),
        Lang::En => format!("{y:04}-{m:02}-{d:02} {h:02}:{min:02}"),
    }
}

/// [`date_time`] of unix seconds.
pub fn date_time_unix(lang: Lang, unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .map(|t| date_time(lang, t))
        .unwrap_or_default()
}

/// [`date_time`] of an RFC 3339 text; the text itself when it is not one.
pub fn date_time_text(lang: Lang, rfc3339: &str) -> String {
    match loja_protocol::time::parse(rfc3339) {
        Some(t) => date_time(lang, t),
        None => rfc3339.to_owned(),
    }
}

/// How long ago, from seconds: `3 min`, `5 h`, `2 d` (the catalogue's units).
pub fn age(lang: Lang, seconds: i64) -> String {
    let s = seconds.max(0);
    let (n, id) = if s < 3_600 {
        (s / 60, "unit-minutes")
    } else if s < 2 * 86_400 {
        (s / 3_600, "unit-hours")
    } else {
        (s / 86_400, "unit-days")
    };
    t(lang, id, &[("n", &n.to_string())])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn ids(source: &str) -> BTreeSet<String> {
        let res = match FluentResource::try_new(source.to_owned()) {
            Ok(r) => r,
            Err((_, errors)) => panic!("catalogue does not parse: {errors:?}"),
        };
        drop(res);
        // A message starts a line: `id = …`.
        source
            .lines()
            .filter(|l| l.starts_with(|c: char| c.is_ascii_lowercase()))
            .filter_map(|l| l.split_once(" =").map(|(id, _)| id.trim().to_owned()))
            .collect()
    }

    #[test]
    fn both_catalogues_parse_and_have_the_same_message_ids() {
        let pt = ids(PT_BR);
        let en = ids(EN);
        assert!(pt.len() > 20, "{pt:?}");
        let only_pt: Vec<_> = pt.difference(&en).collect();
        let only_en: Vec<_> = en.difference(&pt).collect();
        assert!(
            only_pt.is_empty() && only_en.is_empty(),
            "only in pt-BR.ftl: {only_pt:?}; only in en.ftl: {only_en:?}"
        );
    }

    #[test]
    fn every_message_id_the_code_uses_is_in_the_catalogue() {
        let pt = ids(PT_BR);
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/console");
        let mut missing = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let src = std::fs::read_to_string(&path).unwrap();
            // Message ids are quoted kebab-case with a known prefix.
            for part in src.split('"').skip(1).step_by(2) {
                let known = [
                    "nav-",
                    "stores-",
                    "store-",
                    "docs-",
                    "orders-",
                    "order-",
                    "switch-",
                    "audit-",
                    "login-",
                    "err-",
                    "unit-",
                    "status-",
                    "action-",
                    "picking-",
                    "common-",
                    "rollout-",
                    "users-",
                    "user-",
                    "integration-",
                ];
                if known.iter().any(|k| part.starts_with(k))
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c == '-' || c.is_ascii_digit())
                    && !part.ends_with('-')
                    && !pt.contains(part)
                {
                    missing.push(format!("{}: {part}", path.display()));
                }
            }
        }
        assert!(missing.is_empty(), "not in the catalogue: {missing:?}");
    }

    #[test]
    fn money_from_centavos() {
        assert_eq!(money(Lang::PtBr, 123_456), "R$ 1.234,56");
        assert_eq!(money(Lang::PtBr, 5), "R$ 0,05");
        assert_eq!(money(Lang::PtBr, 0), "R$ 0,00");
        assert_eq!(money(Lang::PtBr, -150), "-R$ 1,50");
        assert_eq!(money(Lang::PtBr, 12_345_678_900), "R$ 123.456.789,00");
        assert_eq!(money(Lang::En, 123_456), "R$ 1,234.56");
        assert_eq!(money(Lang::PtBr, i64::MIN), "-R$ 92.233.720.368.547.758,08");
    }

    #[test]
    fn sizes_and_counts() {
        assert_eq!(bytes(Lang::PtBr, 512), "512 B");
        assert_eq!(bytes(Lang::PtBr, 1536), "1,5 KB");
        assert_eq!(bytes(Lang::En, 1536), "1.5 KB");
        assert_eq!(bytes(Lang::PtBr, 5 * 1024 * 1024 + 1024 * 300), "5,2 MB");
        assert_eq!(count(Lang::PtBr, 1_234_567), "1.234.567");
        assert_eq!(count(Lang::En, 1_234), "1,234");
    }

    #[test]
    fn quantities_in_thousandths() {
        assert_eq!(qty(Lang::PtBr, 1_500), "1,5");
        assert_eq!(qty(Lang::PtBr, 12_000), "12");
        assert_eq!(qty(Lang::PtBr, 1_234_567), "1.234,567");
        assert_eq!(qty(Lang::En, 1_050), "1.05");
        assert_eq!(qty(Lang::PtBr, -2_000), "-2");
    }

    #[test]
    fn dates_in_brasilia_time() {
        // 2026-03-01T02:30:00Z is 28/02 23:30 in Brasília.
        let t = loja_protocol::time::parse("2026-03-01T02:30:00Z").unwrap();
        assert_eq!(date_time(Lang::PtBr, t), "28/02/2026 23:30");
        assert_eq!(date_time(Lang::En, t), "2026-02-28 23:30");
        assert_eq!(date_time_text(Lang::PtBr, "not a date"), "not a date");
        assert_eq!(date_time_unix(Lang::PtBr, 0), "31/12/1969 21:00");
    }

    #[test]
    fn language_from_tags_and_accept_language() {
        assert_eq!(Lang::parse("pt-BR"), Some(Lang::PtBr));
        assert_eq!(Lang::parse("EN_us"), Some(Lang::En));
        assert_eq!(Lang::parse("fr"), None);
        assert_eq!(
            Lang::from_accept_language("en-US,en;q=0.9,pt-BR;q=0.8"),
            Some(Lang::En)
        );
        assert_eq!(
            Lang::from_accept_language("fr, pt-BR;q=0.9, en;q=0.5"),
            Some(Lang::PtBr)
        );
        assert_eq!(Lang::from_accept_language("de, fr;q=0.5"), None);
        assert_eq!(Lang::from_accept_language("en;q=0, pt"), Some(Lang::PtBr));
    }

    #[test]
    fn messages_take_their_arguments() {
        assert_eq!(age(Lang::PtBr, 300), "5 min");
        assert_eq!(age(Lang::En, 3 * 86_400), "3 d");
        assert_eq!(t(Lang::PtBr, "no-such-id", &[]), "no-such-id");
    }
}
