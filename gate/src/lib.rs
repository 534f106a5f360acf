//! The end-to-end gate, run by `scripts/test` after the unit and integration tests: loadgen
//! fires bursts at the real stack, the verifier judges each run, and the gate reads what they
//! wrote (`verdict.json`, `summary.json`, `compare.json`) to decide. Negative controls come
//! with the real design: a gate that cannot fail proves nothing, so every control must fail for
//! the gate to pass.
//!
//! # Layout
//! - [`cli`]: flags and env vars (`GATE_USERS`, `GATE_REPORT_DIR`), and `--help`.
//! - [`scenario`]: the table: each scenario's run, in order, and the checks on it.
//! - [`judge`]: each check's judgement on the typed files a run left; pure.
//! - [`children`]: loadgen, the verifier and cargo as child processes.
//! - [`run`]: the gate, scenario by scenario, printing each check and the tally.

pub mod children;
pub mod cli;
pub mod judge;
pub mod run;
pub mod scenario;
