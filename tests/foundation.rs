//! Keys, secrets and records through the public API.

use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use structure_access::{
    AccessKey, Cost, DeviceId, HashPolicy, KeyError, KeyId, KeyStatus, RecordError, Restriction,
    Scope, Secret, SecretError, VerifierError,
};

/// The application of every key and device here.
const APP: &str = "app1";

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn cheap_policy() -> HashPolicy {
    HashPolicy::default()
        .with_params(Cost::new(64, 1, 1))
        .unwrap()
}

fn is_base62(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[test]
fn generated_key_has_the_documented_format() {
    for seed in 0..64 {
        let key = KeyId::generate(&mut rng(seed));
        let text = key.as_str();
        assert_eq!(text.len(), 26);
        let random = text.strip_prefix("stk_").unwrap();
        assert!(is_base62(random), "{text}");
        assert_eq!(text.parse::<KeyId>().unwrap(), key);
        assert!(key.is_generated());
    }
}

#[test]
fn generated_secret_has_the_documented_format() {
    for seed in 0..64 {
        let secret = Secret::generate(&mut rng(seed));
        let text = secret.expose_secret();
        assert_eq!(text.len(), 53);
        assert!(is_base62(text.strip_prefix("sts_").unwrap()));
        assert_eq!(text.parse::<Secret>().unwrap(), secret);
    }
}

#[test]
fn checksum_is_crc32_of_the_preceding_text() {
    // Computed independently: zlib.crc32(b"sts_" + b"A" * 43) == 0xa2d9d6e8,
    // which is "2ytyDA" in six base62 digits (0-9A-Za-z).
    let text = "sts_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA2ytyDA";
    assert!(text.parse::<Secret>().is_ok());
    let text = "sts_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg053igU";
    assert!(text.parse::<Secret>().is_ok());
    let wrong = "sts_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA2ytyDB";
    assert_eq!(wrong.parse::<Secret>().unwrap_err(), SecretError::Checksum);
}

#[test]
fn seeded_generation_is_reproducible() {
    let a = AccessKey::generate(
        &mut rng(7),
        APP.parse().unwrap(),
        Scope::Unrestricted,
        &cheap_policy(),
    )
    .unwrap();
    let b = AccessKey::generate(
        &mut rng(7),
        APP.parse().unwrap(),
        Scope::Unrestricted,
        &cheap_policy(),
    )
    .unwrap();
    assert_eq!(a.record, b.record);
    assert_eq!(a.secret, b.secret);
    let c = AccessKey::generate(
        &mut rng(8),
        APP.parse().unwrap(),
        Scope::Unrestricted,
        &cheap_policy(),
    )
    .unwrap();
    assert_ne!(a.record.key(), c.record.key());
    assert_ne!(a.secret, c.secret);
}

#[test]
fn generated_verifier_verifies_only_its_secret() {
    // The default: the fast scheme for a generated secret.
    let new = AccessKey::generate(
        &mut rng(1),
        APP.parse().unwrap(),
        Scope::Unrestricted,
        &cheap_policy(),
    )
    .unwrap();
    assert!(
        new.record
            .verifier()
            .as_str()
            .starts_with("$hmac-sha256$v=1$")
    );
    let other = Secret::generate(&mut rng(2));
    // And Argon2id when the policy asks for it.
    let argon2 = cheap_policy().argon2id_for_generated(true);
    let slow = AccessKey::generate(
        &mut rng(1),
        APP.parse().unwrap(),
        Scope::Unrestricted,
        &argon2,
    )
    .unwrap();
    assert!(
        slow.record
            .verifier()
            .as_str()
            .starts_with("$argon2id$v=19$m=64,t=1,p=1$")
    );
    for (new, policy) in [(&new, &cheap_policy()), (&slow, &argon2)] {
        assert_eq!(new.record.verifier().verify(&new.secret, policy), Ok(()));
        assert_eq!(
            new.record.verifier().verify(&other, policy),
            Err(VerifierError::Mismatch)
        );
    }
}

#[test]
fn key_parsing_errors_say_what_was_expected() {
    assert_eq!("".parse::<KeyId>().unwrap_err(), KeyError::Empty);
    let err = "stk_short".parse::<KeyId>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "malformed generated access key `stk_short`, expected `stk_` followed by 22 base62 characters"
    );
    let err = "abc def".parse::<KeyId>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "unexpected character ` ` at byte 3 of access key `abc def`, expected one of `0-9 A-Z a-z _ -`"
    );
    let long = "a".repeat(65);
    assert!(matches!(
        long.parse::<KeyId>().unwrap_err(),
        KeyError::TooLong { len: 65, max: 64 }
    ));
    // A secret pasted where the key belongs is refused, and not repeated.
    let secret = "sts_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA2ytyDA";
    let err = secret.parse::<KeyId>().unwrap_err();
    assert_eq!(err, KeyError::LooksLikeSecret);
    assert!(!err.to_string().contains("AAAA"));
    // Imported keys: the platform's UUIDs.
    let uuid: KeyId = "6a1f8a3e-3b0c-4d7e-9f51-2c1b6f3e9a10".parse().unwrap();
    assert!(!uuid.is_generated());
}

#[test]
fn secret_parsing_errors_never_show_the_secret() {
    let err = "sts_nope".parse::<Secret>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "malformed access secret of 8 bytes, expected `sts_` followed by 49 base62 characters"
    );
    assert_eq!(
        Secret::imported("short").unwrap_err(),
        SecretError::ImportedLength { len: 5 }
    );
    assert_eq!(
        Secret::imported("0123456789abcdef 0123").unwrap_err(),
        SecretError::ImportedCharacter { offset: 16 }
    );
}

#[test]
fn imported_secrets_are_explicit() {
    let legacy = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    // Not the generated format: the strict parser refuses it...
    assert!(legacy.parse::<Secret>().is_err());
    // ...the explicit constructor accepts it.
    let secret = Secret::imported(legacy).unwrap();
    assert_eq!(secret.expose_secret(), legacy);
    assert!(!secret.is_generated());
    assert_eq!(Secret::parse_any(legacy).unwrap(), secret);
    assert_eq!(format!("{secret:?}"), "Secret(\"…\")");
}

#[test]
fn an_imported_secret_cannot_pass_for_a_generated_one() {
    // A human-chosen secret with the generated prefix would be taken for a
    // generated one by its shape, and get the fast verifier: refused.
    let generated = "sts_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA2ytyDA";
    for text in ["sts_password1234", generated] {
        let err = Secret::imported(text).unwrap_err();
        assert_eq!(err, SecretError::ImportedWithGeneratedPrefix);
        assert!(!err.to_string().contains(&text[4..]), "{err}");
    }
    assert_eq!(
        Secret::imported("sts_password1234")
            .unwrap_err()
            .to_string(),
        "imported access secret starts with `sts_`, the prefix of generated secrets, expected a generated secret (parsed with its checksum) or an imported one without that prefix"
    );
    // A generated secret goes through its own parser, and is generated.
    assert!(generated.parse::<Secret>().unwrap().is_generated());
    assert!(Secret::parse_any(generated).unwrap().is_generated());
    assert!(Secret::parse_any("sts_password1234").is_err());
    // Other text is imported, even with the prefix elsewhere.
    assert!(
        !Secret::imported("my-sts_password1234")
            .unwrap()
            .is_generated()
    );
}

#[test]
fn record_json_round_trips_with_the_documented_shape() {
    let restriction: Restriction = "abc123".parse().unwrap();
    let new = AccessKey::generate(
        &mut rng(3),
        APP.parse().unwrap(),
        restriction.into(),
        &cheap_policy(),
    )
    .unwrap();
    let record = new
        .record
        .with_description("gateway \"north\"")
        .unwrap()
        .with_status(KeyStatus::Inactive);
    let json = serde_json::to_value(&record).unwrap();
    assert_eq!(json["key"], record.key().as_str());
    assert_eq!(json["application"], APP);
    assert_eq!(json["verifier"], record.verifier().as_str());
    assert_eq!(json["restriction"], "abc123");
    assert_eq!(json["status"], "inactive");
    assert_eq!(json["description"], "gateway \"north\"");
    assert_eq!(json.as_object().unwrap().len(), 6);
    let back: AccessKey = serde_json::from_value(json).unwrap();
    assert_eq!(back, record);

    let unrestricted = AccessKey::generate(
        &mut rng(4),
        APP.parse().unwrap(),
        Scope::Unrestricted,
        &cheap_policy(),
    )
    .unwrap();
    let json = serde_json::to_string(&unrestricted.record).unwrap();
    assert!(json.contains("\"restriction\":null"), "{json}");
    assert!(!json.contains("description"), "{json}");
    let back: AccessKey = serde_json::from_str(&json).unwrap();
    assert_eq!(back, unrestricted.record);
}

#[test]
fn record_json_refuses_what_could_widen_a_key() {
    let new = AccessKey::generate(
        &mut rng(5),
        APP.parse().unwrap(),
        Scope::Unrestricted,
        &cheap_policy(),
    )
    .unwrap();
    let mut json = serde_json::to_value(&new.record).unwrap();
    // A missing restriction must not read as "unrestricted".
    json.as_object_mut().unwrap().remove("restriction");
    let err = serde_json::from_value::<AccessKey>(json.clone()).unwrap_err();
    assert!(
        err.to_string().contains("missing field `restriction`"),
        "{err}"
    );
    // Nor may a misspelt one.
    json["restricton"] = "abc".into();
    json["restriction"] = serde_json::Value::Null;
    let err = serde_json::from_value::<AccessKey>(json).unwrap_err();
    assert!(
        err.to_string().contains("unknown field `restricton`"),
        "{err}"
    );
}

#[test]
fn record_json_checks_every_field() {
    let new = AccessKey::generate(
        &mut rng(6),
        APP.parse().unwrap(),
        Scope::Unrestricted,
        &cheap_policy(),
    )
    .unwrap();
    let good = serde_json::to_value(&new.record).unwrap();
    for (field, value, message) in [
        ("key", "stk_x", "malformed generated access key"),
        ("verifier", "$argon2id$v=19$m=64", "malformed verifier"),
        (
            "status",
            "paused",
            "unknown access key status `paused`, expected `active` or `inactive`",
        ),
    ] {
        let mut json = good.clone();
        json[field] = value.into();
        let err = serde_json::from_value::<AccessKey>(json).unwrap_err();
        assert!(err.to_string().contains(message), "{field}: {err}");
    }
    let mut json = good.clone();
    json["description"] = "x".repeat(32768).into();
    let err = serde_json::from_value::<AccessKey>(json).unwrap_err();
    assert!(err.to_string().contains("32768 characters"), "{err}");
    assert!(matches!(
        new.record.clone().with_description(&"é".repeat(32768)),
        Err(RecordError::DescriptionTooLong { chars: 32768 })
    ));
    assert!(new.record.with_description(&"é".repeat(32767)).is_ok());
}

#[test]
fn device_ids_follow_their_alphabet() {
    let id: DeviceId = "gw-01.site:a_b".parse().unwrap();
    assert_eq!(id.to_string(), "gw-01.site:a_b");
    assert!("".parse::<DeviceId>().is_err());
    assert!("a".repeat(129).parse::<DeviceId>().is_err());
    assert!("a".repeat(128).parse::<DeviceId>().is_ok());
    assert!(
        !"sts_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA2ytyDA"
            .parse::<DeviceId>()
            .unwrap_err()
            .to_string()
            .contains("AAAA")
    );
    let err = "dév".parse::<DeviceId>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "unexpected character `é` at byte 1 of device ID `dév`, expected one of `0-9 A-Z a-z _ . : -`"
    );
}

#[test]
fn errors_escape_the_input_they_quote() {
    // CR, LF, U+2028 and bidirectional controls would split or rewrite a log line.
    let hostile = "gw\r\nINFO forged\u{2028}\u{202e}x";
    let err = hostile.parse::<DeviceId>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "unexpected character `\\r` at byte 2 of device ID `gw\\r\\nINFO forged\\u{2028}\\u{202e}x`, \
         expected one of `0-9 A-Z a-z _ . : -`"
    );
    let err = "ab\u{200b}c".parse::<KeyId>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "unexpected character `\\u{200b}` at byte 2 of access key `ab\\u{200b}c`, expected one of `0-9 A-Z a-z _ -`"
    );
    let err = "stk_\u{2029}\n".parse::<KeyId>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "malformed generated access key `stk_\\u{2029}\\n`, expected `stk_` followed by 22 base62 characters"
    );
    let err = "$argon2\u{85}\u{feff}$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
        .parse::<structure_access::Verifier>()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported verifier algorithm `argon2\\u{85}\\u{feff}`, expected `hmac-sha256` or `argon2id`"
    );
    // Through the authenticator too, whose messages reach servers' logs.
    let auth = structure_access::Authenticator::new(cheap_policy());
    let secret = Secret::generate(&mut rng(1));
    let err = auth
        .authenticate(
            &"stk_4DmVJcy3ZpW0gNqk8TbX2a".parse().unwrap(),
            None,
            &secret,
            &NamedDevice(hostile),
        )
        .unwrap_err();
    let chain = error_chain(&err);
    assert!(
        chain.contains("gw\\r\\nINFO forged\\u{2028}\\u{202e}x"),
        "{chain}"
    );
}

#[test]
fn text_types_convert_with_try_from_and_parse_with_from_str() {
    use std::collections::HashSet;
    use structure_access::{Variant, Verifier};

    let key = "stk_4DmVJcy3ZpW0gNqk8TbX2a";
    assert_eq!(KeyId::try_from(key), key.parse());
    assert_eq!(KeyId::try_from(key.to_owned()), key.parse());
    assert_eq!(KeyId::try_from("a b"), "a b".parse::<KeyId>());
    assert!(KeyId::try_from("a b".to_owned()).is_err());
    assert_eq!(DeviceId::try_from("dev-1"), "dev-1".parse());
    assert_eq!(DeviceId::try_from("dev-1".to_owned()), "dev-1".parse());
    assert!(DeviceId::try_from("a b").is_err());

    let secret = Secret::generate(&mut rng(5));
    let text = secret.expose_secret().to_owned();
    assert_eq!(Secret::try_from(text.as_str()).unwrap(), secret);
    assert_eq!(Secret::try_from(text.clone()).unwrap(), secret);
    // Like `FromStr`: only the generated shape.
    assert_eq!(
        Secret::try_from("9f86d081884c7d659a2feaa0c55ad015".to_owned()),
        Err(SecretError::Malformed { len: 32 })
    );

    let verifier = Verifier::create(&secret, &cheap_policy(), &mut rng(6)).unwrap();
    let phc = verifier.as_str().to_owned();
    assert_eq!(Verifier::try_from(phc.as_str()).unwrap(), verifier);
    assert_eq!(Verifier::try_from(phc.clone()).unwrap(), verifier);
    assert!(Verifier::try_from("$argon2id$").is_err());
    // Hash agrees with `==`.
    let set: HashSet<Verifier> = [verifier.clone(), phc.parse().unwrap()].into();
    assert_eq!(set.len(), 1);

    for variant in [Variant::Argon2id, Variant::Argon2i, Variant::Argon2d] {
        assert_eq!(variant.as_str().parse::<Variant>(), Ok(variant));
        assert_eq!(variant.to_string().parse::<Variant>(), Ok(variant));
    }
    assert_eq!(
        "Argon2id\n".parse::<Variant>().unwrap_err().to_string(),
        "unsupported verifier algorithm `Argon2id\\n`, expected `hmac-sha256` or `argon2id`"
    );

    for status in [KeyStatus::Active, KeyStatus::Inactive] {
        assert_eq!(status.to_string().parse::<KeyStatus>(), Ok(status));
        assert_eq!(status.as_str().parse::<KeyStatus>(), Ok(status));
    }
    assert!(KeyStatus::Active.is_active());
    assert!(!KeyStatus::Inactive.is_active());
    let err = "expired\u{2028}".parse::<KeyStatus>().unwrap_err();
    assert_eq!(err.found(), "expired\u{2028}");
    assert_eq!(
        err.to_string(),
        "unknown access key status `expired\\u{2028}`, expected `active` or `inactive`"
    );
}

#[test]
fn secrets_convert_from_an_owned_string() {
    // The size the documentation gives for what a move copies.
    assert_eq!(std::mem::size_of::<Secret>(), 129);
    // The string is consumed (and wiped inside); what the caller keeps is the
    // `Secret`, zeroized on drop.
    let secret = Secret::generate(&mut rng(9));
    let owned = String::from(secret.expose_secret());
    let parsed: Secret = owned.try_into().unwrap();
    assert_eq!(parsed, secret);
}

/// A device known only by an ID, which need not be valid.
struct NamedDevice(&'static str);

impl structure_access::Device for NamedDevice {
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

/// An error and its causes, as a chain-printing logger shows them.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    assert!(
        !text
            .chars()
            .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}'),
        "{text:?}"
    );
    text
}

proptest! {
    /// Any one-character change to a generated secret is rejected by parsing.
    #[test]
    fn one_character_change_is_rejected(seed in any::<u64>(), pos in 0usize..53, c in any::<char>()) {
        let secret = Secret::generate(&mut rng(seed));
        let mut chars: Vec<char> = secret.expose_secret().chars().collect();
        prop_assume!(chars[pos] != c);
        chars[pos] = c;
        let changed: String = chars.into_iter().collect();
        prop_assert!(changed.parse::<Secret>().is_err());
    }

    /// Debug of a secret, a new key and every parse error never shows the secret.
    #[test]
    fn debug_never_shows_the_secret(seed in any::<u64>(), cut in 9usize..53) {
        let new = AccessKey::generate(&mut rng(seed), APP.parse().unwrap(), Scope::Unrestricted, &cheap_policy()).unwrap();
        let text = new.secret.expose_secret().to_owned();
        let random = &text[4..47];
        for shown in [format!("{:?}", new.secret), format!("{new:?}"), format!("{:?}", new.record)] {
            prop_assert!(!shown.contains(random), "{}", shown);
            prop_assert!(!shown.contains(&text[4..20]), "{}", shown);
        }
        // Errors about a damaged or truncated secret do not quote it.
        let truncated = &text[..cut];
        let mut corrupted = text.clone().into_bytes();
        corrupted[cut] = if corrupted[cut] == b'a' { b'b' } else { b'a' };
        let corrupted = String::from_utf8(corrupted).unwrap();
        let errors = [
            truncated.parse::<Secret>().unwrap_err(),
            corrupted.parse::<Secret>().unwrap_err(),
            Secret::imported(&format!("{text} ")).unwrap_err(),
            Secret::imported(&text[..cut.min(15)]).unwrap_err(),
        ];
        for err in errors {
            for shown in [format!("{err:?}"), err.to_string()] {
                prop_assert!(!shown.contains(&truncated[4..]), "{}", shown);
                prop_assert!(!shown.contains(&text[4..9]), "{}", shown);
            }
        }
    }

    /// Parsing arbitrary text never panics, and what parses prints back the same.
    #[test]
    fn parsing_arbitrary_text_is_total(text in ".{0,80}") {
        if let Ok(key) = text.parse::<KeyId>() {
            prop_assert_eq!(key.as_str(), text.as_str());
        }
        if let Ok(secret) = text.parse::<Secret>() {
            prop_assert_eq!(secret.expose_secret(), text.as_str());
        }
        if let Ok(secret) = Secret::parse_any(&text) {
            prop_assert_eq!(secret.expose_secret(), text.as_str());
        }
        if let Ok(id) = text.parse::<DeviceId>() {
            prop_assert_eq!(id.as_str(), text.as_str());
        }
        // Errors are one line, whatever they quote.
        let messages = [
            text.parse::<KeyId>().err().map(|e| e.to_string()),
            text.parse::<DeviceId>().err().map(|e| e.to_string()),
            text.parse::<structure_access::Verifier>().err().map(|e| e.to_string()),
        ];
        for message in messages.into_iter().flatten() {
            prop_assert!(
                !message.chars().any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}'),
                "{:?}", message
            );
        }
    }
}
