//! Redis: the gate's state for a campaign (marker, winners, highest slot, released slots).

use anyhow::Context;
use coupon_domain::{CampaignId, GateKeys};
use redis::AsyncCommands;

use crate::reconcile::GateFact;

#[derive(Clone)]
pub struct GateReader {
    conn: redis::aio::MultiplexedConnection,
    prefix: String,
}

impl std::fmt::Debug for GateReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GateReader")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl GateReader {
    pub async fn connect(url: &str, prefix: &str) -> anyhow::Result<Self> {
        let address = coupon_runtime::stack::redact(url);
        let client =
            redis::Client::open(url).with_context(|| format!("bad REDIS_URL {address}"))?;
        let conn = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| anyhow::anyhow!("timed out"))
        .and_then(|r| r.map_err(anyhow::Error::from))
        .with_context(|| format!("redis at {address} is unreachable"))?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
        })
    }

    fn keys(&self, campaign: &str) -> anyhow::Result<GateKeys> {
        let id = CampaignId::parse(campaign)
            .with_context(|| format!("`{campaign}` is not a campaign id"))?;
        Ok(GateKeys::new(&self.prefix, &id))
    }

    /// How many winners the gate holds (HLEN: the drain wait polls it, so no full read).
    pub async fn winner_count(&self, campaign: &str) -> anyhow::Result<u64> {
        let keys = self.keys(campaign)?;
        let mut conn = self.conn.clone();
        Ok(conn.hlen(&keys.winners).await?)
    }

    pub async fn gate(&self, campaign: &str) -> anyhow::Result<GateFact> {
        let keys = self.keys(campaign)?;
        let mut conn = self.conn.clone();
        let initialised: bool = conn.exists(&keys.marker).await?;
        let winners: std::collections::BTreeMap<u64, u32> = conn.hgetall(&keys.winners).await?;
        let released: Vec<u32> = conn.lrange(&keys.released, 0, -1).await?;
        Ok(GateFact {
            initialised,
            winners,
            released,
        })
    }
}
