//! The client side of the command line: requests to a weft server and how their answers are
//! printed.

use super::EntityCommand;
use anyhow::{Context as _, bail};

pub(super) async fn entity_command(
    client: &Client,
    command: EntityCommand,
    json: bool,
) -> anyhow::Result<()> {
    let at = |name: &str, key: &str| format!("/entities/{}/{}", segment(name), segment(key));
    match command {
        EntityCommand::Get { name, key } => {
            let v = client.get(&at(&name, &key), &[]).await?;
            if json {
                println!("{v}");
            } else {
                println!("{}", serde_json::to_string_pretty(&v["state"])?);
            }
        }
        EntityCommand::History { name, key } => {
            let v = client
                .get(&format!("{}/history", at(&name, &key)), &[])
                .await?;
            let ops = v["operations"].as_array().cloned().unwrap_or_default();
            if json {
                println!("{}", serde_json::Value::Array(ops));
                return Ok(());
            }
            for op in &ops {
                let result = match (&op["output"], &op["error"]) {
                    (serde_json::Value::Null, e) if !e.is_null() => format!("error {e}"),
                    (o, _) => o.to_string(),
                };
                println!(
                    "{}  {:>4}  {:<20} {} -> {}",
                    op["time"].as_str().unwrap_or_default(),
                    op["seq"],
                    op["operation"].as_str().unwrap_or_default(),
                    shortened(&op["input"].to_string(), 60),
                    shortened(&result, 40)
                );
            }
        }
        EntityCommand::Signal {
            name,
            key,
            operation,
            input,
        } => {
            let path = format!("{}?op={}", at(&name, &key), segment(&operation));
            client.post(&path, &json_arg(input.as_deref())?).await?;
        }
        EntityCommand::List { name, top } => {
            let mut query = vec![("top", top.to_string())];
            if let Some(n) = name {
                query.push(("name", n));
            }
            let v = client.get("/entities", &query).await?;
            if json {
                println!("{v}");
                return Ok(());
            }
            println!(
                "{:<20} {:<34} {:>10} LAST MODIFIED",
                "NAME", "KEY", "OPERATIONS"
            );
            for e in v["entities"].as_array().into_iter().flatten() {
                println!(
                    "{:<20} {:<34} {:>10} {}",
                    e["name"].as_str().unwrap_or_default(),
                    e["key"].as_str().unwrap_or_default(),
                    e["operationCount"],
                    e["lastModifiedTime"].as_str().unwrap_or_default(),
                );
            }
        }
        EntityCommand::Purge { name, key } => {
            client.delete(&at(&name, &key)).await?;
        }
    }
    Ok(())
}

/// One history event as a line: time, position, event, name, short payload.
pub(super) fn timeline_line(e: &serde_json::Value) -> String {
    let time = e["timestamp"].as_str().unwrap_or_default();
    let kind = e["type"].as_str().unwrap_or_default();
    let name = ["name", "event"]
        .iter()
        .find_map(|k| e[*k].as_str())
        .unwrap_or_default();
    let payload = [
        "input", "output", "payload", "error", "reason", "status", "value",
    ]
    .iter()
    .map(|k| &e[*k])
    .find(|v| !v.is_null())
    .or_else(|| e.get("completion").map(|c| &c["value"]))
    .map(|v| v.to_string())
    .unwrap_or_default();
    format!(
        "{time}  {:>4}  {kind:<22} {name:<22} {}",
        e["seq"],
        shortened(&payload, 60)
    )
}

/// At most `max` characters of `s`, with `…` when cut.
pub(super) fn shortened(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// Percent-encodes a path segment.
pub(super) fn segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// An HTTP client of a weft server.
pub(super) struct Client {
    pub(super) http: reqwest::Client,
    pub(super) server: String,
    pub(super) token: Option<String>,
}

impl Client {
    fn auth(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    pub(super) async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}{path}", self.server);
        send(self.auth(self.http.get(url).query(query))).await
    }

    pub(super) async fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}{path}", self.server);
        send(self.auth(self.http.post(url).json(body))).await
    }

    pub(super) async fn post_bytes(
        &self,
        path: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}{path}", self.server);
        let request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body);
        send(self.auth(request)).await
    }

    pub(super) async fn delete(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}{path}", self.server);
        send(self.auth(self.http.delete(url))).await
    }

    pub(super) async fn lifecycle(
        &self,
        id: &str,
        action: &str,
        reason: Option<String>,
        more: &[(&str, String)],
    ) -> anyhow::Result<()> {
        let url = format!("{}/instances/{}/{action}", self.server, segment(id));
        let mut r = self.http.post(url).query(more);
        if let Some(reason) = reason {
            r = r.query(&[("reason", reason)]);
        }
        send(self.auth(r)).await?;
        Ok(())
    }
}

pub(super) fn json_arg(arg: Option<&str>) -> anyhow::Result<serde_json::Value> {
    match arg {
        None => Ok(serde_json::Value::Null),
        Some(s) => serde_json::from_str(s).with_context(|| format!("'{s}' is not valid JSON")),
    }
}

/// Sends a request; the JSON answer, or the server's error message as the error.
pub(super) async fn send(request: reqwest::RequestBuilder) -> anyhow::Result<serde_json::Value> {
    let response = request
        .send()
        .await
        .context("cannot reach the weft server")?;
    let status = response.status();
    let text = response.text().await.context("reading the answer")?;
    let value: serde_json::Value = if text.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
    };
    if !status.is_success() {
        let message = value["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| value.to_string());
        bail!("{} ({status})", message);
    }
    Ok(value)
}
