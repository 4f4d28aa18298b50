//! MQTT topics: topic and filter parsing never panics and accepts exactly the MQTT
//! grammar; matching agrees with a plain reference matcher; intersection and
//! containment never contradict matching; for a restricted principal no topic
//! of an out-of-scope device, or of a device of another application, is ever
//! allowed by publish, subscribe or `may_receive`; and a `$` custom topic is
//! reached only through an allow-list filter naming its first level (never by
//! `all` or under a deny-list).
//!
//! The input is text, one item a line, so the seeds are readable:
//!
//! ```text
//! structure/d1/state      a topic
//! structure/+/state       a filter
//! whitelist acme single   the policy (none, all, whitelist, blacklist), an optional
//!                         prefix (`-` for the default) and `single` when the broker
//!                         declares a single application
//! d d1 +                  a device of the store (`+`: tagged into scope)
//! x d2 +                  a device of another application (ignored with `single`)
//! alerts/#                any other line: a filter of the policy's lists
//! ```
#![no_main]

use std::collections::HashMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use structure_access::mqtt::{
    AdditionalTopics, Decision, FilterList, Topic, TopicClass, TopicFilter, TopicFilterBuf,
    TopicRules,
};
use structure_access::{Cost, 
    AccessKey, Authenticator, Device, DeviceRecord, HashPolicy, Restriction, Secret,
    VerificationCache,
};

/// The application of the key and of the devices of `d` lines.
const APP: &str = "app1";
/// The application of the devices of `x` lines.
const OTHER_APP: &str = "app2";

/// The gateway `gw` (tag `site=n`) and a key restricted to `site=n` and `listed`.
struct Fixture {
    auth: Authenticator,
    record: AccessKey,
    secret: Secret,
    gateway: DeviceRecord,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let policy = HashPolicy::default().with_params(Cost::new(64, 1, 1)).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let scope: Restriction = "site=n,listed".parse().unwrap();
        let new =
            AccessKey::generate(&mut rng, APP.parse().unwrap(), scope.into(), &policy).unwrap();
        // Repeat authentications of the same secret hit the cache: no Argon2 per run.
        let auth = Authenticator::new(policy).with_cache(VerificationCache::with_rng(4, &mut rng));
        Fixture {
            auth,
            record: new.record,
            secret: new.secret,
            gateway: DeviceRecord::new(APP.parse().unwrap(), "gw".parse().unwrap())
                .with_tag("site", "n"),
        }
    })
}

/// MQTT matching, the plain way (a loop, so that 30000 levels do not recurse).
fn reference_matches(filter: &str, topic: &str) -> bool {
    let f: Vec<&str> = filter.split('/').collect();
    let t: Vec<&str> = topic.split('/').collect();
    if t[0].starts_with('$') && (f[0] == "+" || f[0] == "#") {
        return false;
    }
    let mut i = 0;
    loop {
        if i == f.len() {
            return i == t.len();
        }
        if f[i] == "#" {
            return true;
        }
        if i == t.len() || (f[i] != "+" && f[i] != t[i]) {
            return false;
        }
        i += 1;
    }
}

fn reference_filter_ok(text: &str) -> bool {
    let levels: Vec<&str> = text.split('/').collect();
    !text.is_empty()
        && text.len() <= 65535
        && !text.contains('\0')
        && levels.iter().enumerate().all(|(i, l)| {
            (!l.contains(['+', '#'])) || *l == "+" || (*l == "#" && i == levels.len() - 1)
        })
}

fn reference_topic_ok(text: &str) -> bool {
    !text.is_empty() && text.len() <= 65535 && !text.contains(['\0', '+', '#'])
}

/// Validates `text` both ways and checks the answers and errors.
fn check_parsing(text: &str) {
    let topic = Topic::new(text);
    assert_eq!(topic.is_ok(), reference_topic_ok(text), "topic {text:?}");
    let filter = TopicFilter::new(text);
    assert_eq!(filter.is_ok(), reference_filter_ok(text), "filter {text:?}");
    for err in [topic.err(), filter.clone().err()].into_iter().flatten() {
        let message = err.to_string();
        assert!(
            !message.contains('\n') && !message.contains('\0'),
            "{message:?}"
        );
        if let Some(offset) = err.offset() {
            assert!(
                offset < text.len() && text.is_char_boundary(offset),
                "{err:?}"
            );
        }
    }
    if let Ok(filter) = filter {
        let owned = TopicFilterBuf::new(text).unwrap();
        assert_eq!(owned.as_filter(), filter);
        assert_eq!(
            filter.has_wildcards(),
            text.split('/').any(|l| l == "+" || l == "#")
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let text = match std::str::from_utf8(data) {
        Ok(text) => text,
        Err(e) => std::str::from_utf8(&data[..e.valid_up_to()]).unwrap(),
    };
    let mut lines = text.split('\n');
    let topic_text = lines.next().unwrap_or_default();
    let filter_text = lines.next().unwrap_or_default();
    let mut header = lines.next().unwrap_or_default().split(' ');
    let kind = header.next().unwrap_or_default();
    let prefix = header.next().filter(|p| *p != "-");
    let single = header.next() == Some("single");
    let mut store: HashMap<String, DeviceRecord> = HashMap::new();
    let mut listed = Vec::new();
    for line in lines {
        let device = match (line.strip_prefix("d "), line.strip_prefix("x ")) {
            (Some(device), _) => Some((APP, device)),
            (None, Some(device)) if !single => Some((OTHER_APP, device)),
            (None, Some(_)) => continue,
            (None, None) => None,
        };
        if let Some((app, device)) = device {
            let (id, tagged) = match device.strip_suffix(" +") {
                Some(id) => (id, true),
                None => (device, false),
            };
            if let Ok(id) = id.parse() {
                let site = if tagged { "n" } else { "s" };
                store.insert(
                    device_key(id),
                    DeviceRecord::new(app.parse().unwrap(), id).with_tag("site", site),
                );
            }
        } else {
            listed.push(line);
        }
    }

    check_parsing(topic_text);
    check_parsing(filter_text);
    for line in &listed {
        check_parsing(line);
    }

    let topic = Topic::new(topic_text).ok();
    let filter = TopicFilter::new(filter_text).ok();
    if let (Some(topic), Some(filter)) = (topic, filter) {
        assert_eq!(
            filter.matches(topic),
            reference_matches(filter_text, topic_text),
            "{filter_text:?} vs {topic_text:?}"
        );
    }

    // Intersection and containment never contradict matching.
    let list = FilterList::new(&listed).ok();
    if let (Some(list), Some(filter)) = (&list, filter) {
        let covered = list.covers(filter);
        for l in list.as_slice() {
            let l = l.as_filter();
            assert_eq!(l.intersects(filter), filter.intersects(l));
            if let Some(topic) = topic {
                if filter.matches(topic) && l.matches(topic) {
                    assert!(filter.intersects(l), "{filter} ∩ {l} has {topic}");
                }
            }
        }
        if let Some(topic) = topic {
            if covered && filter.matches(topic) {
                assert!(list.matches(topic), "{filter} ⊆ ∪{list:?} misses {topic}");
            }
        }
        if let Some(as_topic) = filter.as_topic() {
            assert_eq!(covered, list.matches(as_topic));
        }
    }

    // Decisions of the restricted gateway.
    let lists = || list.clone().unwrap_or_default();
    let policy = match kind {
        "all" => AdditionalTopics::All,
        "whitelist" => AdditionalTopics::AllowList {
            publish: lists(),
            subscribe: lists(),
        },
        "blacklist" => AdditionalTopics::DenyList {
            publish: lists(),
            subscribe: lists(),
        },
        _ => AdditionalTopics::None,
    };
    let rules = prefix
        .and_then(|p| TopicRules::new(p).ok())
        .unwrap_or_default();
    let rules = if single {
        rules.with_single_application(APP.parse().unwrap())
    } else {
        rules
    };
    let f = fixture();
    let record = f.record.clone().with_additional_topics(policy.clone());
    let principal = f
        .auth
        .authenticate(record.key(), Some(&record), &f.secret, &f.gateway)
        .unwrap();
    let directory = |id: &str| store.get(id);
    // With several applications, only a device the store places in the
    // gateway's application can be seen, listed or not.
    let in_scope = |id: &str| {
        let known = store.get(id).filter(|d| d.application() == APP);
        id == "gw"
            || (id == "listed" && (single || known.is_some()))
            || known.is_some_and(|d| d.tags().any(|(k, v)| (k, v) == ("site", "n")))
    };

    // The fuzzed topic, and the device topics of every device named.
    let mut topics: Vec<String> = topic.iter().map(|t| t.as_str().to_owned()).collect();
    for id in store
        .keys()
        .map(String::as_str)
        .chain(["gw", "listed", "stranger"])
    {
        for kind in ["state", "command"] {
            topics.push(format!("{}/{id}/{kind}", rules.prefix()));
        }
    }
    // Among valid filters only a malformed shared subscription is an error.
    let subscribed = filter.and_then(|filter| {
        match principal.may_subscribe(&rules, filter.as_str(), &directory) {
            Ok(decision) => Some(decision),
            Err(e) => {
                assert!(filter.as_str().starts_with("$share"), "{filter_text}: {e}");
                None
            }
        }
    });
    // A filter of `$` custom topics needs an allow-list that covers it.
    if let (Some(filter), Some(decision)) = (filter, subscribed) {
        let first = filter.levels().next().unwrap_or_default();
        if first.starts_with('$') && first != rules.prefix() {
            let covered = match &policy {
                AdditionalTopics::AllowList { subscribe, .. } => subscribe.covers(filter),
                _ => false,
            };
            assert_eq!(decision.is_granted(), covered, "subscribe {filter_text}");
        }
    }
    for t in &topics {
        let Ok(topic) = Topic::new(t) else { continue };
        let publish = principal.may_publish(&rules, t, &directory).unwrap();
        let exact = principal.may_subscribe(&rules, t, &directory).unwrap();
        let receive = principal.may_receive(&rules, t, &directory).unwrap();
        match rules.classify(topic) {
            TopicClass::State(id) | TopicClass::Command(id) => {
                let seen = in_scope(id);
                let state = matches!(rules.classify(topic), TopicClass::State(_));
                assert_eq!(publish == Decision::Allow, seen && state, "publish {t}");
                assert_eq!(exact == Decision::Allow, seen, "subscribe {t}");
                assert_eq!(receive, seen, "receive {t}");
                if !seen && filter.is_some_and(|f| f.matches(topic)) {
                    assert_ne!(
                        subscribed,
                        Some(Decision::Allow),
                        "{filter_text} delivers {t}"
                    );
                }
            }
            TopicClass::Reserved => {
                assert_eq!(
                    (publish, exact, receive),
                    (Decision::Deny, Decision::Deny, false)
                );
            }
            TopicClass::Custom => {
                assert_eq!(publish == Decision::Allow, policy.allows_publish(topic));
                assert_eq!(receive, policy.allows_receive(topic));
                // A `$` topic is reached only through an allow-list filter that
                // names its first level: never by `all`, never under a deny-list
                // (whose `#` means "no custom topics", `$` ones included).
                if topic.is_dollar() {
                    let named = |list: &FilterList| {
                        list.as_slice().iter().any(|f| {
                            let f = f.as_filter();
                            f.levels().next() == topic.levels().next() && f.matches(topic)
                        })
                    };
                    let (may_publish, may_receive) = match &policy {
                        AdditionalTopics::AllowList { publish, subscribe } => {
                            (named(publish), named(subscribe))
                        }
                        _ => (false, false),
                    };
                    assert_eq!(publish == Decision::Allow, may_publish, "publish {t}");
                    assert_eq!(receive, may_receive, "receive {t}");
                }
                // An allowed subscription delivers only what may be received.
                if subscribed.is_some_and(|d| d.is_granted())
                    && filter.is_some_and(|f| f.matches(topic))
                {
                    assert!(receive, "{filter_text} allowed but {t} may not be received");
                }
            }
            _ => {}
        }
    }
});

fn device_key(id: structure_access::DeviceId) -> String {
    id.as_str().to_owned()
}
