//! Statements for tests and tools rather than the pipeline: databases of their own, the
//! server's statement counters, whole-table counts. Kept here so that every SQL statement of the
//! project is in this crate.

use mysql_async::prelude::Queryable;

use crate::{Store, StoreError, as_count};

/// Creates an empty database on the store's server (a test's own).
pub async fn create_database(store: &Store, name: &str) -> Result<(), StoreError> {
    store
        .conn()
        .await?
        .query_drop(format!("CREATE DATABASE `{}`", quoted(name)?))
        .await?;
    Ok(())
}

pub async fn drop_database(store: &Store, name: &str) -> Result<(), StoreError> {
    store
        .conn()
        .await?
        .query_drop(format!("DROP DATABASE IF EXISTS `{}`", quoted(name)?))
        .await?;
    Ok(())
}

/// Whether a database of that name exists.
pub async fn database_exists(store: &Store, name: &str) -> Result<bool, StoreError> {
    let found: Option<i64> = store
        .conn()
        .await?
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?",
            (name,),
        )
        .await?;
    Ok(as_count(found) == 1)
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
