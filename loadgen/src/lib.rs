//! loadgen: fires a burst of distinct users at the apply api with goose, records every request
//! and its outcome, and writes reports. Verdicts are the verifier's job.
//!
//! # Layout
//! - [`cli`]: flags (ours win; goose never parses the process arguments).
//! - [`run`]: the whole run from the top: one stage, or [`compare`] for `--strategy all`.
//! - [`stage`]: one burst against one campaign, with its faults, written to one directory.
//! - [`compare`]: `--strategy all`: each strategy in turn, verified, then one comparison.
//! - [`matrix`]: `--fault all`: each fault in a round of its own, verified, then one matrix.
//! - [`judge`]: the verifier's judgement of a run, from inside loadgen, on the run's stores.
//! - [`target`]: the api at --host, or the [`pipeline`] loadgen starts there.
//! - [`pipeline`]: the api and consumer as child processes, and the handles faults act on.
//! - [`sandbox`]: stores of a run's own (Redis, a Kafka broker, a database) for the faults
//!   that act on the stores themselves.
//! - [`control`]: `--control` (a build with the `controls` feature only): a fix switched off in
//!   the pipeline loadgen starts, the negative control of a fault's round.
//! - [`nemesis`]: `--fault`: each fault struck and healed on its schedule during the burst,
//!   recorded in the history.
//! - [`client`]: the api's admin and campaign endpoints, typed by its wire types.
//! - [`scenario`]: the goose attack and the one transaction that applies and records.
//! - [`users`]: which user id each request carries (seeded, reproducible).
//! - [`arrivals`]: when each user arrives: the burst, `--rate`, or a `--stages` profile.
//! - [`history`]: the per-request records (the verifier's input) and live counters.
//! - [`stats`]: HDR latency histograms per result class, throughput over time.
//! - [`scrape`]: the api's and consumer's `/metrics` during the run, as timelines.
//! - [`threshold`]: `--threshold` budgets over the summary, which set the exit code.
//! - [`diff`]: `loadgen diff` and `--baseline`: two runs side by side, regressions marked.
//! - [`report`]: terminal table, `summary.json`, `summary.md`, a self-contained `report.html`.
//! - [`progress`]: the live progress bar, quiet when not on a terminal or under CI.

pub mod arrivals;
pub mod cli;
pub mod client;
pub mod compare;
pub mod control;
pub mod diff;
pub mod history;
pub mod judge;
pub mod matrix;
pub mod nemesis;
pub mod pipeline;
pub mod progress;
pub mod report;
pub mod run;
pub mod sandbox;
pub mod scenario;
pub mod scrape;
pub mod stage;
pub mod stats;
pub mod target;
pub mod threshold;
pub mod users;

pub use cli::Cli;
pub use run::run;
