//! Properties of the RabbitMQ decisions, through the public API: routing keys
//! map back as RabbitMQ delivers them, subscription queues name their device,
//! and no subscription or publication a restricted key is granted reaches a
//! device out of its scope or of another application, whatever the routing
//! key; no input panics.

use std::sync::Arc;

use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use structure_access::mqtt::TopicRules;
use structure_access::{AccessKey, DeviceRecord, HashPolicy, KeyId, Restriction, Scope, UnixTime};
use structure_access_common::{ChangeSet, DeviceChange, KeyChange, Records};
use structure_access_http::rabbitmq::{
    Connection, RabbitMqConfig, decide_resource, decide_topic, doomed, mqtt_topic,
    parse_connections, subscription_queue_device,
};

/// RabbitMQ 3.10's `mqtt2amqp`: `/` → `.`, `+` → `*`.
fn to_amqp(topic: &str) -> String {
    topic.replace('/', ".").replace('+', "*")
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

struct World {
    records: Records,
    restricted: KeyId,
    unrestricted: KeyId,
}

fn world() -> World {
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let policy = HashPolicy::default();
    let mut key = |app: &str, scope: Scope| {
        AccessKey::generate(&mut rng, app.parse().unwrap(), scope, &policy)
            .unwrap()
            .record
    };
    let restricted = key(
        "app1",
        "kind=truck,gw".parse::<Restriction>().unwrap().into(),
    );
    let unrestricted = key("app1", Scope::Unrestricted);
    let other = key("app2", Scope::Unrestricted);
    let ids = (*restricted.key(), *unrestricted.key());
    let device = |app: &str, id: &str, kind: &str| {
        DeviceChange::Put(
            DeviceRecord::new(app.parse().unwrap(), id.parse().unwrap()).with_tag("kind", kind),
            1,
        )
    };
    let mut records = Records::new(policy.clone(), TopicRules::default());
    records.apply(ChangeSet {
        keys: [restricted, unrestricted, other]
            .into_iter()
            .map(|k| KeyChange::Put(Arc::new(k), 1))
            .collect(),
        devices: vec![
            device("app1", "gw", "car"),
            device("app1", "truck-1", "truck"),
            device("app1", "car-1", "car"),
            device("app2", "b-1", "truck"),
        ],
    });
    World {
        records,
        restricted: ids.0,
        unrestricted: ids.1,
    }
}

fn now() -> UnixTime {
    "2026-12-06T12:00:00Z".parse().unwrap()
}

const LEVELS: &[&str] = &[
    "structure",
    "gw",
    "truck-1",
    "car-1",
    "b-1",
    "state",
    "command",
    "*",
    "#",
    "x",
    "",
];

fn routing_key() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(LEVELS), 1..6).prop_map(|l| l.join("."))
}

proptest! {
    #[test]
    fn a_routing_key_maps_back_to_the_topic_rabbitmq_delivers(
        levels in prop::collection::vec("[a-z0-9_:+#-]{0,6}", 1..6)
    ) {
        let topic = levels.join("/");
        prop_assert_eq!(mqtt_topic(&to_amqp(&topic)), topic);
    }

    #[test]
    fn a_dot_inside_a_level_is_a_level_separator_as_in_rabbitmq(
        levels in prop::collection::vec("[a-z.]{0,6}", 1..6)
    ) {
        let topic = levels.join("/");
        prop_assert_eq!(mqtt_topic(&to_amqp(&topic)), topic.replace('.', "/"));
    }

    #[test]
    fn subscription_queues_name_their_device(id in "[A-Za-z0-9_.:-]{1,40}", qos in 0u8..2) {
        let name = format!("mqtt-subscription-{id}qos{qos}");
        prop_assert_eq!(subscription_queue_device(&name), Some(id.as_str()));
    }

    #[test]
    fn nothing_granted_to_a_restricted_key_reaches_out_of_its_scope(
        key in routing_key(), client in prop::sample::select(&["gw", "truck-1"][..])
    ) {
        let world = world();
        let user = world.restricted.to_string();
        let topic = mqtt_topic(&key);
        for permission in ["read", "write"] {
            if decide_topic(&world.records, &user, client, permission, &key, now()).is_ok() {
                for outside in ["car-1", "b-1"] {
                    for kind in ["state", "command"] {
                        let reached = format!("structure/{outside}/{kind}");
                        prop_assert!(
                            !matches(&topic, &reached),
                            "{permission} of `{key}` by {client} reaches {reached}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn an_unrestricted_key_never_reaches_another_application(key in routing_key()) {
        let world = world();
        let user = world.unrestricted.to_string();
        let topic = mqtt_topic(&key);
        for permission in ["read", "write"] {
            if decide_topic(&world.records, &user, "car-1", permission, &key, now()).is_ok() {
                for reached in ["structure/b-1/state", "structure/b-1/command"] {
                    prop_assert!(!matches(&topic, reached), "{} of `{}` reaches {}", permission, key, reached);
                }
            }
        }
    }

    #[test]
    fn any_question_is_answered_without_panicking(
        user in ".{0,40}", client in ".{0,40}", permission in ".{0,10}",
        key in ".{0,80}", resource in ".{0,10}", name in ".{0,60}",
    ) {
        let world = world();
        let _ = decide_topic(&world.records, &user, &client, &permission, &key, now());
        let _ = decide_resource(
            &world.records, &RabbitMqConfig::default(), &user, &resource, &name, &permission, now(),
        );
        let _ = parse_connections(key.as_bytes());
    }
}

#[test]
fn the_resources_are_the_exchange_and_the_devices_own_queues() {
    let world = world();
    let config = RabbitMqConfig::default();
    let user = world.restricted.to_string();
    let ask = |resource, name, permission| {
        decide_resource(
            &world.records,
            &config,
            &user,
            resource,
            name,
            permission,
            now(),
        )
    };
    assert!(ask("exchange", "amq.topic", "write"));
    assert!(ask("exchange", "amq.topic", "read"));
    assert!(!ask("exchange", "amq.topic", "configure"));
    assert!(!ask("exchange", "amq.direct", "write"));
    assert!(ask("queue", "mqtt-subscription-truck-1qos0", "configure"));
    assert!(ask("queue", "mqtt-subscription-gwqos1", "read"));
    assert!(
        !ask("queue", "mqtt-subscription-car-1qos0", "configure"),
        "out of scope"
    );
    assert!(
        !ask("queue", "mqtt-subscription-b-1qos0", "read"),
        "another application"
    );
    assert!(!ask("queue", "some-queue", "read"));
    assert!(!decide_resource(
        &world.records,
        &config,
        "stk_unknown",
        "exchange",
        "amq.topic",
        "write",
        now()
    ));
}

#[test]
fn a_change_dooms_the_connections_it_affects_and_no_other() {
    let mut world = world();
    let connection = |name: &str, user: &KeyId, client: &str| Connection {
        name: name.to_owned(),
        user: user.to_string(),
        client_id: Some(client.to_owned()),
    };
    let connections = vec![
        connection("r-gw", &world.restricted, "gw"),
        connection("u-car", &world.unrestricted, "car-1"),
        Connection {
            name: "admin".into(),
            user: "admin".into(),
            client_id: None,
        },
    ];
    // truck-1 retagged as a car: the restricted key's sessions of app1 end
    // (their bindings may reach it), the unrestricted key's stay.
    let applied = world.records.apply(ChangeSet {
        keys: vec![],
        devices: vec![DeviceChange::Put(
            DeviceRecord::new("app1".parse().unwrap(), "truck-1".parse().unwrap())
                .with_tag("kind", "car"),
            2,
        )],
    });
    let names: Vec<_> = doomed(&world.records, &applied, &connections, now())
        .into_iter()
        .map(|(c, _)| c.name.as_str())
        .collect();
    assert_eq!(names, ["r-gw"]);
    // The unrestricted key deleted: its connections end, with `deleted`.
    let applied = world.records.apply(ChangeSet {
        keys: vec![KeyChange::Remove(world.unrestricted)],
        devices: vec![],
    });
    let doomed: Vec<_> = doomed(&world.records, &applied, &connections, now())
        .into_iter()
        .map(|(c, d)| (c.name.as_str(), d.cause))
        .collect();
    assert_eq!(doomed, [("u-car", "deleted")]);
}

#[test]
fn an_expired_key_dooms_its_connections_named_or_not() {
    let mut world = world();
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    let record = AccessKey::generate(
        &mut rng,
        "app1".parse().unwrap(),
        Scope::Unrestricted,
        &HashPolicy::default(),
    )
    .unwrap()
    .record
    .with_expiry(Some("2026-12-06T11:00:00Z".parse().unwrap()));
    let id = *record.key();
    world.records.apply(ChangeSet {
        keys: vec![KeyChange::Put(Arc::new(record), 1)],
        devices: vec![],
    });
    let connections = vec![
        Connection {
            name: "named".into(),
            user: id.to_string(),
            client_id: Some("car-1".into()),
        },
        Connection {
            name: "not yet named".into(),
            user: id.to_string(),
            client_id: None,
        },
    ];
    let before = "2026-12-06T10:59:00Z".parse().unwrap();
    let expired = world.records.expired_as_applied(before, now());
    assert_eq!(expired.keys.len(), 1);
    let doomed: Vec<_> = doomed(&world.records, &expired, &connections, now())
        .into_iter()
        .map(|(c, d)| (c.name.as_str(), d.cause))
        .collect();
    assert_eq!(doomed, [("named", "expired"), ("not yet named", "expired")]);
}
