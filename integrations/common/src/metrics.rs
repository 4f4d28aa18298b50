//! The counters both brokers keep, in one [`prometheus`] registry: the RMQTT
//! node serves them as Prometheus text ([`Metrics::text`]) on its
//! `metrics_listen`, the Mosquitto plugin publishes each as a `$SYS` topic
//! ([`Metrics::samples`]), the convention of Mosquitto's own statistics.
//!
//! Every name starts with `structure_access_`:
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `authentications_total` | `outcome` (`accepted`, `refused`), `reason` (the audit's codes; `ok` when accepted) | CONNECTs decided |
//! | `argon2_total` | `result` (`verified`, `over_budget`) | Argon2 verifications run, and refused by the budget |
//! | `deliveries_total` | `result` (`delivered`, `dropped`) | deliveries decided one by one (a restricted key's wildcard, another application's message) |
//! | `sessions_ended_total` | `cause` (the audit's causes) | sessions revoked and disconnected |
//! | `takeovers_total` | `result` (`taken_over`, `refused`, `conflicting`) | CONNECTs for a device with a live session |
//! | `keys`, `devices` | | records in force |
//! | `change_set_seconds` | | change sets applied (a histogram of how long each took) |

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use crate::audit::{AUTH_REASONS, END_CAUSES};

/// The counters of one broker (or node).
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Accepted CONNECTs, and refused ones by reason, sessions ended by
    /// cause (resolved once: the CONNECT path does no label lookup).
    accepted: IntCounter,
    refused_by: Vec<(&'static str, IntCounter)>,
    ended_by: Vec<(&'static str, IntCounter)>,
    /// Argon2 verifications run.
    pub argon2_verified: IntCounter,
    /// Argon2 verifications the budget refused.
    pub argon2_over_budget: IntCounter,
    /// Deliveries decided one by one and delivered.
    pub delivered: IntCounter,
    /// Deliveries decided one by one and dropped.
    pub dropped: IntCounter,
    /// Takeovers done.
    pub taken_over: IntCounter,
    /// Takeovers refused (`same_key`).
    pub takeovers_refused: IntCounter,
    /// Conflicting client ids reported.
    pub conflicting: IntCounter,
    /// Keys in force.
    pub keys: IntGauge,
    /// Devices in force.
    pub devices: IntGauge,
    /// How long each change set took to apply.
    pub change_sets: Histogram,
}

/// The metric's full name.
fn name(short: &str) -> String {
    format!("structure_access_{short}")
}

impl Metrics {
    /// A registry of its own with every counter at zero (every label value
    /// the brokers use is there from the start, so a scrape shows them all).
    ///
    /// # Errors
    ///
    /// A metric the registry refuses (only if the names above were
    /// invalid: a bug, reported rather than a panic).
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let counter_vec = |short: &str, help: &str, labels: &[&str]| {
            let vec = IntCounterVec::new(Opts::new(name(short), help), labels)?;
            registry.register(Box::new(vec.clone()))?;
            Ok::<_, prometheus::Error>(vec)
        };
        let authentications = counter_vec(
            "authentications_total",
            "CONNECTs decided, by outcome and reason",
            &["outcome", "reason"],
        )?;
        let argon2 = counter_vec(
            "argon2_total",
            "Argon2 verifications run, and refused by the budget",
            &["result"],
        )?;
        let deliveries = counter_vec(
            "deliveries_total",
            "Deliveries decided one by one, delivered or dropped",
            &["result"],
        )?;
        let sessions_ended = counter_vec(
            "sessions_ended_total",
            "Sessions revoked and disconnected, by cause",
            &["cause"],
        )?;
        let takeovers = counter_vec(
            "takeovers_total",
            "CONNECTs for a device with a live session",
            &["result"],
        )?;
        let gauge = |short: &str, help: &str| {
            let gauge = IntGauge::new(name(short), help)?;
            registry.register(Box::new(gauge.clone()))?;
            Ok::<_, prometheus::Error>(gauge)
        };
        let keys = gauge("keys", "Access keys in force")?;
        let devices = gauge("devices", "Devices in force")?;
        let change_sets = Histogram::with_opts(
            HistogramOpts::new(
                name("change_set_seconds"),
                "How long each change set of records took to apply",
            )
            .buckets(vec![0.0001, 0.001, 0.01, 0.1, 1.0, 10.0]),
        )?;
        registry.register(Box::new(change_sets.clone()))?;
        let accepted = authentications.with_label_values(&["accepted", "ok"]);
        let refused_by = AUTH_REASONS
            .iter()
            .map(|reason| {
                (
                    *reason,
                    authentications.with_label_values(&["refused", reason]),
                )
            })
            .collect();
        let ended_by = END_CAUSES
            .iter()
            .map(|cause| (*cause, sessions_ended.with_label_values(&[cause])))
            .collect();
        Ok(Self {
            accepted,
            refused_by,
            ended_by,
            argon2_verified: argon2.with_label_values(&["verified"]),
            argon2_over_budget: argon2.with_label_values(&["over_budget"]),
            delivered: deliveries.with_label_values(&["delivered"]),
            dropped: deliveries.with_label_values(&["dropped"]),
            taken_over: takeovers.with_label_values(&["taken_over"]),
            takeovers_refused: takeovers.with_label_values(&["refused"]),
            conflicting: takeovers.with_label_values(&["conflicting"]),
            registry,
            keys,
            devices,
            change_sets,
        })
    }

    /// An accepted CONNECT.
    pub fn accepted(&self) {
        self.accepted.inc();
    }

    /// A refused CONNECT, by its reason code (one not in
    /// [`AUTH_REASONS`] counts as `other`).
    pub fn refused(&self, reason: &str) {
        if let Some(counter) = by_code(&self.refused_by, reason) {
            counter.inc();
        }
    }

    /// A session ended, by its cause code (one not in [`END_CAUSES`]
    /// counts as `other`).
    pub fn ended(&self, cause: &str) {
        if let Some(counter) = by_code(&self.ended_by, cause) {
            counter.inc();
        }
    }

    /// The records in force.
    pub fn records(&self, keys: usize, devices: usize) {
        self.keys.set(i64::try_from(keys).unwrap_or(i64::MAX));
        self.devices.set(i64::try_from(devices).unwrap_or(i64::MAX));
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn text(&self) -> String {
        let mut out = Vec::new();
        // Encoding to a vector fails only on a family the registry would
        // not hold: nothing is then shown rather than a panic.
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .is_err()
        {
            out.clear();
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// Every counter as (`path`, value): the path is the metric's short
    /// name, then its label values, `/` between them
    /// (`authentications/refused/wrong_secret`, `keys`,
    /// `change_sets/count`); what the Mosquitto plugin publishes under
    /// `$SYS/broker/plugin/structure-access/`.
    pub fn samples(&self) -> Vec<(String, u64)> {
        let mut out = vec![
            ("authentications/accepted".to_owned(), self.accepted.get()),
            ("argon2/verified".to_owned(), self.argon2_verified.get()),
            (
                "argon2/over_budget".to_owned(),
                self.argon2_over_budget.get(),
            ),
            ("deliveries/delivered".to_owned(), self.delivered.get()),
            ("deliveries/dropped".to_owned(), self.dropped.get()),
            ("takeovers/taken_over".to_owned(), self.taken_over.get()),
            ("takeovers/refused".to_owned(), self.takeovers_refused.get()),
            ("takeovers/conflicting".to_owned(), self.conflicting.get()),
            (
                "keys".to_owned(),
                u64::try_from(self.keys.get()).unwrap_or(0),
            ),
            (
                "devices".to_owned(),
                u64::try_from(self.devices.get()).unwrap_or(0),
            ),
            (
                "change_sets/count".to_owned(),
                self.change_sets.get_sample_count(),
            ),
        ];
        for (reason, counter) in &self.refused_by {
            out.push((format!("authentications/refused/{reason}"), counter.get()));
        }
        for (cause, counter) in &self.ended_by {
            out.push((format!("sessions_ended/{cause}"), counter.get()));
        }
        out
    }
}

/// The counter of `code`, or of `other` for a code not listed.
fn by_code<'a>(counters: &'a [(&'static str, IntCounter)], code: &str) -> Option<&'a IntCounter> {
    counters
        .iter()
        .find(|(c, _)| *c == code)
        .or_else(|| counters.iter().find(|(c, _)| *c == "other"))
        .map(|(_, counter)| counter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_show_in_the_text_and_the_samples() {
        let m = Metrics::new().unwrap();
        m.accepted();
        m.refused("wrong_secret");
        m.refused("wrong_secret");
        m.ended("deleted");
        m.records(3, 7);
        m.dropped.inc();
        m.change_sets.observe(0.002);
        let text = m.text();
        for line in [
            "structure_access_authentications_total{outcome=\"accepted\",reason=\"ok\"} 1",
            "structure_access_authentications_total{outcome=\"refused\",reason=\"wrong_secret\"} 2",
            "structure_access_authentications_total{outcome=\"refused\",reason=\"expired\"} 0",
            "structure_access_sessions_ended_total{cause=\"deleted\"} 1",
            "structure_access_deliveries_total{result=\"dropped\"} 1",
            "structure_access_keys 3",
            "structure_access_devices 7",
            "structure_access_change_set_seconds_count 1",
            "# TYPE structure_access_change_set_seconds histogram",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
        let samples = m.samples();
        let get = |path: &str| samples.iter().find(|(p, _)| p == path).map(|(_, v)| *v);
        assert_eq!(get("authentications/refused/wrong_secret"), Some(2));
        assert_eq!(get("authentications/accepted"), Some(1));
        assert_eq!(get("sessions_ended/deleted"), Some(1));
        assert_eq!(get("devices"), Some(7));
        assert_eq!(get("change_sets/count"), Some(1));
        // Two brokers in one process keep their own counts.
        assert_eq!(Metrics::new().unwrap().samples()[0].1, 0);
    }
}
