//! No existence oracle: for every key-id shape, secret shape and policy
//! setting, refusing a known key costs the same hashing as refusing an
//! unknown one. Timing itself is measured beside each other in
//! `benches/auth.rs` (group `oracle`, table in BENCHMARKING.md); here the
//! work each refusal does is pinned, through `Authenticator::authenticate_traced`.

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use structure_access::{
    AccessKey, AuthError, AuthWork, Authenticator, Cost, DeviceRecord, HashPolicy, KeyId, Scheme,
    Scope, Secret, Variant, Verifier,
};

const APP: &str = "app1";
const GENERATED_KEY: &str = "stk_4DmVJcy3ZpW0gNqk8TbX2a";
const UNKNOWN_GENERATED_KEY: &str = "stk_0000000000000000000000";
const IMPORTED_KEY: &str = "6a1f8a3e-3b0c-4d7e-9f51-2c1b6f3e9a10";
const UNKNOWN_IMPORTED_KEY: &str = "00000000-0000-4000-8000-000000000000";

/// The four settings of the two policy switches, with cheap Argon2.
fn policies() -> Vec<(&'static str, HashPolicy)> {
    let base = HashPolicy::default()
        .with_params(Cost::new(64, 1, 1))
        .unwrap();
    vec![
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
            base.argon2id_for_generated(true)
                .allow_fast_for_imported(true),
        ),
    ]
}

fn device() -> DeviceRecord {
    DeviceRecord::new(APP.parse().unwrap(), "dev-1".parse().unwrap())
}

/// A secret of each shape, and a wrong one of the same shape.
fn secrets(generated: bool) -> (Secret, Secret) {
    if generated {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        (Secret::generate(&mut rng), Secret::generate(&mut rng))
    } else {
        (
            Secret::imported("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
                .unwrap(),
            Secret::imported("0f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
                .unwrap(),
        )
    }
}

fn keys(generated: bool) -> (KeyId, KeyId) {
    let (known, unknown) = if generated {
        (GENERATED_KEY, UNKNOWN_GENERATED_KEY)
    } else {
        (IMPORTED_KEY, UNKNOWN_IMPORTED_KEY)
    };
    (known.parse().unwrap(), unknown.parse().unwrap())
}

/// A fast verifier of any secret, as Python's standard library makes them
/// (the README's rule): how a platform's machine-made imported secrets are
/// stored under `allow_fast_for_imported`.
fn fast_verifier(secret: &Secret) -> Verifier {
    use base64ct::{Base64Unpadded, Encoding};
    use hmac::{KeyInit, Mac};
    let salt = [7u8; 16];
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&salt).unwrap();
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

fn shape(generated: bool) -> &'static str {
    if generated { "generated" } else { "imported" }
}

/// What a refusal of `key` computed.
fn work(
    auth: &Authenticator,
    key: &KeyId,
    record: Option<&AccessKey>,
    secret: &Secret,
) -> AuthWork {
    let (result, work) = auth.authenticate_traced(key, record, secret, &device(), || true);
    assert!(result.is_err(), "{key}: {result:?}");
    assert!(!work.cache_hit);
    work
}

/// The work a caller could time: the Argon2 work decides, and without
/// Argon2 the number of HMAC-SHA-256 runs.
fn cost(work: AuthWork) -> (u32, u64, u32) {
    let hmac = if work.argon2 == 0 {
        work.hmac_sha256
    } else {
        0
    };
    (work.argon2, work.argon2_kib_passes, hmac)
}

#[test]
fn the_rule_names_a_scheme_per_key_shape_and_policy() {
    let fast = Scheme::HmacSha256;
    let argon2 = Scheme::Argon2(Variant::Argon2id);
    let expected = [
        ("default", fast, argon2),
        ("argon2id_for_generated", argon2, argon2),
        ("allow_fast_for_imported", fast, fast),
        ("both", argon2, fast),
    ];
    for ((name, policy), (same, generated, imported)) in policies().into_iter().zip(expected) {
        assert_eq!(name, same);
        assert_eq!(policy.expected_scheme(&keys(true).0), generated, "{name}");
        assert_eq!(policy.expected_scheme(&keys(false).0), imported, "{name}");
    }
}

/// Every key-id shape × secret shape × policy, with the known key's record
/// holding either scheme's verifier (made for a secret of either shape):
/// where the rule can hide the key, known and unknown cost the same; where it
/// cannot (an Argon2 verifier where the rule names the fast scheme), the test
/// says so, as the documentation does.
#[test]
fn a_known_key_costs_what_an_unknown_key_of_its_shape_costs() {
    let mut hidden = 0;
    let mut shown = Vec::new();
    for (name, policy) in policies() {
        let auth = Authenticator::new(policy.clone()).with_pool_size(1);
        for generated_key in [true, false] {
            let (known, unknown) = keys(generated_key);
            let expected = policy.expected_scheme(&known);
            for legit_generated in [true, false] {
                let (legit, _) = secrets(legit_generated);
                for record_scheme_slow in [false, true] {
                    // The record's verifier: of the scheme asked, for the legit secret.
                    let verifier = if record_scheme_slow {
                        Verifier::create(
                            &legit,
                            &policy.clone().argon2id_for_generated(true),
                            &mut ChaCha20Rng::seed_from_u64(2),
                        )
                        .unwrap()
                    } else {
                        fast_verifier(&legit)
                    };
                    let record =
                        AccessKey::new(known, APP.parse().unwrap(), verifier, Scope::Unrestricted);
                    for presented_generated in [true, false] {
                        let (_, wrong) = secrets(presented_generated);
                        let known_work = work(&auth, &known, Some(&record), &wrong);
                        let unknown_work = work(&auth, &unknown, None, &wrong);
                        let cell = format!(
                            "{name}: {} key, record {}, {} secret presented",
                            shape(generated_key),
                            if record_scheme_slow {
                                "argon2id"
                            } else {
                                "hmac-sha256"
                            },
                            shape(presented_generated)
                        );
                        // The unknown key's dummy is the rule's, whatever the secret.
                        assert_eq!(unknown_work.argon2, u32::from(expected.is_slow()), "{cell}");
                        assert_eq!(
                            unknown_work.hmac_sha256,
                            u32::from(!expected.is_slow()),
                            "{cell}"
                        );
                        if record_scheme_slow && !expected.is_slow() {
                            // The one case the rule cannot hide: documented.
                            assert_eq!(cost(known_work).0, 1, "{cell}");
                            assert_eq!(cost(unknown_work).0, 0, "{cell}");
                            shown.push(cell);
                        } else {
                            assert_eq!(
                                cost(known_work),
                                cost(unknown_work),
                                "{cell}: {known_work:?} vs {unknown_work:?}"
                            );
                            hidden += 1;
                        }
                    }
                }
            }
        }
    }
    // 4 policies × 2 key shapes × 2 legit secret shapes × 2 record schemes ×
    // 2 presented shapes; not hidden: the Argon2 records (2 legit shapes × 2
    // presented) of the 4 (policy, key shape) pairs whose rule is the fast one.
    assert_eq!(hidden + shown.len(), 4 * 2 * 2 * 2 * 2);
    assert_eq!(shown.len(), 4 * 2 * 2, "{shown:#?}");
}

/// A fast verifier where the rule names Argon2id (here an imported key given a
/// generated secret) is verified, then padded with the Argon2id dummy; its
/// success is cached, so a repeat costs a cache hit.
#[test]
fn a_fast_record_of_an_argon2_shaped_key_is_padded_then_cached() {
    let policy = HashPolicy::default()
        .with_params(Cost::new(64, 1, 1))
        .unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let secret = Secret::generate(&mut rng);
    let (uuid, unknown) = keys(false);
    let record = AccessKey::new(
        uuid,
        APP.parse().unwrap(),
        Verifier::create(&secret, &policy, &mut rng).unwrap(),
        Scope::Unrestricted,
    );
    assert!(!record.verifier().is_slow());
    let auth = Authenticator::new(policy)
        .with_cache(structure_access::VerificationCache::with_rng(8, &mut rng));
    let (ok, first) = auth.authenticate_traced(&uuid, Some(&record), &secret, &device(), || true);
    assert!(ok.is_ok());
    assert_eq!(
        (first.hmac_sha256, first.argon2, first.argon2_kib_passes),
        (1, 1, 64)
    );
    let (_, dummy) = auth.authenticate_traced(&unknown, None, &secret, &device(), || true);
    assert_eq!((dummy.argon2, dummy.argon2_kib_passes), (1, 64));
    let (ok, again) = auth.authenticate_traced(&uuid, Some(&record), &secret, &device(), || false);
    assert!(ok.is_ok() && again.cache_hit && again.argon2 == 0);
    // Without the budget, a cold one is refused like the unknown key.
    let (_, wrong) = secrets(true);
    assert_eq!(
        auth.authenticate_with(&uuid, Some(&record), &wrong, &device(), || false),
        Err(AuthError::Throttled)
    );
    assert_eq!(
        auth.authenticate_with(&unknown, None, &wrong, &device(), || false),
        Err(AuthError::Throttled)
    );
}
