//! A budget of Argon2 verifications: one for the whole broker, one per client
//! address, both refilled continuously (token buckets).
//!
//! Mosquitto runs every plugin callback on its one thread, so each Argon2 run
//! (about 20 ms at the default parameters) stalls every client. Generated
//! keys with fast verifiers never need Argon2; only keys whose shape the cost
//! rule gives Argon2id (imported, UUID-shaped keys by default, known or not)
//! and records with Argon2 verifiers do. The budget bounds that work: past it,
//! such a CONNECT is refused at once.
//!
//! A [`LogBudget`] bounds the log lines clients can cause (refusals,
//! denials): past it, lines are counted, and the count is given with the next
//! line written, so a flood cannot fill the broker's disk.
//!
//! A [`Tarpit`] answers the refusals of a client address past its budget late,
//! for brokers that can wait without holding anyone else up (RMQTT's async
//! hooks): a client that floods with bogus CONNECTs and waits for each answer
//! gets one a second per socket, and costs the broker nearly nothing.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Most client addresses tracked at once; past it, idle ones are forgotten,
/// and a new address finds no budget until some are.
const MAX_ADDRESSES: usize = 10_000;

/// The shortest time between two looks for idle addresses when the table is
/// full: each look costs a pass over it, so a flood from ever new addresses
/// costs at most ten passes a second.
const SWEEP_INTERVAL: Duration = Duration::from_millis(100);

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
    last_sweep: Option<Instant>,
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
                last_sweep: None,
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
        let State {
            global,
            by_address,
            last_sweep,
        } = &mut *state;
        global.refill(self.global_rate, now);
        if global.tokens < 1.0 {
            return false;
        }
        if let Some(address) = address {
            let rate = self.per_address_rate;
            if !by_address.contains_key(address) && by_address.len() >= MAX_ADDRESSES {
                if last_sweep
                    .is_some_and(|last| now.saturating_duration_since(last) < SWEEP_INTERVAL)
                {
                    return false;
                }
                *last_sweep = Some(now);
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

/// Refusals answered late: each client address may be refused
/// `per_address_rate` times a second at once; past that, each refusal is held
/// for `delay` before it is answered, at most `max_held` at a time in all and
/// `max_held_per_address` for one address (past either, at once). The
/// decision depends on the address's refusals only, never on why the CONNECT
/// was refused, so the delay tells an attacker nothing.
#[derive(Debug)]
pub struct Tarpit {
    budget: Throttle,
    delay: Duration,
    max_held: usize,
    max_held_per_address: usize,
    holding: Mutex<Holding>,
}

/// The refusals held now: in all, and per address (only addresses holding
/// some: at most `max_held` entries).
#[derive(Debug, Default)]
struct Holding {
    total: usize,
    by_address: HashMap<String, usize>,
}

/// One refusal being held; counted among the held ones until dropped.
#[derive(Debug)]
#[must_use = "the refusal is held until this is dropped"]
pub struct Held<'a> {
    tarpit: &'a Tarpit,
    address: String,
}

impl Held<'_> {
    /// How long to hold the refusal before answering it.
    pub fn delay(&self) -> Duration {
        self.tarpit.delay
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let mut holding = self.tarpit.holding();
        holding.total = holding.total.saturating_sub(1);
        if let Some(count) = holding.by_address.get_mut(&self.address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                holding.by_address.remove(&self.address);
            }
        }
    }
}

impl Tarpit {
    /// Refusals of each address answered at once up to `per_address_rate` a
    /// second (0: none), then after `delay` (zero: never held), at most
    /// `max_held` at a time, `max_held_per_address` of them for one address.
    pub fn new(
        per_address_rate: u32,
        delay: Duration,
        max_held: usize,
        max_held_per_address: usize,
    ) -> Self {
        Self {
            budget: Throttle::new(u32::MAX, per_address_rate),
            delay,
            max_held,
            max_held_per_address,
            holding: Mutex::new(Holding::default()),
        }
    }

    fn holding(&self) -> std::sync::MutexGuard<'_, Holding> {
        self.holding.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// For one refusal of a client at `address` (as [`address_key`] gives
    /// it): `Some` when it is to be held for [`Held::delay`] before it is
    /// answered, `None` when it is answered at once (within the address's
    /// budget, no address known, no delay configured, or as many refusals
    /// already held as allowed, in all or for this address).
    pub fn hold(&self, address: Option<&str>) -> Option<Held<'_>> {
        self.hold_at(address, Instant::now())
    }

    /// [`hold`](Self::hold) at the time `now`.
    pub fn hold_at(&self, address: Option<&str>, now: Instant) -> Option<Held<'_>> {
        let address = address?;
        if self.delay.is_zero() || self.budget.permit_at(Some(address), now) {
            return None;
        }
        let mut holding = self.holding();
        let of_address = holding.by_address.get(address).copied().unwrap_or(0);
        if holding.total >= self.max_held || of_address >= self.max_held_per_address {
            return None;
        }
        holding.total += 1;
        holding
            .by_address
            .insert(address.to_owned(), of_address + 1);
        Some(Held {
            tarpit: self,
            address: address.to_owned(),
        })
    }

    /// How many refusals are being held now.
    pub fn held(&self) -> usize {
        self.holding().total
    }
}

/// The key a client address is budgeted under: an IPv4 address (IPv4-mapped
/// IPv6 included) as itself, an IPv6 address by its /64 network, the
/// smallest block one subscriber usually gets, so that rotating through it
/// gains nothing.
pub fn address_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let network = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{network}/64")
            }
        },
    }
}

/// Log lines that clients cause (refusals, denials) written per second by
/// default; past that, counted.
pub const CLIENT_LINES_PER_SECOND: u32 = 20;

/// What follows the number in the notes of lines held back.
const HELD_BACK: &str = " more refusals or denials not logged one by one";

/// At most `per_second` lines written in each second; the others are counted,
/// and the count is added to the next line written.
#[derive(Debug)]
pub struct LogBudget {
    per_second: u32,
    window: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    start: Option<Instant>,
    written: u32,
    held_back: u64,
}

impl LogBudget {
    /// At most `per_second` lines a second.
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second,
            window: Mutex::new(Window {
                start: None,
                written: 0,
                held_back: 0,
            }),
        }
    }

    /// The line to write now (`line`, with how many were held back since the
    /// last one written, if any), or `None` when it is only counted.
    pub fn line(&self, line: String) -> Option<String> {
        self.line_at(line, Instant::now())
    }

    /// The count of lines held back, once the second they were held back in
    /// is over and no line has carried it yet; call it about once a second,
    /// so that a count is written even when no line follows.
    pub fn flush(&self) -> Option<String> {
        self.flush_at(Instant::now())
    }

    /// [`flush`](Self::flush) at the time `now`.
    pub fn flush_at(&self, now: Instant) -> Option<String> {
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        let running = window
            .start
            .is_some_and(|start| now.saturating_duration_since(start) < Duration::from_secs(1));
        if window.held_back == 0 || running {
            return None;
        }
        let n = std::mem::take(&mut window.held_back);
        Some(format!(
            "{n}{HELD_BACK} (more than {} a second)",
            self.per_second
        ))
    }

    /// How many lines the counts in `log` say were held back: the reader of
    /// what [`line`](Self::line) and [`flush`](Self::flush) write, for tools
    /// and tests that account for every refusal.
    pub fn held_back_in(log: &str) -> usize {
        let mut pieces = log.split(HELD_BACK).peekable();
        let mut total = 0;
        while let Some(piece) = pieces.next() {
            // The number ends the text before each note.
            if pieces.peek().is_some() {
                total += piece
                    .rsplit(|c: char| c.is_whitespace() || c == '(')
                    .next()
                    .and_then(|n| n.parse::<usize>().ok())
                    .unwrap_or(0);
            }
        }
        total
    }

    /// [`line`](Self::line) at the time `now`.
    pub fn line_at(&self, line: String, now: Instant) -> Option<String> {
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        let expired = window
            .start
            .is_none_or(|start| now.saturating_duration_since(start) >= Duration::from_secs(1));
        if expired {
            window.start = Some(now);
            window.written = 0;
        }
        if window.written >= self.per_second {
            window.held_back = window.held_back.saturating_add(1);
            return None;
        }
        window.written += 1;
        match std::mem::take(&mut window.held_back) {
            0 => Some(line),
            n => Some(format!(
                "{line} (and {n}{HELD_BACK} before it: more than {} a second)",
                self.per_second
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn refusals_past_the_budget_are_held_and_counted_until_answered() {
        let delay = Duration::from_secs(1);
        let t = Tarpit::new(2, delay, 2, 2);
        let t0 = Instant::now();
        // Two at once from one address...
        assert!(t.hold_at(Some("10.0.0.1"), t0).is_none());
        assert!(t.hold_at(Some("10.0.0.1"), t0).is_none());
        // ...then held, for the configured delay.
        let first = t.hold_at(Some("10.0.0.1"), t0).unwrap();
        assert_eq!(first.delay(), delay);
        // Another address has its own budget; an unknown one is never held.
        assert!(t.hold_at(Some("10.0.0.2"), t0).is_none());
        assert!(t.hold_at(None, t0).is_none());
        // At most `max_held` at once: past it, answered at once.
        let second = t.hold_at(Some("10.0.0.1"), t0).unwrap();
        assert_eq!(t.held(), 2);
        assert!(t.hold_at(Some("10.0.0.1"), t0).is_none());
        drop(first);
        assert_eq!(t.held(), 1);
        assert!(
            t.hold_at(Some("10.0.0.1"), t0)
                .is_some_and(|h| h.delay() == delay)
        );
        drop(second);
        assert_eq!(t.held(), 0);
        // The budget refills: half a second later, one at once again.
        let later = t0 + Duration::from_millis(500);
        assert!(t.hold_at(Some("10.0.0.1"), later).is_none());
        assert!(t.hold_at(Some("10.0.0.1"), later).is_some());
    }

    #[test]
    fn one_address_holds_at_most_its_share() {
        let t = Tarpit::new(0, Duration::from_secs(1), 3, 2);
        let t0 = Instant::now();
        // A rate of 0: every refusal is past the budget.
        let a1 = t.hold_at(Some("10.0.0.1"), t0).unwrap();
        let a2 = t.hold_at(Some("10.0.0.1"), t0).unwrap();
        // The address's share is taken: at once, and the others keep theirs.
        assert!(t.hold_at(Some("10.0.0.1"), t0).is_none());
        let b1 = t.hold_at(Some("10.0.0.2"), t0).unwrap();
        // The total is taken.
        assert!(t.hold_at(Some("10.0.0.3"), t0).is_none());
        drop(a1);
        let a3 = t.hold_at(Some("10.0.0.1"), t0).unwrap();
        drop((a2, a3, b1));
        assert_eq!(t.held(), 0);
        assert!(t.holding().by_address.is_empty());
    }

    #[test]
    fn ipv6_addresses_are_budgeted_by_their_64_network() {
        let key = |s: &str| address_key(s.parse().unwrap());
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2:bbbb::9"), key("2001:db8:1:2::1"));
        assert_ne!(key("2001:db8:1:3::1"), key("2001:db8:1:2::1"));
    }

    #[test]
    fn a_full_table_is_swept_at_most_every_100_ms() {
        let t = Throttle::new(u32::MAX, 2);
        let t0 = Instant::now();
        // One address spent at t0, the others just before t0 + 1 s: full.
        assert!(t.permit_at(Some("old"), t0) && t.permit_at(Some("old"), t0));
        let t1 = t0 + Duration::from_millis(990);
        for i in 1..MAX_ADDRESSES {
            assert!(t.permit_at(Some(&i.to_string()), t1));
            assert!(t.permit_at(Some(&i.to_string()), t1));
        }
        // A sweep finds nothing idle yet ("old" is not whole again)...
        assert!(!t.permit_at(Some("a"), t0 + Duration::from_millis(995)));
        // ...and 55 ms later "old" is, but no sweep runs so soon.
        assert!(!t.permit_at(Some("b"), t0 + Duration::from_millis(1050)));
        // 100 ms after the last one, a sweep forgets it.
        assert!(t.permit_at(Some("c"), t0 + Duration::from_millis(1100)));
    }

    #[test]
    fn a_zero_delay_holds_nothing() {
        let t = Tarpit::new(0, Duration::ZERO, 10, 10);
        let t0 = Instant::now();
        assert!((0..100).all(|_| t.hold_at(Some("10.0.0.1"), t0).is_none()));
    }

    #[test]
    fn log_lines_past_the_budget_are_counted_and_the_count_is_given_with_the_next_one() {
        let budget = LogBudget::new(2);
        let t0 = Instant::now();
        let line = |i: u32, at| budget.line_at(format!("line {i}"), at);
        assert_eq!(line(1, t0).as_deref(), Some("line 1"));
        assert_eq!(line(2, t0).as_deref(), Some("line 2"));
        assert_eq!(line(3, t0), None);
        assert_eq!(line(4, t0 + Duration::from_millis(999)), None);
        // A new second: written again, with the count of those held back.
        let next = line(5, t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(
            next,
            "line 5 (and 2 more refusals or denials not logged one by one before it: \
             more than 2 a second)"
        );
        assert_eq!(
            line(6, t0 + Duration::from_secs(1)).as_deref(),
            Some("line 6")
        );
    }

    #[test]
    fn the_counts_written_are_read_back() {
        let budget = LogBudget::new(1);
        let t0 = Instant::now();
        let mut log = String::new();
        for i in 0..5 {
            log.extend(budget.line_at(format!("line {i}\n"), t0));
        }
        log.extend(budget.flush_at(t0 + Duration::from_secs(1)));
        for i in 5..8 {
            log.extend(budget.line_at(format!("line {i}\n"), t0 + Duration::from_secs(1)));
        }
        log.extend(budget.line_at("line 8".into(), t0 + Duration::from_secs(2)));
        assert_eq!(
            log.matches("line ").count() + LogBudget::held_back_in(&log),
            9
        );
        assert_eq!(LogBudget::held_back_in("no notes here"), 0);
    }

    #[test]
    fn a_count_no_line_carried_is_flushed_once_its_second_is_over() {
        let budget = LogBudget::new(1);
        let t0 = Instant::now();
        assert!(budget.line_at("a".into(), t0).is_some());
        assert!(budget.line_at("b".into(), t0).is_none());
        assert!(budget.line_at("c".into(), t0).is_none());
        // Not while its second runs; once, after it.
        assert_eq!(budget.flush_at(t0 + Duration::from_millis(500)), None);
        assert_eq!(
            budget.flush_at(t0 + Duration::from_secs(1)).as_deref(),
            Some("2 more refusals or denials not logged one by one (more than 1 a second)")
        );
        assert_eq!(budget.flush_at(t0 + Duration::from_secs(2)), None);
        // A later line carries nothing more.
        assert_eq!(
            budget
                .line_at("d".into(), t0 + Duration::from_secs(2))
                .as_deref(),
            Some("d")
        );
    }
}
