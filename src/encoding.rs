//! Base62 and CRC32, the two small codecs behind the key and secret formats.

/// The base62 alphabet, in ASCII order.
pub(crate) const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

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

const CRC32_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
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
        table[i] = crc;
        i += 1;
    }
    table
};

/// CRC-32 (IEEE 802.3, the one of zlib, PNG and GitHub tokens).
pub(crate) fn crc32(data: &[u8]) -> u32 {
    let mut crc = u32::MAX;
    for &byte in data {
        let index = usize::from((crc as u8) ^ byte);
        crc = (crc >> 8) ^ CRC32_TABLE.get(index).copied().unwrap_or(0);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn base62_fixed_width() {
        assert_eq!(&base62_fixed::<6>(0), b"000000");
        assert_eq!(&base62_fixed::<6>(61), b"00000z");
        assert_eq!(&base62_fixed::<6>(62), b"000010");
        assert_eq!(&base62_fixed::<6>(u64::from(u32::MAX)), b"4gfFC3");
    }
}
