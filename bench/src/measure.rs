//! One bench run: every measurement, in an order that keeps them apart (the cold burst before
//! anything else runs; the warm bursts next, before wrk's runs leave ~100k coupons behind; the
//! consumer's rate with the consumer alone writing), each a figure of [`Figures`].

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use coupon_runtime::{backoff::poll_until, stack::StackArgs};
use serde::Serialize;

use crate::{
    procs::Service,
    tools::{self, LoadgenRun},
};

/// The ports the bench's own processes use, apart from a developer's api on 8080.
const API: &str = "127.0.0.1:18080";
const CONSUMER_METRICS: &str = "127.0.0.1:18101";
const REFERENCE: &str = "127.0.0.1:18090";
/// Where loadgen finds no api, and starts the pipeline itself, as `scripts/demo` does.
const COLD: &str = "127.0.0.1:18070";
const TOKEN: &str = "bench-token";

/// How a run measures.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The release binaries (`target/release`).
    pub binaries: PathBuf,
    /// Where logs and loadgen's runs go.
    pub out: PathBuf,
    pub connections: u32,
    pub seconds: u32,
    pub burst_users: u32,
    /// Coupons of the campaign the consumer's rate is measured on.
    pub consumer_coupons: u32,
    pub stack: StackArgs,
}

/// Every figure of one run (rates in requests or rows per second, latencies in ms).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Figures {
    /// redis-benchmark running admit.lua alone, every call a new winner.
    pub gate_script_winners_rate: f64,
    /// redis-benchmark running admit.lua alone on a sold-out campaign.
    pub gate_script_sold_out_rate: f64,
    pub reference_sold_out_rate: f64,
    pub api_sold_out_rate: f64,
    pub api_every_win_rate: f64,
    pub api_every_win_p99_ms: f64,
    pub wrk_rate: f64,
    pub loadgen_rate: f64,
    pub reference_burst_p99_ms: f64,
    pub api_burst_p99_ms: f64,
    pub api_burst_winners_p99_ms: f64,
    pub api_burst_rate: f64,
    pub cold_burst_p99_ms: f64,
    pub cold_burst_winners_p99_ms: f64,
    /// Rows per second from the consumer's start to the campaign's last row.
    pub consumer_rate_with_start: f64,
    /// Rows per second from its first row to its last.
    pub consumer_rate: f64,
    /// MySQL reads the api made during a flood of applies to an unknown campaign id.
    pub unknown_campaign_reads: u64,
    pub unknown_campaign_flood_seconds: u32,
    pub unknown_campaign_applies: f64,
}

/// The bench's api, consumer and reference, while they run.
struct Services {
    api: Service,
    consumer: Option<Service>,
    reference: Service,
}

/// One whole run; `step` reports progress.
pub async fn run(plan: &Plan, run: usize, step: &dyn Fn(&str)) -> anyhow::Result<Figures> {
    let mut figures = Figures::default();
    let logs = plan.out.join(format!("run-{run}"));
    std::fs::create_dir_all(&logs)
        .with_context(|| format!("failed to create {}", logs.display()))?;

    step(
        "the 10,000-user burst started cold, as scripts/demo runs it (loadgen starts the pipeline)",
    );
    let cold = cold_burst(plan, &logs).await?;
    figures.cold_burst_p99_ms = cold.p99_ms;
    // No winners is no figure (NaN meets no goal), never 0 ms.
    figures.cold_burst_winners_p99_ms = cold.winners_p99_ms.unwrap_or(f64::NAN);

    step("the gate script alone (redis-benchmark)");
    gate_script(plan, &mut figures).await?;

    step("starting the release api, consumer and bare reference apply");
    let mut services = start(plan, &logs).await?;
    let measured = measure_running(plan, &logs, &mut services, &mut figures, step).await;
    let stopped = stop(services).await;
    measured?;
    stopped?;
    Ok(figures)
}

async fn measure_running(
    plan: &Plan,
    logs: &Path,
    services: &mut Services,
    figures: &mut Figures,
    step: &dyn Fn(&str),
) -> anyhow::Result<()> {
    let api = format!("http://{API}");
    let reference = format!("http://{REFERENCE}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let (c, s) = (plan.connections, plan.seconds);

    // First, before the heavy steps leave the processes (and the allocator) in another state.
    step("the 10,000-user burst: the bare reference, then the api (same loadgen)");
    let users = plan.burst_users.to_string();
    let on_reference = loadgen(plan, logs, &["--users", &users, "--host", &reference]).await?;
    figures.reference_burst_p99_ms = on_reference.p99_ms;
    let on_api = loadgen(
        plan,
        logs,
        &[
            "--users",
            &users,
            "--host",
            &api,
            "--consumer-metrics",
            &format!("http://{CONSUMER_METRICS}/metrics"),
        ],
    )
    .await?;
    figures.api_burst_p99_ms = on_api.p99_ms;
    figures.api_burst_winners_p99_ms = on_api.winners_p99_ms.unwrap_or(f64::NAN);
    figures.api_burst_rate = on_api.rate;

    step("sold-out apply: the bare reference, then the api (wrk)");
    let sold_out = create(&http, &reference, "sold-out", 100).await?;
    figures.reference_sold_out_rate = tools::wrk(&reference, &sold_out, c, s).await?.rate;
    let sold_out = create(&http, &api, "sold-out", 100).await?;
    figures.api_sold_out_rate = tools::wrk(&api, &sold_out, c, s).await?.rate;

    step("every apply a winner: the api, waiting for each Kafka ack (wrk)");
    let every = create(&http, &api, "every-win", 10_000_000).await?;
    let wins = tools::wrk(&api, &every, c, s).await?;
    figures.api_every_win_rate = wins.rate;
    figures.api_every_win_p99_ms = wins.p99_ms;

    step("loadgen against wrk, on the sold-out endpoint (256 connections / users)");
    figures.wrk_rate = tools::wrk(&api, &sold_out, 256, s).await?.rate;
    let repeat = (figures.wrk_rate * f64::from(s) / 256.0).clamp(20.0, 400.0) as u32;
    let lg = loadgen(
        plan,
        logs,
        &[
            "--users",
            "256",
            "--repeat",
            &repeat.to_string(),
            "--campaign",
            &sold_out,
            "--host",
            &api,
        ],
    )
    .await?;
    figures.loadgen_rate = lg.rate;

    step("an unknown campaign id, flooded (wrk): the api's MySQL reads");
    let before = metrics_sum(&http, &api, &["coupon_api_campaign_reads_total"]).await?;
    let flood = tools::wrk(&api, "no-such-campaign", c, 3).await?;
    figures.unknown_campaign_reads =
        (metrics_sum(&http, &api, &["coupon_api_campaign_reads_total"]).await? - before) as u64;
    figures.unknown_campaign_flood_seconds = 3;
    figures.unknown_campaign_applies = flood.rate * 3.0;

    step("the consumer: a campaign's events queued with the consumer stopped, then written");
    let (with_start, steady) = consumer_rate(plan, logs, services, &http, &[&every]).await?;
    figures.consumer_rate_with_start = with_start;
    figures.consumer_rate = steady;
    Ok(())
}

async fn start(plan: &Plan, logs: &Path) -> anyhow::Result<Services> {
    let mut api = Service::start(
        "api",
        &plan.binaries.join("coupon-api"),
        &[
            ("API_ADDR", API.to_owned()),
            ("ADMIN_TOKEN", TOKEN.to_owned()),
        ],
        logs,
    )?;
    let consumer = consumer(plan, logs, "consumer")?;
    let mut reference = Service::start(
        "reference",
        &plan.binaries.join("reference-apply"),
        &[("REFERENCE_ADDR", REFERENCE.to_owned())],
        logs,
    )?;
    api.ready(&format!("http://{API}/readyz"), Duration::from_secs(90))
        .await?;
    reference
        .ready(
            &format!("http://{REFERENCE}/healthz"),
            Duration::from_secs(30),
        )
        .await?;
    Ok(Services {
        api,
        consumer: Some(consumer),
        reference,
    })
}

fn consumer(plan: &Plan, logs: &Path, name: &'static str) -> anyhow::Result<Service> {
    Service::start(
        name,
        &plan.binaries.join("coupon-consumer"),
        &[("CONSUMER_METRICS_ADDR", CONSUMER_METRICS.to_owned())],
        logs,
    )
}

async fn stop(services: Services) -> anyhow::Result<()> {
    let mut failures = Vec::new();
    for service in [
        Some(services.api),
        services.consumer,
        Some(services.reference),
    ]
    .into_iter()
    .flatten()
    {
        if let Err(error) = service.stop().await {
            failures.push(format!("{error:#}"));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        bail!(failures.join("; "))
    }
}

/// A fresh campaign named after `what` and the time.
async fn create(
    http: &reqwest::Client,
    base: &str,
    what: &str,
    limit: u64,
) -> anyhow::Result<String> {
    let id = format!("bench-{what}-{}", unique());
    let response = http
        .post(format!("{base}/admin/campaigns"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "id": id, "limit": limit }))
        .send()
        .await
        .with_context(|| format!("{base} did not answer (creating campaign {id})"))?;
    if !response.status().is_success() {
        bail!(
            "{base} refused to create campaign {id}: {}",
            response.text().await.unwrap_or_default()
        );
    }
    Ok(id)
}

fn unique() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!("{}{:09}", now.unix_timestamp(), now.nanosecond())
}

async fn loadgen(plan: &Plan, logs: &Path, args: &[&str]) -> anyhow::Result<LoadgenRun> {
    let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    // No /metrics reads: wrk and the reference make none either.
    args.extend(["--scrape-every".to_owned(), "0s".to_owned()]);
    tools::loadgen(
        &plan.binaries.join("loadgen"),
        &args,
        &logs.join("loadgen"),
        &[("ADMIN_TOKEN", TOKEN)],
        Duration::from_secs(300),
    )
    .await
}

/// loadgen with no api at its host starts the api and consumer, then fires the burst: the demo.
async fn cold_burst(plan: &Plan, logs: &Path) -> anyhow::Result<LoadgenRun> {
    let users = plan.burst_users.to_string();
    loadgen(
        plan,
        logs,
        &["--users", &users, "--host", &format!("http://{COLD}")],
    )
    .await
}

async fn gate_script(plan: &Plan, figures: &mut Figures) -> anyhow::Result<()> {
    let url = &plan.stack.redis_url;
    let (host, port) = redis_host_port(url)?;
    let client = redis::Client::open(url.as_str())?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .with_context(|| {
            format!(
                "redis at {} is unreachable",
                coupon_runtime::stack::redact(url)
            )
        })?;
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(coupon_api::gate::ADMIT)
        .query_async(&mut conn)
        .await?;
    for (limit, sold_out) in [(1_000_000_000u64, false), (0, true)] {
        let id = coupon_domain::CampaignId::parse(&format!("bench-script-{}", unique()))?;
        let keys = coupon_domain::GateKeys::new("bench", &id);
        let _: i64 = redis::Script::new(coupon_api::gate::INITIALISE)
            .key(&keys.marker)
            .key(&keys.redis_run)
            .arg(1)
            .invoke_async(&mut conn)
            .await?;
        let mut command: Vec<String> = vec!["EVALSHA".into(), sha.clone(), "5".into()];
        command.extend(keys.admit_keys().map(str::to_owned));
        // The api's arguments: the user, the limit, no window, the restart check on.
        command.extend([
            "__rand_int__".into(),
            limit.to_string(),
            String::new(),
            String::new(),
            "1".into(),
        ]);
        let measured =
            tools::redis_benchmark(&host, port, plan.connections, 300_000, &command).await?;
        let _: () = redis::cmd("DEL")
            .arg(&keys.admit_keys()[..])
            .query_async(&mut conn)
            .await?;
        if sold_out {
            figures.gate_script_sold_out_rate = measured.rate;
        } else {
            figures.gate_script_winners_rate = measured.rate;
        }
    }
    Ok(())
}

fn redis_host_port(url: &str) -> anyhow::Result<(String, u16)> {
    let info = redis::Client::open(url)?
        .get_connection_info()
        .addr()
        .clone();
    match info {
        redis::ConnectionAddr::Tcp(host, port) => Ok((host, port)),
        other => bail!("redis-benchmark needs a TCP address, got {other}"),
    }
}

/// The sum of the named metrics in the service's `/metrics`, every label of each.
async fn metrics_sum(http: &reqwest::Client, base: &str, names: &[&str]) -> anyhow::Result<f64> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .with_context(|| format!("{base}/metrics did not answer"))?
        .text()
        .await?;
    let values: Vec<f64> = text
        .lines()
        .filter(|line| {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            names.contains(&name)
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
        .collect();
    anyhow::ensure!(!values.is_empty(), "{base}/metrics has none of {names:?}");
    Ok(values.into_iter().sum())
}

/// Stops the consumer, fills a campaign of `plan.consumer_coupons` through the api, then starts
/// a consumer alone and times it to the campaign's last row.
async fn consumer_rate(
    plan: &Plan,
    logs: &Path,
    services: &mut Services,
    http: &reqwest::Client,
    drain_first: &[&str],
) -> anyhow::Result<(f64, f64)> {
    let api = format!("http://{API}");
    // What earlier steps issued is written first, so the new consumer writes this campaign alone.
    for campaign in drain_first {
        poll_until(
            &format!("campaign {campaign} to be written"),
            Duration::from_secs(300),
            Duration::from_millis(100),
            || async {
                let view = campaign_view(http, &api, campaign).await?;
                let written = view["persisted"].as_u64().unwrap_or_default()
                    + view["failed_events"].as_u64().unwrap_or_default();
                Ok::<_, anyhow::Error>(
                    (written >= view["issued"].as_u64().unwrap_or_default()).then_some(()),
                )
            },
        )
        .await
        .map_err(|e| e.into_anyhow())?;
    }
    if let Some(consumer) = services.consumer.take() {
        consumer.stop().await?;
    }
    let coupons = u64::from(plan.consumer_coupons);
    let campaign = create(http, &api, "consumer", coupons).await?;
    let issued = || async {
        let view = campaign_view(http, &api, &campaign).await?;
        anyhow::Ok(view["issued"].as_u64().unwrap_or_default())
    };
    for _ in 0..30 {
        if issued().await? >= coupons {
            break;
        }
        tools::wrk(&api, &campaign, plan.connections, 5).await?;
    }
    if issued().await? < coupons {
        bail!("the api issued fewer than {coupons} coupons of {campaign} in 150 s of wrk");
    }
    // What the new consumer has to write: every event past the group's committed offsets (a
    // few admissions may have no event: wrk hung up on them mid-call; the reconciler frees
    // their slots later).
    let queued: i64 = coupon_kafka::offsets::read(
        &plan.stack.kafka_brokers,
        &plan.stack.topic,
        &plan.stack.group,
    )
    .await
    .with_context(|| format!("kafka at {} is unreachable", plan.stack.kafka_brokers))?
    .iter()
    .map(coupon_kafka::offsets::PartitionOffsets::lag)
    .sum();
    let queued = queued.max(1) as f64;
    let started = Instant::now();
    let mut writer = consumer(plan, logs, "consumer-alone")?;
    let metrics = format!("http://{CONSUMER_METRICS}");
    writer
        .ready(&format!("{metrics}/metrics"), Duration::from_secs(60))
        .await?;
    // Each queued event ends as a row, or as a redelivery already on file, or a failed event.
    let rows = || {
        metrics_sum(
            http,
            &metrics,
            &[
                "coupon_consumer_rows_written_total",
                "coupon_consumer_already_written_total",
                "coupon_consumer_failed_events_total",
            ],
        )
    };
    let first_row = poll_until(
        "the consumer's first row",
        Duration::from_secs(120),
        Duration::from_millis(5),
        || async { Ok::<_, anyhow::Error>((rows().await? > 0.0).then(Instant::now)) },
    )
    .await
    .map_err(|e| e.into_anyhow())?;
    let done = poll_until(
        &format!("{queued} rows"),
        Duration::from_secs(300),
        Duration::from_millis(5),
        || async { Ok::<_, anyhow::Error>((rows().await? >= queued).then(Instant::now)) },
    )
    .await
    .map_err(|e| e.into_anyhow())?;
    services.consumer = Some(writer);
    let per_second = |since: Instant| queued / done.duration_since(since).as_secs_f64();
    Ok((per_second(started), per_second(first_row)))
}

async fn campaign_view(
    http: &reqwest::Client,
    base: &str,
    id: &str,
) -> anyhow::Result<serde_json::Value> {
    http.get(format!("{base}/campaigns/{id}"))
        .send()
        .await
        .with_context(|| format!("{base} did not answer (reading campaign {id})"))?
        .error_for_status()?
        .json()
        .await
        .with_context(|| format!("{base} answered campaign {id} with no JSON"))
}
