//! The consume loop. Each batch is written in one MySQL transaction; only after it committed
//! are the batch's offsets committed to Kafka. A transient database error retries the batch with
//! backoff (nothing is committed meanwhile); an event that can never be written is captured in
//! `failed_event` with its reason, in the same transaction, so the partition moves on.

use std::{collections::HashMap, future::Future, sync::Arc, time::Duration};

use anyhow::Context;
use coupon_domain::{Campaign, CampaignId, CouponIssued, event::MAX_EVENT_BYTES};
use coupon_runtime::Backoff;
use coupon_store::{
    CapturedPayload, CouponToWrite, FailureReason, NewFailedEvent, Source, Store, StoreError,
    WriteOutcome, campaigns, coupons,
};
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{CommitMode, Consumer, StreamConsumer},
    message::OwnedMessage,
};

use crate::{configuration::Settings, fault::CrashAfter, metrics::Metrics};

/// Caches campaigns (their limit and strategy never change); `None` caches nothing, so a
/// campaign created later is found. Each consume loop keeps its own.
#[derive(Debug, Default)]
pub struct CampaignCache(HashMap<CampaignId, Campaign>);

impl CampaignCache {
    pub async fn get(
        &mut self,
        store: &Store,
        id: &CampaignId,
    ) -> Result<Option<&Campaign>, coupon_store::StoreError> {
        if !self.0.contains_key(id) {
            let Some(stored) = campaigns::find(store, id).await? else {
                return Ok(None);
            };
            self.0.insert(id.clone(), stored.campaign);
        }
        Ok(self.0.get(id))
    }
}

/// A consumer of `config`'s group, subscribed to `topic`.
pub fn subscribe(
    config: rdkafka::ClientConfig,
    brokers: &str,
    topic: &str,
) -> anyhow::Result<StreamConsumer> {
    let consumer: StreamConsumer = config
        .create()
        .with_context(|| format!("failed to create a kafka consumer for {brokers}"))?;
    consumer
        .subscribe(&[topic])
        .with_context(|| format!("failed to subscribe to topic {topic}"))?;
    Ok(consumer)
}

/// Sorts a batch into rows to write and events to capture as failed. A failed record keeps at
/// most `payload_kept` bytes of its payload ([`coupon_store::failed_events::PAYLOAD_KEPT`]).
pub async fn classify(
    store: &Store,
    campaigns: &mut CampaignCache,
    messages: &[OwnedMessage],
    payload_kept: usize,
) -> Result<(Vec<CouponToWrite>, Vec<NewFailedEvent>), StoreError> {
    let mut rows = Vec::with_capacity(messages.len());
    let mut failures = Vec::new();
    for message in messages {
        let payload = message.payload().unwrap_or_default().to_vec();
        let source = Source {
            partition: message.partition(),
            offset: message.offset(),
        };
        let failure = |reason, detail: String, event: Option<&CouponIssued>| NewFailedEvent {
            partition: source.partition,
            offset: source.offset,
            payload: CapturedPayload::of(&payload, payload_kept),
            campaign_id: event.map(|e| e.campaign_id.to_string()),
            user_id: event.map(|e| e.user_id.get()),
            reason,
            detail,
        };
        if payload.len() > MAX_EVENT_BYTES {
            let detail = format!(
                "a record of {} bytes; no event is larger than {MAX_EVENT_BYTES}",
                payload.len()
            );
            failures.push(failure(FailureReason::Oversized, detail, None));
            continue;
        }
        let event = match CouponIssued::from_json(&payload) {
            Ok(event) => event,
            Err(error) => {
                failures.push(failure(FailureReason::Malformed, error.to_string(), None));
                continue;
            }
        };
        let limit = match campaigns.get(store, &event.campaign_id).await {
            Ok(campaign) => campaign.map(|campaign| campaign.limit),
            // MySQL away: the batch pauses and retries.
            Err(error) if error.is_transient() => return Err(error),
            // The campaign's row is no valid campaign (written by hand): the event waits as a
            // failed event, retried once the row is mended, and the partition moves on.
            Err(error) => {
                let detail = format!("campaign `{}`: {error}", event.campaign_id);
                failures.push(failure(
                    FailureReason::UnknownCampaign,
                    detail,
                    Some(&event),
                ));
                continue;
            }
        };
        match limit {
            None => failures.push(failure(
                FailureReason::UnknownCampaign,
                format!("campaign `{}` does not exist", event.campaign_id),
                Some(&event),
            )),
            Some(limit) if event.seq.0 == 0 || event.seq.0 > limit.get() => failures.push(failure(
                FailureReason::SeqOutOfRange,
                format!("seq {} is outside 1..={}", event.seq.0, limit.get()),
                Some(&event),
            )),
            Some(limit) => rows.push(CouponToWrite {
                event,
                limit,
                source,
                payload,
            }),
        }
    }
    Ok((rows, failures))
}

/// Writes one batch, retrying transient errors with backoff until it commits or `stop` fires.
/// Returns `false` when stopped before the batch committed (its offsets must not be committed).
pub async fn write_until_committed(
    store: &Store,
    campaigns: &mut CampaignCache,
    metrics: &Metrics,
    messages: &[OwnedMessage],
    payload_kept: usize,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<bool> {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        let attempt = async {
            let (rows, failures) = classify(store, campaigns, messages, payload_kept).await?;
            let outcomes = coupons::write_batch(store, &rows, &failures).await?;
            Ok::<_, StoreError>((outcomes, failures))
        }
        .await;
        match attempt {
            Ok((outcomes, failures)) => {
                record(metrics, &outcomes, &failures);
                return Ok(true);
            }
            Err(error) if error.is_transient() => {
                metrics.transient_errors.inc();
                tracing::warn!(error = %coupon_runtime::chain(&error), retry_in = ?backoff.peek(), events = messages.len(), "transient database error; retrying the batch");
                let mut stop = stop.clone();
                tokio::select! {
                    () = backoff.wait() => {}
                    _ = stop.wait_for(|stopped| *stopped) => return Ok(false),
                }
            }
            Err(error) => return Err(error).context("failed to write a batch of coupons"),
        }
    }
}

fn record(metrics: &Metrics, outcomes: &[WriteOutcome], failures: &[NewFailedEvent]) {
    metrics.batches.inc();
    for outcome in outcomes {
        match outcome {
            WriteOutcome::Written => {
                metrics.rows_written.inc();
            }
            WriteOutcome::AlreadyWritten => {
                metrics.already_written.inc();
            }
            WriteOutcome::Refused { reason } => {
                tracing::warn!(
                    reason = %reason,
                    "coupon refused by the database; captured as failed event"
                );
                metrics.count_failed_event(*reason);
            }
        }
    }
    for failure in failures {
        tracing::warn!(
            partition = failure.partition,
            offset = failure.offset,
            reason = %failure.reason,
            "event captured as failed event"
        );
        metrics.count_failed_event(failure.reason);
    }
}

/// Offsets to commit after a batch: for each partition, one past its last event.
fn next_offsets(topic: &str, messages: &[OwnedMessage]) -> anyhow::Result<TopicPartitionList> {
    let mut highest: HashMap<i32, i64> = HashMap::new();
    for message in messages {
        let entry = highest
            .entry(message.partition())
            .or_insert(message.offset());
        *entry = (*entry).max(message.offset());
    }
    let mut list = TopicPartitionList::new();
    for (partition, offset) in highest {
        list.add_partition_offset(topic, partition, Offset::Offset(offset + 1))?;
    }
    Ok(list)
}

/// What was read ahead, less the events of partitions a rebalance took away meanwhile: their
/// new owner starts from the committed offset and writes them; writing them here as well would
/// only duplicate its work, and storing their offsets could move a returned partition back.
fn still_assigned(consumer: &StreamConsumer, ahead: Vec<OwnedMessage>) -> Vec<OwnedMessage> {
    if ahead.is_empty() {
        return ahead;
    }
    let Ok(assigned) = consumer.assignment() else {
        return ahead;
    };
    ahead
        .into_iter()
        .filter(|m| assigned.find_partition(m.topic(), m.partition()).is_some())
        .collect()
}

/// Consumes until `shutdown` resolves; the batch in hand is finished and committed first.
pub async fn run(
    settings: &Settings,
    store: Store,
    metrics: Arc<Metrics>,
    crash: Arc<CrashAfter>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let consumer = subscribe(
        coupon_kafka::consumer_config(&settings.stack.kafka_brokers, &settings.stack.group),
        &settings.stack.kafka_brokers,
        &settings.stack.topic,
    )?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut campaigns = CampaignCache::default();
    tokio::pin!(shutdown);
    let mut stopping = false;
    tracing::info!(topic = %settings.stack.topic, group = %settings.stack.group, "consumer running");
    let mut refresh = tokio::time::interval(Duration::from_millis(200));
    // Events received while the previous batch was being written: the next batch starts with
    // them, so reading Kafka overlaps MySQL's work instead of waiting for it.
    let mut ahead: Vec<OwnedMessage> = Vec::new();
    loop {
        let mut batch = still_assigned(&consumer, std::mem::take(&mut ahead));
        if batch.is_empty() {
            let first = tokio::select! {
                () = &mut shutdown, if !stopping => break,
                _ = refresh.tick() => {
                    metrics.set_assigned("pipeline", &consumer);
                    continue;
                }
                received = consumer.recv() => received,
            };
            // Broker errors (a restart, a lost connection) surface here; librdkafka reconnects
            // by itself, so they are logged and the loop goes on.
            match first {
                Ok(message) => batch.push(message.detach()),
                Err(error) => {
                    metrics.consume_errors.inc();
                    tracing::warn!(error = %coupon_runtime::chain(&error), "kafka consume error; continuing");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        while batch.len() < settings.batch_size {
            match tokio::time::timeout(Duration::from_millis(5), consumer.recv()).await {
                Ok(Ok(message)) => batch.push(message.detach()),
                Ok(Err(error)) => {
                    metrics.consume_errors.inc();
                    tracing::warn!(error = %coupon_runtime::chain(&error), "kafka consume error");
                    break;
                }
                Err(_idle) => break,
            }
        }
        // Finish the batch in hand even when shutdown arrives: a transient-error retry loop is
        // told to stop, and the batch then either commits or is left for redelivery.
        let rows_before = metrics.rows_written.get();
        let write = write_until_committed(
            &store,
            &mut campaigns,
            &metrics,
            &batch,
            settings.failed_payload_kept,
            &stop_rx,
        );
        tokio::pin!(write);
        let committed = loop {
            tokio::select! {
                written = &mut write => break written?,
                () = &mut shutdown, if !stopping => {
                    stopping = true;
                    let _ = stop_tx.send(true);
                }
                _ = refresh.tick() => metrics.set_assigned("pipeline", &consumer),
                // `recv` is cancel-safe: a message is taken only when it is returned. What is
                // read ahead is not stored as consumed until its own batch commits.
                received = consumer.recv(), if !stopping && ahead.len() < settings.batch_size => {
                    match received {
                        Ok(message) => ahead.push(message.detach()),
                        // Logged; the next `recv` waits for librdkafka's reconnect, and the
                        // batch being written is unaffected.
                        Err(error) => {
                            metrics.consume_errors.inc();
                            tracing::warn!(error = %coupon_runtime::chain(&error), "kafka consume error");
                        }
                    }
                }
            }
        };
        if !committed {
            break;
        }
        crash.wrote(metrics.rows_written.get() - rows_before);
        // Store, don't commit: librdkafka commits the stored offsets every second and retries a
        // failed commit by itself. Stored only now, after the transaction committed.
        if let Err(error) = consumer.store_offsets(&next_offsets(&settings.stack.topic, &batch)?) {
            tracing::warn!(error = %coupon_runtime::chain(&error), "failed to store offsets; the batch will be redelivered");
        }
        if stopping {
            break;
        }
    }
    if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
        tracing::debug!(error = %coupon_runtime::chain(&error), "nothing to commit at shutdown");
    }
    tracing::info!("consumer stopped");
    Ok(())
}
