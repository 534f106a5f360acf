//! Statements for tests and tools rather than the pipeline: databases of their own, the
//! server's statement counters, whole-table counts, a planted row for a negative control. Kept here so that every SQL statement of the
//! project is in this crate.

use coupon_domain::CampaignId;
use mysql_async::prelude::Queryable;

use crate::{Store, StoreError, as_count};

/// Creates an empty database on the store's server (a test's own).
pub async fn create_database(store: &Store, name: &str) -> Result<(), StoreError> {
    on_database(store, "CREATE DATABASE", name).await
}

pub async fn drop_database(store: &Store, name: &str) -> Result<(), StoreError> {
    on_database(store, "DROP DATABASE IF EXISTS", name).await
}

/// `<statement> `<name>``: database names cannot be bound as parameters.
async fn on_database(store: &Store, statement: &str, name: &str) -> Result<(), StoreError> {
    let sql = format!("{statement} `{}`", quoted(name)?);
    Ok(store.conn().await?.query_drop(sql).await?)
}

/// Whether a database of that name exists.
pub async fn database_exists(store: &Store, name: &str) -> Result<bool, StoreError> {
    let found = store
        .count(
            "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?",
            (name,),
        )
        .await?;
    Ok(found == 1)
}

/// INSERT statements the server ran since it started (every client's): a comparison takes the
/// difference across one run.
pub async fn server_insert_count(store: &Store) -> Result<u64, StoreError> {
    let rows: Vec<(String, String)> = store
        .conn()
        .await?
        .query("SHOW GLOBAL STATUS WHERE Variable_name IN ('Com_insert', 'Com_insert_select')")
        .await?;
    Ok(rows
        .iter()
        .filter_map(|(_, value)| value.parse::<u64>().ok())
        .sum())
}

/// Rows, distinct users and distinct slots in `coupon`, over every campaign.
pub async fn coupon_totals(store: &Store) -> Result<(u64, u64, u64), StoreError> {
    let totals: Option<(i64, i64, i64)> = store
        .conn()
        .await?
        .query_first("SELECT COUNT(*), COUNT(DISTINCT user_id), COUNT(DISTINCT seq) FROM coupon")
        .await?;
    let (rows, users, slots) = totals.unwrap_or_default();
    Ok((
        as_count(Some(rows)),
        as_count(Some(users)),
        as_count(Some(slots)),
    ))
}

/// For tests only: a campaign row no api would write, with an id the api refuses (`raw_id`),
/// written straight into the table as a hand-edit would be.
pub async fn plant_campaign_row(store: &Store, raw_id: &str) -> Result<(), StoreError> {
    store
        .run(
            "INSERT INTO campaign (id, coupon_limit) VALUES (?, 10)",
            (raw_id,),
        )
        .await
}

/// For tests and loadgen's `stale-state` fault only: deletes a campaign and its coupon rows, as
/// an operator would by hand.
/// What else the campaign id left behind stays: its failed events, fences and revocations in
/// MySQL, its events on the topic, its gate in Redis.
pub async fn delete_campaign_by_hand(store: &Store, id: &CampaignId) -> Result<(), StoreError> {
    let mut conn = store.conn().await?;
    let mut tx = conn
        .start_transaction(mysql_async::TxOpts::default())
        .await?;
    tx.exec_drop("DELETE FROM coupon WHERE campaign_id = ?", (id.as_str(),))
        .await?;
    tx.exec_drop("DELETE FROM campaign WHERE id = ?", (id.as_str(),))
        .await?;
    tx.commit().await?;
    Ok(())
}

/// For tests only: a coupon row inserted in a transaction left open, as a second consumer
/// mid-batch holds it; others that insert the same row wait for [`PendingRow::commit`].
#[derive(Debug)]
pub struct PendingRow {
    conn: mysql_async::Conn,
    connection_id: u64,
}

impl PendingRow {
    pub async fn insert(
        store: &Store,
        campaign: &CampaignId,
        user_id: u64,
        seq: u32,
        limit: u32,
    ) -> Result<Self, StoreError> {
        let mut conn = store.conn().await?;
        conn.query_drop("START TRANSACTION").await?;
        conn.exec_drop(
            "INSERT INTO coupon (campaign_id, user_id, seq, campaign_limit, issued_at, kafka_partition, kafka_offset) \
             VALUES (?, ?, ?, ?, NOW(3), 0, 0)",
            (campaign.as_str(), user_id, seq, limit),
        )
        .await?;
        let connection_id = conn.id().into();
        Ok(Self {
            conn,
            connection_id,
        })
    }

    /// How many one-row coupon inserts into this database have run for a second or more: the
    /// ones waiting for this row's lock (an insert that waits for nothing takes milliseconds).
    /// Read from the process list, which shows a user's own connections without the PROCESS
    /// privilege, on MariaDB and MySQL alike; each test has a database of its own.
    pub async fn waiters(&self, store: &Store) -> Result<u64, StoreError> {
        store
            .count(
                "SELECT COUNT(*) FROM information_schema.processlist \
                 WHERE db = DATABASE() AND id <> ? AND info LIKE 'INSERT INTO coupon%' \
                 AND info NOT LIKE '%), (%' AND time >= 1",
                (self.connection_id,),
            )
            .await
    }

    pub async fn commit(mut self) -> Result<(), StoreError> {
        Ok(self.conn.query_drop("COMMIT").await?)
    }
}

/// The user a planted row belongs to: far beyond any user id a run draws.
pub const PLANTED_USER_ID: u64 = 4_242_424_242;

/// For negative controls only (the end-to-end gate): plants one coupon row beyond the
/// campaign's limit, behind the database's back, so that the verifier must catch it (I1). The
/// row takes slot `limit + 1` for [`PLANTED_USER_ID`] and no Kafka source (-1, -1).
///
/// The schema refuses such a row (`CHECK (seq BETWEEN 1 AND campaign_limit)` and the foreign key
/// to the campaign's limit); MariaDB lets a session switch both checks off, and this does so on
/// one connection, for this statement only. MariaDB only: MySQL has no
/// `check_constraint_checks`. Returns whether a row was planted (false when no such campaign).
pub async fn plant_extra_coupon_row(
    store: &Store,
    campaign: &CampaignId,
) -> Result<bool, StoreError> {
    let mut conn = store.conn().await?;
    conn.query_drop("SET SESSION check_constraint_checks = 0, foreign_key_checks = 0")
        .await?;
    let planted = conn
        .exec_drop(
            "INSERT INTO coupon \
             (campaign_id, user_id, seq, campaign_limit, issued_at, kafka_partition, kafka_offset) \
             SELECT id, ?, coupon_limit + 1, coupon_limit, NOW(3), -1, -1 FROM campaign WHERE id = ?",
            (PLANTED_USER_ID, campaign.as_str()),
        )
        .await
        .map(|()| conn.affected_rows() == 1);
    // The connection goes back to the pool: the checks must be on again, whatever happened.
    let restored = conn
        .query_drop("SET SESSION check_constraint_checks = 1, foreign_key_checks = 1")
        .await;
    let planted = planted?;
    restored?;
    Ok(planted)
}

/// A name safe inside backquotes: letters, digits and underscores only.
fn quoted(name: &str) -> Result<&str, StoreError> {
    if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(name)
    } else {
        Err(StoreError::Decode(format!(
            "database name `{name}` must be letters, digits and underscores"
        )))
    }
}

/// A campaign's row held locked by an open transaction: the nemesis's `db-lock`. Every coupon
/// insert of the campaign checks its foreign key against that row's entry in
/// `campaign_id_limit`, so it waits (and past `innodb_lock_wait_timeout`, fails with error
/// 1205, which the consumer retries).
#[derive(Debug)]
pub struct CampaignRowLock {
    conn: mysql_async::Conn,
}

/// Opens a transaction and locks the campaign's row (`SELECT ... FOR UPDATE`) through the index
/// the coupons' foreign key references: a lock taken through the primary key alone leaves
/// that index's entry free, and the inserts would not wait. `None` when no such campaign exists.
pub async fn lock_campaign_row(
    store: &Store,
    campaign_id: &CampaignId,
) -> Result<Option<CampaignRowLock>, StoreError> {
    let mut conn = store.conn().await?;
    conn.query_drop("START TRANSACTION").await?;
    let found: Option<String> = conn
        .exec_first(
            "SELECT id FROM campaign FORCE INDEX (campaign_id_limit) WHERE id = ? FOR UPDATE",
            (campaign_id.as_str(),),
        )
        .await?;
    if found.is_none() {
        conn.query_drop("ROLLBACK").await?;
        return Ok(None);
    }
    Ok(Some(CampaignRowLock { conn }))
}

impl CampaignRowLock {
    /// Rolls the transaction back: the lock is released.
    pub async fn release(mut self) -> Result<(), StoreError> {
        Ok(self.conn.query_drop("ROLLBACK").await?)
    }
}
