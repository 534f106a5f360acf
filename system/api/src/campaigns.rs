//! Campaigns, cached in memory in front of MySQL. A campaign's id, limit and window never
//! change once created, so a cached entry never goes stale. A miss does not ask MySQL for that
//! one id: it re-reads every campaign, at most once per miss window, and answers from what it
//! read. So a flood of applies to random campaign ids costs MySQL one read per window, and a
//! campaign created through another api is found within one window.

use std::{
    collections::HashMap,
    sync::RwLock,
    time::{Duration, Instant},
};

use coupon_domain::{Campaign, CampaignId};
use coupon_store::{Store, StoreError, StoredCampaign, campaigns};
use prometheus_client::metrics::counter::Counter;

#[derive(Debug)]
pub struct CampaignCache {
    store: Store,
    cached: RwLock<HashMap<CampaignId, Campaign>>,
    /// When every campaign was last read for a miss, and whether that read worked; held while
    /// a reload runs, so misses that arrive meanwhile wait for it instead of starting their own.
    listed_at: tokio::sync::Mutex<Option<(Instant, bool)>>,
    miss_window: Duration,
    /// Every read of MySQL this cache makes (the `campaign_reads` metric).
    reads: Counter,
}

impl CampaignCache {
    pub fn new(store: Store, miss_window: Duration, reads: Counter) -> Self {
        Self {
            store,
            cached: RwLock::default(),
            listed_at: tokio::sync::Mutex::new(None),
            miss_window,
            reads,
        }
    }

    pub async fn get(&self, id: &CampaignId) -> Result<Option<Campaign>, StoreError> {
        if let Some(campaign) = self.cached(id) {
            return Ok(Some(campaign));
        }
        let mut listed_at = self.listed_at.lock().await;
        // Another miss may have reloaded while this one waited for the lock.
        if let Some(campaign) = self.cached(id) {
            return Ok(Some(campaign));
        }
        match *listed_at {
            Some((at, true)) if at.elapsed() < self.miss_window => Ok(self.cached(id)),
            // The last reload failed (MySQL away): each miss asks for its own id, and fails
            // on its own, rather than queueing behind one reload after another.
            Some((at, false)) if at.elapsed() < self.miss_window => {
                drop(listed_at);
                Ok(self.fresh(id).await?.map(|stored| stored.campaign))
            }
            _ => {
                self.reads.inc();
                let all = campaigns::list(&self.store).await;
                *listed_at = Some((Instant::now(), all.is_ok()));
                if let Ok(mut cached) = self.cached.write() {
                    for stored in all? {
                        cached.insert(stored.campaign.id.clone(), stored.campaign);
                    }
                }
                Ok(self.cached(id))
            }
        }
    }

    fn cached(&self, id: &CampaignId) -> Option<Campaign> {
        self.cached.read().ok().and_then(|c| c.get(id).cloned())
    }

    /// Reads MySQL, bypassing the cache (the gate-initialised flag does change).
    pub async fn fresh(&self, id: &CampaignId) -> Result<Option<StoredCampaign>, StoreError> {
        self.reads.inc();
        let found = campaigns::find(&self.store, id).await?;
        if let (Some(stored), Ok(mut cached)) = (&found, self.cached.write()) {
            cached.insert(id.clone(), stored.campaign.clone());
        }
        Ok(found)
    }
}
