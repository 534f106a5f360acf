//! A loadgen run isolated from every other test: its own database, topic, consumer group, Redis
//! prefix and report directory, and a free port for the api it starts.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Command, Stdio},
};

use coupon_runtime::stack::StackArgs;
use testkit::{RedisNamespace, Stack, TestDatabase, TestTopic, unique_group, unique_name};

pub struct Isolated {
    pub stack: Stack,
    pub db: TestDatabase,
    pub topic: TestTopic,
    pub redis: RedisNamespace,
    pub group: String,
    pub reports: PathBuf,
}

impl Isolated {
    pub async fn new() -> anyhow::Result<Self> {
        let stack = Stack::from_env();
        Ok(Self {
            db: TestDatabase::create(&stack).await?,
            topic: TestTopic::create(&stack, 4).await?,
            redis: RedisNamespace::new(&stack)?,
            group: unique_group(),
            reports: std::env::temp_dir().join(unique_name("loadgen-test-reports")),
            stack,
        })
    }

    /// The stores' settings as loadgen's children (and the verifier) see them.
    pub fn stack_args(&self) -> StackArgs {
        self.stack.args(&[
            ("database-url", &self.db.url),
            ("topic", &self.topic.name),
            ("topic-partitions", "4"),
            ("group", &self.group),
            ("redis-key-prefix", self.redis.prefix.trim_end_matches(':')),
        ])
    }

    /// The loadgen binary with `args`, aimed at a free port, where it starts its own api and
    /// consumer; returns the command and that port.
    pub fn command(&self, args: &[&str]) -> anyhow::Result<(Command, u16)> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_loadgen"));
        command
            .args(args)
            .args(["--host", &format!("http://127.0.0.1:{port}")])
            .arg("--report-dir")
            .arg(&self.reports)
            .envs(self.stack_args().to_env())
            .env("CI", "true");
        Ok((command, port))
    }

    /// Runs loadgen with `args` to the end; returns the run it wrote (`latest`).
    pub fn loadgen(&self, args: &[&str]) -> anyhow::Result<PathBuf> {
        let (mut command, _port) = self.command(args)?;
        let output = command.stdin(Stdio::null()).output()?;
        anyhow::ensure!(
            output.status.success(),
            "loadgen exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(self.reports.join("latest").canonicalize()?)
    }

    pub async fn cleanup(self) -> anyhow::Result<()> {
        let _ = std::fs::remove_dir_all(&self.reports);
        self.redis.cleanup().await?;
        self.topic.cleanup().await?;
        self.db.cleanup().await
    }
}

/// The pids of pipeline children (`loadgen __serve-pipeline PART`) started for consumer group
/// `group`, read from /proc: a child's environment names its group. `part` is `api`,
/// `consumer`, or empty for both.
pub fn pipeline_children_of(group: &str, part: &str) -> Vec<i32> {
    let wanted = format!("KAFKA_GROUP={group}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let read =
                |file: &str| std::fs::read(format!("/proc/{pid}/{file}")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&read("cmdline")).replace('\0', " ");
            cmdline.contains(format!("__serve-pipeline {part}").trim_end())
                && read("environ")
                    .split(|byte| *byte == 0)
                    .any(|var| var == wanted.as_bytes())
        })
        .collect()
}

/// Every pipeline child of `group`.
pub fn pipeline_children(group: &str) -> Vec<i32> {
    pipeline_children_of(group, "")
}

/// How many applies the api at `metrics_url` has answered (0 while it does not answer).
pub async fn applies_answered(client: &reqwest::Client, metrics_url: &str) -> f64 {
    let Ok(response) = client.get(metrics_url).send().await else {
        return 0.0;
    };
    let metrics = response.text().await.unwrap_or_default();
    metrics
        .lines()
        .filter(|line| line.starts_with("coupon_api_apply_requests_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
