//! Campaigns, cached in memory in front of MySQL. A campaign's id, limit and window never
//! change once created, so a cached entry never goes stale; misses go to MySQL.

use std::{collections::HashMap, sync::RwLock};

use coupon_domain::{Campaign, CampaignId};
use coupon_store::{Store, StoreError, StoredCampaign, campaigns};

#[derive(Debug)]
pub struct CampaignCache {
    store: Store,
    cached: RwLock<HashMap<CampaignId, Campaign>>,
}

impl CampaignCache {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            cached: RwLock::default(),
        }
    }

    pub async fn get(&self, id: &CampaignId) -> Result<Option<Campaign>, StoreError> {
        if let Some(campaign) = self.cached.read().ok().and_then(|c| c.get(id).cloned()) {
            return Ok(Some(campaign));
        }
        let found = self.fresh(id).await?;
        Ok(found.map(|stored| stored.campaign))
    }

    /// Reads MySQL, bypassing the cache (the gate-initialised flag does change).
    pub async fn fresh(&self, id: &CampaignId) -> Result<Option<StoredCampaign>, StoreError> {
        let found = campaigns::find(&self.store, id).await?;
        if let (Some(stored), Ok(mut cached)) = (&found, self.cached.write()) {
            cached.insert(id.clone(), stored.campaign.clone());
        }
        Ok(found)
    }
}
