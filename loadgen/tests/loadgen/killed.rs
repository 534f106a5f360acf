//! loadgen killed with SIGKILL in the middle of a run: the api and the consumer it started die
//! with it, and the verifier refuses the unfinished run instead of judging the one before it.

use std::time::Duration;

use clap::Parser;
use nix::{sys::signal, unistd::Pid};
use testkit::eventually;

use crate::isolated::{Isolated, applies_answered, pipeline_children};

#[tokio::test]
async fn a_killed_run_takes_its_children_with_it_and_the_verifier_refuses_it() -> anyhow::Result<()>
{
    let isolated = Isolated::new().await?;
    // A run that completed: before the fix, the verifier judged this one after the kill.
    isolated.loadgen(&["--users", "50", "--limit", "10"])?;

    let (mut command, port) =
        isolated.command(&["--users", "3000", "--rate", "300", "--limit", "100"])?;
    let mut run = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    // Well into the burst: the api it started has answered some hundred applies.
    eventually(
        "the killed run's api to answer 100 applies",
        Duration::from_secs(120),
        || async {
            let answered = applies_answered(&client, &metrics_url).await;
            Ok((answered >= 100.0).then_some(()))
        },
    )
    .await?;
    assert!(
        !pipeline_children(&isolated.group).is_empty(),
        "no pipeline child found to watch"
    );
    signal::kill(
        Pid::from_raw(i32::try_from(run.id())?),
        signal::Signal::SIGKILL,
    )?;
    run.wait()?;

    eventually(
        "the api and the consumer to die with loadgen",
        Duration::from_secs(30),
        || async {
            let alive = pipeline_children(&isolated.group);
            Ok(alive.is_empty().then_some(()))
        },
    )
    .await?;

    let mut verifier = verifier::cli::Cli::try_parse_from([
        "verifier".as_ref(),
        "--report-dir".as_ref(),
        isolated.reports.as_os_str(),
        "--drain-timeout".as_ref(),
        "10s".as_ref(),
    ])?;
    verifier.stack = isolated.stack_args();
    match verifier::verify::judge(&verifier).await {
        Ok(judgement) => anyhow::bail!(
            "the verifier judged a run after the kill: {}",
            judgement.final_line
        ),
        Err(error) => {
            let error = format!("{error:#}");
            assert!(error.contains("did not complete"), "{error}");
        }
    }
    isolated.cleanup().await
}

#[tokio::test]
async fn a_pipeline_child_whose_loadgen_is_already_gone_stops_at_once() -> anyhow::Result<()> {
    // The child is told its loadgen is pid 1, which is not its parent: as if loadgen died
    // before the child could ask the kernel for a signal on its death. Without the check it
    // would start an api and serve for good.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["__serve-pipeline", "api"])
        .env("LOADGEN_PARENT_PID", "1")
        .env("API_ADDR", "127.0.0.1:0")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let exited = eventually(
        "the orphaned child to stop",
        Duration::from_secs(30),
        || {
            let status = child.try_wait();
            async move { Ok(status?) }
        },
    )
    .await;
    if exited.is_err() {
        child.kill()?;
    }
    let status = exited?;
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        std::io::Read::read_to_string(&mut pipe, &mut stderr)?;
    }
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("is gone"), "{stderr}");
    Ok(())
}
