//! `scan` over a corpus of mixed text with planted secrets and near misses, the
//! README's regular expression and checksum rule over the same corpus, and
//! arbitrary bytes.

use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use regex::bytes::Regex;
use structure_access::{FindingKind, Scanner, Secret, scan};

/// The rule for other scanners, as the README gives it (checked below).
const REGEX: &str = "(?:^|[^0-9A-Za-z])(sts_[0-9A-Za-z]{49})(?:[^0-9A-Za-z]|$)";
/// The same in POSIX ERE, for `grep -E`.
const ERE: &str = "(^|[^0-9A-Za-z])sts_[0-9A-Za-z]{49}([^0-9A-Za-z]|$)";
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// xorshift64*: fast and deterministic; the corpus needs no cryptography.
struct Cheap(u64);

impl Cheap {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }
    fn base62(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from(BASE62[self.below(62)]))
            .collect()
    }
}

/// The README's checksum rule, written from its text alone: the last six
/// characters are the CRC-32 (zlib's) of the first 47, in base62, most
/// significant digit first, `0-9A-Za-z`.
fn readme_checksum_ok(candidate: &[u8]) -> bool {
    let (body, digits) = candidate.split_at(47);
    let mut crc = u32::MAX;
    for &byte in body {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    let mut value = u64::from(!crc);
    let mut expected = [b'0'; 6];
    for slot in expected.iter_mut().rev() {
        *slot = BASE62[usize::try_from(value % 62).unwrap()];
        value /= 62;
    }
    digits == expected
}

/// Offsets of the secrets the README's regex and checksum rule find. Each
/// search resumes at the end of the captured secret, not of the match, so that
/// the boundary character after one secret can start the next match.
fn regex_findings(text: &[u8]) -> Vec<usize> {
    let regex = Regex::new(REGEX).unwrap();
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(captures) = regex.captures_at(text, at) {
        let secret = captures.get(1).unwrap();
        if readme_checksum_ok(secret.as_bytes()) {
            found.push(secret.start());
        }
        at = secret.end();
    }
    found
}

struct Corpus {
    text: Vec<u8>,
    planted: Vec<(usize, String)>,
    bad_checksums: usize,
}

/// Source-like text with valid secrets planted in many contexts, and near
/// misses: bad checksums, one character too few or too many, a base62
/// character glued before or after, a changed character.
fn corpus(seed: u64, lines: usize) -> Corpus {
    let mut rng = Cheap(seed | 1);
    let mut secrets = ChaCha20Rng::seed_from_u64(seed);
    let words = [
        "let",
        "fn",
        "pub",
        "config",
        "password",
        "mqtt",
        "client",
        "device_id",
        "state",
        "command",
        "=",
        "(",
        ")",
        "{",
        "}",
        ";",
        "//",
        "\"",
        "'",
        "sts",
        "sts_",
        "stk_",
        "_sts",
    ];
    let mut text = Vec::new();
    let mut planted = Vec::new();
    let mut bad_checksums = 0;
    for line in 0..lines {
        for _ in 0..rng.below(12) {
            text.extend_from_slice(words[rng.below(words.len())].as_bytes());
            text.push(b" ._-:/,"[rng.below(7)]);
        }
        let secret = Secret::generate(&mut secrets);
        let secret = secret.expose_secret();
        match line % 16 {
            0 => {
                text.extend_from_slice(b"PASSWORD=");
                planted.push((text.len(), secret.to_owned()));
                text.extend_from_slice(secret.as_bytes());
            }
            1 => {
                text.extend_from_slice(b"{\"password\":\"");
                planted.push((text.len(), secret.to_owned()));
                text.extend_from_slice(secret.as_bytes());
                text.extend_from_slice(b"\"}");
            }
            2 => {
                text.extend_from_slice(b"mqtt://stk_4DmVJcy3ZpW0gNqk8TbX2a:");
                planted.push((text.len(), secret.to_owned()));
                text.extend_from_slice(secret.as_bytes());
                text.extend_from_slice(b"@broker:1883");
            }
            3 => {
                // Two secrets one character apart.
                planted.push((text.len(), secret.to_owned()));
                text.extend_from_slice(secret.as_bytes());
                text.push(b',');
                let second = Secret::generate(&mut secrets);
                planted.push((text.len(), second.expose_secret().to_owned()));
                text.extend_from_slice(second.expose_secret().as_bytes());
            }
            4 => {
                text.extend_from_slice("«".as_bytes());
                planted.push((text.len(), secret.to_owned()));
                text.extend_from_slice(secret.as_bytes());
                text.extend_from_slice("»".as_bytes());
            }
            5 => {
                text.push(b'x');
                text.extend_from_slice(secret.as_bytes());
            }
            6 => {
                text.extend_from_slice(secret.as_bytes());
                text.push(b'0');
            }
            7 => text.extend_from_slice(&secret.as_bytes()[..52]),
            8 => {
                let mut changed = secret.as_bytes().to_vec();
                let at = 4 + rng.below(49);
                changed[at] = if changed[at] == b'a' { b'b' } else { b'a' };
                text.extend_from_slice(&changed);
            }
            9 => {
                text.extend_from_slice(b"sts_");
                text.extend_from_slice(rng.base62(49).as_bytes());
                bad_checksums += 1;
            }
            10 => {
                text.extend_from_slice(&secret.as_bytes()[..20]);
                text.push(b'\n');
                text.extend_from_slice(&secret.as_bytes()[20..]);
            }
            _ => {
                let len = rng.below(80);
                text.extend_from_slice(rng.base62(len).as_bytes());
            }
        }
        text.push(b'\n');
    }
    // One at the very end, without a newline.
    let last = Secret::generate(&mut secrets);
    planted.push((text.len(), last.expose_secret().to_owned()));
    text.extend_from_slice(last.expose_secret().as_bytes());
    Corpus {
        text,
        planted,
        bad_checksums,
    }
}

#[test]
fn every_planted_secret_is_found_and_nothing_else() {
    let corpus = corpus(15, 20_000);
    let found: Vec<(usize, String)> = scan(&corpus.text)
        .map(|f| {
            assert_eq!(f.kind(), FindingKind::Secret);
            (f.offset(), f.secret().unwrap().expose_secret().to_owned())
        })
        .collect();
    assert!(corpus.planted.len() > 2_000 && corpus.bad_checksums > 1_000);
    assert_eq!(found, corpus.planted);
}

#[test]
fn the_readme_regex_and_checksum_rule_find_the_same() {
    let readme = include_str!("../README.md");
    assert!(readme.contains(REGEX), "README lacks the regex");
    assert!(readme.contains(ERE), "README lacks the ERE");
    let corpus = corpus(16, 5_000);
    let planted: Vec<usize> = corpus.planted.iter().map(|p| p.0).collect();
    assert_eq!(regex_findings(&corpus.text), planted);
    // Without the checksum rule the regex also reports the bad checksums.
    let regex = Regex::new(REGEX).unwrap();
    assert!(regex.find_iter(&corpus.text).count() > planted.len());
}

#[test]
fn the_ere_for_grep_finds_the_planted_lines() {
    if std::process::Command::new("grep")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: no grep");
        return;
    }
    let corpus = corpus(17, 2_000);
    let path = std::env::temp_dir().join(format!("structure-scan-{}.txt", std::process::id()));
    std::fs::write(&path, &corpus.text).unwrap();
    let out = std::process::Command::new("grep")
        .args(["-noE", ERE])
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    // grep's candidates, with the checksum rule applied, are the planted secrets.
    let mut found: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| {
            let at = line.find("sts_")?;
            let candidate = line[at..].get(..53)?;
            readme_checksum_ok(candidate.as_bytes()).then(|| candidate.to_owned())
        })
        .collect();
    let mut planted: Vec<String> = corpus.planted.into_iter().map(|p| p.1).collect();
    // grep -o reports non-overlapping matches: of two secrets one character
    // apart it sees the first only (the README says so).
    found.sort();
    planted.sort();
    assert!(found.iter().all(|f| planted.binary_search(f).is_ok()));
    let adjacent = (0..2_000).filter(|line| line % 16 == 3).count();
    assert_eq!(found.len() + adjacent, planted.len());
}

#[test]
fn no_false_positive_among_a_million_bad_checksums() {
    let mut rng = Cheap(0x5eed);
    let separators = [b' ', b'\n', b'"', b'=', b',', b'_', b'-', 0xC3];
    let mut text = Vec::with_capacity(1_000_000 * 54);
    for _ in 0..1_000_000 {
        let candidate = format!("sts_{}", rng.base62(49));
        // The ground truth: these shapes with a right checksum are secrets.
        assert!(candidate.parse::<Secret>().is_err());
        text.extend_from_slice(candidate.as_bytes());
        text.push(separators[rng.below(separators.len())]);
    }
    assert_eq!(scan(&text).count(), 0);
    assert_eq!(Scanner::new().with_key_ids(true).scan(&text).count(), 0);
}

#[test]
fn a_finding_never_shows_its_secret() {
    let corpus = corpus(18, 2_000);
    for finding in scan(&corpus.text) {
        let secret = finding.secret().unwrap();
        let secret = secret.expose_secret();
        for shown in [
            format!("{finding:?}"),
            format!("{finding:#?}"),
            finding.to_string(),
        ] {
            assert!(shown.contains(&secret[..8]), "{shown}");
            // Nothing past the prefix and four characters.
            assert!(!shown.contains(&secret[..9]), "{shown}");
            assert!(!shown.contains(&secret[8..16]), "{shown}");
        }
        assert_eq!(finding.redacted(), &secret[..8]);
    }
}

#[test]
fn the_findings_iterator_never_shows_the_haystack() {
    let secret = Secret::generate(&mut ChaCha20Rng::seed_from_u64(5));
    let text = format!("token = {}\n", secret.expose_secret());
    let findings = scan(text.as_bytes());
    for shown in [format!("{findings:?}"), format!("{findings:#?}")] {
        assert!(shown.contains(&text.len().to_string()), "{shown}");
        assert!(!shown.contains(&secret.expose_secret()[8..]), "{shown}");
        // Not as bytes either.
        let bytes = format!("{:?}", &secret.expose_secret().as_bytes()[8..16]);
        assert!(!shown.contains(bytes.trim_matches(['[', ']'])), "{shown}");
    }
}

#[test]
fn key_ids_are_reported_only_on_request_and_as_public() {
    let secret = Secret::generate(&mut ChaCha20Rng::seed_from_u64(3));
    let text = format!(
        "user stk_4DmVJcy3ZpW0gNqk8TbX2a pass {} xstk_4DmVJcy3ZpW0gNqk8TbX2a stk_4DmVJcy3ZpW0gNqk8TbX2",
        secret.expose_secret()
    );
    assert_eq!(scan(text.as_bytes()).count(), 1);
    let findings: Vec<_> = Scanner::new()
        .with_key_ids(true)
        .scan(text.as_bytes())
        .collect();
    let kinds: Vec<_> = findings.iter().map(|f| (f.kind(), f.offset())).collect();
    assert_eq!(kinds, [(FindingKind::KeyId, 5), (FindingKind::Secret, 37)]);
    assert!(findings[0].kind().is_public() && !findings[0].is_secret());
    assert_eq!(
        findings[0].key_id().unwrap().as_str(),
        "stk_4DmVJcy3ZpW0gNqk8TbX2a"
    );
    assert!(findings[0].secret().is_none() && findings[1].key_id().is_none());
    assert_eq!(
        findings[0].to_string(),
        "stk_4DmV… (access key id, a public identifier)"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Arbitrary bytes: no panic, and every finding is a bounded, valid secret.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        for finding in Scanner::new().with_key_ids(true).scan(&bytes) {
            let range = finding.range();
            let text = std::str::from_utf8(&bytes[range.clone()]).unwrap();
            match finding.kind() {
                FindingKind::Secret => prop_assert!(text.parse::<Secret>().is_ok()),
                _ => prop_assert!(finding.key_id().is_some()),
            }
            prop_assert!(range.start == 0 || !bytes[range.start - 1].is_ascii_alphanumeric());
            prop_assert!(bytes.get(range.end).is_none_or(|b| !b.is_ascii_alphanumeric()));
        }
    }

    /// A secret planted between non-base62 bytes of arbitrary text is found
    /// there, and the findings stay in order.
    #[test]
    fn a_planted_secret_is_found_in_arbitrary_bytes(
        before in proptest::collection::vec(any::<u8>(), 0..200),
        after in proptest::collection::vec(any::<u8>(), 0..200),
        seed in any::<u64>(),
    ) {
        let secret = Secret::generate(&mut ChaCha20Rng::seed_from_u64(seed));
        let mut bytes = before.clone();
        bytes.push(b' ');
        let at = bytes.len();
        bytes.extend_from_slice(secret.expose_secret().as_bytes());
        bytes.push(b'\n');
        bytes.extend_from_slice(&after);
        let offsets: Vec<usize> = scan(&bytes).map(|f| f.offset()).collect();
        prop_assert!(offsets.contains(&at));
        prop_assert!(offsets.windows(2).all(|w| w[0] + 53 <= w[1]));
    }
}
