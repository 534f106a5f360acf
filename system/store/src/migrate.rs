//! The schema's migrations: versioned SQL files under `system/migrations`, embedded in every
//! binary and applied once each, in order, by [`run`].
//!
//! - `schema_migrations` records each applied version with the SHA-256 of its file. A file
//!   edited after it was applied is refused with [`StoreError::MigrationEdited`]: a change to
//!   the schema is a new file, never an edit.
//! - Each file runs in a transaction of its own with its version row. MySQL and MariaDB commit
//!   DDL implicitly, so only a file's data statements are atomic; ours keep one DDL change per
//!   statement so that a failure leaves a state the next file does not assume.
//! - Several processes may start at once (the api and the consumer): a named server lock
//!   (`GET_LOCK`) lets one apply while the others wait, then find nothing left to do.
//! - A database migrated by an earlier build (sqlx's `_sqlx_migrations`) is adopted: its
//!   applied versions are recorded here once, with today's checksums.

use std::time::Duration;

use mysql_async::{TxOpts, prelude::Queryable};
use sha2::{Digest, Sha256};

use crate::{Store, StoreError};

/// One versioned SQL file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    pub version: u64,
    pub name: &'static str,
    pub sql: &'static str,
}

impl Migration {
    /// The SHA-256 of the file, in hex: what `schema_migrations` records.
    pub fn checksum(&self) -> String {
        Sha256::digest(self.sql.as_bytes())
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
}

macro_rules! migration {
    ($version:literal, $name:literal) => {
        Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!(
                "../../migrations/",
                stringify!($version),
                "_",
                $name,
                ".sql"
            )),
        }
    };
}

/// Every migration, in the order they apply. A unit test checks this list against the folder.
pub const MIGRATIONS: &[Migration] = &[
    migration!(20261124000001, "campaigns_and_coupons"),
    migration!(20261124000002, "course_stages"),
    migration!(20261124000003, "gate_epoch"),
    migration!(20261124000004, "failed_event_payload_digest"),
    migration!(20261124000005, "gate_fences"),
    migration!(20261124000006, "campaign_first_epoch"),
];

const LOCK_NAME: &str = "fcfs_coupons.schema_migrations";
const LOCK_WAIT: Duration = Duration::from_secs(60);

/// Applies the pending [`MIGRATIONS`]; returns the versions it applied.
pub async fn run(store: &Store) -> Result<Vec<u64>, StoreError> {
    run_with(store, MIGRATIONS).await
}

/// Applies `migrations` (the project's, or a test's edited copy): see the module's doc.
pub async fn run_with(store: &Store, migrations: &[Migration]) -> Result<Vec<u64>, StoreError> {
    let mut conn = store.conn().await?;
    let locked: Option<Option<i64>> = conn
        .exec_first("SELECT GET_LOCK(?, ?)", (LOCK_NAME, LOCK_WAIT.as_secs()))
        .await?;
    if locked.flatten() != Some(1) {
        return Err(StoreError::Decode(format!(
            "another process held the migration lock `{LOCK_NAME}` for over {LOCK_WAIT:?}"
        )));
    }
    let applied = apply_pending(&mut conn, migrations).await;
    let released: Result<Option<Option<i64>>, _> = conn
        .exec_first("SELECT RELEASE_LOCK(?)", (LOCK_NAME,))
        .await;
    if let Err(error) = released {
        tracing::warn!(error = %coupon_runtime::chain(&error), "failed to release the migration lock");
    }
    applied
}

async fn apply_pending(
    conn: &mut mysql_async::Conn,
    migrations: &[Migration],
) -> Result<Vec<u64>, StoreError> {
    conn.query_drop(
        "CREATE TABLE IF NOT EXISTS schema_migrations (\
             version    BIGINT UNSIGNED NOT NULL PRIMARY KEY, \
             name       VARCHAR(255)    NOT NULL, \
             checksum   CHAR(64)        NOT NULL, \
             applied_at DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3)\
         ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4",
    )
    .await?;
    adopt_sqlx_history(conn, migrations).await?;
    let recorded: Vec<(u64, String)> = conn
        .query("SELECT version, checksum FROM schema_migrations ORDER BY version")
        .await?;
    for (version, checksum) in &recorded {
        match migrations.iter().find(|m| m.version == *version) {
            None => return Err(StoreError::MigrationUnknown { version: *version }),
            Some(known) if known.checksum() != *checksum => {
                return Err(StoreError::MigrationEdited {
                    version: known.version,
                    name: known.name.to_owned(),
                });
            }
            Some(_) => {}
        }
    }
    let mut applied = Vec::new();
    for migration in migrations {
        if recorded
            .iter()
            .any(|(version, _)| *version == migration.version)
        {
            continue;
        }
        apply_one(conn, migration)
            .await
            .map_err(|source| StoreError::MigrationFailed {
                version: migration.version,
                name: migration.name.to_owned(),
                source,
            })?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "applied migration"
        );
        applied.push(migration.version);
    }
    Ok(applied)
}

async fn apply_one(
    conn: &mut mysql_async::Conn,
    migration: &Migration,
) -> Result<(), mysql_async::Error> {
    let mut tx = conn.start_transaction(TxOpts::default()).await?;
    tx.query_drop(migration.sql).await?;
    tx.exec_drop(
        "INSERT INTO schema_migrations (version, name, checksum) VALUES (?, ?, ?)",
        (migration.version, migration.name, migration.checksum()),
    )
    .await?;
    tx.commit().await
}

/// Records the versions an earlier build applied through sqlx, once, so they are not run again.
async fn adopt_sqlx_history(
    conn: &mut mysql_async::Conn,
    migrations: &[Migration],
) -> Result<(), StoreError> {
    let ours: Option<i64> = conn
        .query_first("SELECT COUNT(*) FROM schema_migrations")
        .await?;
    let theirs: Option<i64> = conn
        .query_first(
            "SELECT COUNT(*) FROM information_schema.tables \
             WHERE table_schema = DATABASE() AND table_name = '_sqlx_migrations'",
        )
        .await?;
    if ours != Some(0) || theirs != Some(1) {
        return Ok(());
    }
    let versions: Vec<i64> = conn
        .query("SELECT version FROM _sqlx_migrations WHERE success = 1 ORDER BY version")
        .await?;
    for version in versions {
        let Some(migration) = migrations
            .iter()
            .find(|m| i64::try_from(m.version).ok() == Some(version))
        else {
            continue;
        };
        conn.exec_drop(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES (?, ?, ?)",
            (migration.version, migration.name, migration.checksum()),
        )
        .await?;
        tracing::info!(version, "adopted a migration applied by an earlier build");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_matches_the_migrations_folder_in_order() {
        let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations");
        let mut files: Vec<String> = std::fs::read_dir(folder)
            .expect("the migrations folder exists")
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| name.ends_with(".sql"))
            .collect();
        files.sort();
        let listed: Vec<String> = MIGRATIONS
            .iter()
            .map(|m| format!("{}_{}.sql", m.version, m.name))
            .collect();
        assert_eq!(listed, files);
        assert!(MIGRATIONS.windows(2).all(|w| w[0].version < w[1].version));
    }

    #[test]
    fn a_checksum_changes_with_one_byte() {
        let original = MIGRATIONS[0];
        let edited = Migration {
            sql: "-- edited",
            ..original
        };
        assert_eq!(original.checksum().len(), 64);
        assert_ne!(original.checksum(), edited.checksum());
        assert_eq!(original.checksum(), MIGRATIONS[0].checksum());
    }
}
