//! Restriction text: parse; if accepted, the canonical form parses back to an equal
//! restriction and is a fixed point, and it holds no invisible character (so two
//! different restrictions never print alike); errors are one printable line;
//! `can_see` over an arbitrary device never panics and agrees with a plain reading
//! of the patterns.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use structure_access::{Device, Restriction};

/// The application of every key and device here.
const APP: &str = "app1";

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    text: &'a str,
    id: &'a str,
    tags: Vec<(&'a str, &'a str)>,
}

struct FuzzDevice<'a>(&'a str, &'a [(&'a str, &'a str)]);

impl Device for FuzzDevice<'_> {
    fn application(&self) -> &str {
        APP
    }
    fn id(&self) -> &str {
        self.0
    }
    fn tags(&self) -> impl Iterator<Item = (&str, &str)> {
        self.1.iter().copied()
    }
}

/// Characters that do not show as themselves: control (Cc), format (Cf, the
/// common ones) and line or paragraph separators.
fn invisible(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}'
        )
}

fuzz_target!(|input: Input<'_>| {
    let restriction = match input.text.parse::<Restriction>() {
        Ok(restriction) => restriction,
        Err(e) => {
            let message = e.to_string();
            assert!(!message.chars().any(invisible), "{message:?}");
            return;
        }
    };
    let canonical = restriction.to_string();
    assert!(!canonical.chars().any(invisible), "{canonical:?}");
    let reparsed: Restriction = canonical
        .parse()
        .unwrap_or_else(|e| panic!("canonical form `{canonical}` does not parse: {e}"));
    assert_eq!(reparsed, restriction, "round trip of `{}`", input.text);
    assert_eq!(reparsed.to_string(), canonical, "display is not a fixed point");

    let device = FuzzDevice(input.id, &input.tags);
    let expected = restriction.device_ids().any(|id| id == input.id)
        || input.tags.iter().any(|&(k, v)| {
            restriction
                .tag_patterns()
                .iter()
                .any(|p| p.key().is_none_or(|pk| pk == k) && p.value().is_none_or(|pv| pv == v))
        });
    assert_eq!(restriction.can_see(&device), expected, "can_see of {device:?}", device = (input.id, &input.tags));
});
