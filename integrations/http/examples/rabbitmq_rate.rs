//! Load generator: a two-node RabbitMQ cluster authorizing its MQTT clients
//! through structure-http's RabbitMQ endpoints, beside the same cluster's
//! internal users, in one run (the cluster's `auth_backends` are `internal`
//! then `http`, so both kinds of user connect to the same nodes; a device
//! key is first looked up among the internal users, and costs that too).
//!
//! `cargo build --release -p structure-access-http &&
//! cargo run --release -p structure-access-http --example rabbitmq_rate [BATCH] [ROUNDS] [MESSAGES]`
//! (default 400 connects a batch, 5 rounds, 50 000 messages a flood):
//!
//! 1. first connects: a batch of CONNECTs (each a new connection of its own
//!    client, CONNACK awaited, then DISCONNECT; 4 at a time, both nodes in
//!    turn) with device keys, then with internal users (order alternated by
//!    round); the ratio is each round's, the figure their median;
//! 2. messages through an allowed subscription: a subscriber on node 1, a
//!    publisher on node 2, a flood of QoS 0 messages on the publisher's own
//!    state topic, timed from the first sent to the last received;
//! 3. what RabbitMQ's questions cost the service: `POST /rabbitmq/user`
//!    (a generated secret) and `POST /rabbitmq/topic`, 4 keep-alive
//!    connections, requests per second and p99.
//!
//! `RABBIT_AA=1` puts internal users on both sides: the noise floor of the
//! ratios.
//!
//! Needs RabbitMQ (`apt-get install rabbitmq-server`); runs as root.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Bytes;
use support::load::{load, median};
use support::mqtt::Mqtt;
use support::*;

/// (client id, username, password) of every client of one kind.
type Clients = Arc<Vec<(String, String, String)>>;

/// Connects per second of `clients`, 4 threads, alternating nodes.
fn connects(clients: &Clients, nodes: [u16; 2]) -> f64 {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (clients, next) = (clients.clone(), next.clone());
            std::thread::spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((id, user, pass)) = clients.get(i) else {
                        return;
                    };
                    let client = Mqtt::connect(nodes[i % 2], id, user, pass)
                        .unwrap_or_else(|e| panic!("{id} refused: {e:?}"));
                    client.disconnect();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    clients.len() as f64 / start.elapsed().as_secs_f64()
}

/// Messages per second from a publisher on node 2 to a subscriber on
/// node 1, through the subscription of the publisher's topic.
fn messages(
    nodes: [u16; 2],
    subscriber: &(String, String, String),
    publisher: &(String, String, String),
    topic: &str,
    count: usize,
) -> f64 {
    let mut sub = Mqtt::connect(nodes[0], &subscriber.0, &subscriber.1, &subscriber.2).unwrap();
    assert_eq!(sub.subscribe(topic), Some(0), "the subscription is allowed");
    let mut publ = Mqtt::connect(nodes[1], &publisher.0, &publisher.1, &publisher.2).unwrap();
    // Until the subscription is bound across the cluster.
    let mut bound = false;
    for _ in 0..50 {
        assert!(publ.publish(topic, b"warm-up"));
        if !sub.messages(Duration::from_millis(200)).is_empty() {
            bound = true;
            break;
        }
    }
    assert!(
        bound,
        "the subscriber never received the publisher's messages"
    );
    let _ = sub.messages(Duration::from_millis(300));
    let topic = topic.to_owned();
    let start = Instant::now();
    let flood = std::thread::spawn(move || {
        let payload = [b'x'; 64];
        for _ in 0..count {
            assert!(publ.publish(&topic, &payload));
        }
        publ
    });
    let mut received = 0;
    let mut last = start;
    while received < count {
        match sub.read(Duration::from_secs(5)) {
            Some((first, _)) if first >> 4 == 3 => {
                received += 1;
                last = Instant::now();
            }
            Some(_) => {}
            None => break,
        }
    }
    flood.join().unwrap().disconnect();
    sub.disconnect();
    if received < count {
        eprintln!("  ({received} of {count} messages received)");
    }
    received as f64 / last.duration_since(start).as_secs_f64()
}

/// Creates the internal users (password, full permissions on `/`) through
/// the management API.
fn provision(management: &str, admin: &str, users: &[(String, String, String)]) {
    use base64ct::Encoding;
    let authorization = format!(
        "Basic {}",
        base64ct::Base64::encode_string(admin.as_bytes())
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<Bytes>>();
        for (_, user, pass) in users {
            for (path, body) in [
                (
                    format!("/api/users/{user}"),
                    serde_json::json!({ "password": pass, "tags": "" }),
                ),
                (
                    format!("/api/permissions/%2F/{user}"),
                    serde_json::json!({ "configure": ".*", "write": ".*", "read": ".*" }),
                ),
            ] {
                let request = Request::put(format!("{management}{path}"))
                    .header("authorization", &authorization)
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body.to_string())))
                    .unwrap();
                let response = client.request(request).await.unwrap();
                let status = response.status();
                let _ = response.into_body().collect().await;
                assert!(status.is_success(), "PUT {path}: {status}");
            }
        }
    });
}

fn main() {
    if !support::rabbitmq::installed() {
        eprintln!("RabbitMQ is not installed: apt-get install rabbitmq-server");
        std::process::exit(2);
    }
    let arg = |i: usize, default: usize| {
        std::env::args()
            .nth(i)
            .map_or(default, |n| n.parse().unwrap())
    };
    let (batch, rounds, count) = (arg(1, 400), arg(2, 5), arg(3, 50_000));
    let dir = work_dir("rabbitmq-rate");
    // One key a device, and one internal user a client, for every connect
    // of every round (first connects: no client connects twice).
    let total = batch * rounds + 2;
    let keys = fleet(&dir, total, 7);
    let devices: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (format!("d-{i}"), k.id.clone(), k.secret.clone()))
        .collect();
    // RABBIT_AA=1: the "keys" side is internal users too (others, so
    // that every connect is still a first one): the noise floor.
    let aa = std::env::var_os("RABBIT_AA").is_some_and(|v| v == "1");
    let users: Vec<_> = (0..total * if aa { 2 } else { 1 })
        .map(|i| {
            (
                format!("u-{i}"),
                format!("u-{i}"),
                format!("p-{i}-{:x}", i * 7919),
            )
        })
        .collect();
    let (cluster, server) = support::rabbitmq::cluster_with_service(&dir, &[]);
    let audit = dir.join("audit.jsonl");
    let management = cluster.management(1);
    provision(&management, &cluster.admin(), &users);
    let nodes = [cluster.mqtt(1), cluster.mqtt(2)];

    let (mut with, mut without, mut ratios) = (vec![], vec![], vec![]);
    for round in 0..rounds {
        let range = 2 + round * batch..2 + (round + 1) * batch;
        let ours: Clients = Arc::new(if aa {
            users[total + range.start..total + range.end].to_vec()
        } else {
            devices[range.clone()].to_vec()
        });
        let theirs: Clients = Arc::new(users[range].to_vec());
        let (a, b) = if round % 2 == 0 {
            let a = connects(&ours, nodes);
            (a, connects(&theirs, nodes))
        } else {
            let b = connects(&theirs, nodes);
            (connects(&ours, nodes), b)
        };
        eprintln!("round {round}: first connects {a:.0}/s with keys, {b:.0}/s internal users");
        with.push(a);
        without.push(b);
        ratios.push(a / b);
    }
    let (mut mwith, mut mwithout, mut mratios) = (vec![], vec![], vec![]);
    for round in 0..3 {
        let (subscriber, publisher) = if aa {
            (&users[total], &users[total + 1])
        } else {
            (&devices[0], &devices[1])
        };
        let ours = || messages(nodes, subscriber, publisher, "structure/d-1/state", count);
        let theirs = || messages(nodes, &users[0], &users[1], "structure/d-1/state", count);
        let (a, b) = if round % 2 == 0 {
            let a = ours();
            (a, theirs())
        } else {
            let b = theirs();
            (ours(), b)
        };
        eprintln!("flood {round}: {a:.0} messages/s with keys, {b:.0}/s internal users");
        mwith.push(a);
        mwithout.push(b);
        mratios.push(a / b);
    }

    // The service alone: RabbitMQ's two most frequent questions.
    let device = devices[2].clone();
    let user_body: &'static str = Box::leak(
        format!(
            "username={}&password={}&vhost=%2F&client_id={}",
            device.1, device.2, device.0
        )
        .into_boxed_str(),
    );
    let topic_body: &'static str = Box::leak(
        format!(
            "username={}&vhost=%2F&resource=topic&name=amq.topic&permission=write&routing_key=structure.{}.state&variable_map.client_id={}",
            device.1, device.0, device.0
        )
        .into_boxed_str(),
    );
    let form = |path: &'static str, body: &'static str| {
        move |_| {
            Request::post(path)
                .header("host", "127.0.0.1")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Full::new(Bytes::from_static(body.as_bytes())))
                .unwrap()
        }
    };
    let (user_rate, user_p99) = load(server.port, 4, 3, form("/rabbitmq/user", user_body), 200);
    let (topic_rate, topic_p99) = load(server.port, 4, 3, form("/rabbitmq/topic", topic_body), 200);
    let trail = std::fs::read_to_string(&audit).unwrap_or_default();
    drop(server);
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);

    let spread = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        format!("{:.3} .. {:.3}", v[0], v[v.len() - 1])
    };
    println!(
        "two-node RabbitMQ cluster, MQTT 3.1.1{}:",
        if aa {
            " (RABBIT_AA=1: \"device keys\" are internal users too)"
        } else {
            ""
        }
    );
    println!(
        "  first connects, device keys (structure-http): {:>7.0}/s",
        median(with)
    );
    println!(
        "  first connects, internal users:               {:>7.0}/s",
        median(without)
    );
    println!(
        "  keys ÷ internal, per round: median {:.3} ({rounds} rounds of {batch}: {})",
        median(ratios.clone()),
        spread(&ratios)
    );
    println!(
        "  messages, node 2 → node 1, device keys:        {:>7.0}/s",
        median(mwith)
    );
    println!(
        "  messages, node 2 → node 1, internal users:     {:>7.0}/s",
        median(mwithout)
    );
    println!(
        "  keys ÷ internal, per flood: median {:.3} (3 floods of {count}: {})",
        median(mratios.clone()),
        spread(&mratios)
    );
    println!(
        "  POST /rabbitmq/user (generated secret): {user_rate:>7.0} req/s, p99 {user_p99:.2} ms"
    );
    println!(
        "  POST /rabbitmq/topic (write):           {topic_rate:>7.0} req/s, p99 {topic_p99:.2} ms"
    );
    println!(
        "  ({} auth_accepted events written)",
        trail.matches("\"auth_accepted\"").count()
    );
}
