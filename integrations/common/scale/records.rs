//! Records at a platform's size, for the brokers' load generators (included
//! by path from their examples): KEYS keys with generated secrets (fast
//! verifiers; 10% restricted to a tag, 10% to device IDs), DEVICES devices of
//! 3 tags each, spread over APPS applications (APPS divides 1 000, and
//! DEVICES is a multiple of 1 000).
//!
//! Device `dev-{i}` belongs to application `i % APPS` and has the tags
//! `fleet=f-{i % 1000}` (so a fleet's devices share an application),
//! `floor=fl-{i % 50}` and `site=s-{i % 20}`. Keys come in tens per
//! application, in turn: key `k` belongs to application `(k / 10) % APPS`;
//! `k % 10 == 1` is restricted to one fleet of its application, `k % 10 == 2`
//! to 8 device IDs of it, the others are unrestricted.

use std::io::Write;

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use structure_access::{AccessKey, HashPolicy, Restriction, Scope};

/// The credentials of one key: its id and secret.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub key: String,
    pub secret: String,
}

/// The name of application `a`.
pub fn application(a: usize) -> String {
    format!("app-{a:0>6}")
}

/// The application of key `k`.
pub fn key_application(k: usize, apps: usize) -> usize {
    (k / 10) % apps
}

/// The fleet a tag-restricted key `k` is restricted to (one of its
/// application's).
pub fn key_fleet(k: usize, apps: usize) -> usize {
    (key_application(k, apps) + apps * (k / (10 * apps))) % 1000
}

/// The line of device `i` in the devices file, with `fleet` as its fleet.
pub fn device_line(i: usize, apps: usize, fleet: usize) -> String {
    format!(
        "{{\"id\":\"dev-{i}\",\"application\":\"{}\",\"tags\":[{{\"key\":\"fleet\",\"value\":\"f-{fleet}\"}},{{\"key\":\"floor\",\"value\":\"fl-{}\"}},{{\"key\":\"site\",\"value\":\"s-{}\"}}]}}\n",
        application(i % apps),
        i % 50,
        i % 20
    )
}

/// The scope of key `k`, among `devices` devices.
pub fn scope(k: usize, apps: usize, devices: usize) -> Scope {
    let app = key_application(k, apps);
    match k % 10 {
        1 => format!("fleet=f-{}", key_fleet(k, apps))
            .parse::<Restriction>()
            .unwrap()
            .into(),
        2 => (0..8)
            .map(|j| format!("dev-{}", (app + apps * (k / 10 + j * 7919)) % devices))
            .collect::<Vec<_>>()
            .join(",")
            .parse::<Restriction>()
            .unwrap()
            .into(),
        _ => Scope::Unrestricted,
    }
}

/// The keys file and the devices file.
#[derive(Debug, Clone)]
pub struct Files {
    pub keys: std::path::PathBuf,
    pub devices: std::path::PathBuf,
}

/// Writes `keys` key lines and `devices` device lines to `files`; returns
/// every key's line and credentials.
pub fn write(
    files: &Files,
    keys: usize,
    devices: usize,
    apps: usize,
) -> Vec<(String, Credentials)> {
    assert!(1000 % apps == 0 && devices.is_multiple_of(1000) && devices > 0);
    let policy = HashPolicy::default();
    let mut rng = ChaCha20Rng::seed_from_u64(21);
    let mut made = Vec::with_capacity(keys);
    let mut out = std::io::BufWriter::new(std::fs::File::create(&files.keys).unwrap());
    for k in 0..keys {
        let new = AccessKey::generate(
            &mut rng,
            application(key_application(k, apps)).parse().unwrap(),
            scope(k, apps, devices),
            &policy,
        )
        .unwrap();
        let line = serde_json::to_string(&new.record).unwrap() + "\n";
        out.write_all(line.as_bytes()).unwrap();
        made.push((
            line,
            Credentials {
                key: new.record.key().to_string(),
                secret: new.secret.expose_secret().to_owned(),
            },
        ));
    }
    out.flush().unwrap();
    let mut out = std::io::BufWriter::new(std::fs::File::create(&files.devices).unwrap());
    for i in 0..devices {
        out.write_all(device_line(i, apps, i % 1000).as_bytes())
            .unwrap();
    }
    out.flush().unwrap();
    made
}

/// A new key of application `app` (unrestricted): its line and credentials.
pub fn new_key(app: usize, seed: u64) -> (String, Credentials) {
    let new = AccessKey::generate(
        &mut ChaCha20Rng::seed_from_u64(seed),
        application(app).parse().unwrap(),
        Scope::Unrestricted,
        &HashPolicy::default(),
    )
    .unwrap();
    (
        serde_json::to_string(&new.record).unwrap() + "\n",
        Credentials {
            key: new.record.key().to_string(),
            secret: new.secret.expose_secret().to_owned(),
        },
    )
}

/// Rewrites the keys file from `lines`, leaving out key `skip` (if any),
/// whole then renamed.
pub fn rewrite_keys(files: &Files, lines: &[String], skip: Option<usize>) {
    let tmp = files.keys.with_extension("tmp");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp).unwrap());
    for (k, line) in lines.iter().enumerate() {
        if Some(k) != skip {
            out.write_all(line.as_bytes()).unwrap();
        }
    }
    out.flush().unwrap();
    drop(out);
    std::fs::rename(&tmp, &files.keys).unwrap();
}

/// Rewrites the devices file with device `moved` in fleet `fleet`, whole
/// then renamed.
pub fn rewrite_devices(files: &Files, devices: usize, apps: usize, moved: usize, fleet: usize) {
    let tmp = files.devices.with_extension("tmp");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp).unwrap());
    for i in 0..devices {
        let f = if i == moved { fleet } else { i % 1000 };
        out.write_all(device_line(i, apps, f).as_bytes()).unwrap();
    }
    out.flush().unwrap();
    drop(out);
    std::fs::rename(&tmp, &files.devices).unwrap();
}
