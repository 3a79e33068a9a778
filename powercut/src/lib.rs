//! A file system that loses power: test support for durability claims.
//!
//! SIGKILL leaves the kernel's page cache intact, so a crash test with SIGKILL alone passes
//! just as well without a single fsync. This crate mounts (over FUSE) a file system whose
//! page cache is its own: programs see every write at once, but the *disk* (a backing
//! directory) gets a file's writes only when that file is fsynced, and a directory's creates,
//! renames and unlinks only when that directory is fsynced. A [`PowerCut::cut`] then kills the
//! programs using it, throws away everything that did not reach the disk (or keeps a torn
//! prefix of it, [`Cut::Torn`]), writes the disk into the backing directory and mounts again
//! on what survived, as a machine rebooting after losing power would. It can also fail the
//! next fsyncs with `EIO`, dropping their writes the way Linux drops dirty pages whose
//! write-back failed (so a second fsync "succeeds" without them: the fsyncgate trap).
//!
//! Linux only; it needs `/dev/fuse` and `fusermount3` (Debian's `fuse3` package), and
//! [`PowerCut::mount`] panics saying so when they are missing: a test that needs it fails,
//! it never skips. Every wait is bounded, and the mount is undone on drop (and by
//! `fusermount3` itself if the test process dies).
//!
//! The file system runs in a process of its own, never in the test's: a process that dies
//! while it holds files open on a FUSE mount it serves itself hangs in its exit for ever (the
//! kernel waits for the answer to the close). That process is the test binary itself, run
//! again: every test binary that mounts one holds this test, which does nothing unless it
//! was started for that:
//!
//! ```ignore
//! #[test]
//! fn power_cut_daemon() {
//!     powercut::serve_if_asked();
//! }
//! ```

#![allow(
    clippy::disallowed_methods,
    reason = "test support: bounded waits read the real clock"
)]

mod daemon;
mod fs;
mod model;

pub use daemon::serve_if_asked;
pub use model::{Cut, Stats};

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The name of the test that runs the file system, in every binary that mounts one.
pub const DAEMON_TEST: &str = "power_cut_daemon";

/// How long starting or stopping the file system's process may take.
const DAEMON_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a dead file system's mount is given to go away by itself.
const UNMOUNT_GRACE: Duration = Duration::from_secs(1);

/// Fails (panics) with what to install when this machine cannot mount a FUSE file system.
pub fn require_fuse() {
    let dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse");
    if let Err(e) = dev {
        panic!(
            "the power-cut tests need FUSE: opening /dev/fuse failed ({e}); load the `fuse` \
             kernel module (or run the container with --device /dev/fuse) and run as root"
        );
    }
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("fusermount3").is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "the power-cut tests need `fusermount3` on PATH: install it (Debian: \
         `apt-get install -y fuse3`)"
    );
}

/// The file system's process and the pipes to it.
struct Daemon {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Daemon {
    fn spawn(backing: &Path, mountpoint: &Path) -> Self {
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut child = Command::new(exe)
            .args(["--exact", DAEMON_TEST, "--nocapture", "--test-threads", "1"])
            .env(daemon::ENV_BACKING, backing)
            .env(daemon::ENV_MOUNTPOINT, mountpoint)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the power-cut file system's process");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // The test harness prints its own lines too, the first on the same line.
                if let Some(at) = line.find(daemon::PREFIX)
                    && tx
                        .send(line[at + daemon::PREFIX.len()..].to_string())
                        .is_err()
                {
                    break;
                }
            }
        });
        let mut daemon = Self {
            child,
            stdin,
            lines,
        };
        let ready = daemon.answer();
        assert!(
            ready == "ready",
            "the power-cut file system did not mount at {}: {ready}",
            mountpoint.display()
        );
        daemon
    }

    /// The next line it writes (bounded).
    fn answer(&mut self) -> String {
        match self.lines.recv_timeout(DAEMON_TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                let _ = self.child.kill();
                panic!("the power-cut file system's process did not answer (see its stderr)")
            }
        }
    }

    fn ask(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").expect("write to the file system's process");
        self.stdin.flush().expect("flush");
        self.answer()
    }

    /// Waits (bounded) for it to exit, killing it at the end of the wait.
    fn wait(mut self) {
        drop(self.stdin);
        for _ in 0..(DAEMON_TIMEOUT.as_millis() / 10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a FUSE file system is mounted at `path` (from `/proc/self/mountinfo`).
fn mounted(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let path = path.to_string_lossy();
    info.lines().any(|l| {
        let fields: Vec<&str> = l.split(' ').collect();
        fields.get(4) == Some(&path.as_ref()) && l.contains(" - fuse")
    })
}

/// A mounted power-cut file system.
pub struct PowerCut {
    backing: PathBuf,
    mountpoint: PathBuf,
    daemon: Option<Daemon>,
    /// Figures of the mounts before this one.
    earlier: Stats,
    cuts: u64,
    /// Directories made for [`PowerCut::temp`].
    _temp: Option<tempfile::TempDir>,
}

impl PowerCut {
    /// Mounts at `mountpoint` a file system whose disk is the directory `backing`.
    pub fn mount(backing: &Path, mountpoint: &Path) -> Self {
        require_fuse();
        let backing = backing.canonicalize().expect("the disk directory");
        let mountpoint = mountpoint.canonicalize().expect("the mount point");
        let daemon = Daemon::spawn(&backing, &mountpoint);
        Self {
            backing,
            mountpoint,
            daemon: Some(daemon),
            earlier: Stats::default(),
            cuts: 0,
            _temp: None,
        }
    }

    /// Mounts one over a fresh, empty disk, both in a temporary directory.
    pub fn temp() -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let backing = temp.path().join("disk");
        let mountpoint = temp.path().join("mnt");
        std::fs::create_dir(&backing).expect("disk dir");
        std::fs::create_dir(&mountpoint).expect("mount dir");
        let mut pc = Self::mount(&backing, &mountpoint);
        pc._temp = Some(temp);
        pc
    }

    /// Where programs see the files.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// The disk: what survives a cut (its content is rewritten at each cut).
    pub fn backing(&self) -> &Path {
        &self.backing
    }

    /// How many cuts there were.
    pub fn cuts(&self) -> u64 {
        self.cuts
    }

    fn daemon(&mut self) -> &mut Daemon {
        self.daemon.as_mut().expect("mounted")
    }

    /// What the file system did, over every mount.
    pub fn stats(&mut self) -> Stats {
        let line = self.daemon().ask("stats");
        self.earlier + daemon::parse_stats(&line)
    }

    /// The next `n` fsyncs of files fail with `EIO`, and the writes they were to carry are
    /// dropped (programs still read them until the next cut).
    pub fn fail_next_fsyncs(&mut self, n: u32) {
        let ok = self.daemon().ask(&format!("fail {n}"));
        assert_eq!(ok, "ok");
    }

    /// Holds the next fsync of a file unanswered until [`PowerCut::cut`]: the cut lands while
    /// the program waits for it, with that file's writes not yet on the disk (a torn cut
    /// tears them). The program's thread stays blocked until then.
    pub fn stall_next_fsync(&mut self) {
        let ok = self.daemon().ask("stall");
        assert_eq!(ok, "ok");
    }

    /// How many fsyncs are held unanswered now.
    pub fn stalled(&mut self) -> usize {
        let line = self.daemon().ask("stalled");
        line.parse()
            .unwrap_or_else(|_| panic!("the file system answered {line:?}, not a count"))
    }

    /// Cuts the power: from this instant nothing more reaches the disk (every change and
    /// every fsync fails with `EIO`). `kill` must then kill every program using the file
    /// system and close every file the caller has open in it; once it returns, what did not
    /// reach the disk is dropped (or torn, by `how`), the disk is written to the backing
    /// directory, and the file system is mounted again on it.
    pub fn cut(&mut self, how: Cut, kill: impl FnOnce()) {
        let ok = self.daemon().ask("freeze");
        assert_eq!(ok, "ok");
        kill();
        let command = match how {
            Cut::Clean => "cut clean".to_string(),
            Cut::Torn(seed) => format!("cut torn {seed}"),
        };
        let line = self.daemon().ask(&command);
        self.earlier = self.earlier + daemon::parse_stats(&line);
        self.daemon.take().expect("mounted").wait();
        self.wait_unmounted();
        self.cuts += 1;
        self.daemon = Some(Daemon::spawn(&self.backing, &self.mountpoint));
    }

    /// Waits until the dead file system's mount is gone. `fusermount3` unmounts it once the
    /// process has exited, but (when something still held a file open there, say) sometimes
    /// only after tens of seconds: after [`UNMOUNT_GRACE`] the mount is detached at once
    /// (`fusermount3 -u -z`), as a reboot would.
    fn wait_unmounted(&self) {
        let gone = |within: Duration| {
            for _ in 0..(within.as_millis() / 10) {
                if !mounted(&self.mountpoint) {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            !mounted(&self.mountpoint)
        };
        if gone(UNMOUNT_GRACE) {
            return;
        }
        let _ = Command::new("fusermount3")
            .args(["-u", "-z"])
            .arg(&self.mountpoint)
            .status();
        assert!(
            gone(DAEMON_TIMEOUT),
            "the power-cut file system at {} stayed mounted",
            self.mountpoint.display()
        );
    }
}

impl Drop for PowerCut {
    fn drop(&mut self) {
        // Its process exits when its stdin closes; `fusermount3` then unmounts.
        if let Some(daemon) = self.daemon.take() {
            daemon.wait();
        }
        for _ in 0..300 {
            if !mounted(&self.mountpoint) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
