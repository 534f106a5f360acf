//! The external load tools the bench drives, each run as a process and read from its output:
//! `wrk` (HTTP), `redis-benchmark` (the gate script alone) and our own `loadgen`.

use std::{path::Path, process::Stdio, time::Duration};

use anyhow::{Context, bail};
use tokio::process::Command;

/// What one wrk run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Wrk {
    pub rate: f64,
    pub p99_ms: f64,
    /// Responses other than 2xx/3xx (sold out is 410, so this is no error count).
    pub non_2xx: u64,
}

/// One wrk run: POST apply to `campaign` at `base`, each request a user id no other uses
/// (`bench/apply.lua`).
pub async fn wrk(
    base: &str,
    campaign: &str,
    connections: u32,
    seconds: u32,
) -> anyhow::Result<Wrk> {
    let output = Command::new("wrk")
        .args(["-t2", &format!("-c{connections}"), &format!("-d{seconds}s")])
        .args(["--latency", "-s", "bench/apply.lua", base])
        .env("CAMPAIGN", campaign)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(u64::from(seconds) + 60), output)
        .await
        .with_context(|| format!("wrk against {base} did not end"))?
        .context("failed to run wrk (scripts/bench installs it)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "wrk against {base} failed: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    parse_wrk(&text).with_context(|| format!("unexpected wrk output:\n{text}"))
}

fn parse_wrk(text: &str) -> Option<Wrk> {
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|line| line.strip_prefix(prefix).map(str::trim))
    };
    Some(Wrk {
        rate: field("Requests/sec:")?.parse().ok()?,
        p99_ms: wrk_duration_ms(field("99%")?)?,
        non_2xx: field("Non-2xx or 3xx responses:").map_or(Some(0), |n| n.parse().ok())?,
    })
}

/// wrk's durations: `850.00us`, `12.34ms`, `1.02s`, `2.00m`.
fn wrk_duration_ms(raw: &str) -> Option<f64> {
    let split = raw.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = raw.split_at(split);
    let number: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        "m" => number * 60_000.0,
        _ => return None,
    })
}

/// What one redis-benchmark run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RedisBenchmark {
    pub rate: f64,
    pub p99_ms: f64,
}

/// `redis-benchmark --csv` running one command (`__rand_int__` in it is replaced per call).
pub async fn redis_benchmark(
    host: &str,
    port: u16,
    connections: u32,
    requests: u32,
    command: &[String],
) -> anyhow::Result<RedisBenchmark> {
    let output = Command::new("redis-benchmark")
        .args(["-h", host, "-p", &port.to_string()])
        .args(["-c", &connections.to_string(), "-n", &requests.to_string()])
        .args(["-r", "1000000000", "--csv"])
        .args(command)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(300), output)
        .await
        .context("redis-benchmark did not end within 300 s")?
        .context("failed to run redis-benchmark (Debian's redis-tools)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("redis-benchmark failed: {text}");
    }
    parse_redis_benchmark(&text)
        .with_context(|| format!("unexpected redis-benchmark output:\n{text}"))
}

/// The last CSV line: "test","rps","avg","min","p50","p95","p99","max".
fn parse_redis_benchmark(text: &str) -> Option<RedisBenchmark> {
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
    // The test's name holds the whole command, commas included: count fields from the end.
    let fields: Vec<&str> = line.rsplitn(8, ',').map(|f| f.trim_matches('"')).collect();
    if fields.len() < 8 {
        return None;
    }
    Some(RedisBenchmark {
        rate: fields[6].parse().ok()?,
        p99_ms: fields[1].parse().ok()?,
    })
}

/// The figures the bench takes from one loadgen run's `summary.json`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadgenRun {
    pub rate: f64,
    pub p99_ms: f64,
    /// The `issued` replies' p99 (`None` when there were none).
    pub winners_p99_ms: Option<f64>,
    pub requests: u64,
}

/// Runs the release loadgen with `args`, writing under `report_dir`; reads its summary.
pub async fn loadgen(
    binary: &Path,
    args: &[String],
    report_dir: &Path,
    env: &[(&str, &str)],
    timeout: Duration,
) -> anyhow::Result<LoadgenRun> {
    let mut command = Command::new(binary);
    command
        .args(args)
        .arg("--report-dir")
        .arg(report_dir)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(timeout, command.output())
        .await
        .with_context(|| {
            format!(
                "loadgen {} did not finish within {timeout:?}",
                args.join(" ")
            )
        })?
        .context("failed to run loadgen")?;
    if !output.status.success() {
        bail!(
            "loadgen {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let path = report_dir.join("latest/summary.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("failed to read {}", path.display()))?;
    let summary: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is no JSON", path.display()))?;
    read_summary(&summary).with_context(|| format!("{} lacks a figure", path.display()))
}

fn read_summary(summary: &serde_json::Value) -> Option<LoadgenRun> {
    let number = |pointer: &str| summary.pointer(pointer).and_then(serde_json::Value::as_f64);
    Some(LoadgenRun {
        rate: number("/stats/responses_per_second")?,
        p99_ms: number("/stats/latency_overall/p99_ms")?,
        winners_p99_ms: number("/stats/latency_by_class/issued/p99_ms"),
        requests: summary.pointer("/stats/requests")?.as_u64()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 10s test @ http://127.0.0.1:18080
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.21ms    1.02ms  40.11ms   90.00%
  Latency Distribution
     50%    3.01ms
     75%    3.50ms
     90%    4.20ms
     99%    1.20s
  123456 requests in 10.00s, 20.00MB read
  Non-2xx or 3xx responses: 123356
Requests/sec:  12345.60
Transfer/sec:      2.00MB
";

    #[test]
    fn wrk_output_gives_rate_p99_and_non_2xx() {
        let wrk = parse_wrk(WRK).expect("parsed");
        assert_eq!(
            wrk,
            Wrk {
                rate: 12345.6,
                p99_ms: 1200.0,
                non_2xx: 123_356
            }
        );
        assert_eq!(wrk_duration_ms("850.00us"), Some(0.85));
        assert_eq!(wrk_duration_ms("2.00m"), Some(120_000.0));
        assert_eq!(wrk_duration_ms("12.5xs"), None);
        // An output without its rate is refused, not read as zero.
        assert_eq!(parse_wrk(&WRK.replace("Requests/sec", "Req")), None);
    }

    #[test]
    fn redis_benchmark_csv_is_read_from_the_end_of_its_line() {
        let csv = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\
                   \"EVALSHA abc 5 k:{a},b __rand_int__ 100   1\",\"47664.44\",\"1.194\",\"0.240\",\"1.079\",\"2.183\",\"3.143\",\"7.759\"\n";
        assert_eq!(
            parse_redis_benchmark(csv),
            Some(RedisBenchmark {
                rate: 47664.44,
                p99_ms: 3.143
            })
        );
        assert_eq!(parse_redis_benchmark("\"x\",\"1\"\n"), None);
    }

    #[test]
    fn a_summary_without_winners_has_no_winners_p99() {
        let summary = serde_json::json!({"stats": {
            "responses_per_second": 9000.0, "requests": 10,
            "latency_overall": {"p99_ms": 12.5},
            "latency_by_class": {"sold_out": {"p99_ms": 12.5}}
        }});
        let run = read_summary(&summary).expect("read");
        assert_eq!(run.winners_p99_ms, None);
        assert_eq!(run.p99_ms, 12.5);
        assert_eq!(read_summary(&serde_json::json!({"stats": {}})), None);
    }
}
