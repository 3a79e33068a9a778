//! The server's log: colour codes only on a terminal, and never with `NO_COLOR` set.

mod common;

use common::{Options, Weft};
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const ESC: &str = "\x1b[";

#[tokio::test]
async fn a_log_written_to_a_pipe_has_no_colour_codes() {
    // The kit pipes stderr; `NO_COLOR=""` counts as not set, so only the pipe can turn colour off.
    let weft = Weft::start(Options::new(&["hello-sequence"]).env("NO_COLOR", ""));
    let log = weft.log();
    assert!(
        log.contains("INFO") && log.contains("component"),
        "the log has a line from the tracing subscriber: {log:?}"
    );
    assert!(!log.contains(ESC), "no colour codes: {log:?}");
}

/// Runs `weft serve` under a pseudo-terminal (`script` from util-linux), with `no_color` as
/// `NO_COLOR` (unset if `None`), until it listens; returns what it wrote to the terminal.
fn log_on_a_terminal(no_color: Option<&str>) -> String {
    assert!(
        Command::new("script").arg("--version").output().is_ok(),
        "this test needs `script` from util-linux (Debian: apt-get install bsdutils)"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let components = dir.path().join("components");
    std::fs::create_dir(&components).expect("components dir");
    std::fs::copy(
        common::component("hello-sequence"),
        components.join("hello-sequence.wasm"),
    )
    .expect("copy component");
    // The shell prints its pid, then becomes weft.
    let shell = "echo \"pid $$\"; exec \"$WEFT_BIN\" serve --db \"$WEFT_DIR/weft.db\" \
                 --listen 127.0.0.1:0 --components \"$WEFT_DIR/components\" \
                 --cache-dir \"$WEFT_CACHE\"";
    let mut cmd = Command::new("script");
    cmd.args([
        "--quiet",
        "--flush",
        "--return",
        "--command",
        shell,
        "/dev/null",
    ])
    .env("WEFT_BIN", env!("CARGO_BIN_EXE_weft"))
    .env("WEFT_DIR", dir.path())
    .env("WEFT_CACHE", common::root().join("target/weft-test-cache"))
    .env("WEFT_TOKEN", common::TOKEN)
    .env("RUST_LOG", "weft=info")
    .env("SHELL", "/bin/sh")
    .env_remove("NO_COLOR")
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    if let Some(v) = no_color {
        cmd.env("NO_COLOR", v);
    }
    let mut child = cmd.spawn().expect("spawn script");
    let mut out = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut text = String::new();
    while !text.contains("weft listening on") {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(bytes) => text.push_str(&String::from_utf8_lossy(&bytes)),
            Err(_) => break,
        }
    }
    // Stop weft by its pid, then the terminal.
    if let Some(pid) = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("pid "))
        .map(str::to_string)
    {
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        text.contains("weft listening on"),
        "weft did not start under a terminal: {text:?}"
    );
    text
}

#[test]
fn on_a_terminal_the_log_is_coloured_unless_no_color_is_set() {
    let coloured = log_on_a_terminal(None);
    assert!(
        coloured.contains("component") && coloured.contains(ESC),
        "coloured on a terminal: {coloured:?}"
    );
    let plain = log_on_a_terminal(Some("1"));
    assert!(
        plain.contains("component") && !plain.contains(ESC),
        "NO_COLOR=1 turns colour off: {plain:?}"
    );
}
