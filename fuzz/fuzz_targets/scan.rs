//! `scan` over arbitrary bytes: never panics; every finding is a valid, bounded
//! secret (or key id) that shows no more than its prefix and 4 characters; a
//! secret planted between two non-base62 bytes is found where it was put, as it
//! is, in base64 (both alphabets, every alignment) and in UTF-16 (LE and BE);
//! and scanning the bytes window by window (`scan_stream`, window size and read
//! sizes from the input) finds exactly what scanning them whole finds.
#![no_main]

use base64ct::{Base64, Base64Url, Encoding as _};
use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use structure_access::{FindingEncoding, FindingKind, KeyId, SCAN_OVERLAP, Scanner, Secret, scan};

fuzz_target!(|data: &[u8]| {
    let scanner = Scanner::new().with_key_ids(true);
    for finding in scanner.scan(data) {
        let range = finding.range();
        assert!(range.end <= data.len() && finding.offset() <= range.start);
        let shown = finding.redacted().to_owned();
        let text = match finding.kind() {
            FindingKind::Secret => finding.secret().unwrap().expose_secret().to_owned(),
            _ => finding.key_id().unwrap().to_string(),
        };
        assert_eq!(&text[..8], shown);
        if finding.encoding() == FindingEncoding::Plain {
            assert_eq!(std::str::from_utf8(&data[range.clone()]).unwrap(), text);
            assert!(range.start == 0 || !data[range.start - 1].is_ascii_alphanumeric());
            assert!(data.get(range.end).is_none_or(|b| !b.is_ascii_alphanumeric()));
            if finding.kind() == FindingKind::KeyId {
                assert!(text.parse::<KeyId>().is_ok());
            }
        }
        assert!(!format!("{finding:?}{finding}").contains(&text[..9]));
    }

    // Planted, in each encoding, between two boundaries.
    let seed = data.iter().fold(0u64, |h, &b| h.rotate_left(5) ^ u64::from(b));
    let secret = Secret::generate(&mut ChaCha20Rng::seed_from_u64(seed));
    let plain = secret.expose_secret();
    let cut = data.len() / 2;
    let lead = ["", ":", "k:"][usize::from(data.first().copied().unwrap_or(0)) % 3];
    let encodings: [(FindingEncoding, Vec<u8>); 5] = [
        (FindingEncoding::Plain, plain.as_bytes().to_vec()),
        (FindingEncoding::Base64, Base64::encode_string(format!("{lead}{plain}").as_bytes()).into_bytes()),
        (FindingEncoding::Base64Url, Base64Url::encode_string(format!("{lead}{plain}").as_bytes()).into_bytes()),
        (FindingEncoding::Utf16Le, plain.encode_utf16().flat_map(u16::to_le_bytes).collect()),
        (FindingEncoding::Utf16Be, plain.encode_utf16().flat_map(u16::to_be_bytes).collect()),
    ];
    for (encoding, bytes) in encodings {
        let mut planted = data[..cut].to_vec();
        // A boundary, and an even offset: where UTF-16 code units start.
        planted.push(b'\n');
        if planted.len() % 2 != 0 {
            planted.push(b'\n');
        }
        let at = planted.len();
        planted.extend_from_slice(&bytes);
        planted.extend_from_slice(b"\"\0\"");
        planted.extend_from_slice(&data[cut..]);
        assert!(
            scan(&planted).any(|f| f.offset() == at && f.secret() == Some(secret.clone())),
            "{encoding}"
        );
    }

    // Window by window: the same findings, each once.
    let whole: Vec<_> = scanner
        .scan(data)
        .map(|f| (f.offset() as u64, f.range().start as u64, f.secret(), f.key_id()))
        .collect();
    let window = 2 * SCAN_OVERLAP + usize::from(data.last().copied().unwrap_or(0)) * 3;
    let step = 1 + usize::from(data.get(1).copied().unwrap_or(0));
    let mut rest = data;
    let read = |buffer: &mut [u8]| -> Result<usize, ()> {
        let n = buffer.len().min(rest.len()).min(step);
        buffer[..n].copy_from_slice(&rest[..n]);
        rest = &rest[n..];
        Ok(n)
    };
    let mut streamed = Vec::new();
    scanner
        .scan_stream(window, read, |w| {
            for f in w.findings() {
                let start = w.start() + f.range().start as u64;
                streamed.push((w.text_offset(&f), start, f.secret(), f.key_id()));
            }
        })
        .unwrap();
    assert_eq!(streamed, whole);
});
