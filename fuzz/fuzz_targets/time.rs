//! RFC 3339 times: arbitrary text never panics; an accepted time prints as
//! canonical text that parses back to it, and its seconds match the fields
//! it was read from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use structure_access::UnixTime;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match text.parse::<UnixTime>() {
        Ok(t) => {
            let canonical = t.to_string();
            assert_eq!(canonical.parse::<UnixTime>(), Ok(t), "{canonical}");
            assert_eq!(canonical.len(), 20);
            // The date and time read are the ones printed (the fraction and
            // the offset aside).
            assert!(
                text[..19].eq_ignore_ascii_case(&canonical[..19]),
                "{text} printed as {canonical}"
            );
        }
        Err(e) => {
            let message = e.to_string();
            assert!(!message.contains('\n'), "{message}");
        }
    }
});
