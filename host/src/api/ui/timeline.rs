//! A timeline drawn as SVG: one row per handle (activity, timer, child, entity call, event
//! wait) from when it was asked for to when it was answered, its failed attempts and retry
//! waits on it, a star where it won an await; a top row of moments (events raised, the start,
//! the end). Every label is text; details are in each shape's title.

use super::encode;
use crate::clock::{Millis, rfc3339};
use maud::{Markup, html};
use weft_core::timeline::{LaneKind, Timeline};

const WIDTH: f64 = 960.0;
const LABELS: f64 = 230.0;
const ROW: f64 = 24.0;
const TOP: f64 = 30.0;

/// How long after the start `at` is, for people.
fn offset(t: &Timeline, at: Millis) -> String {
    let ms = at.saturating_sub(t.from);
    if ms < 1_000 {
        format!("+{ms} ms")
    } else {
        format!("+{:.1} s", ms as f64 / 1_000.0)
    }
}

/// `text` cut to `n` characters.
fn cut(text: &str, n: usize) -> String {
    if text.chars().count() <= n {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(n - 1).collect::<String>())
    }
}

pub(super) fn svg(t: &Timeline) -> Markup {
    let span = (t.to.saturating_sub(t.from)).max(1) as f64;
    let chart = WIDTH - LABELS - 16.0;
    let x = |at: Millis| LABELS + (at.saturating_sub(t.from) as f64 / span) * chart;
    let y = |row: usize| TOP + ROW * row as f64;
    let height = y(t.lanes.len() + 1) + 8.0;
    let when = |at: Millis| format!("{} ({})", offset(t, at), rfc3339(at));
    html! {
        figure.timeline {
            svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="Timeline of the instance's history"
                width=(WIDTH) height=(height) viewBox={ "0 0 " (WIDTH) " " (height) } {
                text.axis x=(LABELS) y="14" { (offset(t, t.from)) }
                text.axis x=(WIDTH - 16.0) y="14" text-anchor="end" { (offset(t, t.to)) }
                line.grid x1=(LABELS) y1="20" x2=(LABELS) y2=(height - 8.0) {}
                g.lane.moments {
                    text.label x="4" y=(y(0) + 16.0) { "moments" }
                    @for m in &t.marks {
                        circle class={ "mark " (m.kind.as_str()) } data-kind=(m.kind.as_str())
                            cx=(x(m.at)) cy=(y(0) + 12.0) r="5" {
                            title { (m.kind.as_str()) ": " (m.label) " at " (when(m.at)) }
                        }
                    }
                }
                @for (n, lane) in t.lanes.iter().enumerate() {
                    @let top = y(n + 1);
                    @let from = x(lane.from);
                    @let to = x(lane.to.unwrap_or(t.to));
                    @let label = format!("{} {}", lane.kind.as_str(), cut(&lane.label, 24));
                    g class={ "lane " (lane.kind.as_str()) " " (lane.outcome.as_str()) }
                        data-kind=(lane.kind.as_str()) data-outcome=(lane.outcome.as_str()) data-handle=(lane.handle) {
                        @if let (LaneKind::Child, Some(child)) = (lane.kind, &lane.child) {
                            a href={ "/ui/instances/" (encode(child)) } {
                                text.label.link x="4" y=(top + 16.0) { (label) " → " (cut(child, 14)) }
                            }
                        } @else {
                            text.label x="4" y=(top + 16.0) { (label) }
                        }
                        rect.span x=(from) y=(top + 5.0) width=((to - from).max(3.0)) height=(ROW - 10.0) rx="3" {
                            title {
                                (lane.kind.as_str()) " " (lane.label) ": " (lane.outcome.as_str())
                                ", from " (when(lane.from))
                                @if let Some(end) = lane.to { " to " (when(end)) }
                            }
                        }
                        @for a in &lane.attempts {
                            @let failed = x(a.failed_at);
                            @let retry = x(a.retry_at.max(a.failed_at)).min(to);
                            rect.retry-wait x=(failed) y=(top + 9.0) width=((retry - failed).max(2.0)) height=(ROW - 18.0) {
                                title { "retry wait after attempt " (a.number) ", until " (when(a.retry_at)) }
                            }
                            line.attempt-failed x1=(failed) y1=(top + 3.0) x2=(failed) y2=(top + ROW - 3.0) {
                                title { "attempt " (a.number) " failed at " (when(a.failed_at)) ": " (a.error) }
                            }
                        }
                        @for won in &lane.won {
                            text.won x=(x(*won)) y=(top + 17.0) text-anchor="middle" {
                                "★" title { "won an await at " (when(*won)) }
                            }
                        }
                    }
                }
            }
            figcaption.legend {
                span.key.activity { "activity" } span.key.timer { "timer" } span.key.child { "child" }
                span.key.entity { "entity call" } span.key.event { "event wait" }
                span.key.retry { "retry wait" } span.key.won { "★ won the await" }
                span.key.failed { "failed" } span.key.cancelled { "cancelled" } span.key.open { "open" }
            }
            @if !t.awaits.is_empty() {
                ol.awaits {
                    @for a in &t.awaits {
                        li {
                            (offset(t, a.at)) ": an await of "
                            @for (k, h) in a.handles.iter().enumerate() {
                                @if k > 0 { ", " }
                                (name_of(t, *h))
                            }
                            " returned " strong.winner { (name_of(t, a.winner)) }
                        }
                    }
                }
            }
        }
    }
}

/// A handle as people read it: its kind and label.
fn name_of(t: &Timeline, handle: u32) -> String {
    t.lanes
        .iter()
        .rev()
        .find(|l| l.handle == handle)
        .map(|l| format!("{} {}", l.kind.as_str(), l.label))
        .unwrap_or_else(|| format!("handle {handle}"))
}
