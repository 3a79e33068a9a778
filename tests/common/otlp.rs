//! A small OpenTelemetry collector on loopback: takes OTLP/HTTP trace exports (`POST
//! /v1/traces`, protobuf or JSON) and keeps their spans for the test to look at.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use prost::Message;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// One span received, with its ids in lower-case hex (a root's parent is "").
#[derive(Debug, Clone)]
pub struct Span {
    pub trace_id: String,
    pub span_id: String,
    pub parent_id: String,
    pub name: String,
    /// 1 internal, 2 server, 3 client.
    pub kind: i32,
    pub attributes: BTreeMap<String, String>,
    /// The `service.name` of the resource that sent it.
    pub service: String,
    /// 2: error.
    pub status: i32,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
}

impl Span {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

#[derive(Clone, Default)]
struct Shared {
    spans: Arc<Mutex<Vec<Span>>>,
    content_types: Arc<Mutex<Vec<String>>>,
}

pub struct Collector {
    /// What `OTEL_EXPORTER_OTLP_ENDPOINT` is set to.
    pub endpoint: String,
    shared: Shared,
}

impl Collector {
    pub async fn start() -> Self {
        let shared = Shared::default();
        let app = axum::Router::new()
            .route("/v1/traces", post(receive))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { endpoint, shared }
    }

    pub fn spans(&self) -> Vec<Span> {
        self.shared.spans.lock().unwrap().clone()
    }

    /// The content types of the exports received.
    pub fn content_types(&self) -> Vec<String> {
        self.shared.content_types.lock().unwrap().clone()
    }

    /// Waits until the spans received satisfy `done`; returns them.
    pub async fn until(&self, what: &str, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        super::eventually(what, async || {
            let spans = self.spans();
            done(&spans).then_some(spans)
        })
        .await
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(value: Option<&Any>) -> String {
    match value {
        Some(Any::StringValue(s)) => s.clone(),
        Some(Any::IntValue(i)) => i.to_string(),
        Some(Any::BoolValue(b)) => b.to_string(),
        Some(Any::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

async fn receive(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let kind = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let request = match kind.as_str() {
        "application/x-protobuf" => {
            ExportTraceServiceRequest::decode(body).map_err(|e| e.to_string())
        }
        "application/json" => serde_json::from_slice(&body).map_err(|e| e.to_string()),
        other => Err(format!("unexpected content type {other:?}")),
    };
    let request = match request {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, e),
    };
    shared.content_types.lock().unwrap().push(kind);
    let mut spans = shared.spans.lock().unwrap();
    for resource in &request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|a| a.key == "service.name")
            .map(|a| text(a.value.as_ref().and_then(|v| v.value.as_ref())))
            .unwrap_or_default();
        for s in resource.scope_spans.iter().flat_map(|s| &s.spans) {
            spans.push(Span {
                trace_id: hex(&s.trace_id),
                span_id: hex(&s.span_id),
                parent_id: hex(&s.parent_span_id),
                name: s.name.clone(),
                kind: s.kind,
                attributes: s
                    .attributes
                    .iter()
                    .map(|a| {
                        (
                            a.key.clone(),
                            text(a.value.as_ref().and_then(|v| v.value.as_ref())),
                        )
                    })
                    .collect(),
                service: service.clone(),
                status: s.status.as_ref().map_or(0, |st| st.code),
                start_unix_nano: s.start_time_unix_nano,
                end_unix_nano: s.end_time_unix_nano,
            });
        }
    }
    (StatusCode::OK, "{}".into())
}
