//! A budget of Argon2 verifications: one for the whole broker, one per client
//! address, both refilled continuously (token buckets).
//!
//! Mosquitto runs every plugin callback on its one thread, so each Argon2 run
//! (about 20 ms at the default parameters) stalls every client. Generated
//! secrets never need Argon2; only imported secrets, unknown keys presented an
//! imported-shaped password, and records from before the fast scheme do. The
//! budget bounds that work: past it, such a CONNECT is refused at once.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// Most client addresses tracked at once; past it, idle ones are forgotten,
/// and a new address finds no budget until some are.
const MAX_ADDRESSES: usize = 10_000;

/// Argon2 verifications allowed per second, in the whole broker and per client
/// address. A rate of 0 allows none.
#[derive(Debug)]
pub struct Throttle {
    global_rate: u32,
    per_address_rate: u32,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    global: Bucket,
    by_address: HashMap<String, Bucket>,
}

/// Up to `rate` tokens (at least one, when `rate > 0`), refilled at `rate` a second.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: u32, now: Instant) -> Self {
        Self {
            tokens: f64::from(rate.max(1)),
            at: now,
        }
    }

    fn refill(&mut self, rate: u32, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * f64::from(rate)).min(f64::from(rate.max(1)));
        self.at = now;
    }

    fn is_full(&self, rate: u32) -> bool {
        self.tokens >= f64::from(rate.max(1))
    }
}

impl Throttle {
    /// A budget of `global_rate` Argon2 runs a second for the broker, and
    /// `per_address_rate` for each client address.
    pub fn new(global_rate: u32, per_address_rate: u32) -> Self {
        let now = Instant::now();
        Self {
            global_rate,
            per_address_rate,
            state: Mutex::new(State {
                global: Bucket::full(global_rate, now),
                by_address: HashMap::new(),
            }),
        }
    }

    /// Takes one Argon2 run from the budgets of the broker and of `address`
    /// (`None`: the broker's only), or says there is none left.
    #[must_use]
    pub fn permit(&self, address: Option<&str>) -> bool {
        self.permit_at(address, Instant::now())
    }

    /// [`permit`](Self::permit) at the time `now`.
    #[must_use]
    pub fn permit_at(&self, address: Option<&str>, now: Instant) -> bool {
        if self.global_rate == 0 || (address.is_some() && self.per_address_rate == 0) {
            return false;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let State { global, by_address } = &mut *state;
        global.refill(self.global_rate, now);
        if global.tokens < 1.0 {
            return false;
        }
        if let Some(address) = address {
            let rate = self.per_address_rate;
            if !by_address.contains_key(address) && by_address.len() >= MAX_ADDRESSES {
                // Forget the addresses whose budget is whole again: they cost nothing lately.
                by_address.retain(|_, bucket| {
                    bucket.refill(rate, now);
                    !bucket.is_full(rate)
                });
                if by_address.len() >= MAX_ADDRESSES {
                    return false;
                }
            }
            let bucket = by_address
                .entry(address.to_owned())
                .or_insert_with(|| Bucket::full(rate, now));
            bucket.refill(rate, now);
            if bucket.tokens < 1.0 {
                return false;
            }
            bucket.tokens -= 1.0;
        }
        global.tokens -= 1.0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn budgets_refill_over_time_and_are_separate_per_address() {
        let t = Throttle::new(10, 2);
        let t0 = Instant::now();
        // Two at once from one address, then none until it refills.
        assert!(t.permit_at(Some("10.0.0.1"), t0));
        assert!(t.permit_at(Some("10.0.0.1"), t0));
        assert!(!t.permit_at(Some("10.0.0.1"), t0));
        // Another address has its own.
        assert!(t.permit_at(Some("10.0.0.2"), t0));
        // Half a second later: one more for the first.
        let t1 = t0 + Duration::from_millis(500);
        assert!(t.permit_at(Some("10.0.0.1"), t1));
        assert!(!t.permit_at(Some("10.0.0.1"), t1));
    }

    #[test]
    fn the_global_budget_bounds_every_address_together() {
        let t = Throttle::new(3, 100);
        let t0 = Instant::now();
        let granted = (0..50)
            .filter(|i| t.permit_at(Some(&format!("10.0.0.{i}")), t0))
            .count();
        assert_eq!(granted, 3);
        assert!(t.permit_at(None, t0 + Duration::from_secs(1)));
    }

    #[test]
    fn a_rate_of_zero_allows_no_argon2() {
        assert!(!Throttle::new(0, 5).permit(None));
        assert!(!Throttle::new(5, 0).permit(Some("10.0.0.1")));
        assert!(Throttle::new(5, 0).permit(None));
    }

    #[test]
    fn tracked_addresses_stay_bounded() {
        let t = Throttle::new(u32::MAX, 1);
        let t0 = Instant::now();
        for i in 0..MAX_ADDRESSES {
            assert!(t.permit_at(Some(&i.to_string()), t0));
        }
        // Every address spent its budget just now: a new one finds no room...
        assert!(!t.permit_at(Some("new"), t0));
        // ...until the others' budgets are whole again and they are forgotten.
        assert!(t.permit_at(Some("new"), t0 + Duration::from_secs(2)));
        let len = t.state.lock().unwrap().by_address.len();
        assert_eq!(len, 1);
    }
}
