//! The server process a private store runs in: killed (SIGKILL) as in a crash, stalled
//! (SIGSTOP) and resumed, started again, and stopped for good when the store is dropped. What
//! [`PrivateRedis`](crate::redis::PrivateRedis), [`PrivateKafka`](crate::kafka::PrivateKafka)
//! and [`PrivateMysql`](crate::mysql::PrivateMysql) share.

use std::{future::Future, process::Child};

use anyhow::Context;
use nix::sys::signal::Signal;

#[derive(Debug)]
pub struct Server {
    /// What it is, for errors: "the private redis".
    what: &'static str,
    child: Option<Child>,
}

impl Server {
    /// A server not running yet.
    pub(crate) fn new(what: &'static str) -> Self {
        Self { what, child: None }
    }

    /// Starts the server with `spawn`; refused while one runs.
    pub(crate) fn start(
        &mut self,
        spawn: impl FnOnce() -> anyhow::Result<Child>,
    ) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "{} is already running", self.what);
        self.child = Some(spawn()?);
        Ok(())
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// How the process ended, if it has (a server that could not start).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGKILL, and waits for the process to be gone: no clean shutdown, as in a crash.
    /// Nothing to do while it is not running.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child
                .kill()
                .with_context(|| format!("failed to SIGKILL {}", self.what))?;
            child.wait()?;
        }
        Ok(())
    }

    /// SIGSTOP: the server stops answering and keeps its connections (a stall, as under a long
    /// GC pause, a fork or a frozen VM).
    pub fn pause(&self) -> anyhow::Result<()> {
        self.send(Signal::SIGSTOP)
    }

    /// SIGCONT: the stalled server goes on with what it was sent meanwhile.
    pub fn resume(&self) -> anyhow::Result<()> {
        self.send(Signal::SIGCONT)
    }

    /// Resumed (a stalled process cannot die) and killed: what dropping it does.
    pub fn stop(&mut self) {
        let _ = self.resume();
        let _ = self.kill();
    }

    fn send(&self, signal: Signal) -> anyhow::Result<()> {
        let pid = self
            .pid()
            .with_context(|| format!("{} is not running", self.what))?;
        let raw = i32::try_from(pid).context("pid out of range")?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), signal)
            .with_context(|| format!("failed to send {signal} to {}", self.what))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A private server a crash fault kills (SIGKILL) and starts again on the same port and data;
/// its `Display` names it and its process for a fault's history line.
pub trait Restartable: std::fmt::Display {
    /// Its process.
    fn server(&mut self) -> &mut Server;

    /// A new process on the same port and data, once it answers.
    fn start_again(&mut self) -> impl Future<Output = anyhow::Result<()>>;
}

/// What every private server is beside its own code: named `<what> <address> (pid N)` for a
/// fault's history line (pid 0 while it is down), [`Restartable`] through its `process` and its
/// `restart`, and stopped with its directory removed when dropped.
macro_rules! private_server {
    ($server:ty, $what:literal, $address:ident) => {
        impl std::fmt::Display for $server {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(
                    f,
                    concat!($what, " {} (pid {})"),
                    self.$address,
                    self.process.pid().unwrap_or_default()
                )
            }
        }

        impl $crate::process::Restartable for $server {
            fn server(&mut self) -> &mut $crate::process::Server {
                &mut self.process
            }

            fn start_again(&mut self) -> impl std::future::Future<Output = anyhow::Result<()>> {
                self.restart()
            }
        }

        impl Drop for $server {
            fn drop(&mut self) {
                self.process.stop();
                let _ = std::fs::remove_dir_all(&self.dir);
            }
        }
    };
}
pub(crate) use private_server;
