//! The file system's own process: the test binary run again as [`crate::DAEMON_TEST`], told
//! by its environment what to mount. It reads commands on stdin and answers on stdout, each
//! answer prefixed with [`PREFIX`] (the test harness prints its own lines there too). It
//! exits when stdin closes, and right after a cut: exiting closes `/dev/fuse`, which ends
//! the mount at once whatever is still open in it, and `fusermount3` (which watches this
//! process) unmounts it.

use crate::fs::PowerCutFs;
use crate::model::{Cut, Model, Stats};
use fuser::{Config, MountOption, SessionACL};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub(crate) const ENV_BACKING: &str = "POWERCUT_BACKING";
pub(crate) const ENV_MOUNTPOINT: &str = "POWERCUT_MOUNTPOINT";
pub(crate) const PREFIX: &str = "powercut: ";

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{PREFIX}{line}");
    let _ = out.flush();
}

fn stats_line(s: &Stats) -> String {
    format!(
        "stats {} {} {} {} {} {}",
        s.fsyncs,
        s.dir_fsyncs,
        s.failed_fsyncs,
        s.discarded_changes,
        s.discarded_bytes,
        s.torn_writes
    )
}

pub(crate) fn parse_stats(line: &str) -> Stats {
    let n: Vec<u64> = line
        .strip_prefix("stats ")
        .unwrap_or_else(|| panic!("the file system answered {line:?}, not its figures"))
        .split(' ')
        .map(|x| x.parse().expect("a number"))
        .collect();
    Stats {
        fsyncs: n[0],
        dir_fsyncs: n[1],
        failed_fsyncs: n[2],
        discarded_changes: n[3],
        discarded_bytes: n[4],
        torn_writes: n[5],
    }
}

/// Runs the file system if this process was started to (by [`crate::PowerCut`]); returns at
/// once otherwise. Call it from a test named [`crate::DAEMON_TEST`].
pub fn serve_if_asked() {
    let (Some(backing), Some(mountpoint)) = (
        std::env::var_os(ENV_BACKING).map(PathBuf::from),
        std::env::var_os(ENV_MOUNTPOINT).map(PathBuf::from),
    ) else {
        return;
    };
    let model = match Model::load(&backing) {
        Ok(m) => Arc::new(Mutex::new(m)),
        Err(e) => {
            say(&format!("reading the disk {}: {e}", backing.display()));
            std::process::exit(1);
        }
    };
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("powercut".into()),
        MountOption::AutoUnmount,
    ];
    config.acl = SessionACL::All;
    let stalled = Arc::new(Mutex::new(Vec::new()));
    let fs = PowerCutFs {
        model: model.clone(),
        stalled: stalled.clone(),
    };
    let session = match fuser::spawn_mount(fs, &mountpoint, &config) {
        Ok(s) => s,
        Err(e) => {
            say(&format!(
                "mounting at {} failed: {e} (it needs /dev/fuse and fusermount3: Debian's \
                 `fuse3`)",
                mountpoint.display()
            ));
            std::process::exit(1);
        }
    };
    say("ready");
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["stats"] => say(&stats_line(&guard(&model).stats)),
            ["fail", n] => {
                guard(&model).fail_fsyncs(n.parse().unwrap_or(1));
                say("ok");
            }
            ["stall"] => {
                guard(&model).stall_next_fsync();
                say("ok");
            }
            ["stalled"] => say(&guard(&stalled).len().to_string()),
            ["freeze"] => {
                guard(&model).freeze();
                // The held fsyncs fail now; their writes wait for the cut to tear or drop.
                for reply in guard(&stalled).drain(..) {
                    reply.error(fuser::Errno::EIO);
                }
                say("ok");
            }
            ["cut", how @ ..] => {
                let how = match how {
                    ["torn", seed] => Cut::Torn(seed.parse().unwrap_or(1)),
                    _ => Cut::Clean,
                };
                let mut m = guard(&model);
                m.cut(how);
                if let Err(e) = m.store(&backing) {
                    say(&format!("writing the disk {}: {e}", backing.display()));
                    std::process::exit(1);
                }
                say(&stats_line(&m.stats));
                // No unmount, no join: the exit ends the connection.
                std::process::exit(0);
            }
            _ => say(&format!("unknown command {line:?}")),
        }
    }
    drop(session);
    std::process::exit(0);
}

fn guard<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
