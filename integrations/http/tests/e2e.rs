//! The reference server, started as a process and driven with curl: every
//! route, restricted and unrestricted keys, two applications, expired,
//! tampered and retired-key tokens, a deleted key, and the audit trail.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use structure_access::{Authenticator, DeviceRecord, HashPolicy, Scope, UnixTime};
use structure_access_tokens::Issuer;
use support::*;

fn login(server: &HttpServer, device: &str, key: &Key) -> (u16, String) {
    let body = serde_json::json!({ "deviceId": device, "key": key.id, "secret": key.secret });
    let (status, _, body) = curl(
        "POST",
        &server.url("/auth/device"),
        None,
        Some(&body.to_string()),
    );
    (status, body)
}

fn token_of(server: &HttpServer, device: &str, key: &Key) -> String {
    let (status, body) = login(server, device, key);
    assert_eq!(status, 200, "{body}");
    json(&body)["token"].as_str().unwrap().to_owned()
}

fn state(server: &HttpServer, app: &str, device: &str, token: Option<&str>) -> u16 {
    curl(
        "POST",
        &server.url(&format!("/applications/{app}/devices/{device}/state")),
        token,
        Some(r#"{"temperature": 21.5}"#),
    )
    .0
}

fn audit_events(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn wait_audit(path: &std::path::Path, event: &str, reason: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let events = audit_events(path);
        if events
            .iter()
            .any(|e| e["event"] == event && e["reason"] == reason)
        {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "no {event} {reason} in {events:#?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_reference_server_enforces_keys_scopes_and_tokens() {
    let dir = work_dir("e2e");
    let mut rng = rng(11);
    let unrestricted = key(&mut rng, "app1", Scope::Unrestricted);
    let gateway = key(&mut rng, "app1", restricted("gw,kind=truck"));
    let other_app = key(&mut rng, "app2", Scope::Unrestricted);
    let keys = [&unrestricted, &gateway, &other_app];
    write_lines(
        &dir.join("keys.jsonl"),
        &keys.iter().map(|k| k.line.clone()).collect::<Vec<_>>(),
    );
    write_lines(
        &dir.join("devices.jsonl"),
        &[
            device_line("app1", "gw", "gateway"),
            device_line("app1", "truck-1", "truck"),
            device_line("app1", "car-1", "car"),
            device_line("app2", "other-1", "truck"),
        ],
    );
    let (signing, signing_key) = signing_key(&dir, "signing.key", 1);
    let (_, retired) = signing_key_file(&dir, "retired.key", 2);
    let audit = dir.join("audit.jsonl");
    let audit_arg = audit.display().to_string();
    let server = start(
        &dir,
        &signing,
        &[
            "--audit-file",
            &audit_arg,
            "--reload-interval-ms",
            "50",
            "--refusal-delay-ms",
            "0",
            "--max-body",
            "4096",
        ],
    );

    // POST /auth/device: accepted, with Losant's answer and a request id.
    let body = serde_json::json!({ "deviceId": "truck-1", "key": unrestricted.id, "secret": unrestricted.secret });
    let (status, head, answer) = curl(
        "POST",
        &server.url("/auth/device"),
        None,
        Some(&body.to_string()),
    );
    assert_eq!(status, 200, "{answer}");
    assert!(head.contains("x-request-id: "), "{head}");
    let answer = json(&answer);
    assert_eq!(answer["applicationId"], "app1");
    assert_eq!(answer["deviceId"], "truck-1");
    let truck_token = answer["token"].as_str().unwrap().to_owned();
    assert!(truck_token.starts_with("v4.public."), "{truck_token}");
    let expires: UnixTime = answer["expiresAt"].as_str().unwrap().parse().unwrap();
    assert!(expires.as_secs() > UnixTime::now().as_secs() + 3500);

    // Every refusal: the same 401 and body.
    let mut wrong = unrestricted.clone();
    wrong.secret = gateway.secret.clone();
    let unknown = key(&mut rng, "app1", Scope::Unrestricted);
    for (device, key, reason) in [
        ("truck-1", &wrong, "wrong_secret"),
        ("truck-1", &unknown, "unknown_key"),
        ("other-1", &unrestricted, "wrong_application"),
        ("car-1", &gateway, "out_of_scope"),
        ("nobody", &unrestricted, "unknown_device"),
    ] {
        let (status, body) = login(&server, device, key);
        assert_eq!(
            (status, json(&body)),
            (401, serde_json::json!({"error": "bad credentials"})),
            "{reason}"
        );
        wait_audit(&audit, "auth_refused", reason);
    }
    // Malformed and oversized bodies.
    let url = server.url("/auth/device");
    let (status, _, body) = curl("POST", &url, None, Some("{\"deviceId\": "));
    assert_eq!(status, 400);
    assert!(
        json(&body)["error"]
            .as_str()
            .unwrap()
            .starts_with("malformed JSON at line 1"),
        "{body}"
    );
    let (status, _, body) = curl(
        "POST",
        &url,
        None,
        Some(r#"{"deviceId": "d", "key": "k", "secret": "s", "x": 1}"#),
    );
    assert_eq!(status, 400);
    assert!(
        json(&body)["error"]
            .as_str()
            .unwrap()
            .contains("expected {\"deviceId\""),
        "{body}"
    );
    let big = format!("{{\"deviceId\": \"{}\"}}", "a".repeat(5000));
    assert_eq!(curl("POST", &url, None, Some(&big)).0, 413);

    // The unrestricted key's device: any device of its application, not
    // another application's.
    assert_eq!(state(&server, "app1", "truck-1", Some(&truck_token)), 202);
    assert_eq!(state(&server, "app1", "car-1", Some(&truck_token)), 202);
    assert_eq!(state(&server, "app2", "other-1", Some(&truck_token)), 403);
    assert_eq!(state(&server, "app1", "other-1", Some(&truck_token)), 403);
    assert_eq!(state(&server, "app1", "nobody", Some(&truck_token)), 403);
    let (status, _, body) = curl(
        "GET",
        &server.url("/applications/app1/devices"),
        Some(&truck_token),
        None,
    );
    assert_eq!(status, 200);
    let mut listed: Vec<_> = json(&body)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["deviceId"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    assert_eq!(listed, ["car-1", "gw", "truck-1"]);
    assert_eq!(
        curl(
            "GET",
            &server.url("/applications/app2/devices"),
            Some(&truck_token),
            None
        )
        .0,
        403
    );

    // The restricted gateway: itself and the trucks, not the car.
    let gw_token = token_of(&server, "gw", &gateway);
    assert_eq!(state(&server, "app1", "gw", Some(&gw_token)), 202);
    assert_eq!(state(&server, "app1", "truck-1", Some(&gw_token)), 202);
    assert_eq!(state(&server, "app1", "car-1", Some(&gw_token)), 403);
    let (_, _, body) = curl(
        "GET",
        &server.url("/applications/app1/devices"),
        Some(&gw_token),
        None,
    );
    let mut listed: Vec<_> = json(&body)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["deviceId"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    assert_eq!(listed, ["gw", "truck-1"]);
    // The other application's key sees its own only.
    let other_token = token_of(&server, "other-1", &other_app);
    assert_eq!(state(&server, "app2", "other-1", Some(&other_token)), 202);
    assert_eq!(state(&server, "app1", "truck-1", Some(&other_token)), 403);

    // Bodies of the state route.
    let state_url = server.url("/applications/app1/devices/truck-1/state");
    let (status, _, body) = curl("POST", &state_url, Some(&truck_token), Some("[1, 2]"));
    assert_eq!(status, 400, "{body}");
    let (status, _, body) = curl("POST", &state_url, Some(&truck_token), Some("{oops"));
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        curl("POST", &state_url, Some(&truck_token), Some(&big)).0,
        413
    );

    // Without a token, with a malformed, a tampered, an expired one, or one
    // signed by a key this server does not hold: 401, and the audit says why.
    let (status, head, body) = curl("POST", &state_url, None, Some("{}"));
    assert_eq!(
        (status, json(&body)),
        (401, serde_json::json!({"error": "invalid token"}))
    );
    assert!(head.contains("www-authenticate: bearer"), "{head}");
    assert_eq!(
        state(&server, "app1", "truck-1", Some("v4.public.abc")),
        401
    );
    let mut tampered = truck_token.clone().into_bytes();
    let middle = tampered.len() / 2;
    tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(state(&server, "app1", "truck-1", Some(&tampered)), 401);
    wait_audit(&audit, "token_refused", "token_bad_signature");
    // Signed by the test with the server's own key: issued two hours ago.
    let policy = HashPolicy::default();
    let truck = DeviceRecord::new("app1".parse().unwrap(), "truck-1".parse().unwrap())
        .with_tag("kind", "truck");
    let (record, secret) = record_of(&unrestricted);
    let principal = Authenticator::new(policy)
        .authenticate(record.key(), Some(&record), &secret, &truck)
        .unwrap();
    let long_ago = UnixTime::from_secs(UnixTime::now().as_secs() - 7200).unwrap();
    let expired = Issuer::new(signing_key.clone(), "structure-http")
        .unwrap()
        .issue(&principal, &record, long_ago)
        .unwrap()
        .token;
    assert_eq!(
        state(&server, "app1", "truck-1", Some(expired.expose())),
        401
    );
    wait_audit(&audit, "token_refused", "token_expired");
    let by_retired = Issuer::new(retired.clone(), "structure-http")
        .unwrap()
        .issue(&principal, &record, UnixTime::now())
        .unwrap()
        .token;
    assert_eq!(
        state(&server, "app1", "truck-1", Some(by_retired.expose())),
        401
    );
    wait_audit(&audit, "token_refused", "token_unknown_signing_key");
    // Another audience's token, signed with the right key.
    let elsewhere = Issuer::new(signing_key.clone(), "another-service")
        .unwrap()
        .issue(&principal, &record, UnixTime::now())
        .unwrap()
        .token;
    assert_eq!(
        state(&server, "app1", "truck-1", Some(elsewhere.expose())),
        401
    );
    wait_audit(&audit, "token_refused", "token_wrong_audience");

    // The unrestricted key deleted: its token stops working once the
    // server has read the file (it looks every 50 ms).
    write_lines(
        &dir.join("keys.jsonl"),
        &[gateway.line.clone(), other_app.line.clone()],
    );
    let deleted_at = Instant::now();
    while state(&server, "app1", "truck-1", Some(&truck_token)) != 401 {
        assert!(
            deleted_at.elapsed() < Duration::from_secs(5),
            "the deleted key's token still works"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    println!(
        "a deleted key's token refused {:?} after the file changed",
        deleted_at.elapsed()
    );
    wait_audit(&audit, "token_refused", "token_key_gone");
    // The gateway's token still works.
    assert_eq!(state(&server, "app1", "truck-1", Some(&gw_token)), 202);

    // The audit trail: every token issued is there, and no secret or token
    // anywhere in it or in the log.
    let events = audit_events(&audit);
    let issued = events
        .iter()
        .filter(|e| e["event"] == "token_issued")
        .count();
    assert_eq!(issued, 3, "{events:#?}");
    assert!(events.iter().any(|e| e["event"] == "records_applied"));
    assert!(events.iter().all(|e| e["broker"] == "http"));
    let text = std::fs::read_to_string(&audit).unwrap() + &server.log();
    for secret in keys
        .iter()
        .map(|k| k.secret.as_str())
        .chain([unknown.secret.as_str()])
    {
        assert!(!text.contains(secret), "a secret in the audit trail or log");
    }
    for token in [&truck_token, &gw_token, &other_token] {
        assert!(
            !text.contains(&token["v4.public.".len()..][..40]),
            "a token in the audit trail or log"
        );
    }
    // Every log line of a request names its request id.
    assert!(server.log().contains("request{id="), "{}", server.log());
    drop(server);

    // Signing-key rotation: a server signing with the new key, still
    // accepting the old one's tokens.
    let (new_signing, _) = signing_key_file(&dir, "new.key", 3);
    let verification = dir.join("verification.keys");
    std::fs::write(
        &verification,
        signing_key.verifying_key().to_paserk() + "\n",
    )
    .unwrap();
    let verification_arg = verification.display().to_string();
    let rotated = start(
        &dir,
        &new_signing,
        &["--verification-keys", &verification_arg],
    );
    assert_eq!(state(&rotated, "app1", "truck-1", Some(&gw_token)), 202);
    let new_gw_token = token_of(&rotated, "gw", &gateway);
    assert_eq!(state(&rotated, "app1", "truck-1", Some(&new_gw_token)), 202);
    drop(rotated);
    // The old key retired: its tokens refused, the new key's accepted.
    let retired_server = start(&dir, &new_signing, &[]);
    assert_eq!(
        state(&retired_server, "app1", "truck-1", Some(&gw_token)),
        401
    );
    assert_eq!(
        state(&retired_server, "app1", "truck-1", Some(&new_gw_token)),
        202
    );
    drop(retired_server);
    let _ = std::fs::remove_dir_all(&dir);
}

fn signing_key_file(
    dir: &std::path::Path,
    name: &str,
    seed: u8,
) -> (std::path::PathBuf, structure_access_tokens::SigningKey) {
    signing_key(dir, name, seed)
}

/// The record and secret of `key` (parsed back from its line).
fn record_of(key: &Key) -> (structure_access::AccessKey, structure_access::Secret) {
    (
        serde_json::from_str(&key.line).unwrap(),
        key.secret.parse().unwrap(),
    )
}
