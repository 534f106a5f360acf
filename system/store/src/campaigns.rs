//! Campaigns: created by the admin endpoint (or the migration, for `default`), read by all.

use coupon_domain::{Campaign, CampaignId, CouponLimit, Strategy};
use mysql_async::{Row, TxOpts, prelude::Queryable};
use time::PrimitiveDateTime;

use crate::{Store, StoreError, to_utc_datetime};

/// A campaign as stored, with whether its Redis gate was ever initialised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCampaign {
    pub campaign: Campaign,
    pub gate_initialised: bool,
    /// The life of the campaign's first gate, whose fence marks where the campaign's own events
    /// begin on the topic (migration 6). `None` before that gate is built, or when it was built
    /// before this was recorded.
    pub first_epoch: Option<u64>,
}

const COLUMNS: &str =
    "id, coupon_limit, opens_at, closes_at, gate_initialised_at, strategy, first_epoch";

fn from_row(row: Row) -> Result<StoredCampaign, StoreError> {
    type Columns = (
        String,
        u32,
        Option<PrimitiveDateTime>,
        Option<PrimitiveDateTime>,
        Option<PrimitiveDateTime>,
        String,
        Option<u64>,
    );
    let (id, limit, opens_at, closes_at, gate_initialised_at, strategy, first_epoch): Columns =
        mysql_async::from_row_opt(row)
            .map_err(|e| StoreError::Decode(format!("campaign row: {e}")))?;
    let decode =
        |e: &dyn std::fmt::Display| StoreError::Decode(format!("campaign row `{id}`: {e}"));
    let strategy: Strategy = strategy.parse().map_err(|e| decode(&e))?;
    let campaign = Campaign::new(
        CampaignId::parse(&id).map_err(|e| decode(&e))?,
        CouponLimit::parse(u64::from(limit)).map_err(|e| decode(&e))?,
        opens_at.map(PrimitiveDateTime::assume_utc),
        closes_at.map(PrimitiveDateTime::assume_utc),
    )
    .map_err(|e| decode(&e))?
    .with_strategy(strategy);
    Ok(StoredCampaign {
        campaign,
        gate_initialised: gate_initialised_at.is_some(),
        first_epoch,
    })
}

#[tracing::instrument(skip_all, fields(campaign_id = %id))]
pub async fn find(store: &Store, id: &CampaignId) -> Result<Option<StoredCampaign>, StoreError> {
    let row: Option<Row> = store
        .first(
            format!("SELECT {COLUMNS} FROM campaign WHERE id = ?"),
            (id.as_str(),),
        )
        .await?;
    row.map(from_row).transpose()
}

/// Every campaign, oldest first; a row that is no valid campaign is an error naming it (the
/// verifier's read: a campaign it cannot read is one it cannot verify).
pub async fn list_all_valid(store: &Store) -> Result<Vec<StoredCampaign>, StoreError> {
    rows(store).await?.into_iter().map(from_row).collect()
}

async fn rows(store: &Store) -> Result<Vec<Row>, StoreError> {
    store
        .all(
            format!("SELECT {COLUMNS} FROM campaign ORDER BY created_at, id"),
            (),
        )
        .await
}

/// Every campaign, oldest first. A row that is no valid campaign (written by hand: an id the
/// api would refuse, say) is left out and logged, so that one bad row cannot stop an api from
/// starting or hide every other campaign from it.
pub async fn list(store: &Store) -> Result<Vec<StoredCampaign>, StoreError> {
    Ok(rows(store)
        .await?
        .into_iter()
        .filter_map(|row| {
            let id: Option<String> = row.get(0);
            from_row(row)
                .inspect_err(|error| {
                    tracing::warn!(
                        campaign_id = id.as_deref().unwrap_or("?"),
                        error = %coupon_runtime::chain(error),
                        "campaign row skipped: it is no valid campaign"
                    );
                })
                .ok()
        })
        .collect())
}

/// Inserts the campaign; `Ok(false)` when one with that id already exists.
#[tracing::instrument(skip_all, fields(campaign_id = %campaign.id))]
pub async fn create(store: &Store, campaign: &Campaign) -> Result<bool, StoreError> {
    let result = store
        .run(
            "INSERT INTO campaign (id, coupon_limit, opens_at, closes_at, strategy) \
             VALUES (?, ?, ?, ?, ?)",
            (
                campaign.id.as_str(),
                campaign.limit.get(),
                campaign.opens_at.map(to_utc_datetime),
                campaign.closes_at.map(to_utc_datetime),
                campaign.strategy.as_str(),
            ),
        )
        .await;
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.is_unique_violation() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Records that the campaign's Redis gate has been built: from then on a missing gate means
/// Redis lost it, not that the campaign is new. `first_epoch` is the life the campaign's first
/// gate began in (migration 6), `None` where it is not known (a forced rebuild, the control's
/// empty gate). `false` when the gate was already on record.
pub async fn mark_gate_initialised(
    store: &Store,
    id: &CampaignId,
    first_epoch: Option<u64>,
) -> Result<bool, StoreError> {
    let mut conn = store.conn().await?;
    conn.exec_drop(
        "UPDATE campaign SET gate_initialised_at = CURRENT_TIMESTAMP(3), first_epoch = ? \
         WHERE id = ? AND gate_initialised_at IS NULL",
        (first_epoch, id.as_str()),
    )
    .await?;
    Ok(conn.affected_rows() == 1)
}

/// Takes the campaign's next gate epoch: a counter kept in MySQL (migration 3), so that no two
/// lives of a gate share an epoch, whatever Redis lost in between. The counter also moves past
/// every epoch the campaign id's fences and revocations name, and past `at_least` (the epoch of
/// a gate found in Redis): a campaign created again under an earlier one's id starts its
/// counter at 0, while that earlier campaign's fences, revocations and gate outlive it.
pub async fn next_gate_epoch(
    store: &Store,
    id: &CampaignId,
    at_least: u64,
) -> Result<u64, StoreError> {
    let mut conn = store.conn().await?;
    let mut tx = conn.start_transaction(TxOpts::default()).await?;
    tx.exec_drop(
        "UPDATE campaign SET gate_epoch = 1 + GREATEST(gate_epoch, ?, \
             COALESCE((SELECT MAX(epoch) FROM gate_fence WHERE campaign_id = ?), 0), \
             COALESCE((SELECT MAX(below_epoch) FROM revoked_admission WHERE campaign_id = ?), 0)) \
         WHERE id = ?",
        (at_least, id.as_str(), id.as_str(), id.as_str()),
    )
    .await?;
    let epoch: Option<u64> = tx
        .exec_first(
            "SELECT gate_epoch FROM campaign WHERE id = ?",
            (id.as_str(),),
        )
        .await?;
    tx.commit().await?;
    epoch.ok_or_else(|| StoreError::Decode(format!("campaign `{id}` does not exist")))
}
