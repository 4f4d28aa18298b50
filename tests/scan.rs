//! `scan` over a corpus of mixed text with planted secrets and near misses, the
//! README's regular expression and checksum rule over the same corpus, and
//! arbitrary bytes.

use base64ct::{Base64, Base64Url, Encoding as _};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use regex::bytes::Regex;
use structure_access::{FindingEncoding, FindingKind, SCAN_OVERLAP, Scanner, Secret, scan};

/// The rule for other scanners, as the README gives it (checked below).
const REGEX: &str = "(?:^|[^0-9A-Za-z])(sts_[0-9A-Za-z]{49})(?:[^0-9A-Za-z]|$)";
/// The same in POSIX ERE, for `grep -E`.
const ERE: &str = "(^|[^0-9A-Za-z])sts_[0-9A-Za-z]{49}([^0-9A-Za-z]|$)";
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `secret` written the `how`th way, between boundaries: as it is, in
/// standard or URL-safe base64 (after a prefix of 0–2 bytes, so at every
/// alignment), or in UTF-16 LE or BE.
fn encoded(secret: &str, how: u8) -> Vec<u8> {
    let utf16 = |le: bool| {
        let mut out = vec![b' '];
        if !le {
            out.push(0);
        }
        for unit in format!(" {secret} ").encode_utf16() {
            out.extend_from_slice(&if le {
                unit.to_le_bytes()
            } else {
                unit.to_be_bytes()
            });
        }
        out
    };
    match how {
        0 => format!(" {secret} ").into_bytes(),
        1 => format!(" {} ", Base64::encode_string(secret.as_bytes())).into_bytes(),
        2 => format!(
            " {} ",
            Base64::encode_string(format!(":{secret}").as_bytes())
        )
        .into_bytes(),
        3 => format!(
            " {} ",
            Base64Url::encode_string(format!("k:{secret}\n").as_bytes())
        )
        .into_bytes(),
        4 => utf16(true),
        _ => utf16(false),
    }
}

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
            prop_assert!(range.end <= bytes.len() && finding.offset() <= range.start);
            match finding.kind() {
                FindingKind::Secret => prop_assert!(finding.secret().is_some()),
                _ => prop_assert!(finding.key_id().is_some()),
            }
            if finding.encoding() == FindingEncoding::Plain {
                let text = std::str::from_utf8(&bytes[range.clone()]).unwrap();
                prop_assert!(text.starts_with("sts_") || text.starts_with("stk_"));
                prop_assert!(range.start == 0 || !bytes[range.start - 1].is_ascii_alphanumeric());
                prop_assert!(bytes.get(range.end).is_none_or(|b| !b.is_ascii_alphanumeric()));
            }
        }
    }

    /// A text read window by window, in any sizes, gives the findings of the
    /// whole text, each once, with the same offsets: secrets as they are, in
    /// base64 and in UTF-16, anywhere, across any window's edge.
    #[test]
    fn streaming_finds_what_the_whole_text_holds(
        filler in proptest::collection::vec(any::<u8>(), 0..3000),
        plants in proptest::collection::vec((any::<u16>(), 0u8..6, any::<u64>()), 0..8),
        window in (2 * SCAN_OVERLAP)..(6 * SCAN_OVERLAP),
        reads in proptest::collection::vec(1usize..700, 1..8),
    ) {
        let mut text = filler.clone();
        for &(at, how, seed) in &plants {
            let at = usize::from(at) % (text.len() + 1);
            let secret = Secret::generate(&mut ChaCha20Rng::seed_from_u64(seed));
            text.splice(at..at, encoded(secret.expose_secret(), how));
        }
        let scanner = Scanner::new().with_key_ids(true);
        let whole: Vec<_> = scanner
            .scan(&text)
            .map(|f| (f.offset() as u64, f.range().start as u64, f.encoding(), f.secret(), f.key_id()))
            .collect();
        let mut rest = &text[..];
        let mut sizes = reads.iter().cycle();
        let read = |buffer: &mut [u8]| -> Result<usize, ()> {
            let n = buffer.len().min(rest.len()).min(*sizes.next().unwrap());
            buffer[..n].copy_from_slice(&rest[..n]);
            rest = &rest[n..];
            Ok(n)
        };
        let mut streamed = Vec::new();
        let mut owned = 0u64;
        scanner.scan_stream(window, read, |w| {
            // The owned ranges make up the text, one after the other.
            assert_eq!(w.start() + w.owned().start as u64, owned);
            owned = w.start() + w.owned().end as u64;
            for f in w.findings() {
                let start = w.start() + f.range().start as u64;
                streamed.push((w.text_offset(&f), start, f.encoding(), f.secret(), f.key_id()));
            }
        }).unwrap();
        prop_assert_eq!(owned, text.len() as u64);
        prop_assert_eq!(&streamed, &whole);
        // Every planted secret is among them.
        for &(_, _, seed) in &plants {
            let secret = Secret::generate(&mut ChaCha20Rng::seed_from_u64(seed));
            prop_assert!(whole.iter().any(|f| f.3.as_ref() == Some(&secret)) || plants.len() > 1);
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

#[test]
fn secrets_in_kubernetes_secrets_basic_headers_and_utf16_files_are_found() {
    let mut rng = ChaCha20Rng::seed_from_u64(21);
    let secret = Secret::generate(&mut rng);
    let text = secret.expose_secret();
    // A Kubernetes Secret: `data` values are base64.
    let yaml = format!(
        "apiVersion: v1\nkind: Secret\ndata:\n  username: {}\n  password: {}\n",
        Base64::encode_string(b"stk_4DmVJcy3ZpW0gNqk8TbX2a"),
        Base64::encode_string(text.as_bytes())
    );
    let found: Vec<_> = scan(yaml.as_bytes()).collect();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].encoding(), FindingEncoding::Base64);
    assert_eq!(found[0].offset(), yaml.find("password: ").unwrap() + 10);
    assert_eq!(found[0].secret().as_ref(), Some(&secret));
    // The key id beside it, on request.
    let all: Vec<_> = Scanner::new()
        .with_key_ids(true)
        .scan(yaml.as_bytes())
        .collect();
    assert_eq!(all.len(), 2);
    assert_eq!(
        (all[0].kind(), all[0].encoding()),
        (FindingKind::KeyId, FindingEncoding::Base64)
    );
    // An HTTP Basic header of key:secret.
    let header = format!(
        "GET /auth HTTP/1.1\r\nAuthorization: Basic {}\r\n\r\n",
        Base64::encode_string(format!("stk_4DmVJcy3ZpW0gNqk8TbX2a:{text}").as_bytes())
    );
    let found: Vec<_> = scan(header.as_bytes()).collect();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].offset(), header.find("Basic ").unwrap() + 6);
    assert!(found[0].range().start > found[0].offset());
    assert_eq!(found[0].secret().as_ref(), Some(&secret));
    assert_eq!(
        found[0].to_string(),
        format!("{}… (access secret, base64)", &text[..8])
    );
    // A UTF-16 file, as Windows tools write them (LE, with a BOM), and BE.
    for (bom, le) in [([0xff, 0xfe], true), ([0xfe, 0xff], false)] {
        let mut file = bom.to_vec();
        for unit in format!("[mqtt]\r\npassword = {text}\r\n").encode_utf16() {
            file.extend_from_slice(&if le {
                unit.to_le_bytes()
            } else {
                unit.to_be_bytes()
            });
        }
        let found: Vec<_> = scan(&file).collect();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].offset(), 2 + 2 * "[mqtt]\r\npassword = ".len());
        let expected = if le {
            FindingEncoding::Utf16Le
        } else {
            FindingEncoding::Utf16Be
        };
        assert_eq!(found[0].encoding(), expected);
        assert_eq!(found[0].secret().as_ref(), Some(&secret));
    }
}

#[test]
fn encoded_findings_never_show_their_secret() {
    for how in 0..6 {
        for seed in 0..50 {
            let secret = Secret::generate(&mut ChaCha20Rng::seed_from_u64(seed));
            let text = secret.expose_secret();
            let bytes = encoded(text, how);
            let found: Vec<_> = scan(&bytes).collect();
            assert_eq!(found.len(), 1, "{how} {seed}");
            let f = found[0];
            assert_eq!(f.redacted(), &text[..8]);
            for shown in [format!("{f:?}"), format!("{f:#?}"), f.to_string()] {
                assert!(!shown.contains(&text[..9]), "{shown}");
                assert!(!shown.contains(&text[8..16]), "{shown}");
            }
        }
    }
}
