//! MySQL (or MariaDB) for the issuance pipeline. Every SQL statement of the pipeline lives here.
//!
//! # Layout
//! - [`connect`]: a pool, with the migrations in `system/migrations` applied.
//! - [`campaigns`]: create, find and list campaigns.
//! - [`coupons`]: write coupon rows idempotently, count and list them.
//! - [`failed_events`]: capture events that cannot be written, and resolve them later.
//! - [`course`]: the course's stages' own tables, `course_coupon` and `course_failed_event`.

pub mod campaigns;
pub mod coupons;
pub mod course;
pub mod failed_events;

use std::time::Duration;

use sqlx::{MySqlPool, mysql::MySqlPoolOptions};

pub use campaigns::StoredCampaign;
pub use coupons::{CouponRow, CouponToWrite, Source, WriteOutcome};
pub use failed_events::{FailedEvent, NewFailedEvent};

/// The migrations under `system/migrations`, embedded in every binary that runs them.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("failed to connect to mysql at {address}")]
    Connect {
        address: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("failed to migrate the mysql schema")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("mysql query failed")]
    Query(#[from] sqlx::Error),
}

/// Connects to `database_url` and applies pending migrations. Safe to call from several
/// processes at once: sqlx serialises migrations with a database lock.
pub async fn connect(database_url: &str, max_connections: u32) -> Result<MySqlPool, StoreError> {
    let pool = MySqlPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect(database_url)
        .await
        .map_err(|source| StoreError::Connect {
            address: redact(database_url),
            source,
        })?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

/// `mysql://user:secret@host:port/db` without the password, for messages and logs.
pub fn redact(database_url: &str) -> String {
    match (database_url.find("://"), database_url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &database_url[scheme_end + 3..at];
            let user = credentials.split(':').next().unwrap_or_default();
            format!(
                "{}{user}@{}",
                &database_url[..scheme_end + 3],
                &database_url[at + 1..]
            )
        }
        _ => database_url.to_owned(),
    }
}

/// True for errors that go away on their own: the server is down or restarting, a deadlock,
/// a lock wait timeout, a full pool. Those are retried; anything else is about the data.
pub fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .is_some_and(|e| {
                // lock wait timeout, deadlock, too many connections, shutting down, read-only,
                // gone away, lost connection, connection killed (MariaDB)
                matches!(
                    e.number(),
                    1205 | 1213 | 1040 | 1053 | 1290 | 1836 | 2006 | 2013 | 1927
                )
            }),
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => true,
        _ => false,
    }
}

/// A time for a `DATETIME(3)` column: the schema stores UTC.
pub fn to_utc_datetime(at: time::OffsetDateTime) -> time::PrimitiveDateTime {
    let utc = at.to_offset(time::UtcOffset::UTC);
    time::PrimitiveDateTime::new(utc.date(), utc.time())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_the_password_only() {
        assert_eq!(
            redact("mysql://coupons:secret@127.0.0.1:3306/coupons"),
            "mysql://coupons@127.0.0.1:3306/coupons"
        );
        assert_eq!(redact("mysql://127.0.0.1/db"), "mysql://127.0.0.1/db");
    }
}
