//! The load's client: it sends starts, events and entity operations to one node or several,
//! survives a node going away (transport errors are answers too), and keeps a ledger of what
//! was acknowledged.

use super::load::{Kind, Plan, fnv1a, wrong};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One entity operation sent over HTTP: `add` of a value no other signal of the run adds, to
/// counter `key` (the `counter` entity of the `fixtures` component).
#[derive(Debug, Clone)]
pub struct Signal {
    pub key: String,
    pub value: i64,
    /// How many requests carried it: each may have been applied (at most once each).
    pub sends: usize,
}

/// What the client got a `202` for.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    /// Instance ids whose start was acknowledged.
    pub starts: Vec<String>,
    /// (instance id, the raise's tag) of each acknowledged event.
    pub events: Vec<(String, String)>,
    /// Each acknowledged entity operation.
    pub signals: Vec<Signal>,
    /// The digest of each acknowledged deploy.
    pub deploys: Vec<String>,
}

/// A client that survives a host going away: transport errors are answers too. With several
/// nodes, each request goes to the node it names and, when that one does not answer, to the
/// next; nodes marked down are tried last.
pub struct Client {
    pub http: reqwest::Client,
    /// The first node's URL.
    pub url: String,
    pub nodes: Vec<String>,
    down: Mutex<HashSet<usize>>,
    /// The last few requests no node answered, and why (for failure messages).
    failures: Mutex<std::collections::VecDeque<String>>,
    pub ledger: Mutex<Ledger>,
}

impl Client {
    pub fn new(url: &str) -> Self {
        Self::cluster(&[url.to_string()], Duration::from_secs(20))
    }

    /// A client of the nodes at `urls`, whose requests time out after `timeout`.
    pub fn cluster(urls: &[String], timeout: Duration) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", super::TOKEN)
                .parse()
                .expect("header value"),
        );
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(timeout)
            .build()
            .expect("client");
        Self {
            http,
            url: urls[0].clone(),
            nodes: urls.to_vec(),
            down: Mutex::default(),
            failures: Mutex::default(),
            ledger: Mutex::default(),
        }
    }

    pub fn ledger(&self) -> Ledger {
        self.ledger.lock().unwrap().clone()
    }

    /// Marks node `node` down (tried last: say, it is frozen and would not answer) or up.
    pub fn set_down(&self, node: usize, down: bool) {
        let mut set = self.down.lock().unwrap();
        if down {
            set.insert(node);
        } else {
            set.remove(&node);
        }
    }

    /// The node `id`'s requests of one kind go to first: `offset` 0 for its start, 1 for its
    /// events, 2 for reading it (different nodes, when there are three).
    pub fn home(&self, id: &str, offset: usize) -> usize {
        (fnv1a(id) as usize + offset) % self.nodes.len()
    }

    /// Status and JSON body, or `None` when the host could not be reached or went away.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Option<(u16, Value)> {
        self.send_via(0, method, path, body, &mut 0).await
    }

    /// Like [`Client::send`], to node `node` first, then to the others; `tries` counts the
    /// requests sent (each may have reached its node, answered or not).
    pub async fn send_via(
        &self,
        node: usize,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        tries: &mut usize,
    ) -> Option<(u16, Value)> {
        let n = self.nodes.len();
        let down = self.down.lock().unwrap().clone();
        let (up, last): (Vec<usize>, Vec<usize>) = (0..n)
            .map(|k| (node + k) % n)
            .partition(|k| !down.contains(k));
        for k in up.into_iter().chain(last) {
            *tries += 1;
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.nodes[k]));
            if let Some(b) = body {
                req = req.json(b);
            }
            let failed = |e: reqwest::Error| {
                let mut failures = self.failures.lock().unwrap();
                if failures.len() == 8 {
                    failures.pop_front();
                }
                failures.push_back(format!("{method} {} {path}: {e:?}", self.nodes[k]));
            };
            let resp = match req.send().await {
                Ok(resp) => resp,
                Err(e) => {
                    failed(e);
                    continue;
                }
            };
            let status = resp.status().as_u16();
            let text = match resp.text().await {
                Ok(text) => text,
                Err(e) => {
                    failed(e);
                    continue;
                }
            };
            let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            return Some((status, value));
        }
        None
    }

    /// Sends a request (to node `node` first) until a node answers it with a status under
    /// 500; that answer. Fails after 60 s, saying what went wrong last.
    pub async fn until_answered(
        &self,
        what: &str,
        node: usize,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        tries: &mut usize,
    ) -> (u16, Value) {
        let mut last = String::new();
        let answer = super::poll_until(async || {
            match self.send_via(node, method.clone(), path, body, tries).await {
                Some((s, body)) if s < 500 => Some((s, body)),
                Some((s, body)) => {
                    last = format!("answered {s} {body}");
                    None
                }
                None => {
                    last = "no node answered".into();
                    None
                }
            }
        })
        .await;
        answer.unwrap_or_else(|| {
            let failures = self.failures.lock().unwrap();
            panic!(
                "timed out waiting until {what}: {last}; the last failed requests: {failures:#?}"
            )
        })
    }

    /// Starts an instance, again and again until it is acknowledged.
    pub async fn start(&self, plan: &Plan) {
        let path = format!(
            "/orchestrations/{}?instanceId={}",
            plan.orchestration(),
            plan.id
        );
        let input = plan.input();
        let node = self.home(&plan.id, 0);
        let what = format!("the start of {} is acknowledged", plan.id);
        let post = reqwest::Method::POST;
        match self
            .until_answered(&what, node, post, &path, Some(&input), &mut 0)
            .await
        {
            (202, _) => {}
            (s, body) => panic!("start {}: {s} {body}", plan.id),
        }
        self.ledger.lock().unwrap().starts.push(plan.id.clone());
    }

    /// Raises `answer` with `payload` (tagged `tag`) until it is acknowledged (`true`) or the
    /// instance has ended (`false`: an earlier attempt was recorded and finished it).
    pub async fn raise(&self, id: &str, code: u64, tag: &str) -> bool {
        let path = format!("/instances/{id}/raiseEvent/answer");
        let payload = json!({ "code": code, "raise": tag });
        let node = self.home(id, 1);
        let what = format!("event {tag} is acknowledged");
        let post = reqwest::Method::POST;
        let acked = match self
            .until_answered(&what, node, post, &path, Some(&payload), &mut 0)
            .await
        {
            (202, _) => true,
            (410, _) => false,
            (s, body) => panic!("raise {tag}: {s} {body}"),
        };
        if acked {
            let event = (id.to_string(), tag.to_string());
            self.ledger.lock().unwrap().events.push(event);
        }
        acked
    }

    /// The status with history, when the host answers.
    pub async fn status(&self, id: &str) -> Option<Value> {
        let path = format!("/instances/{id}?showHistory=true");
        let node = self.home(id, 2);
        match self
            .send_via(node, reqwest::Method::GET, &path, None, &mut 0)
            .await?
        {
            (200, body) => Some(body),
            _ => None,
        }
    }

    /// Sends `add` of `value` to counter `key` through node `node` until it is acknowledged.
    pub async fn signal(&self, node: usize, key: &str, value: i64) {
        let path = format!("/entities/counter/{key}?op=add");
        let input = json!(value);
        let mut sends = 0;
        let what = format!("signal {key} +{value} is acknowledged");
        let post = reqwest::Method::POST;
        match self
            .until_answered(&what, node, post, &path, Some(&input), &mut sends)
            .await
        {
            (202, _) => {}
            (s, body) => panic!("signal {key} +{value}: {s} {body}"),
        }
        let signal = Signal {
            key: key.to_string(),
            value,
            sends,
        };
        self.ledger.lock().unwrap().signals.push(signal);
    }
}

/// How long a deploy is tried again before the test fails.
const DEPLOY_DEADLINE: Duration = Duration::from_secs(240);

impl Client {
    /// Deploys component `bytes` through node `node` until a node acknowledges it.
    pub async fn deploy(&self, node: usize, bytes: Vec<u8>) {
        let n = self.nodes.len();
        let mut last = String::new();
        let mut k = node;
        // A deploy compiles the component before it is acknowledged: under power cuts every
        // few hundred milliseconds on a busy machine, only a later, longer life may fit it.
        let acked = super::poll_for(DEPLOY_DEADLINE, async || {
            k = (k + 1) % n;
            let resp = self
                .http
                .post(format!("{}/components", self.nodes[k]))
                .header("content-type", "application/wasm")
                .body(bytes.clone())
                .send()
                .await;
            let resp = match resp {
                Ok(resp) => resp,
                Err(e) => {
                    last = format!("{e:?}");
                    return None;
                }
            };
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or_default();
            match status {
                200 | 201 => Some(body),
                s if s >= 500 => {
                    last = format!("answered {s} {body}");
                    None
                }
                s => panic!("deploy: {s} {body}"),
            }
        })
        .await;
        let body = acked.unwrap_or_else(|| panic!("timed out deploying a component: {last}"));
        let digest = body["digest"]
            .as_str()
            .unwrap_or_else(|| panic!("a deploy answer names the digest: {body}"));
        self.ledger.lock().unwrap().deploys.push(digest.to_string());
    }
}

/// Sends counter `key` the values `values`, one after the other, each through the next node.
pub async fn drive_signals(client: Arc<Client>, key: String, values: Vec<i64>) {
    for (i, value) in values.into_iter().enumerate() {
        client.signal(i % client.nodes.len(), &key, value).await;
    }
}

/// Drives one instance: starts it and, for a verification, answers it.
pub async fn drive(client: Arc<Client>, plan: Plan) {
    client.start(&plan).await;
    answer(&client, &plan).await;
}

/// Answers a verification (after its code was sent): its wrong answers, then the right one.
/// Nothing for the other kinds.
pub async fn answer(client: &Client, plan: &Plan) {
    let Kind::Verify { wrong: wrongs } = plan.kind else {
        return;
    };
    let id = &plan.id;
    // The code the person "received": the output of `send-code` in the history.
    let code = super::eventually(&format!("{id} has sent its code"), async || {
        let status = client.status(id).await?;
        let history = status["historyEvents"].as_array()?;
        history
            .iter()
            .find(|e| e["type"] == "activity_completed")
            .and_then(|e| e["output"].as_u64())
    })
    .await;
    for k in 0..wrongs {
        let acked = client
            .raise(id, wrong(code, k), &format!("{id}/wrong-{k}"))
            .await;
        assert!(acked, "{id} ended before its right answer");
    }
    client.raise(id, code, &format!("{id}/right")).await;
}
