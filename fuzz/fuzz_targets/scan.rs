//! `scan` over arbitrary bytes: never panics; every finding is a valid, bounded
//! secret (or key id) that shows no more than its prefix and 4 characters; and
//! a secret planted between two non-base62 bytes is found where it was put.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use structure_access::{FindingKind, KeyId, Scanner, Secret, scan};

fuzz_target!(|data: &[u8]| {
    let mut last_end = 0;
    for finding in Scanner::new().with_key_ids(true).scan(data) {
        let range = finding.range();
        assert!(range.start >= last_end || finding.kind() == FindingKind::KeyId);
        let text = std::str::from_utf8(&data[range.clone()]).unwrap();
        match finding.kind() {
            FindingKind::Secret => {
                assert_eq!(finding.secret().unwrap().expose_secret(), text);
                last_end = range.end;
            }
            _ => assert_eq!(finding.key_id(), text.parse::<KeyId>().ok()),
        }
        assert!(range.start == 0 || !data[range.start - 1].is_ascii_alphanumeric());
        assert!(data.get(range.end).is_none_or(|b| !b.is_ascii_alphanumeric()));
        assert!(!format!("{finding:?}{finding}").contains(&text[..9]));
    }

    let seed = data.iter().fold(0u64, |h, &b| h.rotate_left(5) ^ u64::from(b));
    let secret = Secret::generate(&mut ChaCha20Rng::seed_from_u64(seed));
    let cut = data.len() / 2;
    let mut planted = data[..cut].to_vec();
    planted.push(b'\n');
    let at = planted.len();
    planted.extend_from_slice(secret.expose_secret().as_bytes());
    planted.push(b'"');
    planted.extend_from_slice(&data[cut..]);
    assert!(scan(&planted).any(|f| f.offset() == at && f.secret() == Some(secret.clone())));
});
