//! Verification that costs what the secret needs: the fast scheme for generated
//! secrets, Argon2id for imported ones, the policy that picks them, throttling
//! and upgrades.

use std::cell::Cell;

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use structure_access::{
    AccessKey, AuthError, Authenticator, Cost, DeviceRecord, HashPolicy, KeyId, Scheme, Scope,
    Secret, Variant, VerificationCache, Verifier, VerifierError,
};

const APP: &str = "app1";
const SECRET: &str = "sts_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA2ytyDA";
const LEGACY_SECRET: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/// `Verifier::create(SECRET, default policy, ChaCha20 seed 99)`. Python 3.11's
/// standard library verifies it with the README's function (`hmac.new(salt,
/// secret.encode(), hashlib.sha256)`, `hmac.compare_digest`): True, and False
/// for the secret with its last character changed.
const OURS: &str =
    "$hmac-sha256$v=1$oM5KjfJWVYFidH1yVDqyUw$+/5vjk8lO4KlLGOZeg2hrTD8Q3T+/4is9ypRRMgBgsw";
/// Made entirely by Python 3.11's `hashlib`/`hmac`, salt
/// `sha256(b"python-made salt")` (32 bytes), over SECRET...
const PYTHON_GENERATED: &str = "$hmac-sha256$v=1$6LgNHkEvVUai/w3KhHKULb/hpoGbvlKKpxZX2W0Mww0$uRsr53WnUIV3xRMLbbZ2V3nvskr90zg0DRF0osLItaY";
/// ...and over LEGACY_SECRET (a machine-made imported secret).
const PYTHON_LEGACY: &str = "$hmac-sha256$v=1$6LgNHkEvVUai/w3KhHKULb/hpoGbvlKKpxZX2W0Mww0$6a0a7E1sl1TALCL+24QsjtECj14g0orfc6cBCbVA6hk";

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn secret() -> Secret {
    SECRET.parse().unwrap()
}

fn device() -> DeviceRecord {
    DeviceRecord::new(APP.parse().unwrap(), "dev-1".parse().unwrap())
}

fn record(verifier: Verifier) -> AccessKey {
    AccessKey::new(
        "stk_0000000000000000000000".parse().unwrap(),
        APP.parse().unwrap(),
        verifier,
        Scope::Unrestricted,
    )
}

/// Cheap Argon2 parameters, within the bounds.
fn cheap() -> HashPolicy {
    HashPolicy::default()
        .with_params(Cost::new(64, 1, 1))
        .unwrap()
}

#[test]
fn the_fast_scheme_matches_pythons_standard_library() {
    let policy = HashPolicy::default();
    let ours = Verifier::create(&secret(), &policy, &mut rng(99)).unwrap();
    assert_eq!(ours.as_str(), OURS);
    assert_eq!(ours.scheme(), Scheme::HmacSha256);
    assert_eq!(ours.cost(), None);
    assert!(!ours.is_slow());
    let python: Verifier = PYTHON_GENERATED.parse().unwrap();
    assert_eq!(python.to_string(), PYTHON_GENERATED);
    for v in [&ours, &python] {
        assert_eq!(v.verify(&secret(), &policy), Ok(()));
        let wrong: Secret = "sts_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg053igU"
            .parse()
            .unwrap();
        assert_eq!(v.verify(&wrong, &policy), Err(VerifierError::Mismatch));
    }
    // A fast verifier of an imported secret: only where the policy allows it.
    let legacy: Verifier = PYTHON_LEGACY.parse().unwrap();
    let imported = Secret::imported(LEGACY_SECRET).unwrap();
    assert_eq!(
        legacy.verify(&imported, &policy),
        Err(VerifierError::FastForImported)
    );
    let machine_made = HashPolicy::default().allow_fast_for_imported(true);
    assert_eq!(legacy.verify(&imported, &machine_made), Ok(()));
}

#[test]
fn a_dropped_verify_result_cannot_accept_a_wrong_secret() {
    fn check(v: &Verifier, s: &Secret) -> Result<(), VerifierError> {
        v.verify(s, &HashPolicy::default())?;
        Ok(())
    }
    let v: Verifier = OURS.parse().unwrap();
    assert_eq!(check(&v, &secret()), Ok(()));
    assert_eq!(
        check(&v, &Secret::generate(&mut rng(5))),
        Err(VerifierError::Mismatch)
    );
}

#[test]
fn fast_verifier_strings_are_parsed_strictly() {
    let salt = "oM5KjfJWVYFidH1yVDqyUw";
    let mac = "+/5vjk8lO4KlLGOZeg2hrTD8Q3T+/4is9ypRRMgBgsw";
    let cases = [
        (
            format!("$hmac-sha256$v=2${salt}${mac}"),
            "unsupported hmac-sha256 version `2`, expected `1`",
        ),
        (
            format!("$hmac-sha256$v=1$i=1000${salt}${mac}"),
            "malformed verifier at byte 17: expected the salt (the scheme takes no parameters)",
        ),
        (
            format!("$hmac-sha256${salt}${mac}"),
            "malformed verifier at byte 12: expected `$v=1`",
        ),
        (
            format!("$hmac-sha256$v=1${salt}${}", &mac[..40]),
            "verifier output is 30 bytes long, expected 32 to 32",
        ),
        (
            format!("$hmac-sha256$v=1${salt}${mac}AAAA"),
            "verifier output is 35 bytes long, expected 32 to 32",
        ),
        (
            format!("$hmac-sha256$v=1${salt}${mac}$"),
            "malformed verifier at byte 83: expected the end of the verifier",
        ),
        (
            format!("$hmac-sha256$v=1$AAAA${mac}"),
            "verifier salt is 3 bytes long, expected 8 to 64",
        ),
    ];
    for (text, message) in cases {
        let err = text.parse::<Verifier>().unwrap_err();
        assert_eq!(err.to_string(), message, "{text}");
    }
}

#[test]
fn the_policy_picks_the_scheme_per_kind_of_secret() {
    let policy = HashPolicy::default();
    let imported = Secret::imported(LEGACY_SECRET).unwrap();
    assert_eq!(policy.scheme_for(&secret()), Scheme::HmacSha256);
    assert_eq!(
        policy.scheme_for(&imported),
        Scheme::Argon2(Variant::Argon2id)
    );
    let slow = cheap().argon2id_for_generated(true);
    assert_eq!(
        slow.scheme_for(&secret()),
        Scheme::Argon2(Variant::Argon2id)
    );

    let new = AccessKey::generate(
        &mut rng(1),
        APP.parse().unwrap(),
        Scope::Unrestricted,
        &policy,
    )
    .unwrap();
    assert_eq!(new.record.verifier().scheme(), Scheme::HmacSha256);
    let v = Verifier::create(&imported, &cheap(), &mut rng(2)).unwrap();
    assert!(
        v.as_str().starts_with("$argon2id$v=19$m=64,t=1,p=1$"),
        "{v}"
    );
    assert_eq!(v.verify(&imported, &cheap()), Ok(()));
}

#[test]
fn default_bounds_admit_the_common_libraries_defaults() {
    let policy = HashPolicy::default();
    let b = policy.bounds();
    assert_eq!((b.m, b.t, b.p), (65536, 16, 8));
    assert_eq!(policy.max_work(), 65536 * 4);
    let salt_hash = "o1a2OxEBgc6kveVG22cS6A$K7zmi4nG5Ux59QQJFhoI8CoXXlFI9Dj7hPiP8geQZBA";
    // RFC 9106's second option (argon2-cffi, node-argon2), in either order of
    // its parameters, and 64 MiB × 4 passes.
    for within in [
        "m=65536,t=3,p=4",
        "m=65536,p=4,t=3",
        "m=65536,t=4,p=1",
        "p=8,t=16,m=16384",
    ] {
        let v: Verifier = format!("$argon2id$v=19${within}${salt_hash}")
            .parse()
            .unwrap();
        assert_eq!(policy.check(&v), Ok(()), "{within}");
    }
    let costly: Verifier = format!("$argon2id$v=19$m=65536,t=5,p=1${salt_hash}")
        .parse()
        .unwrap();
    assert!(matches!(
        policy.check(&costly),
        Err(VerifierError::TooCostly {
            m: 65536,
            t: 5,
            max_work: 262144
        })
    ));
    // Minimums refuse weaker stored verifiers outright.
    let strict = HashPolicy::default()
        .with_minimum(Cost::new(19456, 2, 1))
        .unwrap();
    let weak: Verifier = format!("$argon2id$v=19$m=4096,t=2,p=1${salt_hash}")
        .parse()
        .unwrap();
    assert_eq!(
        strict.check(&weak),
        Err(VerifierError::BelowMinimum {
            name: "m",
            value: 4096,
            min: 19456
        })
    );
    assert_eq!(HashPolicy::default().check(&weak), Ok(()));
    assert!(
        HashPolicy::default()
            .with_minimum(Cost::new(65536, 2, 1))
            .is_err()
    );
}

#[test]
fn existing_argon2_records_of_generated_secrets_keep_working() {
    let old = cheap().argon2id_for_generated(true);
    let new =
        AccessKey::generate(&mut rng(3), APP.parse().unwrap(), Scope::Unrestricted, &old).unwrap();
    assert!(new.record.verifier().is_slow());
    // Authenticated under today's policy, which writes the fast scheme.
    let auth = Authenticator::new(cheap());
    assert!(
        auth.authenticate(new.record.key(), Some(&new.record), &new.secret, &device())
            .is_ok()
    );
}

#[test]
fn argon2_runs_where_the_key_ids_shape_says() {
    let auth = Authenticator::new(cheap()).with_cache(VerificationCache::with_rng(16, &mut rng(0)));
    let asked = Cell::new(0);
    let count = || {
        asked.set(asked.get() + 1);
        true
    };
    let imported = Secret::imported(LEGACY_SECRET).unwrap();
    let fast = AccessKey::generate(
        &mut rng(4),
        APP.parse().unwrap(),
        Scope::Unrestricted,
        &cheap(),
    )
    .unwrap();
    let uuid: KeyId = "6a1f8a3e-3b0c-4d7e-9f51-2c1b6f3e9a10".parse().unwrap();
    let slow = record_of(
        uuid,
        Verifier::create(&imported, &cheap(), &mut rng(5)).unwrap(),
    );
    let unknown_generated: KeyId = "stk_0000000000000000000000".parse().unwrap();
    let unknown_imported: KeyId = "00000000-0000-4000-8000-000000000000".parse().unwrap();
    let wrong = Secret::generate(&mut rng(6));

    // A generated key: never Argon2, whatever the secret, known or not.
    let key = fast.record.key();
    auth.authenticate_with(key, Some(&fast.record), &fast.secret, &device(), count)
        .unwrap();
    assert!(matches!(
        auth.authenticate_with(key, Some(&fast.record), &wrong, &device(), count),
        Err(AuthError::WrongSecret { .. })
    ));
    // An imported secret for its fast verifier: refused after the fast dummy.
    assert_eq!(
        auth.authenticate_with(key, Some(&fast.record), &imported, &device(), count),
        Err(AuthError::ImportedSecretForFastVerifier { key: *key })
    );
    for secret in [&fast.secret, &imported] {
        assert_eq!(
            auth.authenticate_with(&unknown_generated, None, secret, &device(), count),
            Err(AuthError::UnknownKey)
        );
    }
    assert_eq!(asked.get(), 0);
    // The fast scheme never touches the cache.
    assert_eq!(auth.cache().unwrap().stats().len, 0);

    // An imported key: Argon2, whatever the secret, known or not. A cold
    // verification, then a cache hit.
    auth.authenticate_with(&uuid, Some(&slow), &imported, &device(), count)
        .unwrap();
    assert_eq!(asked.get(), 1);
    auth.authenticate_with(&uuid, Some(&slow), &imported, &device(), count)
        .unwrap();
    assert_eq!(asked.get(), 1, "a cache hit runs no Argon2");
    assert!(matches!(
        auth.authenticate_with(&uuid, Some(&slow), &wrong, &device(), count),
        Err(AuthError::WrongSecret { .. })
    ));
    assert_eq!(asked.get(), 2);
    for secret in [&fast.secret, &imported] {
        assert_eq!(
            auth.authenticate_with(&unknown_imported, None, secret, &device(), count),
            Err(AuthError::UnknownKey)
        );
    }
    assert_eq!(asked.get(), 4);
    // A stored verifier that the policy refuses runs the dummy of its key's
    // shape: no "key exists" oracle.
    let hostile_verifier: Verifier = "$argon2id$v=19$m=4194304,t=2,p=1$o1a2OxEBgc6kveVG22cS6A$K7zmi4nG5Ux59QQJFhoI8CoXXlFI9Dj7hPiP8geQZBA"
        .parse()
        .unwrap();
    let hostile = record_of(uuid, hostile_verifier.clone());
    assert!(matches!(
        auth.authenticate_with(&uuid, Some(&hostile), &imported, &device(), count),
        Err(AuthError::BadVerifier { .. })
    ));
    assert_eq!(asked.get(), 5);
    let hostile = record_of(*key, hostile_verifier);
    assert!(matches!(
        auth.authenticate_with(key, Some(&hostile), &imported, &device(), count),
        Err(AuthError::BadVerifier { .. })
    ));
    assert_eq!(asked.get(), 5, "a generated key's dummy is the fast one");
    // A record of another key is no record: the dummy, and an unknown key.
    assert_eq!(
        auth.authenticate_with(
            &unknown_generated,
            Some(&fast.record),
            &fast.secret,
            &device(),
            count
        ),
        Err(AuthError::UnknownKey)
    );

    // A spent budget refuses an imported key at once, known or not...
    let other = Secret::imported("another-imported-secret").unwrap();
    for record in [None, Some(&slow)] {
        assert_eq!(
            auth.authenticate_with(&uuid, record, &other, &device(), || false),
            Err(AuthError::Throttled)
        );
    }
    // ...but never what needs no Argon2: a generated key, or a cache hit.
    auth.authenticate_with(key, Some(&fast.record), &fast.secret, &device(), || false)
        .unwrap();
    auth.authenticate_with(&uuid, Some(&slow), &imported, &device(), || false)
        .unwrap();
    assert_eq!(AuthError::Throttled.public_message(), "bad credentials");
}

fn record_of(key: KeyId, verifier: Verifier) -> AccessKey {
    AccessKey::new(key, APP.parse().unwrap(), verifier, Scope::Unrestricted)
}

#[test]
fn upgrades_replace_weaker_or_other_scheme_verifiers() {
    let mut r = rng(7);
    let auth = Authenticator::new(cheap());
    let imported = Secret::imported(LEGACY_SECRET).unwrap();
    let policy = auth.policy();

    // Argon2 for a generated secret → the fast scheme.
    let old = AccessKey::generate(
        &mut r,
        APP.parse().unwrap(),
        Scope::Unrestricted,
        &cheap().argon2id_for_generated(true),
    )
    .unwrap();
    assert!(policy.needs_upgrade(old.record.verifier(), &old.secret));
    let done = auth
        .authenticate_and_upgrade(
            old.record.key(),
            Some(&old.record),
            &old.secret,
            &device(),
            &mut r,
        )
        .unwrap();
    let upgraded = done.upgrade.unwrap();
    assert_eq!(upgraded.scheme(), Scheme::HmacSha256);
    assert_eq!(upgraded.verify(&old.secret, policy), Ok(()));
    let record = old.record.clone().with_verifier(upgraded);
    let done = auth
        .authenticate_and_upgrade(record.key(), Some(&record), &old.secret, &device(), &mut r)
        .unwrap();
    assert!(done.upgrade.is_none());

    // Argon2 below the policy's parameters → Argon2 at the policy's.
    let stronger = HashPolicy::default()
        .with_params(Cost::new(128, 2, 1))
        .unwrap();
    let weak = record_for(&imported, &cheap(), &mut r);
    assert!(stronger.needs_upgrade(weak.verifier(), &imported));
    let auth2 = Authenticator::new(stronger.clone());
    let done = auth2
        .authenticate_and_upgrade(weak.key(), Some(&weak), &imported, &device(), &mut r)
        .unwrap();
    let upgraded = done.upgrade.unwrap();
    let cost = upgraded.cost().unwrap();
    assert_eq!((cost.m, cost.t, cost.p), (128, 2, 1));
    assert_eq!(upgraded.verify(&imported, &stronger), Ok(()));
    // At the policy's parameters: nothing to do.
    assert!(!cheap().needs_upgrade(weak.verifier(), &imported));

    // A fast verifier of an imported secret (allowed) → Argon2id.
    let lenient = cheap().allow_fast_for_imported(true);
    let legacy: Verifier = PYTHON_LEGACY.parse().unwrap();
    assert!(lenient.needs_upgrade(&legacy, &imported));

    // A wrong secret gets no upgrade, only its refusal.
    let wrong = Secret::generate(&mut r);
    assert!(matches!(
        auth.authenticate_and_upgrade(
            old.record.key(),
            Some(&old.record),
            &wrong,
            &device(),
            &mut r
        ),
        Err(AuthError::WrongSecret { .. })
    ));
}

fn record_for(secret: &Secret, policy: &HashPolicy, r: &mut ChaCha20Rng) -> AccessKey {
    record(Verifier::create(secret, policy, r).unwrap())
}
