//! The restriction language through the public API: the platform's documented
//! examples, the text form, the canonical form, every error path, building from
//! parts and serde.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use structure_access::restriction::{Item, Location};
use structure_access::{Device, DeviceRecord, Limits, Restriction, RestrictionError, TagFilter};

/// The application of every key and device here.
const APP: &str = "app1";

const PLATFORM_ID: &str = "5f2b8c1e9a4d3b7c6e1f0a2b";

fn restriction(text: &str) -> Restriction {
    match text.parse() {
        Ok(r) => r,
        Err(e) => panic!("`{text}` should parse: {e}"),
    }
}

fn device(tags: &[(&str, &str)]) -> DeviceRecord {
    device_with_id(PLATFORM_ID, tags)
}

fn device_with_id(id: &str, tags: &[(&str, &str)]) -> DeviceRecord {
    tags.iter().fold(
        DeviceRecord::new(APP.parse().unwrap(), id.parse().expect("valid device ID")),
        |d, (k, v)| d.with_tag(k, v),
    )
}

/// Parses `text`, which must fail; returns the message and the offset.
fn error(text: &str) -> (String, Option<usize>) {
    error_with(text, &Limits::default())
}

fn error_with(text: &str, limits: &Limits) -> (String, Option<usize>) {
    match Restriction::parse_with_limits(text, limits) {
        Ok(r) => panic!("`{text}` should not parse, got `{r}`"),
        Err(e) => {
            let message = e.to_string();
            assert!(!message.contains('\n'), "one line: {message}");
            assert!(!message.ends_with('.'), "no trailing period: {message}");
            assert!(
                message.starts_with(|c: char| !c.is_uppercase()),
                "lowercase: {message}"
            );
            (message, e.offset())
        }
    }
}

fn hash_of<T: Hash>(value: &T) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

// ---------------------------------------------------------------------------
// The platform's documented examples.

#[test]
fn exact_tag_matches_only_that_key_and_value() {
    let r = restriction("vehicle=truck");
    assert!(r.can_see(&device(&[("vehicle", "truck")])));
    assert!(r.can_see(&device(&[("color", "red"), ("vehicle", "truck")])));
    assert!(!r.can_see(&device(&[("vehicle", "car")])));
    assert!(!r.can_see(&device(&[("kind", "truck")])));
    assert!(!r.can_see(&device(&[])));
    // Case-sensitive, no trimming of device data.
    assert!(!r.can_see(&device(&[("Vehicle", "truck")])));
    assert!(!r.can_see(&device(&[("vehicle", "Truck")])));
    assert!(!r.can_see(&device(&[("vehicle", "truck ")])));
}

#[test]
fn key_only_matches_any_value_of_that_key() {
    for text in ["vehicle=", "vehicle=*", "vehicle = * ", "vehicle ="] {
        let r = restriction(text);
        assert_eq!(r.to_string(), "vehicle=*", "{text}");
        assert!(r.can_see(&device(&[("vehicle", "truck")])));
        assert!(r.can_see(&device(&[("vehicle", "*")])));
        assert!(r.can_see(&device(&[("vehicle", "")])));
        assert!(!r.can_see(&device(&[("color", "truck")])));
        assert!(!r.can_see(&device(&[])));
    }
}

#[test]
fn value_only_matches_that_value_under_any_key() {
    for text in ["=truck", "*=truck", " * = truck", "=  truck  "] {
        let r = restriction(text);
        assert_eq!(r.to_string(), "*=truck", "{text}");
        assert!(r.can_see(&device(&[("vehicle", "truck")])));
        assert!(r.can_see(&device(&[("kind", "truck")])));
        assert!(!r.can_see(&device(&[("vehicle", "car")])));
        assert!(!r.can_see(&device(&[("truck", "vehicle")])));
    }
}

#[test]
fn a_list_is_a_union() {
    // "truck OR any color"
    let r = restriction("vehicle=truck,color=");
    assert!(r.can_see(&device(&[("vehicle", "truck")])));
    assert!(r.can_see(&device(&[("color", "blue")])));
    assert!(r.can_see(&device(&[("vehicle", "car"), ("color", "red")])));
    assert!(!r.can_see(&device(&[("vehicle", "car")])));
    assert!(!r.can_see(&device(&[])));
}

#[test]
fn tags_and_device_ids_mix() {
    // "red devices OR that ID"
    let r = restriction("color=red,1a2b3c4d5e6f7g8h9i0j1k2l");
    assert!(r.can_see(&device_with_id("1a2b3c4d5e6f7g8h9i0j1k2l", &[])));
    assert!(r.can_see(&device_with_id(
        "1a2b3c4d5e6f7g8h9i0j1k2l",
        &[("color", "blue")]
    )));
    assert!(r.can_see(&device(&[("color", "red")])));
    assert!(!r.can_see(&device(&[("color", "blue")])));
    assert!(!r.can_see(&device_with_id("1a2b3c4d5e6f7g8h9i0j1k2m", &[])));
    assert_eq!(r.to_string(), "1a2b3c4d5e6f7g8h9i0j1k2l,color=red");
}

#[test]
fn a_restriction_alone_is_application_free() {
    let r = restriction(PLATFORM_ID);
    for application in ["app1", "app2"] {
        let device = DeviceRecord::new(application.parse().unwrap(), PLATFORM_ID.parse().unwrap());
        assert!(r.can_see(&device), "{application}");
    }
}

/// A caller's own device row, borrowed: no copying.
struct Row<'a> {
    id: &'a str,
    tags: &'a [(String, String)],
}

impl Device for Row<'_> {
    fn application(&self) -> &str {
        APP
    }
    fn id(&self) -> &str {
        self.id
    }
    fn tags(&self) -> impl Iterator<Item = (&str, &str)> {
        self.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

#[test]
fn callers_devices_need_not_be_valid_device_ids() {
    let r = restriction("floor=\"4 West\"");
    let tags = vec![("floor".to_owned(), "4 West".to_owned())];
    assert!(r.can_see(&Row {
        id: "not a device id!",
        tags: &tags
    }));
    assert!(!r.can_see(&Row {
        id: "not a device id!",
        tags: &[]
    }));
    assert!(!restriction("a").can_see(&Row { id: "", tags: &[] }));
}

#[test]
fn lookups_and_iteration() {
    let r = restriction("b,a,k=v,=w,k=");
    assert_eq!(r.device_ids().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(r.device_ids().len(), 2);
    let patterns: Vec<_> = r
        .tag_patterns()
        .iter()
        .map(|p| (p.key(), p.value()))
        .collect();
    assert_eq!(
        patterns,
        [(None, Some("w")), (Some("k"), None), (Some("k"), Some("v"))]
    );
    assert!(r.contains_device_id("a"));
    assert!(!r.contains_device_id("c"));
    assert!(r.matches_tag("x", "w"));
    assert!(r.matches_tag("k", "anything"));
    assert!(!r.matches_tag("x", "v"));
    let p = &r.tag_patterns()[2];
    assert!(p.matches("k", "v") && !p.matches("k", "V"));
    assert_eq!(p.as_filter(), TagFilter::new(Some("k"), Some("v")));
}

// ---------------------------------------------------------------------------
// Text form and canonical form.

#[test]
fn white_space_around_entries_and_equals_is_ignored() {
    let r = restriction(" \t vehicle \r\n= truck ,\n 5f2b8c1e9a4d3b7c6e1f0a2b \n");
    assert_eq!(r.to_string(), "5f2b8c1e9a4d3b7c6e1f0a2b,vehicle=truck");
    // Inner white space is part of a bare value.
    let r = restriction("floor = Building 4 ");
    assert_eq!(r.tag_patterns()[0].value(), Some("Building 4"));
    assert_eq!(r.to_string(), "floor=Building 4");
}

#[test]
fn canonical_form_is_sorted_and_deduplicated() {
    let r = restriction("z,k=v,a,=v,k=*,a, k = v ,*=v,k=a,b.c:d");
    assert_eq!(r.to_string(), "a,b.c:d,z,*=v,k=*,k=a,k=v");
    assert_eq!(r.device_ids().len(), 3);
    assert_eq!(r.tag_patterns().len(), 4);
    assert_eq!(restriction(&r.to_string()), r);
}

#[test]
fn equality_and_hash_are_those_of_the_sets() {
    let a = restriction("a,b,k=v,=w");
    let b = restriction("*=w , k=v, b, a, a");
    assert_eq!(a, b);
    assert_eq!(hash_of(&a), hash_of(&b));
    assert_ne!(a, restriction("a,b,k=v"));
    // A pattern is not the same as a pattern it implies.
    assert_ne!(restriction("k=*"), restriction("k=*,k=v"));
    // A device ID and a key-only pattern with the same text differ.
    assert_ne!(restriction("abc"), restriction("abc="));
    // Clones are equal and see the same devices.
    let c = a.clone();
    assert_eq!(c, a);
    assert!(c.can_see(&device(&[("x", "w")])));
}

#[test]
fn values_are_quoted_only_when_needed() {
    let cases = [
        // (input, canonical)
        (r#"floor="Building 4, West""#, r#"floor="Building 4, West""#),
        (r#"eq="a=b""#, r#"eq="a=b""#),
        (r#"q="say \"hi\"""#, r#"q="say \"hi\"""#),
        (r#"star="*""#, r#"star="*""#),
        (r#"lead=" x""#, r#"lead=" x""#),
        (r#"trail="x ""#, r#"trail="x ""#),
        (r#"nbsp="\u{a0}x""#, r#"nbsp="\u{a0}x""#),
        (r#"plain="truck""#, "plain=truck"),
        (r#"back=a\b"#, r#"back=a\b"#),
        (r#"back="a\\b""#, r#"back=a\b"#),
        (r#"both="a\\,b""#, r#"both="a\\,b""#),
        ("uni=café ☕", "uni=café ☕"),
        ("star=*x", "star=*x"),
        ("star=x*", "star=x*"),
        ("digits=123", "digits=123"),
    ];
    for (input, canonical) in cases {
        let input = input.replace("\\u{a0}", "\u{a0}");
        let canonical = canonical.replace("\\u{a0}", "\u{a0}");
        let r = restriction(&input);
        assert_eq!(r.to_string(), canonical, "{input}");
        assert_eq!(restriction(&canonical), r, "{input}");
    }
    assert_eq!(
        restriction(r#"q="say \"hi\"""#).tag_patterns()[0].value(),
        Some(r#"say "hi""#)
    );
    assert_eq!(
        restriction(r#"back="a\\b""#).tag_patterns()[0].value(),
        Some(r"a\b")
    );
    assert_eq!(
        restriction(r#"lead=" x""#).tag_patterns()[0].value(),
        Some(" x")
    );
}

#[test]
fn a_quoted_star_is_a_value_not_a_wildcard() {
    let literal = restriction(r#"k="*""#);
    assert!(literal.can_see(&device(&[("k", "*")])));
    assert!(!literal.can_see(&device(&[("k", "v")])));
    assert_ne!(literal, restriction("k=*"));
    let any_key = restriction(r#"="*""#);
    assert_eq!(any_key.to_string(), r#"*="*""#);
}

#[test]
fn keys_and_device_ids_share_an_alphabet_but_not_a_meaning() {
    let r = restriction("123=456,_-a-=b_,123");
    assert_eq!(r.to_string(), "123,123=456,_-a-=b_");
    assert!(r.can_see(&device(&[("123", "456")])));
    assert!(r.can_see(&device_with_id("123", &[])));
}

#[test]
fn patterns_display_alone() {
    let r = restriction(r#"=truck,vehicle=,floor="4, West""#);
    let shown: Vec<String> = r.tag_patterns().iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["*=truck", r#"floor="4, West""#, "vehicle=*"]);
}

// ---------------------------------------------------------------------------
// Malformed text: message and offset.

#[test]
fn empty_restrictions_are_refused() {
    assert_eq!(
        error(""),
        (
            "expected a device ID or a tag pattern at byte 0, found an empty restriction".into(),
            Some(0)
        )
    );
    assert_eq!(
        error(" \t\r\n"),
        (
            "expected a device ID or a tag pattern at byte 4, found an empty restriction".into(),
            Some(4)
        )
    );
    assert!(matches!(
        "".parse::<Restriction>(),
        Err(RestrictionError::Empty {
            at: Location::Byte(0)
        })
    ));
}

#[test]
fn patterns_matching_everything_are_refused() {
    for (text, written, offset) in [
        ("=", "=", 0),
        ("*=*", "*=*", 0),
        ("=*", "=*", 0),
        ("*=", "*=", 0),
        ("a, * = * ,b", "* = *", 3),
        ("k=v,=", "=", 4),
    ] {
        assert_eq!(
            error(text),
            (
                format!(
                    "tag pattern `{written}` at byte {offset} matches every tag, expected a tag key, a tag value or both"
                ),
                Some(offset)
            ),
            "{text}"
        );
    }
}

#[test]
fn missing_entries_are_refused() {
    assert_eq!(
        error("a,"),
        (
            "expected a device ID or a tag pattern at byte 2, found the end of the input".into(),
            Some(2)
        )
    );
    assert_eq!(
        error("a, "),
        (
            "expected a device ID or a tag pattern at byte 3, found the end of the input".into(),
            Some(3)
        )
    );
    assert_eq!(
        error(",a"),
        (
            "expected a device ID or a tag pattern at byte 0, found `,`".into(),
            Some(0)
        )
    );
    assert_eq!(
        error("a,,b"),
        (
            "expected a device ID or a tag pattern at byte 2, found `,`".into(),
            Some(2)
        )
    );
    assert_eq!(
        error("a,\"b\""),
        (
            "expected a device ID or a tag pattern at byte 2, found `\"b\"`".into(),
            Some(2)
        )
    );
    assert_eq!(
        error("a,é"),
        (
            "expected a device ID or a tag pattern at byte 2, found `é`".into(),
            Some(2)
        )
    );
    assert_eq!(
        error("a,\u{1}b"),
        (
            "expected a device ID or a tag pattern at byte 2, found `\\u{1}b`".into(),
            Some(2)
        )
    );
}

#[test]
fn missing_values_are_refused() {
    assert_eq!(
        error("vehicle=truck,color==red"),
        (
            "expected a tag value or `*` after `=` at byte 20, found `=red`".into(),
            Some(20)
        )
    );
    assert_eq!(
        error("vehicle= =truck"),
        (
            "expected a tag value or `*` after `=` at byte 9, found `=truck`".into(),
            Some(9)
        )
    );
}

#[test]
fn stray_text_after_an_entry_is_refused() {
    assert_eq!(
        error("a b"),
        (
            "expected `,`, `=` or the end of the input after a device ID at byte 2, found `b`"
                .into(),
            Some(2)
        )
    );
    assert_eq!(
        error("abc#,d"),
        (
            "expected `,`, `=` or the end of the input after a device ID at byte 3, found `#`"
                .into(),
            Some(3)
        )
    );
    assert_eq!(
        error("a=b=c"),
        (
            "expected `,` or the end of the input after a tag pattern at byte 3, found `=c`".into(),
            Some(3)
        )
    );
    assert_eq!(
        error(r#"k="v" w,x"#),
        (
            "expected `,` or the end of the input after a tag pattern at byte 6, found `w`".into(),
            Some(6)
        )
    );
    assert_eq!(
        error(r#"k=ab"c""#),
        (
            "expected `,` or the end of the input after a tag pattern at byte 4, found `\"c\"`"
                .into(),
            Some(4)
        )
    );
    assert_eq!(
        error("*x=1"),
        (
            "expected `=` after `*` at byte 1, found `x=1`".into(),
            Some(1)
        )
    );
    assert_eq!(
        error("* "),
        (
            "expected `=` after `*` at byte 2, found the end of the input".into(),
            Some(2)
        )
    );
}

#[test]
fn malformed_quoted_values_are_refused() {
    assert_eq!(
        error(r#"vehicle=truck,color="red"#),
        (
            "expected a closing `\"` at byte 24, found the end of the input".into(),
            Some(24)
        )
    );
    assert_eq!(
        error(r#"k="a\xb""#),
        (
            "expected `\\\"` or `\\\\` after `\\` in a quoted tag value at byte 4, found `\\xb\"`"
                .into(),
            Some(4)
        )
    );
    assert_eq!(
        error(r#"k="a\"#),
        (
            "expected `\\\"` or `\\\\` after `\\` in a quoted tag value at byte 4, found `\\`"
                .into(),
            Some(4)
        )
    );
    assert_eq!(
        error(r#"k="""#),
        (
            "expected 1 to 255 characters between the quotes at byte 2, found `\"\"`".into(),
            Some(2)
        )
    );
}

#[test]
fn control_characters_are_refused_in_values() {
    assert_eq!(
        error("k=a\u{1}b"),
        (
            "unexpected character `\\u{1}` in tag value `a\\u{1}b` at byte 3, expected a visible character (not a control, format, line or paragraph separator character)".into(),
            Some(3)
        )
    );
    assert_eq!(
        error("k=a\tb"),
        (
            "unexpected character `\\t` in tag value `a\\tb` at byte 3, expected a visible character (not a control, format, line or paragraph separator character)".into(),
            Some(3)
        )
    );
    assert_eq!(
        error("k=\u{7f}"),
        (
            "unexpected character `\\u{7f}` in tag value `\\u{7f}` at byte 2, expected a visible character (not a control, format, line or paragraph separator character)".into(),
            Some(2)
        )
    );
    assert_eq!(
        error("k=\"a\nb\""),
        (
            "unexpected character `\\n` in tag value `\"a\\n` at byte 4, expected a visible character (not a control, format, line or paragraph separator character)".into(),
            Some(4)
        )
    );
    assert_eq!(
        error("k=é\u{85}"),
        (
            "unexpected character `\\u{85}` in tag value `é\\u{85}` at byte 4, expected a visible character (not a control, format, line or paragraph separator character)".into(),
            Some(4)
        )
    );
    // White space controls around a value are separators, not part of it.
    assert_eq!(restriction("k=a\t,\r\nj=b\n").to_string(), "j=b,k=a");
}

#[test]
fn invisible_characters_are_refused_in_values() {
    const EXPECTED: &str = "expected a visible character (not a control, format, line or paragraph separator character)";
    // `vehicle=truck` and `vehicle=truck` + U+200B would print alike, yet only the
    // first one sees a truck.
    assert_eq!(
        error("vehicle=truck\u{200b}"),
        (
            format!(
                "unexpected character `\\u{{200b}}` in tag value `truck\\u{{200b}}` at byte 13, {EXPECTED}"
            ),
            Some(13)
        )
    );
    assert_eq!(
        error("k=\"a\u{2028}b\""),
        (
            format!(
                "unexpected character `\\u{{2028}}` in tag value `\"a\\u{{2028}}` at byte 4, {EXPECTED}"
            ),
            Some(4)
        )
    );
    for (text, offset) in [
        ("k=\u{feff}v", 2),      // byte order mark
        ("k=a\u{202e}b", 3),     // right-to-left override
        ("k=\"a\u{2066}b\"", 4), // left-to-right isolate, quoted
        ("=a\u{ad}b", 2),        // soft hyphen
        ("k=a\u{2029}", 3),      // paragraph separator
        ("k=\u{e0041}", 2),      // tag character
        ("k=a \u{200d} b", 4),   // zero-width joiner between spaces
    ] {
        let (message, at) = error(text);
        assert_eq!(at, Some(offset), "{text:?}: {message}");
        assert!(message.ends_with(EXPECTED), "{message}");
        let invisible = text[offset..].chars().next().unwrap();
        assert!(!message.contains(invisible), "escaped: {message:?}");
        let escaped = format!("`{}`", invisible.escape_unicode());
        assert!(message.contains(&escaped), "{message:?} names {escaped}");
    }
    // The same rule for values given as data.
    let e = parts(&[], &[(Some("vehicle"), Some("truck\u{200b}"))]).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "unexpected character `\\u{{200b}}` in tag value `truck\\u{{200b}}` at deviceTags[0], {EXPECTED}"
        )
    );
    // Visible non-ASCII text, and white space other than separators, are values.
    let r = restriction("k=café ☕,j=\"\u{a0}x\"");
    assert_eq!(r.to_string(), "j=\"\u{a0}x\",k=café ☕");
    assert!(r.can_see(&device(&[("k", "café ☕")])));
}

#[test]
fn tag_keys_follow_their_alphabet() {
    assert_eq!(
        error("a.b=c"),
        (
            "unexpected character `.` in tag key `a.b` at byte 1, expected one of `0-9 A-Z a-z _ -`".into(),
            Some(1)
        )
    );
    assert_eq!(
        error("x,ns:key = c"),
        (
            "unexpected character `:` in tag key `ns:key` at byte 4, expected one of `0-9 A-Z a-z _ -`".into(),
            Some(4)
        )
    );
    // A `.` or `:` is fine in a device ID.
    assert_eq!(restriction("ns:dev.1").to_string(), "ns:dev.1");
}

// ---------------------------------------------------------------------------
// Limits: each one, at the default and configured, with message and offset.

#[test]
fn device_id_length_limit() {
    let ok = "a".repeat(128);
    assert_eq!(restriction(&ok).to_string(), ok);
    let long = format!("x,{}", "a".repeat(129));
    assert_eq!(
        error(&long),
        (
            "device ID `aaaaaaaaaaaaaaaaaaaaaaaa…` at byte 2 is 129 characters long, expected at most 128".into(),
            Some(2)
        )
    );
    let mut limits = Limits::default();
    limits.max_device_id_chars = 3;
    assert!(Restriction::parse_with_limits("abc", &limits).is_ok());
    assert_eq!(
        error_with("abc, abcd", &limits),
        (
            "device ID `abcd` at byte 5 is 4 characters long, expected at most 3".into(),
            Some(5)
        )
    );
}

#[test]
fn tag_key_length_limit() {
    let ok = format!("{}=v", "k".repeat(255));
    assert!(ok.parse::<Restriction>().is_ok());
    let long = format!("{}=v", "k".repeat(256));
    assert_eq!(
        error(&long),
        (
            "tag key `kkkkkkkkkkkkkkkkkkkkkkkk…` at byte 0 is 256 characters long, expected at most 255".into(),
            Some(0)
        )
    );
    let mut limits = Limits::default();
    limits.max_tag_key_chars = 2;
    assert_eq!(
        error_with("ab=1,abc=1", &limits),
        (
            "tag key `abc` at byte 5 is 3 characters long, expected at most 2".into(),
            Some(5)
        )
    );
}

#[test]
fn tag_value_length_limit_counts_characters_after_unescaping() {
    // 255 two-byte characters are fine; 256 are not.
    assert!(
        format!("k={}", "é".repeat(255))
            .parse::<Restriction>()
            .is_ok()
    );
    assert_eq!(
        error(&format!("k={}", "é".repeat(256))),
        (
            "tag value `éééééééééééééééééééééééé…` at byte 2 is 256 characters long, expected at most 255".into(),
            Some(2)
        )
    );
    // 255 characters written with 510 bytes of escapes are fine.
    let escaped = format!("k=\"{}\"", "\\\"".repeat(255));
    let r = restriction(&escaped);
    assert_eq!(
        r.tag_patterns()[0].value().map(|v| v.chars().count()),
        Some(255)
    );
    assert_eq!(
        error(&format!("k=\"{}\"", "\\\\".repeat(256))),
        (
            format!(
                "tag value `{}…` at byte 2 is 256 characters long, expected at most 255",
                "\\".repeat(24)
            ),
            Some(2)
        )
    );
    let mut limits = Limits::default();
    limits.max_tag_value_chars = 4;
    assert_eq!(
        error_with("k=ok,j= truck ", &limits),
        (
            "tag value `truck` at byte 8 is 5 characters long, expected at most 4".into(),
            Some(8)
        )
    );
}

#[test]
fn device_id_count_limit_counts_distinct_ids() {
    let ids: Vec<String> = (0..1000).map(|i| format!("d{i}")).collect();
    let text = ids.join(",");
    let r = restriction(&format!("{text},{text}"));
    assert_eq!(r.device_ids().len(), 1000);
    let over = format!("{text},d1000,d0");
    assert_eq!(
        error(&over),
        (
            format!(
                "expected at most 1000 distinct device IDs, found one more, `d1000`, at byte {}",
                text.len() + 1
            ),
            Some(text.len() + 1)
        )
    );
    let mut limits = Limits::default();
    limits.max_device_ids = 2;
    assert_eq!(
        error_with("a, b, a, k=v, c", &limits),
        (
            "expected at most 2 distinct device IDs, found one more, `c`, at byte 14".into(),
            Some(14)
        )
    );
}

#[test]
fn tag_pattern_count_limit_counts_distinct_patterns() {
    let tags: Vec<String> = (0..100).map(|i| format!("k{i}=v")).collect();
    let text = tags.join(",");
    let r = restriction(&format!("{text},{text}"));
    assert_eq!(r.tag_patterns().len(), 100);
    for extra in ["k100=v", "k0=w", "k0=", "=v"] {
        let over = format!("{text},{extra}");
        let (message, offset) = error(&over);
        assert_eq!(offset, Some(text.len() + 1), "{extra}");
        let shown = if extra.ends_with('=') {
            format!("{extra}*")
        } else if extra.starts_with('=') {
            format!("*{extra}")
        } else {
            extra.to_owned()
        };
        assert_eq!(
            message,
            format!(
                "expected at most 100 distinct tag patterns, found one more, `{shown}`, at byte {}",
                text.len() + 1
            )
        );
    }
    let mut limits = Limits::default();
    limits.max_tag_patterns = 1;
    assert_eq!(
        error_with("k=v,  k = v, k=*", &limits),
        (
            "expected at most 1 distinct tag patterns, found one more, `k=*`, at byte 13".into(),
            Some(13)
        )
    );
    limits.max_tag_patterns = 0;
    assert!(Restriction::parse_with_limits("a", &limits).is_ok());
}

#[test]
fn input_length_limit_is_checked_first() {
    let text = format!("{},", "a".repeat(64 * 1024));
    assert_eq!(
        error(&text),
        (
            "expected at most 65536 bytes of restriction text, found 65537: `,` at byte 65536 is past the limit".into(),
            Some(65536)
        )
    );
    // Exactly at the limit, the text is parsed (and fails on its own merits).
    let (message, _) = error(&"a,".repeat(32 * 1024));
    assert!(
        message.starts_with("expected a device ID or a tag pattern at byte 65536"),
        "{message}"
    );

    let mut limits = Limits::default();
    limits.max_input_bytes = 4;
    // The cut falls inside `é`: the offset is that of the character.
    assert_eq!(
        error_with("k=aé\u{1}", &limits),
        (
            "expected at most 4 bytes of restriction text, found 6: `é\\u{1}` at byte 3 is past the limit".into(),
            Some(3)
        )
    );
}

#[test]
fn limits_default_to_the_platform() {
    let limits = Limits::default();
    assert_eq!(limits, Limits::PLATFORM);
    assert_eq!(limits.max_device_ids, 1000);
    assert_eq!(limits.max_tag_patterns, 100);
    assert_eq!(limits.max_input_bytes, 65536);
    assert_eq!(limits.max_device_id_chars, 128);
    assert_eq!(limits.max_tag_key_chars, 255);
    assert_eq!(limits.max_tag_value_chars, 255);
}

#[test]
fn long_offending_input_is_shortened_in_messages() {
    let text = format!("k=\"{}", "x".repeat(1000));
    let (message, offset) = error(&format!("{text}\u{1}"));
    assert_eq!(offset, Some(1003));
    assert!(message.len() < 200, "{message}");
    assert!(
        message.contains("`\"xxxxxxxxxxxxxxxxxxxxxxx…`"),
        "{message}"
    );
}

// ---------------------------------------------------------------------------
// Building from parts.

fn parts(
    ids: &[&str],
    tags: &[(Option<&str>, Option<&str>)],
) -> Result<Restriction, RestrictionError> {
    Restriction::from_parts(
        ids.iter().copied(),
        tags.iter().map(|&(k, v)| TagFilter::new(k, v)),
        &Limits::default(),
    )
}

#[test]
fn from_parts_agrees_with_text() {
    let r = parts(
        &["b", "a", "b"],
        &[
            (Some("vehicle"), Some("truck")),
            (Some("color"), None),
            (Some("color"), Some("")),
            (None, Some("truck")),
            (Some("*"), Some("truck")),
            (Some(""), Some("x")),
            (Some("floor"), Some("Building 4, West")),
            (Some("star"), Some("*")),
            (Some("pad"), Some(" padded ")),
        ],
    )
    .unwrap();
    assert_eq!(
        r.to_string(),
        r#"a,b,*=truck,*=x,color=*,floor="Building 4, West",pad=" padded ",star="*",vehicle=truck"#
    );
    assert_eq!(restriction(&r.to_string()), r);
    assert!(r.can_see(&device(&[("star", "*")])));
    assert!(!r.can_see(&device(&[("star", "y")])));
}

#[test]
fn from_parts_errors_name_the_entry() {
    let fails = |ids: &[&str], tags: &[(Option<&str>, Option<&str>)]| {
        let e = parts(ids, tags).unwrap_err();
        assert_eq!(e.offset(), None);
        (e.to_string(), e.location())
    };
    assert_eq!(
        fails(&[], &[]),
        (
            "expected a device ID or a tag pattern at deviceIds[0], found an empty restriction"
                .into(),
            Location::DeviceId(0)
        )
    );
    assert_eq!(
        fails(&["ok", "not ok"], &[]),
        (
            "unexpected character ` ` in device ID `not ok` at deviceIds[1], expected one of `0-9 A-Z a-z _ . : -`".into(),
            Location::DeviceId(1)
        )
    );
    assert_eq!(
        fails(&["ok", ""], &[]),
        (
            "expected a device ID of at least one character at deviceIds[1], found ``".into(),
            Location::DeviceId(1)
        )
    );
    let long = "a".repeat(129);
    assert_eq!(
        fails(&[&long], &[]).0,
        "device ID `aaaaaaaaaaaaaaaaaaaaaaaa…` at deviceIds[0] is 129 characters long, expected at most 128"
    );
    assert_eq!(
        fails(&[], &[(Some("k"), Some("v")), (None, None)]),
        ("tag pattern `*=*` at deviceTags[1] matches every tag, expected a tag key, a tag value or both".into(), Location::TagFilter(1))
    );
    assert_eq!(
        fails(&[], &[(Some("*"), Some(""))]).1,
        Location::TagFilter(0)
    );
    assert_eq!(
        fails(&[], &[(Some("a.b"), Some("v"))]).0,
        "unexpected character `.` in tag key `a.b` at deviceTags[0], expected one of `0-9 A-Z a-z _ -`"
    );
    assert_eq!(
        fails(&[], &[(Some("k"), Some("a\nb"))]).0,
        "unexpected character `\\n` in tag value `a\\nb` at deviceTags[0], expected a visible character (not a control, format, line or paragraph separator character)"
    );
    let long = "v".repeat(256);
    assert_eq!(
        fails(&[], &[(Some("k"), Some(&long))]).0,
        "tag value `vvvvvvvvvvvvvvvvvvvvvvvv…` at deviceTags[0] is 256 characters long, expected at most 255"
    );
    let mut limits = Limits::default();
    limits.max_device_ids = 1;
    limits.max_tag_patterns = 1;
    let e = Restriction::from_parts(["a", "a", "b"], [], &limits).unwrap_err();
    assert_eq!(
        e.to_string(),
        "expected at most 1 distinct device IDs, found one more, `b`, at deviceIds[2]"
    );
    let e = Restriction::from_parts(
        [] as [&str; 0],
        [
            TagFilter::new(Some("k"), None),
            TagFilter::new(None, Some("v")),
        ],
        &limits,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "expected at most 1 distinct tag patterns, found one more, `*=v`, at deviceTags[1]"
    );
    assert!(matches!(
        e,
        RestrictionError::TooManyTagPatterns { max: 1, .. }
    ));
}

#[test]
fn error_variants_carry_their_details() {
    match "k=a\u{1}".parse::<Restriction>() {
        Err(RestrictionError::InvalidCharacter {
            at, item, found, ..
        }) => {
            assert_eq!(
                (at, item, found),
                (Location::Byte(3), Item::TagValue, '\u{1}')
            );
        }
        other => panic!("{other:?}"),
    }
    match format!("k={}", "v".repeat(300)).parse::<Restriction>() {
        Err(RestrictionError::TooLong { item, len, max, .. }) => {
            assert_eq!((item, len, max), (Item::TagValue, 300, 255));
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------
// serde.

#[test]
fn serde_writes_the_canonical_text() {
    let r = restriction("vehicle=truck, 5f2b8c1e9a4d3b7c6e1f0a2b, floor=\"4, West\"");
    let json = serde_json::to_string(&r).unwrap();
    assert_eq!(
        json,
        r#""5f2b8c1e9a4d3b7c6e1f0a2b,floor=\"4, West\",vehicle=truck""#
    );
    let back: Restriction = serde_json::from_str(&json).unwrap();
    assert_eq!(back, r);
}

#[test]
fn serde_reads_the_platform_object() {
    let r: Restriction = serde_json::from_str(
        r#"{"deviceIds": ["5f2b8c1e9a4d3b7c6e1f0a2b"],
            "deviceTags": [{"key": "vehicle", "value": "truck"}, {"key": "color"},
                           {"value": "x", "key": null}, {"key": "floor", "value": "4, \"West\""}]}"#,
    )
    .unwrap();
    assert_eq!(
        r.to_string(),
        r#"5f2b8c1e9a4d3b7c6e1f0a2b,*=x,color=*,floor="4, \"West\"",vehicle=truck"#
    );
    let tags_only: Restriction =
        serde_json::from_str(r#"{"deviceTags": [{"key": "k", "value": "v"}]}"#).unwrap();
    assert_eq!(tags_only.to_string(), "k=v");
    let ids_only: Restriction =
        serde_json::from_str(r#"{"deviceIds": ["a"], "deviceTags": null}"#).unwrap();
    assert_eq!(ids_only.to_string(), "a");
}

#[test]
fn serde_refuses_bad_platform_objects() {
    let fails = |json: &str| {
        serde_json::from_str::<Restriction>(json)
            .unwrap_err()
            .to_string()
    };
    assert!(fails("{}").starts_with(
        "expected a device ID or a tag pattern at deviceIds[0], found an empty restriction"
    ));
    assert!(fails(r#"{"deviceIds": [], "deviceTags": []}"#).contains("empty restriction"));
    assert!(
        fails(r#"{"deviceIds": ["a"], "devicetags": []}"#).contains("unknown field `devicetags`")
    );
    assert!(
        fails(r#"{"deviceIds": ["a"], "deviceIds": ["b"]}"#)
            .contains("duplicate field `deviceIds`")
    );
    assert!(fails(r#"{"deviceTags": [{"key": "k", "val": "v"}]}"#).contains("unknown field `val`"));
    assert!(
        fails(r#"{"deviceTags": [{}]}"#)
            .starts_with("tag pattern `*=*` at deviceTags[0] matches every tag")
    );
    assert!(
        fails(r#"{"deviceIds": ["a", "b c"]}"#)
            .starts_with("unexpected character ` ` in device ID `b c` at deviceIds[1]")
    );
    assert!(fails(r#"{"deviceIds": [1]}"#).contains("expected a device ID"));
    assert!(fails(r#"42"#).contains("a restriction: its text, or an object"));
    assert!(fails(r#""a,""#).starts_with("expected a device ID or a tag pattern at byte 2"));
}

#[test]
fn serde_enforces_the_limits_while_reading() {
    // The 1001st distinct ID is refused as soon as it is read: the garbage after
    // it (a number where an ID belongs) is never reached.
    let mut ids: Vec<serde_json::Value> = (0..1001).map(|i| format!("d{i}").into()).collect();
    ids.push(serde_json::Value::from(7));
    let json = serde_json::json!({ "deviceIds": ids }).to_string();
    let message = serde_json::from_str::<Restriction>(&json)
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with(
            "expected at most 1000 distinct device IDs, found one more, `d1000`, at deviceIds[1000]"
        ),
        "{message}"
    );
    let tags: Vec<serde_json::Value> = (0..101)
        .map(|i| serde_json::json!({ "key": format!("k{i}") }))
        .collect();
    let json = serde_json::json!({ "deviceTags": tags }).to_string();
    let message = serde_json::from_str::<Restriction>(&json)
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with("expected at most 100 distinct tag patterns, found one more, `k100=*`, at deviceTags[100]"),
        "{message}"
    );
}
