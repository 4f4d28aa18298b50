//! Scan throughput: `scan` over 100 MiB of source-like text holding a few
//! secrets (as they are, in base64 and in UTF-16), with the decoding passes on
//! (the default) and off, and `Scanner::scan_stream` over the same bytes in
//! windows of 1 MiB (what `keytool scan` does with a file), beside `grep -cE`
//! (and `rg -c`, if installed) running the README's regular expression over
//! the same file, in the same run.
//!
//! ```text
//! cargo run --release --example scan_bench [MiB]
//! ```

use std::process::Command;
use std::time::Instant;

use base64ct::{Base64, Encoding as _};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use structure_access::{DEFAULT_SCAN_WINDOW, FindingEncoding, Scanner, Secret, scan};

const ERE: &str = "(^|[^0-9A-Za-z])sts_[0-9A-Za-z]{49}([^0-9A-Za-z]|$)";
const PLANTED: usize = 8;
/// Of which in base64 (a Kubernetes value, a Basic header) and in UTF-16.
const PLANTED_BASE64: usize = 2;
const PLANTED_UTF16: usize = 1;

fn main() {
    let mib: usize = std::env::args().nth(1).map_or(100, |a| a.parse().unwrap());
    let text = corpus(mib << 20);
    let path = std::env::temp_dir().join(format!("scan-bench-{}.txt", std::process::id()));
    std::fs::write(&path, &text).unwrap();
    let size = text.len() as f64 / f64::from(1 << 20);

    let timed = |what: &str, run: &dyn Fn() -> Vec<FindingEncoding>| {
        let mut best = f64::MAX;
        for _ in 0..5 {
            let start = Instant::now();
            let found = run();
            best = best.min(start.elapsed().as_secs_f64());
            assert_eq!(found.len(), PLANTED, "{what}");
            let encoded = |e: &[FindingEncoding]| found.iter().filter(|f| e.contains(f)).count();
            assert_eq!(
                encoded(&[FindingEncoding::Base64]),
                PLANTED_BASE64,
                "{what}"
            );
            assert_eq!(
                encoded(&[FindingEncoding::Utf16Le, FindingEncoding::Utf16Be]),
                PLANTED_UTF16,
                "{what}"
            );
        }
        println!("{what}: {:>8.0} MiB/s (best of 5)", size / best);
    };
    println!(
        "corpus: {size:.0} MiB, {PLANTED} secrets ({PLANTED_BASE64} in base64, {PLANTED_UTF16} in UTF-16), {}",
        path.display()
    );
    timed("scan, decoding on (default), in memory", &|| {
        scan(&text).map(|f| f.encoding()).collect()
    });
    let plain = Scanner::new().with_decoding(false);
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        let found = plain.scan(&text).count();
        best = best.min(start.elapsed().as_secs_f64());
        assert_eq!(found, PLANTED - PLANTED_BASE64 - PLANTED_UTF16);
    }
    println!(
        "scan, decoding off, in memory: {:>8.0} MiB/s (best of 5)",
        size / best
    );
    timed("scan_stream, 1 MiB windows (keytool)", &|| {
        let scanner = Scanner::new();
        let mut rest = &text[..];
        let read = |buffer: &mut [u8]| -> Result<usize, ()> {
            let n = buffer.len().min(rest.len());
            buffer[..n].copy_from_slice(&rest[..n]);
            rest = &rest[n..];
            Ok(n)
        };
        let mut found = Vec::new();
        scanner
            .scan_stream(DEFAULT_SCAN_WINDOW, read, |w| {
                found.extend(w.findings().map(|f| f.encoding()))
            })
            .unwrap();
        found
    });

    for (name, program, args) in [
        ("grep -cE", "grep", vec!["-cE", ERE]),
        ("rg -c", "rg", vec!["-c", ERE]),
    ] {
        let mut best = f64::MAX;
        let mut output = None;
        for _ in 0..3 {
            let start = Instant::now();
            let Ok(out) = Command::new(program).args(&args).arg(&path).output() else {
                break;
            };
            best = best.min(start.elapsed().as_secs_f64());
            output = Some(out);
        }
        match output {
            Some(out) => println!(
                "{name}: {:>8.0} MiB/s (best of 3, file in page cache; {} matching lines)",
                size / best,
                String::from_utf8_lossy(&out.stdout).trim()
            ),
            None => println!("{name}: not installed"),
        }
    }
    std::fs::remove_file(&path).unwrap();
}

/// Lines of Rust-, YAML- and JSON-like text, with `sts_` near misses, and
/// `PLANTED` valid secrets spread through it.
fn corpus(size: usize) -> Vec<u8> {
    let lines = [
        "    let client_id = config.device_id.as_str();",
        "fn handle_state(topic: &str, payload: &[u8]) -> Result<(), Error> {",
        "  password: ${MQTT_PASSWORD}",
        "    \"deviceTags\": [{\"key\": \"vehicle\", \"value\": \"truck\"}],",
        "// sts_ prefixed secrets are scanned for; see SECURITY.md",
        "    assert_eq!(parsed.key().as_str(), \"stk_4DmVJcy3ZpW0gNqk8TbX2a\");",
        "        .map(|entry| entry.trim_end_matches(['\\r', '\\n']))",
        "import { connect } from 'mqtt'; // costs_total, hosts_file",
        "",
        "    }",
    ];
    let mut text = Vec::with_capacity(size + 4096);
    let mut rng = ChaCha20Rng::seed_from_u64(15);
    let mut i = 0usize;
    let every = size / PLANTED;
    let mut planted = 0;
    while text.len() < size {
        if text.len() >= planted * every + every / 2 && planted < PLANTED {
            let secret = Secret::generate(&mut rng);
            let secret = secret.expose_secret();
            match planted {
                1 => {
                    text.extend_from_slice(b"  password: ");
                    text.extend_from_slice(Base64::encode_string(secret.as_bytes()).as_bytes());
                }
                4 => {
                    text.extend_from_slice(b"Authorization: Basic ");
                    let credentials = format!("stk_4DmVJcy3ZpW0gNqk8TbX2a:{secret}");
                    text.extend_from_slice(
                        Base64::encode_string(credentials.as_bytes()).as_bytes(),
                    );
                }
                6 => {
                    // A UTF-16LE line, at an even offset.
                    if text.len() % 2 == 1 {
                        text.push(b' ');
                    }
                    for unit in format!("password={secret}\r").encode_utf16() {
                        text.extend_from_slice(&unit.to_le_bytes());
                    }
                }
                _ => {
                    text.extend_from_slice(b"MQTT_PASSWORD=");
                    text.extend_from_slice(secret.as_bytes());
                }
            }
            text.push(b'\n');
            planted += 1;
        }
        text.extend_from_slice(lines[(i * 7 + i / 10) % lines.len()].as_bytes());
        text.push(b'\n');
        i += 1;
    }
    text
}
