//! Applications (tenants): nothing a key grants crosses into another application.

use std::collections::HashMap;

use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use structure_access::mqtt::{Decision, TopicRules};
use structure_access::{
    AccessKey, ApplicationId, ApplicationIdError, AuthError, Authenticator, Cost, DeviceRecord,
    HashPolicy, KeyStatus, MAX_DEVICE_TAGS, Principal, Restriction, Scope, Secret,
};

const A: &str = "64b1f0c2a7e3d95b8c4f2a10";
const B: &str = "64b1f0c2a7e3d95b8c4f2a11";

fn app(text: &str) -> ApplicationId {
    text.parse().unwrap()
}

fn cheap_policy() -> HashPolicy {
    HashPolicy::default()
        .with_params(Cost::new(64, 1, 1))
        .unwrap()
}

fn key(application: &str, scope: Scope, seed: u64) -> (AccessKey, Secret) {
    let new = AccessKey::generate(
        &mut ChaCha20Rng::seed_from_u64(seed),
        app(application),
        scope,
        &cheap_policy(),
    )
    .unwrap();
    (new.record, new.secret)
}

fn device(application: &str, id: &str, tags: &[(&str, &str)]) -> DeviceRecord {
    tags.iter().fold(
        DeviceRecord::new(app(application), id.parse().unwrap()),
        |d, (k, v)| d.with_tag(k, v),
    )
}

fn restricted(text: &str) -> Scope {
    text.parse::<Restriction>().unwrap().into()
}

#[test]
fn application_ids_parse_like_the_platform_and_refuse_the_rest() {
    assert_eq!(app(A).as_str(), A);
    assert_eq!(app("my_app-2").to_string(), "my_app-2");
    assert_eq!(app(&"a".repeat(64)).as_str().len(), 64);
    assert_eq!("".parse::<ApplicationId>(), Err(ApplicationIdError::Empty));
    assert_eq!(
        "a".repeat(65).parse::<ApplicationId>(),
        Err(ApplicationIdError::TooLong { len: 65 })
    );
    let err = "app\u{2028}x".parse::<ApplicationId>().unwrap_err();
    assert!(matches!(
        err,
        ApplicationIdError::InvalidCharacter {
            found: '\u{2028}',
            offset: 3
        }
    ));
    let err = "app\nx".parse::<ApplicationId>().unwrap_err().to_string();
    assert!(!err.contains('\n'), "{err}");
    assert!(err.contains("`\\n`"), "{err}");
    let secret = "sts_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA2ytyDA";
    let err = secret.parse::<ApplicationId>().unwrap_err();
    assert_eq!(err, ApplicationIdError::LooksLikeSecret);
    assert!(!err.to_string().contains(secret));
}

#[test]
fn authentication_refuses_a_device_of_another_application() {
    let auth = Authenticator::new(cheap_policy());
    for (name, scope) in [
        ("unrestricted", Scope::Unrestricted),
        ("restricted by id", restricted("d1")),
        ("restricted by tag", restricted("site=north")),
    ] {
        let (record, secret) = key(A, scope, 1);
        let own = device(A, "d1", &[("site", "north")]);
        let foreign = device(B, "d1", &[("site", "north")]);
        assert!(
            auth.authenticate(record.key(), Some(&record), &secret, &own)
                .is_ok(),
            "{name}"
        );
        let err = auth
            .authenticate(record.key(), Some(&record), &secret, &foreign)
            .unwrap_err();
        assert_eq!(
            err,
            AuthError::WrongApplication { key: *record.key() },
            "{name}"
        );
        assert_eq!(err.public_message(), "bad credentials");
        assert!(!err.is_server_fault());
        // Without the secret, the caller does not learn the application differs.
        let wrong = Secret::generate(&mut ChaCha20Rng::seed_from_u64(99));
        assert_eq!(
            auth.authenticate(record.key(), Some(&record), &wrong, &foreign),
            Err(AuthError::WrongSecret { key: *record.key() }),
            "{name}"
        );
        // An inactive key says inactive before anything about the device.
        let inactive = record.clone().with_status(KeyStatus::Inactive);
        assert_eq!(
            auth.authenticate(inactive.key(), Some(&inactive), &secret, &foreign),
            Err(AuthError::InactiveKey { key: *record.key() }),
            "{name}"
        );
    }
}

#[test]
fn can_see_is_false_across_applications() {
    let auth = Authenticator::new(cheap_policy());
    for scope in [
        Scope::Unrestricted,
        restricted("d2, site=north, =blue, color="),
    ] {
        let (record, secret) = key(A, scope, 2);
        let me = device(A, "d1", &[("site", "north")]);
        let principal = auth
            .authenticate(record.key(), Some(&record), &secret, &me)
            .unwrap();
        assert_eq!(principal.application(), &app(A));
        let twin_in_b = device(B, "d2", &[("site", "north"), ("color", "blue")]);
        let same_in_a = device(A, "d2", &[("site", "north"), ("color", "blue")]);
        assert!(principal.can_see(&same_in_a));
        assert!(record.can_see(&same_in_a));
        assert!(!principal.can_see(&twin_in_b));
        assert!(!record.can_see(&twin_in_b));
        // Not even the principal's own ID, in another application.
        assert!(!principal.can_see(&device(B, "d1", &[])));
    }
}

/// A broker's directory over devices of both applications.
fn directory() -> HashMap<&'static str, DeviceRecord> {
    [
        ("a1", device(A, "a1", &[("site", "north")])),
        ("a2", device(A, "a2", &[("site", "south")])),
        ("b1", device(B, "b1", &[("site", "north")])),
        ("b2", device(B, "b2", &[])),
    ]
    .into_iter()
    .collect()
}

fn principal(scope: Scope) -> Principal {
    let (record, secret) = key(A, scope, 3);
    Authenticator::new(cheap_policy())
        .authenticate(
            record.key(),
            Some(&record),
            &secret,
            &device(A, "a1", &[("site", "north")]),
        )
        .unwrap()
}

#[test]
fn mqtt_denies_device_topics_of_another_application() {
    let devices = directory();
    let directory = |id: &str| devices.get(id);
    let rules = TopicRules::default();
    for scope in [Scope::Unrestricted, restricted("b1, b2, a2, site=north")] {
        let p = principal(scope);
        for id in ["b1", "b2"] {
            let state = format!("structure/{id}/state");
            let command = format!("structure/{id}/command");
            assert_eq!(
                p.may_publish(&rules, &state, &directory),
                Ok(Decision::Deny),
                "{state}"
            );
            for topic in [&state, &command] {
                assert_eq!(
                    p.may_subscribe(&rules, topic, &directory),
                    Ok(Decision::Deny),
                    "{topic}"
                );
                assert_eq!(
                    p.may_receive(&rules, topic, &directory),
                    Ok(false),
                    "{topic}"
                );
            }
        }
        // Its own application still works.
        assert_eq!(
            p.may_publish(&rules, "structure/a2/state", &directory),
            Ok(Decision::Allow)
        );
        assert_eq!(
            p.may_receive(&rules, "structure/a2/state", &directory),
            Ok(true)
        );
        assert_eq!(
            p.may_publish(&rules, "structure/a1/state", &directory),
            Ok(Decision::Allow)
        );
        // A device the directory does not know belongs to no known application.
        assert_eq!(
            p.may_receive(&rules, "structure/zz/state", &directory),
            Ok(false)
        );
        // Wildcards over device topics are filtered, even for an unrestricted key.
        for filter in ["structure/+/state", "structure/#", "structure/+/+"] {
            assert_eq!(
                p.may_subscribe(&rules, filter, &directory),
                Ok(Decision::Filter),
                "{filter}"
            );
        }
    }
}

#[test]
fn a_declared_single_application_keeps_unrestricted_wildcards_free() {
    let devices = directory();
    let directory = |id: &str| devices.get(id);
    let rules = TopicRules::default().with_single_application(app(A));
    let unrestricted = principal(Scope::Unrestricted);
    assert_eq!(
        unrestricted.may_subscribe(&rules, "structure/+/state", &directory),
        Ok(Decision::Allow)
    );
    // Every device topic is the application's: not even the directory is asked.
    let nobody = |_: &str| -> Option<&DeviceRecord> { None };
    assert_eq!(
        unrestricted.may_receive(&rules, "structure/zz/state", &nobody),
        Ok(true)
    );
    // A restricted key is still filtered, and tags still count.
    let restricted = principal(restricted("site=north"));
    assert_eq!(
        restricted.may_subscribe(&rules, "structure/+/state", &directory),
        Ok(Decision::Filter)
    );
    assert_eq!(
        restricted.may_receive(&rules, "structure/a2/state", &directory),
        Ok(false)
    );
    // A device the directory places in another application is not seen through
    // its tags, even under the declaration.
    assert_eq!(
        restricted.may_receive(&rules, "structure/b1/state", &directory),
        Ok(false)
    );
    // A principal of another application sees no device topic but its own.
    let rules_b = TopicRules::default().with_single_application(app(B));
    assert_eq!(
        unrestricted.may_subscribe(&rules_b, "structure/+/state", &directory),
        Ok(Decision::Filter)
    );
    assert_eq!(
        unrestricted.may_receive(&rules_b, "structure/b1/state", &directory),
        Ok(false)
    );
    assert_eq!(
        unrestricted.may_receive(&rules_b, "structure/a1/state", &directory),
        Ok(true)
    );
}

#[test]
fn record_json_without_application_is_refused() {
    let (record, _) = key(A, Scope::Unrestricted, 4);
    let mut json = serde_json::to_value(&record).unwrap();
    assert_eq!(json["application"], A);
    json.as_object_mut().unwrap().remove("application");
    let err = serde_json::from_value::<AccessKey>(json.clone()).unwrap_err();
    assert!(
        err.to_string().contains("missing field `application`"),
        "{err}"
    );
    json["application"] = "not valid!".into();
    let err = serde_json::from_value::<AccessKey>(json).unwrap_err();
    assert!(err.to_string().contains("application ID"), "{err}");
}

#[test]
fn device_record_json_has_the_platform_shape_and_bounds() {
    let d = device(A, "d1", &[("site", "north"), ("site", "n2")]);
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"id": "d1", "application": A,
            "tags": [{"key": "site", "value": "north"}, {"key": "site", "value": "n2"}]})
    );
    assert_eq!(serde_json::from_value::<DeviceRecord>(json).unwrap(), d);
    let bare: DeviceRecord =
        serde_json::from_str(&format!(r#"{{"id": "d1", "application": "{A}"}}"#)).unwrap();
    assert_eq!(bare, device(A, "d1", &[]));
    let err = serde_json::from_str::<DeviceRecord>(r#"{"id": "d1", "tags": []}"#).unwrap_err();
    assert!(
        err.to_string().contains("missing field `application`"),
        "{err}"
    );
    let err = serde_json::from_str::<DeviceRecord>(&format!(
        r#"{{"id": "d1", "application": "{A}", "tag": []}}"#
    ))
    .unwrap_err();
    assert!(err.to_string().contains("unknown field `tag`"), "{err}");
    let tags = |n: usize| {
        (0..n)
            .map(|i| format!(r#"{{"key": "k{i}", "value": "v"}}"#))
            .collect::<Vec<_>>()
            .join(",")
    };
    let at_limit = format!(
        r#"{{"id": "d1", "application": "{A}", "tags": [{}]}}"#,
        tags(MAX_DEVICE_TAGS)
    );
    assert!(serde_json::from_str::<DeviceRecord>(&at_limit).is_ok());
    let over = format!(
        r#"{{"id": "d1", "application": "{A}", "tags": [{}]}}"#,
        tags(MAX_DEVICE_TAGS + 1)
    );
    let err = serde_json::from_str::<DeviceRecord>(&over).unwrap_err();
    assert!(err.to_string().contains("at most 100"), "{err}");
}

#[test]
fn reauthorize_checks_the_current_record_without_the_secret() {
    let (record, secret) = key(A, restricted("site=north"), 5);
    let me = device(A, "d1", &[("site", "north")]);
    let at_connect = Authenticator::new(cheap_policy())
        .authenticate(record.key(), Some(&record), &secret, &me)
        .unwrap();
    assert_eq!(
        Principal::reauthorize(&record, &me, structure_access::UnixTime::now()),
        Ok(at_connect)
    );
    let key = *record.key();
    let inactive = record.clone().with_status(KeyStatus::Inactive);
    assert_eq!(
        Principal::reauthorize(&inactive, &me, structure_access::UnixTime::now()),
        Err(AuthError::InactiveKey { key })
    );
    let moved = device(A, "d1", &[("site", "south")]);
    assert_eq!(
        Principal::reauthorize(&record, &moved, structure_access::UnixTime::now()),
        Err(AuthError::OutOfScope { key })
    );
    let foreign = device(B, "d1", &[("site", "north")]);
    assert_eq!(
        Principal::reauthorize(&record, &foreign, structure_access::UnixTime::now()),
        Err(AuthError::WrongApplication { key })
    );
    // The principal takes the record's current additional topics.
    let widened = record.with_additional_topics(structure_access::AdditionalTopics::All);
    let p = Principal::reauthorize(&widened, &me, structure_access::UnixTime::now()).unwrap();
    assert_eq!(
        p.additional_topics(),
        &structure_access::AdditionalTopics::All
    );
}

fn arb_device() -> impl Strategy<Value = DeviceRecord> {
    let app = prop::sample::select(vec![A, B]);
    let id = prop::sample::select(vec!["d1", "d2", "d3", "gw"]);
    let tag = (
        prop::sample::select(vec!["site", "color", "k"]),
        prop::sample::select(vec!["north", "blue", "x"]),
    );
    (app, id, prop::collection::vec(tag, 0..4)).prop_map(|(a, id, tags)| {
        tags.into_iter()
            .fold(device(a, id, &[]), |d, (k, v)| d.with_tag(k, v))
    })
}

fn arb_scope() -> impl Strategy<Value = Scope> {
    let entry = prop::sample::select(vec![
        "d1",
        "d2",
        "d3",
        "gw",
        "site=north",
        "color=",
        "=blue",
        "k=x",
        "site=*",
    ]);
    prop::option::of(prop::collection::btree_set(entry, 1..5)).prop_map(|entries| match entries {
        None => Scope::Unrestricted,
        Some(entries) => restricted(&entries.into_iter().collect::<Vec<_>>().join(",")),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// No principal ever sees, publishes to, subscribes to or receives a device
    /// of another application, for random restrictions and devices.
    #[test]
    fn no_principal_ever_reaches_another_application(
        scope in arb_scope(),
        me in arb_device(),
        others in prop::collection::vec(arb_device(), 1..6),
        single in any::<bool>(),
    ) {
        let record = AccessKey::new(
            "stk_0000000000000000000000".parse().unwrap(),
            *me.application_id(),
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA".parse().unwrap(),
            scope,
        );
        let Ok(p) = Principal::reauthorize(&record, &me, structure_access::UnixTime::now()) else {
            // Out of its own key's scope: it never connects.
            prop_assert!(!record.can_see(&me));
            return Ok(());
        };
        // One device per ID in the directory: the last one wins.
        let directory: HashMap<String, DeviceRecord> =
            others.iter().map(|d| (d.device_id().to_string(), d.clone())).collect();
        let find = |id: &str| directory.get(id);
        let rules = if single {
            TopicRules::default().with_single_application(*me.application_id())
        } else {
            TopicRules::default()
        };
        for other in directory.values() {
            let foreign = other.application_id() != me.application_id();
            if foreign {
                prop_assert!(!p.can_see(other));
                prop_assert!(!record.can_see(other));
            }
            if foreign && other.device_id() != me.device_id() && !single {
                let state = format!("structure/{}/state", other.device_id());
                prop_assert_eq!(p.may_publish(&rules, &state, &find), Ok(Decision::Deny));
                prop_assert_eq!(p.may_subscribe(&rules, &state, &find), Ok(Decision::Deny));
                prop_assert!(!p.may_receive(&rules, &state, &find).unwrap());
            }
        }
    }
}
