//! The authentication hot path, each figure next to its baseline.
//!
//! `cargo bench --bench auth` prints one table; BENCHMARKING.md explains it.

use std::hint::black_box;

use argon2::Argon2;
use argon2::password_hash::PasswordVerifier;
use argon2::password_hash::phc::PasswordHash;
use criterion::{Criterion, criterion_group, criterion_main};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use structure_access::{
    AccessKey, Argon2Memory, Authenticator, DeviceRecord, HashPolicy, KeyId, Restriction, Secret,
    VerificationCache,
};

/// The application of every key and device here.
const APP: &str = "app1";

struct Fixture {
    record: AccessKey,
    secret: Secret,
    wrong: Secret,
    device: DeviceRecord,
}

fn fixture(policy: &HashPolicy) -> Fixture {
    let mut rng = ChaCha20Rng::seed_from_u64(42);
    let restriction: Restriction = "5f2b8c1e9a4d3b7c6e1f0a2b,fleet=north".parse().unwrap();
    let new =
        AccessKey::generate(&mut rng, APP.parse().unwrap(), restriction.into(), policy).unwrap();
    let wrong = Secret::generate(&mut rng);
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
        record: new.record,
        secret: new.secret,
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
    let policy = HashPolicy::default();
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
    let f = fixture(&policy);
    let cold = Authenticator::new(policy.clone());
    let cached = Authenticator::new(policy.clone()).with_cache(VerificationCache::with_rng(
        1024,
        &mut ChaCha20Rng::seed_from_u64(3),
    ));
    cached
        .authenticate(Some(&f.record), &f.secret, &f.device)
        .unwrap();

    let mut group = c.benchmark_group("authenticate-m19456");
    group.sample_size(20);
    group.bench_function("cold", |b| {
        b.iter(|| cold.authenticate(Some(&f.record), black_box(&f.secret), &f.device))
    });
    group.bench_function("wrong secret", |b| {
        b.iter(|| cold.authenticate(Some(&f.record), black_box(&f.wrong), &f.device))
    });
    group.bench_function("unknown key", |b| {
        b.iter(|| cold.authenticate(None, black_box(&f.secret), &f.device))
    });
    group.finish();

    let mut group = c.benchmark_group("authenticate-fast");
    group.bench_function("cached", |b| {
        b.iter(|| cached.authenticate(Some(&f.record), black_box(&f.secret), &f.device))
    });
    let garbage = "sts_not-a-secret-at-all";
    group.bench_function("malformed secret", |b| {
        b.iter(|| cold.authenticate_password(Some(&f.record), black_box(garbage), &f.device))
    });
    let mut bad_checksum = f.secret.expose_secret().to_owned().into_bytes();
    bad_checksum[50] = if bad_checksum[50] == b'A' { b'B' } else { b'A' };
    let bad_checksum = String::from_utf8(bad_checksum).unwrap();
    group.bench_function("bad checksum", |b| {
        b.iter(|| {
            cold.authenticate_password(Some(&f.record), black_box(bad_checksum.as_str()), &f.device)
        })
    });
    group.finish();
}

criterion_group!(benches, parse_credentials, verify, authenticate);
criterion_main!(benches);
