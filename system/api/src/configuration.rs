//! Settings from flags and env vars. Every default matches the local stack (`scripts/stack`)
//! and `docker-compose.yml`, so the api runs with no configuration at all.

use std::{fmt, net::SocketAddr, time::Duration};

use clap::Parser;
use coupon_runtime::stack::{self, StackArgs};

use crate::issuance::{EpochSource, FirstGate};

/// The coupon apply api: gates each apply in Redis, publishes the win to Kafka.
#[derive(Clone, Parser)]
#[command(version, about, long_about = None)]
pub struct Settings {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "API_ADDR", default_value = stack::DEFAULT_API_ADDR)]
    pub addr: SocketAddr,

    /// The stores' addresses, topics and groups.
    #[command(flatten)]
    pub stack: StackArgs,

    /// Bearer token for /admin endpoints. Without one, they are disabled.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// How long an apply waits for the broker's acknowledgement before answering `pending`.
    #[arg(long, env = "PUBLISH_WAIT", default_value = "5s", value_parser = coupon_domain::duration::parse)]
    pub publish_wait: Duration,

    /// How long the producer keeps trying to deliver an event before it fails it for good
    /// (then the admission is undone). Also the grace a gate rebuild waits for in-flight events.
    #[arg(long, env = "DELIVERY_TIMEOUT", default_value = "10s", value_parser = coupon_domain::duration::parse)]
    pub delivery_timeout: Duration,

    /// On SIGTERM, how long to wait for admissions still in doubt (being published,
    /// republished or undone) before exiting. One dropped leaves its slot held until the
    /// reconciler releases it.
    #[arg(long, env = "SHUTDOWN_GRACE", default_value = "25s", value_parser = coupon_domain::duration::parse)]
    pub shutdown_grace: Duration,

    /// How often the reconciler looks for admissions no event followed (one api at a time
    /// leads it, by a lease in Redis).
    #[arg(long, env = "RECONCILE_EVERY", default_value = "5s", value_parser = coupon_domain::duration::parse)]
    pub reconcile_every: Duration,

    /// How long an admission must have had no event, row or failed event before the reconciler
    /// releases its slot. Keep it well above PUBLISH_WAIT + DELIVERY_TIMEOUT.
    #[arg(long, env = "RECONCILE_AFTER", default_value = "30s", value_parser = coupon_domain::duration::parse)]
    pub reconcile_after: Duration,

    /// Where a gate rebuild and the reconciler start reading each partition: the consumer
    /// group's committed offset. No flag: a test alone sets [`ReadFrom::Beginning`], the control
    /// that reads the whole topic as this project once did.
    #[arg(skip)]
    pub read_from: ReadFrom,

    /// Whether an admission checks that Redis has not restarted since its gate was built. No
    /// flag: a test alone turns it off, the control that hands out again the slots a Redis
    /// restarted from an older snapshot forgot.
    #[arg(skip = true)]
    pub restart_check: bool,

    /// Whether this api runs the reconciler. No flag: a test alone turns it off, to watch
    /// slots stay held without it.
    #[arg(skip = true)]
    pub reconcile: bool,

    /// Whether the reconciler skips a campaign whose gate has not changed since a pass found a
    /// row for every winner. No flag: a test alone turns it off, as the control that sees the
    /// rows counted on every pass.
    #[arg(skip = true)]
    pub reconcile_skips_settled: bool,

    /// Redis response timeout; above a burst's queueing time (the redis crate's default is 500ms).
    #[arg(long, env = "REDIS_RESPONSE_TIMEOUT", default_value = "10s", value_parser = coupon_domain::duration::parse)]
    pub redis_response_timeout: Duration,

    /// TCP listen backlog, so a burst of connections is not dropped into SYN retransmits.
    #[arg(long, env = "LISTEN_BACKLOG", default_value_t = 8192)]
    pub listen_backlog: u32,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 1024)]
    pub max_body_bytes: usize,

    /// Test only: `two-step` swaps the atomic gate for one that checks the count and takes a
    /// slot in two round trips, which over-issues under load. The verifier's negative control
    /// runs against it; never use it for anything else.
    #[arg(long, env = "GATE_MODE", default_value = "atomic", hide = true)]
    pub gate_mode: GateMode,

    /// Where each life of a gate gets its epoch: always the MySQL counter. There is no flag or
    /// env var for it; only a test can set [`EpochSource::Clock`] in code, as the negative
    /// control that shows the epoch check catching a source that repeats.
    #[arg(skip)]
    pub gate_epochs: EpochSource,

    /// How a campaign's first gate is built: from what the stores already hold for its id. No
    /// flag: a test alone sets [`FirstGate::Empty`], the control that trusts a gate an earlier
    /// campaign of the same id left in Redis, as this project once did.
    #[arg(skip)]
    pub first_gate: FirstGate,

    /// How long after reading every campaign an unknown id is answered 404 without asking
    /// MySQL again. No flag: a test alone sets zero, as the control that shows one MySQL read
    /// per apply to an unknown campaign without it.
    #[arg(skip = Duration::from_secs(1))]
    pub campaign_miss_window: Duration,

    /// How long a `/readyz` answer is reused before the stores are probed again. No flag: a
    /// test alone sets zero, as the control that shows one probe per request without it.
    #[arg(skip = Duration::from_secs(1))]
    pub readiness_reuse: Duration,

    /// Test only, settable in code alone: added to this process's clock wherever the api reads
    /// it (the course's stages' window check, a campaign's state, event times). A test skews
    /// one api with it to show the gate's window check does not trust the api's clock.
    #[arg(skip = time::Duration::ZERO)]
    pub clock_offset: time::Duration,

    /// Where the design checks a campaign's window: in the gate script against Redis `TIME`.
    /// No flag: a test alone sets [`WindowCheck::ApiClock`], the control that shows a skewed
    /// api issuing outside the window without the fix.
    #[arg(skip)]
    pub window_check: WindowCheck,

    /// Whether an apply whose gate call may have run without an answer (a response timeout)
    /// is answered 504 `unknown`. No flag: a test alone sets `false`, the control that answers
    /// 503 (a definite refusal) as this project once did, although the slot may be taken.
    #[arg(skip = true)]
    pub unknown_outcomes: bool,

    /// Whether a gate Redis lost (its marker gone while MySQL records it built) is rebuilt from
    /// the stores before it admits again. No flag: a test alone sets `false`, the control that
    /// starts it again empty, as this project once did, and hands out again the slots its rows
    /// and events hold.
    #[arg(skip = true)]
    pub rebuild_lost: bool,

    /// Whether an apply answered 504 `unknown` is resolved once Redis answers again: if its
    /// script did take a slot, the win is published like any other. No flag: a test alone sets
    /// `false`, the control that leaves that slot held with no event until the reconciler
    /// releases it (30 s and more later, when the sale may be over).
    #[arg(skip = true)]
    pub resolve_unknown: bool,

    /// Test only, settable in code alone: each admission waits for one notification on it
    /// before its event is published, as an api stalled by a pause or a frozen VM would.
    #[arg(skip)]
    pub publish_hold: Option<std::sync::Arc<tokio::sync::Notify>>,

    /// Whether an acknowledged event is answered `issued` only while the gate is still in the
    /// life that admitted it. No flag: a test alone sets `false`, the control that answers
    /// `issued` for an event a rebuild has fenced.
    #[arg(skip = true)]
    pub recheck_after_ack: bool,

    /// Give up connecting to a dependency at startup after this long (retrying with backoff).
    #[arg(long, env = "STARTUP_TIMEOUT", default_value = "60s", value_parser = coupon_domain::duration::parse)]
    pub startup_timeout: Duration,
}

/// Where a rebuild's read of the topic starts, per partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadFrom {
    /// The consumer group's committed offset: earlier events are rows or failed events.
    #[default]
    Committed,
    /// Test only: the first offset on the broker.
    Beginning,
}

/// Where the design's apply checks the campaign's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WindowCheck {
    /// Inside the gate script, against Redis `TIME`: one clock for every api.
    #[default]
    Gate,
    /// Test only: against this api's own clock, before the gate, as this project once did.
    ApiClock,
}

impl Settings {
    /// This process's clock, with the test-only offset.
    pub fn now(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc() + self.clock_offset
    }
}

/// Which gate the api runs. Only `atomic` is correct.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GateMode {
    Atomic,
    TwoStep,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("addr", &self.addr)
            .field("stack", &self.stack)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<set>"))
            .field("gate_mode", &self.gate_mode)
            .field("gate_epochs", &self.gate_epochs)
            .field("first_gate", &self.first_gate)
            .field("clock_offset", &self.clock_offset)
            .field("window_check", &self.window_check)
            .finish_non_exhaustive()
    }
}
