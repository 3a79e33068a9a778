//! Component versions: two versions of one orchestration live side by side; deploying a new
//! one moves only new instances; `deploy --check` and `upgrade` replay histories against the
//! new code first and move an instance only if its history replays; bad components are
//! refused at deploy with the reason.

mod common;

use common::{Options, Weft};
use reqwest::Method;
use serde_json::{Value, json};

fn wasm(crate_name: &str) -> Vec<u8> {
    std::fs::read(common::component(crate_name)).expect("built component")
}

async fn deploy(weft: &Weft, bytes: Vec<u8>, check: bool) -> (u16, Value) {
    weft.deploy(bytes, check).await
}

async fn upgrade(weft: &Weft, id: &str, to: &str) -> (u16, Value) {
    weft.request(
        Method::POST,
        &format!("/instances/{id}/upgrade?to={to}"),
        None,
    )
    .await
}

#[tokio::test]
async fn versions_live_side_by_side_and_upgrades_replay_first() {
    let mut weft = Weft::start(Options::new(&["fixtures"]));
    weft.start_instance("wait-for-go", "compatible", json!(null))
        .await;
    weft.start_instance("drift", "incompatible", json!("hi"))
        .await;
    weft.history_has("compatible", "event_wait_created").await;
    weft.history_has("incompatible", "event_wait_created").await;
    let v1 = weft.status("compatible").await["componentDigest"]
        .as_str()
        .unwrap()
        .to_string();

    // A check deploys nothing and says which running instance would diverge, and where.
    let (code, checked) = deploy(&weft, wasm("fixtures-drift"), true).await;
    assert_eq!(code, 200, "{checked}");
    let v2 = checked["digest"].as_str().unwrap().to_string();
    assert_ne!(v1, v2);
    let checks = checked["checks"].as_array().unwrap();
    let of = |id: &str| {
        checks
            .iter()
            .find(|c| c["instanceId"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(of("compatible")["compatible"], true, "{checked}");
    let divergence = of("incompatible")["divergence"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        divergence.contains("nondeterminism: at position 0")
            && divergence.contains("'echo'")
            && divergence.contains("'shout'"),
        "{divergence}"
    );
    let (code, _) = upgrade(&weft, "compatible", &v2).await;
    assert_eq!(code, 404, "checked, not deployed");

    // Deployed: new instances start on it; running ones stay where they are.
    let (code, deployed) = deploy(&weft, wasm("fixtures-drift"), false).await;
    assert_eq!(code, 201, "{deployed}");
    assert_eq!(deployed["digest"], v2.as_str());
    weft.start_instance("drift", "new", json!("hi")).await;
    assert_eq!(weft.status("new").await["componentDigest"], v2.as_str());
    assert_eq!(
        weft.status("incompatible").await["componentDigest"],
        v1.as_str()
    );

    // An incompatible upgrade changes nothing and names the divergent position.
    let (code, refused) = upgrade(&weft, "incompatible", &v2).await;
    assert_eq!(code, 409, "{refused}");
    assert_eq!(refused["error"]["code"], "replay_diverges");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("nondeterminism: at position 0"),
        "{message}"
    );
    assert_eq!(
        weft.status("incompatible").await["componentDigest"],
        v1.as_str()
    );

    // A compatible one moves the instance, which then runs the new code.
    let (code, moved) = upgrade(&weft, "compatible", &v2).await;
    assert_eq!(code, 200, "{moved}");
    assert_eq!(
        (moved["from"].as_str(), moved["to"].as_str()),
        (Some(&*v1), Some(&*v2))
    );
    weft.raise("compatible", "go", json!(7)).await;
    let status = weft.finished("compatible").await;
    assert_eq!(status["output"], json!({ "upgraded": 7 }), "{status}");
    assert_eq!(status["componentDigest"], v2.as_str());

    // Both versions run side by side: the old instance on the old code, the new on the new.
    weft.raise("incompatible", "go", json!("there")).await;
    weft.raise("new", "go", json!("there")).await;
    assert_eq!(weft.finished("incompatible").await["output"], "hi there");
    assert_eq!(weft.finished("new").await["output"], "HI there");

    // The newest deployed version still serves new instances after a restart.
    weft.restart();
    weft.start_instance("drift", "after-restart", json!("x"))
        .await;
    assert_eq!(
        weft.status("after-restart").await["componentDigest"],
        v2.as_str()
    );
    let (code, _) = upgrade(&weft, "new", &v1).await;
    assert_eq!(code, 410, "an ended instance is not moved");
}

/// `GET /components`: each component's digest and the orchestrations it serves.
async fn serving(weft: &Weft) -> Vec<(String, Vec<String>)> {
    let (code, list) = weft.request(Method::GET, "/components", None).await;
    assert_eq!(code, 200, "{list}");
    list["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let names = c["servingOrchestrations"].as_array().unwrap();
            (
                c["digest"].as_str().unwrap().to_string(),
                names.iter().map(|n| n.as_str().unwrap().into()).collect(),
            )
        })
        .collect()
}

#[tokio::test]
async fn when_two_components_export_a_name_the_newest_deploy_serves_it() {
    let mut weft = Weft::start(Options::new(&["fixtures"]));
    let before = serving(&weft).await;
    assert_eq!(before.len(), 1);
    let v1 = before[0].0.clone();
    assert!(before[0].1.contains(&"drift".to_string()), "{before:?}");

    let (code, deployed) = deploy(&weft, wasm("fixtures-drift"), false).await;
    assert_eq!(code, 201, "{deployed}");
    let v2 = deployed["digest"].as_str().unwrap().to_string();
    let replaced = deployed["replaced"].as_array().unwrap();
    for name in ["drift", "wait-for-go"] {
        assert!(
            replaced.contains(&json!({"kind": "orchestration", "name": name, "previous": v1})),
            "{deployed}"
        );
    }
    // Logged at deploy (the kit reads the server's log on a thread of its own).
    weft.eventually("the deploy log names the moved orchestration", async || {
        let log = weft.log();
        log.contains("orchestration 'drift' is now served by component")
            .then_some(())
    })
    .await;
    let after = serving(&weft).await;
    assert_eq!(after.iter().map(|c| &c.0).collect::<Vec<_>>(), [&v1, &v2]);
    assert!(!after[0].1.contains(&"drift".to_string()), "{after:?}");
    assert!(after[0].1.contains(&"parent".to_string()), "{after:?}");
    assert_eq!(after[1].1, ["drift", "wait-for-go"]);

    // The catalog by name: who serves each, and every component that exports it.
    let (code, catalog) = weft.request(Method::GET, "/orchestrations", None).await;
    assert_eq!(code, 200, "{catalog}");
    let entry = |kind: &str, name: &str| {
        catalog[kind]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{kind} {name} in {catalog}"))
            .clone()
    };
    assert_eq!(
        entry("orchestrations", "drift"),
        json!({"name": "drift", "servedBy": v2, "versions": [v1, v2]})
    );
    assert_eq!(
        entry("orchestrations", "parent"),
        json!({"name": "parent", "servedBy": v1, "versions": [v1]})
    );
    assert_eq!(
        entry("activities", "shout"),
        json!({"name": "shout", "versions": [v2]})
    );
    assert_eq!(entry("activities", "echo")["versions"], json!([v1]));
    assert_eq!(entry("entities", "counter")["servedBy"], v1.as_str());
    let names: Vec<_> = catalog["orchestrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "by name");

    // Deploying v1 again makes it the newest: it serves `drift` again, also after a restart.
    let (code, again) = deploy(&weft, wasm("fixtures"), false).await;
    assert_eq!(code, 201, "{again}");
    weft.start_instance("drift", "d1", json!("x")).await;
    assert_eq!(weft.status("d1").await["componentDigest"], v1.as_str());
    weft.restart();
    weft.start_instance("drift", "d2", json!("x")).await;
    assert_eq!(weft.status("d2").await["componentDigest"], v1.as_str());
    let listed = serving(&weft).await;
    assert_eq!(listed.iter().map(|c| &c.0).collect::<Vec<_>>(), [&v2, &v1]);
    assert!(listed[0].1.is_empty(), "{listed:?}");
}

#[tokio::test]
async fn bad_components_are_refused_at_deploy_with_the_reason() {
    let weft = Weft::start(Options::new(&["fixtures"]));
    let (code, body) = deploy(&weft, b"not a component".to_vec(), false).await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_component");
    let wat = r#"(component (import "evil:net/raw-sockets" (instance (export "open" (func)))))"#;
    let (code, body) = deploy(&weft, wat.as_bytes().to_vec(), false).await;
    assert_eq!(code, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("evil:net/raw-sockets"),
        "names the import: {message}"
    );
    // Nothing is stored for a refused deploy: only the component the server started with.
    assert_eq!(weft.query_i64("SELECT count(*) FROM components"), 1);
    let (code, body) = upgrade(&weft, "nobody", &"0".repeat(64)).await;
    assert_eq!(code, 404, "{body}");
    let (code, body) = upgrade(&weft, "nobody", "not-a-digest").await;
    assert_eq!(code, 400, "{body}");
}

fn cli(server: &Weft, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .args(["--server", &server.url])
        .env("WEFT_TOKEN", common::TOKEN)
        .output()
        .expect("run weft")
}

#[tokio::test]
async fn deploy_check_and_upgrade_from_the_command_line() {
    let weft = Weft::start(Options::new(&["fixtures"]));
    weft.start_instance("drift", "d", json!("hi")).await;
    weft.start_instance("wait-for-go", "w", json!(null)).await;
    weft.history_has("d", "event_wait_created").await;
    weft.history_has("w", "event_wait_created").await;
    let file = common::component("fixtures-drift");
    let file = file.to_str().unwrap();

    let out = cli(&weft, &["deploy", file, "--check"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a divergence fails the check: {stderr}"
    );
    assert!(
        stderr.contains("d: would diverge: nondeterminism: at position 0"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("w: replays"));

    let out = cli(&weft, &["deploy", file]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let digest = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let out = cli(&weft, &["upgrade", "w", "--to", &digest]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&weft, &["upgrade", "d", "--to", &digest]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nondeterminism: at position 0"));
}
