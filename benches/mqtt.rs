//! MQTT decisions on the hot path: a device publishing its own state; a gateway
//! publishing for another device (hit and miss) under a platform-maximum
//! restriction (1000 device IDs, 100 tag patterns); a custom topic against 100
//! allow filters; and wildcard subscriptions checked against the same lists.
//!
//! `cargo bench --bench mqtt -- --warm-up-time 1 --measurement-time 3`

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use structure_access::mqtt::{AdditionalTopics, FilterList, TopicRules};
use structure_access::{
    AccessKey, Authenticator, Cost, DeviceRecord, HashPolicy, Principal, Restriction,
};

/// The application of every key and device here.
const APP: &str = "app1";

/// 1000 device IDs and 100 tag patterns: the platform's maximum. The gateway's
/// tag `site=north` is the last pattern.
fn large_restriction() -> Restriction {
    let mut entries: Vec<String> = (0..1000).map(|i| format!("{i:024x}")).collect();
    entries.extend((0..99).map(|i| format!("key{i}=value{i}")));
    entries.push("site=north".into());
    entries.join(",").parse().unwrap()
}

/// 100 filters of the shapes integrators use; the last one is `alerts/#`.
fn allow_filters() -> FilterList {
    let filters = (0..99)
        .map(|i| match i % 3 {
            0 => format!("fleet/{i}/+/telemetry"),
            1 => format!("site/{i}/#"),
            _ => format!("config/device{i}"),
        })
        .chain(["alerts/#".to_string()]);
    FilterList::new(filters).unwrap()
}

fn device(id: &str, tags: &[(&str, &str)]) -> DeviceRecord {
    tags.iter().fold(
        DeviceRecord::new(APP.parse().unwrap(), id.parse().unwrap()),
        |d, (k, v)| d.with_tag(k, v),
    )
}

fn principal(topics: AdditionalTopics) -> Principal {
    let policy = HashPolicy::default()
        .with_params(Cost::new(64, 1, 1))
        .unwrap();
    let new = AccessKey::generate(
        &mut ChaCha20Rng::seed_from_u64(1),
        APP.parse().unwrap(),
        large_restriction().into(),
        &policy,
    )
    .unwrap();
    let record = new.record.with_additional_topics(topics);
    let gateway = device("5f2b8c1e9a4d3b7c6e1f0a2b", &[("site", "north")]);
    Authenticator::new(policy)
        .authenticate(record.key(), Some(&record), &new.secret, &gateway)
        .unwrap()
}

fn decisions(c: &mut Criterion) {
    // The figures of a broker that declares its one application (no directory
    // look-up for listed devices or unrestricted keys), then of one shared by
    // several applications (every other device's application is looked up).
    for (group, rules) in [
        (
            "mqtt",
            TopicRules::default().with_single_application(APP.parse().unwrap()),
        ),
        ("mqtt/several-applications", TopicRules::default()),
    ] {
        decisions_under(c, group, &rules);
    }
}

fn decisions_under(c: &mut Criterion, group: &str, rules: &TopicRules) {
    let p = principal(AdditionalTopics::AllowList {
        publish: allow_filters(),
        subscribe: allow_filters(),
    });
    // The broker's store: devices with 5 tags, the last of the hit matching.
    let tags = [
        ("color", "red"),
        ("floor", "4"),
        ("zone", "a"),
        ("fleet", "n"),
    ];
    let mut store: HashMap<String, DeviceRecord> = HashMap::new();
    let mut hit_tags = tags.to_vec();
    hit_tags.push(("site", "north"));
    let mut miss_tags = tags.to_vec();
    miss_tags.push(("site", "south"));
    store.insert(
        "aaaaaaaaaaaaaaaaaaaaaaaa".into(),
        device("aaaaaaaaaaaaaaaaaaaaaaaa", &hit_tags),
    );
    store.insert(
        "bbbbbbbbbbbbbbbbbbbbbbbb".into(),
        device("bbbbbbbbbbbbbbbbbbbbbbbb", &miss_tags),
    );
    let directory = |id: &str| store.get(id);

    let mut group = c.benchmark_group(group);
    let mut bench_publish = |name: &str, topic: &str| {
        group.bench_function(name, |b| {
            b.iter(|| p.may_publish(rules, black_box(topic), &directory))
        });
    };
    bench_publish(
        "publish own state",
        "structure/5f2b8c1e9a4d3b7c6e1f0a2b/state",
    );
    bench_publish(
        "publish listed device state",
        "structure/00000000000000000000002a/state",
    );
    bench_publish(
        "publish other device state, hit by tag",
        "structure/aaaaaaaaaaaaaaaaaaaaaaaa/state",
    );
    bench_publish(
        "publish other device state, miss",
        "structure/bbbbbbbbbbbbbbbbbbbbbbbb/state",
    );
    bench_publish(
        "publish custom topic, 100 allow filters, last matches",
        "alerts/fire/north",
    );
    bench_publish(
        "publish custom topic, 100 allow filters, none matches",
        "weather/north/today",
    );
    group.bench_function("receive other device state, miss", |b| {
        b.iter(|| {
            p.may_receive(
                rules,
                black_box("structure/bbbbbbbbbbbbbbbbbbbbbbbb/state"),
                &directory,
            )
        })
    });
    group.bench_function("subscribe structure/+/state", |b| {
        b.iter(|| p.may_subscribe(rules, black_box("structure/+/state"), &directory))
    });
    group.bench_function("subscribe custom wildcard, 100 allow filters", |b| {
        b.iter(|| p.may_subscribe(rules, black_box("alerts/+/#"), &directory))
    });
    group.finish();
}

criterion_group!(benches, decisions);
criterion_main!(benches);
