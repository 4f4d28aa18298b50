//! Device tokens through the public API: round trips, every refusal, and
//! arbitrary input.

use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use structure_access::{
    AccessKey, Authenticator, DeviceRecord, HashPolicy, KeyStatus, Principal, Restriction, Scope,
    Secret, UnixTime, Verifier,
};
use structure_access_tokens::{
    DEFAULT_LIFETIME, Issuer, MAX_LIFETIME, SigningKey, TokenError, TokenVerifier,
};

const AUDIENCE: &str = "https://api.example";

fn now() -> UnixTime {
    UnixTime::from_secs(1_800_000_000).unwrap()
}

fn signing(seed: u8) -> SigningKey {
    SigningKey::from_seed([seed; 32]).unwrap()
}

struct Fixture {
    record: AccessKey,
    device: DeviceRecord,
    principal: Principal,
}

fn fixture(rng: &mut ChaCha20Rng, device: &str, scope: Scope) -> Fixture {
    let policy = HashPolicy::default();
    let new = AccessKey::generate(rng, "app1".parse().unwrap(), scope, &policy).unwrap();
    let device = DeviceRecord::new("app1".parse().unwrap(), device.parse().unwrap())
        .with_tag("kind", "truck");
    let principal = Authenticator::new(policy)
        .authenticate(new.record.key(), Some(&new.record), &new.secret, &device)
        .unwrap();
    Fixture {
        record: new.record,
        device,
        principal,
    }
}

fn setup() -> (Fixture, Issuer, TokenVerifier) {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let f = fixture(&mut rng, "d-1", Scope::Unrestricted);
    let key = signing(1);
    let verifier = TokenVerifier::new(AUDIENCE, [key.verifying_key()]).unwrap();
    (f, Issuer::new(key, AUDIENCE).unwrap(), verifier)
}

#[test]
fn a_token_round_trips_to_the_same_principal() {
    let (f, issuer, verifier) = setup();
    let issued = issuer.issue(&f.principal, &f.record, now()).unwrap();
    assert_eq!(
        issued.expires_at,
        now().plus_secs(DEFAULT_LIFETIME).unwrap()
    );
    let claims = verifier.verify(issued.token.expose(), now()).unwrap();
    assert_eq!(claims.device_id(), f.principal.device_id());
    assert_eq!(claims.key(), f.principal.key());
    assert_eq!(claims.application(), f.principal.application());
    assert_eq!(
        (claims.issued_at(), claims.expires_at()),
        (now(), issued.expires_at)
    );
    let principal = claims
        .principal(Some(&f.record), Some(&f.device), now())
        .unwrap();
    assert_eq!(principal, f.principal);
}

#[test]
fn expiry_audience_and_signing_keys_are_checked() {
    let (f, issuer, verifier) = setup();
    let issuer = issuer.with_lifetime(60).unwrap();
    let token = issuer.issue(&f.principal, &f.record, now()).unwrap().token;
    let at = now().plus_secs(59).unwrap();
    assert!(verifier.verify(token.expose(), at).is_ok());
    let expired = now().plus_secs(60).unwrap();
    assert_eq!(
        verifier.verify(token.expose(), expired),
        Err(TokenError::Expired { at: expired })
    );
    // Issued in the future, beyond the skew.
    let early = UnixTime::from_secs(now().as_secs() - 61).unwrap();
    assert!(matches!(
        verifier.verify(token.expose(), early),
        Err(TokenError::NotYetValid { .. })
    ));
    // Another audience.
    let other = TokenVerifier::new("https://other.example", [signing(1).verifying_key()]).unwrap();
    assert_eq!(
        other.verify(token.expose(), now()),
        Err(TokenError::WrongAudience)
    );
    // A retired signing key: the verifier holds only the new one.
    let rotated = TokenVerifier::new(AUDIENCE, [signing(2).verifying_key()]).unwrap();
    assert_eq!(
        rotated.verify(token.expose(), now()),
        Err(TokenError::UnknownSigningKey)
    );
    // During the rotation both are held, and both keys' tokens verify.
    let both = TokenVerifier::new(
        AUDIENCE,
        [signing(2).verifying_key(), signing(1).verifying_key()],
    )
    .unwrap();
    assert!(both.verify(token.expose(), now()).is_ok());
    let new_token = Issuer::new(signing(2), AUDIENCE)
        .unwrap()
        .issue(&f.principal, &f.record, now())
        .unwrap()
        .token;
    assert!(both.verify(new_token.expose(), now()).is_ok());
    assert_eq!(
        verifier.verify(new_token.expose(), now()),
        Err(TokenError::UnknownSigningKey)
    );
}

#[test]
fn the_current_records_decide() {
    let (f, issuer, verifier) = setup();
    let token = issuer.issue(&f.principal, &f.record, now()).unwrap().token;
    let claims = verifier.verify(token.expose(), now()).unwrap();
    let key = *f.record.key();
    // Deleted key, deleted device.
    assert_eq!(
        claims.principal(None, Some(&f.device), now()),
        Err(TokenError::KeyGone { key })
    );
    assert!(matches!(
        claims.principal::<DeviceRecord>(Some(&f.record), None, now()),
        Err(TokenError::DeviceGone)
    ));
    // Inactive, expired.
    let inactive = f.record.clone().with_status(KeyStatus::Inactive);
    assert!(matches!(
        claims.principal(Some(&inactive), Some(&f.device), now()),
        Err(TokenError::Refused(_))
    ));
    let expired = f.record.clone().with_expiry(Some(now()));
    assert_eq!(
        claims
            .principal(Some(&expired), Some(&f.device), now())
            .map_err(|e| e.code()),
        Err("token_refused")
    );
    // A rotated secret: same key id, another verifier.
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let secret = Secret::generate(&mut rng);
    let verifier2 = Verifier::create(&secret, &HashPolicy::default(), &mut rng).unwrap();
    let rotated = f.record.clone().with_verifier(verifier2);
    assert_eq!(
        claims.principal(Some(&rotated), Some(&f.device), now()),
        Err(TokenError::SecretRotated { key })
    );
    // A key now restricted to other devices.
    let restricted = AccessKey::new(
        key,
        *f.record.application(),
        f.record.verifier().clone(),
        "kind=car".parse::<Restriction>().unwrap().into(),
    );
    assert!(matches!(
        claims.principal(Some(&restricted), Some(&f.device), now()),
        Err(TokenError::Refused(_))
    ));
}

#[test]
fn lifetimes_and_audiences_are_bounded_and_keys_round_trip_as_paserk() {
    let issuer = Issuer::new(signing(1), AUDIENCE).unwrap();
    assert_eq!(
        issuer.clone().with_lifetime(0).unwrap_err(),
        TokenError::Lifetime(0)
    );
    assert!(issuer.clone().with_lifetime(MAX_LIFETIME + 1).is_err());
    assert!(issuer.with_lifetime(MAX_LIFETIME).is_ok());
    for bad in ["", "has space", &"a".repeat(257), "é"] {
        assert_eq!(
            Issuer::new(signing(1), bad).unwrap_err(),
            TokenError::Audience
        );
    }
    let key = signing(5);
    let text = key.to_paserk();
    assert!(text.starts_with("k4.secret."));
    let again = SigningKey::from_paserk(&text).unwrap();
    assert_eq!(again.id(), key.id());
    assert!(key.id().starts_with("k4.pid."));
    let public = key.verifying_key().to_paserk();
    assert!(public.starts_with("k4.public."));
    assert_eq!(
        structure_access_tokens::VerifyingKey::from_paserk(&public)
            .unwrap()
            .id(),
        key.id()
    );
    assert!(SigningKey::from_paserk(&public).is_err());
    // Debug shows no secret.
    let debug = format!("{key:?}");
    assert!(!debug.contains(&text["k4.secret.".len()..]), "{debug}");
}

#[test]
fn a_caching_verifier_remembers_but_still_expires_and_is_bounded() {
    let (f, issuer, verifier) = setup();
    let issuer = issuer.with_lifetime(60).unwrap();
    let cached = structure_access_tokens::CachingVerifier::new(verifier, 2);
    let tokens: Vec<_> = (0..3)
        .map(|i| {
            issuer
                .issue(&f.principal, &f.record, now().plus_secs(i).unwrap())
                .unwrap()
                .token
        })
        .collect();
    for token in &tokens {
        assert!(
            cached
                .verify(token.expose(), now().plus_secs(2).unwrap())
                .is_ok()
        );
        assert!(
            cached
                .verify(token.expose(), now().plus_secs(3).unwrap())
                .is_ok()
        );
    }
    // Expired, remembered or not.
    for token in &tokens {
        assert!(matches!(
            cached.verify(token.expose(), now().plus_secs(63).unwrap()),
            Err(TokenError::Expired { .. })
        ));
    }
    // A tampered token is not a remembered one.
    let mut tampered = tokens[0].expose().to_owned();
    tampered.push('A');
    assert!(cached.verify(&tampered, now()).is_err());
}

#[test]
fn tokens_match_the_readmes_detection_rule() {
    // `v4\.public\.[A-Za-z0-9_-]{100,}(\.[A-Za-z0-9_-]+)?`
    let (f, issuer, _) = setup();
    let token = issuer.issue(&f.principal, &f.record, now()).unwrap().token;
    let rest = token.expose().strip_prefix("v4.public.").unwrap();
    let (body, footer) = rest.split_once('.').unwrap();
    let base64url = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    assert!(body.len() >= 100 && base64url(body), "{body}");
    assert!(!footer.is_empty() && base64url(footer), "{footer}");
}

#[test]
fn debug_of_a_token_shows_no_token() {
    let (f, issuer, _) = setup();
    let issued = issuer.issue(&f.principal, &f.record, now()).unwrap();
    let debug = format!("{issued:?}");
    assert!(
        !debug.contains(&issued.token.expose()["v4.public.".len()..][..20]),
        "{debug}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn issued_tokens_verify_and_any_change_is_refused(
        device in "[a-zA-Z0-9_-]{1,64}",
        lifetime in 1..=MAX_LIFETIME,
        at in 0..MAX_LIFETIME,
        seed in any::<u64>(),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let f = fixture(&mut rng, &device, Scope::Unrestricted);
        let mut key_seed = [0u8; 32];
        rng.fill_bytes(&mut key_seed);
        let key = SigningKey::from_seed(key_seed).unwrap();
        let verifier = TokenVerifier::new(AUDIENCE, [key.verifying_key()]).unwrap();
        let issued = Issuer::new(key, AUDIENCE).unwrap().with_lifetime(lifetime).unwrap()
            .issue(&f.principal, &f.record, now()).unwrap();
        let when = now().plus_secs(at).unwrap();
        let result = verifier.verify(issued.token.expose(), when);
        if at < lifetime {
            let claims = result.unwrap();
            prop_assert_eq!(claims.device_id().as_str(), device.as_str());
            prop_assert_eq!(claims.principal(Some(&f.record), Some(&f.device), when).unwrap(), f.principal.clone());
        } else {
            prop_assert!(matches!(result, Err(TokenError::Expired { .. })), "{:?}", result);
        }
        // One bit changed anywhere: never accepted.
        let mut bytes = issued.token.expose().as_bytes().to_vec();
        let i = flip.index(bytes.len());
        bytes[i] ^= 1 << bit;
        if let Ok(text) = String::from_utf8(bytes)
            && text != issued.token.expose()
        {
            prop_assert!(verifier.verify(&text, now()).is_err(), "accepted {}", text);
        }
    }

    #[test]
    fn arbitrary_text_is_refused_without_panicking(text in ".{0,600}", tail in "[A-Za-z0-9_.-]{0,600}") {
        let verifier = TokenVerifier::new(AUDIENCE, [signing(1).verifying_key()]).unwrap();
        prop_assert!(verifier.verify(&text, now()).is_err());
        let token = format!("v4.public.{tail}");
        prop_assert!(verifier.verify(&token, now()).is_err());
    }
}
