//! The loadgen run: `summary.json` (a [`RunSummary`]: which campaign, whether the run created
//! it) and `history.jsonl` (every request).

use std::path::{Path, PathBuf};

use anyhow::Context;
use coupon_domain::{history::HistoryRecord, wire::RunSummary};

#[derive(Debug, Clone)]
pub struct RunHistory {
    pub run_id: String,
    pub dir: PathBuf,
    pub campaign_id: String,
    pub campaign_created: bool,
    pub records: Vec<HistoryRecord>,
    /// The stores of the run's own it ran on, if it had a sandbox.
    pub private_stores: Option<coupon_domain::wire::PrivateStores>,
}

/// loadgen writes `summary.json` last (a comparison, `compare.json`): a run without it was
/// stopped or failed before it finished, and is refused rather than judged.
fn ensure_complete(run_dir: &Path) -> anyhow::Result<()> {
    if run_dir.join("summary.json").is_file() {
        return Ok(());
    }
    if run_dir.join("compare.json").is_file() {
        anyhow::bail!(
            "{} is a comparison of several runs: verify one of them with --run <comparison>/<strategy>",
            run_dir.display()
        );
    }
    if run_dir.join("matrix.json").is_file() {
        anyhow::bail!(
            "{} is a fault matrix, each round verified by loadgen (matrix.md): verify a round again with --run <matrix>/<fault>",
            run_dir.display()
        );
    }
    anyhow::bail!(
        "the run in {} did not complete (loadgen was stopped or failed before it wrote \
         summary.json): run loadgen again, or name a finished run with --run",
        run_dir.display()
    )
}

/// The run's `summary.json`, as the verifier and the gate read it (loadgen's statistics beside
/// it are ignored).
pub fn read_summary(run_dir: &Path) -> anyhow::Result<RunSummary> {
    let path = run_dir.join("summary.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a loadgen run summary", path.display()))
}

/// Reads the run in `dir` (`reports/latest` resolves to the run it points at).
pub fn read(dir: &Path) -> anyhow::Result<RunHistory> {
    let dir = dir.canonicalize().with_context(|| {
        format!(
            "no loadgen run at {} (run loadgen first, or pass --campaign)",
            dir.display()
        )
    })?;
    ensure_complete(&dir)?;
    let summary = read_summary(&dir)?;
    let campaign_id = summary.campaign_id.to_string();
    let history_path = dir.join("history.jsonl");
    let text = std::fs::read_to_string(&history_path)
        .with_context(|| format!("cannot read {}", history_path.display()))?;
    let records = coupon_domain::history::parse_jsonl(&text)
        .with_context(|| format!("in {}", history_path.display()))?;
    Ok(RunHistory {
        run_id: summary.run_id,
        dir,
        campaign_created: summary.campaign_created,
        private_stores: summary.private_stores,
        records: records
            .requests
            .into_iter()
            .filter(|r| r.campaign_id == campaign_id)
            .collect(),
        campaign_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_run_that_wrote_its_summary_is_judged() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("verifier-history-{}", rand_suffix()));
        std::fs::create_dir_all(&dir)?;
        let refusal = || {
            ensure_complete(&dir)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(refusal().contains("did not complete"), "{}", refusal());
        std::fs::write(dir.join("matrix.json"), "[]")?;
        assert!(refusal().contains("is a fault matrix"), "{}", refusal());
        std::fs::write(dir.join("compare.json"), "[]")?;
        assert!(
            refusal().contains("--run <comparison>/<strategy>"),
            "{}",
            refusal()
        );
        std::fs::write(dir.join("summary.json"), "{}")?;
        assert!(ensure_complete(&dir).is_ok());
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    fn rand_suffix() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::from(d.subsec_nanos()))
            ^ u64::from(std::process::id())
    }
}
