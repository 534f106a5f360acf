//! A database of one run's own on the project's MySQL server.

use anyhow::Context;
use coupon_store::{Store, admin};

#[derive(Debug)]
pub struct PrivateDatabase {
    pub name: String,
    /// `DATABASE_URL` with this database in place of the project's.
    pub url: String,
    server: Store,
}

impl PrivateDatabase {
    /// Creates `<project database>_<purpose>_<hex>`, empty (the api migrates it); the project
    /// account may create any database whose name starts with the project database's name
    /// (see `scripts/stack`).
    pub async fn create(database_url: &str, purpose: &str) -> anyhow::Result<Self> {
        let (server_url, base) = database_url
            .rsplit_once('/')
            .context("DATABASE_URL has no database name")?;
        let name = crate::unique_name(&format!("{base}_{purpose}"));
        let server = Store::open(database_url, 1).await.with_context(|| {
            format!(
                "failed to connect to mysql at {}",
                coupon_store::redact(server_url)
            )
        })?;
        admin::create_database(&server, &name)
            .await
            .with_context(|| format!("failed to create database {name}"))?;
        Ok(Self {
            url: format!("{server_url}/{name}"),
            name,
            server,
        })
    }

    /// Drops the database.
    pub async fn drop(self) -> anyhow::Result<()> {
        admin::drop_database(&self.server, &self.name)
            .await
            .with_context(|| format!("failed to drop database {}", self.name))?;
        self.server.disconnect().await;
        Ok(())
    }
}
