//! Peak memory stays flat however many cold authentications run.
//!
//! The test runs itself as a child process twice, once authenticating 1 time and
//! once 50 times at the default parameters (m = 19456 KiB), and compares the
//! children's peak resident set size (`VmHWM`). Plain Argon2 APIs allocate the
//! block memory per call; under glibc the peak then grows with every call
//! (21 MiB after one, 138 MiB after fifty, measured on this project's machines).
#![cfg(target_os = "linux")]

use std::process::Command;

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use structure_access::{AccessKey, Authenticator, DeviceRecord, HashPolicy, Scope, Secret};

/// The application of every key and device here.
const APP: &str = "app1";

const CHILD: &str = "STRUCTURE_ACCESS_RSS_CHILD";
const BOUND_CHILD: &str = "STRUCTURE_ACCESS_RSS_BOUND_CHILD";

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Argon2id at the default parameters, for generated secrets too: the memory
/// of Argon2 is what this test watches.
fn argon2_policy() -> HashPolicy {
    HashPolicy::default().argon2id_for_generated(true)
}

fn child(rounds: usize) {
    let policy = argon2_policy();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let new =
        AccessKey::generate(&mut rng, APP.parse().unwrap(), Scope::Unrestricted, &policy).unwrap();
    let wrong = Secret::generate(&mut rng);
    let auth = Authenticator::new(policy).with_pool_size(1);
    let device = DeviceRecord::new(APP.parse().unwrap(), "dev-1".parse().unwrap());
    // Contrast mode: the per-call allocating API instead of the pool.
    let fresh = std::env::var("RSS_FRESH").is_ok();
    for round in 0..rounds {
        if fresh {
            let _ = new.record.verifier().verify(&new.secret, &argon2_policy());
            let _ = new.record.verifier().verify(&new.secret, &argon2_policy());
            continue;
        }
        let secret = if round % 2 == 0 { &new.secret } else { &wrong };
        let _ = auth.authenticate(new.record.key(), Some(&new.record), secret, &device);
        let _ = auth.authenticate(new.record.key(), None, secret, &device);
    }
    println!("VmHWM_KIB={}", peak_rss_kib());
}

/// Verifications at the default bound: argon2-cffi's default hash (m=65536,
/// t=3, p=4, from `tests/data/argon2_vectors.txt`) of an imported key.
fn bound_child(rounds: usize) {
    let vectors = include_str!("data/argon2_vectors.txt");
    let mut fields = vectors.lines().nth(1).unwrap().split('\t').skip(1);
    let (secret, phc) = (fields.next().unwrap(), fields.next().unwrap());
    let record = AccessKey::new(
        "6a1f8a3e-3b0c-4d7e-9f51-2c1b6f3e9a10".parse().unwrap(),
        APP.parse().unwrap(),
        phc.parse().unwrap(),
        Scope::Unrestricted,
    );
    let secret = Secret::imported(secret).unwrap();
    let auth = Authenticator::new(HashPolicy::default()).with_pool_size(1);
    let device = DeviceRecord::new(APP.parse().unwrap(), "dev-1".parse().unwrap());
    for _ in 0..rounds {
        auth.authenticate(record.key(), Some(&record), &secret, &device)
            .unwrap();
    }
    println!("VmHWM_KIB={}", peak_rss_kib());
}

fn run(rounds: usize, fresh: bool) -> u64 {
    run_child("peak_rss_is_flat", CHILD, rounds, fresh)
}

fn run_child(test: &str, child: &str, rounds: usize, fresh: bool) -> u64 {
    let mut command = Command::new(std::env::current_exe().unwrap());
    if fresh {
        command.env("RSS_FRESH", "1");
    }
    let out = command
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(child, rounds.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("VmHWM_KIB=").map(|(_, figure)| figure))
        .unwrap_or_else(|| panic!("child printed no figure: {stdout}"));
    line.trim().parse().unwrap()
}

#[test]
fn peak_rss_is_flat() {
    if let Ok(rounds) = std::env::var(CHILD) {
        child(rounds.parse().unwrap());
        return;
    }
    let one = run(1, false);
    let fifty = run(25, false); // 25 rounds × (record + unknown key) = 50 verifications
    // For contrast, not asserted: `Verifier::verify` allocates per call.
    let fresh = run(25, true);
    eprintln!(
        "peak RSS: {one} KiB after 2 verifications, {fifty} KiB after 50; \
         {fresh} KiB after 50 with per-call allocation"
    );
    // Generation allocates its own buffer once; verifications reuse the pool's.
    assert!(one >= 19 * 1024, "{one}");
    assert!(fifty <= one + 4 * 1024, "{one} KiB vs {fifty} KiB");
}

/// A verification at the default bound (64 MiB) takes 64 MiB while it runs,
/// and gives it back: ten of them peak where one does.
#[test]
fn peak_rss_at_the_default_bound() {
    if let Ok(rounds) = std::env::var(BOUND_CHILD) {
        bound_child(rounds.parse().unwrap());
        return;
    }
    let baseline = run_child("peak_rss_at_the_default_bound", BOUND_CHILD, 0, false);
    let one = run_child("peak_rss_at_the_default_bound", BOUND_CHILD, 1, false);
    let ten = run_child("peak_rss_at_the_default_bound", BOUND_CHILD, 10, false);
    eprintln!(
        "peak RSS at the default bound (m=65536, t=3, p=4): {baseline} KiB before any \
         verification, {one} KiB after 1, {ten} KiB after 10"
    );
    assert!(one >= baseline + 60 * 1024, "{baseline} KiB vs {one} KiB");
    assert!(one <= baseline + 72 * 1024, "{baseline} KiB vs {one} KiB");
    assert!(ten <= one + 4 * 1024, "{one} KiB vs {ten} KiB");
}
