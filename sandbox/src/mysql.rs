//! A MariaDB server of one run's own, for the faults that act on the database server itself (a
//! crash and restart, the server turned read-only), which every other run and test on the
//! shared server relies on: Debian's `mariadbd` (installed by `scripts/stack up`) on a free port
//! with a data directory of its own, holding the project's database under the project's account.

use std::{
    fmt::Write as _,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::Context;
use mysql_async::prelude::Queryable;

use crate::process::Server;

/// The account the faults use to turn the server read-only: the project's account has no
/// privilege over the server itself, so `read_only` applies to it.
const ADMIN_USER: &str = "sandbox_admin";

#[derive(Debug)]
pub struct PrivateMysql {
    /// `DATABASE_URL` with this server in place of the project's: same account, same database.
    pub url: String,
    /// The server's address, `127.0.0.1:<port>`.
    pub address: String,
    /// The `mariadbd` process: SIGKILL, SIGSTOP, SIGCONT.
    pub process: Server,
    /// An account with every privilege, on this server alone.
    admin_url: String,
    port: u16,
    dir: PathBuf,
}

impl PrivateMysql {
    /// Initialises a data directory, starts `mariadbd` on a free port, and waits until the
    /// project's account (taken from `database_url`, as is the database's name) can log in.
    pub async fn start(database_url: &str) -> anyhow::Result<Self> {
        let opts = mysql_async::Opts::from_url(database_url)
            .with_context(|| format!("DATABASE_URL {} is no mysql url", redact(database_url)))?;
        let user = opts.user().context("DATABASE_URL names no user")?;
        let password = opts.pass().unwrap_or_default();
        let database = opts.db_name().context("DATABASE_URL names no database")?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = std::env::temp_dir().join(crate::unique_name("fcfs-mysql"));
        std::fs::create_dir_all(dir.join("data"))?;
        let admin_password = format!("{:032x}", rand::random::<u128>());
        let address = format!("127.0.0.1:{port}");
        // From here on, dropping it removes the directory.
        let mut mysql = Self {
            url: format!(
                "mysql://{}:{}@{address}/{database}",
                encode(user),
                encode(password)
            ),
            admin_url: format!("mysql://{ADMIN_USER}:{admin_password}@{address}/{database}"),
            address,
            process: Server::new("the private mariadb"),
            port,
            dir,
        };
        // It holds both passwords: for this user's eyes only.
        write_private(
            &mysql.dir.join("init.sql"),
            &init_sql(user, password, database, &admin_password),
        )?;
        install(&mysql.dir).map_err(|e| e.context(log_tail(&mysql.dir, "install.log")))?;
        mysql.restart().await?;
        Ok(mysql)
    }

    /// A new server on the same port and data directory, once the project's account can log
    /// in: InnoDB recovers what was committed before a kill.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        let (port, dir) = (self.port, self.dir.clone());
        self.process.start(|| spawn(port, &dir))?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if answers(&self.url).await {
                return Ok(());
            }
            if let Some(status) = self.process.exited() {
                // Gone: its slot cleared, free to start again.
                let _ = self.process.kill();
                anyhow::bail!(
                    "the private mariadb at {} exited with {status} before answering; {}",
                    self.address,
                    log_tail(&self.dir, "mariadb.log")
                );
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "gave up after 60s waiting for the private mariadb at {} to answer; {}",
                self.address,
                log_tail(&self.dir, "mariadb.log")
            );
            // A poll's interval, not a wait for anything.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `SET GLOBAL read_only`: while on, every write of the project's account is refused
    /// (error 1290), as on a replica or during a failover.
    pub async fn set_read_only(&self, on: bool) -> anyhow::Result<()> {
        let set = async {
            let mut conn = mysql_async::Conn::from_url(self.admin_url.as_str())
                .await
                .with_context(|| format!("cannot reach the private mariadb at {}", self.address))?;
            conn.query_drop(format!("SET GLOBAL read_only = {}", u8::from(on)))
                .await
                .with_context(|| {
                    format!(
                        "the private mariadb at {} refused to set read_only",
                        self.address
                    )
                })?;
            conn.disconnect().await?;
            anyhow::Ok(())
        };
        tokio::time::timeout(Duration::from_secs(10), set)
            .await
            .with_context(|| {
                format!(
                    "the private mariadb at {} did not set read_only within 10s",
                    self.address
                )
            })?
    }
}

/// Whether the project's account can log in and run a query.
async fn answers(url: &str) -> bool {
    let Ok(mut conn) = mysql_async::Conn::from_url(url).await else {
        return false;
    };
    let one: Option<u8> = conn.query_first("SELECT 1").await.ok().flatten();
    let _ = conn.disconnect().await;
    one.is_some()
}

/// The last lines of one of the server's logs, for an error (the directory goes with the
/// server).
fn log_tail(dir: &Path, name: &str) -> String {
    let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(8)..].join("\n");
    format!("the end of its {name}:\n{tail}")
}

/// Writes `text` to `path`, readable by this user alone.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("failed to create {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// The statements the server runs on every start (`--init-file`): the project's database and
/// account as `scripts/stack` provisions them, and the admin account. Idempotent.
fn init_sql(user: &str, password: &str, database: &str, admin_password: &str) -> String {
    let mut sql = String::new();
    let (user, password) = (quote(user), quote(password));
    let database = database.replace('`', "``");
    // One statement per line: how the server reads an init file.
    let _ = writeln!(sql, "CREATE DATABASE IF NOT EXISTS `{database}`;");
    let _ = writeln!(
        sql,
        "CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{password}';"
    );
    let _ = writeln!(
        sql,
        "GRANT ALL PRIVILEGES ON `{database}`.* TO '{user}'@'%';"
    );
    let _ = writeln!(
        sql,
        "CREATE USER IF NOT EXISTS '{ADMIN_USER}'@'%' IDENTIFIED BY '{admin_password}';"
    );
    let _ = writeln!(
        sql,
        "GRANT ALL PRIVILEGES ON *.* TO '{ADMIN_USER}'@'%' WITH GRANT OPTION;"
    );
    sql
}

/// A string literal's body: quotes doubled, backslashes escaped.
fn quote(raw: &str) -> String {
    raw.replace('\\', "\\\\").replace('\'', "''")
}

/// Percent-encodes what a URL's user or password cannot hold as it is.
fn encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn redact(database_url: &str) -> String {
    coupon_runtime::stack::redact(database_url)
}

/// Options both the install and the server take: a small buffer pool and redo log (the run's
/// data is small), and the stack's character set.
const SERVER_OPTIONS: [&str; 4] = [
    "--innodb-buffer-pool-size=32M",
    "--innodb-log-file-size=8M",
    "--character-set-server=utf8mb4",
    "--collation-server=utf8mb4_unicode_ci",
];

/// `mariadb-install-db` into `dir/data`: the system tables, nothing else.
fn install(dir: &Path) -> anyhow::Result<()> {
    let log = std::fs::File::create(dir.join("install.log"))?;
    let status = Command::new("mariadb-install-db")
        .arg("--no-defaults")
        .arg(format!("--datadir={}", dir.join("data").display()))
        .arg("--skip-test-db")
        .args(SERVER_OPTIONS)
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .status()
        .context("failed to run mariadb-install-db (run scripts/stack up first)")?;
    anyhow::ensure!(status.success(), "mariadb-install-db failed ({status})");
    Ok(())
}

/// `mariadbd` (installed by `scripts/stack up`) on `port`, with its files in `dir`.
fn spawn(port: u16, dir: &Path) -> anyhow::Result<Child> {
    let file = |name: &str| dir.join(name).display().to_string();
    let mut command = Command::new(mariadbd());
    command.arg("--no-defaults");
    // Required of a server started as root, ignored otherwise.
    if nix::unistd::geteuid().is_root() {
        command.arg("--user=root");
    }
    command
        .arg(format!("--datadir={}", file("data")))
        .arg(format!("--port={port}"))
        .arg(format!("--socket={}", file("mysqld.sock")))
        .arg(format!("--pid-file={}", file("mysqld.pid")))
        .arg(format!("--log-error={}", file("mariadb.log")))
        .arg(format!("--init-file={}", file("init.sql")))
        .args([
            "--bind-address=127.0.0.1",
            "--skip-name-resolve",
            "--innodb-flush-log-at-trx-commit=1",
            "--max-connections=500",
        ])
        .args(SERVER_OPTIONS)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("failed to start mariadbd (run scripts/stack up first)")
}

/// Where Debian puts `mariadbd`: on the PATH, or in /usr/sbin (not on every user's PATH).
fn mariadbd() -> PathBuf {
    let sbin = PathBuf::from("/usr/sbin/mariadbd");
    if sbin.exists() {
        sbin
    } else {
        PathBuf::from("mariadbd")
    }
}

crate::process::private_server!(PrivateMysql, "mysql", address);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_init_file_quotes_what_it_is_given() {
        let sql = init_sql("o'neil", r"a\b'c", "coupons", "f00");
        assert!(
            sql.contains(r"'o''neil'@'%' IDENTIFIED BY 'a\\b''c';"),
            "{sql}"
        );
        assert_eq!(sql.lines().count(), 5, "one statement per line: {sql}");
        assert_eq!(encode("p@ss:w/rd"), "p%40ss%3Aw%2Frd");
    }
}
