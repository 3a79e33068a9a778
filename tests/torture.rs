//! Crash torture: the real `weft` binary on a SQLite file, a mixed load driven over HTTP, and
//! SIGKILLs at random moments, each followed by a restart on the same port and database.
//!
//! The load, from `workflows/torture`: verifications (an activity "sends" a code, the test reads
//! it from the history and answers with events: some wrong answers, then the right one),
//! sequences (three activities one after another) and fan-outs (up to 20 activities in
//! parallel, joined). Every activity reports its side effect to a fake effects server
//! (`common::effects`) with its idempotency key, tagged with the host incarnation it arrived in.
//!
//! The client keeps a ledger of every start and every raised event that got a `202`; a request
//! that fails because the host is down is sent again (a start with the same id and input is
//! idempotent; an event counts only once it got its `202`). Checked:
//!
//! 1. Nothing acknowledged is lost: right after each kill (host dead) and at the end, every
//!    acknowledged start is in `instances` and every acknowledged event is in its instance's
//!    history (each raise carries a unique tag in its payload).
//! 2. Every instance reaches its expected output.
//! 3. No activity whose completion was recorded runs again: the activity completions in the
//!    database right after kill `i` are recorded for good; an effect for one of them in a later
//!    incarnation is a duplicate. Runs repeated *before* the completion was recorded are allowed
//!    (activities are at least once) and only reported.
//!
//! It prints one line of figures (`torture: kills=… instances=… events=… lost=…
//! duplicate_effects=… reruns=…`) and the seed; `WEFT_TORTURE_SEED` repeats a seed's plan and timings
//! (the moments the kills land at still vary with the machine).
//!
//! The default size is CI's. A long run:
//!
//! ```sh
//! WEFT_TORTURE_KILLS=200 WEFT_TORTURE_INSTANCES=600 cargo test --test torture -- --nocapture
//! ```
//!
//! `WEFT_TORTURE_EVICT=1` runs the host with `--idle-timeout 0`, so every wake-up replays.

mod common;

use common::effects::EffectsServer;
use common::{Options, Weft};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How many times the host is killed, by default (CI).
const KILLS: usize = 24;
/// How many instances are started, by default (CI).
const INSTANCES: usize = 60;
/// The effects server answers each activity after 0 to this many milliseconds.
const EFFECT_LATENCY_MS: u64 = 40;
/// The most activities one fan-out runs.
const MAX_FAN_OUT: u64 = 20;

/// A small xorshift64* generator: the plan and the kill moments come from one seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}")),
        Err(_) => default,
    }
}

/// A seed from `WEFT_TORTURE_SEED`, else a fresh random one.
fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    match std::env::var("WEFT_TORTURE_SEED") {
        Ok(_) => env_number("WEFT_TORTURE_SEED", 0),
        Err(_) => std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish(),
    }
}

/// FNV-1a, 64 bits, as the `send-code` activity computes it.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The code `send-code` sends for the call with this idempotency key.
fn code_for(key: &str) -> u64 {
    1000 + fnv1a(key) % 9000
}

/// A wrong answer for `code`, the `k`th.
fn wrong(code: u64, k: u64) -> u64 {
    if code == 1000 + k { 9999 - k } else { 1000 + k }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
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
struct Plan {
    id: String,
    kind: Kind,
}

impl Plan {
    fn random(i: usize, rng: &mut Rng) -> Self {
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

    fn orchestration(&self) -> &'static str {
        match self.kind {
            Kind::Verify { .. } => "verify",
            Kind::Sequence => "sequence",
            Kind::FanOut { .. } => "fan-out",
        }
    }

    fn input(&self) -> Value {
        match self.kind {
            Kind::Verify { .. } => json!(format!("+1425{:07}", fnv1a(&self.id) % 10_000_000)),
            Kind::Sequence => json!({ "instance": self.id }),
            Kind::FanOut { count } => json!(count),
        }
    }

    /// How many activities the instance schedules.
    fn activities(&self) -> usize {
        match self.kind {
            Kind::Verify { .. } => 1,
            Kind::Sequence => 3,
            Kind::FanOut { count } => count as usize,
        }
    }

    /// The output the instance must complete with.
    fn expected_output(&self) -> Value {
        match self.kind {
            Kind::Verify { .. } => json!(true),
            Kind::Sequence => json!(["Hello Tokyo!", "Hello Seattle!", "Hello London!"]),
            Kind::FanOut { count } => json!((1..=count).map(|i| i * i).sum::<u64>()),
        }
    }
}

/// What the client got a `202` for.
#[derive(Debug, Default, Clone)]
struct Ledger {
    /// Instance ids whose start was acknowledged.
    starts: Vec<String>,
    /// (instance id, the raise's tag) of each acknowledged event.
    events: Vec<(String, String)>,
}

/// A client that survives the host going away: transport errors are answers too.
struct Client {
    http: reqwest::Client,
    url: String,
    ledger: Mutex<Ledger>,
}

impl Client {
    fn new(url: &str) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", common::TOKEN)
                .parse()
                .expect("header value"),
        );
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client");
        Self {
            http,
            url: url.to_string(),
            ledger: Mutex::default(),
        }
    }

    fn ledger(&self) -> Ledger {
        self.ledger.lock().unwrap().clone()
    }

    /// Status and JSON body, or `None` when the host could not be reached or went away.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Option<(u16, Value)> {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.ok()?;
        let status = resp.status().as_u16();
        let text = resp.text().await.ok()?;
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Some((status, value))
    }

    /// Starts an instance, again and again until it is acknowledged.
    async fn start(&self, plan: &Plan) {
        let path = format!(
            "/orchestrations/{}?instanceId={}",
            plan.orchestration(),
            plan.id
        );
        let input = plan.input();
        common::eventually(
            &format!("the start of {} is acknowledged", plan.id),
            async || {
                match self.send(reqwest::Method::POST, &path, Some(&input)).await {
                    Some((202, _)) => Some(()),
                    // The host is down or dying.
                    None => None,
                    Some((s, _)) if s >= 500 => None,
                    Some((s, body)) => panic!("start {}: {s} {body}", plan.id),
                }
            },
        )
        .await;
        self.ledger.lock().unwrap().starts.push(plan.id.clone());
    }

    /// Raises `answer` with `payload` (tagged `tag`) until it is acknowledged (`true`) or the
    /// instance has ended (`false`: an earlier attempt was recorded and finished it).
    async fn raise(&self, id: &str, code: u64, tag: &str) -> bool {
        let path = format!("/instances/{id}/raiseEvent/answer");
        let payload = json!({ "code": code, "raise": tag });
        let acked =
            common::eventually(&format!("event {tag} is acknowledged"), async || match self
                .send(reqwest::Method::POST, &path, Some(&payload))
                .await
            {
                Some((202, _)) => Some(true),
                Some((410, _)) => Some(false),
                None => None,
                Some((s, _)) if s >= 500 => None,
                Some((s, body)) => panic!("raise {tag}: {s} {body}"),
            })
            .await;
        if acked {
            let event = (id.to_string(), tag.to_string());
            self.ledger.lock().unwrap().events.push(event);
        }
        acked
    }

    /// The status with history, when the host answers.
    async fn status(&self, id: &str) -> Option<Value> {
        let path = format!("/instances/{id}?showHistory=true");
        match self.send(reqwest::Method::GET, &path, None).await? {
            (200, body) => Some(body),
            _ => None,
        }
    }
}

/// Drives one instance: starts it and, for a verification, answers it.
async fn drive(client: Arc<Client>, plan: Plan) {
    client.start(&plan).await;
    let Kind::Verify { wrong: wrongs } = plan.kind else {
        return;
    };
    let id = &plan.id;
    // The code the person "received": the output of `send-code` in the history.
    let code = common::eventually(&format!("{id} has sent its code"), async || {
        let status = client.status(id).await?;
        let history = status["historyEvents"].as_array()?;
        history
            .iter()
            .find(|e| e["type"] == "activity_completed")
            .and_then(|e| e["output"].as_u64())
    })
    .await;
    for k in 0..wrongs {
        let acked = client
            .raise(id, wrong(code, k), &format!("{id}/wrong-{k}"))
            .await;
        assert!(acked, "{id} ended before its right answer");
    }
    client.raise(id, code, &format!("{id}/right")).await;
}

/// What the database holds, read directly (read-only).
#[derive(Debug, Default)]
struct Snapshot {
    instances: HashSet<String>,
    /// `{instance}/{handle}` of every recorded activity completion.
    completed: HashSet<String>,
    /// (instance, tag) of every recorded `answer` event.
    raised: HashSet<(String, String)>,
    /// The recorded output of each completion, by key.
    outputs: HashMap<String, Value>,
}

fn snapshot(db: &Path) -> Snapshot {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open db");
    let mut snap = Snapshot::default();
    let mut stmt = conn.prepare("SELECT id FROM instances").expect("prepare");
    let ids = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .expect("query instances");
    for id in ids {
        snap.instances.insert(id.expect("row"));
    }
    let mut stmt = conn
        .prepare(
            "SELECT instance_id, event FROM history
             WHERE event LIKE '%activity_completed%' OR event LIKE '%event_raised%'",
        )
        .expect("prepare");
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .expect("query history");
    for row in rows {
        let (instance, event) = row.expect("row");
        let event: Value = serde_json::from_str(&event).expect("history event JSON");
        match event["type"].as_str() {
            Some("activity_completed") => {
                let handle = event["handle"].as_u64().expect("handle");
                let key = format!("{instance}/{handle}");
                let output = event["output"].as_str().expect("output");
                let output = serde_json::from_str(output).expect("output JSON");
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
    snap
}

/// What the ledger holds that the database does not.
fn lost(ledger: &Ledger, snap: &Snapshot, when: &str) -> Vec<String> {
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
    starts.chain(events).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_work_survives_kills_and_recorded_activities_never_run_again() {
    let began = tokio::time::Instant::now();
    let kills = env_number("WEFT_TORTURE_KILLS", KILLS as u64) as usize;
    let instances = env_number("WEFT_TORTURE_INSTANCES", INSTANCES as u64) as usize;
    let seed = seed();
    println!(
        "torture: seed {seed} (WEFT_TORTURE_SEED={seed} repeats it), {kills} kills, {instances} instances"
    );
    let mut rng = Rng::new(seed);
    let plans: Vec<Plan> = (0..instances).map(|i| Plan::random(i, &mut rng)).collect();

    let effects = EffectsServer::with_latency(EFFECT_LATENCY_MS).await;
    let mut options = Options::new(&["torture"]);
    if env_number("WEFT_TORTURE_EVICT", 0) != 0 {
        options = options.evict_always();
    }
    for (k, v) in effects.settings() {
        options = options.env(&k, &v);
    }
    // Starting, killing and restarting the process block this thread (the test's own, not one
    // of the runtime's workers): the effects server keeps serving on the workers meanwhile.
    let mut weft = Weft::start(options);
    let client = Arc::new(Client::new(&weft.url));

    let mut launched = 0;
    let mut problems: Vec<String> = Vec::new();
    let mut lost_work: Vec<String> = Vec::new();
    // `snapshots[i]`: the database when incarnation `i` had been killed.
    let mut snapshots: Vec<Snapshot> = Vec::new();
    // The clients run as local tasks on this thread: the kit's polling helpers take async
    // closures, whose futures rustc cannot yet prove `Send` for `tokio::spawn`. They pause while
    // the host is killed and restarted, which is when they could not reach it anyway.
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let mut tasks = Vec::new();
            for round in 0..kills {
                // This round's share of the load joins what is still going.
                let due = instances * (round + 1) / kills;
                while launched < due {
                    tasks.push(tokio::task::spawn_local(drive(
                        client.clone(),
                        plans[launched].clone(),
                    )));
                    launched += 1;
                }
                // A random moment: this sleep picks when the kill lands, it waits for nothing.
                tokio::time::sleep(Duration::from_millis(rng.range(20, 250))).await;
                weft.kill();
                let incarnation = effects.incarnation();
                effects.next_incarnation();
                // Read after the kill: everything in it was acknowledged by a process now dead.
                let ledger = client.ledger();
                let snap = snapshot(&weft.db());
                lost_work.extend(lost(&ledger, &snap, &format!("after kill {}", round + 1)));
                if let Some(before) = snapshots.last() {
                    for key in before.completed.difference(&snap.completed) {
                        lost_work.push(format!(
                            "after kill {}: the completion of {key} recorded earlier is gone",
                            round + 1
                        ));
                    }
                }
                assert_eq!(snapshots.len() as u64, incarnation);
                snapshots.push(snap);
                weft.restart();
            }
            while launched < instances {
                tasks.push(tokio::task::spawn_local(drive(
                    client.clone(),
                    plans[launched].clone(),
                )));
                launched += 1;
            }
            for task in tasks {
                task.await.expect("a client task failed");
            }
        })
        .await;

    // 2. Every instance reaches its expected output.
    for plan in &plans {
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

    // 1. Nothing acknowledged is lost, at the end either.
    let ledger = client.ledger();
    let last = snapshot(&weft.db());
    lost_work.extend(lost(&ledger, &last, "at the end"));
    if let Some(before) = snapshots.last() {
        for key in before.completed.difference(&last.completed) {
            lost_work.push(format!(
                "at the end: the completion of {key} recorded earlier is gone"
            ));
        }
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

    // 3. No effect for a completion already recorded when an earlier incarnation was killed.
    let hits = effects.hits();
    let mut recorded_in: HashMap<&str, u64> = HashMap::new();
    for (i, snap) in snapshots.iter().enumerate() {
        for key in &snap.completed {
            recorded_in.entry(key.as_str()).or_insert(i as u64);
        }
    }
    let mut duplicates = 0;
    for hit in &hits {
        if let Some(&i) = recorded_in.get(hit.key.as_str())
            && hit.incarnation > i
        {
            duplicates += 1;
            problems.push(format!(
                "{} ({}) ran in incarnation {} although its completion was recorded by the end of \
                 incarnation {i}",
                hit.key, hit.activity, hit.incarnation
            ));
        }
    }
    let mut runs: HashMap<&str, usize> = HashMap::new();
    for hit in &hits {
        *runs.entry(hit.key.as_str()).or_default() += 1;
    }
    let reruns = runs.values().filter(|&&n| n > 1).count();
    let extra_runs: usize = runs.values().map(|n| n - 1).sum();
    // Runs repeated inside one incarnation: no crash explains them (a request the killed
    // process left in flight can arrive after the bump, so this is reported, not failed).
    let mut per_incarnation: HashMap<(&str, u64), usize> = HashMap::new();
    for hit in &hits {
        *per_incarnation
            .entry((hit.key.as_str(), hit.incarnation))
            .or_default() += 1;
    }
    let same_incarnation: usize = per_incarnation.values().map(|n| n - 1).sum();
    // Every recorded completion had its effect, and every activity of the plan completed.
    for key in &last.completed {
        if !runs.contains_key(key.as_str()) {
            problems.push(format!(
                "{key} completed without reaching the effects server"
            ));
        }
    }
    let expected_activities: usize = plans.iter().map(Plan::activities).sum();
    if last.completed.len() != expected_activities {
        problems.push(format!(
            "{} activity completions recorded, {expected_activities} scheduled by the plan",
            last.completed.len()
        ));
    }

    println!(
        "torture: kills={kills} instances={} events={} lost={} duplicate_effects={duplicates} \
         reruns={reruns} (extra runs {extra_runs}, {same_incarnation} within one incarnation) activities={} effects={} seed={seed} wall={:.1}s",
        ledger.starts.len(),
        ledger.events.len(),
        lost_work.len(),
        last.completed.len(),
        hits.len(),
        began.elapsed().as_secs_f64()
    );
    problems.splice(0..0, lost_work);
    let log = weft.log();
    let tail: Vec<&str> = log.lines().rev().take(200).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    assert!(
        problems.is_empty(),
        "{} problem(s) (seed {seed}):\n{}\nthe end of weft's log:\n{}",
        problems.len(),
        problems.join("\n"),
        tail.join("\n")
    );
    assert_eq!(ledger.starts.len(), instances);
}
