//! Stored verifier strings, Argon2 and `hmac-sha256`: arbitrary PHC-like text
//! against a policy with small bounds is refused or verified, never panics, and
//! never allocates more than the bounds allow (counted by a global allocator); a
//! fast verifier never touches Argon2 memory.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use libfuzzer_sys::fuzz_target;
use structure_access::{Cost, Argon2Memory, HashPolicy, Scheme, Secret, Verifier, VerifierError};

struct Peak;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call unchanged to the system allocator and only
// updates two atomic counters.
unsafe impl GlobalAlloc for Peak {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Peak = Peak;

/// Largest memory cost the fuzzing policy accepts, in KiB.
const MAX_M: u32 = 256;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let imported = Secret::imported("fuzzing-secret-0123456789").unwrap();
    let generated: Secret = "sts_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA2ytyDA"
        .parse()
        .unwrap();
    let policy = HashPolicy::default()
        .with_params(Cost::new(64, 1, 1))
        .and_then(|p| p.with_bounds(Cost::new(MAX_M, 2, 2)))
        .unwrap()
        .allow_argon2i(true)
        .allow_argon2d(true);
    let mut memory = Argon2Memory::new();

    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let parsed = text.parse::<Verifier>();
    if let Ok(verifier) = &parsed {
        assert_eq!(verifier.as_str(), text);
        assert_eq!(verifier.to_string().parse::<Verifier>().as_ref(), Ok(verifier));
        for secret in [&imported, &generated] {
            let result = verifier.verify_with_memory(secret, &policy, &mut memory);
            if verifier.scheme() == Scheme::HmacSha256 {
                assert_eq!(memory.kib(), 0, "a fast verifier used Argon2 memory");
                if !secret.is_generated() {
                    assert_eq!(result, Err(VerifierError::FastForImported));
                }
            }
        }
        assert!(memory.kib() <= MAX_M as usize, "{} KiB kept", memory.kib());
    }
    let grown = PEAK.load(Ordering::Relaxed).saturating_sub(before);
    // The bound: the Argon2 blocks plus a few KiB of bookkeeping.
    assert!(grown <= MAX_M as usize * 1024 + 16 * 1024, "{grown} bytes for `{text}`");
});
