//! The Redis gate. One Lua script decides `already_applied`, `sold_out` or `issued(seq)` for a
//! (campaign, user) pair: the duplicate check and the limit check happen in one atomic step,
//! never as two round trips that could interleave with another apply.

use std::time::Duration;

use coupon_domain::{CampaignId, CampaignState, GateKeys, GateOutcome, Seq, UserId};
use redis::{AsyncCommands, Script, aio::ConnectionManager, aio::ConnectionManagerConfig};

use crate::configuration::GateMode;

/// Admit a user: returns `{"issued", seq}`, `{"already", seq}`, `{"sold_out", 0}`,
/// `{"not_open", 0}` or `{"closed", 0}` outside the window by Redis `TIME`, or `{"lost", 0}` when
/// the campaign's marker is gone (Redis lost the gate's state) or Redis restarted since the gate
/// was built (it may have lost the last admissions; the script drops the marker).
pub const ADMIT: &str = include_str!("gate/admit.lua");

/// Initialise an empty gate in a given life, recording the server's `run_id` (no-op if one
/// exists). Public, like [`ADMIT`], for the bench's bare reference apply.
pub const INITIALISE: &str = include_str!("gate/initialise.lua");

/// Give slots back: an admission whose event could not be published, or admissions the
/// reconciler revoked. Each only if its user still holds that very slot, in that life.
const RELEASE: &str = include_str!("gate/release.lua");

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("redis at {address} is unreachable: {source}")]
    Unreachable {
        address: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("redis command failed: {0}")]
    Command(#[from] redis::RedisError),
    #[error("unexpected reply from the gate script: {0}")]
    Protocol(String),
}

impl GateError {
    /// Whether the command may have run although no usable answer came: a response timeout,
    /// the connection lost after the command was sent, or a reply that could not be read. Only
    /// a refused connection, a client-side error or Redis's own error reply says for certain
    /// that nothing was changed.
    pub fn outcome_unknown(&self) -> bool {
        use redis::ErrorKind;
        let error = match self {
            Self::Command(error) => error,
            // A reply came, so the script ran, but it could not be read: it may have admitted.
            Self::Protocol(_) => return true,
            Self::Unreachable { .. } => return false,
        };
        if error.is_connection_refusal() {
            return false;
        }
        !matches!(
            error.kind(),
            ErrorKind::Server(_)
                | ErrorKind::Extension
                | ErrorKind::InvalidClientConfig
                | ErrorKind::AuthenticationFailed
        )
    }
}

/// What the gate decided, or that it cannot decide because its state is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Decided by the gate of this epoch (the marker's value: one value per gate life).
    Decided(GateOutcome, Epoch),
    /// Outside the campaign's window by the gate's clock (Redis `TIME`): nothing was touched.
    Outside(CampaignState),
    Lost,
}

/// A campaign's sale window in milliseconds since the Unix epoch, half-open; `None` ends are
/// open. [`Window::ALWAYS`] leaves the check to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Window {
    pub opens_at_ms: Option<i64>,
    pub closes_at_ms: Option<i64>,
}

impl Window {
    pub const ALWAYS: Self = Self {
        opens_at_ms: None,
        closes_at_ms: None,
    };

    pub fn of(campaign: &coupon_domain::Campaign) -> Self {
        let (opens_at_ms, closes_at_ms) = campaign.window_ms();
        Self {
            opens_at_ms,
            closes_at_ms,
        }
    }

    fn arg(end: Option<i64>) -> String {
        end.map(|ms| ms.to_string()).unwrap_or_default()
    }

    /// Where `now_ms` falls, for the two-step gate that has no script to ask.
    fn state_at(self, now_ms: i64) -> CampaignState {
        match (self.opens_at_ms, self.closes_at_ms) {
            (Some(opens), _) if now_ms < opens => CampaignState::NotOpen,
            (_, Some(closes)) if now_ms >= closes => CampaignState::Closed,
            _ => CampaignState::Open,
        }
    }
}

/// One life of a campaign's gate: the next value of the campaign's epoch counter in MySQL, set
/// when the gate is initialised or rebuilt. An admission in doubt is republished only while the
/// epoch it was made in is still the live one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Epoch(pub u64);

impl Epoch {
    /// The marker's value, which only this project writes (a decimal number).
    fn parse(marker: &str) -> Result<Self, GateError> {
        marker
            .parse()
            .map(Self)
            .map_err(|_| GateError::Protocol(format!("gate marker {marker:?} is no epoch")))
    }
}

/// What the gate holds for one user, as [`Gate::admission_of`] read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holding {
    /// A slot, in the gate's live epoch.
    Slot(Seq, Epoch),
    /// No slot.
    None,
    /// The gate is lost (no marker): a rebuild makes it again from the stores.
    Lost,
    /// A rebuild or the reconciler is moving the gate to its next life: read again later.
    Locked,
}

/// The gate's state for one campaign, for stats and the verifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GateStats {
    pub initialised: bool,
    pub winners: u64,
    pub next_seq: u64,
    pub released: u64,
}

/// How long the test-only two-step gate waits between its check and its take: at a burst's
/// pace of one apply per millisecond, a few dozen applies see the same count.
const TWO_STEP_GAP: Duration = Duration::from_millis(30);

#[derive(Clone)]
pub struct Gate {
    conn: ConnectionManager,
    mode: GateMode,
    /// Whether an admission that would hand out a slot first checks Redis has not restarted
    /// since the gate was built (always, but for a test's control).
    pub check_restarts: bool,
    prefix: String,
    address: String,
    admit: Script,
    release: Script,
    install: Script,
    unlock: Script,
    advance: Script,
    lead: Script,
    initialise: Script,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Gate {
    pub async fn connect(
        url: &str,
        prefix: &str,
        response_timeout: Duration,
        mode: GateMode,
    ) -> Result<Self, GateError> {
        let unreachable = |source| GateError::Unreachable {
            address: coupon_runtime::stack::redact(url),
            source,
        };
        let client = redis::Client::open(url).map_err(unreachable)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(3)))
            .set_response_timeout(Some(response_timeout))
            .set_number_of_retries(2);
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(unreachable)?;
        if mode == GateMode::TwoStep {
            tracing::error!(
                "GATE_MODE=two-step: this gate over-issues on purpose (verifier negative control)"
            );
        }
        let gate = Self {
            conn,
            mode,
            check_restarts: true,
            prefix: prefix.to_owned(),
            address: coupon_runtime::stack::redact(url),
            admit: Script::new(ADMIT),
            release: Script::new(RELEASE),
            install: Script::new(include_str!("gate/install.lua")),
            unlock: Script::new(include_str!("gate/unlock.lua")),
            advance: Script::new(include_str!("gate/advance.lua")),
            lead: Script::new(include_str!("gate/lead.lua")),
            initialise: Script::new(INITIALISE),
        };
        gate.load_scripts().await?;
        Ok(gate)
    }

    /// Loads every script into Redis's script cache, so a burst's first calls run them by hash
    /// at once instead of each being refused (`NOSCRIPT`) and sent again whole.
    pub async fn load_scripts(&self) -> Result<(), GateError> {
        let mut conn = self.conn.clone();
        for script in [
            &self.admit,
            &self.release,
            &self.install,
            &self.unlock,
            &self.advance,
            &self.lead,
            &self.initialise,
        ] {
            script.load_async(&mut conn).await?;
        }
        Ok(())
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// The gate's Redis connection, shared with the course's stages.
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    pub fn keys(&self, campaign: &CampaignId) -> GateKeys {
        GateKeys::new(&self.prefix, campaign)
    }

    pub async fn ping(&self) -> Result<(), GateError> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(campaign_id = %campaign, user_id = %user))]
    pub async fn admit(
        &self,
        campaign: &CampaignId,
        user: UserId,
        limit: u32,
        window: Window,
    ) -> Result<Admission, GateError> {
        if self.mode == GateMode::TwoStep {
            return self.admit_in_two_steps(campaign, user, limit, window).await;
        }
        let keys = self.keys(campaign);
        let mut conn = self.conn.clone();
        let mut admit = self.admit.prepare_invoke();
        for key in keys.admit_keys() {
            admit.key(key);
        }
        let (verdict, seq, epoch): (String, i64, String) = admit
            .arg(user.get())
            .arg(limit)
            .arg(Window::arg(window.opens_at_ms))
            .arg(Window::arg(window.closes_at_ms))
            .arg(if self.check_restarts { "1" } else { "" })
            .invoke_async(&mut conn)
            .await?;
        let seq = || {
            u32::try_from(seq)
                .map(Seq)
                .map_err(|_| GateError::Protocol(format!("seq {seq} out of range")))
        };
        let epoch = || Epoch::parse(&epoch);
        Ok(match verdict.as_str() {
            "issued" => Admission::Decided(GateOutcome::Issued(seq()?), epoch()?),
            "already" => Admission::Decided(GateOutcome::AlreadyApplied, epoch()?),
            "sold_out" => Admission::Decided(GateOutcome::SoldOut, epoch()?),
            "not_open" => Admission::Outside(CampaignState::NotOpen),
            "closed" => Admission::Outside(CampaignState::Closed),
            "lost" => Admission::Lost,
            other => return Err(GateError::Protocol(format!("unknown verdict {other:?}"))),
        })
    }

    /// The broken gate of the verifier's negative control: check, then take, in two round
    /// trips. Between them other applies see the same count, so more than `limit` get through.
    /// The gap is widened on purpose ([`TWO_STEP_GAP`]): a fast api on an idle machine would
    /// otherwise close it often enough that a 1,000-user burst sometimes shows no over-issue,
    /// and a negative control that may pass proves nothing.
    async fn admit_in_two_steps(
        &self,
        campaign: &CampaignId,
        user: UserId,
        limit: u32,
        window: Window,
    ) -> Result<Admission, GateError> {
        let keys = self.keys(campaign);
        let mut conn = self.conn.clone();
        let (marker, held, taken, (seconds, micros)): (
            Option<String>,
            Option<u32>,
            Option<u32>,
            (i64, i64),
        ) = redis::pipe()
            .get(&keys.marker)
            .hget(&keys.winners, user.get())
            .get(&keys.next_seq)
            .cmd("TIME")
            .query_async(&mut conn)
            .await?;
        match window.state_at(seconds * 1000 + micros / 1000) {
            CampaignState::Open => {}
            outside => return Ok(Admission::Outside(outside)),
        }
        let Some(epoch) = marker.as_deref().map(Epoch::parse).transpose()? else {
            return Ok(Admission::Lost);
        };
        if held.is_some() {
            return Ok(Admission::Decided(GateOutcome::AlreadyApplied, epoch));
        }
        if taken.unwrap_or(0) >= limit {
            return Ok(Admission::Decided(GateOutcome::SoldOut, epoch));
        }
        tokio::time::sleep(TWO_STEP_GAP).await;
        let seq: u32 = conn.incr(&keys.next_seq, 1).await?;
        let _: () = conn.hset(&keys.winners, user.get(), seq).await?;
        Ok(Admission::Decided(GateOutcome::Issued(Seq(seq)), epoch))
    }

    /// Undoes one admission of life `epoch`; `Ok(false)` when the user no longer holds that
    /// slot or the gate moved to another life (the reconciler then decides).
    #[tracing::instrument(skip_all, fields(campaign_id = %campaign, user_id = %user, seq = seq.0))]
    pub async fn release(
        &self,
        campaign: &CampaignId,
        user: UserId,
        seq: Seq,
        epoch: Epoch,
    ) -> Result<bool, GateError> {
        Ok(self.release_slots(campaign, epoch, &[(user, seq)]).await? == 1)
    }

    /// Initialises an empty gate for a campaign that never had one, in life `epoch`. No-op if
    /// it exists.
    pub async fn initialise_empty(
        &self,
        campaign: &CampaignId,
        epoch: u64,
    ) -> Result<(), GateError> {
        let keys = self.keys(campaign);
        let mut conn = self.conn.clone();
        let _: i64 = self
            .initialise
            .key(&keys.marker)
            .key(&keys.redis_run)
            .arg(epoch)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Removes the marker: every admit answers `lost` until a rebuild installs the gate again.
    pub async fn forget_marker(&self, campaign: &CampaignId) -> Result<(), GateError> {
        let keys = self.keys(campaign);
        let mut conn = self.conn.clone();
        let _: () = conn.del(&keys.marker).await?;
        Ok(())
    }

    pub async fn stats(&self, campaign: &CampaignId) -> Result<GateStats, GateError> {
        let keys = self.keys(campaign);
        let mut conn = self.conn.clone();
        let (initialised, winners, next_seq, released): (bool, u64, Option<u64>, u64) =
            redis::pipe()
                .exists(&keys.marker)
                .hlen(&keys.winners)
                .get(&keys.next_seq)
                .llen(&keys.released)
                .query_async(&mut conn)
                .await?;
        Ok(GateStats {
            initialised,
            winners,
            next_seq: next_seq.unwrap_or_default(),
            released,
        })
    }

    /// Whether the campaign's gate is live (its marker exists).
    pub async fn is_live(&self, campaign: &CampaignId) -> Result<bool, GateError> {
        let keys = self.keys(campaign);
        let mut conn = self.conn.clone();
        Ok(conn.exists(&keys.marker).await?)
    }

    /// The live epoch of the campaign's gate, `None` while the gate is lost.
    pub async fn epoch(&self, campaign: &CampaignId) -> Result<Option<Epoch>, GateError> {
        let keys = self.keys(campaign);
        let mut conn = self.conn.clone();
        let marker: Option<String> = conn.get(&keys.marker).await?;
        marker.as_deref().map(Epoch::parse).transpose()
    }

    /// Whether `user` still holds slot `seq` in the campaign's gate.
    pub async fn holds(
        &self,
        campaign: &CampaignId,
        user: UserId,
        seq: Seq,
    ) -> Result<bool, GateError> {
        let keys = self.keys(campaign);
        let mut conn = self.conn.clone();
        let held: Option<u32> = conn.hget(&keys.winners, user.get()).await?;
        Ok(held == Some(seq.0))
    }

    /// The slot `user` holds in the campaign's gate and the gate's live epoch, read together
    /// (one transaction), unless a rebuild or the reconciler holds the campaign's rebuild lock
    /// (the gate is between two lives). [`Holding::Slot`] only while no one does.
    pub async fn admission_of(
        &self,
        campaign: &CampaignId,
        user: UserId,
    ) -> Result<Holding, GateError> {
        let keys = self.keys(campaign);
        let mut conn = self.conn.clone();
        let (seq, marker, locked): (Option<u32>, Option<String>, bool) = redis::pipe()
            .atomic()
            .hget(&keys.winners, user.get())
            .get(&keys.marker)
            .exists(&keys.rebuild_lock)
            .query_async(&mut conn)
            .await?;
        Ok(match (seq, marker, locked) {
            (_, _, true) => Holding::Locked,
            (Some(seq), Some(marker), false) => Holding::Slot(Seq(seq), Epoch::parse(&marker)?),
            (None, Some(_), false) => Holding::None,
            (_, None, false) => Holding::Lost,
        })
    }

    /// Every winner of the campaign's gate with its slot.
    pub async fn winners(&self, campaign: &CampaignId) -> Result<Vec<(UserId, Seq)>, GateError> {
        let keys = self.keys(campaign);
        let mut conn = self.conn.clone();
        let all: Vec<(u64, u32)> = conn.hgetall(&keys.winners).await?;
        all.into_iter()
            .map(|(user, seq)| {
                UserId::parse(user)
                    .map(|user| (user, Seq(seq)))
                    .map_err(|_| GateError::Protocol(format!("winner {user} is no user id")))
            })
            .collect()
    }

    /// Moves the gate to a new life `next` if it is still in life `live`: from then on an
    /// event of an earlier life that is acknowledged is answered `pending`. `false` when the
    /// gate had moved on (or was lost) meanwhile.
    pub async fn advance_epoch(
        &self,
        campaign: &CampaignId,
        live: Epoch,
        next: Epoch,
    ) -> Result<bool, GateError> {
        let keys = self.keys(campaign);
        let mut conn = self.conn.clone();
        let advanced: i64 = self
            .advance
            .key(&keys.marker)
            .arg(live.0)
            .arg(next.0)
            .invoke_async(&mut conn)
            .await?;
        Ok(advanced == 1)
    }

    /// Releases slots (an undone admission, or those the reconciler revoked), each only if its
    /// user still holds it and the gate is still in life `epoch`. Returns how many were released.
    pub async fn release_slots(
        &self,
        campaign: &CampaignId,
        epoch: Epoch,
        revoked: &[(UserId, Seq)],
    ) -> Result<u64, GateError> {
        let keys = self.keys(campaign);
        let mut conn = self.conn.clone();
        let mut invocation = self.release.prepare_invoke();
        invocation
            .key(&keys.marker)
            .key(&keys.winners)
            .key(&keys.released)
            .arg(epoch.0);
        for (user, seq) in revoked {
            invocation.arg(user.get()).arg(seq.0);
        }
        let released: i64 = invocation.invoke_async(&mut conn).await?;
        Ok(u64::try_from(released).unwrap_or_default())
    }

    /// Takes or renews the reconciler's lease for `ttl`: `true` while this process (`lease`)
    /// leads, so that one api at a time reconciles.
    pub async fn lead_reconciler(&self, lease: &str, ttl: Duration) -> Result<bool, GateError> {
        let mut conn = self.conn.clone();
        let leads: i64 = self
            .lead
            .key(format!("{}:reconciler", self.prefix))
            .arg(lease)
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
            .invoke_async(&mut conn)
            .await?;
        Ok(leads == 1)
    }

    /// Takes the campaign's rebuild lock for `ttl`; `None` when another process holds it,
    /// otherwise the token that [`Gate::install`] and [`Gate::unlock_rebuild`] need.
    pub async fn try_lock_rebuild(
        &self,
        campaign: &CampaignId,
        ttl: Duration,
    ) -> Result<Option<String>, GateError> {
        let keys = self.keys(campaign);
        let mut conn = self.conn.clone();
        let token = format!("{:016x}", rand_token());
        let taken: Option<String> = redis::cmd("SET")
            .arg(&keys.rebuild_lock)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
            .query_async(&mut conn)
            .await?;
        Ok(taken.map(|_| token))
    }

    /// Releases the rebuild lock if `token` still holds it.
    pub async fn unlock_rebuild(
        &self,
        campaign: &CampaignId,
        token: &str,
    ) -> Result<(), GateError> {
        let keys = self.keys(campaign);
        let mut conn = self.conn.clone();
        let _: i64 = self
            .unlock
            .key(&keys.rebuild_lock)
            .arg(token)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Installs a gate in one atomic step (`install.lua`): the plan's winners, highest slot and
    /// free slots below it, and the new life's `epoch`. Refuses when the lock is no longer ours.
    /// A rebuild ([`Over::LostGate`]) also refuses when a live gate exists (another process
    /// rebuilt it meanwhile): it never overwrites a gate that admits; it releases the lock. A
    /// campaign's first gate ([`Over::EarlierCampaign`]) replaces whatever Redis holds for the
    /// id and keeps the lock: no other process may build again before MySQL records this gate.
    pub async fn install(
        &self,
        campaign: &CampaignId,
        token: &str,
        epoch: u64,
        plan: &GatePlan,
        over: Over,
    ) -> Result<Installed, GateError> {
        let keys = self.keys(campaign);
        let mut conn = self.conn.clone();
        let mut invocation = self.install.prepare_invoke();
        invocation
            .key(&keys.marker)
            .key(&keys.winners)
            .key(&keys.next_seq)
            .key(&keys.released)
            .key(&keys.rebuild_lock)
            .key(&keys.redis_run)
            .arg(token)
            .arg(epoch)
            .arg(plan.next_seq)
            .arg(match over {
                Over::LostGate => "rebuild",
                Over::EarlierCampaign => "first",
            })
            .arg(plan.winners.len());
        for (user, seq) in &plan.winners {
            invocation.arg(user.get()).arg(seq.0);
        }
        for slot in &plan.free_slots {
            invocation.arg(*slot);
        }
        let installed: i64 = invocation.invoke_async(&mut conn).await?;
        Ok(match installed {
            1 => Installed::Yes,
            0 => Installed::LiveGateExists,
            _ => Installed::LockLost,
        })
    }
}

/// A gate to install: every known winner, the highest slot handed out, and the free slots
/// below it (slots released before a loss), which are handed out again first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GatePlan {
    pub winners: Vec<(UserId, Seq)>,
    pub next_seq: u32,
    pub free_slots: Vec<u32>,
}

/// What a gate install may write over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    /// A rebuild: only a lost gate (no marker).
    LostGate,
    /// A campaign's first gate: anything Redis holds for the id, which an earlier campaign of
    /// the same id left (the campaign's MySQL row says no gate was ever built for it).
    EarlierCampaign,
}

/// What [`Gate::install`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    Yes,
    LiveGateExists,
    LockLost,
}

pub(crate) fn rand_token() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}
