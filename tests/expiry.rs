//! Keys that expire: the time as text, the record's `expiresAt`, and the
//! decisions that compare it with the time the caller gives.

use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use structure_access::{
    AccessKey, AuthError, Authenticator, Cost, DeviceRecord, HashPolicy, KeyStatus, Principal,
    Scope, TimeError, UnixTime,
};

const APP: &str = "64b1f0c2a7e3d95b8c4f2a10";
const END_OF_9999: u64 = 253_402_300_799;

fn t(text: &str) -> UnixTime {
    text.parse().unwrap()
}

fn policy() -> HashPolicy {
    HashPolicy::default()
        .with_params(Cost::new(64, 1, 1))
        .unwrap()
}

/// The time of this test binary's clock (one test sets it at a time).
static NOW: AtomicU64 = AtomicU64::new(0);
fn test_clock() -> UnixTime {
    UnixTime::from_secs(NOW.load(Ordering::SeqCst)).unwrap()
}

#[test]
fn an_expired_key_authenticates_nobody_from_its_expiry_on() {
    let new = AccessKey::generate(
        &mut ChaCha20Rng::seed_from_u64(1),
        APP.parse().unwrap(),
        Scope::Unrestricted,
        &policy(),
    )
    .unwrap();
    let expiry = t("2027-03-01T12:00:00Z");
    let record = new.record.clone().with_expiry(Some(expiry));
    assert_eq!(record.expires_at(), Some(expiry));
    let device = DeviceRecord::new(APP.parse().unwrap(), "d1".parse().unwrap());
    let auth = Authenticator::new(policy()).with_clock(test_clock);

    NOW.store(expiry.as_secs() - 1, Ordering::SeqCst);
    let principal = auth
        .authenticate(record.key(), Some(&record), &new.secret, &device)
        .unwrap();
    assert_eq!(principal.key(), record.key());
    assert!(!record.is_expired_at(test_clock()));

    NOW.store(expiry.as_secs(), Ordering::SeqCst);
    assert!(record.is_expired_at(test_clock()));
    let refused = auth.authenticate(record.key(), Some(&record), &new.secret, &device);
    assert_eq!(refused, Err(AuthError::Expired { key: *record.key() }));
    let e = refused.unwrap_err();
    assert_eq!(e.public_message(), "bad credentials");
    assert_eq!(
        e.to_string(),
        format!("access key `{}` has expired", record.key())
    );
    assert!(!e.is_server_fault());
    // A wrong secret is still a wrong secret: the expiry tells nothing to
    // whoever lacks the secret.
    let other = AccessKey::generate(
        &mut ChaCha20Rng::seed_from_u64(2),
        APP.parse().unwrap(),
        Scope::Unrestricted,
        &policy(),
    )
    .unwrap();
    assert!(matches!(
        auth.authenticate(record.key(), Some(&record), &other.secret, &device),
        Err(AuthError::WrongSecret { .. })
    ));
    // Without an expiry, the clock does not matter.
    NOW.store(END_OF_9999, Ordering::SeqCst);
    assert!(
        auth.authenticate(new.record.key(), Some(&new.record), &new.secret, &device)
            .is_ok()
    );
}

#[test]
fn reauthorize_refuses_an_expired_key_at_the_time_given() {
    let new = AccessKey::generate(
        &mut ChaCha20Rng::seed_from_u64(3),
        APP.parse().unwrap(),
        Scope::Unrestricted,
        &policy(),
    )
    .unwrap();
    let expiry = t("2027-03-01T12:00:00Z");
    let record = new.record.with_expiry(Some(expiry));
    let device = DeviceRecord::new(APP.parse().unwrap(), "d1".parse().unwrap());
    let before = UnixTime::from_secs(expiry.as_secs() - 1).unwrap();
    assert!(Principal::reauthorize(&record, &device, before).is_ok());
    assert_eq!(
        Principal::reauthorize(&record, &device, expiry),
        Err(AuthError::Expired { key: *record.key() })
    );
    // Inactive comes first: the cause an operator set by hand.
    let inactive = record.clone().with_status(KeyStatus::Inactive);
    assert!(matches!(
        Principal::reauthorize(&inactive, &device, expiry),
        Err(AuthError::InactiveKey { .. })
    ));
    // The expiry removed: valid again.
    let renewed = record.with_expiry(None);
    assert!(
        Principal::reauthorize(&renewed, &device, UnixTime::from_secs(END_OF_9999).unwrap())
            .is_ok()
    );
}

#[test]
fn expires_at_is_read_and_written_in_rfc_3339_utc() {
    let new = AccessKey::generate(
        &mut ChaCha20Rng::seed_from_u64(4),
        APP.parse().unwrap(),
        Scope::Unrestricted,
        &policy(),
    )
    .unwrap();
    // None: no field, as records written before it existed.
    let json = serde_json::to_value(&new.record).unwrap();
    assert!(json.get("expiresAt").is_none(), "{json}");
    let record = new.record.with_expiry(Some(t("2027-03-01T12:00:00.250Z")));
    let mut json = serde_json::to_value(&record).unwrap();
    assert_eq!(json["expiresAt"], "2027-03-01T12:00:00Z");
    assert_eq!(
        serde_json::from_value::<AccessKey>(json.clone()).unwrap(),
        record
    );
    // null: never.
    json["expiresAt"] = serde_json::Value::Null;
    assert_eq!(
        serde_json::from_value::<AccessKey>(json.clone())
            .unwrap()
            .expires_at(),
        None
    );
    // Anything else is refused, saying what was expected.
    for (bad, says) in [
        (serde_json::json!("2027-03-01 12:00:00"), "not RFC 3339 UTC"),
        (serde_json::json!("2027-03-01T12:00:00+02:00"), "not in UTC"),
        (serde_json::json!(1803902400), "an RFC 3339 UTC time"),
    ] {
        json["expiresAt"] = bad.clone();
        let e = serde_json::from_value::<AccessKey>(json.clone())
            .unwrap_err()
            .to_string();
        assert!(e.contains(says), "{bad}: {e}");
    }
}

#[test]
fn errors_escape_what_they_quote() {
    let e = "2027-03-01T12:00:00\u{202e}Z"
        .parse::<UnixTime>()
        .unwrap_err();
    assert!(matches!(e, TimeError::Malformed { .. }));
    assert!(!e.to_string().contains('\u{202e}'), "{e}");
    let long = "9".repeat(10_000);
    assert!(long.parse::<UnixTime>().unwrap_err().to_string().len() < 400);
}

proptest! {
    /// Every second of the era prints as canonical text that parses back to it.
    #[test]
    fn every_second_round_trips(secs in 0..=END_OF_9999) {
        let time = UnixTime::from_secs(secs).unwrap();
        let text = time.to_string();
        prop_assert_eq!(text.len(), 20);
        prop_assert_eq!(text.parse::<UnixTime>(), Ok(time));
    }

    /// Fractions are dropped and `+00:00` is `Z`.
    #[test]
    fn fractions_and_the_utc_offset_read_as_the_second(
        secs in 0..=END_OF_9999,
        fraction in "[0-9]{1,9}",
    ) {
        let time = UnixTime::from_secs(secs).unwrap();
        let text = time.to_string();
        let base = &text[..19];
        prop_assert_eq!(format!("{base}.{fraction}Z").parse::<UnixTime>(), Ok(time));
        prop_assert_eq!(format!("{base}+00:00").parse::<UnixTime>(), Ok(time));
        prop_assert_eq!(format!("{base}.{fraction}+00:00").parse::<UnixTime>(), Ok(time));
    }

    /// Consecutive seconds print as increasing text (the calendar has no gap
    /// or repeat), and a day is 86 400 of them.
    #[test]
    fn the_calendar_is_continuous(secs in 0..END_OF_9999 - 86_400) {
        let a = UnixTime::from_secs(secs).unwrap();
        let b = a.plus_secs(1).unwrap();
        prop_assert!(a.to_string() < b.to_string());
        let next_day = a.plus_secs(86_400).unwrap().to_string();
        prop_assert_eq!(&next_day[11..], &a.to_string()[11..]);
        prop_assert_ne!(&next_day[..10], &a.to_string()[..10]);
    }

    /// Any text: an answer, never a panic.
    #[test]
    fn any_text_is_answered(text in "\\PC{0,40}") {
        let _ = text.parse::<UnixTime>();
    }
}
