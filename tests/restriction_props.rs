//! Property tests of the restriction language: generated restrictions, written in
//! varied but equivalent ways, parse to the same set; the canonical form reads
//! back as itself; `can_see` agrees with a naive evaluator; two different
//! restrictions never print alike; any text parses or fails without panicking.

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::sample::select;
use structure_access::restriction::Item;
use structure_access::{DeviceRecord, Limits, Restriction, RestrictionError, TagFilter};

/// The application of every key and device here.
const APP: &str = "app1";

/// An entry as the test understands it; `None` is a wildcard (never both).
#[derive(Debug, Clone)]
enum Entry {
    Id(String),
    Tag(Option<String>, Option<String>),
}

/// How an entry is written: the ways the grammar allows for the same meaning.
#[derive(Debug, Clone)]
struct Style {
    before: &'static str,
    around_eq: (&'static str, &'static str),
    after: &'static str,
    star_key: bool,
    star_value: bool,
    quote: bool,
}

fn ws() -> impl Strategy<Value = &'static str> {
    select(&["", "", " ", "\t", "\r\n", "  \n "][..])
}

fn style() -> impl Strategy<Value = Style> {
    (
        ws(),
        ws(),
        ws(),
        ws(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(before, l, r, after, star_key, star_value, quote)| Style {
            before,
            around_eq: (l, r),
            after,
            star_key,
            star_value,
            quote,
        })
}

fn device_id() -> impl Strategy<Value = String> {
    prop_oneof![
        select(&["a", "b", "d1", "5f2b8c1e9a4d3b7c6e1f0a2b", "ns:dev.1", "A"][..])
            .prop_map(String::from),
        "[A-Za-z0-9_.:-]{1,12}",
    ]
}

fn tag_key() -> impl Strategy<Value = String> {
    prop_oneof![
        select(&["vehicle", "color", "k", "K", "floor", "1"][..]).prop_map(String::from),
        "[A-Za-z0-9_-]{1,10}",
    ]
}

fn tag_value() -> impl Strategy<Value = String> {
    prop_oneof![
        select(
            &[
                "truck",
                "Truck",
                "red",
                "*",
                "*x",
                "a,b",
                "x=y",
                "say \"hi\"",
                r"back\slash",
                r#"\""#,
                " lead",
                "trail ",
                " both ",
                "\u{a0}nbsp",
                "nbsp\u{2003}",
                "café ☕",
                "Building 4, West",
            ][..]
        )
        .prop_map(String::from),
        "[ a-z,=\"\\\\*é\u{a0}\u{2003}☕]{1,8}",
        // Any visible text: no control or format character (C), no line or
        // paragraph separator (Zl, Zp).
        "[^\\p{C}\\p{Zl}\\p{Zp}]{1,8}",
    ]
}

fn entry() -> impl Strategy<Value = Entry> {
    prop_oneof![
        device_id().prop_map(Entry::Id),
        (tag_key(), tag_value()).prop_map(|(k, v)| Entry::Tag(Some(k), Some(v))),
        tag_key().prop_map(|k| Entry::Tag(Some(k), None)),
        tag_value().prop_map(|v| Entry::Tag(None, Some(v))),
    ]
}

fn entries() -> impl Strategy<Value = Vec<(Entry, Style)>> {
    prop::collection::vec((entry(), style()), 1..16)
}

/// Whether the bare form of `value` would not read back as `value`.
fn must_quote(value: &str) -> bool {
    value == "*"
        || value.contains([',', '=', '"'])
        || value.starts_with([' ', '\t', '\r', '\n'])
        || value.ends_with([' ', '\t', '\r', '\n'])
}

fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Writes the entries as text, each in its style.
fn render(entries: &[(Entry, Style)]) -> String {
    let written: Vec<String> = entries
        .iter()
        .map(|(entry, s)| {
            let body = match entry {
                Entry::Id(id) => id.clone(),
                Entry::Tag(key, value) => {
                    let key = key.clone().unwrap_or_else(|| {
                        if s.star_key {
                            "*".into()
                        } else {
                            String::new()
                        }
                    });
                    let value = match value {
                        None if s.star_value => "*".into(),
                        None => String::new(),
                        Some(v) if s.quote || must_quote(v) => quoted(v),
                        Some(v) => v.clone(),
                    };
                    format!("{key}{}={}{value}", s.around_eq.0, s.around_eq.1)
                }
            };
            format!("{}{body}{}", s.before, s.after)
        })
        .collect();
    written.join(",")
}

type Sets = (BTreeSet<String>, BTreeSet<(Option<String>, Option<String>)>);

/// What the entries mean, computed without the library.
fn sets(entries: &[(Entry, Style)]) -> Sets {
    let mut ids = BTreeSet::new();
    let mut patterns = BTreeSet::new();
    for (entry, _) in entries {
        match entry {
            Entry::Id(id) => {
                ids.insert(id.clone());
            }
            Entry::Tag(k, v) => {
                patterns.insert((k.clone(), v.clone()));
            }
        }
    }
    (ids, patterns)
}

fn sets_of(r: &Restriction) -> Sets {
    (
        r.device_ids().map(String::from).collect(),
        r.tag_patterns()
            .iter()
            .map(|p| (p.key().map(String::from), p.value().map(String::from)))
            .collect(),
    )
}

/// The naive reference: a linear scan of the sets.
fn naive_can_see((ids, patterns): &Sets, id: &str, tags: &[(String, String)]) -> bool {
    ids.contains(id)
        || tags.iter().any(|(tk, tv)| {
            patterns.iter().any(|(k, v)| {
                k.as_ref().is_none_or(|k| k == tk) && v.as_ref().is_none_or(|v| v == tv)
            })
        })
}

fn device() -> impl Strategy<Value = (String, Vec<(String, String)>)> {
    (
        device_id(),
        prop::collection::vec((tag_key(), tag_value()), 0..6),
    )
}

fn from_parts(entries: &[(Entry, Style)]) -> Restriction {
    let ids = entries.iter().filter_map(|(e, _)| match e {
        Entry::Id(id) => Some(id.as_str()),
        Entry::Tag(..) => None,
    });
    let filters = entries.iter().filter_map(|(e, _)| match e {
        Entry::Id(_) => None,
        Entry::Tag(k, v) => Some(TagFilter::new(k.as_deref(), v.as_deref())),
    });
    Restriction::from_parts(ids, filters, &Limits::default()).expect("valid parts")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_way_of_writing_parses_to_the_same_set(entries in entries()) {
        let text = render(&entries);
        let r: Restriction = text.parse().map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        prop_assert_eq!(sets_of(&r), sets(&entries), "{:?}", text);
    }

    #[test]
    fn canonical_form_round_trips_and_is_a_fixed_point(entries in entries()) {
        let r: Restriction = render(&entries).parse().unwrap();
        let canonical = r.to_string();
        let again: Restriction = canonical.parse().map_err(|e| TestCaseError::fail(format!("{canonical:?}: {e}")))?;
        prop_assert_eq!(&again, &r);
        prop_assert_eq!(again.to_string(), canonical);
    }

    #[test]
    fn from_parts_agrees_with_the_text(entries in entries()) {
        let parsed: Restriction = render(&entries).parse().unwrap();
        prop_assert_eq!(from_parts(&entries), parsed);
    }

    #[test]
    fn can_see_agrees_with_a_naive_evaluator(
        entries in entries(),
        devices in prop::collection::vec(device(), 1..8),
    ) {
        let r: Restriction = render(&entries).parse().unwrap();
        let expected = sets(&entries);
        for (id, tags) in devices {
            let record = tags.iter().fold(
                DeviceRecord::new(APP.parse().unwrap(), id.parse().unwrap()),
                |d, (k, v)| d.with_tag(k, v),
            );
            prop_assert_eq!(r.can_see(&record), naive_can_see(&expected, &id, &tags), "{} vs {:?}", r, record);
        }
    }

    #[test]
    fn devices_built_from_the_restriction_are_seen(entries in entries()) {
        // Every listed ID and every exact pattern is a hit, not only random ones.
        let r: Restriction = render(&entries).parse().unwrap();
        for (entry, _) in &entries {
            let record = match entry {
                Entry::Id(id) => DeviceRecord::new(APP.parse().unwrap(), id.parse().unwrap()),
                Entry::Tag(k, v) => DeviceRecord::new(APP.parse().unwrap(), "zz-no-such-id".parse().unwrap())
                    .with_tag(k.as_deref().unwrap_or("any"), v.as_deref().unwrap_or("any")),
            };
            prop_assert!(r.can_see(&record), "{} vs {:?}", r, record);
        }
    }

    #[test]
    fn serde_round_trips_the_text_and_imports_the_platform_object(entries in entries()) {
        let r: Restriction = render(&entries).parse().unwrap();
        let json = serde_json::to_string(&r).unwrap();
        prop_assert_eq!(serde_json::from_str::<Restriction>(&json).unwrap(), r.clone());

        let (ids, patterns) = sets(&entries);
        let tags: Vec<serde_json::Value> = patterns
            .iter()
            .map(|(k, v)| serde_json::json!({ "key": k, "value": v }))
            .collect();
        let object = serde_json::json!({ "deviceIds": ids, "deviceTags": tags });
        prop_assert_eq!(serde_json::from_value::<Restriction>(object).unwrap(), r);
    }

    #[test]
    fn parsing_arbitrary_text_never_panics(text in ".{0,120}") {
        check_total(&text)?;
    }

    #[test]
    fn parsing_grammar_shaped_text_never_panics(
        text in "[a-c0-9*=, \t\r\n\"\\\\\u{1}\u{7f}\u{a0}é.:_-]{0,60}",
    ) {
        check_total(&text)?;
    }

    #[test]
    fn tiny_limits_fail_cleanly(entries in entries(), max in 0usize..4, bytes in 0usize..64) {
        let mut limits = Limits::default();
        limits.max_device_ids = max;
        limits.max_tag_patterns = max;
        limits.max_input_bytes = bytes;
        limits.max_tag_value_chars = max + 1;
        let text = render(&entries);
        if let Ok(r) = Restriction::parse_with_limits(&text, &limits) {
            prop_assert!(text.len() <= bytes);
            prop_assert!(r.device_ids().len() <= max && r.tag_patterns().len() <= max);
        }
    }
}

/// Parsing either fails with an offset inside the text, or yields a restriction
/// whose canonical form reads back as itself.
fn check_total(text: &str) -> Result<(), TestCaseError> {
    match text.parse::<Restriction>() {
        Ok(r) => {
            let canonical = r.to_string();
            let again = canonical.parse::<Restriction>();
            prop_assert_eq!(again.as_ref(), Ok(&r));
        }
        Err(e) => {
            let message = e.to_string();
            prop_assert!(!message.contains('\n'), "{}", message);
            let offset = e.offset();
            prop_assert!(
                offset.is_some_and(|o| o <= text.len()),
                "{:?} {}",
                offset,
                message
            );
            prop_assert!(
                message.contains(&format!("at byte {}", offset.unwrap_or(0))),
                "{}",
                message
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- look-alikes

/// Characters of values that print alike: invisible ones, kinds of white space,
/// and the characters the canonical form quotes or escapes.
const LOOKALIKES: &[char] = &[
    'a', ' ', '\u{a0}', '\t', '\u{200b}', '\u{200d}', '\u{202e}', '\u{2028}', '\u{feff}', '\u{ad}',
    '"', '\\', '*', ',', '=',
];

/// Whether `c` is one of [`LOOKALIKES`] that must never reach a restriction.
fn invisible(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200b}' | '\u{200d}' | '\u{202e}' | '\u{2028}' | '\u{feff}' | '\u{ad}'
        )
}

fn lookalike_entries() -> impl Strategy<Value = Vec<(&'static str, String)>> {
    prop::collection::vec(
        (
            select(&["k", "j"][..]),
            prop::collection::vec(select(LOOKALIKES), 1..4).prop_map(String::from_iter),
        ),
        1..3,
    )
}

fn build(entries: &[(&str, String)]) -> Result<Restriction, RestrictionError> {
    let filters = entries
        .iter()
        .map(|(k, v)| TagFilter::new(Some(k), Some(v.as_str())));
    Restriction::from_parts(Vec::<&str>::new(), filters, &Limits::default())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn display_is_injective(a in lookalike_entries(), b in lookalike_entries()) {
        for entries in [&a, &b] {
            match build(entries) {
                Ok(r) => {
                    prop_assert!(!entries.iter().any(|(_, v)| v.chars().any(invisible)));
                    let text = r.to_string();
                    prop_assert!(!text.chars().any(invisible), "{:?}", text);
                    prop_assert_eq!(&text.parse::<Restriction>().unwrap(), &r);
                }
                Err(e) => prop_assert!(
                    matches!(e, RestrictionError::InvalidCharacter { item: Item::TagValue, found, .. } if invisible(found)),
                    "{:?}: {}", entries, e
                ),
            }
        }
        if let (Ok(ra), Ok(rb)) = (build(&a), build(&b)) {
            prop_assert_eq!(ra.to_string() == rb.to_string(), ra == rb, "{} vs {}", ra, rb);
        }
        // The attack: the same entries with invisible characters dropped print
        // alike, so the original must have been refused (or had none).
        let visible: Vec<(&str, String)> = a
            .iter()
            .map(|(k, v)| (*k, v.chars().filter(|&c| !invisible(c)).collect()))
            .collect();
        if let (Ok(original), Ok(stripped)) = (build(&a), build(&visible)) {
            prop_assert_eq!(original, stripped);
        }
    }
}
