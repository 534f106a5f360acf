//! What each fault does to the stack when it is due, and how it heals. Each writes its
//! injection and healing into the history ([`Scene::line`]); a fault that finds nothing to act
//! on says so and writes no injection, which the stage then reports as not struck.

use std::time::Duration;

use ::sandbox::{
    mysql::PrivateMysql,
    process::{Restartable, Server},
};
use anyhow::Context;
use coupon_domain::{
    CampaignState, CouponIssued, Seq, Strategy, UserId,
    history::{FaultPhase, ResultClass},
};
use coupon_runtime::{backoff::poll_until, proxy::Mode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::{sync::watch, time::Instant};

use super::{FaultKind, FaultSpec, Scene, When, due};
use crate::{pipeline, sandbox::Sandbox};

/// How long `db-outage` lasts past the burst when no `:for` is given.
const OUTAGE_AFTER_BURST: Duration = Duration::from_secs(8);

/// How long the nemesis waits for a fault's own effect (a crash to be restarted, poison to be
/// captured) before it calls the fault failed.
const EFFECT_TIMEOUT: Duration = Duration::from_secs(60);

/// How much later `api-kafka-latency` delivers every byte, each way: a produce request and its
/// acknowledgement take twice this, past the api's publish wait (5 s).
const API_KAFKA_DELAY: Duration = Duration::from_secs(3);

/// The size of the oversized poison record (the one that once stopped the consumer).
const POISON_BYTES: usize = 70_000;

/// How long the sale has been open by `clock-skew`'s api's clock when it really opens.
const CLOCK_SKEW: time::Duration = time::Duration::minutes(1);

/// How long each extra consumer of `rebalance-storm` stays in the group.
const STORM_STAY: Duration = Duration::from_millis(1500);

/// Why a fault has nothing to act on under `strategy`, if it has not.
pub fn not_applicable(kind: FaultKind, strategy: Strategy) -> Option<&'static str> {
    match kind {
        FaultKind::ConsumerCrash | FaultKind::RebalanceStorm if !strategy.uses_kafka() => {
            Some("this strategy runs no consumer")
        }
        FaultKind::Poison if strategy != Strategy::Reliable => {
            Some("poison goes to the design's topic; this strategy reads another one, or none")
        }
        FaultKind::StaleState if strategy != Strategy::Reliable => {
            Some("this strategy builds no gate from what the stores hold for the campaign's id")
        }
        FaultKind::RedisKill
        | FaultKind::RedisPause
        | FaultKind::RedisFlush
        | FaultKind::RedisRollback
            if strategy == Strategy::Naive =>
        {
            Some("this strategy uses no Redis")
        }
        FaultKind::KafkaKill | FaultKind::KafkaPause if !strategy.uses_kafka() => {
            Some("this strategy uses no Kafka")
        }
        FaultKind::ApiKafkaLatency | FaultKind::ApiKafkaReset | FaultKind::ApiKafkaBlackhole
            if !strategy.uses_kafka() =>
        {
            Some("this strategy's api sends nothing to Kafka")
        }
        _ => None,
    }
}

/// One fault: skipped when it has nothing to act on, or when the burst ends before it is due
/// (an armed crash is due from the start: the consumer strikes itself); else struck and healed.
pub(super) async fn one(
    scene: &Scene<'_>,
    spec: &FaultSpec,
    started: Instant,
    burst_done: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    if let Some(why) = not_applicable(spec.kind, scene.strategy) {
        return skipped(spec, why);
    }
    if spec.kind == FaultKind::ClockSkew {
        return clock_skew_heals(scene, spec)
            .await
            .with_context(|| format!("fault {spec} failed"));
    }
    if spec.kind.strikes_before_burst() {
        // Struck by [`before_burst`], already.
        return Ok(());
    }
    // An armed crash counts rows, not replies, in the consumer itself: it is due at once.
    let armed = spec.kind == FaultKind::ConsumerCrash && !matches!(spec.when, When::At(_));
    if !armed && !due(scene, spec, started, burst_done.clone()).await {
        return skipped(spec, "the burst ended before it was due");
    }
    let result = match spec.kind {
        FaultKind::ConsumerCrash => consumer_crash(scene, spec, burst_done).await,
        FaultKind::ApiCrash => api_crash(scene, spec).await,
        FaultKind::DbOutage => db_outage(scene, spec, burst_done).await,
        FaultKind::DbRestart => db_restart(scene, spec).await,
        FaultKind::DbReadonly => db_readonly(scene, spec).await,
        FaultKind::DbLock => db_lock(scene, spec, burst_done).await,
        FaultKind::Poison => poison(scene, spec).await,
        FaultKind::RebalanceStorm => rebalance_storm(scene, spec).await,
        FaultKind::StaleState | FaultKind::ClockSkew => Ok(()),
        FaultKind::RedisKill => redis_kill(scene, spec).await,
        FaultKind::RedisPause => redis_pause(scene, spec).await,
        FaultKind::RedisFlush => redis_flush(scene, spec).await,
        FaultKind::RedisRollback => redis_rollback(scene, spec).await,
        FaultKind::KafkaKill => kafka_kill(scene, spec).await,
        FaultKind::KafkaPause => kafka_pause(scene, spec).await,
        FaultKind::ApiKafkaLatency => {
            let delay = Mode::Delay(API_KAFKA_DELAY);
            let what = format!(
                "every byte {} ms later, each way",
                API_KAFKA_DELAY.as_millis()
            );
            api_kafka(scene, spec, delay, &what).await
        }
        FaultKind::ApiKafkaReset => {
            let what = "every connection reset (RST), new ones too";
            api_kafka(scene, spec, Mode::Reset, what).await
        }
        FaultKind::ApiKafkaBlackhole => {
            let what = "nothing gets through either way (held, not lost)";
            api_kafka(scene, spec, Mode::Blackhole, what).await
        }
    };
    result.with_context(|| format!("fault {spec} failed"))
}

/// Waits out the fault's length: its `:for`, or for `db-outage` without one, until
/// [`OUTAGE_AFTER_BURST`] after the burst.
async fn until_healed(spec: &FaultSpec, mut burst_done: watch::Receiver<bool>) {
    if spec.kind == FaultKind::DbOutage && !spec.lasting_given {
        let _ = burst_done.wait_for(|done| *done).await;
        // The fault's length, not a wait for anything: the outage lasts this long.
        tokio::time::sleep(OUTAGE_AFTER_BURST).await;
    } else if let Some(lasting) = spec.lasting {
        tokio::time::sleep(lasting).await;
    }
}

fn skipped(spec: &FaultSpec, why: &str) -> anyhow::Result<()> {
    eprintln!("fault {spec}: not injected: {why}");
    Ok(())
}

/// Whether the consumer's supervisor has restarted it more than `before` times: polled every
/// 50 ms (a restart shows within the supervisor's 100 ms tick), with no deadline of its own.
async fn restart_seen(scene: &Scene<'_>, before: u32) {
    while scene.pipeline.consumer_restarts() <= before {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// [`restart_seen`] within [`EFFECT_TIMEOUT`].
async fn restarted(scene: &Scene<'_>, before: u32) -> anyhow::Result<()> {
    tokio::time::timeout(EFFECT_TIMEOUT, restart_seen(scene, before))
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "gave up after {EFFECT_TIMEOUT:?} waiting for the consumer to be restarted"
            )
        })
}

async fn consumer_crash(
    scene: &Scene<'_>,
    spec: &FaultSpec,
    mut burst_done: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let before = scene.pipeline.consumer_restarts();
    match spec.when {
        When::At(_) => {
            let pid = scene.pipeline.kill_consumer()?;
            scene.line(
                spec,
                FaultPhase::Inject,
                &format!("consumer pid {pid}"),
                "SIGKILL",
            );
        }
        // Armed before the burst ([`super::prepare`]): the consumer kills itself after its
        // rows; the crash shows as a restart.
        When::Issued(_) | When::HalfTheLimit | When::QuarterTheLimit | When::HalfTheSurplus => {
            let gave_up = async {
                let _ = burst_done.wait_for(|done| *done).await;
                tokio::time::sleep(EFFECT_TIMEOUT).await;
            };
            tokio::select! {
                () = restart_seen(scene, before) => {}
                () = gave_up => {
                    return skipped(spec, "the consumer never wrote the rows it was armed to crash after");
                }
            }
            scene.line(
                spec,
                FaultPhase::Inject,
                "consumer",
                "SIGKILL (itself, after writing the rows it was armed for)",
            );
        }
    }
    restarted(scene, before).await?;
    scene.line(
        spec,
        FaultPhase::Heal,
        "consumer",
        "restarted by loadgen's supervisor",
    );
    Ok(())
}

/// SIGKILL the last of the apis (the first, at --host, keeps answering the run's own calls),
/// down for the fault's length, then a restart on the same address: its requests in flight get
/// no answer, and admissions it made whose events it had not yet published die with it.
async fn api_crash(scene: &Scene<'_>, spec: &FaultSpec) -> anyhow::Result<()> {
    let apis = scene.pipeline.api_urls().len();
    if apis < 2 {
        return skipped(spec, "only one api runs (--apis 2 or more)");
    }
    let last = apis - 1;
    let target = scene.pipeline.kill_api(last)?;
    scene.line(spec, FaultPhase::Inject, &target, "SIGKILL");
    // The fault's length: the api stays down this long.
    tokio::time::sleep(lasting(spec)).await;
    let restarted = scene.pipeline.restart_api(last).await?;
    scene.line(
        spec,
        FaultPhase::Heal,
        &restarted,
        "restarted on the same address, answering",
    );
    Ok(())
}

async fn db_outage(
    scene: &Scene<'_>,
    spec: &FaultSpec,
    burst_done: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let target = scene.pipeline.database_proxy();
    scene.pipeline.cut_consumer_database();
    scene.line(
        spec,
        FaultPhase::Inject,
        &target,
        "cut: open connections dropped, new ones refused",
    );
    until_healed(spec, burst_done).await;
    scene.pipeline.restore_consumer_database();
    scene.line(spec, FaultPhase::Heal, &target, "restored");
    Ok(())
}

async fn db_lock(
    scene: &Scene<'_>,
    spec: &FaultSpec,
    burst_done: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let store = coupon_store::Store::open(&scene.stack.database_url, 1)
        .await
        .context("db-lock cannot reach mysql")?;
    let lock = coupon_store::admin::lock_campaign_row(&store, scene.campaign_id)
        .await?
        .with_context(|| format!("campaign {} has no row to lock", scene.campaign_id))?;
    let target = format!(
        "mysql {}, row campaign.id = {}",
        store.address(),
        scene.campaign_id
    );
    scene.line(
        spec,
        FaultPhase::Inject,
        &target,
        "SELECT ... FOR UPDATE in an open transaction: the campaign's coupon inserts wait",
    );
    until_healed(spec, burst_done).await;
    lock.release().await?;
    scene.line(
        spec,
        FaultPhase::Heal,
        &target,
        "ROLLBACK: the lock is released",
    );
    store.disconnect().await;
    Ok(())
}

/// A fault that strikes before the burst (`stale-state`), unless it has nothing to act on.
pub(super) async fn before_burst(scene: &Scene<'_>, spec: &FaultSpec) -> anyhow::Result<()> {
    if let Some(why) = not_applicable(spec.kind, scene.strategy) {
        return skipped(spec, why);
    }
    match spec.kind {
        FaultKind::ClockSkew => clock_skew(scene, spec).await,
        _ => stale_state(scene, spec).await,
    }
    .with_context(|| format!("fault {spec} failed"))
}

/// Before the burst, the last of several apis is restarted with its clock fast by the time
/// left until the window opens and [`CLOCK_SKEW`] more, and the fault checks that it took: that
/// api calls the campaign open while the first, on the true clock, does not. Whatever clock an
/// api reads, the gate judges the window by Redis's. Should the check fail, the api is put back
/// on the true clock before the error is returned.
async fn clock_skew(scene: &Scene<'_>, spec: &FaultSpec) -> anyhow::Result<()> {
    let opening = scene
        .opening
        .context("the campaign was created without the window clock-skew opens mid-burst")?;
    let urls = scene.pipeline.api_urls();
    if urls.len() < 2 {
        return skipped(spec, "only one api runs (--apis 2 or more)");
    }
    let last = urls.len() - 1;
    let skew = (opening.at - time::OffsetDateTime::now_utc()) + CLOCK_SKEW;
    let target = scene.pipeline.restart_api_with_clock(last, skew).await?;
    let checked = async {
        let skewed = crate::client::ApiClient::new(&urls[last], None)?
            .campaign(scene.campaign_id)
            .await?
            .state;
        let truthful = scene.api.campaign(scene.campaign_id).await?.state;
        anyhow::ensure!(
            (skewed, truthful) == (CampaignState::Open, CampaignState::NotOpen),
            "the skewed api calls the campaign {}, the first api {}: expected open and not_open",
            skewed.as_str(),
            truthful.as_str()
        );
        Ok(())
    }
    .await;
    if let Err(error) = checked {
        on_the_true_clock(scene).await?;
        return Err(error);
    }
    scene.line(
        spec,
        FaultPhase::Inject,
        &target,
        &format!(
            "restarted with its clock {:.1} s fast: it calls the sale open, the others not_open",
            skew.as_seconds_f64()
        ),
    );
    Ok(())
}

/// The last step before the burst when `clock-skew` struck: waits until the burst is due,
/// [`super::Opening::into_burst`] before the window opens. If it is already past (the restart
/// took longer than the lead), the skewed api is put back on the true clock and the fault fails.
pub(super) async fn until_burst_due(scene: &Scene<'_>, spec: &FaultSpec) -> anyhow::Result<()> {
    let Some(opening) = scene.opening else {
        return Ok(());
    };
    if !struck(scene, spec) {
        return Ok(());
    }
    let wait = (opening.at - opening.into_burst) - time::OffsetDateTime::now_utc();
    if !wait.is_positive() {
        on_the_true_clock(scene).await?;
        anyhow::bail!(
            "fault {spec} failed: the burst is {:.1} s late for its window (the skewed api took \
             too long to restart); that api is back on the true clock",
            -wait.as_seconds_f64()
        );
    }
    // The fault's schedule: the burst starts this long before the window opens.
    tokio::time::sleep(wait.unsigned_abs()).await;
    Ok(())
}

/// `clock-skew` heals [`FaultSpec::lasting`] past the window's opening, by the true clock: its
/// api is restarted on the true clock (if it was struck at all).
async fn clock_skew_heals(scene: &Scene<'_>, spec: &FaultSpec) -> anyhow::Result<()> {
    if !struck(scene, spec) {
        return Ok(());
    }
    let opening = scene
        .opening
        .context("clock-skew struck without a window")?;
    let heal_in = (opening.at + lasting(spec)) - time::OffsetDateTime::now_utc();
    if heal_in.is_positive() {
        // The fault's length: the api keeps its clock until then.
        tokio::time::sleep(heal_in.unsigned_abs()).await;
    }
    let target = on_the_true_clock(scene).await?;
    scene.line(
        spec,
        FaultPhase::Heal,
        &target,
        "restarted on the true clock",
    );
    Ok(())
}

/// Whether `spec` left its injection in the history.
fn struck(scene: &Scene<'_>, spec: &FaultSpec) -> bool {
    super::not_struck(std::slice::from_ref(spec), &scene.history.faults()).is_empty()
}

/// Restarts `clock-skew`'s api (the last) on the true clock; returns what it is now.
async fn on_the_true_clock(scene: &Scene<'_>) -> anyhow::Result<String> {
    let last = scene.pipeline.api_urls().len().saturating_sub(1);
    scene
        .pipeline
        .restart_api_with_clock(last, time::Duration::ZERO)
        .await
}

/// The campaign's id gets an earlier incarnation before the burst: the first quarter of the
/// burst's users win a coupon of it, its rows are written, and an operator deletes the campaign
/// and its rows by hand, leaving its gate in Redis and its events on the topic; one more winner's
/// event (the next burst user's, the slot after theirs, the gate's epoch) is still on its way
/// and is kept as a failed event, since its campaign is gone. It heals when the campaign is
/// created again under the same id, which the burst then aims at: its first gate must be built
/// from what the id left, not taken over from Redis, and the late winner's coupon counts against
/// the limit.
async fn stale_state(scene: &Scene<'_>, spec: &FaultSpec) -> anyhow::Result<()> {
    let id = scene.campaign_id;
    let earlier = usize::try_from(scene.limit / 4).unwrap_or(1).max(1);
    let winners: Vec<u64> = (0..earlier).map(|i| scene.users.user_id(i)).collect();
    for user in &winners {
        let reply = scene.api.apply(id, *user).await?;
        anyhow::ensure!(
            reply.result == ResultClass::Issued,
            "user {user} of the earlier incarnation was not issued a coupon: {reply:?}"
        );
    }
    let drain = scene.api.wait_drained(id, EFFECT_TIMEOUT).await?;
    anyhow::ensure!(
        drain.is_some(),
        "the earlier incarnation's {earlier} coupons were not written within {EFFECT_TIMEOUT:?}"
    );
    // Over, as far as the consumer group is concerned: a first gate built while its events are
    // still past the group's committed offsets would count them as on their way, and hold
    // their slots for coupons already written (and deleted) until the reconciler frees them.
    committed_past_now(scene).await?;
    let gate = coupon_api::gate::Gate::connect(
        &scene.stack.redis_url,
        &scene.stack.redis_key_prefix,
        Duration::from_secs(5),
        coupon_api::configuration::GateMode::Atomic,
    )
    .await?;
    let epoch = gate
        .epoch(id)
        .await?
        .with_context(|| format!("campaign {id} has no gate after {earlier} coupons"))?;
    let store = coupon_store::Store::open(&scene.stack.database_url, 1)
        .await
        .context("stale-state cannot reach mysql")?;
    coupon_store::admin::delete_campaign_by_hand(&store, id).await?;

    let late = scene.users.user_id(earlier);
    let in_flight = CouponIssued {
        campaign_id: id.clone(),
        user_id: UserId::parse(late)?,
        seq: Seq(u32::try_from(earlier + 1)?),
        issued_at_ms: 0,
        epoch: epoch.0,
    };
    let brokers = &scene.stack.kafka_brokers;
    let producer: FutureProducer = coupon_kafka::producer_config(brokers, Duration::from_secs(10))
        .create()
        .with_context(|| format!("stale-state cannot produce to kafka at {brokers}"))?;
    producer
        .send(
            FutureRecord::to(&scene.stack.topic)
                .key(&in_flight.key())
                .payload(&in_flight.to_json()),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(error, _)| error)
        .with_context(|| format!("kafka at {brokers} refused the late winner's event"))?;
    let kept = poll_until(
        "the consumer to keep the late winner's event as a failed event",
        EFFECT_TIMEOUT,
        Duration::from_millis(100),
        || async {
            let failed = coupon_store::failed_events::list_for(&store, id.as_str()).await?;
            anyhow::Ok(
                failed
                    .iter()
                    .any(|f| f.user_id == Some(late) && f.open)
                    .then_some(()),
            )
        },
    )
    .await
    .map_err(|e| e.into_anyhow());
    if let Err(error) = kept {
        store.disconnect().await;
        return Err(error);
    }
    committed_past_now(scene).await?;
    let target = format!("campaign {id}");
    scene.line(
        spec,
        FaultPhase::Inject,
        &target,
        &format!(
            "an earlier incarnation: {earlier} winners (the burst's first users), deleted by hand \
             with their rows; its gate (epoch {}) left in Redis, its events on the topic, user \
             {late}'s event (slot {}) kept as a failed event",
            epoch.0,
            earlier + 1
        ),
    );
    let strategy = scene.strategy;
    let limit = coupon_domain::CouponLimit::parse(u64::from(scene.limit))?;
    scene.api.create_campaign(id, limit, strategy, None).await?;
    // Its campaign exists again: the consumer's retry worker writes the late winner's coupon
    // (within its backoff), as part of the new campaign's limit.
    let written = poll_until(
        "the retry worker to write the late winner's coupon",
        EFFECT_TIMEOUT,
        Duration::from_millis(100),
        || async {
            let rows = coupon_store::coupons::list(&store, id).await?;
            anyhow::Ok(rows.iter().any(|r| r.user_id == late).then_some(()))
        },
    )
    .await
    .map_err(|e| e.into_anyhow());
    store.disconnect().await;
    written?;
    scene.line(
        spec,
        FaultPhase::Heal,
        &target,
        &format!(
            "created again under the same id, its first gate built from what the id left; user \
             {late}'s coupon written by the retry worker"
        ),
    );
    Ok(())
}

/// Waits until the consumer group has committed past everything on the topic now.
async fn committed_past_now(scene: &Scene<'_>) -> anyhow::Result<()> {
    let (brokers, topic, group) = (
        &scene.stack.kafka_brokers,
        &scene.stack.topic,
        &scene.stack.group,
    );
    let now = coupon_kafka::offsets::read(brokers, topic, group).await?;
    poll_until(
        "the consumer group to commit past the earlier incarnation's events",
        EFFECT_TIMEOUT,
        Duration::from_millis(200),
        || async {
            let offsets = coupon_kafka::offsets::read(brokers, topic, group).await?;
            let past = now.iter().all(|then| {
                offsets.iter().any(|o| {
                    o.partition == then.partition && o.committed.unwrap_or(o.low) >= then.high
                })
            });
            anyhow::Ok(past.then_some(()))
        },
    )
    .await
    .map_err(|e| e.into_anyhow())
}

/// The run's own MariaDB server.
fn own_mysql<'a>(scene: &Scene<'a>) -> anyhow::Result<&'a tokio::sync::Mutex<PrivateMysql>> {
    sandbox(scene)?
        .mysql()
        .context("this fault acts on a MariaDB server of the run's own, and the run has none")
}

/// SIGKILL the database server, down for the fault's length, then a restart on the same data:
/// InnoDB recovers every committed row (a write in flight at the kill is the consumer's to
/// retry); the api's campaign reads and the consumer's writes meet a server that is gone.
async fn db_restart(scene: &Scene<'_>, spec: &FaultSpec) -> anyhow::Result<()> {
    let mut mysql = own_mysql(scene)?.lock().await;
    let healed = "restarted on the same data (InnoDB crash recovery), answering";
    crash(scene, spec, &mut *mysql, healed).await
}

/// `read_only` on for the fault's length: every write of the project's account is refused
/// with error 1290, as on a replica while a failover is under way.
async fn db_readonly(scene: &Scene<'_>, spec: &FaultSpec) -> anyhow::Result<()> {
    let mysql = own_mysql(scene)?.lock().await;
    let target = mysql.to_string();
    mysql.set_read_only(true).await?;
    scene.line(
        spec,
        FaultPhase::Inject,
        &target,
        "SET GLOBAL read_only = ON: every write refused (1290)",
    );
    // The fault's length: the server refuses writes this long.
    tokio::time::sleep(lasting(spec)).await;
    // A server left read-only would hold every coupon back: tried again until it takes.
    poll_until(
        "the private mariadb to take writes again",
        EFFECT_TIMEOUT,
        Duration::from_millis(500),
        || async { anyhow::Ok(mysql.set_read_only(false).await.ok()) },
    )
    .await
    .map_err(|e| e.into_anyhow())?;
    scene.line(
        spec,
        FaultPhase::Heal,
        &target,
        "SET GLOBAL read_only = OFF",
    );
    Ok(())
}

/// Three records no event can be, keyed by the campaign (so they land in its partition, among
/// its coupons): malformed JSON, 70 KB, and JSON of a foreign shape. The fault has struck
/// when they are on the topic, and healed when the consumer captured each as a failed event.
async fn poison(scene: &Scene<'_>, spec: &FaultSpec) -> anyhow::Result<()> {
    let brokers = &scene.stack.kafka_brokers;
    let topic = &scene.stack.topic;
    let producer: FutureProducer = coupon_kafka::producer_config(brokers, Duration::from_secs(10))
        .set("message.max.bytes", "1000000")
        .create()
        .with_context(|| format!("poison cannot produce to kafka at {brokers}"))?;
    let key = scene.campaign_id.as_str();
    let oversized: Vec<u8> = (0..POISON_BYTES).map(|i| b'a' + (i % 26) as u8).collect();
    let foreign = format!(r#"{{"campaign_id":"{key}","user":"nobody","from":"another producer"}}"#);
    let records: [(&str, &[u8]); 3] = [
        ("malformed", b"{not an event"),
        ("oversized", &oversized),
        ("foreign", foreign.as_bytes()),
    ];
    let mut placed = Vec::new();
    for (what, payload) in records {
        let delivered = producer
            .send(
                FutureRecord::to(topic).key(key).payload(payload),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(error, _)| error)
            .with_context(|| format!("kafka at {brokers} refused the {what} record"))?;
        placed.push((what, delivered.partition, delivered.offset));
    }
    let listed: Vec<String> = placed
        .iter()
        .map(|(what, p, o)| format!("{what} at p{p}@{o}"))
        .collect();
    let target = format!("topic {topic}, key {key}");
    scene.line(
        spec,
        FaultPhase::Inject,
        &target,
        &format!("produced {}", listed.join(", ")),
    );
    let store = coupon_store::Store::open(&scene.stack.database_url, 1)
        .await
        .context("poison cannot reach mysql to see the records captured")?;
    let captured = poll_until(
        "the consumer to capture every poison record as a failed event",
        EFFECT_TIMEOUT,
        Duration::from_millis(100),
        || async {
            let mut reasons = Vec::new();
            for (_, partition, offset) in &placed {
                match coupon_store::failed_events::at(&store, *partition, *offset).await? {
                    Some(failed) => reasons.push(failed.reason.as_str()),
                    None => return Ok::<_, anyhow::Error>(None),
                }
            }
            Ok(Some(reasons))
        },
    )
    .await
    .map_err(|e| e.into_anyhow());
    store.disconnect().await;
    let reasons = captured?;
    scene.line(
        spec,
        FaultPhase::Heal,
        &target,
        &format!("captured as failed events ({})", reasons.join(", ")),
    );
    Ok(())
}

/// Extra consumers join the group and leave it again, one after another, for the fault's
/// length: every join and every leave makes the group rebalance.
async fn rebalance_storm(scene: &Scene<'_>, spec: &FaultSpec) -> anyhow::Result<()> {
    let target = format!("consumer group {}", scene.stack.group);
    scene.line(
        spec,
        FaultPhase::Inject,
        &target,
        &format!(
            "consumers join and leave, each staying {} ms",
            STORM_STAY.as_millis()
        ),
    );
    let until = Instant::now() + spec.lasting.unwrap_or_default();
    let mut joined = 0;
    while Instant::now() < until {
        let extra = scene.pipeline.spawn_extra_consumer()?;
        joined += 1;
        // How long it stays in the group: the storm's rhythm, not a wait for anything.
        tokio::time::sleep(STORM_STAY).await;
        pipeline::stop_child(extra).await?;
    }
    scene.line(
        spec,
        FaultPhase::Heal,
        &target,
        &format!("over: {joined} consumers joined and left"),
    );
    Ok(())
}

fn sandbox<'a>(scene: &Scene<'a>) -> anyhow::Result<&'a Sandbox> {
    scene
        .sandbox
        .context("this fault acts on stores of the run's own, and the run has none")
}

/// The fault's `:for` (each store fault has a default one).
fn lasting(spec: &FaultSpec) -> Duration {
    spec.lasting.unwrap_or_default()
}

/// SIGKILL, down for the fault's length, then a restart from the append-only file (fsynced on
/// every write): nothing acknowledged is lost, but the server is a new one (a new `run_id`),
/// so every gate is checked and rebuilt before it admits again.
async fn redis_kill(scene: &Scene<'_>, spec: &FaultSpec) -> anyhow::Result<()> {
    let mut redis = sandbox(scene)?.redis.lock().await;
    crash(
        scene,
        spec,
        &mut *redis,
        "restarted from its append-only file",
    )
    .await
}

/// SIGSTOP Redis for the fault's length, past the api's response timeout: the gate scripts sent
/// meanwhile wait in Redis's socket; those whose callers gave up (504 `unknown`) run once it
/// resumes all the same, and the api resolves each from the gate.
async fn redis_pause(scene: &Scene<'_>, spec: &FaultSpec) -> anyhow::Result<()> {
    let redis = sandbox(scene)?.redis.lock().await;
    stall(scene, spec, &redis.to_string(), &redis.process).await
}

/// FLUSHALL: every gate, marker and lease gone at once; the next admission finds no marker and
/// rebuilds the gate from MySQL and Kafka.
async fn redis_flush(scene: &Scene<'_>, spec: &FaultSpec) -> anyhow::Result<()> {
    let redis = sandbox(scene)?.redis.lock().await;
    let target = format!("redis {}", redis.url);
    redis.flush_all().await?;
    scene.line(spec, FaultPhase::Inject, &target, "FLUSHALL");
    scene.line(
        spec,
        FaultPhase::Heal,
        &target,
        "over at once: what the flush took is for the gate's rebuild to restore",
    );
    Ok(())
}

/// A snapshot (`SAVE`), admissions going on for the fault's length, then SIGKILL and a
/// restart that loads the snapshot: the server comes back with the marker but without the last
/// admissions (partial loss), as after a restart from an old RDB file or a lagging replica.
async fn redis_rollback(scene: &Scene<'_>, spec: &FaultSpec) -> anyhow::Result<()> {
    let mut redis = sandbox(scene)?.redis.lock().await;
    let target = format!("redis {}", redis.url);
    redis.save().await?;
    scene.line(
        spec,
        FaultPhase::Inject,
        &target,
        "SAVE: the snapshot the restart will go back to",
    );
    // The fault's length: admissions this long after the snapshot are the ones lost.
    tokio::time::sleep(lasting(spec)).await;
    redis.kill_and_restart().await?;
    scene.line(
        spec,
        FaultPhase::Heal,
        &target,
        "SIGKILL and restart from the snapshot: the admissions since are gone",
    );
    Ok(())
}

/// SIGKILL the broker, down for the fault's length, then a restart on the same data.
async fn kafka_kill(scene: &Scene<'_>, spec: &FaultSpec) -> anyhow::Result<()> {
    let mut kafka = sandbox(scene)?.kafka.lock().await;
    crash(
        scene,
        spec,
        &mut *kafka,
        "restarted on the same data, answering",
    )
    .await
}

/// SIGSTOP the broker for the fault's length: connections stay open and nothing answers.
async fn kafka_pause(scene: &Scene<'_>, spec: &FaultSpec) -> anyhow::Result<()> {
    let kafka = sandbox(scene)?.kafka.lock().await;
    stall(scene, spec, &kafka.to_string(), &kafka.process).await
}

/// SIGKILL a store's process, down for the fault's length, then a restart on the same port and
/// data; `healed` says what the restart brings back.
async fn crash(
    scene: &Scene<'_>,
    spec: &FaultSpec,
    store: &mut impl Restartable,
    healed: &str,
) -> anyhow::Result<()> {
    let target = store.to_string();
    store.server().kill()?;
    scene.line(spec, FaultPhase::Inject, &target, "SIGKILL");
    // The fault's length: the store stays down this long.
    tokio::time::sleep(lasting(spec)).await;
    store.start_again().await?;
    scene.line(spec, FaultPhase::Heal, &store.to_string(), healed);
    Ok(())
}

/// SIGSTOP a store's process, named `target`, for the fault's length, then SIGCONT.
async fn stall(
    scene: &Scene<'_>,
    spec: &FaultSpec,
    target: &str,
    process: &Server,
) -> anyhow::Result<()> {
    process.pause()?;
    scene.line(spec, FaultPhase::Inject, target, "SIGSTOP");
    // The fault's length: the process stays stopped this long.
    tokio::time::sleep(lasting(spec)).await;
    process.resume()?;
    scene.line(spec, FaultPhase::Heal, target, "SIGCONT");
    Ok(())
}

/// What the proxy between the api and the run's broker does, for the fault's length: the
/// consumer, the verifier and the faults' own clients reach the broker directly, untouched.
async fn api_kafka(
    scene: &Scene<'_>,
    spec: &FaultSpec,
    mode: Mode,
    what: &str,
) -> anyhow::Result<()> {
    let kafka = sandbox(scene)?.kafka.lock().await;
    let proxy = kafka
        .proxy()
        .context("the run's broker has no proxy in front of the api's listener")?;
    let target = format!("api → proxy {} → {kafka}", proxy.addr);
    proxy.set(mode);
    scene.line(spec, FaultPhase::Inject, &target, what);
    // The fault's length: the proxy does this for so long.
    tokio::time::sleep(lasting(spec)).await;
    proxy.restore();
    scene.line(spec, FaultPhase::Heal, &target, "forwarding again");
    Ok(())
}
