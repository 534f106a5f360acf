//! Child processes: cargo to build loadgen and the verifier, then each run. A child's output
//! is captured, and its last lines shown.

use std::{
    ffi::OsString,
    path::Path,
    process::{ExitStatus, Stdio},
};

use anyhow::Context;
use coupon_runtime::stack::StackArgs;
use tokio::process::Command;

/// How a child ended, and what it printed.
#[derive(Debug, Clone)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// The exit code; `None` when a signal ended the child.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// `cargo build --quiet -p loadgen -p verifier --features loadgen/controls`, with the cargo that
/// runs the gate when it does: loadgen with its negative controls (`--control`), which only the
/// gate's build takes.
pub async fn build() -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let status = Command::new(&cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            "loadgen",
            "-p",
            "verifier",
            "--features",
            "loadgen/controls",
        ])
        .status()
        .await
        .with_context(|| format!("failed to run {}", cargo.to_string_lossy()))?;
    anyhow::ensure!(
        status.success(),
        "cargo build -p loadgen -p verifier failed ({status})"
    );
    Ok(())
}

/// A binary of the workspace, with the gate's stack settings in its environment.
pub fn command(bin_dir: &Path, name: &str, stack: &StackArgs) -> Command {
    let mut command = Command::new(bin_dir.join(name));
    command.envs(stack.to_env()).stdin(Stdio::null());
    command
}

/// Runs `command` to the end. Its stderr goes to the terminal when `show_stderr`, else it is
/// captured with stdout.
pub async fn run(mut command: Command, show_stderr: bool) -> anyhow::Result<Finished> {
    command.stdout(Stdio::piped()).stderr(if show_stderr {
        Stdio::inherit()
    } else {
        Stdio::piped()
    });
    let program = command
        .as_std()
        .get_program()
        .to_string_lossy()
        .into_owned();
    let output = command
        .output()
        .await
        .with_context(|| format!("failed to run {program}"))?;
    Ok(Finished {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines_or_everything_when_short() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a\nb", 12), "a\nb");
        assert_eq!(tail("", 3), "");
    }
}
