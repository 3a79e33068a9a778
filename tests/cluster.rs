//! Several nodes on one PostgreSQL database (`weft serve --db postgres://… --node-id NAME
//! --lease SECS`): three real `weft serve` processes per test on a fresh database of a real
//! PostgreSQL server (one per test process, `common::cluster`). Any node answers any call; an
//! instance runs on one node at a time, the holder of its lease; a node killed (SIGKILL) or
//! frozen (SIGSTOP) loses its leases after `--lease` seconds and its work goes on elsewhere,
//! and a frozen node thawed writes nothing stale; a node restarted with its id takes its work
//! back; components, the callback secret and the manual clock are shared.
//!
//! The load of the kill and freeze tests is the crash torture's (`common::load`:
//! verifications answered with events, sequences, fan-outs, plus `add` signals to `counter`
//! entities over HTTP), spread over the nodes; the checks are the torture's too (nothing
//! acknowledged lost, each call completed once, no activity run again once its completion was
//! recorded: `load::check_effects`, over the processes' lives), plus well-formed histories
//! (`histories::malformed`) and exact counters (`histories::signal_problems`).
//!
//! Every wait is bounded: a kill's or a freeze's work must resume elsewhere within the lease
//! and [`TAKEOVER`] seconds, everything acknowledged must end within [`SETTLE`] seconds.

mod common;

use common::cluster::{Cluster, LEASE, node_id};
use common::effects::{EffectsServer, Hit};
use common::histories::malformed;
use common::jobs::{self, JobService};
use common::load::*;
use common::sms::SmsProvider;
use common::{Options, Weft};
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::{JoinHandle, LocalSet, spawn_local};
use tokio::time::Instant;

/// How long a request of the load's client may take before it tries another node.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Seconds past the lease within which a dead or frozen node's work goes on elsewhere.
const TAKEOVER: u64 = 10;
/// Seconds within which everything acknowledged ends, once the load is acknowledged.
const SETTLE: u64 = LEASE + 20;
/// How long every start, event and signal of the load may take to be acknowledged.
const LOAD_TIMEOUT: Duration = Duration::from_secs(120);
/// How soon an event raised on one node reaches an instance running on another.
const EVENT_LATENCY: Duration = Duration::from_secs(2);
/// How soon a node serves a component deployed on another.
const DEPLOY_LATENCY: Duration = Duration::from_secs(5);
/// Instances of the load (half before the kill or freeze, half after).
const INSTANCES: usize = 24;
/// Counters the load signals, and signals per counter and half.
const COUNTERS: usize = 3;
const SIGNALS: usize = 8;
/// The seed of the load's plan.
const CLUSTER_SEED: u64 = 20_261_203;

const PHONE: &str = "+14255550123";

fn load_options(effects: &EffectsServer) -> Options {
    let mut options = Options::new(&["torture", "fixtures"]);
    for (k, v) in effects.settings() {
        options = options.env(&k, &v);
    }
    options
}

/// A cluster running the load, with the effects server asking its database whether each
/// call's completion is recorded as the call's effect arrives.
async fn load_cluster(name: &str, effects: &EffectsServer, lease: u64) -> (Cluster, Arc<Client>) {
    let cluster = Cluster::with_lease(name, load_options(effects), lease).await;
    let reader = cluster.db.clone();
    effects.check_recorded(move |key| reader.is_recorded(key));
    let client = Arc::new(Client::cluster(&cluster.urls(), CLIENT_TIMEOUT));
    (cluster, client)
}

fn counter(k: usize) -> String {
    format!("c{k}")
}

fn ids(plans: &[Plan]) -> Vec<String> {
    plans.iter().map(|p| p.id.clone()).collect()
}

/// `n` verifications answered with `wrong` wrong codes first, named `{prefix}-{i}`.
fn verifications(prefix: &str, n: usize, wrong: u64) -> Vec<Plan> {
    (0..n)
        .map(|i| Plan {
            id: format!("{prefix}-{i}"),
            kind: Kind::Verify { wrong },
        })
        .collect()
}

/// Sequences and fan-outs, named `{prefix}-{i}`.
fn work(prefix: &str, n: usize) -> Vec<Plan> {
    (0..n)
        .map(|i| Plan {
            id: format!("{prefix}-{i}"),
            kind: if i % 2 == 0 {
                Kind::Sequence
            } else {
                Kind::FanOut { count: 6 }
            },
        })
        .collect()
}

/// Drives `plans` and, from `base` up, `SIGNALS` signals to each counter, as local tasks.
fn launch(client: &Arc<Client>, plans: &[Plan], base: i64) -> Vec<JoinHandle<()>> {
    let mut tasks: Vec<JoinHandle<()>> = plans
        .iter()
        .map(|p| spawn_local(drive(client.clone(), p.clone())))
        .collect();
    for k in 0..COUNTERS {
        let values = (0..SIGNALS)
            .map(|i| base + (k * 1000 + i + 1) as i64)
            .collect();
        tasks.push(spawn_local(drive_signals(
            client.clone(),
            counter(k),
            values,
        )));
    }
    tasks
}

/// Waits for the load's tasks: every start, event and signal acknowledged.
async fn acknowledged(cluster: &Cluster, tasks: Vec<JoinHandle<()>>) {
    let all = async {
        for task in tasks {
            task.await?;
        }
        Ok::<(), tokio::task::JoinError>(())
    };
    match tokio::time::timeout(LOAD_TIMEOUT, all).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!(
            "a client task failed: {e}\nthe nodes' logs:\n{}",
            cluster.logs()
        ),
        Err(_) => panic!(
            "the load was not acknowledged within {LOAD_TIMEOUT:?}\nthe nodes' logs:\n{}",
            cluster.logs()
        ),
    }
}

fn ended(status: &Value) -> bool {
    matches!(
        status["runtimeStatus"].as_str(),
        Some("Completed" | "Failed" | "Terminated")
    )
}

/// Waits until every instance of `ids` has ended, reading through node `node`.
async fn all_ended(cluster: &Cluster, node: usize, ids: &[String], limit: Duration, what: &str) {
    let weft = &cluster.nodes[node];
    let mut left = ids.to_vec();
    let what = format!("{what} (read through {})", node_id(node));
    cluster
        .within(limit, &what, async || {
            let mut still = Vec::new();
            for id in &left {
                if !ended(&weft.status(id).await) {
                    still.push(id.clone());
                }
            }
            left = still;
            left.is_empty().then_some(())
        })
        .await;
}

/// Holds the next activity's effect unanswered; the node running that activity and the hit.
async fn in_flight(cluster: &Cluster, effects: &EffectsServer) -> (usize, Hit) {
    effects.hold_next();
    let held = effects
        .held(HOLD_WAIT)
        .await
        .expect("no activity of the load was in flight");
    let node = cluster
        .node_of(held.incarnation)
        .unwrap_or_else(|| panic!("no node runs process {}", held.incarnation));
    (node, held)
}

/// Waits until the call held in flight on a node that died or froze was run again and its
/// completion recorded (by another node: that one cannot).
async fn resumed_elsewhere(cluster: &Cluster, held: &Hit, node: usize) {
    let what = format!(
        "{} ({}), in flight on {} when it stopped, is run elsewhere and recorded",
        held.key,
        held.activity,
        node_id(node)
    );
    let limit = Duration::from_secs(LEASE + TAKEOVER);
    cluster
        .within(limit, &what, async || {
            (cluster.db.is_recorded(&held.key) == Some(true)).then_some(())
        })
        .await;
}

fn assert_no_problems(cluster: &Cluster, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}\nthe nodes' logs:\n{}",
        problems.len(),
        problems.join("\n"),
        cluster.logs()
    );
}

/// The torture's checks over the cluster, read through node `node` and from the database.
async fn checks(
    cluster: &Cluster,
    node: usize,
    effects: &EffectsServer,
    client: &Client,
    plans: &[Plan],
    began: Instant,
    label: &str,
) -> (Vec<String>, Ledger) {
    let read = || cluster.db.snapshot();
    let weft = &cluster.nodes[node];
    let (mut problems, lost_work, ledger) = verdict(
        weft,
        effects,
        client,
        plans,
        &cluster.kills,
        CLUSTER_SEED,
        cluster.kills.count as usize,
        began,
        label,
        &read,
    )
    .await;
    problems.splice(0..0, lost_work);
    problems.extend(malformed(&cluster.db.histories()));
    (problems, ledger)
}

#[tokio::test]
async fn both_seeds_run_with_starts_and_answers_on_different_nodes() {
    let provider = SmsProvider::start().await;
    let service = JobService::start(&[jobs::Plan::Silent, jobs::Plan::Silent]).await;
    let mut options = Options::new(&["phone-verification", "retry-callback"]);
    for (k, v) in provider.settings() {
        options = options.env(&k, &v);
    }
    let cluster = Cluster::start("seeds", options).await;
    let [one, two, three] = [&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]];

    // Phone verification: started on node 1, a wrong try on node 3, the code on node 2.
    one.start_instance("phone-verification", "phone", json!(PHONE))
        .await;
    let code = provider.nth(1).await.code();
    three.history_has("phone", "event_wait_created").await;
    let wrong = if code == 1000 { 1001 } else { 1000 };
    three
        .raise("phone", "SmsChallengeResponse", json!(wrong))
        .await;
    let tries = json!({ "triesUsed": 1, "triesLeft": 3 });
    cluster
        .within(
            EVENT_LATENCY,
            "the wrong try raised on node 3 is counted (read on node 1)",
            async || (one.status("phone").await["customStatus"] == tries).then_some(()),
        )
        .await;
    two.raise("phone", "SmsChallengeResponse", json!(code))
        .await;
    let status = three.finished("phone").await;
    assert_eq!(status["runtimeStatus"], "Completed", "{status}");
    assert_eq!(status["output"], true, "{status}");
    assert_eq!(provider.messages().len(), 1, "the SMS was sent once");

    // Retry-callback: started on node 2; the first attempt times out on the manual clock moved
    // on node 1; the job service calls back for the second through node 3.
    let input = json!({
        "jobUrl": service.url,
        "payload": { "notebook": "/jobs/nightly" },
        "timeoutSeconds": 60,
        "retryLimit": 3,
    });
    two.start_instance("retry-callback", "rc", input).await;
    let first = service.nth(1).await;
    one.history_has("rc", "timer_created").await;
    one.advance(61.0).await;
    let second = service.nth(2).await;
    assert_ne!(first.attempt_id, second.attempt_id);
    let (_, callback) = second
        .callback_url
        .split_once("/callbacks/")
        .unwrap_or_else(|| panic!("a callback URL: {}", second.callback_url));
    assert!(callback.starts_with("rc/JobCallback?"), "{callback}");
    let through_three = format!("{}/callbacks/{callback}", three.url);
    let answered = jobs::call_back(&through_three, &second.attempt_id, true, "job done").await;
    assert_eq!(
        answered, 202,
        "node 3 takes a callback URL another node signed"
    );
    let status = one.finished("rc").await;
    assert_eq!(status["runtimeStatus"], "Completed", "{status}");
    assert_eq!(status["output"], json!({ "success": true, "attempts": 2 }));
    let entity = two
        .eventually("the attempts entity has settled", async || {
            let (code, body) = two
                .request(Method::GET, "/entities/attempts/rc", None)
                .await;
            (code == 200 && body["pendingOperations"] == 0).then_some(body)
        })
        .await;
    let states: Vec<&Value> = entity["state"]["attempts"]
        .as_object()
        .expect("attempts by id")
        .values()
        .map(|a| &a["state"])
        .collect();
    assert_eq!(states, [&json!("TimedOut"), &json!("CallbackSuccess")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_loses_nothing() {
    let began = Instant::now();
    let effects = EffectsServer::with_latency(EFFECT_LATENCY_MS).await;
    let (mut cluster, client) = load_cluster("killed", &effects, LEASE).await;
    let mut rng = Rng::new(CLUSTER_SEED);
    let plans: Vec<Plan> = (0..INSTANCES).map(|i| Plan::random(i, &mut rng)).collect();
    let (first, second) = plans.split_at(INSTANCES / 2);

    let victim = LocalSet::new()
        .run_until(async {
            let mut tasks = launch(&client, first, 0);
            // The kill lands while an activity is in flight on the node killed.
            let (victim, held) = in_flight(&cluster, &effects).await;
            cluster.kill(victim, &effects, &client.ledger());
            client.set_down(victim, true);
            effects.release();
            cluster.kills.held.push(held.clone());
            tasks.extend(launch(&client, second, 100_000));
            resumed_elsewhere(&cluster, &held, victim).await;
            acknowledged(&cluster, tasks).await;
            victim
        })
        .await;

    let live = (victim + 1) % 3;
    let what = format!(
        "every acknowledged instance ends without {}",
        node_id(victim)
    );
    let limit = Duration::from_secs(SETTLE);
    all_ended(&cluster, live, &ids(&plans), limit, &what).await;
    let (problems, ledger) = checks(
        &cluster,
        live,
        &effects,
        &client,
        &plans,
        began,
        "cluster-kill",
    )
    .await;
    assert_no_problems(&cluster, &problems);
    assert_eq!(ledger.signals.len(), 2 * COUNTERS * SIGNALS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_node_writes_nothing_stale() {
    let began = Instant::now();
    let effects = EffectsServer::with_latency(EFFECT_LATENCY_MS).await;
    let (mut cluster, client) = load_cluster("frozen", &effects, LEASE).await;
    let mut rng = Rng::new(CLUSTER_SEED ^ 1);
    let load: Vec<Plan> = (0..INSTANCES).map(|i| Plan::random(i, &mut rng)).collect();
    let (first, second) = load.split_at(INSTANCES / 2);
    // Verifications left waiting across the freeze and the thaw, answered at the end.
    let parked = verifications("parked", 3, 1);
    // Started through the thawed node.
    let after = work("after", 4);

    let victim = LocalSet::new()
        .run_until(async {
            for plan in &parked {
                client.start(plan).await;
            }
            let mut tasks = launch(&client, first, 0);
            let (victim, held) = in_flight(&cluster, &effects).await;
            cluster.freeze(victim, &effects, &client.ledger());
            client.set_down(victim, true);
            cluster.kills.held.push(held.clone());
            resumed_elsewhere(&cluster, &held, victim).await;
            // The held call's answer now waits in the frozen node's socket: thawed, it holds
            // the result of a call another node has completed meanwhile.
            effects.release();
            tasks.extend(launch(&client, second, 100_000));
            acknowledged(&cluster, tasks).await;

            // All of it ends while the node is frozen, the instances it ran included.
            let live = (victim + 1) % 3;
            let what = format!("the load ends while {} is frozen", node_id(victim));
            let limit = Duration::from_secs(SETTLE);
            all_ended(&cluster, live, &ids(&load), limit, &what).await;
            let frozen_counters = counter_problems(&cluster.nodes[live], &client.ledger()).await;
            assert_no_problems(&cluster, &frozen_counters);
            for plan in &parked {
                let status = cluster.nodes[live].status(&plan.id).await;
                assert_eq!(status["runtimeStatus"], "Running", "{status}");
            }

            cluster.thaw(victim, &effects, &client.ledger());
            client.set_down(victim, false);
            let thawed_in = effects.incarnation();
            let process = cluster.process[victim];

            // Thawed, it serves again: what is started through it runs, on it too.
            let node = &cluster.nodes[victim];
            for plan in &after {
                node.start_instance(plan.orchestration(), &plan.id, plan.input())
                    .await;
            }
            let what = format!(
                "what was started through the thawed {} ends",
                node_id(victim)
            );
            all_ended(&cluster, victim, &ids(&after), limit, &what).await;
            let what = format!("the thawed {} runs activities again", node_id(victim));
            cluster
                .within(limit, &what, async || {
                    let hits = effects.hits();
                    let again = hits
                        .iter()
                        .any(|h| h.incarnation == process && h.arrived_in >= thawed_in);
                    again.then_some(())
                })
                .await;

            // The waiting instances' histories, written before, during and after the freeze,
            // replay against their component.
            let (code, checked) = deploy(node, "torture", true).await;
            assert_eq!(code, 200, "{checked}");
            let replays = checked["checks"].as_array().cloned().unwrap_or_default();
            for plan in &parked {
                let check = replays.iter().find(|c| c["instanceId"] == plan.id.as_str());
                let replays = check.is_some_and(|c| c["compatible"] == true);
                assert!(replays, "{} does not replay: {checked}", plan.id);
            }
            for plan in &parked {
                answer(&client, plan).await;
            }
            let what = "the parked verifications end once answered";
            all_ended(&cluster, victim, &ids(&parked), limit, what).await;
            victim
        })
        .await;

    let plans: Vec<Plan> = [&load[..], &parked[..], &after[..]].concat();
    let (problems, _) = checks(
        &cluster,
        victim,
        &effects,
        &client,
        &plans,
        began,
        "cluster-freeze",
    )
    .await;
    assert_no_problems(&cluster, &problems);
}

/// Deploys example component `crate_name` on `node` (checking only, if `check`).
async fn deploy(node: &Weft, crate_name: &str, check: bool) -> (u16, Value) {
    let bytes = std::fs::read(common::component(crate_name)).expect("a built component");
    node.deploy(bytes, check).await
}

/// The lease of the restart test, in seconds: long, so that nothing node 2 held can be taken
/// by the other nodes during the test; only node 2 itself can go on with it.
const RESTART_LEASE: u64 = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_restarted_with_the_same_id_takes_work_again() {
    let began = Instant::now();
    let effects = EffectsServer::with_latency(0).await;
    let (mut cluster, _) = load_cluster("restarted", &effects, RESTART_LEASE).await;
    let urls = cluster.urls();
    let through_two = Arc::new(Client::cluster(&urls[1..2], CLIENT_TIMEOUT));
    let through_others = Arc::new(Client::cluster(
        &[urls[0].clone(), urls[2].clone()],
        CLIENT_TIMEOUT,
    ));
    let waiting = verifications("waiting", 3, 1);
    let running = work("running", 4);
    let later = work("later", 4);

    LocalSet::new()
        .run_until(async {
            // Node 2 holds what is started through it: verifications waiting for their
            // answers, and fan-outs one of whose activities is in flight when it is killed.
            for plan in &waiting {
                through_two.start(plan).await;
                cluster.nodes[0]
                    .history_has(&plan.id, "activity_completed")
                    .await;
            }
            effects.hold_next_from(cluster.process[1]);
            for plan in &running {
                through_two.start(plan).await;
            }
            let held = effects
                .held(HOLD_WAIT)
                .await
                .expect("node 2 ran no activity of the instances started through it");
            let killed_at = Instant::now();
            cluster.kill(1, &effects, &through_two.ledger());
            effects.release();
            cluster.kills.held.push(held.clone());
            let process = cluster.restart(1, &effects);

            // Node 2's old lease (renewed every third of it) cannot run out within half of
            // it: until then, no other node may take what node 2 held.
            let limit =
                || Duration::from_secs(RESTART_LEASE / 2).saturating_sub(killed_at.elapsed());
            let what = format!("the restarted node 2 runs {} again", held.key);
            cluster
                .within(limit(), &what, async || {
                    let hits = effects.hits();
                    let again = hits
                        .iter()
                        .any(|h| h.key == held.key && h.incarnation == process);
                    again.then_some(())
                })
                .await;
            for plan in &waiting {
                answer(&through_others, plan).await;
            }
            let held_ids = ids(&[&waiting[..], &running[..]].concat());
            let what = "node 2's instances end (answered through nodes 1 and 3) before its \
                        old lease can have run out";
            all_ended(&cluster, 0, &held_ids, limit(), what).await;

            // New work started through node 2 runs on it.
            let before = effects.hits().len();
            for plan in &later {
                through_two.start(plan).await;
            }
            let what = "what is started through the restarted node 2 ends";
            all_ended(&cluster, 1, &ids(&later), Duration::from_secs(SETTLE), what).await;
            let on_two = effects.hits()[before..]
                .iter()
                .filter(|h| h.incarnation == process && h.key.starts_with("later-"))
                .count();
            assert!(
                on_two > 0,
                "no activity of `later` ran on the restarted node 2"
            );
        })
        .await;

    let plans: Vec<Plan> = [&waiting[..], &running[..], &later[..]].concat();
    let (mut problems, _) = checks(
        &cluster,
        0,
        &effects,
        &through_two,
        &plans,
        began,
        "cluster-restart",
    )
    .await;
    let last = cluster.db.snapshot();
    problems.extend(lost(&through_others.ledger(), &last, None, "at the end"));
    assert_no_problems(&cluster, &problems);
}

#[tokio::test]
async fn a_component_deployed_on_one_node_serves_new_instances_on_all() {
    let cluster = Cluster::start("deployed", Options::new(&[])).await;
    let start = async |node: &Weft, id: &str| {
        let path = format!("/orchestrations/hello-sequence?instanceId={id}");
        node.request(Method::POST, &path, Some(&json!(null))).await
    };
    for (k, node) in cluster.nodes.iter().enumerate() {
        let (code, body) = start(node, &format!("early-{k}")).await;
        assert_eq!(code, 404, "nothing is deployed yet: {body}");
    }

    // Deployed through node 1, after every node has started.
    let (code, deployed) = deploy(&cluster.nodes[0], "hello-sequence", false).await;
    assert_eq!(code, 201, "{deployed}");
    let digest = deployed["digest"].as_str().expect("a digest").to_string();
    for k in 0..3 {
        let node = &cluster.nodes[k];
        let id = format!("on-{}", node_id(k));
        let what = format!("{} serves the component deployed on node-1", node_id(k));
        cluster
            .within(DEPLOY_LATENCY, &what, async || {
                match start(node, &id).await {
                    (202, _) => Some(()),
                    (404, _) => None,
                    (code, body) => panic!("start on {}: {code} {body}", node_id(k)),
                }
            })
            .await;
        let status = node.finished(&id).await;
        assert_eq!(status["runtimeStatus"], "Completed", "{status}");
        assert_eq!(
            status["output"],
            json!(["Hello Tokyo!", "Hello Seattle!", "Hello London!"])
        );
        assert_eq!(status["componentDigest"], digest.as_str(), "{status}");
        let (code, list) = node.request(Method::GET, "/components", None).await;
        assert_eq!(code, 200, "{list}");
        let listed = list["components"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["digest"] == digest.as_str() && c["loads"] == true)
        });
        assert!(listed, "{} lists {digest}: {list}", node_id(k));
    }
}

#[tokio::test]
async fn a_node_stopped_with_sigterm_hands_its_instances_over_at_once() {
    // A lease far longer than the test's bound: only the stopped node's handover can move its
    // instance in time.
    let options = Options::new(&["hello-sequence"]);
    let mut cluster = Cluster::with_lease("stopped", options, RESTART_LEASE).await;
    let node_1 = node_id(0);
    cluster.nodes[0]
        .start_instance("wait-for-event", "handed", json!(null))
        .await;
    let what = format!("{node_1} holds the waiting instance");
    cluster
        .within(EVENT_LATENCY, &what, async || {
            let owners = cluster.db.owners(&["handed"]);
            (owners == [Some(node_1.clone())]).then_some(())
        })
        .await;
    cluster.nodes[0].stop();
    cluster.nodes[1].raise("handed", "go", json!(7)).await;
    let what = format!("the instance {node_1} held completes once it stopped");
    let status = cluster
        .within(Duration::from_secs(TAKEOVER), &what, async || {
            let status = cluster.nodes[2].status("handed").await;
            ended(&status).then_some(status)
        })
        .await;
    assert_eq!(status["runtimeStatus"], "Completed", "{status}");
    assert_eq!(status["output"], 7, "{status}");
    let owners = cluster.db.owners(&["handed"]);
    assert!(
        owners[0].as_ref().is_some_and(|o| *o != node_1),
        "{owners:?}"
    );
}

#[tokio::test]
async fn the_manual_clock_is_shared() {
    let cluster = Cluster::start("clock", Options::new(&["fixtures"])).await;
    // A 30-second wait started on each node.
    let ids = ["wait-1", "wait-2", "wait-3"];
    for (node, id) in cluster.nodes.iter().zip(ids) {
        node.start_instance("wait-with-timeout", id, json!(30))
            .await;
        node.history_has(id, "timer_created").await;
    }
    // Some wait is held by another node than the one whose clock is moved.
    let owners = cluster.db.owners(&ids);
    let elsewhere = owners
        .iter()
        .any(|o| o.as_deref().is_some_and(|o| o != node_id(1)));
    assert!(elsewhere, "the waits' holders: {owners:?}");

    let moved = cluster.nodes[1].advance(31.0).await;
    assert_eq!(moved["now"], "2026-01-01T00:00:31.000Z", "{moved}");
    for id in ids {
        let what = format!("{id}'s timer fires once node-2's clock moved");
        let status = cluster
            .within(EVENT_LATENCY, &what, async || {
                let status = cluster.nodes[2].status(id).await;
                ended(&status).then_some(status)
            })
            .await;
        assert_eq!(status["runtimeStatus"], "Completed", "{status}");
        assert_eq!(status["output"], Value::Null, "{id} timed out: {status}");
    }
    // Every node reads the new time, and starts new instances at it.
    for (k, node) in cluster.nodes.iter().enumerate() {
        let what = format!("{}'s clock reads the new time", node_id(k));
        cluster
            .within(EVENT_LATENCY, &what, async || {
                (node.advance(0.0).await["now"] == moved["now"]).then_some(())
            })
            .await;
    }
    cluster.nodes[2]
        .start_instance("wait-with-timeout", "later", json!(30))
        .await;
    let status = cluster.nodes[0].status("later").await;
    let created = status["createdTime"].as_str().unwrap_or_default();
    assert!(created.starts_with("2026-01-01T00:00:31"), "{status}");
}
