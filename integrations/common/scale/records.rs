//! Records at a platform's size, for the brokers' load generators (included
//! by path from their examples): KEYS keys with generated secrets (fast
//! verifiers; 10% restricted to a tag, 10% to device IDs), DEVICES devices of
//! 3 tags each, spread over APPS applications.
//!
//! Device `dev-{i}` belongs to application `app-{i % APPS}` and has the tags
//! `fleet=f-{i % 1000}`, `floor=fl-{i % 50}` and `site=s-{i % 20}`; key `k`
//! belongs to `app-{k % APPS}`: every 10th key (k % 10 == 1) is restricted to
//! `fleet=f-{k % 1000}`, every 10th (k % 10 == 2) to 8 device IDs of its
//! application.

use std::io::Write;
use std::path::Path;

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use structure_access::{AccessKey, HashPolicy, Restriction, Scope};

/// The credentials of one key: its id and secret.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub key: String,
    pub secret: String,
}

/// The application of device `i` (and key `i`).
pub fn application(i: usize, apps: usize) -> String {
    format!("app-{:0>6}", i % apps)
}

/// The line of device `i` in the devices file, with `fleet` as its fleet.
pub fn device_line(i: usize, apps: usize, fleet: usize) -> String {
    format!(
        "{{\"id\":\"dev-{i}\",\"application\":\"{}\",\"tags\":[{{\"key\":\"fleet\",\"value\":\"f-{fleet}\"}},{{\"key\":\"floor\",\"value\":\"fl-{}\"}},{{\"key\":\"site\",\"value\":\"s-{}\"}}]}}\n",
        application(i, apps),
        i % 50,
        i % 20
    )
}

/// The scope of key `k`.
pub fn scope(k: usize, apps: usize) -> Scope {
    match k % 10 {
        1 => format!("fleet=f-{}", k % 1000)
            .parse::<Restriction>()
            .unwrap()
            .into(),
        2 => (0..8)
            .map(|j| format!("dev-{}", (k + j * apps) % 1_000_000))
            .collect::<Vec<_>>()
            .join(",")
            .parse::<Restriction>()
            .unwrap()
            .into(),
        _ => Scope::Unrestricted,
    }
}

/// Writes `keys` key lines to `dir/keys` and `devices` device lines to
/// `dir/devices`; returns every key's line and credentials.
pub fn write(dir: &Path, keys: usize, devices: usize, apps: usize) -> Vec<(String, Credentials)> {
    let policy = HashPolicy::default();
    let mut rng = ChaCha20Rng::seed_from_u64(21);
    let mut made = Vec::with_capacity(keys);
    let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join("keys")).unwrap());
    for k in 0..keys {
        let new = AccessKey::generate(
            &mut rng,
            application(k, apps).parse().unwrap(),
            scope(k, apps),
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
    let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join("devices")).unwrap());
    for i in 0..devices {
        out.write_all(device_line(i, apps, i % 1000).as_bytes()).unwrap();
    }
    out.flush().unwrap();
    made
}

/// Rewrites `dir/keys` from `lines`, leaving out key `skip` (if any).
pub fn rewrite_keys(dir: &Path, lines: &[String], skip: Option<usize>) {
    let tmp = dir.join(".keys.tmp");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp).unwrap());
    for (k, line) in lines.iter().enumerate() {
        if Some(k) != skip {
            out.write_all(line.as_bytes()).unwrap();
        }
    }
    out.flush().unwrap();
    drop(out);
    std::fs::rename(&tmp, dir.join("keys")).unwrap();
}

/// Rewrites `dir/devices` with device `moved` in fleet `fleet`.
pub fn rewrite_devices(dir: &Path, devices: usize, apps: usize, moved: usize, fleet: usize) {
    let tmp = dir.join(".devices.tmp");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp).unwrap());
    for i in 0..devices {
        let f = if i == moved { fleet } else { i % 1000 };
        out.write_all(device_line(i, apps, f).as_bytes()).unwrap();
    }
    out.flush().unwrap();
    drop(out);
    std::fs::rename(&tmp, dir.join("devices")).unwrap();
}
