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
