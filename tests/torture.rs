//! Crash torture: the real `weft` binary on a SQLite file, a mixed load driven over HTTP, and
//! SIGKILLs, each followed by a restart on the same port and database. Each kill lands at a
//! random moment; every other one (by the seed) then also waits until the effects server holds
//! an activity's request unanswered, so it lands while that activity is in flight.
//!
//! The load, from `workflows/torture`: verifications (an activity "sends" a code, the test reads
//! it from the history and answers with events: some wrong answers, then the right one),
//! sequences (three activities one after another) and fan-outs (up to 20 activities in
//! parallel, joined). Every activity reports its side effect to a fake effects server
//! (`common::effects`) with its idempotency key and the number of the host process (the
//! incarnation) that ran it; the server also asks the database, as each report arrives, whether
//! that call's completion is already recorded.
//!
//! The client keeps a ledger of every start and every raised event that got a `202`; a request
//! that fails because the host is down is sent again (a start with the same id and input is
//! idempotent; an event counts only once it got its `202`). Checked:
//!
//! 1. Nothing acknowledged is lost: right after each kill (host dead) and at the end, every
//!    acknowledged start is in `instances`, every acknowledged event is in its instance's
//!    history (each raise carries a unique tag in its payload), and no completion recorded
//!    before is gone.
//! 2. Every instance reaches its expected output.
//! 3. Each call is completed once: right after each kill and at the end, no (instance, handle)
//!    has more than one `activity_completed` row (SQL over the history), and at the end there
//!    are exactly as many rows as the plan schedules activities.
//! 4. No activity runs again once its completion is recorded, in any incarnation, the last one
//!    included: an effect from incarnation `n` fails the run if the completion was in the
//!    database when incarnation `n - 1` was killed, or if the completion was already recorded
//!    when the effect arrived and it came from the running process (or from a killed process
//!    that had itself recorded that completion). Runs repeated *before* the completion was
//!    recorded are allowed (activities are at least once) and only counted.
//! 5. Kills did land while activities were in flight: every activity held when its process was
//!    killed ran again in a later incarnation, and at least one was held (so `reruns > 0`, at
//!    CI's size too: the hold makes it certain rather than likely).
//! 6. No effect without a completion: every idempotency key the effects server saw has its
//!    `activity_completed` at the end.
//!
//! It prints the seed first and one line of figures at the end (`torture: kills=… instances=…
//! events=… lost=… duplicate_effects=… reruns=… held=…`). CI runs a fixed seed (`SEED`);
//! `WEFT_TORTURE_SEED=N` repeats seed `N`'s plan and timings, `WEFT_TORTURE_SEED=random` picks
//! a fresh one (the moments the kills land at still vary with the machine).
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
use common::load::*;
use common::{Options, Weft};
use std::sync::{Arc, Mutex};

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
    let mut options = Options::new(&["torture", "fixtures"]).env("EffectsIncarnation", "0");
    if env_number("WEFT_TORTURE_EVICT", 0) != 0 {
        options = options.evict_always();
    }
    for (k, v) in effects.settings() {
        options = options.env(&k, &v);
    }
    let mut weft = Weft::start(options);
    let db = weft.db();
    let conn = Mutex::new(None);
    effects.check_recorded(move |key| {
        let mut conn = conn.lock().unwrap();
        if conn.is_none() {
            *conn = open_read_only(&db).ok();
        }
        is_recorded(conn.as_ref()?, key).ok()
    });
    let client = Arc::new(Client::new(&weft.url));

    let done = run_load(
        &mut weft,
        &effects,
        &client,
        &plans,
        kills,
        &mut rng,
        &mut Weft::kill,
    )
    .await;

    let (mut problems, lost_work, ledger) = verdict(
        &weft,
        &effects,
        &client,
        &plans,
        &done,
        seed,
        kills,
        began,
        "torture",
        &|| snapshot(&weft.db()),
    )
    .await;
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
