//! The private MariaDB server the `db-restart` and `db-readonly` faults act on: the project's
//! account logs in with a password a URL must encode, a SIGKILL loses nothing committed, and
//! read-only refuses the account's writes with an error the store retries. On the real
//! `mariadbd` (`scripts/stack up` installs it).

use mysql_async::prelude::Queryable;
use sandbox::mysql::PrivateMysql;

/// An account whose password holds what a URL and an SQL literal must both escape.
const DATABASE_URL: &str = "mysql://tester:p%40ss%3Aw'rd@127.0.0.1:1/coupons";

async fn rows(url: &str) -> anyhow::Result<Vec<u32>> {
    let mut conn = mysql_async::Conn::from_url(url).await?;
    let rows = conn.query("SELECT id FROM t ORDER BY id").await?;
    conn.disconnect().await?;
    Ok(rows)
}

async fn insert(url: &str, id: u32) -> Result<(), coupon_store::StoreError> {
    let mut conn = mysql_async::Conn::from_url(url).await?;
    conn.exec_drop("INSERT INTO t (id) VALUES (?)", (id,))
        .await?;
    conn.disconnect().await?;
    Ok(())
}

#[tokio::test]
async fn a_kill_loses_nothing_committed_and_read_only_refuses_writes_transiently()
-> anyhow::Result<()> {
    let mut mysql = PrivateMysql::start(DATABASE_URL).await?;
    assert!(
        mysql
            .url
            .starts_with("mysql://tester:p%40ss%3Aw%27rd@127.0.0.1:")
    );
    let mut conn = mysql_async::Conn::from_url(mysql.url.as_str()).await?;
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY)")
        .await?;
    conn.disconnect().await?;
    insert(&mysql.url, 1).await?;

    let before = mysql.process.pid();
    mysql.process.kill()?;
    assert!(rows(&mysql.url).await.is_err(), "the server is down");
    mysql.restart().await?;
    assert_ne!(mysql.process.pid(), before, "a new process");
    assert_eq!(rows(&mysql.url).await?, [1], "the committed row survived");

    mysql.set_read_only(true).await?;
    let refused = insert(&mysql.url, 2).await.expect_err("read-only refuses");
    assert_eq!(refused.server_code(), Some(1290), "{refused:?}");
    assert!(refused.is_transient(), "the consumer waits it out");
    mysql.set_read_only(false).await?;
    insert(&mysql.url, 2).await?;
    assert_eq!(rows(&mysql.url).await?, [1, 2]);
    Ok(())
}
