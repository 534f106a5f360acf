//! The HTTP apply api: each apply is gated in Redis in one atomic step, the win is published
//! to Kafka and acknowledged by the broker before the user hears `issued`.
//!
//! # Layout
//! - [`configuration`]: flags and env vars, with the local stack's defaults.
//! - [`startup`]: connect, migrate, create the topic, bind, serve until shutdown.
//! - [`routes`]: apply, campaign stats, admin, health, metrics, the OpenAPI document.
//! - [`gate`]: the Redis gate (Lua scripts): admit, release, initialise.
//! - [`rebuild`]: rebuild a campaign's gate from MySQL and Kafka after Redis lost it.
//! - [`publisher`]: the idempotent Kafka producer, and undoing an admission it could not publish.
//! - [`course`]: the original course's stages, flaws included, for campaigns created with one.
//! - [`campaigns`]: the campaign cache in front of MySQL.
//! - [`error`]: the one HTTP error type.
//! - [`metrics`]: the Prometheus registry.

pub mod campaigns;
pub mod configuration;
pub mod course;
pub mod error;
pub mod gate;
pub mod metrics;
pub mod publisher;
pub mod rebuild;
pub mod routes;
pub mod startup;

pub use configuration::Settings;
pub use startup::Application;
