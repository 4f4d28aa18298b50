//! MQTT topic policy through the public API: topic and filter validation and
//! their errors, matching, `$` topics, classification, every publish, subscribe
//! and receive rule for unrestricted and restricted keys and gateways, the
//! additional-topics policy (containment and intersection), serde, and
//! allocation-free decisions.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use structure_access::mqtt::{
    AdditionalTopics, Decision, DeviceDirectory, FilterList, FilterListError, MAX_FILTER_LEN,
    MAX_FILTERS_PER_LIST, MAX_TOPIC_LEN, Topic, TopicClass, TopicError, TopicFilter,
    TopicFilterBuf, TopicKind, TopicRules,
};
use structure_access::{
    AccessKey, Authenticator, Cost, DeviceRecord, HashPolicy, Principal, Restriction, Scope,
};

// ---------------------------------------------------------------- fixtures

/// The broker of these tests holds one application: the per-key rules are
/// tested here; `tests/applications.rs` tests several applications.
fn rules() -> TopicRules {
    TopicRules::default().with_single_application(APP.parse().unwrap())
}

fn cheap_policy() -> HashPolicy {
    HashPolicy::default()
        .with_params(Cost::new(64, 1, 1))
        .unwrap()
}

fn record(scope: Scope, topics: AdditionalTopics) -> (AccessKey, structure_access::Secret) {
    let new = AccessKey::generate(
        &mut ChaCha20Rng::seed_from_u64(7),
        APP.parse().unwrap(),
        scope,
        &cheap_policy(),
    )
    .unwrap();
    (new.record.with_additional_topics(topics), new.secret)
}

fn principal_for(scope: Scope, topics: AdditionalTopics, device: &DeviceRecord) -> Principal {
    let (record, secret) = record(scope, topics);
    Authenticator::new(cheap_policy())
        .authenticate(record.key(), Some(&record), &secret, device)
        .unwrap()
}

fn dev(id: &str, tags: &[(&str, &str)]) -> DeviceRecord {
    tags.iter().fold(
        DeviceRecord::new(APP.parse().unwrap(), id.parse().unwrap()),
        |d, (k, v)| d.with_tag(k, v),
    )
}

/// The gateway `gw` (site=north), authenticated with a key restricted to
/// `site=north` and the listed device `listed`.
fn restricted(topics: AdditionalTopics) -> Principal {
    let scope: Restriction = "site=north,listed".parse().unwrap();
    principal_for(scope.into(), topics, &dev("gw", &[("site", "north")]))
}

/// The device `gw` authenticated with an unrestricted key.
fn unrestricted(topics: AdditionalTopics) -> Principal {
    principal_for(
        Scope::Unrestricted,
        topics,
        &dev("gw", &[("site", "north")]),
    )
}

/// The broker's device store, counting lookups.
struct Directory {
    devices: HashMap<String, DeviceRecord>,
    lookups: Cell<usize>,
}

impl Directory {
    fn new() -> Self {
        let mut devices = HashMap::new();
        for d in [
            dev("gw", &[("site", "north")]),
            dev("north1", &[("site", "north"), ("kind", "sensor")]),
            dev("south1", &[("site", "south")]),
            dev("listed", &[("site", "south")]),
        ] {
            devices.insert(d.device_id().to_string(), d);
        }
        // A store that hands out the wrong row for an ID must not widen a scope.
        devices.insert("alias".into(), dev("north1", &[("site", "north")]));
        Self {
            devices,
            lookups: Cell::new(0),
        }
    }

    fn lookups(&self) -> usize {
        self.lookups.replace(0)
    }
}

impl DeviceDirectory for Directory {
    type Device<'a> = &'a DeviceRecord;

    fn find(&self, id: &str) -> Option<&DeviceRecord> {
        self.lookups.set(self.lookups.get() + 1);
        self.devices.get(id)
    }
}

fn list(filters: &[&str]) -> FilterList {
    FilterList::new(filters).unwrap()
}

fn allow_list(publish: &[&str], subscribe: &[&str]) -> AdditionalTopics {
    AdditionalTopics::AllowList {
        publish: list(publish),
        subscribe: list(subscribe),
    }
}

fn deny_list(publish: &[&str], subscribe: &[&str]) -> AdditionalTopics {
    AdditionalTopics::DenyList {
        publish: list(publish),
        subscribe: list(subscribe),
    }
}

fn publish(p: &Principal, topic: &str, dir: &Directory) -> Decision {
    p.may_publish(&rules(), topic, dir).unwrap()
}

fn subscribe(p: &Principal, filter: &str, dir: &Directory) -> Decision {
    p.may_subscribe(&rules(), filter, dir).unwrap()
}

fn receive(p: &Principal, topic: &str, dir: &Directory) -> bool {
    p.may_receive(&rules(), topic, dir).unwrap()
}

fn topic(text: &str) -> Topic<'_> {
    Topic::new(text).unwrap_or_else(|e| panic!("`{text}`: {e}"))
}

fn filter(text: &str) -> TopicFilter<'_> {
    TopicFilter::new(text).unwrap_or_else(|e| panic!("`{text}`: {e}"))
}

use Decision::{Allow, Deny, Filter};

/// The application of every key and device here.
const APP: &str = "app1";

// ---------------------------------------------------------------- validation

#[test]
fn valid_topic_names() {
    for text in [
        "a",
        "/",
        "//",
        "a//b",
        "/a",
        "a/",
        "$SYS/broker/uptime",
        "température/salle 1",
        "structure/5f2b8c1e9a4d3b7c6e1f0a2b/state",
        "\u{1}\u{7f}",
    ] {
        let t = topic(text);
        assert_eq!(t.as_str(), text);
        assert_eq!(t.levels().count(), text.split('/').count());
        assert_eq!(t.to_string(), text);
        assert_eq!(Topic::try_from(text), Ok(t));
    }
    assert!(topic("$SYS/x").is_dollar());
    assert!(!topic("a/$SYS").is_dollar());
    let longest = "a".repeat(MAX_TOPIC_LEN);
    assert!(Topic::new(&longest).is_ok());
    assert!(TopicFilter::new(&longest).is_ok());
}

#[test]
fn invalid_topic_names_say_where_and_what() {
    let cases: &[(&str, Option<usize>, &str)] = &[
        (
            "",
            None,
            "expected a topic name of at least one character, found an empty string",
        ),
        (
            "a/\0b",
            Some(2),
            "unexpected NUL character (U+0000) at byte 2 of topic name `a/\\u{0}b`, expected any other character",
        ),
        (
            "a/+",
            Some(2),
            "unexpected wildcard `+` at byte 2 of topic name `a/+`, expected a topic name without `+` or `#`",
        ),
        (
            "sport/#",
            Some(6),
            "unexpected wildcard `#` at byte 6 of topic name `sport/#`, expected a topic name without `+` or `#`",
        ),
        (
            "a+b",
            Some(1),
            "unexpected wildcard `+` at byte 1 of topic name `a+b`, expected a topic name without `+` or `#`",
        ),
    ];
    for &(text, offset, message) in cases {
        let err = Topic::new(text).unwrap_err();
        assert_eq!(err.to_string(), message, "`{text}`");
        assert_eq!(err.offset(), offset, "`{text}`");
        assert_eq!(err.kind(), TopicKind::Name);
    }
    let too_long = "a".repeat(MAX_TOPIC_LEN + 1);
    let err = Topic::new(&too_long).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "topic name `{}…` is 65536 bytes long, expected at most 65535",
            "a".repeat(32)
        )
    );
    assert!(matches!(
        err,
        TopicError::TooLong {
            len: 65536,
            max: 65535,
            ..
        }
    ));
}

#[test]
fn valid_topic_filters() {
    for (text, wildcards) in [
        ("a", false),
        ("#", true),
        ("+", true),
        ("+/+", true),
        ("/#", true),
        ("+/", true),
        ("a/+/b/#", true),
        ("$SYS/#", true),
        ("//+//", true),
        ("a//b", false),
    ] {
        let f = filter(text);
        assert_eq!(f.as_str(), text);
        assert_eq!(f.has_wildcards(), wildcards, "`{text}`");
        assert_eq!(f.as_topic().is_none(), wildcards, "`{text}`");
        assert_eq!(TopicFilterBuf::new(text).unwrap().as_filter(), f);
        assert_eq!(text.parse::<TopicFilterBuf>().unwrap().to_string(), text);
    }
    assert_eq!(TopicFilter::from(topic("a/b")), filter("a/b"));
    assert_eq!(topic("a/b").as_filter().as_topic(), Some(topic("a/b")));
}

#[test]
fn invalid_topic_filters_say_where_and_what() {
    let not_a_level = |c: char, at: usize, text: &str| {
        format!(
            "unexpected `{c}` at byte {at} of topic filter `{text}`, expected a wildcard to fill a whole level, between `/` separators"
        )
    };
    let cases: Vec<(&str, Option<usize>, String)> = vec![
        (
            "",
            None,
            "expected a topic filter of at least one character, found an empty string".into(),
        ),
        ("a+", Some(1), not_a_level('+', 1, "a+")),
        ("+a", Some(0), not_a_level('+', 0, "+a")),
        ("sport/tennis+", Some(12), not_a_level('+', 12, "sport/tennis+")),
        ("a/b#", Some(3), not_a_level('#', 3, "a/b#")),
        ("#a", Some(0), not_a_level('#', 0, "#a")),
        ("a/#+", Some(2), not_a_level('#', 2, "a/#+")),
        ("++", Some(0), not_a_level('+', 0, "++")),
        (
            "#/a",
            Some(0),
            "unexpected `/` after `#` at byte 0 of topic filter `#/a`, expected `#` only as the last level"
                .into(),
        ),
        (
            "sport/#/ranking",
            Some(6),
            "unexpected `/` after `#` at byte 6 of topic filter `sport/#/ranking`, expected `#` only as the last level"
                .into(),
        ),
        (
            "a/#/",
            Some(2),
            "unexpected `/` after `#` at byte 2 of topic filter `a/#/`, expected `#` only as the last level"
                .into(),
        ),
        (
            "+/\0",
            Some(2),
            "unexpected NUL character (U+0000) at byte 2 of topic filter `+/\\u{0}`, expected any other character"
                .into(),
        ),
    ];
    for (text, offset, message) in cases {
        let err = TopicFilter::new(text).unwrap_err();
        assert_eq!(err.to_string(), message, "`{text}`");
        assert_eq!(err.offset(), offset, "`{text}`");
        assert_eq!(err.kind(), TopicKind::Filter);
        assert_eq!(TopicFilterBuf::new(text).unwrap_err(), err);
    }
    let err = TopicFilter::new(&"+/".repeat(40_000)).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("is 80000 bytes long, expected at most 65535"),
        "{err}"
    );
}

#[test]
fn long_inputs_are_quoted_around_the_problem() {
    let text = format!("{}/bad+/{}", "x".repeat(100), "y".repeat(100));
    let err = TopicFilter::new(&text).unwrap_err();
    assert_eq!(err.offset(), Some(104));
    assert_eq!(
        err.to_string(),
        "unexpected `+` at byte 104 of topic filter `…xxxxxxxx/bad+/yyyyyyyyyyyyyyyyyy…`, \
         expected a wildcard to fill a whole level, between `/` separators"
    );
    let text = format!("{}\0", "é".repeat(50));
    let err = Topic::new(&text).unwrap_err();
    assert_eq!(err.offset(), Some(100));
    assert!(err.to_string().contains("`…éééééééééééé\\u{0}`"), "{err}");
}

// ---------------------------------------------------------------- matching

#[test]
fn matching_follows_the_mqtt_specification() {
    let cases: &[(&str, &str, bool)] = &[
        // The examples of MQTT 5 §4.7.
        ("sport/tennis/player1/#", "sport/tennis/player1", true),
        (
            "sport/tennis/player1/#",
            "sport/tennis/player1/ranking",
            true,
        ),
        (
            "sport/tennis/player1/#",
            "sport/tennis/player1/score/wimbledon",
            true,
        ),
        ("sport/#", "sport", true),
        ("#", "sport/tennis", true),
        ("sport/tennis/+", "sport/tennis/player1", true),
        ("sport/tennis/+", "sport/tennis/player1/ranking", false),
        ("sport/+", "sport", false),
        ("sport/+", "sport/", true),
        ("+/+", "/finance", true),
        ("/+", "/finance", true),
        ("+", "/finance", false),
        ("+/tennis/#", "sport/tennis/player1", true),
        // Exact and empty levels.
        ("a/b", "a/b", true),
        ("a/b", "a/b/", false),
        ("a//b", "a//b", true),
        ("a/+/b", "a//b", true),
        ("+", "", false), // not a topic: unused, see below
        ("#", "/", true),
        ("a/#", "a/", true),
        ("a/#", "ab", false),
        ("a/+", "a", false),
        // Case-sensitive.
        ("Sport/#", "sport", false),
    ];
    for &(f, t, expected) in cases {
        if t.is_empty() {
            continue;
        }
        assert_eq!(filter(f).matches(topic(t)), expected, "`{f}` vs `{t}`");
    }
}

#[test]
fn wildcards_in_the_first_level_never_match_dollar_topics() {
    for (f, t, expected) in [
        ("#", "$SYS/monitor/Clients", false),
        ("+/monitor/Clients", "$SYS/monitor/Clients", false),
        ("+", "$SYS", false),
        ("$SYS/#", "$SYS/monitor/Clients", true),
        ("$SYS/monitor/+", "$SYS/monitor/Clients", true),
        ("$SYS/#", "$SYS", true),
        ("a/+", "a/$b", true),
        ("a/#", "a/$b", true),
    ] {
        assert_eq!(filter(f).matches(topic(t)), expected, "`{f}` vs `{t}`");
    }
    assert!(!filter("#").intersects(filter("$SYS/#")));
    assert!(!filter("+/a").intersects(filter("$x/a")));
    assert!(filter("$SYS/+").intersects(filter("$SYS/#")));
    assert!(!list(&["#"]).covers(filter("$SYS/#")));
    assert!(!list(&["+/#"]).covers(filter("$SYS")));
    assert!(list(&["$SYS/#"]).covers(filter("$SYS/+/x")));
}

#[test]
fn intersection_is_exact() {
    for (a, b, expected) in [
        ("a/b", "a/b", true),
        ("a/b", "a/c", false),
        ("a/+", "a/b", true),
        ("a/+", "+/b", true),
        ("a/+", "a/b/c", false),
        ("a/#", "a", true),
        ("a/#", "b/#", false),
        ("#", "a/b/c", true),
        ("+/+", "#", true),
        ("+/+", "a", false),
        ("a/+/c", "+/b/#", true),
        ("a/+/c", "+/b/d", false),
        ("+", "+/x", false),
        ("/+", "+/", true),
        // `/#` matches `/…` and, as a parent, the empty string, which is no
        // topic: it has nothing in common with one-level filters.
        ("/#", "+", false),
        ("/#", "#", true),
        ("/#", "/", true),
    ] {
        assert_eq!(filter(a).intersects(filter(b)), expected, "`{a}` ∩ `{b}`");
        assert_eq!(filter(b).intersects(filter(a)), expected, "`{b}` ∩ `{a}`");
    }
}

#[test]
fn containment_is_exact_over_unions() {
    for (listed, f, expected) in [
        // Single filters.
        (&["a/#"][..], "a/b/+", true),
        (&["a/#"], "a", true),
        (&["a/+"], "a/b", true),
        (&["a/+"], "a/+", true),
        (&["a/b"], "a/+", false),
        (&["+/b"], "a/b", true),
        (&["#"], "a/#", true),
        (&["+/#"], "#", true),
        (&["+"], "#", false),
        (&["a/+/#"], "a/#", false), // misses `a`
        // Unions: `a/#` is `a`, `a/x`, `a/x/y`, …
        (&["a", "a/+", "a/+/+/#"], "a/#", true),
        (&["a", "a/+/#"], "a/#", true),
        (&["a", "a/+"], "a/#", false),
        (&["a/+", "a/+/#"], "a/#", false),
        (&["a", "a/+", "a/+/+"], "a/#", false),
        (&["+", "+/+/#"], "#", true),
        (&["+", "+/+"], "#", false),
        // Literals never exhaust a `+` level.
        (&["a/x", "a/y", "a/z"], "a/+", false),
        (&["a/x", "a/+"], "a/+", true),
        (&["a/+/c", "a/b/+"], "a/+/+", false),
        (&["a/+/c", "a/+/+"], "a/+/+", true),
        // A `+` in the filter needs `+` (or `#`) at that level of a listed filter.
        (&["a/b/#", "a/c/#"], "a/+/x", false),
        (&["x/#", "+/b"], "+/b", true),
        // `/#` needs no filter for its empty parent (not a topic).
        (&["/+/#"], "/#", true),
        (&["/", "/+/#"], "/#", true),
        (&["/+"], "/#", false),
        // Exact topics.
        (&["a/b", "c"], "c", true),
        (&["a/b", "c"], "a", false),
        (&[], "a", false),
        (&[], "#", false),
    ] {
        assert_eq!(
            list(listed).covers(filter(f)),
            expected,
            "`{f}` ⊆ ∪{listed:?}"
        );
    }
}

// ---------------------------------------------------------------- classes

#[test]
fn topics_are_classified_under_the_prefix() {
    let rules = TopicRules::default();
    assert_eq!(rules.prefix(), "structure");
    assert_eq!(rules, TopicRules::STRUCTURE);
    let id = "5f2b8c1e9a4d3b7c6e1f0a2b";
    let long_id = "d".repeat(128);
    let too_long_id = "d".repeat(129);
    let cases: Vec<(String, TopicClass<'_>)> = vec![
        (format!("structure/{id}/state"), TopicClass::State(id)),
        (format!("structure/{id}/command"), TopicClass::Command(id)),
        (
            "structure/a.b:c-d_e/state".into(),
            TopicClass::State("a.b:c-d_e"),
        ),
        (
            format!("structure/{long_id}/state"),
            TopicClass::State(&long_id),
        ),
        (
            format!("structure/{too_long_id}/state"),
            TopicClass::Reserved,
        ),
        (format!("structure/{id}/State"), TopicClass::Reserved),
        (format!("structure/{id}/state/x"), TopicClass::Reserved),
        (format!("structure/{id}/state/"), TopicClass::Reserved),
        (format!("structure/{id}"), TopicClass::Reserved),
        ("structure/bad id/state".into(), TopicClass::Reserved),
        ("structure//state".into(), TopicClass::Reserved),
        ("structure".into(), TopicClass::Reserved),
        ("structure/".into(), TopicClass::Reserved),
        ("structure/events".into(), TopicClass::Reserved),
        ("structures/d/state".into(), TopicClass::Custom),
        ("Structure/d/state".into(), TopicClass::Custom),
        ("x/structure/d/state".into(), TopicClass::Custom),
        ("/structure/d/state".into(), TopicClass::Custom),
        ("$structure/d/state".into(), TopicClass::Custom),
        ("fleet/gps".into(), TopicClass::Custom),
    ];
    for (text, class) in &cases {
        assert_eq!(rules.classify(topic(text)), *class, "`{text}`");
    }
    assert_eq!(TopicClass::State("d").device_id(), Some("d"));
    assert_eq!(TopicClass::Custom.device_id(), None);
}

#[test]
fn the_prefix_is_configurable_and_validated() {
    let rules = TopicRules::new("acme").unwrap();
    assert_eq!(
        rules.classify(topic("acme/d1/command")),
        TopicClass::Command("d1")
    );
    assert_eq!(rules.classify(topic("acme/x")), TopicClass::Reserved);
    assert_eq!(
        rules.classify(topic("structure/d1/state")),
        TopicClass::Custom
    );
    for (prefix, message) in [
        (
            "",
            "expected a topic prefix of at least one character, found an empty string",
        ),
        (
            "a/b",
            "unexpected `/` at byte 1 of topic prefix `a/b`, expected a single topic level without `/`, `+` or `#`",
        ),
        (
            "+",
            "unexpected `+` at byte 0 of topic prefix `+`, expected a single topic level without `/`, `+` or `#`",
        ),
        (
            "a#",
            "unexpected `#` at byte 1 of topic prefix `a#`, expected a single topic level without `/`, `+` or `#`",
        ),
        (
            "a\0",
            "unexpected NUL character (U+0000) at byte 1 of topic prefix `a\\u{0}`, expected any other character",
        ),
    ] {
        let err = TopicRules::new(prefix).unwrap_err();
        assert_eq!(err.to_string(), message, "`{prefix}`");
        assert_eq!(err.kind(), TopicKind::Prefix);
    }
}

// ---------------------------------------------------------------- publish

#[test]
fn unrestricted_publish() {
    let p = unrestricted(AdditionalTopics::None);
    let dir = Directory::new();
    assert_eq!(publish(&p, "structure/gw/state", &dir), Allow);
    assert_eq!(publish(&p, "structure/south1/state", &dir), Allow);
    // An unrestricted key sees every device, known or not: no lookup.
    assert_eq!(publish(&p, "structure/unknown/state", &dir), Allow);
    assert_eq!(dir.lookups(), 0);
    assert_eq!(publish(&p, "structure/gw/command", &dir), Deny);
    assert_eq!(publish(&p, "structure/south1/command", &dir), Deny);
    assert_eq!(publish(&p, "structure/gw/state/x", &dir), Deny);
    assert_eq!(publish(&p, "structure/events", &dir), Deny);
    assert_eq!(publish(&p, "fleet/gps", &dir), Deny);
    assert_eq!(dir.lookups(), 0);
}

#[test]
fn restricted_publish_and_gateways() {
    let p = restricted(AdditionalTopics::None);
    let dir = Directory::new();
    // Own state, and the state of a listed device: no lookup needed.
    assert_eq!(publish(&p, "structure/gw/state", &dir), Allow);
    assert_eq!(publish(&p, "structure/listed/state", &dir), Allow);
    assert_eq!(dir.lookups(), 0);
    // A gateway reports for the devices it sees through their tags...
    assert_eq!(publish(&p, "structure/north1/state", &dir), Allow);
    assert_eq!(dir.lookups(), 1);
    // ...and for no other device, known or not.
    assert_eq!(publish(&p, "structure/south1/state", &dir), Deny);
    assert_eq!(publish(&p, "structure/unknown/state", &dir), Deny);
    assert_eq!(dir.lookups(), 2);
    // The store answered for `alias` with another device's row: not trusted.
    assert_eq!(publish(&p, "structure/alias/state", &dir), Deny);
    // Commands are never published by devices, not even to themselves.
    for id in ["gw", "listed", "north1", "south1"] {
        assert_eq!(publish(&p, &format!("structure/{id}/command"), &dir), Deny);
    }
    assert_eq!(publish(&p, "structure", &dir), Deny);
    assert_eq!(publish(&p, "fleet/gps", &dir), Deny);
}

#[test]
fn closures_are_directories() {
    let p = restricted(AdditionalTopics::None);
    let devices: HashMap<&str, DeviceRecord> = [("north1", dev("north1", &[("site", "north")]))]
        .into_iter()
        .collect();
    let rules = rules();
    let by_ref = |id: &str| devices.get(id);
    assert_eq!(
        p.may_publish(&rules, "structure/north1/state", &by_ref),
        Ok(Allow)
    );
    let by_value = |id: &str| devices.get(id).cloned();
    assert_eq!(
        p.may_publish(&rules, "structure/north1/state", &by_value),
        Ok(Allow)
    );
    let nobody = |_: &str| None::<DeviceRecord>;
    assert_eq!(
        p.may_publish(&rules, "structure/north1/state", &nobody),
        Ok(Deny)
    );
    assert_eq!(
        p.may_publish(&rules, "structure/gw/state", &nobody),
        Ok(Allow)
    );
}

#[test]
fn invalid_topics_and_filters_are_errors() {
    let p = restricted(AdditionalTopics::All);
    let dir = Directory::new();
    let rules = rules();
    let err = p
        .may_publish(&rules, "structure/+/state", &dir)
        .unwrap_err();
    assert_eq!(err.offset(), Some(10));
    assert!(matches!(err, TopicError::WildcardInName { found: '+', .. }));
    assert!(p.may_publish(&rules, "", &dir).is_err());
    assert!(p.may_receive(&rules, "a/#", &dir).is_err());
    let err = p
        .may_subscribe(&rules, "structure/#/state", &dir)
        .unwrap_err();
    assert!(matches!(err, TopicError::HashNotLast { offset: 10, .. }));
    assert!(p.may_subscribe(&rules, "a\0", &dir).is_err());
    assert_eq!(dir.lookups(), 0);
}

// ---------------------------------------------------------------- subscribe

#[test]
fn shared_subscriptions_are_decided_on_their_filter() {
    let dir = Directory::new();
    let p = restricted(AdditionalTopics::None);
    for (f, expected) in [
        ("$share/g/structure/+/state", Filter),
        ("$share/g/structure/gw/state", Allow),
        ("$share/group-1/structure/north1/command", Allow),
        ("$share/g/structure/south1/state", Deny),
        ("$share/g/structure/unknown/state", Deny),
        ("$share/g/fleet/gps", Deny),
        ("$share/g/structure/gw/other", Deny),
    ] {
        assert_eq!(subscribe(&p, f, &dir), expected, "`{f}`");
        let inner = f.splitn(3, '/').nth(2).unwrap();
        assert_eq!(subscribe(&p, inner, &dir), expected, "`{inner}`");
    }
    let p = unrestricted(AdditionalTopics::None);
    assert_eq!(subscribe(&p, "$share/g/structure/+/state", &dir), Allow);
    assert_eq!(subscribe(&p, "$share/g/structure/#", &dir), Allow);
    // Other `$` filters are not shared subscriptions.
    assert_eq!(subscribe(&p, "$shared/g/structure/+/state", &dir), Deny);
    assert_eq!(subscribe(&p, "$SYS/#", &dir), Deny);
    let rules = rules();
    for malformed in [
        "$share",
        "$share/",
        "$share/g",
        "$share/g/",
        "$share//structure/gw/state",
        "$share/+/structure/gw/state",
        "$share/#",
        "$share/a+b/structure/gw/state",
        "$share/g/structure/#/state",
        "$share/g/a\0",
    ] {
        let err = p.may_subscribe(&rules, malformed, &dir).unwrap_err();
        assert_eq!(err.kind(), TopicKind::Filter, "`{malformed}`: {err}");
    }
    let err = p.may_subscribe(&rules, "$share/g", &dir).unwrap_err();
    assert!(
        matches!(err, TopicError::SharedSubscription { .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "malformed shared subscription `$share/g`, expected `$share/{group}/{filter}` with a group of at least one character without `/`, `+` or `#`, and a filter"
    );
}

#[test]
fn exact_subscriptions_are_classified_like_topics() {
    let dir = Directory::new();
    let p = restricted(AdditionalTopics::None);
    for (f, expected) in [
        ("structure/gw/command", Allow),
        ("structure/gw/state", Allow),
        ("structure/listed/command", Allow),
        ("structure/north1/state", Allow),
        ("structure/north1/command", Allow),
        ("structure/south1/state", Deny),
        ("structure/south1/command", Deny),
        ("structure/unknown/command", Deny),
        ("structure/gw/other", Deny),
        ("structure", Deny),
        ("fleet/gps", Deny),
    ] {
        assert_eq!(subscribe(&p, f, &dir), expected, "`{f}`");
    }
    let p = unrestricted(AdditionalTopics::None);
    for (f, expected) in [
        ("structure/gw/command", Allow),
        ("structure/south1/state", Allow),
        ("structure/unknown/command", Allow),
        ("structure/gw/other", Deny),
        ("fleet/gps", Deny),
    ] {
        assert_eq!(subscribe(&p, f, &dir), expected, "`{f}`");
    }
}

#[test]
fn wildcard_subscriptions_under_the_prefix() {
    let dir = Directory::new();
    let restricted = restricted(AdditionalTopics::None);
    let unrestricted = unrestricted(AdditionalTopics::None);
    for f in [
        "structure/+/state",
        "structure/+/command",
        "structure/#",
        "structure/+/+",
        "structure/gw/+",
        "structure/south1/#",
    ] {
        assert_eq!(subscribe(&restricted, f, &dir), Filter, "`{f}`");
        assert_eq!(subscribe(&unrestricted, f, &dir), Allow, "`{f}`");
    }
    // A wildcard first level also reaches custom topics, which `None` denies.
    for f in ["#", "+/+/state", "+/gw/command"] {
        assert_eq!(subscribe(&restricted, f, &dir), Deny, "`{f}`");
        assert_eq!(subscribe(&unrestricted, f, &dir), Deny, "`{f}`");
    }
    assert_eq!(dir.lookups(), 0);
}

#[test]
fn filtered_subscriptions_deliver_only_what_may_be_received() {
    let dir = Directory::new();
    let p = restricted(AdditionalTopics::None);
    for (t, expected) in [
        ("structure/gw/state", true),
        ("structure/gw/command", true),
        ("structure/listed/state", true),
        ("structure/north1/command", true),
        ("structure/south1/state", false),
        ("structure/unknown/state", false),
        ("structure/alias/state", false),
        ("structure/gw/other", false),
        ("structure", false),
        ("fleet/gps", false),
    ] {
        assert_eq!(receive(&p, t, &dir), expected, "`{t}`");
    }
    let p = unrestricted(AdditionalTopics::None);
    assert!(receive(&p, "structure/south1/state", &dir));
    assert!(!receive(&p, "structure/gw/other", &dir));
    assert!(!receive(&p, "fleet/gps", &dir));
}

#[test]
fn all_additional_topics() {
    let dir = Directory::new();
    let r = restricted(AdditionalTopics::All);
    let u = unrestricted(AdditionalTopics::All);
    for p in [&r, &u] {
        assert_eq!(publish(p, "fleet/gps", &dir), Allow);
        assert_eq!(subscribe(p, "fleet/#", &dir), Allow);
        assert!(receive(p, "fleet/gps", &dir));
        // `$` topics are the broker's: only an allow-list naming them reaches them.
        assert_eq!(publish(p, "$SYS/x", &dir), Deny);
        assert_eq!(subscribe(p, "$SYS/#", &dir), Deny);
        assert!(!receive(p, "$SYS/x", &dir));
        // Still never reserved topics or commands.
        assert_eq!(publish(p, "structure/x", &dir), Deny);
        assert_eq!(publish(p, "structure/gw/command", &dir), Deny);
        assert!(!receive(p, "structure/x", &dir));
    }
    // `#` reaches device topics: filtered for a restricted key only.
    assert_eq!(subscribe(&r, "#", &dir), Filter);
    assert_eq!(subscribe(&u, "#", &dir), Allow);
    assert_eq!(subscribe(&r, "+/+/state", &dir), Filter);
    assert!(!receive(&r, "structure/south1/state", &dir));
}

#[test]
fn allow_lists() {
    let dir = Directory::new();
    let topics = allow_list(
        &["alerts/#", "fleet/+/gps"],
        &["config", "config/+/#", "news/+", "structure/#"],
    );
    let p = restricted(topics.clone());
    assert_eq!(p.additional_topics(), &topics);
    for (t, expected) in [
        ("alerts", Allow),
        ("alerts/fire/north", Allow),
        ("fleet/t1/gps", Allow),
        ("fleet/t1/speed", Deny),
        ("config/x", Deny),
        // Device topics are not the list's business, whatever it says.
        ("structure/south1/state", Deny),
    ] {
        assert_eq!(publish(&p, t, &dir), expected, "publish `{t}`");
    }
    for (f, expected) in [
        ("config", Allow),
        ("config/site/a", Allow),
        ("config/#", Allow), // `config` + `config/+/#` cover it together
        ("config/+", Allow),
        ("news/+", Allow),
        ("news/a", Allow),
        ("news/#", Deny), // `news` and `news/a/b` are not listed
        ("news/+/+", Deny),
        ("alerts/fire", Deny),
        // A wildcard first level reaches every custom topic: not covered.
        ("#", Deny),
        ("+/+", Deny),
        // Under the prefix the list is not consulted: filtered as always.
        ("structure/+/state", Filter),
        ("structure/south1/state", Deny),
    ] {
        assert_eq!(subscribe(&p, f, &dir), expected, "subscribe `{f}`");
    }
    for (t, expected) in [
        ("config", true),
        ("config/a/b", true),
        ("news/a", true),
        ("news/a/b", false),
        ("alerts/fire", false),
        ("structure/south1/state", false),
        ("structure/north1/state", true),
    ] {
        assert_eq!(receive(&p, t, &dir), expected, "receive `{t}`");
    }
}

#[test]
fn an_allow_list_covering_every_custom_topic_admits_wildcard_first_filters() {
    let dir = Directory::new();
    // `+/#` matches every topic with a first level that is not `$…`.
    let topics = allow_list(&[], &["+/#"]);
    let r = restricted(topics.clone());
    let u = unrestricted(topics);
    assert_eq!(subscribe(&r, "#", &dir), Filter);
    assert_eq!(subscribe(&u, "#", &dir), Allow);
    assert_eq!(subscribe(&r, "+/x", &dir), Filter);
    assert_eq!(subscribe(&r, "$SYS/#", &dir), Deny);
}

#[test]
fn deny_lists() {
    let dir = Directory::new();
    let topics = deny_list(
        &["secret/#", "+/private"],
        &["secret/#", "+/private", "structure/#"],
    );
    let p = restricted(topics);
    for (t, expected) in [
        ("fleet/gps", Allow),
        ("secret", Deny),
        ("secret/x", Deny),
        ("a/private", Deny),
        ("a/private/b", Allow),
        ("structure/gw/state", Allow),
        ("structure/gw/command", Deny),
    ] {
        assert_eq!(publish(&p, t, &dir), expected, "publish `{t}`");
    }
    for (f, expected) in [
        ("fleet/#", Deny), // reaches `fleet/private`
        ("fleet/gps/#", Allow),
        ("fleet/+/private", Allow),
        ("secret/x", Deny),
        ("+/x", Deny), // reaches `secret/x`
        ("+/+", Deny), // reaches `a/private`
        ("#", Deny),
        ("a/#", Deny),    // reaches `a/private`
        ("$SYS/#", Deny), // `$` topics: only an allow-list naming them
        ("structure/#", Filter),
    ] {
        assert_eq!(subscribe(&p, f, &dir), expected, "subscribe `{f}`");
    }
    assert!(receive(&p, "fleet/gps", &dir));
    assert!(!receive(&p, "secret/a", &dir));
    assert!(receive(&p, "structure/north1/state", &dir));
}

#[test]
fn a_wildcard_deny_list_denies_dollar_topics() {
    // "No custom topics": `$covert/x` is denied like `covert/x`, although `#`
    // does not match it under MQTT's rule.
    let dir = Directory::new();
    let no_custom = deny_list(&["#"], &["#"]);
    assert!(!FilterList::new(["#"]).unwrap().matches(topic("$covert/x")));
    for p in [&restricted(no_custom.clone()), &unrestricted(no_custom)] {
        for t in ["covert/x", "$covert/x", "$SYS"] {
            assert_eq!(publish(p, t, &dir), Deny, "publish `{t}`");
            assert_eq!(subscribe(p, t, &dir), Deny, "subscribe `{t}`");
            assert!(!receive(p, t, &dir), "receive `{t}`");
        }
        assert_eq!(subscribe(p, "$covert/#", &dir), Deny);
        assert_eq!(subscribe(p, "$covert/+", &dir), Deny);
    }
    // A wildcard level after the first covers them too, as does any deny-list.
    for topics in [
        deny_list(&["+/x"], &["+/x"]),
        deny_list(&["+/#"], &["+/#"]),
        deny_list(&[], &[]),
    ] {
        let p = restricted(topics.clone());
        assert_eq!(publish(&p, "$covert/x", &dir), Deny, "{topics:?}");
        assert_eq!(subscribe(&p, "$covert/x", &dir), Deny, "{topics:?}");
        assert!(!receive(&p, "$covert/x", &dir), "{topics:?}");
    }
    // Without `$` topics, a deny-list still allows what it does not list.
    let p = restricted(deny_list(&["+/x"], &["+/x"]));
    assert_eq!(publish(&p, "covert/y", &dir), Allow);
    assert_eq!(subscribe(&p, "covert/+/z", &dir), Allow);
    // `#` matches no `$` topic: it is judged on the others (`a/x` is denied).
    assert_eq!(subscribe(&p, "#", &dir), Deny);
    let p = unrestricted(deny_list(&[], &["secret/a"]));
    assert_eq!(subscribe(&p, "+/b", &dir), Allow);
    assert_eq!(subscribe(&p, "+/a", &dir), Deny);
}

#[test]
fn only_an_allow_list_naming_a_dollar_topic_reaches_it() {
    let dir = Directory::new();
    // Wildcard first levels name no `$` topic.
    let p = restricted(allow_list(&["#", "+/x"], &["#", "+/x"]));
    assert_eq!(publish(&p, "covert/x", &dir), Allow);
    assert_eq!(publish(&p, "$covert/x", &dir), Deny);
    assert_eq!(subscribe(&p, "$covert/x", &dir), Deny);
    assert!(!receive(&p, "$covert/x", &dir));
    // Named: allowed, and nothing beyond what the list covers.
    let p = restricted(allow_list(&["$fleet/#"], &["$fleet/+"]));
    assert_eq!(publish(&p, "$fleet/x", &dir), Allow);
    assert_eq!(publish(&p, "$fleet", &dir), Allow);
    assert_eq!(publish(&p, "$other/x", &dir), Deny);
    assert_eq!(publish(&p, "fleet/x", &dir), Deny);
    assert_eq!(subscribe(&p, "$fleet/+", &dir), Allow);
    assert_eq!(subscribe(&p, "$fleet/a", &dir), Allow);
    assert_eq!(subscribe(&p, "$fleet/#", &dir), Deny); // `$fleet/a/b` is not listed
    assert!(receive(&p, "$fleet/a", &dir));
    assert!(!receive(&p, "$fleet/a/b", &dir));
}

#[test]
fn deny_lists_do_not_govern_device_topics() {
    let dir = Directory::new();
    let p = restricted(deny_list(&[], &["+/private", "structure/#"]));
    // `structure/#` only reaches topics under the prefix, which the device rules
    // govern; the custom topics of `+/+/state` meet no listed filter.
    assert_eq!(subscribe(&p, "+/+/state", &dir), Filter);
    assert_eq!(subscribe(&p, "+/private", &dir), Deny);
    assert_eq!(subscribe(&p, "structure/+/state", &dir), Filter);
    assert_eq!(subscribe(&p, "structure/north1/state", &dir), Allow);
    let u = unrestricted(deny_list(&[], &["+/private", "structure/#"]));
    assert_eq!(subscribe(&u, "+/+/state", &dir), Allow);
    assert_eq!(subscribe(&u, "#", &dir), Deny);
}

#[test]
fn a_dollar_prefix_is_out_of_reach_of_wildcards() {
    let dir = Directory::new();
    let rules = TopicRules::new("$structure").unwrap();
    let p = restricted(AdditionalTopics::All);
    assert_eq!(p.may_subscribe(&rules, "#", &dir), Ok(Allow));
    assert_eq!(p.may_subscribe(&rules, "$structure/#", &dir), Ok(Filter));
    assert_eq!(
        p.may_publish(&rules, "$structure/gw/state", &dir),
        Ok(Allow)
    );
    assert_eq!(p.may_publish(&rules, "structure/gw/state", &dir), Ok(Allow));
    assert_eq!(
        p.may_receive(&rules, "$structure/south1/state", &dir),
        Ok(false)
    );
}

#[test]
fn custom_prefix_decisions() {
    let dir = Directory::new();
    let rules = TopicRules::new("acme").unwrap();
    let p = restricted(AdditionalTopics::None);
    assert_eq!(p.may_publish(&rules, "acme/gw/state", &dir), Ok(Allow));
    assert_eq!(p.may_publish(&rules, "acme/south1/state", &dir), Ok(Deny));
    // Under another prefix, `structure/…` is just a custom topic.
    assert_eq!(p.may_publish(&rules, "structure/gw/state", &dir), Ok(Deny));
    assert_eq!(p.may_subscribe(&rules, "acme/#", &dir), Ok(Filter));
}

// ---------------------------------------------------------------- the policy

#[test]
fn filter_lists_are_bounded() {
    assert!(FilterList::new(vec!["a"; MAX_FILTERS_PER_LIST]).is_ok());
    assert_eq!(
        FilterList::new(vec!["a"; MAX_FILTERS_PER_LIST + 1]).unwrap_err(),
        FilterListError::TooMany { max: 1000 }
    );
    assert_eq!(
        FilterListError::TooMany { max: 1000 }.to_string(),
        "expected at most 1000 topic filters in a list, found one more at index 1000"
    );
    assert!(FilterList::new(["x".repeat(MAX_FILTER_LEN)]).is_ok());
    let err = FilterList::new(["ok", &"x".repeat(MAX_FILTER_LEN + 1)]).unwrap_err();
    // The cause once: from `source()`, not repeated in the message.
    assert_eq!(err.to_string(), "invalid topic filter at index 1");
    assert_eq!(
        std::error::Error::source(&err).unwrap().to_string(),
        format!(
            "topic filter `{}…` is 1025 bytes long, expected at most 1024",
            "x".repeat(32)
        )
    );
    let err = FilterList::new(["a/#/b"]).unwrap_err();
    assert!(matches!(
        err,
        FilterListError::Filter {
            index: 0,
            source: TopicError::HashNotLast { offset: 2, .. }
        }
    ));
    let l = list(&["a", "b/#"]);
    assert_eq!(l.len(), 2);
    assert!(!l.is_empty());
    assert!(FilterList::empty().is_empty());
    assert_eq!(
        l.as_slice().iter().map(|f| f.as_str()).collect::<Vec<_>>(),
        ["a", "b/#"]
    );
}

#[test]
fn principals_share_the_records_policy() {
    let topics = Arc::new(allow_list(&["a/#"], &[]));
    let (record, secret) = record(Scope::Unrestricted, AdditionalTopics::None);
    let record = record.with_additional_topics(Arc::clone(&topics));
    assert!(std::ptr::eq(record.additional_topics(), &*topics));
    let p = Authenticator::new(cheap_policy())
        .authenticate(record.key(), Some(&record), &secret, &dev("d", &[]))
        .unwrap();
    assert!(std::ptr::eq(p.additional_topics(), &*topics));
    // `None` is the default and allocates nothing.
    let (plain, _) = record_without_topics();
    assert_eq!(plain.additional_topics(), &AdditionalTopics::None);
    assert_eq!(AdditionalTopics::default(), AdditionalTopics::None);
}

fn record_without_topics() -> (AccessKey, structure_access::Secret) {
    let new = AccessKey::generate(
        &mut ChaCha20Rng::seed_from_u64(8),
        APP.parse().unwrap(),
        Scope::Unrestricted,
        &cheap_policy(),
    )
    .unwrap();
    (new.record, new.secret)
}

#[test]
fn decisions_print_as_words() {
    assert_eq!(Allow.to_string(), "allow");
    assert_eq!(Deny.to_string(), "deny");
    assert_eq!(Filter.to_string(), "filter");
    assert!(Allow.is_granted() && Filter.is_granted() && !Deny.is_granted());
}

// ---------------------------------------------------------------- serde

#[test]
fn the_policy_reads_and_writes_the_platforms_shape() {
    use serde_json::json;
    for (value, topics) in [
        (
            json!({"filterType": "none", "pubTopics": [], "subTopics": []}),
            AdditionalTopics::None,
        ),
        (
            json!({"filterType": "all", "pubTopics": [], "subTopics": []}),
            AdditionalTopics::All,
        ),
        (
            json!({"filterType": "whitelist", "pubTopics": ["a/#"], "subTopics": ["b/+", "c"]}),
            allow_list(&["a/#"], &["b/+", "c"]),
        ),
        (
            json!({"filterType": "blacklist", "pubTopics": [], "subTopics": ["x"]}),
            deny_list(&[], &["x"]),
        ),
    ] {
        assert_eq!(serde_json::to_value(&topics).unwrap(), value);
        assert_eq!(
            serde_json::from_value::<AdditionalTopics>(value).unwrap(),
            topics
        );
    }
    // Lists may be missing or null; for `none` and `all` they are ignored.
    for (value, topics) in [
        (json!({"filterType": "whitelist"}), allow_list(&[], &[])),
        (
            json!({"filterType": "blacklist", "pubTopics": null, "subTopics": ["a"]}),
            deny_list(&[], &["a"]),
        ),
        (
            json!({"filterType": "all", "pubTopics": ["a"]}),
            AdditionalTopics::All,
        ),
    ] {
        assert_eq!(
            serde_json::from_value::<AdditionalTopics>(value).unwrap(),
            topics
        );
    }
}

#[test]
fn the_policy_refuses_what_it_cannot_enforce() {
    use serde_json::json;
    let refused = |value: serde_json::Value| {
        serde_json::from_value::<AdditionalTopics>(value)
            .unwrap_err()
            .to_string()
    };
    let err = refused(json!({"filterType": "graylist"}));
    assert!(err.contains("unknown variant `graylist`"), "{err}");
    let err = refused(json!({"pubTopics": []}));
    assert!(err.contains("missing field `filterType`"), "{err}");
    let err = refused(json!({"filterType": "whitelist", "subtopics": ["a"]}));
    assert!(err.contains("unknown field `subtopics`"), "{err}");
    let err = refused(json!({"filterType": "whitelist", "pubTopics": ["ok", "a/#/b"]}));
    assert_eq!(
        err,
        "invalid topic filter at pubTopics[1]: unexpected `/` after `#` at byte 2 of topic filter `a/#/b`, expected `#` only as the last level"
    );
    let err = refused(json!({"filterType": "blacklist", "subTopics": ["x".repeat(1025)]}));
    assert!(
        err.starts_with("invalid topic filter at subTopics[0]: topic filter `xxxx")
            && err.ends_with("is 1025 bytes long, expected at most 1024"),
        "{err}"
    );
    let err = refused(json!({"filterType": "whitelist", "subTopics": vec!["a"; 1001]}));
    assert_eq!(
        err,
        "expected at most 1000 topic filters in subTopics, found one more at subTopics[1000]"
    );
    let err = refused(json!({"filterType": "whitelist", "pubTopics": [1]}));
    assert!(err.contains("expected an MQTT topic filter"), "{err}");
    // Invalid lists are refused even where they would be ignored.
    let err = refused(json!({"filterType": "none", "pubTopics": ["+a"]}));
    assert!(err.contains("pubTopics[0]"), "{err}");
    // A standalone list.
    // serde keeps only a message: it holds the cause, once.
    let err = serde_json::from_str::<FilterList>(r##"["a", "#/"]"##).unwrap_err();
    assert!(
        err.to_string().starts_with(
            "invalid topic filter at index 1: unexpected `/` after `#` at byte 0 of topic filter `#/`"
        ),
        "{err}"
    );
    assert_eq!(
        serde_json::from_str::<FilterList>(r##"["a","+/#"]"##).unwrap(),
        list(&["a", "+/#"])
    );
}

#[test]
fn records_carry_the_policy_only_when_set() {
    let (plain, _) = record_without_topics();
    let json = serde_json::to_value(&plain).unwrap();
    assert!(json.get("additionalTopics").is_none(), "{json}");
    // Records written before the field existed load as `None`, as does `null`.
    let back: AccessKey = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back, plain);
    let mut with_null = json.clone();
    with_null["additionalTopics"] = serde_json::Value::Null;
    assert_eq!(
        serde_json::from_value::<AccessKey>(with_null).unwrap(),
        plain
    );

    let set = plain
        .clone()
        .with_additional_topics(allow_list(&["a"], &["b/#"]));
    let json = serde_json::to_value(&set).unwrap();
    assert_eq!(
        json["additionalTopics"],
        serde_json::json!({"filterType": "whitelist", "pubTopics": ["a"], "subTopics": ["b/#"]})
    );
    let back: AccessKey = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back, set);
    assert_eq!(back.additional_topics(), set.additional_topics());

    // Explicit `none` reads back as the default and is not written again.
    let mut none = json.clone();
    none["additionalTopics"] = serde_json::json!({"filterType": "none"});
    let back: AccessKey = serde_json::from_value(none).unwrap();
    assert_eq!(back, plain);
    assert!(
        serde_json::to_value(&back)
            .unwrap()
            .get("additionalTopics")
            .is_none()
    );

    let mut bad = json;
    bad["additionalTopics"]["pubTopics"] = serde_json::json!(["a+"]);
    let err = serde_json::from_value::<AccessKey>(bad).unwrap_err();
    assert!(err.to_string().contains("pubTopics[0]"), "{err}");
}

// ---------------------------------------------------------------- allocations

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counter is a plain thread-local cell that never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations<T>(f: impl FnOnce() -> T) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    std::hint::black_box(f());
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn decisions_allocate_nothing() {
    let dir = Directory::new();
    let rules = rules();
    let p = restricted(allow_list(&["alerts/#"], &["config", "config/+/#"]));
    let d = deny_list(&["alerts/#"], &["config/+", "x/#"]);
    let q = restricted(d);
    for (topic, f) in [
        ("structure/gw/state", "structure/+/state"),
        ("structure/north1/state", "structure/north1/command"),
        ("structure/south1/state", "#"),
        ("alerts/fire", "config/#"),
        ("fleet/gps", "+/+/x"),
    ] {
        for p in [&p, &q] {
            assert_eq!(allocations(|| p.may_publish(&rules, topic, &dir)), 0);
            assert_eq!(allocations(|| p.may_receive(&rules, topic, &dir)), 0);
            assert_eq!(allocations(|| p.may_subscribe(&rules, f, &dir)), 0);
        }
    }
}
