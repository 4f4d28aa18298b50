//! The hot path allocates nothing: counted with a counting global allocator.
//!
//! Counting is per thread, so the tests of this binary may run in parallel.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use structure_access::{AccessKey, Device, DeviceRecord, Restriction, Scope};

/// The application of every key and device here.
const APP: &str = "app1";

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counter is a const-initialised thread-local cell that never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
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

/// Allocations made by `f` on this thread, and its result.
fn allocations<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let before = ALLOCATIONS.with(Cell::get);
    let out = f();
    (ALLOCATIONS.with(Cell::get) - before, out)
}

/// 1000 device IDs and 100 tag patterns of every kind: the platform's maximum.
fn large_restriction() -> Restriction {
    let mut entries: Vec<String> = (0..1000).map(|i| format!("{i:024x}")).collect();
    entries.extend((0..60).map(|i| format!("key{i}=value{i}")));
    entries.extend((0..20).map(|i| format!("any{i}=")));
    entries.extend((0..20).map(|i| format!("=v{i}")));
    entries.join(",").parse().expect("valid restriction")
}

fn device(id: &str, tags: &[(&str, &str)]) -> DeviceRecord {
    tags.iter().fold(
        DeviceRecord::new(APP.parse().unwrap(), id.parse().expect("valid device ID")),
        |d, (k, v)| d.with_tag(k, v),
    )
}

/// Sees `device` 1000 times; returns the allocations and the answer.
fn see_many<D: Device>(scope: &impl Fn(&D) -> bool, device: &D) -> (usize, bool) {
    allocations(|| {
        let mut seen = true;
        for _ in 0..1000 {
            seen &= std::hint::black_box(scope(std::hint::black_box(device)));
        }
        seen
    })
}

#[test]
fn can_see_allocates_nothing() {
    let large = large_restriction();
    let small: Restriction = "key0=value0".parse().unwrap();
    let five = [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4"), ("e", "5")];
    let miss = device("ffffffffffffffffffffffff", &five);
    let by_id = device(&format!("{:024x}", 999), &five);
    // Listed by ID, but of another application.
    let foreign = DeviceRecord::new("app2".parse().unwrap(), by_id.device_id().to_owned());
    let by_exact = device(
        "ffffffffffffffffffffffff",
        &[
            ("a", "1"),
            ("b", "2"),
            ("c", "3"),
            ("d", "4"),
            ("key7", "value7"),
        ],
    );
    let by_key = device(
        "ffffffffffffffffffffffff",
        &[
            ("a", "1"),
            ("b", "2"),
            ("c", "3"),
            ("d", "4"),
            ("any3", "x"),
        ],
    );
    let by_value = device(
        "ffffffffffffffffffffffff",
        &[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4"), ("x", "v9")],
    );

    for (name, restriction) in [("large", &large), ("small", &small)] {
        let see = |d: &DeviceRecord| restriction.can_see(d);
        let (n, seen) = see_many(&see, &miss);
        assert_eq!((n, seen), (0, false), "{name}: miss");
        let verifier = "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA"
            .parse()
            .unwrap();
        let record = AccessKey::new(
            "stk_0000000000000000000000".parse().unwrap(),
            APP.parse().unwrap(),
            verifier,
            Scope::from(restriction.clone()),
        );
        let see = |d: &DeviceRecord| record.can_see(d);
        let (n, _) = see_many(&see, &miss);
        assert_eq!(n, 0, "{name}: miss through the record");
        let (n, seen) = see_many(&see, &foreign);
        assert_eq!((n, seen), (0, false), "{name}: another application");
    }
    for (name, hit) in [
        ("id", &by_id),
        ("exact", &by_exact),
        ("key", &by_key),
        ("value", &by_value),
    ] {
        let see = |d: &DeviceRecord| large.can_see(d);
        let (n, seen) = see_many(&see, hit);
        assert_eq!((n, seen), (0, true), "hit by {name}");
    }
}

#[test]
fn the_counter_counts() {
    // Guards the test above against a counter that never moves.
    let (n, v) = allocations(|| std::hint::black_box(vec![1u8; 16]));
    assert!(n >= 1 && v.len() == 16);
    let (n, r) = allocations(|| "a,k=v".parse::<Restriction>());
    assert!(n >= 1 && r.is_ok());
}

#[test]
fn scanning_allocates_nothing() {
    use rand_chacha::rand_core::SeedableRng;
    use structure_access::{Scanner, Secret};
    let secret = Secret::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(4));
    let text = format!(
        "a=stk_4DmVJcy3ZpW0gNqk8TbX2a b={} c={} sts_x\n",
        secret.expose_secret(),
        secret.expose_secret()
    )
    .repeat(100);
    let scanner = Scanner::new().with_key_ids(true);
    let (n, found) = allocations(|| {
        structure_access::scan(text.as_bytes()).count() + scanner.scan(text.as_bytes()).count()
    });
    assert_eq!((n, found), (0, 200 + 300));
}

#[test]
fn device_credentials_allocate_nothing() {
    use structure_access::DeviceCredentials;
    let secret = "sts_dGlMoiyrlfxX1rTnyFf3vA7NUtFOY6aF0kDQHBwtnOA2WSIsB";
    let peer = "sensor-7".parse().unwrap();
    let (n, len) = allocations(|| {
        let device =
            DeviceCredentials::parse("dev-1", "stk_4DmVJcy3ZpW0gNqk8TbX2a", secret).unwrap();
        device.state_topic().as_str().len()
            + device.command_topic().as_str().len()
            + device.peer_state_topic(&peer).as_str().len()
            + device.peer_command_topic(&peer).as_str().len()
            + device.password().expose_secret().len()
    });
    assert_eq!((n, len), (0, 21 + 23 + 24 + 26 + 53));
}
