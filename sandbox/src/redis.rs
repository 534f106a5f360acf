//! A Redis server of one run's or one test's own, on a free port with its own directory, for
//! faults that would disturb everyone else on the shared one (FLUSHALL, a kill, a stall, a
//! restart from an older snapshot).

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::Context;

use crate::process::Server;

/// What the server keeps on disk, and so what a restart finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// No automatic persistence: only a `SAVE` writes a snapshot, which a restart loads (and
    /// with it loses everything written after it).
    SnapshotOnly,
    /// An append-only file fsynced on every write (`appendfsync always`), as the shared stack
    /// runs: a restart after SIGKILL finds every acknowledged write.
    AppendOnly,
}

#[derive(Debug)]
pub struct PrivateRedis {
    pub url: String,
    port: u16,
    persistence: Persistence,
    /// The `redis-server` process: SIGKILL, SIGSTOP, SIGCONT.
    pub process: Server,
    dir: PathBuf,
}

impl PrivateRedis {
    /// Starts `redis-server` (installed by `scripts/stack up`) and waits until it answers PING.
    pub async fn start(persistence: Persistence) -> anyhow::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = std::env::temp_dir().join(crate::unique_name("fcfs-redis"));
        std::fs::create_dir_all(&dir)?;
        let mut redis = Self {
            url: format!("redis://127.0.0.1:{port}"),
            port,
            persistence,
            process: Server::new("the private redis"),
            dir,
        };
        redis.restart().await?;
        Ok(redis)
    }

    /// A new server on the same port and directory, once answering PING: it loads what its
    /// persistence left (the append-only file, or the last `SAVE`).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        let (port, persistence) = (self.port, self.persistence);
        self.process.start(|| spawn(port, &self.dir, persistence))?;
        self.wait_answering().await
    }

    /// SIGKILL (no shutdown save, as in a crash), then [`Self::restart`].
    pub async fn kill_and_restart(&mut self) -> anyhow::Result<()> {
        self.process.kill()?;
        self.restart().await
    }

    /// FLUSHALL: every key gone at once.
    pub async fn flush_all(&self) -> anyhow::Result<()> {
        self.command("FLUSHALL").await
    }

    /// SAVE: a snapshot that a [`Persistence::SnapshotOnly`] server goes back to on restart.
    pub async fn save(&self) -> anyhow::Result<()> {
        self.command("SAVE").await
    }

    async fn command(&self, name: &str) -> anyhow::Result<()> {
        let url = &self.url;
        let mut conn = redis::Client::open(url.as_str())?
            .get_multiplexed_async_connection()
            .await
            .with_context(|| format!("cannot reach the private redis at {url}"))?;
        let () = redis::cmd(name)
            .query_async(&mut conn)
            .await
            .with_context(|| format!("the private redis at {url} refused {name}"))?;
        Ok(())
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

/// `redis-server` (installed by `scripts/stack up`) on `port`, keeping its files in `dir`.
fn spawn(port: u16, dir: &Path, persistence: Persistence) -> anyhow::Result<Child> {
    let mut command = Command::new("redis-server");
    command.args([
        "--bind",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--save",
        "",
    ]);
    match persistence {
        Persistence::SnapshotOnly => command.args(["--appendonly", "no"]),
        Persistence::AppendOnly => command.args(["--appendonly", "yes", "--appendfsync", "always"]),
    };
    command
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("failed to start redis-server (run scripts/stack up first)")
}

crate::process::private_server!(PrivateRedis, "redis", url);
