//! The api a run aims at: one already answering at --host, or the [`Pipeline`] loadgen starts
//! on that loopback address.

use std::{net::SocketAddr, path::Path};

use anyhow::bail;
use coupon_runtime::stack::StackArgs;

use crate::{client::ApiClient, pipeline::Pipeline, scrape::Endpoint};

#[derive(Debug)]
pub struct Target {
    pub api: ApiClient,
    /// The api and consumer loadgen started, if it started them.
    pub pipeline: Option<Pipeline>,
}

/// Finds the api at `base_url`, or starts the pipeline on that loopback address, logging to
/// `log_path`.
pub async fn find_or_start(
    stack: &StackArgs,
    base_url: &str,
    admin_token: Option<String>,
    log_path: &Path,
) -> anyhow::Result<Target> {
    let api = ApiClient::new(base_url, admin_token.clone())?;
    if api.answers().await {
        return Ok(Target {
            api,
            pipeline: None,
        });
    }
    let Some(addr) = loopback_addr(&api.base_url) else {
        bail!(
            "no api answers at {}, and loadgen only starts one itself on a loopback address like http://127.0.0.1:8080",
            api.base_url
        );
    };
    eprintln!(
        "no api at {}: starting the api and the consumer (log: {})",
        api.base_url,
        log_path.display()
    );
    let token = admin_token.unwrap_or_else(|| format!("loadgen-{:016x}", rand::random::<u64>()));
    let api = ApiClient::new(base_url, Some(token))?;
    let pipeline = Pipeline::start(stack, addr, &api, log_path).await?;
    Ok(Target {
        api,
        pipeline: Some(pipeline),
    })
}

impl Target {
    /// The `/metrics` of the api, and of the consumer: the one loadgen started, or the one at
    /// `consumer_metrics`.
    pub fn metrics_endpoints(&self, consumer_metrics: &str) -> Vec<Endpoint> {
        vec![
            Endpoint {
                part: "api",
                url: format!("{}/metrics", self.api.base_url),
            },
            Endpoint {
                part: "consumer",
                url: self.pipeline.as_ref().map_or_else(
                    || consumer_metrics.to_owned(),
                    Pipeline::consumer_metrics_url,
                ),
            },
        ]
    }
}

fn loopback_addr(base_url: &str) -> Option<SocketAddr> {
    let authority = base_url.strip_prefix("http://")?.split('/').next()?;
    let addr: SocketAddr = authority.replace("localhost", "127.0.0.1").parse().ok()?;
    addr.ip().is_loopback().then_some(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loadgen_starts_a_pipeline_only_on_a_loopback_address() {
        assert_eq!(
            loopback_addr("http://localhost:8080/"),
            "127.0.0.1:8080".parse().ok()
        );
        assert!(loopback_addr("http://10.0.0.7:8080").is_none());
        assert!(loopback_addr("https://127.0.0.1:8080").is_none());
        assert!(loopback_addr("http://127.0.0.1").is_none());
    }
}
