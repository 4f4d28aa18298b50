//! Counts the heap allocations of authentication, with a counting allocator.
//!
//! Counting is per thread, so the tests of this binary may run in parallel.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use structure_access::{
    AccessKey, AuthError, Authenticator, Cost, DeviceRecord, HashPolicy, Restriction, Scope,
    Secret, VerificationCache,
};

/// The application of every key and device here.
const APP: &str = "app1";

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
    static BYTES: Cell<usize> = const { Cell::new(0) };
}

fn count(size: usize) {
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
    let _ = BYTES.try_with(|n| n.set(n.get() + size));
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counters are plain thread-local cells that never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// (allocations, bytes) made by `f` on this thread.
fn measure<T>(f: impl FnOnce() -> T) -> (usize, usize, T) {
    let (a0, b0) = (ALLOCATIONS.with(Cell::get), BYTES.with(Cell::get));
    let out = f();
    let (a1, b1) = (ALLOCATIONS.with(Cell::get), BYTES.with(Cell::get));
    (a1 - a0, b1 - b0, out)
}

/// A key whose verifier is Argon2id (`argon2`) or the fast scheme.
fn setup(cache: bool, argon2: bool) -> (Authenticator, AccessKey, Secret, DeviceRecord) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let policy = HashPolicy::default()
        .with_params(Cost::new(256, 1, 1))
        .unwrap()
        .argon2id_for_generated(argon2);
    let restriction: Restriction = "dev-1,dev-2".parse().unwrap();
    let new =
        AccessKey::generate(&mut rng, APP.parse().unwrap(), restriction.into(), &policy).unwrap();
    let mut auth = Authenticator::new(policy).with_pool_size(1);
    if cache {
        auth = auth.with_cache(VerificationCache::with_rng(64, &mut rng));
    }
    let device =
        DeviceRecord::new(APP.parse().unwrap(), "dev-1".parse().unwrap()).with_tag("site", "north");
    (auth, new.record, new.secret, device)
}

#[test]
fn cached_authentication_allocates_nothing() {
    let (auth, record, secret, device) = setup(true, true);
    auth.authenticate(record.key(), Some(&record), &secret, &device)
        .unwrap();
    let (allocations, _, principal) =
        measure(|| auth.authenticate(record.key(), Some(&record), &secret, &device));
    assert!(principal.is_ok());
    assert_eq!(auth.cache().unwrap().stats().hits, 1);
    assert_eq!(allocations, 0);
    let (allocations, _, seen) = measure(|| principal.as_ref().unwrap().can_see(&device));
    assert!(seen);
    assert_eq!(allocations, 0);
}

#[test]
fn cold_authentication_reuses_its_memory() {
    let (auth, record, secret, device) = setup(false, true);
    // The first verification sizes the pooled buffer...
    let (_, first_bytes, _) =
        measure(|| auth.authenticate(record.key(), Some(&record), &secret, &device));
    assert!(first_bytes >= 256 * 1024, "{first_bytes}");
    // ...and every later one, right, wrong or for an unknown key, reuses it.
    let wrong = Secret::generate(&mut ChaCha20Rng::seed_from_u64(2));
    for _ in 0..3 {
        let (allocations, _, ok) =
            measure(|| auth.authenticate(record.key(), Some(&record), &secret, &device));
        assert!(ok.is_ok());
        assert_eq!(allocations, 0);
        let (allocations, _, err) =
            measure(|| auth.authenticate(record.key(), Some(&record), &wrong, &device));
        assert!(matches!(err, Err(AuthError::WrongSecret { .. })));
        // The error holds the key inline: nothing allocated for it either.
        assert_eq!(allocations, 0);
        let (allocations, _, err) =
            measure(|| auth.authenticate(record.key(), None, &secret, &device));
        assert_eq!(err.unwrap_err(), AuthError::UnknownKey);
        assert_eq!(allocations, 0);
    }
}

#[test]
fn cold_fast_authentication_allocates_nothing() {
    let (auth, record, secret, device) = setup(false, false);
    assert!(!record.verifier().is_slow());
    let wrong = Secret::generate(&mut ChaCha20Rng::seed_from_u64(2));
    // No warm-up: the very first one allocates nothing either.
    for _ in 0..3 {
        let (allocations, _, ok) =
            measure(|| auth.authenticate(record.key(), Some(&record), &secret, &device));
        assert!(ok.is_ok());
        assert_eq!(allocations, 0);
        let (allocations, _, err) =
            measure(|| auth.authenticate(record.key(), Some(&record), &wrong, &device));
        assert!(matches!(err, Err(AuthError::WrongSecret { .. })));
        assert_eq!(allocations, 0);
        let (allocations, _, err) =
            measure(|| auth.authenticate(record.key(), None, &secret, &device));
        assert_eq!(err.unwrap_err(), AuthError::UnknownKey);
        assert_eq!(allocations, 0);
    }
}

#[test]
fn a_verifier_claiming_4_gib_is_refused_without_allocating_it() {
    let (auth, record, secret, device) = setup(false, true);
    let hostile = format!(
        "$argon2id$v=19$m=4194304,t=2,p=1${}",
        "o1a2OxEBgc6kveVG22cS6A$K7zmi4nG5Ux59QQJFhoI8CoXXlFI9Dj7hPiP8geQZBA"
    );
    let (_, parse_bytes, verifier) = measure(|| hostile.parse().unwrap());
    assert!(parse_bytes < 1024, "{parse_bytes}");
    let hostile = AccessKey::new(
        *record.key(),
        *record.application(),
        verifier,
        Scope::Unrestricted,
    );
    // The refusal runs the dummy at the policy's parameters (m=256 KiB), so
    // that it costs what a wrong secret costs: that is all it may allocate.
    let (_, bytes, err) =
        measure(|| auth.authenticate(hostile.key(), Some(&hostile), &secret, &device));
    assert!(matches!(err, Err(AuthError::BadVerifier { .. })));
    assert!(bytes < 256 * 1024 + 1024, "{bytes} bytes allocated");
    // With the pool's buffer already there, nothing at all.
    auth.authenticate(record.key(), Some(&record), &secret, &device)
        .unwrap();
    let (_, bytes, err) =
        measure(|| auth.authenticate(hostile.key(), Some(&hostile), &secret, &device));
    assert!(matches!(err, Err(AuthError::BadVerifier { .. })));
    assert!(bytes < 1024, "{bytes} bytes allocated");
}
