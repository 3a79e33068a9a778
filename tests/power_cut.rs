//! Power cuts: the crash torture's load and checks (`tests/torture.rs`, `common::load`), with
//! the database and the compiled-component cache on the power-cut file system (the
//! `powercut` crate). Each crash there is a SIGKILL *and* the loss of every write that was
//! not fsynced; every other cut also tears the writes still waiting (a prefix of them
//! reaches the disk, the WAL's last frames included). After each cut the database must open
//! and pass `PRAGMA integrity_check`, and everything acknowledged before it must be in it.
//!
//! The harness is shown able to fail: with `--synchronous off` the same cuts lose
//! acknowledged starts, and the test asserts that they do. And an fsync that fails (`EIO`)
//! must not be acknowledged, must stop the host from writing on as if it were durable, and
//! the host must come back consistent on what the disk holds.
//!
//! Needs `/dev/fuse` and `fusermount3` (Debian's `fuse3`); fails saying so without them.
//! The default size is CI's; a long run:
//!
//! ```sh
//! WEFT_POWER_CUTS=200 WEFT_TORTURE_INSTANCES=600 cargo test --test power_cut -- --nocapture
//! ```

mod common;

use common::effects::EffectsServer;
use common::load::*;
use common::{Options, Weft};
use powercut::{Cut, PowerCut};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Runs the file system when this binary is started as its process (see `powercut`).
#[test]
fn power_cut_daemon() {
    powercut::serve_if_asked();
}

/// How many power cuts, by default (CI).
const CUTS: usize = 16;
/// How many instances, by default (CI).
const CUT_INSTANCES: usize = 40;

/// `PRAGMA integrity_check` of the database, read-only; `None` when it is sound.
fn integrity_problem(db: &Path) -> Option<String> {
    let conn = match open_read_only(db) {
        Ok(c) => c,
        Err(e) => return Some(format!("the database does not open: {e}")),
    };
    match conn.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0)) {
        Ok(ok) if ok == "ok" => None,
        Ok(report) => Some(format!("integrity_check: {report}")),
        Err(e) => Some(format!("integrity_check failed: {e}")),
    }
}

/// Whether the completion for `key` is recorded, asked on a fresh connection: the file
/// system is remounted at every cut, so no connection outlives one. Retried while it is
/// being remounted.
fn recorded_now(db: &Path, key: &str) -> Option<bool> {
    for _ in 0..200 {
        if let Ok(conn) = open_read_only(db)
            && let Ok(answer) = is_recorded(&conn, key)
        {
            return Some(answer);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    None
}

fn options(effects: &EffectsServer, data: &Path) -> Options {
    let mut options = Options::new(&["torture", "fixtures"])
        .env("EffectsIncarnation", "0")
        .data_dir(data);
    for (k, v) in effects.settings() {
        options = options.env(&k, &v);
    }
    options
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_work_survives_power_cuts_and_recorded_activities_never_run_again() {
    let began = tokio::time::Instant::now();
    let cuts = env_number("WEFT_POWER_CUTS", CUTS as u64) as usize;
    let instances = env_number("WEFT_TORTURE_INSTANCES", CUT_INSTANCES as u64) as usize;
    let seed = seed();
    println!(
        "power-cut: seed {seed} (WEFT_TORTURE_SEED={seed} repeats it), {cuts} cuts, {instances} instances"
    );
    let mut rng = Rng::new(seed);
    let plans: Vec<Plan> = (0..instances).map(|i| Plan::random(i, &mut rng)).collect();

    let mut pc = PowerCut::temp();
    let effects = EffectsServer::with_latency(EFFECT_LATENCY_MS).await;
    let mut weft = Weft::start(options(&effects, pc.mountpoint()));
    let db = weft.db();
    let check_db = db.clone();
    effects.check_recorded(move |key| recorded_now(&check_db, key));
    let client = Arc::new(Client::new(&weft.url));

    let mut integrity = Vec::new();
    let mut round = 0u64;
    let mut crash = |w: &mut Weft| {
        round += 1;
        // Every other cut tears what was waiting to be written.
        let how = if round.is_multiple_of(2) {
            Cut::Torn(seed ^ round)
        } else {
            Cut::Clean
        };
        pc.cut(how, || w.kill());
        if let Some(problem) = integrity_problem(&db) {
            integrity.push(format!("after cut {round} ({how:?}): {problem}"));
        }
    };
    let done = run_load(
        &mut weft, &effects, &client, &plans, cuts, &mut rng, &mut crash,
    )
    .await;

    let (mut problems, lost_work, ledger) = verdict(
        &weft,
        &effects,
        &client,
        &plans,
        &done,
        seed,
        cuts,
        began,
        "power-cut",
        &|| snapshot(&weft.db()),
    )
    .await;
    let fs = pc.stats();
    println!(
        "power-cut: file system: fsyncs={} dir_fsyncs={} discarded_changes={} \
         discarded_bytes={} torn_writes={}",
        fs.fsyncs, fs.dir_fsyncs, fs.discarded_changes, fs.discarded_bytes, fs.torn_writes
    );
    problems.splice(0..0, lost_work);
    problems.splice(0..0, integrity);
    if fs.discarded_changes == 0 {
        problems.push("no cut discarded anything: the harness cut nothing".into());
    }
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

/// The instance ids in the database; none when not even its tables survived.
fn instance_ids(db: &Path) -> Vec<String> {
    let Ok(conn) = open_read_only(db) else {
        return Vec::new();
    };
    let Ok(mut stmt) = conn.prepare("SELECT id FROM instances") else {
        return Vec::new();
    };
    stmt.query_map([], |r| r.get::<_, String>(0))
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

/// Starts `n` sequences named `{prefix}-{i}`, each until acknowledged; their ids.
async fn start_all(client: &Client, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let plan = Plan {
            id: format!("{prefix}-{i}"),
            kind: Kind::Sequence,
        };
        client.start(&plan).await;
        ids.push(plan.id);
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_synchronous_off_a_power_cut_loses_acknowledged_work() {
    let mut pc = PowerCut::temp();
    let effects = EffectsServer::with_latency(0).await;
    let mut weft = Weft::start(options(&effects, pc.mountpoint()).arg("--synchronous=off"));
    let client = Client::new(&weft.url);
    let ids = start_all(&client, "off", 10).await;
    pc.cut(Cut::Clean, || weft.kill());
    // A read-only look: what survived, if anything (not even the tables may have).
    let kept = instance_ids(&weft.db());
    let lost: Vec<&String> = ids.iter().filter(|id| !kept.contains(*id)).collect();
    assert!(
        !lost.is_empty(),
        "with --synchronous off the cut lost none of {} acknowledged starts: the harness is \
         not cutting anything",
        ids.len()
    );
    println!(
        "power-cut: synchronous=off lost {} of {} acknowledged starts",
        lost.len(),
        ids.len()
    );
    // The same with the default keeps them all.
    let mut pc = PowerCut::temp();
    let mut full = Weft::start(options(&effects, pc.mountpoint()));
    let client = Client::new(&full.url);
    let ids = start_all(&client, "full", 10).await;
    pc.cut(Cut::Clean, || full.kill());
    let snap = snapshot(&full.db());
    let lost: Vec<&String> = ids
        .iter()
        .filter(|id| !snap.instances.contains(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "with --synchronous full the cut lost {lost:?}"
    );
}

/// One start, sent once: its status and body (`None` when the host did not answer).
async fn start_once(client: &Client, id: &str) -> Option<(u16, serde_json::Value)> {
    let path = format!("/orchestrations/sequence?instanceId={id}");
    let input = serde_json::json!({ "instance": id });
    client
        .send(reqwest::Method::POST, &path, Some(&input))
        .await
}

/// A request answered `503 store_io_error`: not acknowledged.
fn assert_refused(what: &str, answer: Option<(u16, serde_json::Value)>) {
    let (status, body) = answer.unwrap_or_else(|| panic!("the host answers {what}"));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("store_io_error")),
        "{what} whose fsync failed got {status} {body}"
    );
}

/// One deploy, sent once: its status and body.
async fn deploy_once(client: &Client, bytes: Vec<u8>) -> Option<(u16, serde_json::Value)> {
    let resp = client
        .http
        .post(format!("{}/components", client.url))
        .header("content-type", "application/wasm")
        .body(bytes)
        .send()
        .await
        .ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.json().await.ok()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fsync_is_not_acknowledged_and_the_host_recovers_consistent() {
    use reqwest::Method;
    use serde_json::json;
    let mut pc = PowerCut::temp();
    let effects = EffectsServer::with_latency(0).await;
    let mut weft = Weft::start(options(&effects, pc.mountpoint()));
    let client = Client::new(&weft.url);
    let waiting = Plan {
        id: "waiting".into(),
        kind: Kind::Verify { wrong: 0 },
    };
    client.start(&waiting).await;
    let history = weft.history_has(&waiting.id, "activity_completed").await;
    let code = history
        .iter()
        .find_map(|e| (e["type"] == "activity_completed").then(|| e["output"].as_u64()))
        .flatten()
        .expect("the code sent");
    for id in start_all(&client, "before", 2).await {
        weft.finished(&id).await;
    }
    let components_before = snapshot(&weft.db()).components.len();

    // Quiet now: the next fsync is the commit of the next request, each of a kind that is
    // acknowledged with a 2xx. Each is refused and not kept.
    pc.fail_next_fsyncs(1);
    assert_refused("a start", start_once(&client, "refused").await);
    pc.fail_next_fsyncs(1);
    let event = json!({ "code": code, "raise": "refused" });
    let path = format!("/instances/{}/raiseEvent/answer", waiting.id);
    assert_refused(
        "an event",
        client.send(Method::POST, &path, Some(&event)).await,
    );
    pc.fail_next_fsyncs(1);
    let signal = "/entities/counter/fsync?op=add";
    assert_refused(
        "an entity operation",
        client.send(Method::POST, signal, Some(&json!(1))).await,
    );
    // A deploy fsyncs its compiled cache file first (a failure there only costs the cache),
    // then its commit.
    pc.fail_next_fsyncs(2);
    assert_refused("a deploy", deploy_once(&client, component_variant(1)).await);
    pc.fail_next_fsyncs(0);

    // An activity's result has no one to answer: its commit fails, and it is made again from
    // the result in memory, so the instance completes without a restart.
    effects.hold_next();
    let background = Plan {
        id: "background".into(),
        kind: Kind::Sequence,
    };
    client.start(&background).await;
    assert!(effects.held(HOLD_WAIT).await.is_some(), "the activity runs");
    pc.fail_next_fsyncs(1);
    effects.release();
    let status = weft.finished(&background.id).await;
    assert_eq!(status["runtimeStatus"], "Completed", "{status}");
    assert!(
        weft.log().contains("cannot record the activity's result"),
        "the result's commit was the one whose fsync failed"
    );
    assert_eq!(
        pc.stats().failed_fsyncs,
        6,
        "every failure asked for was served"
    );

    // The host goes on: the same kinds of request are acknowledged now.
    let after = start_all(&client, "after", 2).await;
    assert!(client.raise(&waiting.id, code, "right").await);
    client.signal(0, "fsync", 2).await;
    client.deploy(0, component_variant(2)).await;

    pc.cut(Cut::Clean, || weft.kill());
    if let Some(problem) = integrity_problem(&weft.db()) {
        panic!("after the failed fsyncs and a cut: {problem}");
    }
    let snap = snapshot(&weft.db());
    let lost = lost(&client.ledger(), &snap, None, "after the cut");
    assert!(lost.is_empty(), "{lost:#?}");
    assert!(
        !snap.instances.contains("refused"),
        "a refused start came back"
    );
    let raised: Vec<_> = snap
        .raised
        .iter()
        .filter(|(id, _)| id == "waiting")
        .collect();
    assert_eq!(raised, [&("waiting".to_string(), "right".to_string())]);
    assert!(
        !snap.signals.contains(&1),
        "a refused entity operation came back"
    );
    assert_eq!(
        snap.components.len(),
        components_before + 1,
        "only the acknowledged deploy is stored"
    );

    weft.restart();
    for id in after.iter().chain([&waiting.id, &background.id]) {
        let status = weft.finished(id).await;
        assert_eq!(status["runtimeStatus"], "Completed", "{id}: {status}");
    }
    let problems = counter_problems(&weft, &client.ledger()).await;
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Starts a sequence whose input carries `pad` bytes of padding, once; `true` if it was
/// acknowledged.
async fn start_padded(client: &Client, id: &str, pad: usize) -> bool {
    let path = format!("/orchestrations/sequence?instanceId={id}");
    let input = serde_json::json!({ "instance": id, "pad": "x".repeat(pad) });
    let answer = client
        .send(reqwest::Method::POST, &path, Some(&input))
        .await;
    matches!(answer, Some((202, _)))
}

/// The cut lands while a commit waits for its fsync: its WAL frames were written and had not
/// reached the disk, and a torn cut keeps some of them whole and a prefix of the next (a
/// commit frame among them, or not). Each time the database opens, passes its integrity
/// check and holds everything acknowledged before the tear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_wal_keeps_everything_acknowledged_before_the_tear() {
    const ROUNDS: u64 = 4;
    let mut pc = PowerCut::temp();
    let effects = EffectsServer::with_latency(0).await;
    let mut weft = Weft::start(options(&effects, pc.mountpoint()));
    let mut acked = Vec::new();
    let mut torn = 0;
    for round in 0..ROUNDS {
        let client = Arc::new(Client::new(&weft.url));
        acked.extend(start_all(&client, &format!("round-{round}"), 3).await);
        // A start of many pages (its input is padded): many frames, all waiting.
        pc.stall_next_fsync();
        let id = format!("torn-{round}");
        let request = tokio::spawn({
            let client = client.clone();
            async move { start_padded(&client, &id, 64 << 10).await }
        });
        let stalled = common::poll_until(async || (pc.stalled() == 1).then_some(())).await;
        assert!(stalled.is_some(), "the big start's commit never fsynced");
        let before = pc.stats().torn_writes;
        pc.cut(Cut::Torn(round + 1), || weft.kill());
        torn += pc.stats().torn_writes - before;
        assert!(
            !request.await.expect("the request task"),
            "a start whose fsync never returned was acknowledged"
        );
        if let Some(problem) = integrity_problem(&weft.db()) {
            panic!("after torn cut {round}: {problem}");
        }
        let snap = snapshot(&weft.db());
        let lost: Vec<&String> = acked
            .iter()
            .filter(|id| !snap.instances.contains(*id))
            .collect();
        assert!(lost.is_empty(), "the torn cut {round} lost {lost:?}");
        weft.restart();
    }
    assert!(torn > 0, "none of {ROUNDS} cuts tore a write");
    for id in &acked {
        let status = weft.finished(id).await;
        assert_eq!(status["runtimeStatus"], "Completed", "{id}: {status}");
    }
    println!(
        "power-cut: {ROUNDS} cuts during a commit's fsync tore {torn} writes; {} acknowledged \
         starts all survived",
        acked.len()
    );
}
