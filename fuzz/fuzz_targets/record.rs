//! Record JSON, key records and device records: arbitrary bytes never panic; an
//! accepted record re-serialises to JSON that parses back to an equal record,
//! and a device record never holds more tags than the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use structure_access::{AccessKey, Device, DeviceRecord, MAX_DEVICE_TAGS};

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = serde_json::from_slice::<AccessKey>(data) {
        let json = serde_json::to_string(&record).unwrap();
        let back: AccessKey = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("re-serialised record `{json}` does not parse: {e}"));
        assert_eq!(back, record);
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
        assert!(json.contains(&format!("\"application\":\"{}\"", record.application())));
    }
    if let Ok(device) = serde_json::from_slice::<DeviceRecord>(data) {
        assert!(device.tags().count() <= MAX_DEVICE_TAGS);
        let json = serde_json::to_string(&device).unwrap();
        let back: DeviceRecord = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("re-serialised device `{json}` does not parse: {e}"));
        assert_eq!(back, device);
        assert_eq!(back.application(), device.application());
    }
});
