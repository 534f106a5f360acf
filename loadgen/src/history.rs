//! The per-request history: every request's record, kept in memory during the burst (a few
//! hundred bytes each) and written as JSON lines at the end, with the faults' lines between
//! them, plus live counters for progress.

use std::{
    io::Write,
    path::Path,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use anyhow::Context;
use coupon_domain::history::{FaultLine, HistoryRecord, ResultClass};

#[derive(Debug, Default)]
pub struct History {
    records: Mutex<Vec<HistoryRecord>>,
    faults: Mutex<Vec<FaultLine>>,
    by_class: [AtomicU64; ResultClass::ALL.len()],
    next_request_id: AtomicU64,
    started_users: AtomicU64,
}

fn slot(class: ResultClass) -> usize {
    ResultClass::ALL
        .iter()
        .position(|c| *c == class)
        .unwrap_or(0)
}

impl History {
    pub fn next_request_id(&self) -> u64 {
        self.next_request_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn user_started(&self) {
        self.started_users.fetch_add(1, Ordering::Relaxed);
    }

    pub fn started_users(&self) -> u64 {
        self.started_users.load(Ordering::Relaxed)
    }

    pub fn record(&self, record: HistoryRecord) {
        self.by_class[slot(record.result)].fetch_add(1, Ordering::Relaxed);
        if let Ok(mut records) = self.records.lock() {
            records.push(record);
        }
    }

    /// A fault's injection or healing, as it happens.
    pub fn fault(&self, line: FaultLine) {
        if let Ok(mut faults) = self.faults.lock() {
            faults.push(line);
        }
    }

    /// The faults' lines so far, in the order they happened.
    pub fn faults(&self) -> Vec<FaultLine> {
        self.faults.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// `issued` replies so far (what `--fault NAME@Nissued` waits for).
    pub fn issued(&self) -> u64 {
        self.by_class[slot(ResultClass::Issued)].load(Ordering::Relaxed)
    }

    /// Responses so far, by class (for the progress bar).
    pub fn counts(&self) -> Vec<(ResultClass, u64)> {
        ResultClass::ALL
            .iter()
            .map(|c| (*c, self.by_class[slot(*c)].load(Ordering::Relaxed)))
            .collect()
    }

    pub fn total(&self) -> u64 {
        self.by_class
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Takes the records, sorted by send time.
    pub fn take(&self) -> Vec<HistoryRecord> {
        let mut records = self
            .records
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default();
        records.sort_by_key(|r| (r.sent_at_us, r.request_id));
        records
    }
}

/// Writes one JSON line per record, and each fault line where it falls in time among them.
pub fn write_jsonl(
    path: &Path,
    records: &[HistoryRecord],
    faults: &[FaultLine],
) -> anyhow::Result<()> {
    let file = std::fs::File::create(path)
        .with_context(|| format!("failed to create {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let mut faults = faults.iter().peekable();
    for record in records {
        while let Some(fault) = faults.next_if(|f| f.at_us <= record.sent_at_us) {
            serde_json::to_writer(&mut out, fault)?;
            out.write_all(b"\n")?;
        }
        serde_json::to_writer(&mut out, record)?;
        out.write_all(b"\n")?;
    }
    for fault in faults {
        serde_json::to_writer(&mut out, fault)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// Reads a history file back (the verifier has its own reader; this one serves tests).
pub fn read_jsonl(path: &Path) -> anyhow::Result<coupon_domain::history::History> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read {}", path.display()))?;
    coupon_domain::history::parse_jsonl(&text).with_context(|| format!("in {}", path.display()))
}

#[cfg(test)]
mod tests {
    use coupon_domain::history::FaultPhase;

    use super::*;

    fn request(id: u64, sent_at_us: i64) -> HistoryRecord {
        HistoryRecord {
            run_id: "r".into(),
            campaign_id: "c".into(),
            user_id: id,
            request_id: id,
            intended_at_us: sent_at_us,
            sent_at_us,
            response_us: Some(1),
            status: Some(410),
            result: ResultClass::SoldOut,
            seq: None,
        }
    }

    fn fault(phase: FaultPhase, at_us: i64) -> FaultLine {
        crate::nemesis::test_line("db-lock", phase, at_us)
    }

    #[test]
    fn fault_lines_fall_between_the_requests_by_time() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("history-merge-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("history.jsonl");
        let requests = [request(1, 10), request(2, 20), request(3, 30)];
        let faults = [fault(FaultPhase::Inject, 15), fault(FaultPhase::Heal, 99)];
        write_jsonl(&path, &requests, &faults)?;
        let text = std::fs::read_to_string(&path)?;
        let order: Vec<&str> = text
            .lines()
            .map(|line| {
                if line.starts_with("{\"fault\"") {
                    "fault"
                } else {
                    "request"
                }
            })
            .collect();
        assert_eq!(order, ["request", "fault", "request", "request", "fault"]);
        let read = read_jsonl(&path)?;
        assert_eq!((read.requests.len(), read.faults.len()), (3, 2));
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
