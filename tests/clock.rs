//! The manual clock: its time is committed with each advance, survives a killed host and never
//! moves back.

mod common;

use common::{Options, Weft};
use serde_json::json;

/// 2026-01-01T00:00:00Z, the kit's start time, in milliseconds.
const START: u64 = 1_767_225_600_000;

#[tokio::test]
async fn the_manual_clock_keeps_its_time_across_a_kill() {
    // The kit starts every incarnation with --start-time 2026-01-01T00:00:00Z.
    let mut weft = Weft::start(Options::new(&["fixtures"]));
    weft.start_instance("wait-twice", "w", json!(null)).await;
    let history = weft.history_has("w", "timer_created").await;
    let timer = history
        .iter()
        .find(|e| e["type"] == "timer_created")
        .unwrap();
    assert_eq!(timer["fire_at"], START + 30_000, "{timer}");

    let answer = weft.advance(1800.0).await;
    assert_eq!(answer["now"], "2026-01-01T00:30:00.000Z", "{answer}");
    assert_eq!(answer["timersFired"], 1, "the 30 s wait timed out");

    weft.restart(); // SIGKILL, then the same --start-time again
    let answer = weft.advance(0.0).await;
    assert_eq!(
        answer["now"], "2026-01-01T00:30:00.000Z",
        "the clock does not move back: {answer}"
    );
    // The second wait's timer was armed at 00:30:00 for 00:30:30: 31 s more fire it.
    weft.history_has_n("w", "timer_created", 2).await;
    let answer = weft.advance(31.0).await;
    assert_eq!(answer["now"], "2026-01-01T00:30:31.000Z", "{answer}");
    let status = weft.finished("w").await;
    assert_eq!(status["output"], json!([null, null]), "{status}");

    // Committed: the database holds the time the last answer gave.
    assert_eq!(
        weft.query_i64("SELECT now FROM manual_clock"),
        START as i64 + 1_831_000
    );
}

#[tokio::test]
async fn a_later_start_time_moves_the_kept_clock_forward_never_back() {
    let mut options = Options::new(&["fixtures"]);
    options.start_time = "2026-06-01T00:00:00Z".into();
    let mut weft = Weft::start(options);
    weft.advance(60.0).await;
    // Started again, told an earlier time: the kept one wins.
    weft.set_start_time("2026-01-01T00:00:00Z");
    weft.restart();
    let earlier = weft.advance(0.0).await;
    assert_eq!(earlier["now"], "2026-06-01T00:01:00.000Z", "{earlier}");
    // Told a later one: the clock moves forward to it.
    weft.set_start_time("2027-01-01T00:00:00Z");
    weft.restart();
    let later = weft.advance(0.0).await;
    assert_eq!(later["now"], "2027-01-01T00:00:00.000Z", "{later}");
}
