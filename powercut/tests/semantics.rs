//! The power-cut file system, mounted for real: what survives a cut.

use powercut::{Cut, PowerCut};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

#[test]
fn power_cut_daemon() {
    powercut::serve_if_asked();
}

fn fsync_dir(dir: &Path) {
    File::open(dir)
        .expect("open dir")
        .sync_all()
        .expect("fsync dir");
}

#[test]
fn a_write_without_fsync_is_gone_after_a_cut_and_one_with_fsync_stays() {
    let mut pc = PowerCut::temp();
    let dir = pc.mountpoint().to_path_buf();
    let mut f = File::create(dir.join("synced")).unwrap();
    f.write_all(b"durable").unwrap();
    f.sync_all().unwrap();
    fsync_dir(&dir);
    f.write_all(b" and volatile").unwrap();
    drop(f);
    fs::write(dir.join("unsynced"), b"never fsynced").unwrap();
    // Programs see everything before the cut.
    assert_eq!(
        fs::read(dir.join("synced")).unwrap(),
        b"durable and volatile"
    );

    pc.cut(Cut::Clean, || {});

    assert_eq!(fs::read(dir.join("synced")).unwrap(), b"durable");
    assert_eq!(fs::read(pc.backing().join("synced")).unwrap(), b"durable");
    assert!(
        !dir.join("unsynced").exists(),
        "its directory was never fsynced"
    );
    assert!(pc.stats().discarded_changes >= 1);
}

#[test]
fn renames_and_unlinks_last_only_once_their_directory_is_fsynced() {
    let mut pc = PowerCut::temp();
    let dir = pc.mountpoint().to_path_buf();
    fs::create_dir(dir.join("d")).unwrap();
    let mut f = File::create(dir.join("d/a")).unwrap();
    f.write_all(b"x").unwrap();
    f.sync_all().unwrap();
    fsync_dir(&dir.join("d"));
    fsync_dir(&dir);
    drop(f);
    fs::rename(dir.join("d/a"), dir.join("d/b")).unwrap();
    fs::write(dir.join("gone"), b"").unwrap();
    fsync_dir(&dir);
    fs::remove_file(dir.join("gone")).unwrap();

    pc.cut(Cut::Clean, || {});

    assert!(
        dir.join("d/a").exists(),
        "the rename was never made durable"
    );
    assert!(!dir.join("d/b").exists());
    assert!(
        dir.join("gone").exists(),
        "the unlink was never made durable"
    );
}

#[test]
fn a_failed_fsync_loses_its_writes_even_when_a_second_one_succeeds() {
    let mut pc = PowerCut::temp();
    let dir = pc.mountpoint().to_path_buf();
    let mut f = File::create(dir.join("f")).unwrap();
    f.sync_all().unwrap();
    fsync_dir(&dir);
    f.write_all(b"lost").unwrap();
    pc.fail_next_fsyncs(1);
    let err = f.sync_all().expect_err("the fsync is to fail");
    assert_eq!(err.raw_os_error(), Some(libc::EIO));
    f.sync_all().expect("a retry succeeds");
    drop(f);
    pc.cut(Cut::Clean, || {});
    assert_eq!(fs::read(dir.join("f")).unwrap(), b"");
    assert_eq!(pc.stats().failed_fsyncs, 1);
}

#[test]
fn a_torn_cut_keeps_only_a_prefix_of_what_was_written() {
    let mut pc = PowerCut::temp();
    let dir = pc.mountpoint().to_path_buf();
    let all: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    for seed in 1..6 {
        let mut f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(dir.join("f"))
            .unwrap();
        f.sync_all().unwrap();
        fsync_dir(&dir);
        for chunk in all.chunks(4096) {
            f.write_all(chunk).unwrap();
        }
        drop(f);
        pc.cut(Cut::Torn(seed), || {});
        let got = fs::read(dir.join("f")).unwrap();
        assert!(all.starts_with(&got), "seed {seed}: not a prefix");
    }
    assert!(pc.stats().torn_writes > 0, "no cut tore a write");
}

#[test]
fn sqlite_keeps_its_commits_with_synchronous_full_and_loses_them_with_off() {
    let mut pc = PowerCut::temp();
    let db = pc.mountpoint().join("t.db");
    let rows = |sync: &str, from: i64| {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.pragma_update(None, "journal_mode", "wal").unwrap();
        conn.pragma_update(None, "synchronous", sync).unwrap();
        conn.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)", [])
            .unwrap();
        for x in from..from + 10 {
            conn.execute("INSERT INTO t VALUES (?1)", [x]).unwrap();
        }
        // Closed as a killed process would leave it: no checkpoint into the database file.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .unwrap();
        drop(conn);
    };
    let count = || {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap_or(0);
        let ok: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        n
    };
    rows("full", 0);
    pc.cut(Cut::Clean, || {});
    assert_eq!(count(), 10);
    rows("off", 10);
    pc.cut(Cut::Clean, || {});
    assert_eq!(count(), 10, "synchronous=off kept commits it never fsynced");
}
