//! Settings from flags and env vars; defaults match the local stack.

use std::{fmt, net::SocketAddr, time::Duration};

use clap::Parser;
use coupon_runtime::stack::StackArgs;

/// The coupon consumer: writes each issued coupon from Kafka to MySQL, idempotently.
/// Run several with the same --group to share the partitions.
#[derive(Clone, Parser)]
#[command(version, about, long_about = None)]
pub struct Settings {
    /// The stores' addresses, topics and groups.
    #[command(flatten)]
    pub stack: StackArgs,

    /// Fault injection for the stage comparison: SIGKILL this process after writing this many
    /// coupon rows (either design). Never set it outside a demonstration.
    #[arg(long, env = "FAULT_CRASH_AFTER_ROWS", hide = true)]
    pub crash_after_rows: Option<u64>,

    /// Most events written in one transaction.
    #[arg(long, env = "BATCH_SIZE", default_value_t = 2000)]
    pub batch_size: usize,

    /// How often the retry worker re-processes open failed events.
    #[arg(long, env = "RETRY_INTERVAL", default_value = "5s", value_parser = coupon_domain::duration::parse)]
    pub retry_interval: Duration,

    /// Where `/metrics` is served (port 0 picks a free port).
    #[arg(long, env = "CONSUMER_METRICS_ADDR", default_value = "127.0.0.1:9101")]
    pub metrics_addr: SocketAddr,

    /// How many bytes of a failed record's payload are kept. No flag: a test alone sets it
    /// higher, as the negative control that shows an oversized record stopping a consumer
    /// that kept it whole.
    #[arg(skip = coupon_store::failed_events::PAYLOAD_KEPT)]
    pub failed_payload_kept: usize,

    /// Give up connecting to a dependency at startup after this long (retrying with backoff).
    #[arg(long, env = "STARTUP_TIMEOUT", default_value = "60s", value_parser = coupon_domain::duration::parse)]
    pub startup_timeout: Duration,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("stack", &self.stack)
            .finish_non_exhaustive()
    }
}
