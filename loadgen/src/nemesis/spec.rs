//! What `--fault NAME[@when][:for]` says: which fault, when it strikes (a time into the burst,
//! or once loadgen has seen N `issued` replies), and how long before it heals.

use std::{fmt, str::FromStr, time::Duration};

/// A fault loadgen can inject into the pipeline it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// SIGKILL the consumer, which its supervisor restarts.
    ConsumerCrash,
    /// SIGKILL one of several api processes mid-burst; restart it.
    ApiCrash,
    /// Cut the consumer's MySQL connection (a TCP proxy drops it and refuses new ones).
    DbOutage,
    /// SIGKILL the run's own MariaDB server; restart it on the same data (InnoDB recovers
    /// what was committed).
    DbRestart,
    /// The run's own MariaDB server turned read-only: every write refused (error 1290), as on
    /// a replica during a failover.
    DbReadonly,
    /// Hold the campaign's row locked (`SELECT ... FOR UPDATE` in an open transaction): every
    /// coupon insert waits for it.
    DbLock,
    /// Produce malformed, oversized and foreign records straight to the topic.
    Poison,
    /// Consumers join and leave the consumer group over and over.
    RebalanceStorm,
    /// Before the burst, the campaign's id gets an earlier incarnation that leaves data behind:
    /// winners whose rows an operator then deletes by hand with the campaign, its gate in
    /// Redis, its events on the topic, one more winner's event still to be written. The burst
    /// runs on the campaign created again under the same id.
    StaleState,
    /// The campaign gets a sale window that opens mid-burst, and before the burst one of
    /// several apis is restarted with its clock fast: by its clock the sale is open
    /// while by the others' (and Redis's) it is not. It heals when that api is restarted on
    /// the true clock.
    ClockSkew,
    /// SIGKILL the run's own Redis; restart it from its append-only file.
    RedisKill,
    /// SIGSTOP the run's own Redis past the api's response timeout; SIGCONT it.
    RedisPause,
    /// FLUSHALL on the run's own Redis: every gate gone at once.
    RedisFlush,
    /// Restart the run's own Redis from an older snapshot: the admissions since are gone.
    RedisRollback,
    /// SIGKILL the run's own Kafka broker; restart it.
    KafkaKill,
    /// SIGSTOP the run's own Kafka broker; SIGCONT it.
    KafkaPause,
    /// Every byte between the api and the run's own broker arrives later (each way).
    ApiKafkaLatency,
    /// Every connection between the api and the run's own broker is reset, new ones too.
    ApiKafkaReset,
    /// Nothing between the api and the run's own broker gets through (and nothing is lost).
    ApiKafkaBlackhole,
}

impl FaultKind {
    pub const ALL: [Self; 19] = [
        Self::ConsumerCrash,
        Self::ApiCrash,
        Self::DbOutage,
        Self::DbRestart,
        Self::DbReadonly,
        Self::DbLock,
        Self::Poison,
        Self::RebalanceStorm,
        Self::StaleState,
        Self::ClockSkew,
        Self::RedisKill,
        Self::RedisPause,
        Self::RedisFlush,
        Self::RedisRollback,
        Self::KafkaKill,
        Self::KafkaPause,
        Self::ApiKafkaLatency,
        Self::ApiKafkaReset,
        Self::ApiKafkaBlackhole,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConsumerCrash => "consumer-crash",
            Self::ApiCrash => "api-crash",
            Self::DbOutage => "db-outage",
            Self::DbRestart => "db-restart",
            Self::DbReadonly => "db-readonly",
            Self::DbLock => "db-lock",
            Self::Poison => "poison",
            Self::RebalanceStorm => "rebalance-storm",
            Self::StaleState => "stale-state",
            Self::ClockSkew => "clock-skew",
            Self::RedisKill => "redis-kill",
            Self::RedisPause => "redis-pause",
            Self::RedisFlush => "redis-flush",
            Self::RedisRollback => "redis-rollback",
            Self::KafkaKill => "kafka-kill",
            Self::KafkaPause => "kafka-pause",
            Self::ApiKafkaLatency => "api-kafka-latency",
            Self::ApiKafkaReset => "api-kafka-reset",
            Self::ApiKafkaBlackhole => "api-kafka-blackhole",
        }
    }

    /// Whether it acts on Redis, Kafka or the MySQL server themselves, which every other run
    /// and test on the shared stack uses: such a fault runs on stores of the run's own (a
    /// sandbox).
    pub fn needs_sandbox(self) -> bool {
        matches!(
            self,
            Self::DbRestart
                | Self::DbReadonly
                | Self::RedisKill
                | Self::RedisPause
                | Self::RedisFlush
                | Self::RedisRollback
                | Self::KafkaKill
                | Self::KafkaPause
                | Self::ApiKafkaLatency
                | Self::ApiKafkaReset
                | Self::ApiKafkaBlackhole
        )
    }

    /// Whether it acts on the database server as a whole: the run's database is then on a
    /// MariaDB server of its own, not on the project's.
    pub fn needs_own_mysql_server(self) -> bool {
        matches!(self, Self::DbRestart | Self::DbReadonly)
    }

    /// Whether it acts on the api's traffic to the broker: the run's broker then has a proxy
    /// in front of a listener of the api's own.
    pub fn needs_api_kafka_proxy(self) -> bool {
        matches!(
            self,
            Self::ApiKafkaLatency | Self::ApiKafkaReset | Self::ApiKafkaBlackhole
        )
    }

    /// When it strikes unless `@when` says otherwise.
    pub fn default_when(self) -> When {
        match self {
            // Half the limit in rows (the armed consumer counts its own rows).
            Self::ConsumerCrash => When::HalfTheLimit,
            Self::DbOutage | Self::DbLock | Self::RebalanceStorm => When::At(Duration::ZERO),
            // Before the burst, whatever `@` says.
            Self::StaleState => When::At(Duration::ZERO),
            // When the window opens.
            Self::ClockSkew => When::HalfTheSurplus,
            Self::Poison => When::At(Duration::from_millis(200)),
            // Mid-sale: the gate holds admissions, and more are coming.
            Self::ApiCrash
            | Self::DbRestart
            | Self::DbReadonly
            | Self::RedisKill
            | Self::RedisPause
            | Self::RedisFlush
            | Self::RedisRollback
            | Self::KafkaKill
            | Self::KafkaPause
            | Self::ApiKafkaLatency
            | Self::ApiKafkaReset
            | Self::ApiKafkaBlackhole => When::QuarterTheLimit,
        }
    }

    /// How long it lasts unless `:for` says otherwise; `None`: it heals by itself (the crashed
    /// consumer is restarted at once; poison is a one-off).
    pub fn default_lasting(self) -> Option<Duration> {
        match self {
            Self::ConsumerCrash | Self::Poison | Self::RedisFlush | Self::StaleState => None,
            Self::DbOutage | Self::DbLock => Some(Duration::from_secs(8)),
            // Down this long before the restart.
            Self::ApiCrash => Some(Duration::from_secs(1)),
            // The skewed api keeps its clock this long past the window's opening.
            Self::ClockSkew => Some(Duration::from_secs(2)),
            Self::DbRestart => Some(Duration::from_secs(2)),
            Self::DbReadonly => Some(Duration::from_secs(5)),
            Self::RebalanceStorm => Some(Duration::from_secs(6)),
            // Down this long before the restart.
            Self::RedisKill => Some(Duration::from_secs(1)),
            // Past the api's Redis response timeout (10 s): the applies waiting on the stalled
            // gate are answered 504 `unknown`, and their scripts run once it resumes.
            Self::RedisPause => Some(Duration::from_secs(12)),
            // Admissions go on this long after the snapshot the restart goes back to.
            Self::RedisRollback => Some(Duration::from_millis(500)),
            Self::KafkaKill => Some(Duration::from_secs(2)),
            Self::KafkaPause => Some(Duration::from_secs(3)),
            Self::ApiKafkaLatency => Some(Duration::from_secs(5)),
            Self::ApiKafkaReset => Some(Duration::from_secs(3)),
            // Past the api's publish wait (5 s), within the producer's delivery timeout (10 s).
            Self::ApiKafkaBlackhole => Some(Duration::from_secs(6)),
        }
    }

    /// Whether it strikes before the burst (for `stale-state`, `@when` means nothing; for
    /// `clock-skew`, it is when the window opens).
    pub fn strikes_before_burst(self) -> bool {
        matches!(self, Self::StaleState | Self::ClockSkew)
    }

    /// Whether it runs over several apis (one of them is struck), so it gets at least 2.
    pub fn needs_apis(self) -> bool {
        matches!(self, Self::ApiCrash | Self::ClockSkew)
    }

    /// Whether `:for` means anything for it.
    fn lasts(self) -> bool {
        self.default_lasting().is_some()
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FaultKind {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == raw)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown fault `{raw}`; the faults are {}", names.join(", "))
            })
    }
}

/// When a fault strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// This long after the burst's first request.
    At(Duration),
    /// Once this many `issued` replies came back (for `consumer-crash`: once the consumer
    /// wrote this many rows).
    Issued(u64),
    /// `consumer-crash`'s default: half the campaign's limit in rows.
    HalfTheLimit,
    /// The store faults' default: once a quarter of the limit was issued (at least one).
    QuarterTheLimit,
    /// `clock-skew`'s default for the window's opening: when half the users beyond the limit
    /// have arrived, so that many come early and enough come after it to sell out.
    HalfTheSurplus,
}

impl When {
    /// The count it waits for, for a campaign of `limit` (at least 1): `issued` replies, or for
    /// an armed `consumer-crash`, rows; `None` for a time.
    pub fn count(self, limit: u32) -> Option<u64> {
        match self {
            Self::At(_) | Self::HalfTheSurplus => None,
            Self::Issued(count) => Some(count),
            Self::HalfTheLimit => Some(u64::from(limit / 2).max(1)),
            Self::QuarterTheLimit => Some(u64::from(limit / 4).max(1)),
        }
    }
}

/// One `--fault`: the fault, when, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultSpec {
    pub kind: FaultKind,
    pub when: When,
    /// How long before it heals; `None` for the faults that heal by themselves.
    pub lasting: Option<Duration>,
    /// Whether `db-outage` heals on its own clock (`:for` given) rather than its default,
    /// 8 s after the burst ends.
    pub lasting_given: bool,
}

impl FaultSpec {
    /// The fault with its defaults.
    pub fn new(kind: FaultKind) -> Self {
        Self {
            kind,
            when: kind.default_when(),
            lasting: kind.default_lasting(),
            lasting_given: false,
        }
    }
}

impl FromStr for FaultSpec {
    type Err = String;

    /// `NAME`, `NAME@2s`, `NAME@50issued`, `NAME:5s`, `NAME@1.5s:5s`.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let raw = raw.trim();
        let (head, lasting) = match raw.split_once(':') {
            Some((head, lasting)) => (head, Some(lasting)),
            None => (raw, None),
        };
        let (name, when) = match head.split_once('@') {
            Some((name, when)) => (name, Some(when)),
            None => (head, None),
        };
        let mut spec = Self::new(name.parse()?);
        if let Some(when) = when {
            if spec.kind == FaultKind::StaleState {
                return Err(format!(
                    "`{raw}`: {} strikes before the burst, so `@{when}` means nothing; leave it out",
                    spec.kind
                ));
            }
            spec.when = match when.strip_suffix("issued") {
                Some(_) if spec.kind == FaultKind::ClockSkew => {
                    return Err(format!(
                        "`{raw}`: clock-skew's `@` is when the sale window opens, a time into the burst like @2s"
                    ));
                }
                Some(count) => When::Issued(count.parse().ok().filter(|n| *n > 0).ok_or_else(
                    || format!("`{raw}`: `@{when}` needs a count above 0, like @50issued"),
                )?),
                None => When::At(coupon_domain::duration::parse(when).map_err(|e| {
                    format!("`{raw}`: `@{when}` is neither a time into the burst ({e}) nor a count like 50issued")
                })?),
            };
        }
        if let Some(lasting) = lasting {
            if !spec.kind.lasts() {
                return Err(format!(
                    "`{raw}`: {} heals by itself, so `:{lasting}` means nothing; leave it out",
                    spec.kind
                ));
            }
            let lasting = coupon_domain::duration::parse(lasting)
                .map_err(|e| format!("`{raw}`: `:{lasting}` is no duration: {e}"))?;
            if lasting.is_zero() {
                return Err(format!("`{raw}`: a fault must last longer than 0s"));
            }
            spec.lasting = Some(lasting);
            spec.lasting_given = true;
        }
        Ok(spec)
    }
}

impl fmt::Display for FaultSpec {
    /// The spec as typed, defaults left out: `db-lock`, `db-lock@2s:5s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        match self.when {
            When::HalfTheLimit | When::QuarterTheLimit | When::HalfTheSurplus => {}
            when if when == self.kind.default_when() => {}
            When::At(at) => write!(f, "@{}", humantime(at))?,
            When::Issued(n) => write!(f, "@{n}issued")?,
        }
        if self.lasting_given
            && let Some(lasting) = self.lasting
        {
            write!(f, ":{}", humantime(lasting))?;
        }
        Ok(())
    }
}

/// `1.5s`, `250ms`, `2s`: the shortest form [`coupon_domain::duration::parse`] reads back.
fn humantime(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else if d.as_secs() == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_name_takes_the_fault_s_defaults() {
        let spec: FaultSpec = "db-outage".parse().expect("parses");
        assert_eq!(spec, FaultSpec::new(FaultKind::DbOutage));
        assert_eq!(spec.when, When::At(Duration::ZERO));
        assert_eq!(spec.lasting, Some(Duration::from_secs(8)));
        assert!(!spec.lasting_given);
        let crash: FaultSpec = "consumer-crash".parse().expect("parses");
        assert_eq!((crash.when, crash.lasting), (When::HalfTheLimit, None));
        let kill: FaultSpec = "kafka-kill".parse().expect("parses");
        assert_eq!(
            (kill.when, kill.lasting),
            (When::QuarterTheLimit, Some(Duration::from_secs(2)))
        );
        let sandboxed: Vec<&str> = FaultKind::ALL
            .iter()
            .filter(|k| k.needs_sandbox())
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            sandboxed,
            [
                "db-restart",
                "db-readonly",
                "redis-kill",
                "redis-pause",
                "redis-flush",
                "redis-rollback",
                "kafka-kill",
                "kafka-pause",
                "api-kafka-latency",
                "api-kafka-reset",
                "api-kafka-blackhole"
            ]
        );
    }

    #[test]
    fn when_and_how_long_parse_in_every_combination() {
        let spec: FaultSpec = "db-lock@1.5s:5s".parse().expect("parses");
        assert_eq!(spec.when, When::At(Duration::from_millis(1500)));
        assert_eq!(spec.lasting, Some(Duration::from_secs(5)));
        assert!(spec.lasting_given);
        let spec: FaultSpec = "consumer-crash@40issued".parse().expect("parses");
        assert_eq!(spec.when, When::Issued(40));
        let spec: FaultSpec = "rebalance-storm:3s".parse().expect("parses");
        assert_eq!(spec.when, When::At(Duration::ZERO));
        assert_eq!(spec.lasting, Some(Duration::from_secs(3)));
        let spec: FaultSpec = "poison@250ms".parse().expect("parses");
        assert_eq!(spec.when, When::At(Duration::from_millis(250)));
    }

    #[test]
    fn a_spec_prints_as_it_was_typed_and_reads_back() {
        for typed in [
            "db-lock@1.5s:5s",
            "consumer-crash@40issued",
            "rebalance-storm:3s",
            "poison@250ms",
            "db-outage",
            "consumer-crash",
            "redis-kill@2s:3s",
            "redis-flush@10issued",
            "kafka-pause",
            "redis-pause@3s:11s",
            "clock-skew",
            "clock-skew@1.5s:3s",
        ] {
            let spec: FaultSpec = typed.parse().expect("parses");
            assert_eq!(spec.to_string(), typed);
            assert_eq!(spec.to_string().parse::<FaultSpec>(), Ok(spec));
        }
    }

    #[test]
    fn bad_specs_are_refused_with_what_was_wrong() {
        let error = |raw: &str| raw.parse::<FaultSpec>().expect_err(raw);
        assert!(error("power-cut").contains("unknown fault `power-cut`"));
        assert!(error("power-cut").contains("db-lock"));
        assert!(error("db-lock@soon").contains("@soon"));
        assert!(error("db-lock@0issued").contains("count above 0"));
        assert!(error("db-lock:forever").contains(":forever"));
        assert!(error("db-lock:0s").contains("longer than 0s"));
        assert!(error("consumer-crash:5s").contains("heals by itself"));
        assert!(error("poison:5s").contains("heals by itself"));
        assert!(error("redis-flush:1s").contains("heals by itself"));
        assert!(error("stale-state@2s").contains("before the burst"));
        assert!(error("stale-state:2s").contains("heals by itself"));
        assert!(error("clock-skew@50issued").contains("when the sale window opens"));
    }
}
