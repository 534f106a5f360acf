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
        records: records
            .into_iter()
            .filter(|r| r.campaign_id == campaign_id)
            .collect(),
        campaign_id,
    })
}
