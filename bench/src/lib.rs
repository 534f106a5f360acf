//! `scripts/bench`: every performance figure of the project and its anchor, measured in one
//! run on this machine, as one table (`reports/bench.md`). A benchmark, never a test: nothing
//! here asserts a time.
//!
//! # Layout
//! - [`measure`]: one run, step by step, into [`measure::Figures`].
//! - [`report`]: the goals as rows (figure, anchor, ratio, goal) and the table over runs.
//! - [`tools`]: wrk, redis-benchmark and loadgen, run and read.
//! - [`procs`]: the processes a run starts and stops.
//! - [`reference`]: the bare reference apply (its own binary, `reference-apply`).

pub mod measure;
pub mod procs;
pub mod reference;
pub mod report;
pub mod tools;
