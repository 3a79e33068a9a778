//! The crash torture's load and checker, shared by the SIGKILL torture (`tests/torture.rs`),
//! the power-cut one (`tests/power_cut.rs`) and the cluster tests (`tests/cluster.rs`): the
//! plan, the client with its ledger of acknowledged work (spread over several nodes when there
//! are several), the snapshots of the database (SQLite here; PostgreSQL through
//! `common::cluster`, from the same rows) and the checks over them (each is described in
//! `tests/torture.rs`).

use super::Weft;
pub use super::client::*;
use super::effects::{EffectsServer, Hit};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How many times the host is killed, by default (CI).
pub const KILLS: usize = 24;
/// How many instances are started, by default (CI).
pub const INSTANCES: usize = 60;
/// The effects server answers each activity after 0 to this many milliseconds.
pub const EFFECT_LATENCY_MS: u64 = 40;
/// The most activities one fan-out runs.
pub const MAX_FAN_OUT: u64 = 20;
/// How long a kill that is to land while an activity is in flight waits for one to be.
pub const HOLD_WAIT: Duration = Duration::from_secs(10);

/// A small xorshift64* generator: the plan and the kill moments come from one seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

pub fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}")),
        Err(_) => default,
    }
}

/// The seed CI runs, so a CI failure can be repeated as it is.
pub const SEED: u64 = 20_261_202;

/// `WEFT_TORTURE_SEED`: a number, or `random` for a fresh one; CI's [`SEED`] without it.
pub fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    match std::env::var("WEFT_TORTURE_SEED").as_deref() {
        Err(_) => SEED,
        Ok("random") => std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish(),
        Ok(_) => env_number("WEFT_TORTURE_SEED", SEED),
    }
}

/// FNV-1a, 64 bits, as the `send-code` activity computes it.
pub fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The code `send-code` sends for the call with this idempotency key.
pub fn code_for(key: &str) -> u64 {
    1000 + fnv1a(key) % 9000
}

/// A wrong answer for `code`, the `k`th.
pub fn wrong(code: u64, k: u64) -> u64 {
    if code == 1000 + k { 9999 - k } else { 1000 + k }
}

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Answered with this many wrong codes, then the right one.
    Verify {
        wrong: u64,
    },
    Sequence,
    /// This many activities in parallel.
    FanOut {
        count: u64,
    },
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub id: String,
    pub kind: Kind,
}

impl Plan {
    pub fn random(i: usize, rng: &mut Rng) -> Self {
        let (id, kind) = match i % 3 {
            0 => (
                format!("verify-{i}"),
                Kind::Verify {
                    wrong: rng.range(0, 2),
                },
            ),
            1 => (format!("sequence-{i}"), Kind::Sequence),
            _ => (
                format!("fan-out-{i}"),
                Kind::FanOut {
                    count: rng.range(5, MAX_FAN_OUT),
                },
            ),
        };
        Self { id, kind }
    }

    pub fn orchestration(&self) -> &'static str {
        match self.kind {
            Kind::Verify { .. } => "verify",
            Kind::Sequence => "sequence",
            Kind::FanOut { .. } => "fan-out",
        }
    }

    pub fn input(&self) -> Value {
        match self.kind {
            Kind::Verify { .. } => json!(format!("+1425{:07}", fnv1a(&self.id) % 10_000_000)),
            Kind::Sequence => json!({ "instance": self.id }),
            Kind::FanOut { count } => json!(count),
        }
    }

    /// How many activities the instance schedules.
    pub fn activities(&self) -> usize {
        match self.kind {
            Kind::Verify { .. } => 1,
            Kind::Sequence => 3,
            Kind::FanOut { count } => count as usize,
        }
    }

    /// The output the instance must complete with.
    pub fn expected_output(&self) -> Value {
        match self.kind {
            Kind::Verify { .. } => json!(true),
            Kind::Sequence => json!(["Hello Tokyo!", "Hello Seattle!", "Hello London!"]),
            Kind::FanOut { count } => json!((1..=count).map(|i| i * i).sum::<u64>()),
        }
    }
}

/// What the database holds, read directly (read-only).
#[derive(Debug, Default)]
pub struct Snapshot {
    pub instances: HashSet<String>,
    /// `{instance}/{handle}` of every recorded activity completion.
    pub completed: HashSet<String>,
    /// How many `activity_completed` rows there are (one per call, if all is well).
    pub completion_rows: usize,
    /// `{instance}/{handle}` of each call with more than one `activity_completed` row, and
    /// how many it has.
    pub completed_more_than_once: Vec<(String, i64)>,
    /// (instance, tag) of every recorded `answer` event.
    pub raised: HashSet<(String, String)>,
    /// The recorded output of each completion, by key.
    pub outputs: HashMap<String, Value>,
    /// The value of every `add` to a counter that is in its inbox or its log.
    pub signals: HashSet<i64>,
    /// The digests of the components stored.
    pub components: HashSet<String>,
}

pub fn open_read_only(db: &Path) -> rusqlite::Result<rusqlite::Connection> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    // The host may be writing, or recovering after a kill: wait out its locks.
    conn.busy_timeout(Duration::from_secs(10))?;
    Ok(conn)
}

/// The history rows a [`Snapshot`] reads (as `instance_id, event`), on either backend.
pub const ARRIVALS_SQL: &str = "SELECT instance_id, event FROM history
     WHERE event LIKE '%activity_completed%' OR event LIKE '%event_raised%'";

/// The inputs of the counters' operations a [`Snapshot`] reads, waiting or applied.
pub const SIGNALS_SQL: &str = "SELECT input FROM entity_inbox WHERE name = 'counter'
     UNION ALL SELECT input FROM entity_log WHERE name = 'counter'";

/// The stored components' digests a [`Snapshot`] reads.
pub const COMPONENTS_SQL: &str = "SELECT digest FROM components";

impl Snapshot {
    /// Adds the inputs [`SIGNALS_SQL`] selects and the digests [`COMPONENTS_SQL`] does.
    pub fn with_entities(
        mut self,
        signals: impl IntoIterator<Item = String>,
        components: impl IntoIterator<Item = String>,
    ) -> Self {
        self.signals = signals
            .into_iter()
            .map(|input| input.parse().expect("an add's input is a number"))
            .collect();
        self.components = components.into_iter().collect();
        self
    }

    /// A snapshot from the ids in `instances` and the rows [`ARRIVALS_SQL`] selects.
    pub fn from_rows(
        instances: impl IntoIterator<Item = String>,
        arrivals: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        let mut snap = Snapshot {
            instances: instances.into_iter().collect(),
            ..Snapshot::default()
        };
        // Rows, not keys: a call completed twice is two rows under one key.
        let mut rows: HashMap<String, i64> = HashMap::new();
        for (instance, event) in arrivals {
            let event: Value = serde_json::from_str(&event).expect("history event JSON");
            match event["type"].as_str() {
                Some("activity_completed") => {
                    let handle = event["handle"].as_u64().expect("handle");
                    let key = format!("{instance}/{handle}");
                    let output = event["output"].as_str().expect("output");
                    let output = serde_json::from_str(output).expect("output JSON");
                    snap.completion_rows += 1;
                    *rows.entry(key.clone()).or_default() += 1;
                    snap.completed.insert(key.clone());
                    snap.outputs.insert(key, output);
                }
                Some("event_raised") => {
                    let payload = event["payload"].as_str().expect("payload");
                    let payload: Value = serde_json::from_str(payload).expect("payload JSON");
                    let tag = payload["raise"].as_str().unwrap_or_default().to_string();
                    snap.raised.insert((instance, tag));
                }
                _ => {}
            }
        }
        snap.completed_more_than_once = rows.into_iter().filter(|(_, n)| *n > 1).collect();
        snap.completed_more_than_once.sort();
        snap
    }
}

pub fn snapshot(db: &Path) -> Snapshot {
    let conn = open_read_only(db).expect("open db");
    let mut stmt = conn.prepare("SELECT id FROM instances").expect("prepare");
    let ids: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .expect("query instances")
        .map(|id| id.expect("row"))
        .collect();
    let mut stmt = conn.prepare(ARRIVALS_SQL).expect("prepare");
    let rows: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .expect("query history")
        .map(|row| row.expect("row"))
        .collect();
    let column = |sql: &str| -> Vec<String> {
        let mut stmt = conn.prepare(sql).expect("prepare");
        stmt.query_map([], |r| r.get::<_, String>(0))
            .expect("query")
            .map(|row| row.expect("row"))
            .collect()
    };
    Snapshot::from_rows(ids, rows).with_entities(column(SIGNALS_SQL), column(COMPONENTS_SQL))
}

/// An idempotency key's instance and handle.
pub fn split_key(key: &str) -> (&str, i64) {
    let (instance, handle) = key.rsplit_once('/').expect("key is {instance}/{handle}");
    (instance, handle.parse().expect("handle is a number"))
}

/// Whether the call with idempotency key `{instance}/{handle}` has its completion recorded.
pub fn is_recorded(conn: &rusqlite::Connection, key: &str) -> rusqlite::Result<bool> {
    let (instance, handle) = split_key(key);
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM history WHERE instance_id = ?1
             AND json_extract(event, '$.type') = 'activity_completed'
             AND json_extract(event, '$.handle') = ?2)",
        rusqlite::params![instance, handle],
        |r| r.get(0),
    )
}

/// What the ledger holds that the database does not, and what it holds twice or lost since
/// the snapshot `before`.
pub fn lost(
    ledger: &Ledger,
    snap: &Snapshot,
    before: Option<&Snapshot>,
    when: &str,
) -> Vec<String> {
    let starts = ledger
        .starts
        .iter()
        .filter(|id| !snap.instances.contains(*id))
        .map(|id| format!("{when}: the acknowledged start of {id} is not in the database"));
    let events = ledger
        .events
        .iter()
        .filter(|e| !snap.raised.contains(*e))
        .map(|(id, tag)| format!("{when}: the acknowledged event {tag} is not in {id}'s history"));
    let signals = ledger
        .signals
        .iter()
        .filter(|s| !snap.signals.contains(&s.value))
        .map(|s| {
            format!(
                "{when}: the acknowledged signal {} +{} is not in the database",
                s.key, s.value
            )
        });
    let deploys = ledger
        .deploys
        .iter()
        .filter(|d| !snap.components.contains(*d))
        .map(|d| format!("{when}: the acknowledged deploy of {d} is not in the database"));
    let gone = before
        .into_iter()
        .flat_map(|b| b.completed.difference(&snap.completed))
        .map(|key| format!("{when}: the completion of {key} recorded earlier is gone"));
    let twice = snap
        .completed_more_than_once
        .iter()
        .map(|(key, n)| format!("{when}: {key} has {n} activity_completed rows"));
    starts
        .chain(events)
        .chain(signals)
        .chain(deploys)
        .chain(gone)
        .chain(twice)
        .collect()
}

/// One host process (by its number: the `incarnation` its activities report), in the epochs
/// of the effects server: the test moves to the next epoch right after each kill (and, in a
/// cluster, each freeze and thaw), then reads the database. With one host, process `n` lives
/// in epoch `n` and is killed at its end.
#[derive(Debug, Default, Clone, Copy)]
pub struct Life {
    /// The epoch it started in.
    pub started: u64,
    /// The epoch it was killed at the end of; hits arriving later were sent before.
    pub killed: Option<u64>,
    /// The epochs it was frozen and thawed at the end of.
    pub frozen: Option<(u64, u64)>,
}

impl Life {
    /// Whether a hit from this process that arrived in epoch `arrived` and found its call's
    /// completion recorded (recorded by the end of epoch `recorded`, if a snapshot saw it)
    /// shows the process ran a call again after its completion was recorded: it ran on when
    /// the hit arrived; or it had been killed (or frozen) and the completion was recorded
    /// before. A process thawed after its leases ran out may finish, once, a run it began
    /// before it froze, whose call another node completed meanwhile: not counted.
    pub fn reran(&self, arrived: u64, recorded: Option<u64>) -> bool {
        if let Some(killed) = self.killed
            && arrived > killed
        {
            return recorded.is_some_and(|i| i <= killed);
        }
        if let Some((frozen, _)) = self.frozen
            && arrived > frozen
        {
            return recorded.is_some_and(|i| i <= frozen);
        }
        true
    }
}

/// What the kills did.
#[derive(Default)]
pub struct Kills {
    /// How many incarnations were killed (in a cluster: kills, freezes and thaws).
    pub count: u64,
    /// The database when the last one had been killed.
    pub previous: Option<Snapshot>,
    /// For each recorded completion, the first epoch by whose end it was recorded (none is
    /// ever gone again: checked after each kill).
    pub recorded_in: HashMap<String, u64>,
    /// Each host process, by number.
    pub lives: HashMap<u64, Life>,
    /// The hits held unanswered while their incarnation was killed.
    pub held: Vec<Hit>,
    /// Kills that were to wait for an activity in flight and found none in [`HOLD_WAIT`].
    pub nothing_in_flight: usize,
    /// Lost work found after a kill.
    pub lost: Vec<String>,
}

impl Kills {
    /// Notes what the database held right after epoch `epoch` ended (the effects server is in
    /// the next one already): lost work, and the completions recorded by then.
    pub fn record(&mut self, epoch: u64, ledger: &Ledger, snap: Snapshot, when: &str) {
        self.lost
            .extend(lost(ledger, &snap, self.previous.as_ref(), when));
        for key in &snap.completed {
            self.recorded_in.entry(key.clone()).or_insert(epoch);
        }
        self.count += 1;
        self.previous = Some(snap);
    }
}

/// Counters the load signals (keys `load-0`, …), and signals to each per round.
pub const LOAD_COUNTERS: usize = 2;
pub const SIGNALS_PER_ROUND: usize = 2;
/// A component is deployed every this many rounds.
pub const DEPLOY_EVERY: usize = 4;

/// The `fixtures-drift` component with a custom section naming `round`: valid, and with a
/// digest of its own (its names serve nothing the load starts).
pub fn component_variant(round: usize) -> Vec<u8> {
    let mut bytes = std::fs::read(super::component("fixtures-drift")).expect("a built component");
    let name = b"weft-load";
    let payload = round.to_le_bytes();
    // A custom section: id 0, its size, then its name (length-prefixed) and payload.
    let size = 1 + name.len() + payload.len();
    assert!(size < 128 && name.len() < 128, "one-byte LEB128 sizes");
    bytes.extend([0, size as u8, name.len() as u8]);
    bytes.extend(name);
    bytes.extend(payload);
    bytes
}

/// Round `round`'s share of the entity operations and deploys, as local tasks.
fn launch_round(client: &Arc<Client>, round: usize) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for k in 0..LOAD_COUNTERS {
        let values = (0..SIGNALS_PER_ROUND)
            .map(|i| (round * 1000 + k * 100 + i + 1) as i64)
            .collect();
        let key = format!("load-{k}");
        tasks.push(tokio::task::spawn_local(drive_signals(
            client.clone(),
            key,
            values,
        )));
    }
    if round.is_multiple_of(DEPLOY_EVERY) {
        let client = client.clone();
        tasks.push(tokio::task::spawn_local(async move {
            client.deploy(0, component_variant(round)).await;
        }));
    }
    tasks
}

/// Waits until every counter the ledger signalled has applied what it was sent (read through
/// `weft`); what is wrong with each (`histories::signal_problems`).
pub async fn counter_problems(weft: &Weft, ledger: &Ledger) -> Vec<String> {
    let mut keys: Vec<&str> = ledger.signals.iter().map(|s| s.key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut problems = Vec::new();
    for key in keys {
        let path = format!("/entities/counter/{key}");
        let what = format!("counter {key} has applied every signal");
        let entity = weft
            .eventually(&what, async || {
                let (status, body) = weft.request(reqwest::Method::GET, &path, None).await;
                (status == 200 && body["pendingOperations"] == 0).then_some(body)
            })
            .await;
        let history = format!("{path}/history?top=1000");
        let (status, log) = weft.request(reqwest::Method::GET, &history, None).await;
        assert_eq!(status, 200, "{log}");
        let ops = log["operations"].as_array().cloned().unwrap_or_default();
        let sent: Vec<Signal> = ledger
            .signals
            .iter()
            .filter(|s| s.key == key)
            .cloned()
            .collect();
        problems.extend(super::histories::signal_problems(key, &entity, &ops, &sent));
    }
    problems
}

/// Drives the plans while crashing the host `kills` times: `crash` kills it (SIGKILL, or a
/// power cut), and it is restarted on what survived.
pub async fn run_load(
    weft: &mut Weft,
    effects: &EffectsServer,
    client: &Arc<Client>,
    plans: &[Plan],
    kills: usize,
    rng: &mut Rng,
    crash: &mut dyn FnMut(&mut Weft),
) -> Kills {
    let mut done = Kills::default();
    let mut launched = 0;
    // The clients run as local tasks on this thread: the kit's polling helpers take async
    // closures, whose futures rustc cannot yet prove `Send` for `tokio::spawn`. They pause while
    // the host is killed and restarted, which is when they could not reach it anyway. Starting,
    // killing and restarting the process block this thread (the test's own, not one of the
    // runtime's workers): the effects server keeps serving on the workers meanwhile.
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let mut tasks = Vec::new();
            for round in 0..kills {
                let in_flight = rng.range(0, 1) == 0;
                if in_flight {
                    // The next activity to report its effect is held unanswered, so it cannot
                    // return: this kill lands while it is in flight.
                    effects.hold_next();
                }
                // This round's share of the load joins what is still going.
                let due = plans.len() * (round + 1) / kills;
                while launched < due {
                    let plan = plans[launched].clone();
                    tasks.push(tokio::task::spawn_local(drive(client.clone(), plan)));
                    launched += 1;
                }
                tasks.extend(launch_round(client, round));
                // A random moment: this sleep picks when the kill lands, it waits for nothing.
                tokio::time::sleep(Duration::from_millis(rng.range(20, 250))).await;
                let mut held = None;
                if in_flight {
                    // Usually held by now; else the kill waits for the next activity.
                    held = effects.held(HOLD_WAIT).await;
                    done.nothing_in_flight += usize::from(held.is_none());
                }
                crash(weft);
                effects.release();
                done.held.extend(held);
                let incarnation = effects.incarnation();
                effects.next_incarnation();
                // Read after the kill: everything in it was acknowledged by a process now dead.
                let ledger = client.ledger();
                let snap = snapshot(&weft.db());
                let when = format!("after kill {}", round + 1);
                assert_eq!(done.count, incarnation);
                done.record(incarnation, &ledger, snap, &when);
                let life = Life {
                    started: incarnation,
                    killed: Some(incarnation),
                    frozen: None,
                };
                done.lives.insert(incarnation, life);
                weft.set_env("EffectsIncarnation", &(incarnation + 1).to_string());
                weft.restart();
            }
            let last = Life {
                started: done.count,
                ..Life::default()
            };
            done.lives.insert(done.count, last);
            while launched < plans.len() {
                let plan = plans[launched].clone();
                tasks.push(tokio::task::spawn_local(drive(client.clone(), plan)));
                launched += 1;
            }
            for task in tasks {
                if let Err(e) = task.await {
                    let log = weft.log();
                    let tail: Vec<&str> = log.lines().rev().take(80).collect();
                    let tail: Vec<&str> = tail.into_iter().rev().collect();
                    panic!(
                        "a client task failed: {e}\nthe end of weft's log:\n{}",
                        tail.join("\n")
                    );
                }
            }
        })
        .await;
    done
}

/// The figures of the effects checks.
pub struct Effects {
    pub duplicates: usize,
    /// Calls that ran more than once.
    pub reruns: usize,
    pub extra_runs: usize,
    /// Runs repeated by one incarnation.
    pub same_incarnation: usize,
    /// Hits that arrived after the process that sent them was killed.
    pub late: usize,
}

/// Checks 4 to 6 over every effect the server saw.
pub fn check_effects(
    hits: &[Hit],
    kills: &Kills,
    last: &Snapshot,
    problems: &mut Vec<String>,
) -> Effects {
    let recorded_in = &kills.recorded_in;
    let mut duplicates = 0;
    for hit in hits {
        let (key, n) = (hit.key.as_str(), hit.incarnation);
        if hit.already_recorded.is_none() {
            problems.push(format!(
                "{key}: could not tell whether its completion was recorded as its effect arrived"
            ));
        }
        let Some(life) = kills.lives.get(&n) else {
            problems.push(format!("{key}: its effect came from unknown process {n}"));
            continue;
        };
        let recorded = recorded_in.get(key).copied();
        let problem = match recorded {
            Some(i) if life.started > i => format!(
                "{key} ({}) ran in incarnation {n}, started in epoch {} although its completion \
                 was recorded by the end of epoch {i}",
                hit.activity, life.started
            ),
            _ if hit.already_recorded == Some(true) && life.reran(hit.arrived_in, recorded) => {
                format!(
                    "{key} ({}) ran in incarnation {n} after its completion was recorded (the \
                     database held it when the effect arrived, in epoch {})",
                    hit.activity, hit.arrived_in
                )
            }
            _ => continue,
        };
        duplicates += 1;
        problems.push(problem);
    }
    let mut runs: HashMap<&str, usize> = HashMap::new();
    let mut per_incarnation: HashMap<(&str, u64), usize> = HashMap::new();
    for hit in hits {
        *runs.entry(hit.key.as_str()).or_default() += 1;
        *per_incarnation
            .entry((hit.key.as_str(), hit.incarnation))
            .or_default() += 1;
        // 6. No effect without a completion.
        if !last.completed.contains(&hit.key) {
            problems.push(format!(
                "{} ({}) made its effect in incarnation {}, yet no completion of it is recorded",
                hit.key, hit.activity, hit.incarnation
            ));
        }
    }
    // Every recorded completion had its effect.
    for key in &last.completed {
        if !runs.contains_key(key.as_str()) {
            problems.push(format!(
                "{key} completed without reaching the effects server"
            ));
        }
    }
    // 5. Kills landed while activities were in flight, and those ran again (in another
    // process, after the kill).
    for held in &kills.held {
        let again = hits.iter().any(|h| {
            h.key == held.key && h.incarnation != held.incarnation && h.arrived_in > held.arrived_in
        });
        if !again {
            problems.push(format!(
                "{} ({}) was in flight when incarnation {} was killed, yet never ran again",
                held.key, held.activity, held.incarnation
            ));
        }
    }
    if kills.count > 1 && kills.held.is_empty() {
        problems.push("no kill landed while an activity was in flight".into());
    }
    Effects {
        duplicates,
        reruns: runs.values().filter(|&&n| n > 1).count(),
        extra_runs: runs.values().map(|n| n - 1).sum(),
        same_incarnation: per_incarnation.values().map(|n| n - 1).sum(),
        late: hits
            .iter()
            .filter(|h| {
                let killed = kills.lives.get(&h.incarnation).and_then(|l| l.killed);
                killed.is_some_and(|k| h.arrived_in > k)
            })
            .count(),
    }
}

/// Checks 1 to 6 once the load has run (every instance is awaited), reading the database at
/// the end with `read` (any node's `weft` answers); prints the figures line
/// (`{label}: kills=… lost=… …`). The problems, the lost work, and the final ledger.
#[allow(clippy::too_many_arguments, reason = "one call per torture test")]
pub async fn verdict(
    weft: &Weft,
    effects: &EffectsServer,
    client: &Client,
    plans: &[Plan],
    done: &Kills,
    seed: u64,
    kills: usize,
    began: tokio::time::Instant,
    label: &str,
    read: &dyn Fn() -> Snapshot,
) -> (Vec<String>, Vec<String>, Ledger) {
    // 2. Every instance reaches its expected output.
    let mut problems: Vec<String> = Vec::new();
    for plan in plans {
        let status = weft.finished(&plan.id).await;
        if status["runtimeStatus"] != "Completed" || status["output"] != plan.expected_output() {
            problems.push(format!(
                "{} ended {} with output {} (expected {}): {}",
                plan.id,
                status["runtimeStatus"],
                status["output"],
                plan.expected_output(),
                status["failure"]
            ));
        }
    }

    // 1. Nothing acknowledged is lost, at the end either; 3. each call completed once; each
    // entity operation applied at least once and at most once per request carrying it.
    let ledger = client.ledger();
    problems.extend(counter_problems(weft, &ledger).await);
    let last = read();
    let mut lost_work = done.lost.clone();
    lost_work.extend(lost(&ledger, &last, done.previous.as_ref(), "at the end"));
    let expected_activities: usize = plans.iter().map(Plan::activities).sum();
    if last.completion_rows != expected_activities {
        problems.push(format!(
            "{} activity_completed rows ({} calls) recorded, {expected_activities} scheduled by \
             the plan",
            last.completion_rows,
            last.completed.len()
        ));
    }

    // The codes were derived from `{instance}/{handle}`: the idempotency key the activity saw
    // is the key the completions are matched by.
    for (key, output) in &last.outputs {
        if key.starts_with("verify-") && output.as_u64() != Some(code_for(key)) {
            problems.push(format!(
                "send-code for {key} returned {output}, not the code for that idempotency key"
            ));
        }
    }

    // 4 to 6: no run after a recorded completion, kills in flight, no effect without a
    // completion. The server has seen every effect: every call has completed.
    let hits = effects.hits();
    let figures = check_effects(&hits, done, &last, &mut problems);

    println!(
        "{label}: kills={kills} instances={} events={} signals={} deploys={} lost={} duplicate_effects={} reruns={} \
         (extra runs {}, {} within one incarnation, {} arrived after their process was killed) \
         held={} (kills that found nothing in flight: {}) activities={} effects={} seed={seed} \
         wall={:.1}s",
        ledger.starts.len(),
        ledger.events.len(),
        ledger.signals.len(),
        ledger.deploys.len(),
        lost_work.len(),
        figures.duplicates,
        figures.reruns,
        figures.extra_runs,
        figures.same_incarnation,
        figures.late,
        done.held.len(),
        done.nothing_in_flight,
        last.completion_rows,
        hits.len(),
        began.elapsed().as_secs_f64()
    );
    (problems, lost_work, ledger)
}
