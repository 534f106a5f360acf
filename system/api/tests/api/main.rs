//! The api's integration tests, one binary (zero2prod's `tests/api/`): each module starts what
//! it needs against the real stack, on stores of its own (`testkit`).

mod bad_input;
mod clock;
mod faults;
mod fencing;
mod gate;
mod http_surface;
mod in_doubt;
mod pipeline;
mod reused_id;
mod stages;
