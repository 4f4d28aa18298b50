//! Verifiers and authentication through the public API.

use std::sync::Arc;

use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use structure_access::{
    AccessKey, AuthError, Authenticator, Cost, DeviceRecord, HashPolicy, KeyId, KeyStatus,
    Restriction, Scope, Secret, VerificationCache, Verifier, VerifierError,
};

/// The application of every key and device here.
const APP: &str = "app1";

const SECRET: &str = "sts_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA2ytyDA";

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// Cheap Argon2id, for generated secrets too: these tests exercise the Argon2
/// path (pool, cache, bounds). `tests/fast.rs` tests the fast scheme.
fn cheap_policy() -> HashPolicy {
    HashPolicy::default()
        .with_params(Cost::new(64, 1, 1))
        .unwrap()
        .argon2id_for_generated(true)
}

fn device(id: &str) -> DeviceRecord {
    DeviceRecord::new(APP.parse().unwrap(), id.parse().unwrap())
}

fn key_with(scope: Scope, seed: u64) -> (AccessKey, Secret) {
    let new =
        AccessKey::generate(&mut rng(seed), APP.parse().unwrap(), scope, &cheap_policy()).unwrap();
    (new.record, new.secret)
}

fn cached_authenticator() -> Authenticator {
    Authenticator::new(cheap_policy()).with_cache(VerificationCache::with_rng(100, &mut rng(0)))
}

/// Produced by libargon2 through argon2-cffi 25.1.0 (argon2-cffi-bindings 26.2.0):
/// `PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1).hash(SECRET)`.
const LIBARGON2_DEFAULT: &str = "$argon2id$v=19$m=19456,t=2,p=1$o1a2OxEBgc6kveVG22cS6A$K7zmi4nG5Ux59QQJFhoI8CoXXlFI9Dj7hPiP8geQZBA";
/// Same, with `time_cost=1, memory_cost=64`.
const LIBARGON2_SMALL: &str = "$argon2id$v=19$m=64,t=1,p=1$D/3c+vD/PkbtZRI0XzxJFQ$H3Vchfc9X4X93xvTtMS/2s890A+rAZFaCQdRaKRPh4k";
/// Same library, `time_cost=3, memory_cost=65536, parallelism=4` (its defaults),
/// over a legacy 64-hex secret.
const LIBARGON2_LEGACY: &str = "$argon2id$v=19$m=65536,t=3,p=4$nrGwdLJM9nrqAHn3tysd4w$0p55X0Eu9YgWXW7qp//aI30XoUE59nzM8f9nKaXIy6E";
const LEGACY_SECRET: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

#[test]
fn verifiers_from_libargon2_verify() {
    let secret: Secret = SECRET.parse().unwrap();
    let wrong: Secret = "sts_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg053igU"
        .parse()
        .unwrap();
    let policy = HashPolicy::default();
    for phc in [LIBARGON2_DEFAULT, LIBARGON2_SMALL] {
        let verifier: Verifier = phc.parse().unwrap();
        assert_eq!(verifier.to_string(), phc);
        assert_eq!(verifier.verify(&secret, &policy), Ok(()), "{phc}");
        assert_eq!(
            verifier.verify(&wrong, &policy),
            Err(VerifierError::Mismatch),
            "{phc}"
        );
    }
    let legacy: Verifier = LIBARGON2_LEGACY.parse().unwrap();
    let secret = Secret::imported(LEGACY_SECRET).unwrap();
    // argon2-cffi's defaults are within the default bounds
    // (tests/argon2_vectors.rs has node-argon2's too)...
    assert_eq!(legacy.verify(&secret, &policy), Ok(()));
    // ...and tighter bounds refuse them before hashing.
    let tight = HashPolicy::default()
        .with_bounds(Cost::new(65536, 2, 4))
        .unwrap();
    assert!(matches!(
        legacy.verify(&secret, &tight),
        Err(VerifierError::OutOfBounds {
            name: "t",
            value: 3,
            ..
        })
    ));
}

#[test]
fn our_verifiers_are_standard_phc_strings() {
    // These exact strings were checked with libargon2 (argon2-cffi 25.1.0):
    // `PasswordHasher().verify(phc, SECRET)` returns True for both, and raises
    // VerifyMismatchError for the secret with its last character changed.
    let secret: Secret = SECRET.parse().unwrap();
    let argon2 = HashPolicy::default().argon2id_for_generated(true);
    let ours = Verifier::create(&secret, &argon2, &mut rng(99)).unwrap();
    assert_eq!(
        ours.as_str(),
        "$argon2id$v=19$m=19456,t=2,p=1$oM5KjfJWVYFidH1yVDqyUw$djOWblmGmpYR3DSgjEjfQHseQ1DZs9scqALSjhDZYdU"
    );
    let small = Verifier::create(&secret, &cheap_policy(), &mut rng(99)).unwrap();
    assert_eq!(
        small.as_str(),
        "$argon2id$v=19$m=64,t=1,p=1$oM5KjfJWVYFidH1yVDqyUw$PIpbkYTyEh0HzlF8cs9UyAL7IKK4xMktpFgGoLFlHAU"
    );
}

#[test]
fn right_secret_gives_a_principal() {
    let (record, secret) = key_with(Scope::Unrestricted, 1);
    let auth = Authenticator::new(cheap_policy());
    let principal = auth
        .authenticate(record.key(), Some(&record), &secret, &device("dev-1"))
        .unwrap();
    assert_eq!(principal.device_id().as_str(), "dev-1");
    assert_eq!(principal.key(), record.key());
    assert!(principal.can_see(&device("anything")));
    let again = auth
        .authenticate_password(
            record.key(),
            Some(&record),
            secret.expose_secret(),
            &device("dev-1"),
        )
        .unwrap();
    assert_eq!(again, principal);
}

#[test]
fn every_refusal_has_its_cause_and_one_public_answer() {
    let restriction: Restriction = "dev-1,dev-2".parse().unwrap();
    let (record, secret) = key_with(restriction.into(), 2);
    let other = Secret::generate(&mut rng(3));
    let auth = Authenticator::new(cheap_policy());
    let key = *record.key();

    let wrong = auth
        .authenticate(record.key(), Some(&record), &other, &device("dev-1"))
        .unwrap_err();
    assert_eq!(wrong, AuthError::WrongSecret { key });

    let unknown = auth
        .authenticate(record.key(), None, &secret, &device("dev-1"))
        .unwrap_err();
    assert_eq!(unknown, AuthError::UnknownKey);

    let out = auth
        .authenticate(record.key(), Some(&record), &secret, &device("dev-3"))
        .unwrap_err();
    assert_eq!(out, AuthError::OutOfScope { key });
    assert_eq!(
        out.to_string(),
        format!("device is outside the scope of access key `{key}`")
    );

    let inactive = record.clone().with_status(KeyStatus::Inactive);
    let err = auth
        .authenticate(inactive.key(), Some(&inactive), &secret, &device("dev-1"))
        .unwrap_err();
    assert_eq!(err, AuthError::InactiveKey { key });

    let malformed = auth
        .authenticate_password(record.key(), Some(&record), "sts_garbage", &device("dev-1"))
        .unwrap_err();
    assert!(matches!(malformed, AuthError::MalformedSecret(_)));
    let checksum = auth
        .authenticate_password(
            record.key(),
            Some(&record),
            "sts_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA2ytyDB",
            &device("dev-1"),
        )
        .unwrap_err();
    // The secret's own message, once: it names what is wrong on its own.
    assert_eq!(
        checksum.to_string(),
        "access secret checksum mismatch, expected the last 6 characters to be the CRC32 of the rest"
    );
    assert!(std::error::Error::source(&checksum).is_none());

    let bad_device = auth
        .authenticate(record.key(), Some(&record), &secret, &device_row("bad id"))
        .unwrap_err();
    assert!(matches!(bad_device, AuthError::InvalidDeviceId(_)));

    for err in [wrong, unknown, out, err, malformed, checksum, bad_device] {
        assert_eq!(err.public_message(), "bad credentials");
        assert!(!err.is_server_fault());
    }
}

struct Row(&'static str);
impl structure_access::Device for Row {
    fn application(&self) -> &str {
        APP
    }
    fn id(&self) -> &str {
        self.0
    }
    fn tags(&self) -> impl Iterator<Item = (&str, &str)> {
        std::iter::empty()
    }
}
#[test]
fn authenticators_and_principals_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Authenticator>();
    send_sync::<structure_access::Principal>();
    send_sync::<AuthError>();
}

/// C-GOOD-ERR: an error shows its cause in its message or returns it from
/// `source()`, never both.
#[test]
fn no_error_prints_its_cause_twice() {
    fn check(error: &dyn std::error::Error) {
        let mut parent = error;
        while let Some(cause) = parent.source() {
            let (outer, inner) = (parent.to_string(), cause.to_string());
            assert!(
                !outer.contains(&inner),
                "`{outer}` repeats its cause `{inner}`"
            );
            parent = cause;
        }
    }
    let auth = Authenticator::new(cheap_policy());
    let (record, secret) = key_with(Scope::Unrestricted, 3);
    let bad =
        record_with_verifier("$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
            .unwrap();
    let errors: Vec<Box<dyn std::error::Error>> = vec![
        Box::new(
            auth.authenticate_password(record.key(), Some(&record), "sts_x", &device("d"))
                .unwrap_err(),
        ),
        Box::new(
            auth.authenticate(record.key(), Some(&record), &secret, &device_row("bad id"))
                .unwrap_err(),
        ),
        Box::new(
            auth.authenticate(bad.key(), Some(&bad), &secret, &device("d"))
                .unwrap_err(),
        ),
        Box::new(structure_access::mqtt::FilterList::new(["a/#/b"]).unwrap_err()),
        Box::new(structure_access::GenerateError::from(
            VerifierError::OutOfMemory { kib: 1 },
        )),
    ];
    for error in &errors {
        check(error.as_ref());
    }
    // The wrapping ones do have a cause to show.
    assert!(errors[2].source().is_some());
    assert!(errors[3].source().is_some());
}

fn device_row(id: &'static str) -> Row {
    Row(id)
}

#[test]
fn status_and_scope_are_only_checked_after_the_secret() {
    let restriction: Restriction = "dev-1".parse().unwrap();
    let (record, _) = key_with(restriction.into(), 4);
    let record = record.with_status(KeyStatus::Inactive);
    let other = Secret::generate(&mut rng(5));
    let auth = Authenticator::new(cheap_policy());
    // Inactive and out of scope, but without the secret the caller learns neither.
    let err = auth
        .authenticate(record.key(), Some(&record), &other, &device("dev-9"))
        .unwrap_err();
    assert_eq!(err, AuthError::WrongSecret { key: *record.key() });
}

fn record_with_verifier(phc: &str) -> Result<AccessKey, VerifierError> {
    let (record, _) = key_with(Scope::Unrestricted, 6);
    Ok(AccessKey::new(
        *record.key(),
        *record.application(),
        phc.parse()?,
        Scope::Unrestricted,
    ))
}

#[test]
fn hostile_stored_verifiers_are_refused_before_hashing() {
    let auth = Authenticator::new(HashPolicy::default());
    let secret: Secret = SECRET.parse().unwrap();
    let salt_hash = "o1a2OxEBgc6kveVG22cS6A$K7zmi4nG5Ux59QQJFhoI8CoXXlFI9Dj7hPiP8geQZBA";
    let cases = [
        (
            format!("$argon2id$v=19$m=4194304,t=2,p=1${salt_hash}"),
            "verifier parameter `m=4194304` is outside the hash policy, expected 8 to 65536",
        ),
        (
            format!("$argon2id$v=19$m=19456,t=4000000,p=1${salt_hash}"),
            "verifier parameter `t=4000000` is outside the hash policy, expected 1 to 16",
        ),
        (
            format!("$argon2id$v=19$m=19456,t=2,p=255${salt_hash}"),
            "verifier parameter `p=255` is outside the hash policy, expected 1 to 8",
        ),
        (
            // Each parameter within bounds, but twice the work bound (64 MiB × 4).
            format!("$argon2id$v=19$m=65536,t=8,p=1${salt_hash}"),
            "verifier parameters `m=65536,t=8` cost 524288 KiB passes, expected at most 262144",
        ),
        (
            format!("$argon2i$v=19$m=19456,t=2,p=1${salt_hash}"),
            "verifier algorithm `argon2i` is not allowed by the hash policy, expected `argon2id`",
        ),
        (
            format!("$argon2d$v=19$m=19456,t=2,p=1${salt_hash}"),
            "verifier algorithm `argon2d` is not allowed by the hash policy, expected `argon2id`",
        ),
        (
            format!("$argon2id$v=19$m=8,t=2,p=4${salt_hash}"),
            "invalid argon2 parameters m=8, t=2, p=4: memory cost below 8 KiB per lane",
        ),
    ];
    for (phc, message) in cases {
        let record = record_with_verifier(&phc).unwrap();
        let err = auth
            .authenticate(record.key(), Some(&record), &secret, &device("dev-1"))
            .unwrap_err();
        assert!(err.is_server_fault(), "{phc}");
        assert_eq!(err.public_message(), "bad credentials");
        let AuthError::BadVerifier { source, .. } = &err else {
            panic!("{phc}: {err:?}");
        };
        assert_eq!(source.to_string(), message, "{phc}");
        // The cause once: returned by `source()`, not repeated in the message.
        assert_eq!(
            err.to_string(),
            format!("stored verifier of access key `{}` refused", record.key())
        );
        let cause = std::error::Error::source(&err).unwrap();
        assert_eq!(cause.to_string(), message);
    }
}

#[test]
fn policy_can_allow_other_variants_and_bounds() {
    let secret: Secret = SECRET.parse().unwrap();
    let policy = cheap_policy().allow_argon2i(true);
    let i = Verifier::create(&secret, &cheap_policy(), &mut rng(1)).unwrap();
    // Rewrite the variant of a real verifier: argon2i hashes differently, so it
    // no longer matches, but it is computed rather than refused.
    let as_i: Verifier = i.as_str().replace("argon2id", "argon2i").parse().unwrap();
    assert_eq!(as_i.verify(&secret, &policy), Err(VerifierError::Mismatch));
    assert!(matches!(
        as_i.verify(&secret, &cheap_policy()),
        Err(VerifierError::AlgorithmNotAllowed { .. })
    ));
    let tight = HashPolicy::default()
        .with_bounds(Cost::new(19456, 2, 1))
        .unwrap();
    assert!(
        HashPolicy::default()
            .with_bounds(Cost::new(1024, 2, 1))
            .is_err()
    );
    let big: Verifier = "$argon2id$v=19$m=19457,t=2,p=1$o1a2OxEBgc6kveVG22cS6A$K7zmi4nG5Ux59QQJFhoI8CoXXlFI9Dj7hPiP8geQZBA"
        .parse()
        .unwrap();
    assert!(matches!(
        tight.check(&big),
        Err(VerifierError::OutOfBounds {
            name: "m",
            value: 19457,
            ..
        })
    ));
}

#[test]
fn malformed_verifiers_are_refused_with_their_position() {
    let cases: &[(&str, &str)] = &[
        (
            "",
            "malformed verifier at byte 0: expected `$` followed by the algorithm",
        ),
        (
            "$scrypt$ln=15",
            "unsupported verifier algorithm `scrypt`, expected `hmac-sha256` or `argon2id`",
        ),
        (
            "$argon2id$m=19456",
            "malformed verifier at byte 9: expected `$v=19`",
        ),
        (
            "$argon2id$v=16$m=1",
            "unsupported argon2 version `16`, expected `19`",
        ),
        (
            "$argon2id$v=19$m=019456,t=2,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
            "malformed verifier at byte 17: expected a decimal memory cost",
        ),
        (
            "$argon2id$v=19$m=99999999999,t=2,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
            "malformed verifier at byte 17: expected a decimal memory cost",
        ),
        (
            "$argon2id$v=19$m=1,t=2,m=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
            "malformed verifier at byte 23: expected `m=`, `t=` or `p=`, each once",
        ),
        (
            "$argon2id$v=19$m=64,t=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
            "malformed verifier at byte 23: expected `,` and the next of `m`, `t` and `p`",
        ),
        (
            "$argon2id$v=19$x=1,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
            "malformed verifier at byte 15: expected `m=`, `t=` or `p=`, each once",
        ),
        (
            "$argon2id$v=19$m=64,t=1,p=1,keyid=AAAA$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
            "malformed verifier at byte 27: expected `$` and the salt (no other parameters are accepted)",
        ),
        (
            "$argon2id$v=19$m=64,t=1,p=1$AAAA$AAAAAAAAAAAAAAAAAAAAAA",
            "verifier salt is 3 bytes long, expected 8 to 64",
        ),
        (
            "$argon2id$v=19$m=64,t=1,p=1$AAAAAAAAAAA$AAAA",
            "verifier output is 3 bytes long, expected 16 to 64",
        ),
        (
            "$argon2id$v=19$m=64,t=1,p=1$AAAAAAAAAA*$AAAAAAAAAAAAAAAAAAAAAA",
            "malformed verifier at byte 28: expected unpadded standard base64",
        ),
        (
            "$argon2id$v=19$m=64,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA$x",
            "malformed verifier at byte 62: expected the end of the verifier",
        ),
    ];
    for (phc, message) in cases {
        let err = phc.parse::<Verifier>().unwrap_err();
        assert_eq!(err.to_string(), *message, "{phc}");
    }
    let long = format!("$argon2id$v=19$m=64,t=1,p=1${}", "A".repeat(300));
    assert_eq!(
        long.parse::<Verifier>().unwrap_err(),
        VerifierError::TooLong { len: 328 }
    );
}

#[test]
fn cache_hits_skip_argon2_and_never_hold_failures() {
    let (record, secret) = key_with(Scope::Unrestricted, 7);
    let other = Secret::generate(&mut rng(8));
    let auth = cached_authenticator();
    let cache = auth.cache().unwrap();
    let dev = device("dev-1");

    assert!(
        auth.authenticate(record.key(), Some(&record), &other, &dev)
            .is_err()
    );
    assert_eq!(cache.len(), 0, "a failure was cached");

    auth.authenticate(record.key(), Some(&record), &secret, &dev)
        .unwrap();
    let s = cache.stats();
    assert_eq!((s.hits, s.misses, s.len), (0, 2, 1));
    for _ in 0..3 {
        auth.authenticate(record.key(), Some(&record), &secret, &dev)
            .unwrap();
    }
    assert_eq!(cache.stats().hits, 3);
    // A wrong secret for a cached key misses and runs the full verification.
    assert!(matches!(
        auth.authenticate(record.key(), Some(&record), &other, &dev),
        Err(AuthError::WrongSecret { .. })
    ));
    assert_eq!(cache.stats().misses, 3);
}

#[test]
fn a_changed_verifier_misses_the_cache() {
    let (record, secret) = key_with(Scope::Unrestricted, 9);
    let auth = cached_authenticator();
    let dev = device("dev-1");
    auth.authenticate(record.key(), Some(&record), &secret, &dev)
        .unwrap();
    // Rotation: same key id, new secret and verifier.
    let new_secret = Secret::generate(&mut rng(10));
    let rotated = AccessKey::new(
        *record.key(),
        *record.application(),
        Verifier::create(&new_secret, &cheap_policy(), &mut rng(11)).unwrap(),
        Scope::Unrestricted,
    );
    assert!(matches!(
        auth.authenticate(rotated.key(), Some(&rotated), &secret, &dev),
        Err(AuthError::WrongSecret { .. })
    ));
    auth.authenticate(rotated.key(), Some(&rotated), &new_secret, &dev)
        .unwrap();
    let stats = auth.cache().unwrap().stats();
    assert_eq!((stats.hits, stats.len), (0, 1));
    // The old pair no longer hits: the entry now holds the new verifier's MAC.
    assert!(
        auth.authenticate(record.key(), Some(&record), &secret, &dev)
            .is_ok()
    );
    assert_eq!(auth.cache().unwrap().stats().hits, 0);
}

#[test]
fn invalidate_and_clear_forget_entries() {
    let (a, a_secret) = key_with(Scope::Unrestricted, 12);
    let (b, b_secret) = key_with(Scope::Unrestricted, 13);
    let auth = cached_authenticator();
    let cache = auth.cache().unwrap();
    let dev = device("dev-1");
    auth.authenticate(a.key(), Some(&a), &a_secret, &dev)
        .unwrap();
    auth.authenticate(b.key(), Some(&b), &b_secret, &dev)
        .unwrap();
    assert_eq!(cache.len(), 2);
    cache.invalidate(a.key());
    assert_eq!(cache.len(), 1);
    auth.authenticate(a.key(), Some(&a), &a_secret, &dev)
        .unwrap();
    assert_eq!(cache.stats().hits, 0);
    auth.authenticate(b.key(), Some(&b), &b_secret, &dev)
        .unwrap();
    assert_eq!(cache.stats().hits, 1);
    cache.clear();
    assert!(cache.is_empty());
}

#[test]
fn status_and_scope_are_checked_on_cached_calls() {
    let restriction: Restriction = "dev-1".parse().unwrap();
    let (mut record, secret) = key_with(restriction.into(), 14);
    let auth = cached_authenticator();
    auth.authenticate(record.key(), Some(&record), &secret, &device("dev-1"))
        .unwrap();
    assert!(matches!(
        auth.authenticate(record.key(), Some(&record), &secret, &device("dev-2")),
        Err(AuthError::OutOfScope { .. })
    ));
    record.set_status(KeyStatus::Inactive);
    assert!(matches!(
        auth.authenticate(record.key(), Some(&record), &secret, &device("dev-1")),
        Err(AuthError::InactiveKey { .. })
    ));
    assert_eq!(auth.cache().unwrap().stats().hits, 2);
}

#[test]
fn the_cache_stays_within_its_capacity() {
    let auth =
        Authenticator::new(cheap_policy()).with_cache(VerificationCache::with_rng(16, &mut rng(1)));
    let dev = device("dev-1");
    for seed in 0..64 {
        let (record, secret) = key_with(Scope::Unrestricted, 100 + seed);
        auth.authenticate(record.key(), Some(&record), &secret, &dev)
            .unwrap();
    }
    let cache = auth.cache().unwrap();
    assert!(cache.len() <= cache.capacity(), "{cache:?}");
    assert!(!cache.is_empty());
}

#[test]
fn concurrent_authentication_from_several_threads() {
    let restriction: Restriction = "dev-1,dev-2,dev-3,dev-4".parse().unwrap();
    let keys: Vec<_> = (0..4)
        .map(|i| key_with(restriction.clone().into(), 200 + i))
        .collect();
    let auth = Arc::new(cached_authenticator().with_pool_size(2));
    let keys = Arc::new(keys);
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let auth = Arc::clone(&auth);
            let keys = Arc::clone(&keys);
            std::thread::spawn(move || {
                for round in 0..25 {
                    let (record, secret) = &keys[(t + round) % keys.len()];
                    let dev = device(&format!("dev-{}", 1 + round % 4));
                    let principal = auth
                        .authenticate(record.key(), Some(record), secret, &dev)
                        .unwrap();
                    assert_eq!(principal.key(), record.key());
                    let wrong = Secret::generate(&mut rng((t * 100 + round) as u64));
                    assert!(
                        auth.authenticate(record.key(), Some(record), &wrong, &dev)
                            .is_err()
                    );
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    let stats = auth.cache().unwrap().stats();
    assert_eq!(stats.len, 4);
    assert!(stats.hits >= 200 - 8 * 4, "{stats:?}");
}

#[test]
fn authenticator_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Authenticator>();
    check::<VerificationCache>();
    check::<AccessKey>();
    check::<structure_access::Principal>();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// No refusal's text or Debug contains the secret that was presented.
    #[test]
    fn refusals_never_show_the_secret(seed in any::<u64>(), status in any::<bool>(), known in any::<bool>(), id in "[a-z0-9-]{1,8}") {
        let restriction: Restriction = "dev-1".parse().unwrap();
        let (record, secret) = key_with(restriction.into(), seed);
        let record = record.with_status(if status { KeyStatus::Active } else { KeyStatus::Inactive });
        let presented = if known { secret } else { Secret::generate(&mut rng(seed ^ 1)) };
        let auth = Authenticator::new(cheap_policy());
        let result = auth.authenticate(record.key(), Some(&record), &presented, &device(&id));
        let unknown = auth.authenticate(record.key(), None, &presented, &device(&id));
        let text = presented.expose_secret();
        for err in [result.err(), unknown.err()].into_iter().flatten() {
            for shown in [err.to_string(), format!("{err:?}"), format!("{err:#?}")] {
                prop_assert!(!shown.contains(&text[4..20]), "{}", shown);
            }
        }
        let garbage = format!("{}x", &text[..40]);
        let err = auth.authenticate_password(record.key(), Some(&record), &garbage, &device(&id)).unwrap_err();
        prop_assert!(!err.to_string().contains(&text[4..20]));
        let debug = format!("{err:?}");
        prop_assert!(!debug.contains(&text[4..20]));
        let principal_debug = format!("{auth:?}");
        prop_assert!(!principal_debug.contains(&text[4..20]));
    }
}

#[test]
fn key_ids_in_errors_are_public_keys_only() {
    let key: KeyId = "stk_4DmVJcy3ZpW0gNqk8TbX2a".parse().unwrap();
    let err = AuthError::WrongSecret { key };
    assert_eq!(
        err.to_string(),
        "wrong secret for access key `stk_4DmVJcy3ZpW0gNqk8TbX2a`"
    );
}
