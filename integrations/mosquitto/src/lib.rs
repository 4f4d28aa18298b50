//! A Mosquitto 2 plugin that authenticates devices with Structure access keys and
//! enforces the Structure MQTT topic policy, built on `structure-access`.
//!
//! `ffi` is the only module of the repository with `unsafe` code: a thin layer
//! that turns the broker's pointers into safe values for [`plugin::Plugin`],
//! where every decision is made. See the repository README for a `mosquitto.conf`.
#![deny(unsafe_op_in_unsafe_fn, missing_docs)]
#![warn(
    clippy::undocumented_unsafe_blocks,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::panic))]

mod broker;
pub mod config;
pub mod ffi;
pub mod plugin;
pub use structure_access_common::throttle;
