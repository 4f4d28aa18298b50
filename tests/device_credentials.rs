//! The device side: `DeviceCredentials` and the names of its topics, read back
//! by the broker's side (`TopicRules::classify`, the topic policy).

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use structure_access::mqtt::{Decision, DeviceTopic, TopicClass, TopicRules};
use structure_access::{
    AccessKey, CredentialsError, DeviceCredentials, DeviceRecord, HashPolicy, Principal, Scope,
    Secret,
};

const APP: &str = "64b1f0c2a7e3d95b8c4f2a10";

fn secret() -> Secret {
    Secret::generate(&mut ChaCha20Rng::seed_from_u64(15))
}

#[test]
fn the_topic_names_are_the_devices_own_under_the_rules() {
    let secret = secret();
    let rules = TopicRules::default();
    for id in [
        "dev-1",
        "5f2b8c1e9a4d3b7c6e1f0a2b",
        "a.b:c_d",
        &"x".repeat(128),
    ] {
        let device =
            DeviceCredentials::parse(id, "stk_4DmVJcy3ZpW0gNqk8TbX2a", secret.expose_secret())
                .unwrap();
        assert_eq!(device.client_id(), id);
        assert_eq!(device.username(), "stk_4DmVJcy3ZpW0gNqk8TbX2a");
        assert_eq!(device.password(), &secret);
        assert_eq!(
            rules.classify(device.state_topic().as_topic()),
            TopicClass::State(id)
        );
        assert_eq!(
            rules.classify(device.command_topic().as_topic()),
            TopicClass::Command(id)
        );
        let peer = "sensor-7".parse().unwrap();
        assert_eq!(
            rules.classify(device.peer_state_topic(&peer).as_topic()),
            TopicClass::State("sensor-7")
        );
        assert_eq!(
            rules.classify(device.peer_command_topic(&peer).as_topic()),
            TopicClass::Command("sensor-7")
        );
        assert_eq!(
            DeviceTopic::state(&rules, device.device_id()).unwrap(),
            device.state_topic()
        );
    }
}

#[test]
fn the_policy_lets_the_device_use_its_topics() {
    let policy = HashPolicy::default();
    let app = APP.parse().unwrap();
    let new = AccessKey::generate(
        &mut ChaCha20Rng::seed_from_u64(1),
        app,
        Scope::Unrestricted,
        &policy,
    )
    .unwrap();
    let device = DeviceCredentials::new(
        "dev-1".parse().unwrap(),
        *new.record.key(),
        new.secret.clone(),
    );
    let record = DeviceRecord::new(app, *device.device_id());
    let principal =
        Principal::reauthorize(&new.record, &record, structure_access::UnixTime::now()).unwrap();
    let known = |id: &str| (id == "dev-1").then_some(&record);
    let rules = TopicRules::default();
    assert_eq!(
        principal
            .may_publish(&rules, device.state_topic().as_str(), &known)
            .unwrap(),
        Decision::Allow
    );
    assert_eq!(
        principal
            .may_subscribe(&rules, device.command_topic().as_str(), &known)
            .unwrap(),
        Decision::Allow
    );
    assert_eq!(
        principal
            .may_publish(&rules, device.command_topic().as_str(), &known)
            .unwrap(),
        Decision::Deny
    );
}

#[test]
fn bad_parts_are_refused_without_quoting_the_secret() {
    let secret = secret();
    let text = secret.expose_secret();
    let mut bad = text.to_owned();
    bad.replace_range(52.., if text.ends_with('a') { "b" } else { "a" });
    let key = "stk_4DmVJcy3ZpW0gNqk8TbX2a";
    let cases = [
        DeviceCredentials::parse("dev 1", key, text),
        DeviceCredentials::parse(text, key, text),
        DeviceCredentials::parse("dev-1", text, text),
        DeviceCredentials::parse("dev-1", "stk_short", text),
        DeviceCredentials::parse("dev-1", key, &bad),
        DeviceCredentials::parse("dev-1", key, "short"),
    ];
    let errors: Vec<CredentialsError> = cases.into_iter().map(|c| c.unwrap_err()).collect();
    assert!(matches!(errors[0], CredentialsError::DeviceId(_)));
    assert!(matches!(errors[1], CredentialsError::DeviceId(_)));
    assert!(matches!(errors[2], CredentialsError::Key(_)));
    assert!(matches!(errors[3], CredentialsError::Key(_)));
    assert!(matches!(errors[4], CredentialsError::Secret(_)));
    assert!(matches!(errors[5], CredentialsError::Secret(_)));
    for error in &errors {
        let mut chain = error.to_string();
        let mut cause = std::error::Error::source(error);
        while let Some(c) = cause {
            chain.push_str(&c.to_string());
            cause = c.source();
        }
        assert!(
            !chain.contains(&text[4..]) && !chain.contains(&bad[4..]),
            "{chain}"
        );
    }
    // Imported secrets (the platform's 64 hex characters) are accepted.
    let legacy = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let device =
        DeviceCredentials::parse("dev-1", "6a1f8a3e-3b0c-4d7e-9f51-2c1b6f3e9a10", legacy).unwrap();
    assert_eq!(device.password().expose_secret(), legacy);
    let shown = format!("{device:?}");
    assert!(
        !shown.contains(legacy) && shown.contains("dev-1"),
        "{shown}"
    );
}
