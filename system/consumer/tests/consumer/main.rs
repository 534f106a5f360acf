//! The consumer's integration tests, one binary: the consumer binary itself against the real
//! stack, on stores of its own (`testkit`).

mod fences;
mod poison;
mod redelivery;
mod sigkill;
