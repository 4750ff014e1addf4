//! The status page's language: one Fluent catalogue per language
//! (`i18n/pt-BR.ftl`, `i18n/en.ftl`, embedded), Brazilian Portuguese by
//! default, English with `?lang=en`. The page template names its words as
//! `{{id}}` (filled here, escaped); the words its script writes travel as
//! one JSON object of templates, each argument left as `{name}` for the
//! script to fill (dates dd/mm/aaaa, money from integer centavos: the
//! script's `fmtDate` and `brl`).
//!
//! Only text: no I/O, no knowledge of the report.

use std::sync::OnceLock;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use unic_langid::LanguageIdentifier;

const PT_BR: &str = include_str!("i18n/pt-BR.ftl");
const EN: &str = include_str!("i18n/en.ftl");

/// The page's languages.
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

    /// `?lang=`: `en…` is English; anything else (or nothing) the default.
    pub fn from_query(lang: Option<&str>) -> Lang {
        match lang.map(|l| l.trim().to_ascii_lowercase()) {
            Some(l) if l == "en" || l.starts_with("en-") || l.starts_with("en_") => Lang::En,
            _ => Lang::PtBr,
        }
    }

    fn source(self) -> &'static str {
        match self {
            Lang::PtBr => PT_BR,
            Lang::En => EN,
        }
    }
}

struct Catalogue {
    bundle: FluentBundle<FluentResource>,
    /// Message ids in file order.
    ids: Vec<String>,
}

/// The ids of a catalogue: every line `id = …` (messages start a line).
fn ids_of(source: &str) -> Vec<String> {
    source
        .lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_lowercase()))
        .filter_map(|l| l.split_once(" =").map(|(id, _)| id.trim().to_owned()))
        .collect()
}

fn catalogue(lang: Lang) -> &'static Catalogue {
    static PT: OnceLock<Catalogue> = OnceLock::new();
    static ENG: OnceLock<Catalogue> = OnceLock::new();
    let cell = match lang {
        Lang::PtBr => &PT,
        Lang::En => &ENG,
    };
    cell.get_or_init(|| {
        let id: LanguageIdentifier = lang.code().parse().unwrap_or_default();
        let mut bundle = FluentBundle::new_concurrent(vec![id]);
        // No Unicode isolation marks: the script replaces `{name}` in them.
        bundle.set_use_isolating(false);
        // A catalogue with a syntax error keeps what it could read (the
        // unit tests refuse any error).
        let res = FluentResource::try_new(lang.source().to_owned()).unwrap_or_else(|(res, _)| res);
        let _ = bundle.add_resource(res);
        Catalogue {
            bundle,
            ids: ids_of(lang.source()),
        }
    })
}

/// The names of a message's arguments (`{ $name }`), in order.
fn arg_names(source: &str, id: &str) -> Vec<String> {
    let Some(line) = source
        .lines()
        .find(|l| l.split_once(" =").is_some_and(|(i, _)| i.trim() == id))
    else {
        return Vec::new();
    };
    line.split("{ $")
        .skip(1)
        .filter_map(|p| p.split_once(' ').map(|(name, _)| name.to_owned()))
        .collect()
}

/// Message `id` with each argument left as `{name}` (the id itself when
/// the catalogue lacks it).
pub fn template(lang: Lang, id: &str) -> String {
    let c = catalogue(lang);
    let Some(pattern) = c.bundle.get_message(id).and_then(|m| m.value()) else {
        return id.to_owned();
    };
    let mut args = FluentArgs::new();
    for name in arg_names(lang.source(), id) {
        let placeholder = format!("{{{name}}}");
        args.set(name, FluentValue::from(placeholder));
    }
    let mut errors = Vec::new();
    c.bundle
        .format_pattern(pattern, Some(&args), &mut errors)
        .into_owned()
}

/// Every message of `lang` as one JSON object id → template, for the
/// page's script.
pub fn messages_json(lang: Lang) -> String {
    let map: serde_json::Map<String, serde_json::Value> = catalogue(lang)
        .ids
        .iter()
        .map(|id| (id.clone(), serde_json::Value::from(template(lang, id))))
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// The status page in `lang`: its words filled in, the script's
/// catalogue and the language switch in place; the report still to insert
/// (`__INITIAL__`). Built once per language.
pub fn page(template_html: &'static str, lang: Lang) -> &'static str {
    static PT: OnceLock<String> = OnceLock::new();
    static ENG: OnceLock<String> = OnceLock::new();
    let cell = match lang {
        Lang::PtBr => &PT,
        Lang::En => &ENG,
    };
    cell.get_or_init(|| {
        let (other, other_name) = match lang {
            Lang::PtBr => ("en", "English"),
            Lang::En => ("pt-BR", "Português"),
        };
        // `<` escaped so no message can close the script element.
        let messages = messages_json(lang).replace('<', "\\u003c");
        fill(template_html, lang)
            .replace("__LANG__", lang.code())
            .replace("__OTHER_LANG_NAME__", other_name)
            .replace("__OTHER_LANG__", other)
            .replace("__MESSAGES__", &messages)
    })
}

/// HTML-escapes text for element content and quoted attributes.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Fills the template's `{{id}}` words in `lang`, escaped.
pub fn fill(page: &str, lang: Lang) -> String {
    let mut out = String::with_capacity(page.len() + page.len() / 4);
    let mut rest = page;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                out.push_str(&esc(&template(lang, &after[..end])));
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const PAGE: &str = include_str!("status_page.html");

    #[test]
    fn both_catalogues_parse_and_have_the_same_ids() {
        for src in [PT_BR, EN] {
            if let Err((_, errors)) = FluentResource::try_new(src.to_owned()) {
                panic!("catalogue does not parse: {errors:?}");
            }
        }
        let pt: BTreeSet<_> = ids_of(PT_BR).into_iter().collect();
        let en: BTreeSet<_> = ids_of(EN).into_iter().collect();
        assert!(pt.len() > 30);
        assert_eq!(pt, en);
    }

    #[test]
    fn every_id_the_page_uses_is_in_the_catalogue() {
        let pt: BTreeSet<_> = ids_of(PT_BR).into_iter().collect();
        let mut used = BTreeSet::new();
        // `{{id}}` in the markup, `msg("id"` in the script.
        for part in PAGE.split("{{").skip(1) {
            if let Some((id, _)) = part.split_once("}}") {
                used.insert(id.to_owned());
            }
        }
        for part in PAGE.split("msg(\"").skip(1) {
            if let Some((id, _)) = part.split_once('"') {
                used.insert(id.to_owned());
            }
        }
        assert!(used.len() > 20, "{used:?}");
        // Ids the script builds: a prefix in the scan, each one checked.
        used.retain(|id| !id.ends_with('-'));
        for outcome in ["ok", "failed", "disabled", "held", "never", "running"] {
            used.insert(format!("outcome-{outcome}"));
        }
        for id in [
            "integration-on",
            "integration-off",
            "switch-on",
            "switch-off",
            "check-cash-close",
            "check-reducao-z",
        ] {
            used.insert(id.to_owned());
        }
        let missing: Vec<_> = used.difference(&pt).collect();
        assert!(missing.is_empty(), "not in the catalogue: {missing:?}");
    }

    #[test]
    fn templates_keep_their_arguments_for_the_script() {
        assert_eq!(template(Lang::PtBr, "when-ago"), "{when} (há {age})");
        assert_eq!(template(Lang::En, "check-short"), "short {amount}");
        assert_eq!(template(Lang::PtBr, "section-jobs"), "Tarefas");
        assert_eq!(Lang::from_query(None), Lang::PtBr);
        assert_eq!(Lang::from_query(Some("en")), Lang::En);
        assert_eq!(Lang::from_query(Some("pt-BR")), Lang::PtBr);
        let filled = fill("<h2>{{section-jobs}}</h2>{{nope}}", Lang::En);
        assert_eq!(filled, "<h2>Jobs</h2>nope");
        let json: serde_json::Value = serde_json::from_str(&messages_json(Lang::PtBr)).unwrap();
        assert_eq!(json["check-over"], "sobra {amount}");
    }
}
