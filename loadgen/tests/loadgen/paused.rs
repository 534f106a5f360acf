//! A run whose api stops (SIGSTOP) for 2 s mid-run: the latency from the intended send time
//! shows the wait the stall put on every request it held back, which service time hides.

use std::time::Duration;

use nix::{sys::signal, unistd::Pid};
use testkit::eventually;

use crate::isolated::{Isolated, applies_answered, pipeline_children_of};

/// How long the api stays stopped: the fault's length.
const PAUSE: Duration = Duration::from_secs(2);

/// Whether process `pid` is stopped by a signal (state `T` in `/proc/PID/stat`).
fn is_stopped(pid: Pid) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // The state follows the command name, which is in parentheses.
            let after_name = stat.rsplit_once(')')?.1;
            after_name
                .split_whitespace()
                .next()
                .map(|state| state == "T")
        })
        .unwrap_or(false)
}

#[tokio::test]
async fn a_paused_api_shows_in_latency_from_the_intended_send_time() -> anyhow::Result<()> {
    let isolated = Isolated::new().await?;
    // 20 users, each with a request due every 25 ms for 5 s: 800 requests/s.
    let (mut command, port) = isolated.command(&[
        "--users", "20", "--repeat", "200", "--pace", "25ms", "--limit", "20",
    ])?;
    let run = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()?;
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    eventually(
        "the run's api to answer 600 applies",
        Duration::from_secs(120),
        || async {
            let answered = applies_answered(&client, &metrics_url).await;
            Ok((answered >= 600.0).then_some(()))
        },
    )
    .await?;
    let api = match pipeline_children_of(&isolated.group, "api")[..] {
        [pid] => Pid::from_raw(pid),
        ref found => anyhow::bail!("expected one api child, found {found:?}"),
    };
    signal::kill(api, signal::Signal::SIGSTOP)?;
    eventually("the api to stop", Duration::from_secs(10), || async {
        Ok(is_stopped(api).then_some(()))
    })
    .await?;
    // The fault lasts PAUSE: poll until the api, still stopped, has been so for that long.
    let stopped_at = std::time::Instant::now();
    eventually(
        "the api to have stayed stopped for the pause",
        PAUSE + Duration::from_secs(10),
        || async {
            anyhow::ensure!(is_stopped(api), "the api left its stopped state early");
            Ok((stopped_at.elapsed() >= PAUSE).then_some(()))
        },
    )
    .await?;
    signal::kill(api, signal::Signal::SIGCONT)?;
    let output = tokio::task::spawn_blocking(move || run.wait_with_output()).await??;
    anyhow::ensure!(
        output.status.success(),
        "loadgen exited with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );

    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        isolated.reports.join("latest/summary.json"),
    )?)?;
    let p99 = |which: &str| {
        summary["stats"][which]["p99_ms"]
            .as_f64()
            .unwrap_or_default()
    };
    let (service, intended) = (p99("latency_overall"), p99("intended_overall"));
    eprintln!("p99 from the intended send time {intended} ms, service time {service} ms");
    // Each of the 20 users had some 80 requests due during the pause, sent after it: about 40%
    // of the run went out late, by up to 2 s, while only the 20 requests in flight (0.5%, well
    // inside the last percent) saw the pause in their service time.
    assert!(
        intended >= 1_000.0 && intended >= 3.0 * service,
        "intended-time p99 {intended} ms, service-time p99 {service} ms"
    );
    assert_eq!(summary["stats"]["requests"], 4_000);
    isolated.cleanup().await
}
