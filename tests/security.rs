//! Security claims through the real `weft` binary: activities see the server's environment
//! less weft's own `WEFT_*` configuration, and every management route the OpenAPI document
//! describes needs the bearer token.

mod common;

use common::{Options, Weft};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn activities_see_app_settings_but_no_weft_variable() {
    // The kit runs the server with WEFT_TOKEN set; one more WEFT_ variable for good measure.
    let options = Options::new(&["fixtures"])
        .env("WEFT_SECRET_SETTING", "not for guests")
        .env("ShopApiKey", "for activities");
    let weft = Weft::start(options);
    weft.start_instance("activity-env", "env", json!(null))
        .await;
    let status = weft.finished("env").await;
    assert_eq!(status["runtimeStatus"], "Completed", "{status}");
    let names: Vec<&str> = status["output"]
        .as_array()
        .expect("a list of names")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        names.contains(&"ShopApiKey"),
        "the activity sees the app settings: {names:?}"
    );
    let weft_names: Vec<&&str> = names.iter().filter(|n| n.starts_with("WEFT_")).collect();
    assert!(weft_names.is_empty(), "{weft_names:?}");
}

/// Routes that answer without the token.
fn is_open(path: &str) -> bool {
    path.starts_with("/callbacks/") || ["/openapi.json", "/healthz", "/readyz"].contains(&path)
}

/// A documented path with its parameters filled in with plausible values.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| match segment {
            "{name}" => "counter",
            "{id}" | "{key}" => "some-id",
            "{event}" => "go",
            s if s.starts_with('{') => "x",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn every_documented_management_route_needs_the_token() {
    let weft = Weft::start(Options::new(&["fixtures"]));
    let anonymous = reqwest::Client::new();
    let doc: Value = anonymous
        .get(format!("{}/openapi.json", weft.url))
        .send()
        .await
        .expect("fetch the OpenAPI document")
        .json()
        .await
        .expect("the document is JSON");
    let paths = doc["paths"].as_object().expect("documented paths");
    let mut checked = Vec::new();
    for (path, item) in paths {
        if is_open(path) {
            continue;
        }
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            let uri = format!("{}{}", weft.url, concrete(path));
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            for token in [None, Some("wrong")] {
                let mut request = anonymous
                    .request(method.clone(), &uri)
                    .header("content-type", "application/json")
                    .body("1");
                if let Some(t) = token {
                    request = request.bearer_auth(t);
                }
                let resp = request.send().await.expect("request");
                let status = resp.status().as_u16();
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                assert_eq!(
                    (status, body["error"]["code"].as_str()),
                    (401, Some("unauthorized")),
                    "{method} {path} with token {token:?}"
                );
            }
            checked.push(format!("{method} {path}"));
        }
    }
    // The document is the one the routes come from: every management route is in it.
    for route in [
        "POST /orchestrations/{name}",
        "GET /instances",
        "DELETE /instances",
        "GET /instances/{id}",
        "DELETE /instances/{id}",
        "POST /instances/{id}/raiseEvent/{event}",
        "POST /instances/{id}/terminate",
        "POST /instances/{id}/suspend",
        "POST /instances/{id}/resume",
        "POST /instances/{id}/upgrade",
        "POST /components",
        "GET /entities",
        "GET /entities/{name}/{key}",
        "POST /entities/{name}/{key}",
        "DELETE /entities/{name}/{key}",
        "GET /entities/{name}/{key}/history",
        "POST /admin/clock/advance",
    ] {
        assert!(checked.iter().any(|c| c == route), "{route} in {checked:?}");
    }
    // The token gets through the same routes (here: to the instance's 404).
    let (status, body) = weft.request(Method::GET, "/instances/some-id", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("instance_not_found"))
    );
}
