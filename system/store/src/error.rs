//! The store's one error type. Callers ask [`StoreError::is_transient`] whether waiting helps;
//! nothing outside this crate looks at driver errors.

use std::time::Duration;

/// Server error codes that go away on their own: retried, never captured as data problems.
const TRANSIENT_SERVER_CODES: [u16; 12] = [
    1040, // too many connections
    1053, // server shutdown in progress
    1205, // lock wait timeout
    1213, // deadlock
    1290, // --read-only (a failover in progress)
    1836, // read-only mode (MariaDB)
    1927, // connection killed (MariaDB)
    2006, // server has gone away
    2013, // lost connection during query
    4031, // disconnected by the server for inactivity (MySQL 8)
    1317, // query interrupted
    1158, // network read error
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("failed to connect to mysql at {address}")]
    Connect {
        address: String,
        #[source]
        source: mysql_async::Error,
    },
    #[error("no mysql connection at {address} became free within {waited:?}")]
    PoolExhausted { address: String, waited: Duration },
    #[error(
        "migration {version} ({name}) was edited after it was applied: its checksum differs from \
         the one recorded in schema_migrations; restore the file and add a new migration instead"
    )]
    MigrationEdited { version: u64, name: String },
    #[error(
        "the database records migration {version}, which this build does not know: it is older \
         than the schema"
    )]
    MigrationUnknown { version: u64 },
    #[error("migration {version} ({name}) failed")]
    MigrationFailed {
        version: u64,
        name: String,
        #[source]
        source: mysql_async::Error,
    },
    #[error("mysql query failed")]
    Query(#[from] mysql_async::Error),
    #[error("unexpected value in mysql: {0}")]
    Decode(String),
    /// A gate rebuild of life {epoch} of campaign {campaign} is still reading where its fence
    /// ends; events of older lives wait for it.
    #[error("campaign {campaign}'s gate rebuild (epoch {epoch}) is still setting its fence")]
    FencePending { campaign: String, epoch: u64 },
}

impl StoreError {
    /// Campaign `campaign`'s rebuild of `epoch` is still setting its fence.
    pub fn fence_pending(campaign: impl ToString, epoch: u64) -> Self {
        Self::FencePending {
            campaign: campaign.to_string(),
            epoch,
        }
    }

    /// True for errors that go away on their own: the server is down or restarting, a deadlock,
    /// a lock wait timeout, an idle disconnect, a full pool. Those are retried; anything else is
    /// about the data (or the schema) and is not.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::PoolExhausted { .. } | Self::FencePending { .. } => true,
            Self::Query(error) | Self::MigrationFailed { source: error, .. } => {
                driver_is_transient(error)
            }
            Self::MigrationEdited { .. } | Self::MigrationUnknown { .. } | Self::Decode(_) => false,
        }
    }

    /// The server's error code, when the server refused the statement.
    pub fn server_code(&self) -> Option<u16> {
        match self {
            Self::Query(mysql_async::Error::Server(e)) => Some(e.code),
            _ => None,
        }
    }

    /// The server refused the row for a duplicate key.
    pub fn is_unique_violation(&self) -> bool {
        self.server_code() == Some(1062)
    }

    /// The row names a parent that does not exist (a campaign, or its limit).
    pub fn is_foreign_key_violation(&self) -> bool {
        matches!(self.server_code(), Some(1452 | 1216))
    }

    /// A CHECK constraint refused the row (MySQL 3819, MariaDB 4025).
    pub fn is_check_violation(&self) -> bool {
        matches!(self.server_code(), Some(3819 | 4025))
    }
}

fn driver_is_transient(error: &mysql_async::Error) -> bool {
    match error {
        mysql_async::Error::Server(e) => TRANSIENT_SERVER_CODES.contains(&e.code),
        mysql_async::Error::Io(_) => true,
        mysql_async::Error::Driver(e) => matches!(
            e,
            mysql_async::DriverError::ConnectionClosed
                | mysql_async::DriverError::PoolDisconnected
                | mysql_async::DriverError::PacketOutOfOrder
        ),
        mysql_async::Error::Other(_) | mysql_async::Error::Url(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: u16) -> StoreError {
        StoreError::Query(mysql_async::Error::Server(mysql_async::ServerError {
            code,
            message: String::new(),
            state: String::new(),
        }))
    }

    #[test]
    fn deadlocks_timeouts_and_lost_connections_are_transient() {
        for code in [1205, 1213, 2006, 2013, 4031, 1040] {
            assert!(server(code).is_transient(), "{code}");
        }
        let exhausted = StoreError::PoolExhausted {
            address: "mysql://x".into(),
            waited: Duration::from_secs(1),
        };
        assert!(exhausted.is_transient());
        let closed = StoreError::Query(mysql_async::DriverError::ConnectionClosed.into());
        assert!(closed.is_transient());
    }

    #[test]
    fn constraint_and_data_errors_are_not_transient() {
        for code in [1062, 1452, 3819, 4025, 1406, 1064] {
            assert!(!server(code).is_transient(), "{code}");
        }
        assert!(server(1062).is_unique_violation());
        assert!(server(1452).is_foreign_key_violation());
        assert!(server(4025).is_check_violation() && server(3819).is_check_violation());
        assert!(!StoreError::Decode("x".into()).is_transient());
    }
}
