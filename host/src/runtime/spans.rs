//! An instance's spans, when traces are exported (`crate::telemetry`): one per activation and
//! per activity attempt, and one per timer wait and event delivery that an await took, each
//! under the instance's trace context. When traces are off none is made.

use crate::clock::Millis;
use crate::history::{InstanceId, Pos};
use crate::store::ActivityWork;
use crate::telemetry;
use opentelemetry::trace::Status;
use opentelemetry::{Context, KeyValue};
use std::collections::HashMap;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The span of an activation of instance `id`, under its `trace`.
pub(super) fn activation(
    id: &InstanceId,
    orchestration: &str,
    trace: Option<&str>,
    replayed_calls: usize,
) -> tracing::Span {
    if !telemetry::on() {
        return tracing::Span::none();
    }
    let span =
        tracing::info_span!("activation", otel.name = %format!("activation {orchestration}"));
    telemetry::adopt(&span, trace);
    span.set_attribute("weft.instance_id", id.to_string());
    span.set_attribute("weft.orchestration", orchestration.to_string());
    span.set_attribute("weft.replayed_calls", replayed_calls as i64);
    span
}

/// The span of an attempt of an activity, under its instance's trace.
pub(super) fn attempt(work: &ActivityWork) -> tracing::Span {
    if !telemetry::on() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!("activity", otel.name = %format!("activity {}", work.name));
    telemetry::adopt(&span, work.trace.as_deref());
    span.set_attribute("weft.instance_id", work.instance.to_string());
    span.set_attribute("weft.orchestration", work.orchestration.clone());
    span.set_attribute("weft.activity", work.name.clone());
    span.set_attribute("weft.attempt", i64::from(work.attempt));
    span
}

/// Marks an attempt's span as failed with `error`.
pub(super) fn failed(span: &tracing::Span, error: &str) {
    if !span.is_disabled() {
        span.set_status(Status::error(error.to_string()));
    }
}

/// The waits of an activation that a span is made of once an await takes them: timers and
/// event waits, from when the orchestration made them.
pub(super) struct Waits {
    /// The activation's span context; `None` when traces are off.
    parent: Option<Context>,
    attributes: Vec<KeyValue>,
    open: HashMap<Pos, (String, Millis, Vec<KeyValue>)>,
}

impl Waits {
    pub(super) fn new(parent: Option<Context>, id: &InstanceId, orchestration: &str) -> Self {
        let attributes = match parent {
            Some(_) => vec![
                KeyValue::new("weft.instance_id", id.to_string()),
                KeyValue::new("weft.orchestration", orchestration.to_string()),
            ],
            None => Vec::new(),
        };
        Self {
            parent,
            attributes,
            open: HashMap::new(),
        }
    }

    /// The `traceparent` of the activation's span (a child's trace), if there is one.
    pub(super) fn traceparent(&self) -> Option<String> {
        self.parent.as_ref().and_then(telemetry::traceparent)
    }

    /// A timer at `handle` was made at orchestration time `since`.
    pub(super) fn timer(&mut self, handle: Pos, since: Millis, fire_at: Millis) {
        if self.parent.is_some() {
            let at = KeyValue::new("weft.fire_at", fire_at as i64);
            self.open.insert(handle, ("timer".into(), since, vec![at]));
        }
    }

    /// A wait for event `name` at `handle` was made at orchestration time `since`.
    pub(super) fn event(&mut self, handle: Pos, since: Millis, name: &str) {
        if self.parent.is_some() {
            let event = KeyValue::new("weft.event", name.to_string());
            self.open
                .insert(handle, (format!("event {name}"), since, vec![event]));
        }
    }

    /// An await took `handle` at orchestration time `at`: the span of its wait, if it is a
    /// timer or an event wait. `live` is false when the await is replayed: its span was made.
    pub(super) fn taken(&mut self, handle: Pos, at: Millis, live: bool) {
        let (Some(parent), Some((name, since, mut attributes))) =
            (&self.parent, self.open.remove(&handle))
        else {
            return;
        };
        if live {
            attributes.extend(self.attributes.iter().cloned());
            telemetry::record_wait(parent, name, since, at, attributes);
        }
    }
}
