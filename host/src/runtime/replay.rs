//! Replaying histories against a component without recording anything: the check before an
//! upgrade or a deploy, and replay bundles, one instance's component, input and the history
//! of every run in one self-contained file that replays offline, against its own component
//! or another one.

use super::activation::{Start, Stop, run_guest};
use super::{Loaded, Runtime, RuntimeError, Settings};
use crate::clock::{ManualClock, Millis};
use crate::history::{Completion, HistoryEvent, InstanceId, Recorded, RunState, RuntimeStatus};
use crate::history::{Seq, UsageError};
use crate::wasm::trap_message;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::mpsc;

/// The `format` of the bundles this version writes and reads.
pub const BUNDLE_FORMAT: &str = "weft-bundle/1";

/// One instance, self-contained: what it ran on, what it was given, what every run recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    pub format: String,
    pub instance_id: String,
    pub name: String,
    pub runtime_status: RuntimeStatus,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// The JSON texts as stored (or, redacted, their stand-ins).
    pub input: String,
    pub output: Option<String>,
    pub failure: Option<String>,
    pub custom_status: Option<String>,
    /// Whether payloads were replaced by hashes: such a bundle replays by call kind and name.
    pub redacted: bool,
    pub component: BundledComponent,
    /// Every run, the first one first; the last is the current one.
    pub runs: Vec<BundledRun>,
}

/// The component an instance runs on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundledComponent {
    /// The sha256 of its bytes.
    pub digest: String,
    /// Its bytes, base64.
    pub wasm: String,
}

/// One run's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundledRun {
    pub generation: u32,
    pub history: Vec<Recorded>,
}

/// What replaying one run's history against a component found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// The history's next position.
    pub next: Seq,
    /// How many calls the history records, and how many of them the code made again.
    pub recorded: usize,
    pub calls: usize,
    /// `None` if the code made every recorded call (it may go on further); else the first
    /// divergence.
    pub divergence: Option<String>,
    /// What the guest logged while it replayed.
    pub logs: Vec<String>,
}

/// Why a bundle cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("not a weft bundle: {0}")]
    Malformed(String),
    #[error("the bundle's format is '{0}'; this weft reads '{BUNDLE_FORMAT}'")]
    Format(String),
    #[error("the bundle's component does not match its digest {0}")]
    Digest(String),
    #[error("cannot make a scratch store to replay in: {0}")]
    Scratch(String),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// Replays instance `id`'s history against `loaded`: `Ok` with the history's next position
/// if the code makes the recorded calls (it may go on further), or the first divergence.
pub(super) async fn check_replay(
    rt: &Runtime,
    id: &InstanceId,
    loaded: &Loaded,
) -> Result<Seq, String> {
    let history = rt
        .store()
        .history(id.clone(), 0)
        .await
        .map_err(|e| e.to_string())?;
    let replayed = replay_history(rt, id, loaded, &history, false).await;
    replayed.divergence.map_or(Ok(replayed.next), Err)
}

/// Replays one run's `history` (from its `started` event) against `loaded`; `by_name`
/// matches calls by their kind and name only.
async fn replay_history(
    rt: &Runtime,
    id: &InstanceId,
    loaded: &Loaded,
    history: &[Recorded],
    by_name: bool,
) -> Replayed {
    let mut run = RunState::from_history(history);
    if by_name {
        run.match_by_kind_and_name();
    }
    let mut replayed = Replayed {
        next: history.last().map_or(0, |r| r.seq + 1),
        recorded: run.recorded_calls(),
        calls: 0,
        divergence: None,
        logs: Vec::new(),
    };
    let Some(start) = Start::of(history) else {
        replayed.divergence = Some(format!("instance '{id}' has no history"));
        return replayed;
    };
    if !loaded.orchestrations.contains(&start.name) {
        replayed.divergence = Some(format!(
            "misuse: the component does not export orchestration '{}'",
            start.name
        ));
        return replayed;
    }
    let (activation, result) =
        run_guest(rt, id, loaded, start, run, mpsc::channel(1).1, None).await;
    let made = activation.pos as usize;
    replayed.calls = made.min(replayed.recorded);
    replayed.logs = activation.logs;
    replayed.divergence = match result {
        Ok(_) if made < replayed.recorded => Some(
            UsageError::FinishedEarly {
                made,
                recorded: replayed.recorded,
            }
            .to_string(),
        ),
        Ok(_) => None,
        Err(trap) => match trap.downcast_ref::<Stop>() {
            Some(Stop::CaughtUp) => None,
            _ => Some(match trap.downcast_ref::<UsageError>() {
                Some(usage) => usage.to_string(),
                None => trap_message("orchestration", &trap),
            }),
        },
    };
    replayed
}

impl Runtime {
    /// Instance `id` as a bundle: its row, the history of every run and its component's bytes.
    pub async fn bundle(&self, id: &InstanceId) -> Result<Bundle, RuntimeError> {
        let status = self.status(id, true).await?;
        let row = status.instance;
        let bytes = self
            .inner
            .store
            .component_bytes(row.digest.clone())
            .await?
            .ok_or_else(|| RuntimeError::MissingComponent(row.digest.clone()))?;
        let mut runs: Vec<BundledRun> = status
            .previous_runs
            .into_iter()
            .map(|(generation, history)| BundledRun {
                generation,
                history,
            })
            .collect();
        runs.push(BundledRun {
            generation: runs.last().map_or(0, |r| r.generation + 1),
            history: status.history.unwrap_or_default(),
        });
        Ok(Bundle {
            format: BUNDLE_FORMAT.into(),
            instance_id: row.id.to_string(),
            name: row.name,
            runtime_status: row.status,
            created_at: row.created_at,
            updated_at: row.updated_at,
            input: row.input,
            output: row.output,
            failure: row.failure,
            custom_status: row.custom_status,
            redacted: false,
            component: BundledComponent {
                digest: row.digest.to_string(),
                wasm: base64::engine::general_purpose::STANDARD.encode(&bytes),
            },
            runs,
        })
    }
}

impl Bundle {
    /// Reads a bundle from its JSON text.
    pub fn parse(text: &[u8]) -> Result<Self, BundleError> {
        let format = serde_json::from_slice::<Value>(text)
            .map_err(|e| BundleError::Malformed(e.to_string()))?
            .get("format")
            .and_then(Value::as_str)
            .map(str::to_string);
        match format {
            Some(f) if f == BUNDLE_FORMAT => {}
            Some(f) => return Err(BundleError::Format(f)),
            None => return Err(BundleError::Malformed("no \"format\" field".into())),
        }
        serde_json::from_slice(text).map_err(|e| BundleError::Malformed(e.to_string()))
    }

    /// The component's bytes, checked against the digest.
    pub fn component_bytes(&self) -> Result<Vec<u8>, BundleError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.component.wasm)
            .map_err(|e| BundleError::Malformed(format!("component.wasm: {e}")))?;
        if crate::history::digest_of(&bytes).as_str() != self.component.digest {
            return Err(BundleError::Digest(self.component.digest.clone()));
        }
        Ok(bytes)
    }

    /// The bundle with every payload (inputs, outputs, errors, event payloads, custom status,
    /// callback URLs) replaced by a hash of it. Names, kinds, positions and times stay.
    pub fn redacted(mut self) -> Self {
        self.input = hashed(&self.input);
        self.output = self.output.as_deref().map(hashed);
        self.failure = self.failure.as_deref().map(hashed);
        self.custom_status = self.custom_status.as_deref().map(hashed);
        for run in &mut self.runs {
            for r in &mut run.history {
                redact(&mut r.event);
            }
        }
        self.redacted = true;
        self
    }

    /// Replays every run against the bundle's component, or against `other` (a `.wasm`
    /// file's bytes), in this process on a scratch store that is thrown away: no server, no
    /// database. One result per run.
    pub async fn replay(&self, other: Option<Vec<u8>>) -> Result<Vec<Replayed>, BundleError> {
        let bytes = match other {
            Some(bytes) => bytes,
            None => self.component_bytes()?,
        };
        let id: InstanceId = self
            .instance_id
            .parse()
            .map_err(|e| BundleError::Malformed(format!("instanceId: {e}")))?;
        let scratch = tempfile::tempdir().map_err(|e| BundleError::Scratch(e.to_string()))?;
        let store = crate::store::SqliteStore::open(
            &scratch.path().join("replay.db"),
            crate::store::Synchronous::Off,
        )
        .map_err(|e| BundleError::Scratch(e.to_string()))?;
        let clock = Arc::new(ManualClock::new(self.created_at));
        let rt = Runtime::new(Arc::new(store), clock, None, Settings::default()).await?;
        let digest = crate::history::digest_of(&bytes);
        let loaded = rt
            .inner
            .components
            .load(digest, bytes)
            .await
            .map_err(RuntimeError::from)?;
        let mut out = Vec::new();
        for run in &self.runs {
            out.push(replay_history(&rt, &id, &loaded, &run.history, self.redacted).await);
        }
        Ok(out)
    }
}

/// A payload's stand-in: `sha256:` and the first 16 hex digits of its hash.
fn hashed(payload: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(payload.as_bytes());
    Value::String(format!("sha256:{}", &hex::encode(digest)[..16])).to_string()
}

/// Replaces the payloads an event carries by their hashes.
fn redact(event: &mut HistoryEvent) {
    use HistoryEvent::*;
    let completion = |c: &mut Completion| match c {
        Completion::Success(v) | Completion::Failure(v) => *v = hashed(v),
        Completion::Fired => {}
    };
    match event {
        Started { input, .. }
        | ActivityScheduled { input, .. }
        | SubOrchestrationScheduled { input, .. }
        | EntitySignalled { input, .. }
        | EntityCalled { input, .. }
        | ContinueAsNewRequested { input, .. }
        | ContinuedAsNew { input, .. } => *input = hashed(input),
        CustomStatusSet { status, .. } => *status = hashed(status),
        CallbackUrlCreated { url, .. } => *url = hashed(url),
        AwaitResolved { completion: c, .. } => completion(c),
        ActivityCompleted { output, .. }
        | SubOrchestrationCompleted { output, .. }
        | EntityCallCompleted { output, .. }
        | Completed { output, .. } => *output = hashed(output),
        ActivityFailed { error, .. }
        | ActivityAttemptFailed { error, .. }
        | SubOrchestrationFailed { error, .. }
        | EntityCallFailed { error, .. }
        | Failed { error, .. } => *error = hashed(error),
        EventRaised { payload, .. } => *payload = hashed(payload),
        Terminated { reason, .. } | Suspended { reason, .. } | Resumed { reason, .. } => {
            *reason = hashed(reason)
        }
        Now { .. }
        | Guid { .. }
        | Random { .. }
        | TimerCreated { .. }
        | EventWaitCreated { .. }
        | Cancelled { .. }
        | TimerFired { .. } => {}
    }
}
