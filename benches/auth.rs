//! The authentication hot path, each figure next to its baseline.
//!
//! `cargo bench --bench auth` prints one table; BENCHMARKING.md explains it.

use std::hint::black_box;

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
/// with the Argon2id dummy). `benches/oracle_table.py` prints the table of
/// BENCHMARKING.md from criterion's estimates.
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
                group.bench_function(format!("{cell}/unknown"), |b| {
                    b.iter(|| auth.authenticate(&unknown, None, black_box(wrong), &device))
                });
                for (what, record) in &records {
                    assert!(
                        auth.authenticate(&known, Some(record), wrong, &device)
                            .is_err()
                    );
                    group.bench_function(format!("{cell}/known, {what}"), |b| {
                        b.iter(|| {
                            auth.authenticate(&known, Some(record), black_box(wrong), &device)
                        })
                    });
                }
            }
        }
    }
    group.finish();
}

fn with_device_only() -> DeviceRecord {
    DeviceRecord::new(APP.parse().unwrap(), "dev-1".parse().unwrap())
}

criterion_group!(benches, parse_credentials, verify, authenticate, oracle);
criterion_main!(benches);
