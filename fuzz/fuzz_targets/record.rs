//! Record JSON: arbitrary bytes never panic; an accepted record re-serialises to
//! JSON that parses back to an equal record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use structure_access::AccessKey;

fuzz_target!(|data: &[u8]| {
    let Ok(record) = serde_json::from_slice::<AccessKey>(data) else {
        return;
    };
    let json = serde_json::to_string(&record).unwrap();
    let back: AccessKey = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("re-serialised record `{json}` does not parse: {e}"));
    assert_eq!(back, record);
    assert_eq!(serde_json::to_string(&back).unwrap(), json);
});
