//! RabbitMQ's questions to structure-http (`integrations/http`'s `rabbitmq`):
//! arbitrary usernames, client ids, permissions, routing keys, resources and
//! management API lists never panic, and nothing granted to the restricted
//! key reaches a device out of its scope or application.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use structure_access::mqtt::TopicRules;
use structure_access::{AccessKey, DeviceRecord, HashPolicy, Restriction, UnixTime};
use structure_access_common::{Applied, ChangeSet, DeviceChange, KeyChange, Records};
use structure_access_http::rabbitmq::{
    RabbitMqConfig, decide_resource, decide_topic, doomed, mqtt_topic, parse_connections,
};

struct World {
    records: Records,
    restricted: String,
    applied: Applied,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        use rand_chacha::rand_core::SeedableRng;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        let policy = HashPolicy::default();
        let scope = "kind=truck".parse::<Restriction>().unwrap().into();
        let key = AccessKey::generate(&mut rng, "app1".parse().unwrap(), scope, &policy)
            .unwrap()
            .record;
        let restricted = key.key().to_string();
        let device = |app: &str, id: &str, kind: &str| {
            DeviceChange::Put(
                DeviceRecord::new(app.parse().unwrap(), id.parse().unwrap())
                    .with_tag("kind", kind),
                1,
            )
        };
        let mut records = Records::new(policy, TopicRules::default());
        let applied = records.apply(ChangeSet {
            keys: vec![KeyChange::Put(Arc::new(key), 1)],
            devices: vec![
                device("app1", "truck-1", "truck"),
                device("app1", "car-1", "car"),
                device("app2", "b-1", "truck"),
            ],
        });
        World {
            records,
            restricted,
            applied,
        }
    })
}

/// Whether the MQTT filter `filter` matches the topic `topic` (the core's
/// matching; an invalid filter matches nothing).
fn matches(filter: &str, topic: &str) -> bool {
    let (Ok(filter), Ok(topic)) = (
        structure_access::mqtt::TopicFilter::new(filter),
        structure_access::mqtt::Topic::new(topic),
    ) else {
        return false;
    };
    filter.matches(topic)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let world = world();
    let now = UnixTime::from_secs(1_800_000_000).unwrap();
    let mut fields = text.splitn(4, '\n');
    let (user, client, permission, key) = (
        fields.next().unwrap_or(""),
        fields.next().unwrap_or(""),
        fields.next().unwrap_or(""),
        fields.next().unwrap_or(""),
    );
    // As the fuzzer wrote them, and with the restricted key's name.
    for user in [user, world.restricted.as_str()] {
        let allowed = decide_topic(&world.records, user, client, permission, key, now).is_ok();
        if allowed {
            let topic = mqtt_topic(key);
            for outside in ["structure/car-1/state", "structure/b-1/state", "structure/car-1/command"] {
                assert!(!matches(&topic, outside), "`{key}` reaches {outside}");
            }
        }
        let _ = decide_resource(
            &world.records,
            &RabbitMqConfig::default(),
            user,
            permission,
            key,
            client,
            now,
        );
    }
    if let Ok(list) = parse_connections(data) {
        let _ = doomed(&world.records, &world.applied, &list, now);
    }
});
