//! testkit's integration tests, one binary: each real service of the local stack, used through
//! the isolation helpers every other crate's tests rely on.

mod services;
