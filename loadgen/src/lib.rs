//! loadgen: fires a burst of distinct users at the apply api with goose, records every request
//! and its outcome, and writes reports. Verdicts are the verifier's job.
//!
//! # Layout
//! - [`cli`]: flags (ours win; goose never parses the process arguments).
//! - [`users`]: which user id each request carries (seeded, reproducible).
//! - [`target`]: find the api, or start the api and consumer in a child process; create the campaign.
//! - [`scenario`]: the goose attack and the one transaction that applies and records.
//! - [`history`]: the per-request records (the verifier's input) and live counters.
//! - [`stats`]: HDR latency histograms per result class, throughput over time.
//! - [`report`]: terminal table, `summary.json`, `summary.md`, a self-contained `report.html`.
//! - [`progress`]: the live progress bar, quiet when not on a terminal or under CI.
//! - [`run`]: the whole run, step by step.
//! - [`compare`]: `--strategy all`: each strategy in turn, verified, then one comparison.

pub mod cli;
pub mod compare;
pub mod history;
pub mod progress;
pub mod report;
pub mod run;
pub mod scenario;
pub mod stats;
pub mod target;
pub mod users;

pub use cli::Cli;
pub use run::run;
