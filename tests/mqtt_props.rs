//! Property tests of the MQTT topic policy: filter matching agrees with a naive
//! reference matcher; containment and intersection agree with brute force over
//! every topic of a small alphabet; for restricted keys, no topic of an
//! out-of-scope device is ever allowed by publish, subscribe or `may_receive`.

use std::collections::HashMap;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use structure_access::mqtt::{
    AdditionalTopics, Decision, FilterList, Topic, TopicFilter, TopicRules,
};
use structure_access::{AccessKey, Authenticator, Cost, DeviceRecord, HashPolicy, Restriction};

/// The application of every key and device here.
const APP: &str = "app1";

// ---------------------------------------------------------------- reference

/// MQTT matching, written the plain way: recursion over level slices.
fn reference_matches(filter: &str, topic: &str) -> bool {
    fn rec(f: &[&str], t: &[&str]) -> bool {
        match (f.split_first(), t.split_first()) {
            (None, None) => true,
            (Some((&"#", _)), _) => true,
            (Some(_), None) | (None, Some(_)) => false,
            (Some((fl, f_rest)), Some((tl, t_rest))) => {
                (*fl == "+" || fl == tl) && rec(f_rest, t_rest)
            }
        }
    }
    let f: Vec<&str> = filter.split('/').collect();
    let t: Vec<&str> = topic.split('/').collect();
    if t[0].starts_with('$') && (f[0] == "+" || f[0] == "#") {
        return false;
    }
    rec(&f, &t)
}

/// Levels filters are made of; topics also use `z`, which no filter names, so
/// that every topic a wildcard can stand for has a representative.
const FILTER_LEVELS: &[&str] = &["a", "b", "", "$s", "+"];
const TOPIC_LEVELS: &[&str] = &["a", "b", "", "$s", "z"];
const MAX_FILTER_LEVELS: usize = 4;

/// Every topic over [`TOPIC_LEVELS`] with up to `MAX_FILTER_LEVELS + 1` levels:
/// deeper topics behave like the deepest ones for filters this short.
fn all_topics() -> Vec<String> {
    let mut out = Vec::new();
    let mut layer: Vec<String> = TOPIC_LEVELS.iter().map(|s| s.to_string()).collect();
    for _ in 0..=MAX_FILTER_LEVELS {
        out.extend(layer.iter().cloned());
        layer = layer
            .iter()
            .flat_map(|t| TOPIC_LEVELS.iter().map(move |l| format!("{t}/{l}")))
            .collect();
    }
    out.retain(|t| !t.is_empty());
    out
}

fn small_filter() -> impl Strategy<Value = String> {
    (
        vec(select(FILTER_LEVELS), 0..=MAX_FILTER_LEVELS),
        any::<bool>(),
    )
        .prop_filter_map("a filter has a level", |(levels, hash)| {
            let mut levels: Vec<&str> = levels;
            if hash {
                levels.push("#");
            }
            levels.truncate(MAX_FILTER_LEVELS);
            // A single empty level is the empty string: not a filter.
            Some(levels.join("/")).filter(|text| !text.is_empty())
        })
}

fn any_topic_text() -> impl Strategy<Value = String> {
    vec(select(TOPIC_LEVELS), 1..=MAX_FILTER_LEVELS + 1)
        .prop_map(|l| l.join("/"))
        .prop_filter("a topic is not empty", |t| !t.is_empty())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn matching_agrees_with_the_reference(f in small_filter(), t in any_topic_text()) {
        let filter = TopicFilter::new(&f).unwrap();
        let topic = Topic::new(&t).unwrap();
        prop_assert_eq!(filter.matches(topic), reference_matches(&f, &t), "`{}` vs `{}`", f, t);
    }

    #[test]
    fn matching_arbitrary_text_agrees_with_the_reference(
        f in "[ab/+#$]{1,10}",
        t in "[ab/$]{1,10}",
    ) {
        let (Ok(filter), Ok(topic)) = (TopicFilter::new(&f), Topic::new(&t)) else {
            return Ok(());
        };
        prop_assert_eq!(filter.matches(topic), reference_matches(&f, &t), "`{}` vs `{}`", f, t);
    }

    #[test]
    fn validation_accepts_exactly_the_mqtt_grammar(text in "[ab/+#\u{0}é]{0,8}") {
        let levels: Vec<&str> = text.split('/').collect();
        let filter_ok = !text.is_empty()
            && !text.contains('\0')
            && levels.iter().enumerate().all(|(i, l)| {
                (!l.contains('+') && !l.contains('#'))
                    || *l == "+"
                    || (*l == "#" && i == levels.len() - 1)
            });
        let topic_ok = !text.is_empty() && !text.contains(['\0', '+', '#']);
        prop_assert_eq!(TopicFilter::new(&text).is_ok(), filter_ok, "filter `{}`", text.escape_debug());
        prop_assert_eq!(Topic::new(&text).is_ok(), topic_ok, "topic `{}`", text.escape_debug());
        if let Err(e) = TopicFilter::new(&text) {
            prop_assert!(e.offset().is_none_or(|o| o < text.len() && text.is_char_boundary(o)));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]

    #[test]
    fn containment_and_intersection_agree_with_brute_force(
        f in small_filter(),
        listed in vec(small_filter(), 0..4),
    ) {
        let topics = all_topics();
        let filter = TopicFilter::new(&f).unwrap();
        let list = FilterList::new(&listed).unwrap();
        let matched: Vec<&String> = topics.iter().filter(|t| reference_matches(&f, t)).collect();
        let covered = matched
            .iter()
            .all(|t| listed.iter().any(|l| reference_matches(l, t)));
        prop_assert_eq!(list.covers(filter), covered, "`{}` ⊆ ∪{:?}", f, listed);
        for l in &listed {
            let common = matched.iter().any(|t| reference_matches(l, t));
            let other = TopicFilter::new(l).unwrap();
            prop_assert_eq!(filter.intersects(other), common, "`{}` ∩ `{}`", f, l);
            prop_assert_eq!(other.intersects(filter), common, "`{}` ∩ `{}`", l, f);
        }
        let any_common = matched
            .iter()
            .any(|t| listed.iter().any(|l| reference_matches(l, t)));
        prop_assert_eq!(list.intersects(filter), any_common);
    }
}

/// An additional-topics policy over small filters: `kind` 0 none, 1 all,
/// 2 allow-list, 3 deny-list (the same list for publish and subscribe).
fn small_policy(kind: u8, listed: &[String]) -> AdditionalTopics {
    let list = || FilterList::new(listed).unwrap();
    match kind {
        0 => AdditionalTopics::None,
        1 => AdditionalTopics::All,
        2 => AdditionalTopics::AllowList {
            publish: list(),
            subscribe: list(),
        },
        _ => AdditionalTopics::DenyList {
            publish: list(),
            subscribe: list(),
        },
    }
}

/// Whether `policy` allows the custom topic `t`, by a plain reading: a `$` topic
/// only through an allow-list filter that matches it (which names its first
/// level: a wildcard first level matches no `$` topic).
fn reference_allows(kind: u8, listed: &[String], t: &str) -> bool {
    let listed_match = listed.iter().any(|l| reference_matches(l, t));
    let dollar = t.starts_with('$');
    match kind {
        0 => false,
        1 => !dollar,
        2 => listed_match,
        _ => !dollar && !listed_match,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]

    #[test]
    fn additional_topics_agree_with_a_plain_reading(
        kind in 0u8..4,
        listed in vec(small_filter(), 0..4),
        f in small_filter(),
    ) {
        let policy = small_policy(kind, &listed);
        let topics = all_topics();
        for t in &topics {
            let topic = Topic::new(t).unwrap();
            let expected = reference_allows(kind, &listed, t);
            prop_assert_eq!(policy.allows_publish(topic), expected, "publish `{}` under {:?}", t, policy);
            prop_assert_eq!(policy.allows_receive(topic), expected, "receive `{}` under {:?}", t, policy);
            if t.starts_with('$') && expected {
                let first = t.split('/').next().unwrap();
                prop_assert!(
                    listed.iter().any(|l| l.split('/').next() == Some(first) && reference_matches(l, t)),
                    "`{}` allowed without an allow-list filter naming `{}`", t, first
                );
            }
        }
        // A subscription is allowed exactly when every topic it can match is.
        let every = topics
            .iter()
            .filter(|t| reference_matches(&f, t))
            .all(|t| reference_allows(kind, &listed, t));
        prop_assert_eq!(
            policy.allows_subscribe(TopicFilter::new(&f).unwrap()),
            every,
            "subscribe `{}` under {:?}", f, policy
        );
    }
}

// ---------------------------------------------------------------- scope safety

const IDS: &[&str] = &["gw", "d0", "d1", "d2", "d3"];
const TAGS: &[(&str, &str)] = &[("site", "n"), ("site", "s"), ("kind", "x"), ("kind", "y")];
const PATTERNS: &[&str] = &["site=n", "kind=", "=x", "site=s"];
/// Levels of the filters in policies and subscriptions: device topic parts,
/// wildcards and custom text.
const POLICY_LEVELS: &[&str] = &["structure", "gw", "d0", "d1", "state", "command", "x", "+"];

#[derive(Debug, Clone)]
struct World {
    /// Listed device IDs and tag patterns of the key.
    listed: Vec<&'static str>,
    patterns: Vec<&'static str>,
    /// Tags of each device of the store; `None`: unknown to the store.
    devices: Vec<Option<Vec<(&'static str, &'static str)>>>,
    policy: AdditionalTopics,
}

fn policy_filter() -> impl Strategy<Value = String> {
    (vec(select(POLICY_LEVELS), 1..=3), any::<bool>()).prop_map(|(levels, hash)| {
        let mut text = levels.join("/");
        if hash {
            text.push_str("/#");
        }
        text
    })
}

fn lists() -> impl Strategy<Value = (FilterList, FilterList)> {
    (vec(policy_filter(), 0..4), vec(policy_filter(), 0..4))
        .prop_map(|(p, s)| (FilterList::new(p).unwrap(), FilterList::new(s).unwrap()))
}

fn policy() -> impl Strategy<Value = AdditionalTopics> {
    prop_oneof![
        Just(AdditionalTopics::None),
        Just(AdditionalTopics::All),
        lists().prop_map(|(publish, subscribe)| AdditionalTopics::AllowList { publish, subscribe }),
        lists().prop_map(|(publish, subscribe)| AdditionalTopics::DenyList { publish, subscribe }),
        Just(AdditionalTopics::AllowList {
            publish: FilterList::new(["#"]).unwrap(),
            subscribe: FilterList::new(["#", "+/#"]).unwrap(),
        }),
    ]
}

fn world() -> impl Strategy<Value = World> {
    (
        proptest::sample::subsequence(IDS, 0..3),
        proptest::sample::subsequence(PATTERNS, 0..3),
        vec(
            proptest::option::weighted(0.8, proptest::sample::subsequence(TAGS, 0..3)),
            IDS.len(),
        ),
        policy(),
    )
        .prop_filter("a restriction has an entry", |(l, p, _, _)| {
            !l.is_empty() || !p.is_empty()
        })
        .prop_map(|(listed, patterns, devices, policy)| World {
            listed,
            patterns,
            devices,
            policy,
        })
}

fn pattern_matches(pattern: &str, (key, value): (&str, &str)) -> bool {
    let (k, v) = pattern.split_once('=').unwrap();
    (k.is_empty() || k == key) && (v.is_empty() || v == value)
}

impl World {
    fn device(&self, i: usize) -> Option<DeviceRecord> {
        self.devices[i].as_ref().map(|tags| {
            tags.iter().fold(
                DeviceRecord::new(APP.parse().unwrap(), IDS[i].parse().unwrap()),
                |d, (k, v)| d.with_tag(k, v),
            )
        })
    }

    /// Whether device `i` is in scope, by a plain reading of the key.
    fn in_scope(&self, i: usize) -> bool {
        self.listed.contains(&IDS[i])
            || self.devices[i].as_ref().is_some_and(|tags| {
                tags.iter()
                    .any(|&tag| self.patterns.iter().any(|p| pattern_matches(p, tag)))
            })
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn out_of_scope_devices_never_leak(
        world in world(),
        subscriptions in vec(policy_filter(), 1..6),
        single_application in any::<bool>(),
    ) {
        let policy = HashPolicy::default().with_params(Cost::new(64, 1, 1)).unwrap();
        let restriction: Restriction = world
            .listed
            .iter()
            .chain(&world.patterns)
            .copied()
            .collect::<Vec<_>>()
            .join(",")
            .parse()
            .unwrap();
        let new = AccessKey::generate(&mut ChaCha20Rng::seed_from_u64(1), APP.parse().unwrap(), restriction.into(), &policy)
            .unwrap();
        let record = new.record.with_additional_topics(world.policy.clone());
        // The gateway `gw` must itself be in scope to connect.
        prop_assume!(world.in_scope(0));
        let gateway = world.device(0).unwrap_or_else(|| DeviceRecord::new(APP.parse().unwrap(), "gw".parse().unwrap()));
        let principal = Authenticator::new(policy)
            .authenticate(record.key(), Some(&record), &new.secret, &gateway)
            .unwrap();

        let store: HashMap<&str, DeviceRecord> = (0..IDS.len())
            .filter_map(|i| world.device(i).map(|d| (IDS[i], d)))
            .collect();
        let directory = |id: &str| store.get(id);
        // Several applications on the broker (the default): a device the
        // directory does not know is of no known application, so not seen,
        // even when the key lists its ID.
        let rules = if single_application {
            TopicRules::default().with_single_application(APP.parse().unwrap())
        } else {
            TopicRules::default()
        };

        for (i, id) in IDS.iter().enumerate().skip(1) {
            let seen = world.in_scope(i) && (single_application || world.devices[i].is_some());
            for kind in ["state", "command"] {
                let topic = format!("structure/{id}/{kind}");
                let publish = principal.may_publish(&rules, &topic, &directory).unwrap();
                let exact = principal.may_subscribe(&rules, &topic, &directory).unwrap();
                let receive = principal.may_receive(&rules, &topic, &directory).unwrap();
                // The rules, exactly.
                prop_assert_eq!(publish == Decision::Allow, seen && kind == "state", "publish {}", topic);
                prop_assert_eq!(exact == Decision::Allow, seen, "subscribe {}", topic);
                prop_assert_eq!(receive, seen, "receive {}", topic);
                if seen {
                    continue;
                }
                // No wildcard subscription delivers it unfiltered.
                let t = Topic::new(&topic).unwrap();
                for f in &subscriptions {
                    if TopicFilter::new(f).unwrap().matches(t) {
                        let d = principal.may_subscribe(&rules, f, &directory).unwrap();
                        prop_assert_ne!(d, Decision::Allow, "`{}` would deliver {}", f, topic);
                    }
                }
                for f in ["#", "+/+/+", "structure/#", "structure/+/state", "+/+/command"] {
                    let d = principal.may_subscribe(&rules, f, &directory).unwrap();
                    prop_assert_ne!(d, Decision::Allow, "`{}`", f);
                }
            }
        }
        // The principal's own topics, for completeness.
        prop_assert_eq!(
            principal.may_publish(&rules, "structure/gw/state", &|_: &str| None::<DeviceRecord>),
            Ok(Decision::Allow)
        );
    }
}
