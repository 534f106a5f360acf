//! The consumer: reads `CouponIssued` events from Kafka and writes coupon rows to MySQL.
//! Offsets are committed only after the database transaction committed, and writes are
//! idempotent, so a crash or rebalance at any point redelivers harmlessly.
//!
//! # Layout
//! - [`configuration`]: flags and env vars, with the local stack's defaults.
//! - [`startup`]: connect, migrate, create the topic, run the loops until shutdown.
//! - [`consume`]: the consume loop: batch, write in one transaction, then commit offsets.
//! - [`retry`]: the worker that re-processes failed events until they are resolved.
//! - [`metrics`]: the Prometheus registry and its `/metrics` endpoint.
//! - [`course`]: the course's consumer, for campaigns run as its Kafka stages (docs/stages.md).
//! - [`fault`]: an injected crash, for the stage comparison.

pub mod configuration;
pub mod consume;
pub mod course;
pub mod fault;
pub mod metrics;
pub mod retry;
pub mod startup;

pub use configuration::Settings;
pub use startup::Consumer;
