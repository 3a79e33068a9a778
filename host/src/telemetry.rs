//! Traces through OpenTelemetry, exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, and off otherwise: `http/protobuf` unless
//! `OTEL_EXPORTER_OTLP_PROTOCOL` says `http/json`, under `OTEL_SERVICE_NAME` (`weft` by default).
//!
//! An instance's trace context is the `trace` of its `started` event, a W3C `traceparent`: the
//! start request's own when it sent one, under a `start` span. Every span of the instance
//! (activations, activity attempts, timer waits, event deliveries, children) hangs under it,
//! on whichever node runs it and after any restart.

use crate::clock::Millis;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Span as _, SpanKind, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};
use tracing_opentelemetry::OpenTelemetrySpanExt;

static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// The exporter while weft runs: dropping it sends the spans not yet sent.
pub struct Exporter {
    provider: SdkTracerProvider,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("weft: cannot send the last spans: {e}");
        }
    }
}

fn env_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

/// Whether the environment asks for traces.
pub fn configured() -> bool {
    env_set("OTEL_EXPORTER_OTLP_ENDPOINT") || env_set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
}

/// Starts exporting as the environment says, if it asks for traces: the exporter to keep
/// while weft runs, and the tracer of the `tracing` layer.
pub fn init() -> Result<Option<(Exporter, SdkTracer)>, String> {
    use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
    if !configured() {
        return Ok(None);
    }
    let mut builder = SpanExporter::builder().with_http();
    // OpenTelemetry's default, unless the environment names another.
    if !env_set("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") && !env_set("OTEL_EXPORTER_OTLP_PROTOCOL") {
        builder = builder.with_protocol(Protocol::HttpBinary);
    }
    let exporter = builder
        .build()
        .map_err(|e| format!("cannot export traces: {e}"))?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    if !env_set("OTEL_SERVICE_NAME") {
        resource = resource.with_service_name("weft");
    }
    let provider = SdkTracerProvider::builder()
        .with_resource(resource.build())
        .with_batch_exporter(exporter)
        .build();
    let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "weft");
    let _ = TRACER.set(tracer.clone());
    Ok(Some((Exporter { provider }, tracer)))
}

/// Whether spans are exported: when not, none is made.
pub fn on() -> bool {
    TRACER.get().is_some()
}

/// The context a `traceparent` names, if it is a valid one.
pub fn context(traceparent: &str) -> Option<Context> {
    let carrier = HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    cx.span().span_context().is_valid().then_some(cx)
}

/// The `traceparent` of a context, if it holds a span.
pub fn traceparent(cx: &Context) -> Option<String> {
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(cx, &mut carrier);
    carrier.remove("traceparent")
}

/// The trace context a new instance is started with: a `start` span under `incoming` (the
/// start request's `traceparent`), or `incoming` itself when traces are off.
pub fn instance_trace(name: &str, id: &str, incoming: Option<&str>) -> Option<String> {
    let parent = incoming.and_then(context);
    let Some(tracer) = TRACER.get() else {
        return parent.as_ref().and_then(traceparent);
    };
    let mut span = tracer
        .span_builder(format!("start {name}"))
        .with_kind(SpanKind::Server)
        .with_attributes([
            KeyValue::new("weft.instance_id", id.to_string()),
            KeyValue::new("weft.orchestration", name.to_string()),
        ])
        .start_with_context(tracer, &parent.unwrap_or_default());
    let trace = traceparent(&Context::new().with_remote_span_context(span.span_context().clone()));
    span.end();
    trace
}

/// Makes `span` a child of the instance's `trace`, before it is entered.
pub fn adopt(span: &tracing::Span, trace: Option<&str>) {
    if let Some(cx) = trace.and_then(context) {
        // Refused only when no layer exports the span: then nothing is lost.
        let _ = span.set_parent(cx);
    }
}

/// The context of a `tracing` span, if it is exported.
pub fn context_of(span: &tracing::Span) -> Option<Context> {
    if !on() || span.is_disabled() {
        return None;
    }
    let cx = span.context();
    cx.span().span_context().is_valid().then_some(cx)
}

fn system_time(at: Millis) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(at)
}

/// A span of what happened between `since` and `until` (a timer's wait, an event's), under
/// `parent`.
pub fn record_wait(
    parent: &Context,
    name: String,
    since: Millis,
    until: Millis,
    attributes: Vec<KeyValue>,
) {
    let Some(tracer) = TRACER.get() else {
        return;
    };
    let mut span = tracer
        .span_builder(name)
        .with_kind(SpanKind::Internal)
        .with_start_time(system_time(since))
        .with_attributes(attributes)
        .start_with_context(tracer, parent);
    span.end_with_timestamp(system_time(until.max(since)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_goes_through_unchanged_and_garbage_is_not_one() {
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let cx = context(tp).expect("a valid traceparent");
        assert_eq!(traceparent(&cx).as_deref(), Some(tp));
        for bad in [
            "",
            "00-xyz-abc-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        ] {
            assert!(context(bad).is_none(), "{bad:?}");
        }
        // Traces off: a new instance keeps the start request's context as it came.
        assert_eq!(instance_trace("o", "i", Some(tp)).as_deref(), Some(tp));
        assert_eq!(instance_trace("o", "i", Some("nonsense")), None);
    }
}
