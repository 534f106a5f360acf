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

/// Reads the run in `dir` (`reports/latest` resolves to the run it points at).
pub fn read(dir: &Path) -> anyhow::Result<RunHistory> {
    let dir = dir.canonicalize().with_context(|| {
        format!(
            "no loadgen run at {} (run loadgen first, or pass --campaign)",
            dir.display()
        )
    })?;
    let summary_path = dir.join("summary.json");
    let summary: RunSummary = serde_json::from_str(
        &std::fs::read_to_string(&summary_path)
            .with_context(|| format!("cannot read {}", summary_path.display()))?,
    )
    .with_context(|| format!("{} is not a loadgen run summary", summary_path.display()))?;
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
