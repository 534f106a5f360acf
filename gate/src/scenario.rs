//! The gate's table: what runs, in which order, and what each check expects of it. Ports and
//! report directories are the ones the gate has always used.

use coupon_domain::Strategy;
use verifier::reconcile::CheckId;

/// One loadgen run, into `<report dir>/<dir>`, against an api loadgen starts on `port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Load {
    pub dir: &'static str,
    pub users: usize,
    /// Applies per user (`--repeat`); loadgen's default when `None`.
    pub repeat: Option<u32>,
    /// `--strategy`: a course stage, `reliable`, or `all` for the comparison.
    pub strategy: Option<&'static str>,
    /// `--fault`.
    pub fault: Option<&'static str>,
    /// `--threshold`: loadgen exits 3 when the run fails it, and the gate counts that as a
    /// failed run.
    pub threshold: Option<&'static str>,
    pub port: u16,
    /// Env for loadgen and the api it starts (`GATE_MODE=two-step`).
    pub env: Vec<(&'static str, &'static str)>,
    /// How many of loadgen's last output lines to show.
    pub show: usize,
    /// loadgen verifies this run itself (`--fault all`) and exits 1 when a round failed: the
    /// checks judge its files, so that exit is not the run failing.
    pub verifies_itself: bool,
    /// `--rate`: users per second, rather than the whole burst at once.
    pub rate: Option<usize>,
    /// `--control`: a fix switched off in the pipeline loadgen starts. The run must fail: loadgen
    /// exits 1 (the verdict failed), and the checks judge which invariant.
    pub control: Option<&'static str>,
    /// `--drain-timeout`.
    pub drain_timeout: Option<&'static str>,
    /// A control whose fault cannot heal without the fix (loadgen then ends with its fault
    /// failed, exit 2, after writing and verifying the run): that exit is accepted too.
    pub fault_may_fail: bool,
}

impl Load {
    fn new(dir: &'static str, users: usize, port: u16) -> Self {
        Self {
            dir,
            users,
            repeat: None,
            strategy: None,
            fault: None,
            threshold: None,
            port,
            env: Vec::new(),
            show: 3,
            verifies_itself: false,
            rate: None,
            control: None,
            drain_timeout: None,
            fault_may_fail: false,
        }
    }

    /// A negative control of the fault matrix: `fault` with `control`'s fix switched off (loadgen
    /// must exit 1, the verdict failed),
    /// users arriving at 10 a second (a burst would end before the Redis faults strike mid-sale).
    fn control(dir: &'static str, fault: &'static str, control: &'static str) -> Self {
        Self {
            rate: Some(10),
            control: Some(control),
            show: 6,
            ..Self::new(dir, 300, 18097).fault(fault)
        }
    }

    fn strategy(self, strategy: &'static str) -> Self {
        Self {
            strategy: Some(strategy),
            ..self
        }
    }

    fn fault(self, fault: &'static str) -> Self {
        Self {
            fault: Some(fault),
            ..self
        }
    }

    fn threshold(self, threshold: &'static str) -> Self {
        Self {
            threshold: Some(threshold),
            ..self
        }
    }

    fn repeat(self, repeat: u32) -> Self {
        Self {
            repeat: Some(repeat),
            ..self
        }
    }

    fn env(mut self, name: &'static str, value: &'static str) -> Self {
        self.env.push((name, value));
        self
    }

    fn show(self, show: usize) -> Self {
        Self { show, ..self }
    }

    /// loadgen's arguments, reports under `report_dir`.
    pub fn args(&self, report_dir: &std::path::Path) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = vec![
            "--users".into(),
            self.users.to_string().into(),
            "--host".into(),
            format!("http://127.0.0.1:{}", self.port).into(),
            "--report-dir".into(),
            report_dir.join(self.dir).into(),
        ];
        let options = [
            ("--repeat", self.repeat.map(|r| r.to_string())),
            ("--strategy", self.strategy.map(str::to_owned)),
            ("--fault", self.fault.map(str::to_owned)),
            ("--threshold", self.threshold.map(str::to_owned)),
            ("--rate", self.rate.map(|r| r.to_string())),
            ("--control", self.control.map(str::to_owned)),
            ("--drain-timeout", self.drain_timeout.map(str::to_owned)),
        ];
        for (flag, value) in options {
            if let Some(value) = value {
                args.extend([flag.into(), value.into()]);
            }
        }
        args
    }
}

/// What a scenario does before its checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Load(Load),
    /// Plants a coupon row beyond the limit into the campaign of the run in `dir`.
    PlantExtraRow {
        dir: &'static str,
    },
}

/// What the verifier must conclude.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Exit 0: every invariant holds.
    Holds,
    /// Exit 1 with `failed` among the failed invariants, and each of `held` passed.
    Violates {
        failed: CheckId,
        held: &'static [CheckId],
    },
}

/// One check: a line of the tally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// The verifier, run on the run in `dir`: its exit code and `verdict.json`.
    Verifier {
        name: String,
        dir: &'static str,
        expect: Expect,
    },
    /// The run's `summary.json` counts at least one consumer restart: the crash really fired.
    CrashFired { dir: &'static str },
    /// The comparison in `dir` has a line for every strategy (`compare.json`).
    ComparisonRan { name: String, dir: &'static str },
    /// The comparison in `dir` names naive's I1 and reliable holding, and wrote its HTML page.
    ComparisonVerdicts { name: String, dir: &'static str },
    /// The fault matrix in `dir` (`matrix.json`) has a round for each of `faults`, each
    /// verified clean with its fault struck and healed.
    MatrixHolds {
        name: String,
        dir: &'static str,
        faults: &'static [&'static str],
    },
}

impl Check {
    pub fn name(&self) -> String {
        match self {
            Self::Verifier { name, .. }
            | Self::ComparisonRan { name, .. }
            | Self::ComparisonVerdicts { name, .. }
            | Self::MatrixHolds { name, .. } => name.clone(),
            Self::CrashFired { dir } => format!("the injected consumer crash fired in {dir}"),
        }
    }
}

/// A heading, what to do, and the checks on the outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    pub heading: String,
    pub action: Action,
    pub checks: Vec<Check>,
}

fn verifier(name: &str, dir: &'static str, expect: Expect) -> Check {
    Check::Verifier {
        name: name.to_owned(),
        dir,
        expect,
    }
}

fn violates(failed: CheckId) -> Expect {
    Expect::Violates { failed, held: &[] }
}

/// Every scenario, in order. `users` is the first burst's size (`GATE_USERS`).
pub fn scenarios(users: usize) -> Vec<Scenario> {
    let mut table = vec![
        Scenario {
            heading: format!("gate 1: {users} users, the real design: the verifier must pass"),
            // Never more `issued` replies than the limit, as the client saw them.
            action: Action::Load(
                Load::new("good", users, 18090)
                    .threshold("issued<=limit")
                    .show(12),
            ),
            checks: vec![verifier(
                "verifier passes the real design",
                "good",
                Expect::Holds,
            )],
        },
        Scenario {
            heading: "gate 2a: 1000 users against the broken two-step gate: the verifier must \
                      fail on I1"
                .to_owned(),
            action: Action::Load(
                Load::new("broken", 1000, 18091)
                    .env("GATE_MODE", "two-step")
                    .show(12),
            ),
            checks: vec![verifier(
                "verifier catches the two-step gate's over-issuance",
                "broken",
                violates(CheckId::I1),
            )],
        },
        Scenario {
            heading: "gate 2b: an extra coupon row planted behind the database's back: the \
                      verifier must fail on I1"
                .to_owned(),
            action: Action::PlantExtraRow { dir: "good" },
            checks: vec![verifier(
                "verifier catches a planted extra row",
                "good",
                violates(CheckId::I1),
            )],
        },
        Scenario {
            heading: "gate 3a: naive stage, 1000 users: the verifier must fail on I1".to_owned(),
            action: Action::Load(Load::new("naive", 1000, 18092).strategy("naive")),
            checks: vec![verifier(
                "verifier catches the naive stage's over-issuance",
                "naive",
                violates(CheckId::I1),
            )],
        },
    ];
    for stage in [Strategy::RedisCounter, Strategy::Kafka] {
        let dir = stage.as_str();
        table.push(Scenario {
            heading: format!(
                "gate 3b: {stage} stage, 50 users x 5 applies: the verifier must fail on I2 and \
                 only after I1 held"
            ),
            action: Action::Load(Load::new(dir, 50, 18093).repeat(5).strategy(dir)),
            checks: vec![verifier(
                &format!("verifier catches {stage} giving one user several coupons"),
                dir,
                Expect::Violates {
                    failed: CheckId::I2,
                    held: &[CheckId::I1],
                },
            )],
        });
    }
    table.extend(faults());
    table.push(Scenario {
        heading: "gate 3d: --strategy all, 1000 users: the comparison shows naive violated and \
                  reliable holding"
            .to_owned(),
        action: Action::Load(Load::new("compare", 1000, 18095).strategy("all").show(12)),
        checks: vec![
            Check::ComparisonRan {
                name: "the comparison runs every strategy".to_owned(),
                dir: "compare",
            },
            Check::ComparisonVerdicts {
                name: "the comparison names naive's I1 and reliable holding".to_owned(),
                dir: "compare",
            },
        ],
    });
    table.push(Scenario {
        heading: "gate 3e: --fault all, 300 users: every fault in a round of its own, each \
                  verified (the faults on the stores themselves on stores of their own)"
            .to_owned(),
        action: Action::Load(Load {
            verifies_itself: true,
            ..Load::new("matrix", 300, 18096).fault("all").show(20)
        }),
        checks: vec![Check::MatrixHolds {
            name: "the real design holds through every fault of the matrix".to_owned(),
            dir: "matrix",
            faults: &[
                "consumer-crash",
                "api-crash",
                "db-outage",
                "db-restart",
                "db-readonly",
                "db-lock",
                "poison",
                "rebalance-storm",
                "stale-state",
                "clock-skew",
                "redis-kill",
                "redis-pause",
                "redis-flush",
                "redis-rollback",
                "kafka-kill",
                "kafka-pause",
                "api-kafka-latency",
                "api-kafka-reset",
                "api-kafka-blackhole",
            ],
        }],
    });
    table.extend(controls());
    table
}

/// 3f: the matrix's negative controls. Each switches off the fix one fault's round relies on;
/// the round must then fail, naming the invariant that fix keeps.
fn controls() -> Vec<Scenario> {
    let control = |fault: &'static str,
                   control: &'static str,
                   what: &str,
                   failed: CheckId,
                   held: &'static [CheckId]| Scenario {
        heading: format!(
            "gate 3f: --fault {fault} with --control {control} ({what}): the verdict must name \
             {failed}"
        ),
        action: Action::Load(Load::control(control, fault, control)),
        checks: vec![verifier(
            &format!("the verdict catches {fault} without its fix ({control})"),
            control,
            Expect::Violates { failed, held },
        )],
    };
    let mut poison = control(
        "poison",
        "no-poison-guard",
        "the consumer keeps a failed record whole and cannot capture 70 KB",
        CheckId::I6,
        &[],
    );
    // Poison strikes 200 ms in, so a burst will do; the fault never heals (nothing is
    // captured), and the drain need not wait long to see that.
    if let Action::Load(load) = &mut poison.action {
        load.rate = None;
        load.drain_timeout = Some("5s");
        load.fault_may_fail = true;
    }
    let mut stale = control(
        "stale-state",
        "empty-first-gate",
        "the new campaign takes the gate its id's earlier incarnation left in Redis",
        CheckId::I7,
        &[CheckId::I1, CheckId::I2],
    );
    // It strikes before the burst, so a burst will do; the slots the old gate holds never get
    // a row, and the drain need not wait long to see that.
    if let Action::Load(load) = &mut stale.action {
        load.rate = None;
        load.drain_timeout = Some("5s");
    }
    // At the controls' 10 users a second the window opens 10 s into the burst: 100 users
    // come early, half of them to the fast api.
    let skew = control(
        "clock-skew",
        "api-clock-window",
        "each api judges the sale window by its own clock, and one runs fast",
        CheckId::I8,
        &[CheckId::I1, CheckId::I2],
    );
    vec![
        control(
            "redis-pause",
            "no-unknown-resolution",
            "an apply answered unknown is left to the reconciler",
            CheckId::I7,
            &[CheckId::I1, CheckId::I2],
        ),
        control(
            "redis-rollback",
            "no-restart-check",
            "the gate trusts a Redis restarted from an older snapshot",
            CheckId::I1,
            &[],
        ),
        control(
            "redis-flush",
            "no-rebuild",
            "a lost gate starts again empty",
            CheckId::I1,
            &[],
        ),
        poison,
        stale,
        skew,
    ]
}

/// 3c: per-user caught under a database outage and a consumer crash, the real design holding
/// under both.
fn faults() -> Vec<Scenario> {
    let load = |dir, strategy, fault| {
        Action::Load(Load::new(dir, 300, 18094).strategy(strategy).fault(fault))
    };
    vec![
        Scenario {
            heading: "gate 3c: per-user stage, the consumer loses mysql mid-run: the verifier \
                      must name a lost winner (I3)"
                .to_owned(),
            action: load("per-user-outage", "per-user", "db-outage"),
            checks: vec![verifier(
                "verifier catches per-user losing winners",
                "per-user-outage",
                violates(CheckId::I3),
            )],
        },
        Scenario {
            heading: "gate 3c: the real design, the same outage: the verifier must pass".to_owned(),
            action: load("reliable-outage", "reliable", "db-outage"),
            checks: vec![verifier(
                "the real design holds under the same outage",
                "reliable-outage",
                Expect::Holds,
            )],
        },
        Scenario {
            heading: "gate 3c: per-user stage, the consumer crashes mid-run: the verifier must \
                      name a duplicate (I2)"
                .to_owned(),
            action: load("per-user-crash", "per-user", "consumer-crash"),
            checks: vec![
                verifier(
                    "verifier catches per-user duplicating rows after a consumer crash",
                    "per-user-crash",
                    violates(CheckId::I2),
                ),
                Check::CrashFired {
                    dir: "per-user-crash",
                },
            ],
        },
        Scenario {
            heading: "gate 3c: the real design, the same consumer crash: the verifier must pass"
                .to_owned(),
            action: load("reliable-crash", "reliable", "consumer-crash"),
            checks: vec![
                verifier(
                    "the real design holds through the same consumer crash",
                    "reliable-crash",
                    Expect::Holds,
                ),
                Check::CrashFired {
                    dir: "reliable-crash",
                },
            ],
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_keeps_its_checks_in_order() {
        let names: Vec<String> = scenarios(10_000)
            .iter()
            .flat_map(|s| s.checks.iter().map(Check::name))
            .collect();
        assert_eq!(
            names,
            [
                "verifier passes the real design",
                "verifier catches the two-step gate's over-issuance",
                "verifier catches a planted extra row",
                "verifier catches the naive stage's over-issuance",
                "verifier catches redis-counter giving one user several coupons",
                "verifier catches kafka giving one user several coupons",
                "verifier catches per-user losing winners",
                "the real design holds under the same outage",
                "verifier catches per-user duplicating rows after a consumer crash",
                "the injected consumer crash fired in per-user-crash",
                "the real design holds through the same consumer crash",
                "the injected consumer crash fired in reliable-crash",
                "the comparison runs every strategy",
                "the comparison names naive's I1 and reliable holding",
                "the real design holds through every fault of the matrix",
                "the verdict catches redis-pause without its fix (no-unknown-resolution)",
                "the verdict catches redis-rollback without its fix (no-restart-check)",
                "the verdict catches redis-flush without its fix (no-rebuild)",
                "the verdict catches poison without its fix (no-poison-guard)",
                "the verdict catches stale-state without its fix (empty-first-gate)",
                "the verdict catches clock-skew without its fix (api-clock-window)",
            ]
        );
    }

    #[test]
    fn each_verifier_check_expects_what_the_bash_gate_expected() {
        let expectations: Vec<(String, Expect)> = scenarios(10)
            .into_iter()
            .flat_map(|s| s.checks)
            .filter_map(|check| match check {
                Check::Verifier { name, expect, .. } => Some((name, expect)),
                _ => None,
            })
            .collect();
        let violates = |failed, held: &'static [CheckId]| Expect::Violates { failed, held };
        let expected = [
            ("verifier passes the real design", Expect::Holds),
            (
                "verifier catches the two-step gate's over-issuance",
                violates(CheckId::I1, &[]),
            ),
            (
                "verifier catches a planted extra row",
                violates(CheckId::I1, &[]),
            ),
            (
                "verifier catches the naive stage's over-issuance",
                violates(CheckId::I1, &[]),
            ),
            (
                "verifier catches redis-counter giving one user several coupons",
                violates(CheckId::I2, &[CheckId::I1]),
            ),
            (
                "verifier catches kafka giving one user several coupons",
                violates(CheckId::I2, &[CheckId::I1]),
            ),
            (
                "verifier catches per-user losing winners",
                violates(CheckId::I3, &[]),
            ),
            ("the real design holds under the same outage", Expect::Holds),
            (
                "verifier catches per-user duplicating rows after a consumer crash",
                violates(CheckId::I2, &[]),
            ),
            (
                "the real design holds through the same consumer crash",
                Expect::Holds,
            ),
            (
                "the verdict catches redis-pause without its fix (no-unknown-resolution)",
                violates(CheckId::I7, &[CheckId::I1, CheckId::I2]),
            ),
            (
                "the verdict catches redis-rollback without its fix (no-restart-check)",
                violates(CheckId::I1, &[]),
            ),
            (
                "the verdict catches redis-flush without its fix (no-rebuild)",
                violates(CheckId::I1, &[]),
            ),
            (
                "the verdict catches poison without its fix (no-poison-guard)",
                violates(CheckId::I6, &[]),
            ),
            (
                "the verdict catches stale-state without its fix (empty-first-gate)",
                violates(CheckId::I7, &[CheckId::I1, CheckId::I2]),
            ),
            (
                "the verdict catches clock-skew without its fix (api-clock-window)",
                violates(CheckId::I8, &[CheckId::I1, CheckId::I2]),
            ),
        ]
        .map(|(name, expect)| (name.to_owned(), expect));
        assert_eq!(expectations, expected);
    }

    #[test]
    fn loadgen_gets_the_bash_gates_flags_and_env() {
        let table = scenarios(10_000);
        let loads: Vec<&Load> = table
            .iter()
            .filter_map(|s| match &s.action {
                Action::Load(load) => Some(load),
                Action::PlantExtraRow { .. } => None,
            })
            .collect();
        let args = |load: &Load| -> Vec<String> {
            load.args(std::path::Path::new("r"))
                .into_iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(
            args(loads[0]),
            [
                "--users",
                "10000",
                "--host",
                "http://127.0.0.1:18090",
                "--report-dir",
                "r/good",
                "--threshold",
                "issued<=limit"
            ]
        );
        assert_eq!(loads[1].env, [("GATE_MODE", "two-step")]);
        assert!(loads.iter().skip(2).all(|l| l.env.is_empty()));
        assert_eq!(
            args(loads[3]),
            [
                "--users",
                "50",
                "--host",
                "http://127.0.0.1:18093",
                "--report-dir",
                "r/redis-counter",
                "--repeat",
                "5",
                "--strategy",
                "redis-counter"
            ]
        );
        assert_eq!(
            args(loads[7]),
            [
                "--users",
                "300",
                "--host",
                "http://127.0.0.1:18094",
                "--report-dir",
                "r/per-user-crash",
                "--strategy",
                "per-user",
                "--fault",
                "consumer-crash"
            ]
        );
        let ports: Vec<u16> = loads.iter().map(|l| l.port).collect();
        assert_eq!(
            ports,
            [
                18090, 18091, 18092, 18093, 18093, 18094, 18094, 18094, 18094, 18095, 18096, 18097,
                18097, 18097, 18097, 18097, 18097
            ]
        );
        assert_eq!(
            args(loads[14]),
            [
                "--users",
                "300",
                "--host",
                "http://127.0.0.1:18097",
                "--report-dir",
                "r/no-poison-guard",
                "--fault",
                "poison",
                "--control",
                "no-poison-guard",
                "--drain-timeout",
                "5s"
            ]
        );
    }
}
