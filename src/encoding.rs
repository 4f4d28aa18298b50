//! Base62 and CRC32, the two small codecs behind the key and secret formats.

/// The base62 alphabet, in ASCII order.
pub(crate) const BASE62: &[u8; 62] =
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Fills `out` with characters drawn uniformly from [`BASE62`].
///
/// Rejection sampling keeps every character uniform: a random byte is kept only
/// when its low six bits are below 62, so each character carries log2(62) ≈ 5.95
/// bits of entropy.
pub(crate) fn fill_base62<R>(rng: &mut R, out: &mut [u8]) -> Result<(), R::Error>
where
    R: rand_core::TryCryptoRng + ?Sized,
{
    let mut pool = [0u8; 64];
    let mut used = pool.len();
    for slot in out.iter_mut() {
        loop {
            if used == pool.len() {
                rng.try_fill_bytes(&mut pool)?;
                used = 0;
            }
            let candidate = pool.get(used).copied().unwrap_or(u8::MAX) & 0x3f;
            used += 1;
            if let Some(&c) = BASE62.get(usize::from(candidate)) {
                *slot = c;
                break;
            }
        }
    }
    zeroize::Zeroize::zeroize(&mut pool);
    Ok(())
}

/// Encodes `value` as exactly `N` base62 digits, most significant first.
///
/// `N` must be large enough for the value (6 digits hold any `u32`); higher
/// digits that do not fit are silently dropped, which callers rule out by
/// their choice of `N`.
pub(crate) fn base62_fixed<const N: usize>(mut value: u64) -> [u8; N] {
    let mut out = [b'0'; N];
    for slot in out.iter_mut().rev() {
        let digit = usize::try_from(value % 62).unwrap_or(0);
        *slot = BASE62.get(digit).copied().unwrap_or(b'0');
        value /= 62;
    }
    out
}

/// Whether `b` is a base62 character.
pub(crate) const fn is_base62(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// Slicing-by-8 tables of CRC-32: `TABLES[k][b]` is the CRC of byte `b`
/// followed by `k` zero bytes. Eight bytes are folded per step, several times
/// faster than a byte at a time on the 47 bytes of a secret.
// Evaluated at compile time: an out-of-range index would fail the build, not a call.
#[allow(clippy::indexing_slicing, clippy::cast_possible_truncation)]
const CRC32_TABLES: [[u32; 256]; 8] = {
    let mut tables = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
            bit += 1;
        }
        tables[0][i] = crc;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = tables[k - 1][i];
            tables[k][i] = (prev >> 8) ^ tables[0][(prev & 0xff) as usize];
            i += 1;
        }
        k += 1;
    }
    tables
};

fn table(k: usize, index: u32) -> u32 {
    // Indexes are masked to 0..=255 by every caller; `get` keeps this panic-free.
    CRC32_TABLES
        .get(k)
        .and_then(|t| t.get((index & 0xff) as usize))
        .copied()
        .unwrap_or(0)
}

/// CRC-32 (IEEE 802.3, the one of zlib, PNG and GitHub tokens).
pub(crate) fn crc32(data: &[u8]) -> u32 {
    let mut crc = u32::MAX;
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let lo = u32::from_le_bytes([word[0], word[1], word[2], word[3]]) ^ crc;
        let hi = u32::from_le_bytes([word[4], word[5], word[6], word[7]]);
        crc = table(7, lo)
            ^ table(6, lo >> 8)
            ^ table(5, lo >> 16)
            ^ table(4, lo >> 24)
            ^ table(3, hi)
            ^ table(2, hi >> 8)
            ^ table(1, hi >> 16)
            ^ table(0, hi >> 24);
    }
    for &byte in chunks.remainder() {
        crc = (crc >> 8) ^ table(0, (crc ^ u32::from(byte)) & 0xff);
    }
    !crc
}

/// The value of base62 digits, most significant first; `None` if a character is
/// not base62 or the value overflows.
pub(crate) fn base62_value(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |acc, &c| {
        let digit = match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'Z' => c - b'A' + 10,
            b'a'..=b'z' => c - b'a' + 36,
            _ => return None,
        };
        acc.checked_mul(62)?.checked_add(u64::from(digit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn crc32_check_value() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn crc32_matches_the_bytewise_definition() {
        let data: Vec<u8> = (0u32..300).map(|i| (i * 7 + 3).to_le_bytes()[0]).collect();
        for len in 0..data.len() {
            let mut crc = u32::MAX;
            for &byte in &data[..len] {
                crc ^= u32::from(byte);
                for _ in 0..8 {
                    crc = if crc & 1 == 1 {
                        (crc >> 1) ^ 0xEDB8_8320
                    } else {
                        crc >> 1
                    };
                }
            }
            assert_eq!(crc32(&data[..len]), !crc, "length {len}");
        }
    }

    #[test]
    fn base62_value_inverts_base62_fixed() {
        for value in [0u64, 1, 61, 62, 3843, 3844, u64::from(u32::MAX)] {
            assert_eq!(base62_value(&base62_fixed::<6>(value)), Some(value));
        }
        assert_eq!(base62_value(b"0-"), None);
    }

    #[test]
    fn base62_fixed_width() {
        assert_eq!(&base62_fixed::<6>(0), b"000000");
        assert_eq!(&base62_fixed::<6>(61), b"00000z");
        assert_eq!(&base62_fixed::<6>(62), b"000010");
        assert_eq!(&base62_fixed::<6>(u64::from(u32::MAX)), b"4gfFC3");
    }
}
