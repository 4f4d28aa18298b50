//! The restriction language: parsing, and `can_see` against a small and a
//! platform-maximum restriction, next to a naive linear scan of the same sets.
//!
//! `cargo bench --bench restriction -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use structure_access::{AccessKey, Device, DeviceRecord, Principal, Restriction, Scope, Verifier};

/// The application of every key and device here.
const APP: &str = "app1";

/// A restriction text of `n` entries: one in ten a tag pattern (at most 100,
/// the platform's limit), the rest 24-hex-character device IDs.
fn text_of(n: usize) -> String {
    let tags = (n / 10).clamp(1, 100).min(n);
    let ids = n - tags;
    let mut entries: Vec<String> = (0..ids).map(|i| format!("{i:024x}")).collect();
    entries.extend(tag_patterns(tags));
    entries.join(",")
}

/// `n` tag patterns of every kind; the first is `vehicle=truck`.
fn tag_patterns(n: usize) -> impl Iterator<Item = String> {
    (0..n).map(|i| match i {
        0 => "vehicle=truck".to_owned(),
        i if i % 5 == 1 => format!("key{i}="),
        i if i % 5 == 2 => format!("=value{i}"),
        i => format!("key{i}=value{i}"),
    })
}

/// 1000 device IDs and 100 tag patterns: the platform's maximum.
fn large() -> String {
    let mut entries: Vec<String> = (0..1000).map(|i| format!("{i:024x}")).collect();
    entries.extend(tag_patterns(100));
    entries.join(",")
}

fn device(tags: &[(&str, &str)]) -> DeviceRecord {
    tags.iter().fold(
        DeviceRecord::new(
            APP.parse().unwrap(),
            "ffffffffffffffffffffffff".parse().unwrap(),
        ),
        |d, (k, v)| d.with_tag(k, v),
    )
}

/// A device with 5 tags; its last tag matches `vehicle=truck`, so a hit still
/// looks at every tag.
fn hit() -> DeviceRecord {
    device(&[
        ("color", "red"),
        ("floor", "4"),
        ("zone", "a"),
        ("fleet", "north"),
        ("vehicle", "truck"),
    ])
}

/// A device with 5 tags, none in scope, and an unlisted ID.
fn miss() -> DeviceRecord {
    device(&[
        ("color", "red"),
        ("floor", "4"),
        ("zone", "a"),
        ("fleet", "north"),
        ("vehicle", "car"),
    ])
}

/// The naive evaluator: the same sets, scanned linearly.
struct Naive {
    ids: Vec<String>,
    patterns: Vec<(Option<String>, Option<String>)>,
}

impl Naive {
    fn new(r: &Restriction) -> Self {
        Self {
            ids: r.device_ids().map(String::from).collect(),
            patterns: r
                .tag_patterns()
                .iter()
                .map(|p| (p.key().map(String::from), p.value().map(String::from)))
                .collect(),
        }
    }

    fn can_see(&self, device: &DeviceRecord) -> bool {
        self.ids.iter().any(|id| id == device.id())
            || device.tags().any(|(tk, tv)| {
                self.patterns.iter().any(|(k, v)| {
                    k.as_deref().is_none_or(|k| k == tk) && v.as_deref().is_none_or(|v| v == tv)
                })
            })
    }
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("restriction/parse");
    for n in [1, 100, 1000] {
        let text = text_of(n);
        assert_eq!(
            text.parse::<Restriction>()
                .unwrap()
                .to_string()
                .split(',')
                .count(),
            n
        );
        group.bench_with_input(BenchmarkId::from_parameter(n), &text, |b, text| {
            b.iter(|| black_box(text).parse::<Restriction>().unwrap())
        });
    }
    group.finish();
}

fn can_see(c: &mut Criterion) {
    let mut group = c.benchmark_group("restriction/can_see");
    let small: Restriction = "vehicle=truck".parse().unwrap();
    let large: Restriction = large().parse().unwrap();
    assert_eq!(
        (large.device_ids().len(), large.tag_patterns().len()),
        (1000, 100)
    );
    let naive = Naive::new(&large);
    let (hit, miss) = (hit(), miss());
    for r in [&small, &large] {
        assert!(r.can_see(&hit) && !r.can_see(&miss));
    }
    assert!(naive.can_see(&hit) && !naive.can_see(&miss));

    for (name, device) in [("hit", &hit), ("miss", &miss)] {
        group.bench_with_input(BenchmarkId::new("1 entry", name), device, |b, d| {
            b.iter(|| black_box(&small).can_see(black_box(d)))
        });
        group.bench_with_input(BenchmarkId::new("1100 entries", name), device, |b, d| {
            b.iter(|| black_box(&large).can_see(black_box(d)))
        });
        group.bench_with_input(
            BenchmarkId::new("1100 entries, naive scan", name),
            device,
            |b, d| b.iter(|| black_box(&naive).can_see(black_box(d))),
        );
    }
    group.finish();

    // Through a principal, which checks the application first.
    let mut group = c.benchmark_group("principal/can_see");
    let verifier: Verifier = "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA"
        .parse()
        .unwrap();
    let record = |scope: Scope| {
        AccessKey::new(
            "stk_0000000000000000000000".parse().unwrap(),
            APP.parse().unwrap(),
            verifier.clone(),
            scope,
        )
    };
    let (small_key, large_key) = (record(small.into()), record(large.into()));
    let me = DeviceRecord::new(
        APP.parse().unwrap(),
        "ffffffffffffffffffffffff".parse().unwrap(),
    )
    .with_tag("vehicle", "truck")
    .with_tag("key7", "value7");
    let small_p =
        Principal::reauthorize(&small_key, &me, structure_access::UnixTime::now()).unwrap();
    let large_p =
        Principal::reauthorize(&large_key, &me, structure_access::UnixTime::now()).unwrap();
    // The hit device, with the same ID and tags, in another application.
    let foreign = hit.tags().fold(
        DeviceRecord::new("app2".parse().unwrap(), *hit.device_id()),
        |d, (k, v)| d.with_tag(k, v),
    );
    for p in [&small_p, &large_p] {
        assert!(p.can_see(&hit) && !p.can_see(&miss) && !p.can_see(&foreign));
    }
    for (name, device) in [
        ("hit", &hit),
        ("miss", &miss),
        ("other application", &foreign),
    ] {
        group.bench_with_input(BenchmarkId::new("1 entry", name), device, |b, d| {
            b.iter(|| black_box(&small_p).can_see(black_box(d)))
        });
        group.bench_with_input(BenchmarkId::new("1100 entries", name), device, |b, d| {
            b.iter(|| black_box(&large_p).can_see(black_box(d)))
        });
    }
    group.finish();
}

criterion_group!(benches, parse, can_see);
criterion_main!(benches);
