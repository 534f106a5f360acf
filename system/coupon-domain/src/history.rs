//! The loadgen's per-request history: one JSON line per request, written by `loadgen` and read
//! by the `verifier`, which checks every reply against the stores.

use serde::{Deserialize, Serialize};

/// What one apply request came to, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultClass {
    /// 201: the user won a slot.
    Issued,
    /// 202: the outcome is not known yet; the system resolves it.
    Pending,
    /// 409: the user had already won.
    AlreadyApplied,
    /// 410 `sold_out`.
    SoldOut,
    /// 403 `not_open`.
    NotOpen,
    /// 410 `closed`.
    Closed,
    /// 404.
    NotFound,
    /// 400, 413, 415, 422: the request was refused as invalid.
    Invalid,
    /// 503: a dependency was down and the request had no effect.
    Unavailable,
    /// 504: the gate did not answer in time after the apply reached it, so nobody knows yet
    /// whether it took a slot. A slot taken with no event to follow is released by the
    /// reconciler.
    Unknown,
    /// No reply within the client's timeout: outcome unknown.
    Timeout,
    /// The connection failed or was reset: outcome unknown.
    TransportError,
    /// A reply this client does not understand (e.g. 500).
    Unexpected,
}

impl ResultClass {
    /// Classifies a reply from its status and the `result` field of its body, if any.
    pub fn from_reply(status: u16, result: Option<Self>) -> Self {
        match (status, result) {
            (201, _) => Self::Issued,
            (202, _) => Self::Pending,
            (409, _) => Self::AlreadyApplied,
            (410, Some(Self::Closed)) => Self::Closed,
            (410, _) => Self::SoldOut,
            (403, Some(Self::NotOpen)) => Self::NotOpen,
            (404, _) => Self::NotFound,
            (400 | 413 | 415 | 422, _) => Self::Invalid,
            (503, _) => Self::Unavailable,
            (504, Some(Self::Unknown)) => Self::Unknown,
            _ => Self::Unexpected,
        }
    }

    /// The request certainly did not give this user a coupon.
    pub fn is_definite_refusal(self) -> bool {
        matches!(
            self,
            Self::SoldOut
                | Self::NotOpen
                | Self::Closed
                | Self::NotFound
                | Self::Invalid
                | Self::Unavailable
        )
    }

    /// Nobody can tell from the reply whether a coupon was issued.
    pub fn is_unknown(self) -> bool {
        matches!(
            self,
            Self::Pending | Self::Unknown | Self::Timeout | Self::TransportError | Self::Unexpected
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issued => "issued",
            Self::Pending => "pending",
            Self::AlreadyApplied => "already_applied",
            Self::SoldOut => "sold_out",
            Self::NotOpen => "not_open",
            Self::Closed => "closed",
            Self::NotFound => "not_found",
            Self::Invalid => "invalid",
            Self::Unavailable => "unavailable",
            Self::Unknown => "unknown",
            Self::Timeout => "timeout",
            Self::TransportError => "transport_error",
            Self::Unexpected => "unexpected",
        }
    }

    pub const ALL: [ResultClass; 13] = [
        Self::Issued,
        Self::Pending,
        Self::AlreadyApplied,
        Self::SoldOut,
        Self::NotOpen,
        Self::Closed,
        Self::NotFound,
        Self::Invalid,
        Self::Unavailable,
        Self::Unknown,
        Self::Timeout,
        Self::TransportError,
        Self::Unexpected,
    ];
}

/// One request of a loadgen run. Times are microseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryRecord {
    pub run_id: String,
    pub campaign_id: String,
    pub user_id: u64,
    /// Unique within the run.
    pub request_id: u64,
    /// When the schedule meant to send it (the burst's plan); the gap to `sent_at_us` shows
    /// the client's own queueing.
    pub intended_at_us: i64,
    pub sent_at_us: i64,
    /// From send to the end of the reply; `None` when no reply came.
    pub response_us: Option<u64>,
    /// HTTP status; `None` when no reply came.
    pub status: Option<u16>,
    pub result: ResultClass,
    /// The slot, for `issued` and `pending` replies.
    pub seq: Option<u32>,
}

/// Whether a fault line is a fault's injection or its healing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultPhase {
    Inject,
    Heal,
}

/// One step of a fault loadgen injected, in the same history as the requests: the nemesis's
/// half of the record. Times are microseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultLine {
    /// The fault as it was asked for (`db-lock@2s:5s`).
    pub fault: String,
    pub phase: FaultPhase,
    pub run_id: String,
    pub at_us: i64,
    /// What it was done to (`consumer pid 4121`, `mysql row campaign.id = run-...`).
    pub target: String,
    /// What was done (`SIGKILL`, `SELECT ... FOR UPDATE held`, `ROLLBACK`).
    pub action: String,
}

/// A `history.jsonl`: the requests, and the faults' lines between them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    pub requests: Vec<HistoryRecord>,
    pub faults: Vec<FaultLine>,
}

#[derive(Debug, thiserror::Error)]
#[error("line {line} is neither a request nor a fault line: {source}")]
pub struct HistoryLineError {
    pub line: usize,
    #[source]
    pub source: serde_json::Error,
}

/// Parses a `history.jsonl` text, one request or fault line per non-empty line.
pub fn parse_jsonl(text: &str) -> Result<History, HistoryLineError> {
    let mut history = History::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let error = match serde_json::from_str(line) {
            Ok(request) => {
                history.requests.push(request);
                continue;
            }
            Err(error) => error,
        };
        // Not a request: a fault's line, or else the request's error says what is wrong
        // (the fault's, for a line that names a fault).
        match serde_json::from_str::<FaultLine>(line) {
            Ok(fault) => history.faults.push(fault),
            Err(fault_error) => {
                // A fault line is written with its `fault` field first.
                let source = if line.trim_start().starts_with("{\"fault\"") {
                    fault_error
                } else {
                    error
                };
                return Err(HistoryLineError {
                    line: i + 1,
                    source,
                });
            }
        }
    }
    Ok(history)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_classify_by_status_and_result() {
        assert_eq!(
            ResultClass::from_reply(201, Some(ResultClass::Issued)),
            ResultClass::Issued
        );
        assert_eq!(
            ResultClass::from_reply(410, Some(ResultClass::SoldOut)),
            ResultClass::SoldOut
        );
        assert_eq!(
            ResultClass::from_reply(410, Some(ResultClass::Closed)),
            ResultClass::Closed
        );
        assert_eq!(ResultClass::from_reply(422, None), ResultClass::Invalid);
        assert_eq!(ResultClass::from_reply(500, None), ResultClass::Unexpected);
        assert_eq!(
            ResultClass::from_reply(504, Some(ResultClass::Unknown)),
            ResultClass::Unknown
        );
        assert!(ResultClass::Unknown.is_unknown() && !ResultClass::Unknown.is_definite_refusal());
        assert!(ResultClass::Unavailable.is_definite_refusal());
        assert!(!ResultClass::AlreadyApplied.is_definite_refusal());
        assert!(ResultClass::Timeout.is_unknown() && !ResultClass::Issued.is_unknown());
        let names: std::collections::HashSet<&str> =
            ResultClass::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), ResultClass::ALL.len());
    }

    #[test]
    fn a_record_round_trips_as_one_json_line() {
        let record = HistoryRecord {
            run_id: "r".into(),
            campaign_id: "c".into(),
            user_id: 9,
            request_id: 1,
            intended_at_us: 10,
            sent_at_us: 12,
            response_us: Some(500),
            status: Some(201),
            result: ResultClass::Issued,
            seq: Some(3),
        };
        let line = serde_json::to_string(&record).expect("serialises");
        assert!(!line.contains('\n'));
        let parsed = parse_jsonl(&format!("{line}\n\n{line}\n")).expect("two records");
        assert_eq!(parsed.requests.len(), 2);
        assert!(parsed.faults.is_empty());
        assert_eq!(parse_jsonl("{}").map_err(|e| e.line).err(), Some(1));
        assert!(line.contains("\"result\":\"issued\""));
        assert_eq!(
            serde_json::from_str::<HistoryRecord>(&line).ok(),
            Some(record)
        );
    }

    #[test]
    fn fault_lines_are_read_beside_the_requests_and_a_bad_one_is_named() {
        let fault = FaultLine {
            fault: "db-lock@2s:5s".into(),
            phase: FaultPhase::Inject,
            run_id: "r".into(),
            at_us: 11,
            target: "mysql row campaign.id = c".into(),
            action: "SELECT ... FOR UPDATE".into(),
        };
        let request = r#"{"run_id":"r","campaign_id":"c","user_id":9,"request_id":1,"intended_at_us":10,"sent_at_us":12,"response_us":null,"status":null,"result":"timeout","seq":null}"#;
        let fault_line = serde_json::to_string(&fault).expect("serialises");
        assert!(fault_line.contains("\"phase\":\"inject\""));
        let parsed = parse_jsonl(&format!("{request}\n{fault_line}\n")).expect("parses");
        assert_eq!(parsed.requests.len(), 1);
        assert_eq!(parsed.faults, vec![fault]);
        // A fault line with a field too many is refused, and its error is the fault's.
        let bad = fault_line.replace("\"at_us\"", "\"extra\":1,\"at_us\"");
        let error = parse_jsonl(&format!("{request}\n{bad}\n")).expect_err("refused");
        assert_eq!(error.line, 2);
        assert!(error.source.to_string().contains("extra"), "{error}");
        // A request with a field too many: the request's error.
        let bad = request.replace("\"seq\"", "\"extra\":1,\"seq\"");
        let error = parse_jsonl(&bad).expect_err("refused");
        assert!(error.source.to_string().contains("extra"), "{error}");
    }
}
