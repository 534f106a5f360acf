//! A Redis server of a test's own, on a free port, for faults that would disturb every other
//! test on the shared one (FLUSHALL, a restart without data).

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::Context;

#[derive(Debug)]
pub struct PrivateRedis {
    pub url: String,
    child: Child,
    dir: std::path::PathBuf,
}

impl PrivateRedis {
    /// The local stack with this Redis in place of the shared one.
    pub fn stack(&self) -> crate::Stack {
        crate::Stack {
            redis_url: self.url.clone(),
            ..crate::Stack::from_env()
        }
    }

    /// Starts `redis-server` (installed by `scripts/stack up`) without automatic persistence,
    /// and waits until it answers PING.
    pub async fn start() -> anyhow::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = std::env::temp_dir().join(crate::unique_name("fcfs-test-redis"));
        std::fs::create_dir_all(&dir)?;
        let url = format!("redis://127.0.0.1:{port}");
        let child = spawn(port, &dir)?;
        let redis = Self { url, child, dir };
        redis.wait_answering().await?;
        Ok(redis)
    }

    /// SIGKILL, then a new server on the same port and directory: it loads whatever snapshot
    /// (`SAVE`) is there, and nothing written after it.
    pub async fn kill_and_restart(&mut self) -> anyhow::Result<()> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let port = url_port(&self.url)?;
        self.child = spawn(port, &self.dir)?;
        self.wait_answering().await
    }

    async fn wait_answering(&self) -> anyhow::Result<()> {
        let url = &self.url;
        let client = redis::Client::open(url.as_str())?;
        crate::eventually(
            &format!("the private redis at {url} to answer"),
            Duration::from_secs(20),
            || {
                let client = client.clone();
                async move {
                    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
                        return Ok(None);
                    };
                    let pong: redis::RedisResult<String> =
                        redis::cmd("PING").query_async(&mut conn).await;
                    Ok(pong.ok().filter(|p| p == "PONG").map(drop))
                }
            },
        )
        .await
    }
}

/// `redis-server` (installed by `scripts/stack up`) on `port`, keeping its files in `dir`, with
/// no automatic persistence: only a `SAVE` writes a snapshot, which a restart loads.
fn spawn(port: u16, dir: &std::path::Path) -> anyhow::Result<Child> {
    Command::new("redis-server")
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("failed to start redis-server (run scripts/stack up first)")
}

fn url_port(url: &str) -> anyhow::Result<u16> {
    url.rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .with_context(|| format!("no port in {url}"))
}

impl PrivateRedis {
    /// SIGSTOP: the server stops answering but keeps every connection and every command sent,
    /// and runs them once resumed (a stall, as under a long fork or a frozen VM).
    pub fn pause(&self) -> anyhow::Result<()> {
        self.signal(nix::sys::signal::Signal::SIGSTOP)
    }

    /// SIGCONT: the stalled server runs what it was sent meanwhile.
    pub fn resume(&self) -> anyhow::Result<()> {
        self.signal(nix::sys::signal::Signal::SIGCONT)
    }

    fn signal(&self, signal: nix::sys::signal::Signal) -> anyhow::Result<()> {
        let pid = i32::try_from(self.child.id())?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal)
            .with_context(|| format!("failed to send {signal} to the private redis"))
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.resume();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
