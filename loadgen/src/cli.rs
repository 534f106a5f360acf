//! Flags. goose's own options that matter are reachable under our names; goose never parses the
//! process arguments (it exits on flags it does not know).

use std::{path::PathBuf, time::Duration};

use clap::Parser;
use coupon_domain::{CampaignId, CouponLimit, Strategy};
use coupon_runtime::stack::StackArgs;

use crate::nemesis::{FaultKind, FaultSpec};

/// Over how many seconds the users of each `--fault all` round arrive, unless `--rate` or
/// `--stages` say otherwise.
pub const MATRIX_SECONDS: usize = 30;

/// The run completed, but a `--threshold` failed.
pub const EXIT_THRESHOLD: u8 = 3;

/// loadgen verified the run itself (`--fault all`, or a fault on stores of the run's own), and
/// a verdict failed or a fault never struck.
pub const EXIT_VERDICT: u8 = 1;

/// Fire a burst of distinct users at the apply api, record every request, write reports.
///
/// With no api answering at --host, loadgen starts the api and the consumer itself (in a child
/// process of its own binary) against the configured stack (REDIS_URL, DATABASE_URL,
/// KAFKA_BROKERS), so one command runs the whole pipeline.
///
/// Exit codes: 0 the run completed and every --threshold held (the verifier judges the
/// guarantee); 1 loadgen verified the run itself (`--fault all`, or a fault on the stores themselves) and
/// a verdict failed or a fault never struck; 2 it could not run; 3 it completed but a
/// --threshold failed.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "loadgen",
    version,
    about,
    long_about = None,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Distinct virtual users, each applying --repeat times (with --stages, the profile says how
    /// many arrive).
    #[arg(long, default_value_t = 10_000, conflicts_with = "stages")]
    pub users: usize,

    /// The api's base URL.
    #[arg(long, env = "LOADGEN_HOST", default_value = "http://127.0.0.1:8080")]
    pub host: String,

    /// How the fresh campaign issues: one of the course's stages (naive, redis-counter, kafka,
    /// per-user), this project's design (reliable), or `all` to run the same burst against each
    /// in turn, verify each, and write a comparison (docs/stages.md).
    #[arg(long, default_value = "reliable", value_parser = parse_strategies)]
    pub strategy: Strategies,

    /// Inject a fault into the pipeline loadgen starts: NAME[@WHEN][:FOR] (repeat, or separate
    /// with commas; with `--strategy all`, each fault gets a round of its own). WHEN is a time
    /// into the burst (`@2s`) or a count of issued replies (`@50issued`); FOR is how long
    /// before it heals (`:5s`). A fault due after the burst ends never strikes. Every injection
    /// and healing is a line of history.jsonl.
    /// `consumer-crash`: SIGKILL the consumer, which is restarted (default: once it wrote half
    /// the limit in rows; with `@Nissued`, once it wrote N rows). `api-crash`: SIGKILL the last
    /// of several apis (`--apis`), restarted after 1 s. `db-outage`: the consumer
    /// loses MySQL (default: from the start of the burst until 8 s after it). `db-lock`: the
    /// campaign's row held locked in an open transaction, which holds the design's coupon
    /// inserts (default 8 s from the start). `poison`: malformed, oversized and foreign records
    /// produced to the design's topic (default 200 ms in; `reliable` only); healed once each is
    /// a failed event. `rebalance-storm`: consumers join and leave the group (default 6 s from
    /// the start). `stale-state`: before the burst, the campaign's id gets an earlier
    /// incarnation, deleted by hand, whose gate, events and a late winner's event stay behind
    /// (`reliable` only). `clock-skew`: the campaign's sale window opens mid-burst (`@when`
    /// into it; default once half the users beyond the limit arrived), and before the
    /// burst the last of several apis is restarted with its clock fast (the sale open a minute
    /// by it when it really opens), and on the true
    /// clock again 2 s (`:for`) past the opening. The consumer's faults touch only strategies that run one (kafka, per-user,
    /// reliable).
    /// `db-restart` (SIGKILL of the MySQL server, restarted after 2 s), `db-readonly`
    /// (`read_only` on for 5 s), `redis-kill`, `redis-pause`, `redis-flush`, `redis-rollback`,
    /// `kafka-kill`, `kafka-pause` act on the stores themselves, and `api-kafka-latency`,
    /// `api-kafka-reset`, `api-kafka-blackhole` on a proxy between the api and Kafka (3 s more
    /// each way; every connection reset; nothing through), so their run gets stores of its own
    /// (a Redis, a Kafka broker and a database, or for the db faults a MariaDB server, started
    /// and stopped by loadgen), and loadgen verifies it before stopping them.
    /// `all`: the fault matrix, every fault with its defaults in a round of its own, each
    /// verified, written to `<report-dir>/faults-<id>/matrix.{md,json,html}`; its users arrive
    /// over about thirty seconds unless --rate or --stages say otherwise.
    /// Details: docs/faults.md.
    #[arg(long = "fault", value_name = "FAULT", value_delimiter = ',', value_parser = parse_fault)]
    pub fault_args: Vec<FaultArg>,

    /// A negative control: the fix that `--fault`'s one fault relies on, switched off in the
    /// pipeline loadgen starts, so that the run must fail (no-unknown-resolution for
    /// redis-pause, no-restart-check for redis-rollback, no-rebuild for redis-flush,
    /// no-poison-guard for poison, empty-first-gate for stale-state, api-clock-window for
    /// clock-skew). Only a loadgen built with
    /// `--features controls`.
    #[arg(long, hide = true, value_enum)]
    pub control: Option<crate::control::Control>,

    /// The faults `--fault` named (every one for `all`), filled in by [`Cli::resolved`].
    #[arg(skip)]
    pub fault: Vec<FaultSpec>,

    /// `--fault all`: the fault matrix.
    #[arg(skip)]
    pub fault_matrix: bool,

    /// How many api processes the pipeline loadgen starts: the first at --host, the others on
    /// free ports, all on the same stores; the burst's users are spread over them in turn.
    /// `api-crash` kills the last one, and `clock-skew` skews its clock, so each gets at least 2.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub apis: u16,

    /// Coupon limit of the fresh campaign this run creates.
    #[arg(long, default_value = "100", value_parser = parse_limit)]
    pub limit: CouponLimit,

    /// Aim at an existing campaign instead of creating a fresh one.
    #[arg(long)]
    pub campaign: Option<CampaignId>,

    /// How many times each user applies (the course's "same user many times", at scale).
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,

    /// With --repeat: each user's requests are due this far apart, on a fixed schedule from its
    /// launch (a request whose slot has passed goes at once). Latency from the intended send
    /// time then includes every wait a stall caused. Without it, a user's next request is due
    /// when its previous reply arrives (a closed loop).
    #[arg(long, value_parser = coupon_domain::duration::parse)]
    pub pace: Option<Duration>,

    /// Fraction of requests (0..=1) sent with one of a few hot user ids instead of their own.
    #[arg(long, default_value_t = 0.0)]
    pub hot_users: f64,

    /// A budget the run must meet, else loadgen exits 3 (repeatable): `METRIC OP VALUE`, e.g.
    /// `p99<50ms`, `p99[issued]<=25ms`, `intended.p99<100ms`, `errors<0.1%`, `issued==limit`,
    /// `rate>5000`. Metrics: p50, p90, p99, p99.9, max (ms, or us/s) of the service time, or
    /// with `intended.` before them from the intended send time, of every request or of one
    /// result class in [];
    /// errors (the share of 503, 504, timeouts, transport errors and unexpected replies, as a
    /// fraction or %); rate (responses/s); a result class's name (its count; `limit` is the
    /// campaign's limit). With --strategy all, every stage is held to them.
    #[arg(long = "threshold", value_name = "METRIC OP VALUE")]
    pub thresholds: Vec<crate::threshold::Threshold>,

    /// Per-request timeout; a request without a reply by then is recorded as `timeout`.
    #[arg(long, default_value = "30s", value_parser = coupon_domain::duration::parse)]
    pub timeout: Duration,

    /// Where run directories go; `<report-dir>/latest` points at the newest.
    #[arg(long, default_value = "reports")]
    pub report_dir: PathBuf,

    /// Seed for user ids, hot users and order: the same seed gives the same requests.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Open model: users arrive at this many per second (for --users / rate seconds)
    /// instead of all within about a second.
    #[arg(long, conflicts_with = "stages")]
    pub rate: Option<usize>,

    /// Open model with a load profile: stages of `DURATION:RATE/s`, each ramping linearly from
    /// the rate the one before ended at (0 at the start) to its own, e.g.
    /// `10s:1000/s,30s:5000/s,10s:0/s`. Hold a rate by repeating it; start at one with
    /// `0s:RATE/s`. The users are the profile's arrivals.
    #[arg(long, value_parser = parse_stages)]
    pub stages: Option<crate::arrivals::Stages>,

    /// Bearer token to create the campaign on an api that is already running.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// After the burst, wait up to this long for the pipeline to write every coupon.
    #[arg(long, default_value = "120s", value_parser = coupon_domain::duration::parse)]
    pub drain_timeout: Duration,

    /// How often to read the api's and the consumer's `/metrics` during the run, for the
    /// report's server-side timelines; `0s` reads none.
    #[arg(long, default_value = "250ms", value_parser = coupon_domain::duration::parse)]
    pub scrape_every: Duration,

    /// The consumer's `/metrics` when loadgen does not start the consumer itself (the consumer's
    /// default address).
    #[arg(
        long,
        env = "LOADGEN_CONSUMER_METRICS",
        default_value = "http://127.0.0.1:9101/metrics"
    )]
    pub consumer_metrics: String,

    /// After the run, compare it with this earlier run (a run directory, or a run id under
    /// --report-dir), as `loadgen diff` does.
    #[arg(long, value_name = "RUN")]
    pub baseline: Option<String>,

    /// Keep goose's own metrics, and its reports in the run directory (goose-report.json and
    /// .md). Off by default: they cost loadgen CPU on every request, and history.jsonl already
    /// holds each one.
    #[arg(long)]
    pub goose_metrics: bool,

    /// Extra goose log: goose's request log in the run directory (large; implies
    /// --goose-metrics).
    #[arg(long)]
    pub goose_request_log: bool,

    /// goose's own options, after `--` (e.g. `-- --running-metrics 5`; implies --goose-metrics).
    /// Ours win where both set the same thing: users, host, launch rate, iterations, report
    /// files.
    #[arg(last = true, value_name = "GOOSE_OPTIONS")]
    pub goose_args: Vec<String>,

    /// The stores' addresses, topics and groups (passed on to the api and consumer loadgen
    /// starts, and used to drain and verify).
    #[command(flatten)]
    pub stack: StackArgs,
}

/// What loadgen does instead of a run.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Compare two runs: throughput, latency percentiles, result counts, thresholds, the
    /// server's peaks and the verifier's verdicts, side by side with their changes. Prints the
    /// table and writes `diff-<baseline>.md` and `.json` into the second run's directory.
    Diff(DiffArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct DiffArgs {
    /// The baseline: a run directory, or a run id under --report-dir.
    pub baseline: String,
    /// The run to compare with it (default: the newest, `latest`).
    #[arg(default_value = "latest")]
    pub run: String,
    /// Where run ids are looked up.
    #[arg(long, default_value = "reports")]
    pub report_dir: PathBuf,
}

/// The strategies a run covers: one, or all of them in turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategies {
    One(Strategy),
    All,
}

impl Strategies {
    pub fn list(&self) -> Vec<Strategy> {
        match self {
            Self::One(strategy) => vec![*strategy],
            Self::All => Strategy::ALL.to_vec(),
        }
    }
}

/// `--limit`: a number from 1 to [`CouponLimit::MAX`].
fn parse_limit(raw: &str) -> Result<CouponLimit, String> {
    let number: u64 = raw
        .parse()
        .map_err(|_| format!("expected a number of coupons, got {raw:?}"))?;
    CouponLimit::parse(number).map_err(|error| error.to_string())
}

fn parse_stages(raw: &str) -> Result<crate::arrivals::Stages, String> {
    raw.parse()
}

fn parse_strategies(raw: &str) -> Result<Strategies, String> {
    if raw == "all" {
        return Ok(Strategies::All);
    }
    raw.parse()
        .map(Strategies::One)
        .map_err(|e: coupon_domain::strategy::StrategyError| format!("{e}, or all"))
}

/// One `--fault` value: a fault, or `all` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultArg {
    All,
    One(FaultSpec),
}

fn parse_fault(raw: &str) -> Result<FaultArg, String> {
    if raw.trim() == "all" {
        return Ok(FaultArg::All);
    }
    raw.parse().map(FaultArg::One)
}

#[derive(Parser)]
#[command(name = "goose", no_binary_name = true)]
struct GooseArgs {
    #[command(flatten)]
    configuration: goose::config::GooseConfiguration,
}

impl Cli {
    /// goose's configuration from the options after `--`; the caller then applies ours.
    pub fn goose_configuration(&self) -> anyhow::Result<goose::config::GooseConfiguration> {
        GooseArgs::try_parse_from(&self.goose_args)
            .map(|args| args.configuration)
            .map_err(|e| anyhow::anyhow!("bad goose option after `--`: {e}"))
    }
}

impl Cli {
    /// Whether goose keeps its own metrics: asked for, or needed by the request log or by any
    /// goose option after `--` (several refuse to run without them, others would show nothing).
    pub fn goose_metrics(&self) -> bool {
        self.goose_metrics || self.goose_request_log || !self.goose_args.is_empty()
    }

    /// The flags with what follows from them: with --stages, the users are the profile's
    /// arrivals.
    pub fn resolved(mut self) -> Self {
        if let Some(stages) = &self.stages {
            self.users = stages.arrivals();
        }
        self.fault_matrix = self.fault_args.contains(&FaultArg::All);
        // The matrix's sale outlasts its faults: users arrive over about thirty seconds (unless
        // --rate or --stages say otherwise), so that demand goes on after each fault heals
        // (a gate rebuilt after Redis lost it waits out the producer's 10 s delivery timeout
        // first) and the limit can still be reached (I7), as in a sale where users keep coming.
        if self.fault_matrix && self.rate.is_none() && self.stages.is_none() {
            self.rate = Some((self.users / MATRIX_SECONDS).max(1));
        }
        self.fault = if self.fault_matrix {
            FaultKind::ALL.into_iter().map(FaultSpec::new).collect()
        } else {
            self.fault_args
                .iter()
                .filter_map(|arg| match arg {
                    FaultArg::One(spec) => Some(*spec),
                    FaultArg::All => None,
                })
                .collect()
        };
        // The api that crashes, or runs on a skewed clock, is never the only one.
        if self.fault.iter().any(|f| f.kind.needs_apis()) {
            self.apis = self.apis.max(2);
        }
        self
    }

    /// Users goose starts per second: the whole burst within about a second, the open rate, or
    /// a profile's peak rate (its users then wait for their arrival, see [`Self::arrivals`]).
    pub fn launch_rate(&self) -> usize {
        match &self.stages {
            Some(stages) => stages.peak_rate().ceil() as usize,
            None => self.rate.unwrap_or(self.users),
        }
        .max(1)
    }

    /// When each user arrives.
    pub fn arrivals(&self) -> crate::arrivals::Arrivals {
        match &self.stages {
            Some(stages) => crate::arrivals::Arrivals::Staged(stages.clone()),
            None => crate::arrivals::Arrivals::Even {
                interval_us: 1e6 / self.launch_rate() as f64,
            },
        }
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.users >= 1, "--users must be at least 1");
        anyhow::ensure!(self.repeat >= 1, "--repeat must be at least 1");
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.hot_users),
            "--hot-users must be between 0 and 1"
        );
        anyhow::ensure!(
            self.campaign.is_none() || self.strategy == Strategies::One(Strategy::Reliable),
            "--strategy applies to the fresh campaign a run creates; it cannot be combined with --campaign"
        );
        anyhow::ensure!(
            self.pace.is_none_or(|pace| !pace.is_zero()),
            "--pace must be above 0 (leave it out for a closed loop)"
        );
        anyhow::ensure!(
            self.baseline.is_none() || self.strategy != Strategies::All,
            "--baseline compares one run with another; --strategy all writes its own comparison"
        );
        anyhow::ensure!(
            self.host.starts_with("http://") || self.host.starts_with("https://"),
            "--host must be a URL like http://127.0.0.1:8080, got {}",
            self.host
        );
        let needs_apis = self.fault_args.iter().any(|arg| match arg {
            FaultArg::All => true,
            FaultArg::One(spec) => spec.kind.needs_apis(),
        });
        anyhow::ensure!(
            !self.goose_metrics() || (self.apis == 1 && !needs_apis),
            "--goose-metrics sends every request to --host alone; it cannot be combined with \
             --apis {} or with api-crash or clock-skew (in --fault all too), which need several \
             apis",
            self.apis
        );
        anyhow::ensure!(
            !self.fault_args.contains(&FaultArg::All) || self.fault_args.len() == 1,
            "--fault all runs every fault with its defaults; it takes no other fault beside it"
        );
        let kinds: Vec<FaultKind> = self
            .fault_args
            .iter()
            .filter_map(|arg| match arg {
                FaultArg::One(spec) => Some(spec.kind),
                FaultArg::All => None,
            })
            .collect();
        anyhow::ensure!(
            !(kinds.contains(&FaultKind::RedisRollback) && kinds.contains(&FaultKind::RedisKill)),
            "redis-rollback needs a Redis without an append-only file, and redis-kill one with it: \
             give each a run of its own"
        );
        if kinds.contains(&FaultKind::ClockSkew) {
            anyhow::ensure!(
                kinds.iter().filter(|k| **k == FaultKind::ClockSkew).count() == 1,
                "the campaign has one sale window: give clock-skew once"
            );
            for other in [FaultKind::ApiCrash, FaultKind::StaleState] {
                anyhow::ensure!(
                    !kinds.contains(&other),
                    "clock-skew and {other} both restart what the other relies on (the last api, \
                     the campaign and its window): give each a run of its own"
                );
            }
            anyhow::ensure!(
                self.users > self.limit.get() as usize,
                "clock-skew opens the sale window once half the users beyond the limit arrived: \
                 it needs --users above --limit ({})",
                self.limit
            );
        }
        if let Strategies::One(strategy) = self.strategy {
            for kind in kinds.iter().filter(|k| k.needs_sandbox()) {
                if let Some(why) = crate::nemesis::not_applicable(*kind, strategy) {
                    anyhow::bail!("--fault {kind} does nothing under --strategy {strategy}: {why}");
                }
            }
        }
        if let Some(control) = self.control {
            anyhow::ensure!(
                crate::control::BUILT_IN,
                "--control switches a fix off on purpose; only a loadgen built with --features controls (the CI gate's) takes it"
            );
            anyhow::ensure!(
                kinds == [control.fault()],
                "--control {control} is the negative control of --fault {}: give that fault alone",
                control.fault()
            );
            anyhow::ensure!(
                self.campaign.is_none(),
                "--control runs on stores of the run's own, where --campaign's campaign does not exist"
            );
        }
        anyhow::ensure!(
            self.campaign.is_none() || !self.fault_args.contains(&FaultArg::All),
            "--fault all creates a campaign per fault; it cannot be combined with --campaign"
        );
        anyhow::ensure!(
            self.campaign.is_none()
                || !self
                    .fault_args
                    .iter()
                    .any(|arg| matches!(arg, FaultArg::One(spec) if spec.kind.needs_sandbox())),
            "a fault on the stores themselves runs on stores of the run's own, where --campaign's campaign does not exist"
        );
        anyhow::ensure!(
            self.campaign.is_none()
                || !self.fault_args.iter().any(
                    |arg| matches!(arg, FaultArg::One(spec) if spec.kind == FaultKind::StaleState)
                ),
            "stale-state deletes the run's campaign by hand and creates it again; it needs the fresh \
             campaign a run creates, never --campaign's"
        );
        anyhow::ensure!(
            self.campaign.is_none()
                || !self.fault_args.iter().any(
                    |arg| matches!(arg, FaultArg::One(spec) if spec.kind == FaultKind::ClockSkew)
                ),
            "clock-skew gives the run's campaign a sale window that opens mid-burst; it needs the \
             fresh campaign a run creates, never --campaign's"
        );
        anyhow::ensure!(
            self.limit.get() >= 2
                || !self.fault_args.iter().any(|arg| match arg {
                    FaultArg::All => true,
                    FaultArg::One(spec) => spec.kind == FaultKind::StaleState,
                }),
            "stale-state gives its late winner the slot after the earlier winners': it needs --limit 2 or more"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goose_options_after_the_separator_reach_goose_and_ours_stay_ours() {
        let cli = Cli::try_parse_from([
            "loadgen",
            "--users",
            "7",
            "--",
            "--running-metrics",
            "5",
            "--users",
            "99",
        ])
        .expect("parses");
        assert_eq!(cli.users, 7);
        let goose = cli.goose_configuration().expect("goose parses its options");
        assert_eq!(goose.running_metrics, Some(5));
        assert_eq!(
            goose.users,
            Some(99),
            "goose saw its own --users; attack() overrides it with ours"
        );
        let bad = Cli::try_parse_from(["loadgen", "--", "--no-such-goose-flag"]).expect("parses");
        assert!(bad.goose_configuration().is_err());
    }

    #[test]
    fn a_control_needs_the_controls_build_and_its_own_fault_alone() {
        let validated = |args: &[&str]| {
            let mut all = vec!["loadgen"];
            all.extend_from_slice(args);
            Cli::try_parse_from(all)
                .expect("parses")
                .resolved()
                .validate()
        };
        let own = validated(&["--fault", "poison", "--control", "no-poison-guard"]);
        if crate::control::BUILT_IN {
            assert!(own.is_ok(), "{own:?}");
        } else {
            let error = own
                .expect_err("an ordinary build refuses --control")
                .to_string();
            assert!(error.contains("--features controls"), "{error}");
        }
        for wrong in [
            &["--control", "no-poison-guard"][..],
            &["--fault", "redis-flush", "--control", "no-poison-guard"],
            &["--fault", "poison,db-lock", "--control", "no-poison-guard"],
        ] {
            assert!(validated(wrong).is_err(), "{wrong:?} was accepted");
        }
    }

    #[test]
    fn strategies_and_faults_parse_and_bad_ones_are_refused() {
        let cli = Cli::try_parse_from(["loadgen"]).expect("parses");
        assert_eq!(cli.strategy, Strategies::One(Strategy::Reliable));
        assert!(cli.fault.is_empty());
        let cli = Cli::try_parse_from([
            "loadgen",
            "--strategy",
            "all",
            "--fault",
            "consumer-crash,db-outage",
            "--fault",
            "db-lock@2s:3s",
        ])
        .expect("parses")
        .resolved();
        assert_eq!(cli.strategy.list(), Strategy::ALL.to_vec());
        let kinds: Vec<FaultKind> = cli.fault.iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            vec![
                FaultKind::ConsumerCrash,
                FaultKind::DbOutage,
                FaultKind::DbLock
            ]
        );
        assert_eq!(cli.fault[2].to_string(), "db-lock@2s:3s");
        assert!(!cli.fault_matrix);
        let all = Cli::try_parse_from(["loadgen", "--fault", "all"])
            .expect("parses")
            .resolved();
        assert!(all.fault_matrix);
        assert_eq!(all.rate, Some(333), "10,000 users over thirty seconds");
        assert_eq!(all.fault.len(), FaultKind::ALL.len());
        assert_eq!(
            all.apis, 2,
            "the matrix's api-crash round needs a second api"
        );
        let apis = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).expect("parses");
            cli.validate().map(|()| cli.resolved().apis)
        };
        assert_eq!(apis(&["loadgen"]).ok(), Some(1));
        assert_eq!(apis(&["loadgen", "--fault", "api-crash"]).ok(), Some(2));
        assert_eq!(
            apis(&["loadgen", "--fault", "api-crash", "--apis", "3"]).ok(),
            Some(3)
        );
        let goose = apis(&["loadgen", "--apis", "2", "--goose-metrics"]).expect_err("one host");
        assert!(goose.to_string().contains("--apis 2"), "{goose}");
        for crash in ["api-crash", "all"] {
            let refused = apis(&["loadgen", "--fault", crash, "--goose-metrics"]);
            assert!(refused.is_err(), "{crash} with goose's one host");
        }
        let stale = |args: &[&str]| Cli::try_parse_from(args).expect("parses").validate();
        assert!(stale(&["loadgen", "--fault", "stale-state", "--campaign", "c"]).is_err());
        assert!(stale(&["loadgen", "--fault", "stale-state", "--limit", "1"]).is_err());
        assert!(stale(&["loadgen", "--fault", "stale-state", "--limit", "2"]).is_ok());
        assert!(stale(&["loadgen", "--fault", "clock-skew", "--campaign", "c"]).is_err());
        assert_eq!(apis(&["loadgen", "--fault", "clock-skew"]).ok(), Some(2));
        assert!(apis(&["loadgen", "--fault", "clock-skew", "--goose-metrics"]).is_err());
        for refused in [
            &["loadgen", "--fault", "clock-skew,clock-skew@2s"][..],
            &["loadgen", "--fault", "clock-skew,api-crash"],
            &["loadgen", "--fault", "stale-state", "--fault", "clock-skew"],
            &["loadgen", "--fault", "clock-skew", "--users", "100"],
        ] {
            assert!(stale(refused).is_err(), "{refused:?}");
        }
        assert!(stale(&["loadgen", "--fault", "clock-skew", "--users", "101"]).is_ok());
        assert!(Cli::try_parse_from(["loadgen", "--apis", "0"]).is_err());
        let mixed = Cli::try_parse_from(["loadgen", "--fault", "all,poison"]).expect("parses");
        assert!(mixed.validate().is_err(), "all takes no other fault");
        let both = Cli::try_parse_from(["loadgen", "--fault", "redis-kill,redis-rollback"])
            .expect("parses");
        assert!(both.validate().is_err(), "two kinds of Redis persistence");
        let naive =
            Cli::try_parse_from(["loadgen", "--strategy", "naive", "--fault", "redis-flush"])
                .expect("parses");
        let refused = naive
            .validate()
            .expect_err("naive has no Redis")
            .to_string();
        assert!(refused.contains("uses no Redis"), "{refused}");
        let bad = Cli::try_parse_from(["loadgen", "--strategy", "optimistic"])
            .expect_err("an unknown strategy is refused")
            .to_string();
        assert!(bad.contains("unknown strategy `optimistic`"), "{bad}");
        let bad = Cli::try_parse_from(["loadgen", "--fault", "power-cut"])
            .expect_err("an unknown fault is refused")
            .to_string();
        assert!(bad.contains("unknown fault `power-cut`"), "{bad}");
        let pinned = Cli::try_parse_from(["loadgen", "--campaign", "c", "--strategy", "naive"])
            .expect("parses");
        assert!(
            pinned.validate().is_err(),
            "--strategy needs a fresh campaign"
        );
    }

    #[test]
    fn a_limit_or_a_campaign_id_the_api_would_refuse_is_refused_here() {
        let cli = Cli::try_parse_from(["loadgen", "--limit", "7", "--campaign", "spring-1"])
            .expect("parses");
        assert_eq!(cli.limit.get(), 7);
        assert_eq!(cli.campaign.map(String::from).as_deref(), Some("spring-1"));
        for bad in [
            ["--limit", "0"],
            ["--limit", "ten"],
            ["--limit", "10000001"],
            ["--campaign", "Spring 1"],
        ] {
            assert!(
                Cli::try_parse_from(["loadgen", bad[0], bad[1]]).is_err(),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn stages_bring_their_own_users_and_refuse_users_and_rate() {
        let cli = Cli::try_parse_from(["loadgen", "--stages", "0s:100/s,2s:100/s"])
            .expect("parses")
            .resolved();
        assert_eq!(cli.users, 200);
        assert_eq!(cli.launch_rate(), 100);
        for clash in [["--users", "5"], ["--rate", "5"]] {
            assert!(
                Cli::try_parse_from(["loadgen", "--stages", "2s:10/s", clash[0], clash[1]])
                    .is_err(),
                "{clash:?} with --stages was accepted"
            );
        }
        assert!(Cli::try_parse_from(["loadgen", "--stages", "2s:fast"]).is_err());
        let zero =
            Cli::try_parse_from(["loadgen", "--repeat", "3", "--pace", "0s"]).expect("parses");
        assert!(zero.validate().is_err(), "a pace of 0 is refused");
    }

    #[test]
    fn diff_is_a_subcommand_and_takes_no_run_flags() {
        let cli = Cli::try_parse_from(["loadgen", "diff", "run-a", "run-b"]).expect("parses");
        let Some(Command::Diff(diff)) = cli.command else {
            panic!("not a diff: {cli:?}");
        };
        assert_eq!(
            (diff.baseline.as_str(), diff.run.as_str()),
            ("run-a", "run-b")
        );
        let cli = Cli::try_parse_from(["loadgen", "diff", "run-a"]).expect("parses");
        assert!(matches!(cli.command, Some(Command::Diff(d)) if d.run == "latest"));
        assert!(Cli::try_parse_from(["loadgen", "--users", "5", "diff", "a", "b"]).is_err());
        let run = Cli::try_parse_from(["loadgen", "--users", "5"]).expect("parses");
        assert!(run.command.is_none());
    }

    #[test]
    fn without_goose_options_goose_gets_its_defaults() {
        let cli = Cli::try_parse_from(["loadgen"]).expect("parses");
        assert!(cli.goose_configuration().is_ok());
        assert_eq!(cli.users, 10_000);
    }
}
