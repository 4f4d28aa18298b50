//! Device tokens: arbitrary text (as is, and after `v4.public.`) never
//! panics and is never accepted unless it is the seed's genuine token; an
//! accepted token's claims are those it was issued with.
#![no_main]

use libfuzzer_sys::fuzz_target;
use structure_access::UnixTime;
use structure_access_tokens::{SigningKey, TokenVerifier};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(key) = SigningKey::from_seed([42; 32]) else {
        return;
    };
    let Ok(verifier) = TokenVerifier::new("https://api.example", [key.verifying_key()]) else {
        return;
    };
    let now = UnixTime::from_secs(1_800_000_100).unwrap();
    for candidate in [text.to_owned(), format!("v4.public.{text}")] {
        match verifier.verify(&candidate, now) {
            // Only the genuine seed (signed with the key above) verifies.
            Ok(claims) => {
                assert_eq!(claims.device_id().as_str(), "truck-17");
                assert_eq!(claims.application().as_str(), "app1");
            }
            Err(e) => assert!(!e.to_string().contains('\n')),
        }
    }
});
