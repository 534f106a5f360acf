//! MySQL (or MariaDB) for the issuance pipeline, through `mysql_async`. Every SQL statement of
//! the project lives in this crate.
//!
//! # Layout
//! - [`Store`]: a connection pool; [`Store::connect`] also applies the migrations.
//! - [`migrate`]: the versioned SQL files in `system/migrations`, applied once each, refused
//!   when an applied file was edited.
//! - [`campaigns`]: create, find and list campaigns; the gate's epoch counter.
//! - [`coupons`]: write coupon rows idempotently, count and list them.
//! - [`failed_events`]: capture events that cannot be written, and resolve them later.
//! - [`course`]: the course's stages' own tables, `course_coupon` and `course_failed_event`.
//! - [`admin`]: what tests and tools need besides: databases, server counters, plain counts.
//! - [`error`]: [`StoreError`], and which of its errors go away on their own.

pub mod admin;
pub mod campaigns;
pub mod coupons;
pub mod course;
pub mod error;
pub mod failed_events;
pub mod fences;
pub mod migrate;

use std::time::Duration;

use mysql_async::{
    Conn, Opts, OptsBuilder, Params, Pool, PoolConstraints, PoolOpts,
    prelude::{FromRow, Queryable, StatementLike},
};

pub use campaigns::StoredCampaign;
pub use coupon_runtime::stack::redact;
pub use coupons::{CouponRow, CouponToWrite, Fences, OnFileRead, Source, WriteOutcome};
pub use error::StoreError;
pub use failed_events::{CapturedPayload, FailedEvent, FailureReason, NewFailedEvent};

/// How long a caller waits for a pooled connection (or a new one) before the store reports the
/// pool exhausted or the server unreachable. `mysql_async` itself would wait for ever.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// A pool of connections to one database. Its address is kept without the password.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
    address: String,
}

impl Store {
    /// Connects to `database_url` and applies pending migrations ([`migrate::run`]). Safe to
    /// call from several processes at once: the runner holds a named server lock.
    pub async fn connect(database_url: &str, max_connections: usize) -> Result<Self, StoreError> {
        let store = Self::open(database_url, max_connections).await?;
        migrate::run(&store).await?;
        Ok(store)
    }

    /// Connects without migrating (readers such as the verifier), checking the server answers.
    pub async fn open(database_url: &str, max_connections: usize) -> Result<Self, StoreError> {
        let address = redact(database_url);
        let opts = Opts::from_url(database_url).map_err(|source| StoreError::Connect {
            address: address.clone(),
            source: source.into(),
        })?;
        // `None` only when min > max, which 0 never is.
        let constraints = PoolConstraints::new(0, max_connections.max(1)).unwrap_or_default();
        let opts = OptsBuilder::from_opts(opts)
            // Over TCP always: on localhost the driver would otherwise switch to the server's
            // unix socket, around any proxy a test or a fault puts in between.
            .prefer_socket(false)
            .pool_opts(
                PoolOpts::new()
                    .with_constraints(constraints)
                    .with_reset_connection(false)
                    .with_inactive_connection_ttl(Duration::from_secs(60)),
            );
        let store = Self {
            pool: Pool::new(opts),
            address,
        };
        store
            .conn()
            .await?
            .ping()
            .await
            .map_err(|source| StoreError::Connect {
                address: store.address.clone(),
                source,
            })?;
        Ok(store)
    }

    /// The server's address, without the password, for messages.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// One round trip: the readiness probe.
    pub async fn ping(&self) -> Result<(), StoreError> {
        Ok(self.conn().await?.ping().await?)
    }

    /// A pooled connection, within [`ACQUIRE_TIMEOUT`].
    pub(crate) async fn conn(&self) -> Result<Conn, StoreError> {
        match tokio::time::timeout(ACQUIRE_TIMEOUT, self.pool.get_conn()).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(source)) => Err(StoreError::Connect {
                address: self.address.clone(),
                source,
            }),
            Err(_elapsed) => Err(StoreError::PoolExhausted {
                address: self.address.clone(),
                waited: ACQUIRE_TIMEOUT,
            }),
        }
    }

    /// One statement's first row, on a pooled connection.
    pub(crate) async fn first<T, S, P>(
        &self,
        statement: S,
        params: P,
    ) -> Result<Option<T>, StoreError>
    where
        T: FromRow + Send + 'static,
        S: StatementLike,
        P: Into<Params> + Send,
    {
        Ok(self.conn().await?.exec_first(statement, params).await?)
    }

    /// One statement's rows, on a pooled connection.
    pub(crate) async fn all<T, S, P>(&self, statement: S, params: P) -> Result<Vec<T>, StoreError>
    where
        T: FromRow + Send + 'static,
        S: StatementLike,
        P: Into<Params> + Send,
    {
        Ok(self.conn().await?.exec(statement, params).await?)
    }

    /// A `SELECT COUNT(*) ...`, as the u64 it is.
    pub(crate) async fn count<S, P>(&self, statement: S, params: P) -> Result<u64, StoreError>
    where
        S: StatementLike,
        P: Into<Params> + Send,
    {
        Ok(as_count(self.first(statement, params).await?))
    }

    /// One statement that returns no rows, on a pooled connection.
    pub(crate) async fn run<S, P>(&self, statement: S, params: P) -> Result<(), StoreError>
    where
        S: StatementLike,
        P: Into<Params> + Send,
    {
        Ok(self.conn().await?.exec_drop(statement, params).await?)
    }

    /// Closes every connection (a clean goodbye to the server).
    pub async fn disconnect(self) {
        if let Err(error) = self.pool.disconnect().await {
            tracing::debug!(error = %coupon_runtime::chain(&error), "mysql pool did not close cleanly");
        }
    }
}

/// Transaction options for writes whose locking reads must lock the gaps where a row is absent
/// (the consumer's batch and the reconciler's revocation): REPEATABLE READ, set explicitly so
/// a server configured for READ COMMITTED cannot weaken them.
pub(crate) fn serializing_tx() -> mysql_async::TxOpts {
    let mut opts = mysql_async::TxOpts::default();
    opts.with_isolation_level(mysql_async::IsolationLevel::RepeatableRead);
    opts
}

/// A time for a `DATETIME(3)` column: the schema stores UTC.
pub fn to_utc_datetime(at: time::OffsetDateTime) -> time::PrimitiveDateTime {
    let utc = at.to_offset(time::UtcOffset::UTC);
    time::PrimitiveDateTime::new(utc.date(), utc.time())
}

/// A `COUNT(*)` as the u64 it is.
fn as_count(value: Option<i64>) -> u64 {
    value
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or_default()
}
