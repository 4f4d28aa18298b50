//! Load test of the reference server: requests per second and p99 latency,
//! each beside the same server with authentication off, in one run.
//!
//! `cargo build --release -p structure-access-http &&
//! cargo run --release -p structure-access-http --example http_rate [SECONDS] [CONNECTIONS] [ROUNDS]`
//! (default 5 s per round, 16 connections, 5 rounds; in each round the two
//! servers are measured back to back, in alternated order, and the ratio is
//! that round's: the figure is the median of the rounds' ratios, so a slow
//! spell of the machine weighs on both sides of one ratio alike):
//!
//! 1. `POST /applications/app1/devices/{d}/state` with a device token, 1000
//!    devices with a token each (each token verified once, then remembered);
//!    beside the same server started with `--no-auth` (the route without the
//!    extractor), sent the same requests, token included;
//!    `HTTP_AA=1` measures the token server on both sides instead: the
//!    noise floor of the ratio;
//! 2. `POST /auth/device` with a generated secret (`hmac-sha256` verifier),
//!    1000 devices, a token issued on each request.
//!
//! The client is hyper's (HTTP/1.1, keep-alive), on the same 2 cores as the
//! server: both figures share the machine alike.

#[path = "../tests/support/mod.rs"]
mod support;

use http_body_util::Full;
use hyper::Request;
use hyper::body::Bytes;
use support::load::{load, median};
use support::*;

const DEVICES: usize = 1000;

fn main() {
    let arg = |i: usize, default: u64| {
        std::env::args()
            .nth(i)
            .map_or(default, |n| n.parse().unwrap())
    };
    let (seconds, connections, rounds) = (arg(1, 5), arg(2, 16) as usize, arg(3, 5));
    // HTTP_AA=1: the "no authentication" side is the token server again,
    // so the ratio shows the noise floor of the method.
    let aa = std::env::var_os("HTTP_AA").is_some_and(|v| v == "1");
    let dir = work_dir("rate");
    let keys = fleet(&dir, DEVICES, 5);
    let (signing, _) = signing_key(&dir, "signing.key", 9);
    let audit = dir.join("audit.jsonl").display().to_string();
    let with = start(&dir, &signing, &["--audit-file", &audit]);
    let open = start(&dir, &signing, &["--no-auth"]);
    // Run under `taskset -c 0`, the servers are moved to core 1: a core
    // each for the client and the server under test.
    if std::env::var_os("HTTP_PIN").is_some_and(|v| v == "1") {
        for server in [&with, &open] {
            let moved = std::process::Command::new("taskset")
                .args(["-a", "-p", "-c", "1", &server.child.id().to_string()])
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(moved.success(), "taskset failed");
        }
    }

    // A token per device, from the server.
    let tokens: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let body = serde_json::json!({ "deviceId": format!("d-{i}"), "key": k.id, "secret": k.secret });
            login_blocking(with.port, &body.to_string())
        })
        .collect();
    let tokens: &'static [String] = Box::leak(tokens.into_boxed_slice());
    let bodies: &'static [String] = Box::leak(
        keys.iter()
            .enumerate()
            .map(|(i, k)| {
                serde_json::json!({ "deviceId": format!("d-{i}"), "key": k.id, "secret": k.secret })
                    .to_string()
            })
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    );
    // The same requests to both servers, token included: only the server's
    // switch differs.
    let state = move |i: usize| {
        Request::post(format!(
            "/applications/app1/devices/d-{}/state",
            i % DEVICES
        ))
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {}", tokens[i % DEVICES]))
        .body(Full::new(Bytes::from_static(
            br#"{"temperature": 21.5, "speed": 88}"#,
        )))
        .unwrap()
    };
    let login = move |i: usize| {
        Request::post("/auth/device")
            .header("host", "127.0.0.1")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(bodies[i % DEVICES].clone())))
            .unwrap()
    };
    let (mut auth, mut base, mut auth_p99, mut base_p99, mut ratios) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut logins, mut login_p99) = (vec![], vec![]);
    for round in 0..rounds {
        let run = |port| load(port, connections, seconds, state, 202);
        let open_port = if aa { with.port } else { open.port };
        let ((r, p), (rb, pb)) = if round % 2 == 0 {
            let first = run(with.port);
            (first, run(open_port))
        } else {
            let first = run(open_port);
            (run(with.port), first)
        };
        auth.push(r);
        auth_p99.push(p);
        base.push(rb);
        base_p99.push(pb);
        ratios.push(r / rb);
        let (r, p) = load(with.port, connections, seconds, login, 200);
        logins.push(r);
        login_p99.push(p);
    }
    drop(with);
    drop(open);
    let _ = std::fs::remove_dir_all(&dir);
    let spread = {
        let mut r = ratios.clone();
        r.sort_by(f64::total_cmp);
        format!("{:.3} .. {:.3}", r[0], r[r.len() - 1])
    };
    println!(
        "structure-http, {connections} connections, medians of {rounds} rounds of {seconds} s:"
    );
    println!(
        "  POST …/state with a device token:  {:>8.0} req/s  p99 {:>6.2} ms",
        median(auth),
        median(auth_p99)
    );
    println!(
        "  POST …/state, no authentication:   {:>8.0} req/s  p99 {:>6.2} ms",
        median(base),
        median(base_p99)
    );
    println!(
        "  token ÷ no authentication, per round: median {:.3} (rounds {spread})",
        median(ratios)
    );
    println!(
        "  POST /auth/device, generated secret: {:>6.0} req/s  p99 {:>6.2} ms",
        median(logins),
        median(login_p99)
    );
}

/// One login over a plain TCP connection: the token.
fn login_blocking(port: u16, body: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "POST /auth/device HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let json = answer.split("\r\n\r\n").nth(1).unwrap();
    let value: serde_json::Value = serde_json::from_str(json).unwrap();
    value["token"].as_str().unwrap().to_owned()
}
