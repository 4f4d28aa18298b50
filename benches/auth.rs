//! The authentication hot path, each figure next to its baseline.
//!
//! `cargo bench --bench auth` prints one table; BENCHMARKING.md explains it.

use std::hint::black_box;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::PasswordVerifier;
use argon2::password_hash::phc::PasswordHash;
use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit, Mac};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use sha2::Sha256;
use structure_access::{
    AccessKey, Argon2Memory, Authenticator, DeviceRecord, HashPolicy, KeyId, Restriction, Scope,
    Secret, VerificationCache, Verifier,
};

/// The application of every key and device here.
const APP: &str = "app1";
const IMPORTED_KEY: &str = "6a1f8a3e-3b0c-4d7e-9f51-2c1b6f3e9a10";
const UNKNOWN_IMPORTED_KEY: &str = "00000000-0000-4000-8000-000000000000";
const UNKNOWN_GENERATED_KEY: &str = "stk_0000000000000000000000";

struct Fixture {
    record: AccessKey,
    secret: Secret,
    wrong: Secret,
    device: DeviceRecord,
}

/// A key with a generated secret, its verifier of `policy`'s scheme for it.
fn fixture(policy: &HashPolicy) -> Fixture {
    let mut rng = ChaCha20Rng::seed_from_u64(42);
    let restriction: Restriction = "5f2b8c1e9a4d3b7c6e1f0a2b,fleet=north".parse().unwrap();
    let new =
        AccessKey::generate(&mut rng, APP.parse().unwrap(), restriction.into(), policy).unwrap();
    let wrong = Secret::generate(&mut rng);
    with_device(new.record, new.secret, wrong)
}

/// A key with an imported secret (Argon2id at `policy`'s parameters).
fn imported_fixture(policy: &HashPolicy) -> Fixture {
    let mut rng = ChaCha20Rng::seed_from_u64(43);
    let secret =
        Secret::imported("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
            .unwrap();
    let wrong =
        Secret::imported("0f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
            .unwrap();
    let verifier = Verifier::create(&secret, policy, &mut rng).unwrap();
    let restriction: Restriction = "5f2b8c1e9a4d3b7c6e1f0a2b,fleet=north".parse().unwrap();
    // An imported key (the platform's are UUIDs): its shape costs Argon2id.
    let record = AccessKey::new(
        IMPORTED_KEY.parse().unwrap(),
        APP.parse().unwrap(),
        verifier,
        restriction.into(),
    );
    with_device(record, secret, wrong)
}

fn with_device(record: AccessKey, secret: Secret, wrong: Secret) -> Fixture {
    let device = DeviceRecord::new(
        APP.parse().unwrap(),
        "5f2b8c1e9a4d3b7c6e1f0a2b".parse().unwrap(),
    )
    .with_tag("fleet", "north")
    .with_tag("vehicle", "truck")
    .with_tag("color", "red")
    .with_tag("floor", "4")
    .with_tag("zone", "a");
    Fixture {
        record,
        secret,
        wrong,
        device,
    }
}

fn parse_credentials(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    let secret = Secret::generate(&mut ChaCha20Rng::seed_from_u64(1));
    let text = secret.expose_secret().to_owned();
    let mut bad_checksum = text.clone().into_bytes();
    bad_checksum[52] = if bad_checksum[52] == b'A' { b'B' } else { b'A' };
    let bad_checksum = String::from_utf8(bad_checksum).unwrap();
    let key = KeyId::generate(&mut ChaCha20Rng::seed_from_u64(2)).to_string();
    group.bench_function("key", |b| b.iter(|| black_box(&key).parse::<KeyId>()));
    group.bench_function("secret/valid", |b| {
        b.iter(|| black_box(text.as_str()).parse::<Secret>())
    });
    group.bench_function("secret/bad-checksum", |b| {
        b.iter(|| black_box(bad_checksum.as_str()).parse::<Secret>())
    });
    group.bench_function("secret/garbage", |b| {
        b.iter(|| black_box("hunter2").parse::<Secret>())
    });
    group.finish();
}

fn verify(c: &mut Criterion) {
    let policy = HashPolicy::default().argon2id_for_generated(true);
    let f = fixture(&policy);
    let phc = f.record.verifier().as_str().to_owned();
    let mut group = c.benchmark_group("verify-m19456");
    group.sample_size(20);
    group.bench_function("bare-argon2 (baseline)", |b| {
        b.iter(|| {
            let hash = PasswordHash::new(black_box(&phc)).unwrap();
            Argon2::default()
                .verify_password(f.secret.expose_secret().as_bytes(), &hash)
                .is_ok()
        })
    });
    let mut memory = Argon2Memory::new();
    group.bench_function("ours, reused memory", |b| {
        b.iter(|| {
            f.record
                .verifier()
                .verify_with_memory(black_box(&f.secret), &policy, &mut memory)
        })
    });
    group.finish();
}

fn authenticate(c: &mut Criterion) {
    let policy = HashPolicy::default();
    // Argon2id: an imported secret, and the cache's figures.
    let f = imported_fixture(&policy);
    let cold = Authenticator::new(policy.clone());
    let cached = Authenticator::new(policy.clone()).with_cache(VerificationCache::with_rng(
        1024,
        &mut ChaCha20Rng::seed_from_u64(3),
    ));
    cached
        .authenticate(f.record.key(), Some(&f.record), &f.secret, &f.device)
        .unwrap();

    let mut group = c.benchmark_group("authenticate-m19456");
    group.sample_size(20);
    group.bench_function("cold", |b| {
        b.iter(|| {
            cold.authenticate(
                f.record.key(),
                Some(&f.record),
                black_box(&f.secret),
                &f.device,
            )
        })
    });
    group.bench_function("wrong secret", |b| {
        b.iter(|| {
            cold.authenticate(
                f.record.key(),
                Some(&f.record),
                black_box(&f.wrong),
                &f.device,
            )
        })
    });
    group.bench_function("unknown key", |b| {
        let unknown: KeyId = UNKNOWN_IMPORTED_KEY.parse().unwrap();
        b.iter(|| cold.authenticate(&unknown, None, black_box(&f.secret), &f.device))
    });
    group.finish();

    // The fast scheme: a generated secret, cold (no cache), beside a bare
    // HMAC-SHA-256 of the same bytes.
    let g = fixture(&policy);
    assert!(!g.record.verifier().is_slow());
    let salt = [0x5a_u8; 16];
    let mut group = c.benchmark_group("authenticate-hmac-sha256");
    group.bench_function("bare hmac-sha256 (baseline)", |b| {
        b.iter(|| {
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(black_box(&salt)).unwrap();
            mac.update(g.secret.expose_secret().as_bytes());
            mac.finalize().into_bytes()
        })
    });
    // What keying the HMAC once per record (at load) instead of per CONNECT
    // would save: the same MAC from a keyed state kept beside the record.
    let keyed = <Hmac<Sha256> as KeyInit>::new_from_slice(&salt).unwrap();
    group.bench_function("bare hmac-sha256, keyed state kept", |b| {
        b.iter(|| {
            let mut mac = black_box(&keyed).clone();
            mac.update(g.secret.expose_secret().as_bytes());
            mac.finalize().into_bytes()
        })
    });
    group.bench_function("cold", |b| {
        b.iter(|| {
            cold.authenticate(
                g.record.key(),
                Some(&g.record),
                black_box(&g.secret),
                &g.device,
            )
        })
    });
    group.bench_function("wrong secret", |b| {
        b.iter(|| {
            cold.authenticate(
                g.record.key(),
                Some(&g.record),
                black_box(&g.wrong),
                &g.device,
            )
        })
    });
    group.bench_function("unknown key", |b| {
        let unknown: KeyId = UNKNOWN_GENERATED_KEY.parse().unwrap();
        b.iter(|| cold.authenticate(&unknown, None, black_box(&g.secret), &g.device))
    });
    group.bench_function("cold, from the password text", |b| {
        b.iter(|| {
            cold.authenticate_password(
                g.record.key(),
                Some(&g.record),
                black_box(g.secret.expose_secret()),
                &g.device,
            )
        })
    });
    group.finish();

    let mut group = c.benchmark_group("authenticate-fast");
    group.bench_function("cached", |b| {
        b.iter(|| {
            cached.authenticate(
                f.record.key(),
                Some(&f.record),
                black_box(&f.secret),
                &f.device,
            )
        })
    });
    let garbage = "sts_not-a-secret-at-all";
    group.bench_function("malformed secret", |b| {
        b.iter(|| {
            cold.authenticate_password(
                f.record.key(),
                Some(&f.record),
                black_box(garbage),
                &f.device,
            )
        })
    });
    let mut bad_checksum = g.secret.expose_secret().to_owned().into_bytes();
    bad_checksum[50] = if bad_checksum[50] == b'A' { b'B' } else { b'A' };
    let bad_checksum = String::from_utf8(bad_checksum).unwrap();
    group.bench_function("bad checksum", |b| {
        b.iter(|| {
            cold.authenticate_password(
                f.record.key(),
                Some(&f.record),
                black_box(bad_checksum.as_str()),
                &f.device,
            )
        })
    });
    group.finish();
}

/// A fast verifier of any secret, as Python's standard library makes them (the
/// README's rule): the platform's machine-made imported secrets under
/// `allow_fast_for_imported`.
fn fast_verifier(secret: &Secret) -> Verifier {
    use base64ct::{Base64Unpadded, Encoding};
    let salt = [7u8; 16];
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&salt).unwrap();
    mac.update(secret.expose_secret().as_bytes());
    let tag = mac.finalize().into_bytes();
    format!(
        "$hmac-sha256$v=1${}${}",
        Base64Unpadded::encode_string(&salt),
        Base64Unpadded::encode_string(&tag)
    )
    .parse()
    .unwrap()
}

/// The existence oracle, every key-id shape × presented secret shape × policy
/// setting: a wrong secret for a known key beside an unknown key of the same
/// shape, with the same secret, in the same run. The known key's record is the
/// one a key of its shape has under the policy (`record`), and, where the cost
/// rule names Argon2id, also a fast record of that key (`fast record`: padded
/// with the Argon2id dummy). Each benchmark times both sides in turns in the
/// same loop (the shared machine's load then moves both alike) and reports
/// their mean; the ratio is the median of its samples' unknown ÷ known. The
/// table of BENCHMARKING.md is printed at the end (and written to
/// `target/criterion/oracle-table.md`).
fn oracle(c: &mut Criterion) {
    let base = HashPolicy::default();
    let policies = [
        ("default", base.clone()),
        (
            "argon2id_for_generated",
            base.clone().argon2id_for_generated(true),
        ),
        (
            "allow_fast_for_imported",
            base.clone().allow_fast_for_imported(true),
        ),
        (
            "both",
            base.clone()
                .argon2id_for_generated(true)
                .allow_fast_for_imported(true),
        ),
    ];
    let mut rng = ChaCha20Rng::seed_from_u64(44);
    let generated_secret = Secret::generate(&mut rng);
    let imported_secret =
        Secret::imported("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
            .unwrap();
    let wrong_generated = Secret::generate(&mut rng);
    let wrong_imported =
        Secret::imported("0f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
            .unwrap();
    let device = with_device_only();
    let mut group = c.benchmark_group("oracle");
    group.sample_size(10);
    let mut table = Vec::new();
    for (name, policy) in &policies {
        let auth = Authenticator::new(policy.clone()).with_pool_size(1);
        for generated_key in [true, false] {
            let (known, unknown): (KeyId, KeyId) = if generated_key {
                (
                    KeyId::generate(&mut rng),
                    UNKNOWN_GENERATED_KEY.parse().unwrap(),
                )
            } else {
                (
                    IMPORTED_KEY.parse().unwrap(),
                    UNKNOWN_IMPORTED_KEY.parse().unwrap(),
                )
            };
            let app = APP.parse().unwrap();
            // The record a key of this shape has under this policy.
            let natural = if generated_key {
                Verifier::create(&generated_secret, policy, &mut rng).unwrap()
            } else if policy.expected_scheme(&known).is_slow() {
                Verifier::create(&imported_secret, policy, &mut rng).unwrap()
            } else {
                fast_verifier(&imported_secret)
            };
            let mut records = vec![(
                "record",
                AccessKey::new(known, app, natural, Scope::Unrestricted),
            )];
            if policy.expected_scheme(&known).is_slow() {
                let fast = fast_verifier(&generated_secret);
                records.push((
                    "fast record",
                    AccessKey::new(known, app, fast, Scope::Unrestricted),
                ));
            } else {
                // What the rule cannot hide (documented): an Argon2 record where
                // it names the fast scheme, such as a generated key's record from
                // before the fast scheme.
                let legacy = policy.clone().argon2id_for_generated(true);
                let argon2 = Verifier::create(&generated_secret, &legacy, &mut rng).unwrap();
                records.push((
                    "argon2id record (limit)",
                    AccessKey::new(known, app, argon2, Scope::Unrestricted),
                ));
            }
            let key_shape = if generated_key {
                "generated key"
            } else {
                "imported key"
            };
            for (secret_shape, wrong) in [
                ("generated secret", &wrong_generated),
                ("imported secret", &wrong_imported),
            ] {
                let cell = format!("{name}/{key_shape}/{secret_shape}");
                for (what, record) in &records {
                    assert!(
                        auth.authenticate(&known, Some(record), wrong, &device)
                            .is_err()
                    );
                    let unknown_side =
                        || auth.authenticate(&unknown, None, black_box(wrong), &device);
                    let known_side =
                        || auth.authenticate(&known, Some(record), black_box(wrong), &device);
                    // Calls per side and turn: enough to dwarf reading the clock.
                    let start = Instant::now();
                    let _ = black_box(known_side());
                    let batch = if start.elapsed() > Duration::from_micros(100) {
                        1
                    } else {
                        64
                    };
                    let mut samples = Vec::new();
                    group.bench_function(format!("{cell}/{what}"), |b| {
                        b.iter_custom(|iters| {
                            // Both sides in turns, in the same loop: the machine's
                            // load changes both alike.
                            let (mut u, mut k) = (Duration::ZERO, Duration::ZERO);
                            for i in 0..iters {
                                for side in [i % 2, (i + 1) % 2] {
                                    let start = Instant::now();
                                    for _ in 0..batch {
                                        if side == 0 {
                                            let _ = black_box(unknown_side());
                                        } else {
                                            let _ = black_box(known_side());
                                        }
                                    }
                                    let spent = start.elapsed();
                                    if side == 0 { u += spent } else { k += spent }
                                }
                            }
                            samples.push((iters * u64::from(batch), u, k));
                            (u + k) / (2 * batch)
                        })
                    });
                    if samples.is_empty() {
                        // Filtered out of this run.
                        continue;
                    }
                    let mut ratios: Vec<f64> = samples
                        .iter()
                        .map(|(_, u, k)| u.as_secs_f64() / k.as_secs_f64())
                        .collect();
                    ratios.sort_by(f64::total_cmp);
                    let calls: u64 = samples.iter().map(|s| s.0).sum();
                    let mean = |side: fn(&(u64, Duration, Duration)) -> Duration| {
                        let total: Duration = samples.iter().map(side).sum();
                        shown(total.as_secs_f64() * 1e9 / calls as f64)
                    };
                    table.push(format!(
                        "| `{name}` | {key_shape} | {secret_shape} | {what} | {} | {} | **{:.2}** |",
                        mean(|s| s.1),
                        mean(|s| s.2),
                        ratios[ratios.len() / 2]
                    ));
                }
            }
        }
    }
    group.finish();
    let table = format!(
        "| policy | key id | secret presented | known key's record | unknown key | known key, wrong secret | unknown ÷ known (median of the samples' ratios) |\n|---|---|---|---|---|---|---|\n{}\n",
        table.join("\n")
    );
    println!("\n{table}");
    let _ = std::fs::create_dir_all("target/criterion");
    let _ = std::fs::write("target/criterion/oracle-table.md", table);
    // (A filtered run overwrites it with its own rows.)
}

/// A time per call, in the unit that suits it.
fn shown(ns: f64) -> String {
    if ns >= 1e5 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{ns:.0} ns")
    }
}

fn with_device_only() -> DeviceRecord {
    DeviceRecord::new(APP.parse().unwrap(), "dev-1".parse().unwrap())
}

criterion_group!(benches, parse_credentials, verify, authenticate, oracle);
criterion_main!(benches);
