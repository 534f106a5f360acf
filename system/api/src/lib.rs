//! The HTTP apply api: each apply is gated in Redis in one atomic step, the win is published
//! to Kafka and acknowledged by the broker before the user hears `issued`.
//!
//! # Layout
//! - [`configuration`]: flags and env vars, with the local stack's defaults.
//! - [`startup`]: connect, migrate, create the topic, bind, serve until shutdown.
//! - [`state`]: what every handler shares.
//! - [`routes`]: apply, campaign stats, admin, health, metrics, the OpenAPI document.
//! - [`issuance`]: what an apply does, one implementation per strategy: the reliable design
//!   (admit, publish, resolve in doubt, undo; gate rebuild) and the course's stages.
//! - [`gate`]: the Redis gate (Lua scripts): admit, release, initialise, install.
//! - [`publisher`]: the idempotent Kafka producer: acked, refused, or in doubt.
//! - [`campaigns`]: the campaign cache in front of MySQL.
//! - [`error`]: the one HTTP error type.
//! - [`metrics`]: the Prometheus registry.

pub mod campaigns;
pub mod configuration;
pub mod error;
pub mod gate;
pub mod issuance;
pub mod metrics;
pub mod publisher;
pub mod routes;
pub mod startup;
pub mod state;

pub use configuration::Settings;
pub use startup::Application;
