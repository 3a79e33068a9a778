//! A fake SMS provider speaking Twilio's REST shape, on loopback.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Form, Json, Router};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

pub const ACCOUNT_SID: &str = "ACtest";
pub const AUTH_TOKEN: &str = "token123";
pub const FROM: &str = "+15550000000";
/// `Basic base64("ACtest:token123")`.
pub const EXPECTED_AUTH: &str = "Basic QUN0ZXN0OnRva2VuMTIz";

/// One message the provider received.
#[derive(Debug, Clone)]
pub struct Sms {
    pub account: String,
    pub authorization: Option<String>,
    pub to: String,
    pub from: String,
    pub body: String,
}

impl Sms {
    /// The 4-digit code in the body.
    pub fn code(&self) -> u32 {
        let codes: Vec<&str> = self
            .body
            .split(|c: char| !c.is_ascii_digit())
            .filter(|w| w.len() == 4)
            .collect();
        assert_eq!(
            codes.len(),
            1,
            "exactly one 4-digit number in {:?}",
            self.body
        );
        codes[0].parse().expect("digits")
    }
}

#[derive(Clone)]
struct Shared {
    messages: Arc<Mutex<Vec<Sms>>>,
    /// When set, each answer waits for a permit.
    gate: Option<Arc<Semaphore>>,
}

pub struct SmsProvider {
    pub url: String,
    shared: Shared,
}

impl SmsProvider {
    pub async fn start() -> Self {
        Self::serve(None).await
    }

    /// A provider that records each message at once but answers only after `release`.
    pub async fn gated() -> Self {
        Self::serve(Some(Arc::new(Semaphore::new(0)))).await
    }

    async fn serve(gate: Option<Arc<Semaphore>>) -> Self {
        let shared = Shared {
            messages: Arc::default(),
            gate,
        };
        let app = Router::new()
            .route("/2010-04-01/Accounts/{sid}/Messages.json", post(receive))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, shared }
    }

    /// Lets one held answer go.
    pub fn release(&self) {
        if let Some(g) = &self.shared.gate {
            g.add_permits(1);
        }
    }

    pub fn messages(&self) -> Vec<Sms> {
        self.shared.messages.lock().unwrap().clone()
    }

    /// The app settings `weft serve` needs to use this provider.
    pub fn settings(&self) -> Vec<(String, String)> {
        vec![
            ("TwilioBaseUrl".into(), self.url.clone()),
            ("TwilioAccountSid".into(), ACCOUNT_SID.into()),
            ("TwilioAuthToken".into(), AUTH_TOKEN.into()),
            ("TwilioPhoneNumber".into(), FROM.into()),
        ]
    }

    /// Waits for the `n`th message (1-based).
    pub async fn nth(&self, n: usize) -> Sms {
        super::eventually(
            &format!("the SMS provider receives message {n}"),
            async || self.messages().get(n - 1).cloned(),
        )
        .await
    }
}

async fn receive(
    State(shared): State<Shared>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> (StatusCode, Json<serde_json::Value>) {
    let sms = Sms {
        account: sid,
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        to: form.get("To").cloned().unwrap_or_default(),
        from: form.get("From").cloned().unwrap_or_default(),
        body: form.get("Body").cloned().unwrap_or_default(),
    };
    shared.messages.lock().unwrap().push(sms);
    if let Some(gate) = &shared.gate {
        gate.acquire().await.expect("gate open").forget();
    }
    (
        StatusCode::CREATED,
        Json(serde_json::json!({ "sid": "SM0001", "status": "queued" })),
    )
}
