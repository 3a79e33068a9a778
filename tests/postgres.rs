//! `weft serve --db postgres://…`: the example workflows run on a real PostgreSQL server that
//! the test starts itself (initdb in a temporary directory, a free port on 127.0.0.1), and
//! survive a killed node; a database from a newer weft and bad flags are refused.

mod common;

use common::sms::SmsProvider;
use common::{Options, Weft};
use std::process::Command;
use std::sync::OnceLock;
use weft::store::postgres::test_server::PgServer;

/// This process's server, started on first use. Without PostgreSQL's programs the tests fail
/// and say what to install.
fn server() -> &'static PgServer {
    static SERVER: OnceLock<Result<PgServer, String>> = OnceLock::new();
    match SERVER.get_or_init(PgServer::start) {
        Ok(server) => server,
        Err(e) => panic!("these tests need a PostgreSQL server: {e}"),
    }
}

/// A fresh database on the server; its URL.
async fn database(name: &str) -> String {
    server()
        .create_database(name)
        .await
        .expect("a fresh database");
    server().url(name)
}

/// Runs `weft serve` on `url` until it exits (it must refuse to start: 1, or 2 for a flag
/// clap refuses); its stderr.
fn refused_start(url: &str, extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args([
            "serve",
            "--db",
            url,
            "--listen",
            "127.0.0.1:0",
            "--token",
            "t",
        ])
        .args(extra)
        .output()
        .expect("run weft");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        matches!(out.status.code(), Some(1 | 2)),
        "weft must refuse: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[tokio::test]
async fn the_examples_run_on_postgres_and_survive_a_killed_node() {
    let url = database("examples").await;
    let provider = SmsProvider::start().await;
    // The same node name after the restart: the node takes back what it held at once.
    let mut options = Options::new(&["hello-sequence", "phone-verification"])
        .db(&url)
        .arg("--node-id")
        .arg("node-a");
    for (k, v) in provider.settings() {
        options = options.env(&k, &v);
    }
    let mut weft = Weft::start(options);

    weft.start_instance("hello-sequence", "seq", serde_json::json!(null))
        .await;
    let status = weft.finished("seq").await;
    assert_eq!(status["runtimeStatus"], "Completed", "{status}");
    assert_eq!(
        status["output"],
        serde_json::json!(["Hello Tokyo!", "Hello Seattle!", "Hello London!"])
    );

    // A verification waits for its answer while the node is killed; a new node on the same
    // database takes it up, and the answer completes it.
    weft.start_instance(
        "phone-verification",
        "phone",
        serde_json::json!("+14255550123"),
    )
    .await;
    let code = provider.nth(1).await.code();
    weft.history_has("phone", "timer_created").await;
    weft.restart();
    weft.raise("phone", "SmsChallengeResponse", serde_json::json!(code))
        .await;
    let status = weft.finished("phone").await;
    assert_eq!(status["runtimeStatus"], "Completed", "{status}");
    assert_eq!(status["output"], true);
    assert_eq!(provider.messages().len(), 1, "the SMS was sent once");

    // The 90-second window runs on the manual clock kept in the database.
    weft.start_instance(
        "phone-verification",
        "late",
        serde_json::json!("+14255550123"),
    )
    .await;
    provider.nth(2).await;
    weft.history_has("late", "timer_created").await;
    weft.advance(91.0).await;
    let status = weft.finished("late").await;
    assert_eq!(status["runtimeStatus"], "Completed", "{status}");
    assert_eq!(status["output"], false);
}

#[tokio::test]
async fn a_database_from_a_newer_weft_is_refused() {
    let url = database("newer").await;
    let weft = Weft::start(Options::new(&["hello-sequence"]).db(&url));
    drop(weft);
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    let task = tokio::spawn(connection);
    client
        .execute("UPDATE weft_schema SET version = 999", &[])
        .await
        .expect("update the schema version");
    drop(client);
    task.await.unwrap().unwrap();
    let stderr = refused_start(&url, &[]);
    assert!(
        stderr.contains("schema version 999, newer than this weft understands"),
        "{stderr}"
    );
}

#[tokio::test]
async fn bad_locations_and_sqlite_only_flags_are_refused_clearly() {
    let url = database("flags").await;
    let stderr = refused_start(&url, &["--max-db-size", "1000000"]);
    assert!(
        stderr.contains("--max-db-size applies to SQLite only"),
        "{stderr}"
    );
    let stderr = refused_start("mysql://localhost/weft", &[]);
    assert!(
        stderr.contains("unknown database scheme 'mysql://'"),
        "{stderr}"
    );
    let stderr = refused_start("postgres://weft@127.0.0.1:1/weft", &[]);
    assert!(
        stderr.contains("cannot reach PostgreSQL") && stderr.contains("Connection refused"),
        "{stderr}"
    );
    let stderr = refused_start(&url, &["--node-id", "a|b"]);
    assert!(
        stderr.contains("the node name 'a|b' is not valid"),
        "{stderr}"
    );
    let stderr = refused_start(&url, &["--lease", "0"]);
    assert!(stderr.contains("--lease must be"), "{stderr}");
    let unreachable = server().url("no_such_database");
    let stderr = refused_start(&unreachable, &[]);
    assert!(
        stderr.contains("cannot reach PostgreSQL") && stderr.contains("no_such_database"),
        "{stderr}"
    );
}
