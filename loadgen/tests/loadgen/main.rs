//! loadgen's integration tests, one binary: the loadgen binary against the real stack, with the
//! pipeline it starts itself.

mod burst;
mod isolated;
mod killed;
mod nemesis;
mod paused;
