//! Device token verification beside the format's reference crate verifying
//! the same token.
//!
//! `cargo bench -p structure-access-tokens --bench verify`:
//! - `pasetors_verify`: `pasetors`' `UntrustedToken` parse and
//!   `PublicToken::verify` (the Ed25519 signature), the baseline;
//! - `verify`: [`TokenVerifier::verify`], the same plus the footer's key id,
//!   the claims' JSON, the audience and the times;
//! - `verify_and_principal`: that plus [`Claims::principal`] against the
//!   records (the verifier digest, `Principal::reauthorize`): a request's
//!   whole check;
//! - `verify_cached_and_principal`: the same through a [`CachingVerifier`]
//!   that has seen the token (a device's second request onwards);
//! - `issue`: signing a token.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use pasetors::Public;
use pasetors::token::UntrustedToken;
use pasetors::version4::{PublicToken, V4};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use structure_access::{AccessKey, Authenticator, DeviceRecord, HashPolicy, Scope, UnixTime};
use structure_access_tokens::{CachingVerifier, Issuer, SigningKey, TokenVerifier};

fn tokens(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let policy = HashPolicy::default();
    let app = "app1".parse().unwrap();
    let new = AccessKey::generate(&mut rng, app, Scope::Unrestricted, &policy).unwrap();
    let device = DeviceRecord::new(app, "truck-17".parse().unwrap());
    let principal = Authenticator::new(policy)
        .authenticate(new.record.key(), Some(&new.record), &new.secret, &device)
        .unwrap();
    let key = SigningKey::from_seed([7; 32]).unwrap();
    let public = key.verifying_key();
    let pasetors_public =
        pasetors::keys::AsymmetricPublicKey::<V4>::try_from(public.to_paserk().as_str()).unwrap();
    let verifier = TokenVerifier::new(
        "https://api.example",
        [
            SigningKey::from_seed([8; 32]).unwrap().verifying_key(),
            public,
        ],
    )
    .unwrap();
    let issuer = Issuer::new(key, "https://api.example").unwrap();
    let now = UnixTime::from_secs(1_800_000_000).unwrap();
    let token = issuer.issue(&principal, &new.record, now).unwrap().token;
    let text = token.expose();
    println!("token: {} bytes", text.len());

    let mut group = c.benchmark_group("device_token");
    group.bench_function("pasetors_verify", |b| {
        b.iter(|| {
            let untrusted = UntrustedToken::<Public, V4>::try_from(black_box(text)).unwrap();
            PublicToken::verify(&pasetors_public, &untrusted, None, None).unwrap()
        })
    });
    group.bench_function("verify", |b| {
        b.iter(|| verifier.verify(black_box(text), now).unwrap())
    });
    group.bench_function("verify_and_principal", |b| {
        b.iter(|| {
            verifier
                .verify(black_box(text), now)
                .unwrap()
                .principal(Some(&new.record), Some(&device), now)
                .unwrap()
        })
    });
    let cached = CachingVerifier::new(verifier.clone(), 1000);
    group.bench_function("verify_cached_and_principal", |b| {
        b.iter(|| {
            cached
                .verify(black_box(text), now)
                .unwrap()
                .principal(Some(&new.record), Some(&device), now)
                .unwrap()
        })
    });
    group.bench_function("issue", |b| {
        b.iter(|| {
            issuer
                .issue(&principal, &new.record, black_box(now))
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, tokens);
criterion_main!(benches);
