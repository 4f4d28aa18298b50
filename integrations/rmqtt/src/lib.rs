//! Structure access keys in [RMQTT](https://github.com/rmqtt/rmqtt), a
//! clustered MQTT broker written in Rust: a native plugin and a small broker
//! binary (`structure-broker`) that runs one cluster node.
//!
//! - CONNECT is checked by the core's `Authenticator`: client id = device ID,
//!   username = access key, password = secret. Argon2 (imported secrets) runs on
//!   a blocking thread, within a budget per node and per client address;
//!   generated secrets cost about a microsecond, inline.
//! - PUBLISH and SUBSCRIBE go through the topic policy, and every delivery is
//!   decided by `may_receive` (RMQTT's `MessageExpiryCheck` hook, on the
//!   subscriber's node), whatever subscription it came through: deny by
//!   default, for sessions moved between nodes, queued messages, retained
//!   messages and shared subscriptions alike.
//! - Each node keeps, per session it authenticated, the key and the verifier
//!   that proved its secret ([`clients`]); wills are decided when they are
//!   published.
//! - The keys and devices files (the same formats as the Mosquitto plugin's)
//!   are reloaded on SIGHUP and, optionally, when they change, all or nothing;
//!   then every session, live or offline, on any node of the cluster, that the
//!   new records no longer allow is ended, without its will.
//! - Retained messages (RMQTT's retainer, in memory) and shared subscriptions
//!   ([`shared_subscription`]) are served under the policy.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod clients;
pub mod config;
pub mod node;
pub mod plugin;
pub mod shared_subscription;
pub mod state;
