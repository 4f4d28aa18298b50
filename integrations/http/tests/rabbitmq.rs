//! RabbitMQ's MQTT plugin authorized by structure-http's RabbitMQ endpoints,
//! on a real two-node cluster, with independent MQTT 3.1.1 clients
//! (mosquitto_pub and mosquitto_sub, and a raw-socket client that sees
//! exactly when a connection is refused or closed): right credentials in,
//! wrong ones out, cross-node delivery, publish, subscribe and will denials
//! of a restricted device, a restricted wildcard refused, another
//! application's topics unreachable, and the live sessions of a deleted key
//! closed through the management API.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use structure_access::Scope;
use support::mqtt::{Mqtt, Refused};
use support::*;

fn mosquitto_pub(port: u16, client: &str, key: &Key, topic: &str, message: &str) -> (bool, String) {
    let out = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-V", "mqttv311", "-q", "0"])
        .args(["-p", &port.to_string(), "-i", client])
        .args(["-u", &key.id, "-P", &key.secret])
        .args(["-t", topic, "-m", message])
        .stdin(Stdio::null())
        .output()
        .expect("mosquitto_pub is installed (.ci/run installs mosquitto-clients)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A mosquitto_sub that exits after one message (or 30 s).
fn mosquitto_sub(port: u16, client: &str, key: &Key, topic: &str) -> Child {
    Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-V", "mqttv311", "-C", "1", "-W", "30"])
        .args(["-p", &port.to_string(), "-i", client])
        .args(["-u", &key.id, "-P", &key.secret])
        .args(["-t", topic, "-v"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub is installed")
}

fn connected(port: u16, client: &str, key: &Key) -> Mqtt {
    Mqtt::connect(port, client, &key.id, &key.secret)
        .unwrap_or_else(|e| panic!("{client} could not connect: {e:?}"))
}

/// Whether `subscriber` (subscribed) receives `topic` when `publisher`
/// publishes it, trying a few times (RabbitMQ binds a subscription across
/// the cluster asynchronously).
fn delivered(subscriber: &mut Mqtt, publisher: &mut Mqtt, topic: &str, payload: &str) -> bool {
    for _ in 0..10 {
        assert!(publisher.publish(topic, payload.as_bytes()));
        let got = subscriber.messages(Duration::from_millis(300));
        if got.iter().any(|(t, p)| t == topic && p == payload) {
            return true;
        }
    }
    false
}

/// A subscription granted: SUBACK 0 (QoS 0). RabbitMQ 3.10 closes the
/// connection when it refuses one; a 0x80 would be a refusal too.
fn granted(code: Option<u8>) -> bool {
    matches!(code, Some(0..=2))
}

#[test]
fn a_two_node_rabbitmq_cluster_authorizes_devices_by_their_keys() {
    if !support::rabbitmq::installed() {
        assert!(
            !support::rabbitmq::required(),
            "RabbitMQ is not installed (apt-get install rabbitmq-server)"
        );
        eprintln!("skipped: RabbitMQ is not installed");
        return;
    }
    let dir = work_dir("rabbitmq");
    let mut rng = rng(25);
    let ka = key(&mut rng, "app1", Scope::Unrestricted);
    let kr = key(&mut rng, "app1", restricted("kind=truck"));
    let kb = key(&mut rng, "app2", Scope::Unrestricted);
    let keys = vec![ka.line.clone(), kr.line.clone(), kb.line.clone()];
    write_lines(&dir.join("keys.jsonl"), &keys);
    write_lines(
        &dir.join("devices.jsonl"),
        &[
            device_line("app1", "truck-1", "truck"),
            device_line("app1", "truck-2", "truck"),
            device_line("app1", "gw", "truck"),
            device_line("app1", "car-1", "car"),
            device_line("app1", "watcher", "car"),
            device_line("app1", "probe", "car"),
            device_line("app2", "b-1", "b"),
        ],
    );
    let (cluster, server) =
        support::rabbitmq::cluster_with_service(&dir, &["--reload-interval-ms", "50"]);
    let audit = dir.join("audit.jsonl");
    let (n1, n2) = (cluster.mqtt(1), cluster.mqtt(2));

    // Right credentials in, wrong ones out (independent clients).
    let (ok, err) = mosquitto_pub(n2, "truck-1", &kr, "structure/truck-1/state", "in");
    assert!(ok, "truck-1 with its key: {err}");
    let wrong = Key {
        secret: kb.secret.clone(),
        ..kr.clone()
    };
    let (ok, err) = mosquitto_pub(n1, "truck-1", &wrong, "structure/truck-1/state", "x");
    assert!(!ok, "a wrong secret was let in");
    eprintln!("wrong secret: {}", err.trim());
    for (client, key, why) in [
        ("car-1", &kr, "out of the key's scope"),
        ("b-1", &ka, "a device of another application"),
        ("ghost", &ka, "a device not on file"),
    ] {
        let refused = Mqtt::connect(n1, client, &key.id, &key.secret);
        assert!(refused.is_err(), "{client} ({why}) was let in");
    }
    assert!(Mqtt::connect(n1, "truck-1", "stk_notakey", "sts_nope").is_err());
    assert_eq!(
        Mqtt::connect(n2, "watcher", &ka.id, "wrong").err(),
        Some(Refused::Code(4)),
        "RabbitMQ answers a refusal with CONNACK 4, bad user name or password"
    );

    // Cross-node delivery for an unrestricted subscriber (mosquitto_sub on
    // node 1, mosquitto_pub on node 2).
    let sub = mosquitto_sub(n1, "watcher", &ka, "structure/truck-1/state");
    let start = Instant::now();
    let mut sub = sub;
    while sub.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(25) {
        let (ok, err) = mosquitto_pub(n2, "truck-1", &kr, "structure/truck-1/state", "across");
        assert!(ok, "{err}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let out = sub.wait_with_output().unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("structure/truck-1/state across"),
        "node 1's subscriber did not get node 2's message: {printed:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A restricted device: publications and subscriptions within its scope
    // only.
    let mut watcher = connected(n1, "watcher", &ka);
    assert!(granted(watcher.subscribe("structure/car-1/state")));
    assert!(granted(watcher.subscribe("structure/truck-2/state")));
    let mut car = connected(n2, "car-1", &ka);
    assert!(
        delivered(&mut watcher, &mut car, "structure/car-1/state", "car"),
        "the control: car-1's own state reaches the watcher"
    );
    let mut truck = connected(n2, "truck-1", &kr);
    assert!(truck.publish("structure/car-1/state", b"forged"));
    let got = watcher.messages(Duration::from_millis(1500));
    assert!(
        got.iter().all(|(_, p)| p != "forged"),
        "a restricted device published for a device out of its scope: {got:?}"
    );
    assert!(
        !truck.alive(),
        "RabbitMQ closes a connection whose publication is refused"
    );
    let mut truck = connected(n2, "truck-1", &kr);
    assert!(
        delivered(
            &mut watcher,
            &mut truck,
            "structure/truck-2/state",
            "as-gateway"
        ),
        "a restricted key publishes for a device in its scope (a gateway)"
    );

    let mut gw = connected(n2, "gw", &kr);
    assert!(granted(gw.subscribe("structure/truck-2/state")));
    assert!(
        delivered(&mut gw, &mut truck, "structure/truck-2/state", "in-scope"),
        "a restricted subscriber receives a device in its scope"
    );
    for filter in [
        "structure/car-1/state",
        "structure/+/state",
        "structure/#",
        "#",
    ] {
        let mut gw = connected(n2, "gw", &kr);
        let code = gw.subscribe(filter);
        assert!(
            !granted(code),
            "the restricted key subscribed to `{filter}` ({code:?})"
        );
    }

    // Another application's topics, and wildcards that would reach them.
    for (client, key, filter) in [
        ("b-1", &kb, "structure/truck-1/state"),
        ("probe", &ka, "structure/b-1/state"),
        ("probe", &ka, "structure/+/state"),
    ] {
        let mut c = connected(n1, client, key);
        let code = c.subscribe(filter);
        assert!(
            !granted(code),
            "{client} subscribed to `{filter}` ({code:?})"
        );
    }
    let mut b1 = connected(n1, "b-1", &kb);
    assert!(b1.publish("structure/truck-2/state", b"from-app2"));
    assert!(
        watcher
            .messages(Duration::from_millis(1500))
            .iter()
            .all(|(_, p)| p != "from-app2"),
        "a device of app2 published on app1's topic"
    );

    // Wills are publications: a forged one is dropped, its own delivered.
    let forger = Mqtt::connect_with_will(
        n2,
        "truck-1",
        &kr.id,
        &kr.secret,
        Some(("structure/car-1/state", "forged-will")),
    )
    .unwrap();
    forger.drop_connection();
    let honest = Mqtt::connect_with_will(
        n2,
        "truck-2",
        &kr.id,
        &kr.secret,
        Some(("structure/truck-2/state", "own-will")),
    )
    .unwrap();
    honest.drop_connection();
    let got = watcher.messages(Duration::from_secs(2));
    assert!(
        got.iter().all(|(_, p)| p != "forged-will"),
        "a forged will was delivered: {got:?}"
    );
    assert!(
        got.iter().any(|(_, p)| p == "own-will"),
        "a will on the device's own topic was not delivered: {got:?}"
    );

    // Devices change: truck-2 retagged out of the restricted key's scope
    // ends the restricted key's sessions of app1 (RabbitMQ keeps their
    // bindings, so they reconnect and are decided again); car-1 deleted ends
    // its own session. The unrestricted watcher stays.
    let mut gw = connected(n2, "gw", &kr);
    assert!(granted(gw.subscribe("structure/truck-2/state")));
    let mut car = connected(n1, "car-1", &ka);
    std::thread::sleep(Duration::from_secs(2));
    let devices = |truck2: &str, with_car: bool| {
        let mut lines = vec![
            device_line("app1", "truck-1", "truck"),
            device_line("app1", "truck-2", truck2),
            device_line("app1", "gw", "truck"),
            device_line("app1", "watcher", "car"),
            device_line("app1", "probe", "car"),
            device_line("app2", "b-1", "b"),
        ];
        if with_car {
            lines.push(device_line("app1", "car-1", "car"));
        }
        lines
    };
    let changed = Instant::now();
    write_lines(&dir.join("devices.jsonl"), &devices("car", false));
    let gw_closed = gw
        .closed_within(Duration::from_secs(15))
        .map(|_| changed.elapsed());
    let car_closed = car
        .closed_within(Duration::from_secs(15))
        .map(|_| changed.elapsed());
    eprintln!(
        "devices changed: the restricted gateway's session closed after {gw_closed:?}, \
         the deleted device's after {car_closed:?}"
    );
    assert!(
        gw_closed.is_some(),
        "the gateway kept its binding to a device out of its scope"
    );
    assert!(car_closed.is_some(), "the deleted device stayed connected");
    assert!(watcher.alive(), "the unrestricted watcher was closed");
    assert!(
        Mqtt::connect(n1, "car-1", &ka.id, &ka.secret).is_err(),
        "a deleted device connected again"
    );
    let mut gw = connected(n2, "gw", &kr);
    let code = gw.subscribe("structure/truck-2/state");
    assert!(
        !granted(code),
        "the gateway subscribed again to a device out of its scope"
    );
    write_lines(&dir.join("devices.jsonl"), &devices("truck", true));
    // Connections opened once a change is in force (past the service's
    // half-second grace) are not the change's to close.
    std::thread::sleep(Duration::from_millis(1500));

    // A deleted key: its live sessions, on both nodes, are closed through
    // the management API; the other keys' stay. `gw` has been connected a
    // while; `truck-1` connects just before the change, so RabbitMQ lists
    // it only once its statistics are next collected (500 ms here).
    let mut gw = connected(n2, "gw", &kr);
    assert!(granted(gw.subscribe("structure/truck-2/state")));
    std::thread::sleep(Duration::from_secs(2));
    let mut truck = connected(n1, "truck-1", &kr);
    assert!(watcher.alive() && gw.alive() && truck.alive());
    let deleted = Instant::now();
    write_lines(&dir.join("keys.jsonl"), &[ka.line.clone(), kb.line.clone()]);
    let gw_closed = gw.closed_within(Duration::from_secs(15));
    let truck_closed = truck
        .closed_within(Duration::from_secs(15))
        .map(|_| deleted.elapsed());
    eprintln!(
        "deleted key: its sessions closed after the file changed: {gw_closed:?} (node 2, \
         connected 2 s before), {truck_closed:?} (node 1, connected just before)"
    );
    assert!(
        gw_closed.is_some() && truck_closed.is_some(),
        "the deleted key's sessions were not closed: {}",
        server.log()
    );
    assert!(watcher.alive(), "an unrelated session was closed");
    assert!(
        Mqtt::connect(n2, "gw", &kr.id, &kr.secret).is_err(),
        "the deleted key connected again"
    );

    // The audit trail: the refusals, the sessions ended; no secret.
    std::thread::sleep(Duration::from_millis(300));
    let trail = std::fs::read_to_string(&audit).unwrap();
    assert!(trail.contains("\"event\":\"auth_accepted\""), "{trail}");
    assert!(trail.contains("\"reason\":\"wrong_secret\""), "{trail}");
    assert!(trail.contains("\"reason\":\"out_of_scope\""), "{trail}");
    let ended: Vec<&str> = trail
        .lines()
        .filter(|l| l.contains("\"event\":\"session_ended\""))
        .collect();
    let of_deleted_key = ended
        .iter()
        .filter(|l| l.contains(&kr.id) && l.contains("\"reason\":\"deleted\""))
        .count();
    assert!(of_deleted_key >= 2, "{ended:?}");
    assert!(
        ended
            .iter()
            .any(|l| l.contains("\"device\":\"car-1\"") && l.contains("device_deleted")),
        "{ended:?}"
    );
    assert!(
        ended
            .iter()
            .any(|l| l.contains(&kr.id) && l.contains("out_of_scope")),
        "{ended:?}"
    );
    let log = server.log();
    for secret in [&ka.secret, &kr.secret, &kb.secret] {
        assert!(!trail.contains(secret.as_str()) && !log.contains(secret.as_str()));
    }
    drop(server);
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}
