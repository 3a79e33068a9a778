//! Storage safety: the database is checked when weft starts (schema version, integrity), and a
//! full database fails requests with 503 while everything acknowledged before stays.

mod common;

use common::{Options, Weft};
use reqwest::Method;
use serde_json::json;
use std::process::Command;

/// Runs `weft serve` on `db` until it exits (it must refuse to start); its stderr.
fn refused_start(db: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .arg("serve")
        .arg("--db")
        .arg(db)
        .args(["--listen", "127.0.0.1:0", "--token", "t"])
        .output()
        .expect("run weft");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "weft must refuse to start: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn a_database_from_a_newer_weft_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("weft.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.pragma_update(None, "user_version", 999).unwrap();
    drop(conn);
    let stderr = refused_start(&db);
    assert!(
        stderr.contains("schema version 999, newer than this weft understands"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_damaged_database_is_refused_at_start() {
    let mut weft = Weft::start(Options::new(&["fixtures"]));
    for i in 0..20 {
        weft.start_instance("wait-for-go", &format!("w{i}"), json!("x".repeat(500)))
            .await;
    }
    weft.kill();
    let db = weft.db();
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let pages: i64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    drop(conn);
    // Scribble over the second half of the file: the pages of the instances and history.
    let mut bytes = std::fs::read(&db).unwrap();
    let from = bytes.len() / 2;
    for (i, b) in bytes[from..].iter_mut().enumerate() {
        *b = (i * 7 + 3) as u8;
    }
    std::fs::write(&db, bytes).unwrap();
    assert!(pages > 4, "a database of {pages} pages");
    let stderr = refused_start(&db);
    assert!(
        stderr.contains("integrity check") || stderr.contains("malformed"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_full_database_answers_503_and_keeps_what_it_acknowledged() {
    let mut options = Options::new(&["fixtures"]);
    // Room for the component and a few dozen instances.
    options.args = vec!["--max-db-size".into(), "600000".into()];
    let mut weft = Weft::start(options);
    let mut acknowledged = Vec::new();
    let mut refused = None;
    let mut refused_id = String::new();
    for i in 0..400 {
        let id = format!("fill-{i}");
        refused_id.clone_from(&id);
        let (status, body) = weft
            .request(
                Method::POST,
                &format!("/orchestrations/wait-for-go?instanceId={id}"),
                Some(&json!("x".repeat(4000))),
            )
            .await;
        match status {
            202 => acknowledged.push(id),
            503 => {
                refused = Some(body);
                break;
            }
            other => panic!("start {id}: {other} {body}"),
        }
    }
    let refused = refused.expect("the database filled up");
    assert_eq!(refused["error"]["code"], "store_full", "{refused}");
    assert!(acknowledged.len() >= 5, "{} fitted", acknowledged.len());

    // The 503 kept nothing: the refused start is not in the database, and after a restart
    // every acknowledged start is.
    let stored = |weft: &Weft, table: &str, column: &str, id: &str| {
        weft.query_i64(&format!(
            "SELECT count(*) FROM {table} WHERE {column} = '{id}'"
        ))
    };
    assert_eq!(stored(&weft, "instances", "id", &refused_id), 0);
    assert_eq!(stored(&weft, "history", "instance_id", &refused_id), 0);
    weft.restart();
    assert_eq!(stored(&weft, "instances", "id", &refused_id), 0);
    assert!(weft.try_status(&refused_id).await.is_none());
    for id in &acknowledged {
        assert_eq!(
            stored(&weft, "instances", "id", id),
            1,
            "{id} was acknowledged"
        );
        assert!(weft.try_status(id).await.is_some(), "{id} was acknowledged");
    }

    // Freeing space lets work go on.
    let (keep, free) = acknowledged.split_at(2);
    for id in free {
        let (status, body) = weft
            .request(Method::DELETE, &format!("/instances/{id}?force=true"), None)
            .await;
        assert_eq!(status, 200, "purge {id}: {body}");
    }
    for id in keep {
        weft.raise(id, "go", json!("made it")).await;
        assert_eq!(weft.finished(id).await["output"], "made it");
    }
}
