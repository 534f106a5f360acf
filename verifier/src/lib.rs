//! The verifier: waits for the pipeline to drain, collects what MySQL, Redis and Kafka hold and
//! what the loadgen saw, and proves the invariants I1 to I7 on it.
//!
//! # Layout
//! - [`cli`]: flags, env vars and exit codes.
//! - [`collect`]: read-only fetchers, one per store, plus the loadgen history.
//! - [`drain`]: wait until the consumer caught up.
//! - [`reconcile`]: the pure core: facts in, verdict out.
//! - [`render`]: the table, `verdict.json` and `verdict.md`.

pub mod reconcile;
