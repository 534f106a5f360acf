//! The verifier: waits for the pipeline to drain, collects what MySQL, Redis and Kafka hold and
//! what the loadgen saw, and proves the invariants I1 to I8 on it.
//!
//! # Layout
//! - [`cli`]: flags, env vars and exit codes (0 holds, 1 violated, 2 cannot verify).
//! - [`collect`]: read-only fetchers, one per store, plus the loadgen history.
//! - [`drain`]: wait until the consumer caught up and every winner is accounted for.
//! - [`reconcile`]: the pure core: facts in, verdict out.
//! - [`render`]: the table, `verdict.json` (a typed [`render::VerdictFile`], read back by the
//!   end-to-end gate), `verdict.md` and the final line.
//! - [`verify`]: one verification, step by step.

pub mod cli;
pub mod collect;
pub mod drain;
pub mod reconcile;
pub mod render;
pub mod verify;
