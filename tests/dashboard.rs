//! The dashboard at `/ui/`: signing in with the server's token into a strict cookie, pages that
//! show every user-supplied string as text, forms that refuse requests from other sites, the
//! API's refusals shown on the page, the timeline, counts and filters; and the whole of it
//! driven in headless Chromium (`tests/browser/dashboard.mjs`).

mod common;

use common::{Options, TOKEN, Weft, bounded_client};
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Response, StatusCode, redirect};
use serde_json::json;
use std::time::Duration;

/// A browser's view of the dashboard: it follows no redirect and keeps the session cookie.
struct Ui {
    http: reqwest::Client,
    url: String,
    cookie: Option<String>,
}

impl Ui {
    fn new(weft: &Weft) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(redirect::Policy::none())
                .timeout(common::REQUEST_TIMEOUT)
                .build()
                .unwrap(),
            url: weft.url.clone(),
            cookie: None,
        }
    }

    async fn get(&self, path: &str) -> Response {
        let mut req = self.http.get(format!("{}{path}", self.url));
        if let Some(c) = &self.cookie {
            req = req.header(COOKIE, c);
        }
        req.send().await.expect("GET")
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Response {
        let mut req = self.http.post(format!("{}{path}", self.url)).form(form);
        if let Some(c) = &self.cookie {
            req = req.header(COOKIE, c);
        }
        req.send().await.expect("POST")
    }

    /// Signs in with `token`: the response to the form.
    async fn sign_in(&mut self, token: &str) -> Response {
        let resp = self.post("/ui/login", &[("token", token)]).await;
        if let Some(set) = resp.headers().get(SET_COOKIE) {
            let pair = set.to_str().unwrap().split(';').next().unwrap().to_string();
            self.cookie = Some(pair);
        }
        resp
    }

    /// The text of the page at `path`, which must answer 200 with HTML.
    async fn page(&self, path: &str) -> String {
        let resp = self.get(path).await;
        assert_eq!(resp.status(), 200, "GET {path}");
        assert!(
            resp.headers()[CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        resp.text().await.unwrap()
    }

    /// The form token written in a page.
    async fn csrf(&self) -> String {
        let page = self.page("/ui/instances").await;
        let at = page.find("name=\"csrf\" value=\"").expect("a form token") + 19;
        page[at..at + 64].to_string()
    }
}

fn location(resp: &Response) -> &str {
    resp.headers()[LOCATION].to_str().unwrap()
}

async fn status_of(weft: &Weft, id: &str) -> String {
    weft.status(id).await["runtimeStatus"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn signing_in_takes_the_token_once_and_keeps_a_strict_cookie() {
    let weft = Weft::start(Options::new(&["fixtures"]));
    let mut ui = Ui::new(&weft);

    let resp = ui.get("/ui/instances").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "signed out");
    assert_eq!(location(&resp), "/ui/login");

    let resp = ui.get("/ui/login").await;
    let h = resp.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");

    let resp = ui.sign_in("not-the-token").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers().get(SET_COOKIE).is_none());
    assert!(resp.text().await.unwrap().contains("not the server"));
    assert!(ui.cookie.is_none());

    let resp = ui.sign_in(TOKEN).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/ui/instances");
    let set = resp.headers()[SET_COOKIE].to_str().unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=43200"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains(TOKEN), "the cookie does not hold the token");
    let page = ui.page("/ui/instances").await;
    assert!(page.contains("Sign out"));
    assert!(!page.contains(TOKEN), "no page shows the token");

    // The cookie opens the dashboard only, not the API.
    let resp = bounded_client()
        .get(format!("{}/instances", weft.url))
        .header(COOKIE, ui.cookie.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // A cookie signed otherwise is no session.
    let forged = Ui {
        cookie: Some(format!("weft_session=1.{}", "0".repeat(64))),
        ..Ui::new(&weft)
    };
    assert_eq!(
        forged.get("/ui/instances").await.status(),
        StatusCode::SEE_OTHER
    );

    let csrf = ui.csrf().await;
    let resp = ui.post("/ui/logout", &[("csrf", &csrf)]).await;
    assert_eq!(location(&resp), "/ui/login");
    let cleared = resp.headers()[SET_COOKIE].to_str().unwrap();
    assert!(
        cleared.starts_with("weft_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
}

#[tokio::test]
async fn every_user_supplied_string_shows_as_text() {
    let weft = Weft::start(Options::new(&["fixtures"]));
    weft.start_instance("wait-with-timeout", "xss", json!(600.0))
        .await;
    let name = "<b>&\"ev'</b>";
    let encoded: String = name
        .bytes()
        .map(|b| format!("%{b:02X}"))
        .collect::<Vec<_>>()
        .concat();
    let resp = weft
        .http
        .post(format!("{}/instances/xss/raiseEvent/{encoded}", weft.url))
        .json(&json!({"<script>alert(1)</script>": "</pre><img src=x onerror=alert(2)>"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    weft.history_has("xss", "event_raised").await;

    let mut ui = Ui::new(&weft);
    ui.sign_in(TOKEN).await;
    let page = ui.page("/ui/instances/xss").await;
    assert!(!page.contains("<script>alert"), "a payload is no markup");
    assert!(!page.contains("<img src=x"), "a payload is no markup");
    assert!(!page.contains("<b>&"), "an event name is no markup");
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the payload is there, as text"
    );
    assert!(page.contains("&lt;b&gt;&amp;"), "the event name, as text");
    // The same in the part a live page fetches.
    let live = ui.page("/ui/instances/xss/live").await;
    assert!(!live.contains("<img src=x") && live.contains("&lt;img src=x"));
}

#[tokio::test]
async fn a_form_without_the_sessions_token_changes_nothing() {
    let weft = Weft::start(Options::new(&["fixtures"]));
    weft.start_instance("wait-with-timeout", "w", json!(600.0))
        .await;
    weft.history_has("w", "event_wait_created").await;
    let mut ui = Ui::new(&weft);

    // Another site's form: no cookie (SameSite=Strict keeps it home), so no session.
    let resp = ui
        .post("/ui/instances/w/terminate", &[("reason", "x")])
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/ui/login");
    // Signed in, but without the form token or with a wrong one.
    ui.sign_in(TOKEN).await;
    let resp = ui
        .post("/ui/instances/w/terminate", &[("reason", "x")])
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let wrong = "0".repeat(64);
    let resp = ui
        .post("/ui/instances/w/terminate", &[("csrf", &wrong)])
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        weft.stored_events("w", "terminated"),
        0,
        "nothing was recorded"
    );
    assert_eq!(status_of(&weft, "w").await, "Running");

    let csrf = ui.csrf().await;
    let resp = ui
        .post(
            "/ui/instances/w/terminate",
            &[("csrf", &csrf), ("reason", "from the form")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/ui/instances/w?done=terminate");
    assert_eq!(status_of(&weft, "w").await, "Terminated");
    let page = ui.page("/ui/instances/w?done=terminate").await;
    assert!(page.contains("The instance was terminated."));
    assert!(page.contains("from the form"));
}

#[tokio::test]
async fn a_refused_action_shows_the_apis_error_on_the_page() {
    let weft = Weft::start(Options::new(&["fixtures"]));
    weft.start_instance("wait-with-timeout", "w", json!(600.0))
        .await;
    weft.history_has("w", "event_wait_created").await;
    let mut ui = Ui::new(&weft);
    ui.sign_in(TOKEN).await;
    let csrf = ui.csrf().await;

    let resp = ui
        .post(
            "/ui/instances/w/raise",
            &[("csrf", &csrf), ("event", "answer"), ("payload", "{nope")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let page = resp.text().await.unwrap();
    assert!(page.contains("invalid_json"), "the API's code: {page}");
    assert!(
        page.contains("Raise event"),
        "the page is still there to retry"
    );
    assert_eq!(weft.stored_events("w", "event_raised"), 0);

    let resp = ui
        .post(
            "/ui/instances/w/upgrade",
            &[("csrf", &csrf), ("to", &"a".repeat(64))],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(resp.text().await.unwrap().contains("unknown_component"));

    let resp = ui.post("/ui/instances/w/purge", &[("csrf", &csrf)]).await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    assert!(resp.text().await.unwrap().contains("instance_running"));
    assert_eq!(status_of(&weft, "w").await, "Running");

    let resp = ui.get("/ui/instances/nobody").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(resp.text().await.unwrap().contains("instance_not_found"));

    // Raised from the form, the event completes the instance.
    let resp = ui
        .post(
            "/ui/instances/w/raise",
            &[("csrf", &csrf), ("event", "answer"), ("payload", "42")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let done = weft.finished("w").await;
    assert_eq!(done["output"], json!(42));
    // Purged from the form, it is gone.
    let resp = ui.post("/ui/instances/w/purge", &[("csrf", &csrf)]).await;
    assert_eq!(location(&resp), "/ui/instances");
    assert!(weft.try_status("w").await.is_none());
}

#[tokio::test]
async fn the_timeline_shows_spans_attempts_waits_and_winners() {
    let weft = Weft::start(Options::new(&["hello-sequence", "fixtures"]));
    // Started in a caller's trace (traces are off: the context is kept as it came).
    let started = weft
        .http
        .post(format!(
            "{}/orchestrations/hello-sequence?instanceId=seq",
            weft.url
        ))
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .send()
        .await
        .expect("start seq");
    assert_eq!(started.status(), 202);
    weft.finished("seq").await;
    retried(&weft).await;
    weft.start_instance("wait-with-timeout", "w", json!(600.0))
        .await;
    weft.history_has("w", "event_wait_created").await;
    weft.raise("w", "answer", json!(1)).await;
    weft.finished("w").await;
    weft.start_instance("parent", "p", json!(null)).await;
    weft.history_has("p", "sub_orchestration_scheduled").await;

    let mut ui = Ui::new(&weft);
    ui.sign_in(TOKEN).await;
    let count = |page: &str, what: &str| page.matches(what).count();

    let seq = ui.page("/ui/instances/seq").await;
    assert_eq!(
        count(&seq, r#"data-kind="activity" data-outcome="completed""#),
        3
    );
    assert!(seq.contains(r#"data-kind="ended""#), "the end is a moment");
    assert!(
        seq.contains(r#"<code class="trace">4bf92f3577b34da6a3ce929d0e0e4736</code>"#),
        "the instance's trace id is shown"
    );

    let retry = ui.page("/ui/instances/retry").await;
    assert_eq!(count(&retry, r#"class="attempt-failed""#), 1);
    assert_eq!(count(&retry, r#"class="retry-wait""#), 1);
    assert!(retry.contains("attempt 1 failed"));

    let w = ui.page("/ui/instances/w").await;
    assert!(!w.contains(r#"class="trace""#), "no trace, no trace id");
    assert!(w.contains(r#"data-kind="event" data-outcome="completed""#));
    assert!(
        w.contains(r#"data-kind="timer" data-outcome="open""#)
            || w.contains(r#"data-kind="timer" data-outcome="cancelled""#)
    );
    assert_eq!(count(&w, r#"class="won""#), 1, "the event won its await");
    assert!(w.contains(r#"<strong class="winner">event answer</strong>"#));

    let p = ui.page("/ui/instances/p").await;
    assert!(
        p.contains(r#"href="/ui/instances/the-child""#),
        "the child is linked"
    );
    assert!(p.contains(r#"data-kind="child""#));
    assert!(
        p.contains(r#"data-running="true""#),
        "the page follows a running instance"
    );
    assert!(seq.contains(r#"data-running="false""#));
}

#[tokio::test]
async fn the_list_counts_filters_and_pages() {
    let weft = Weft::start(Options::new(&["hello-sequence", "fixtures"]));
    for n in 0..3 {
        let id = format!("seq-{n}");
        weft.start_instance("hello-sequence", &id, json!(null))
            .await;
        weft.finished(&id).await;
    }
    weft.start_instance("wait-with-timeout", "w", json!(600.0))
        .await;
    weft.history_has("w", "event_wait_created").await;
    let mut ui = Ui::new(&weft);
    ui.sign_in(TOKEN).await;

    let all = ui.page("/ui/instances").await;
    assert!(all.contains(r#"data-status="Completed">3<"#), "{all}");
    assert!(all.contains(r#"data-status="Running">1<"#));
    let done = ui.page("/ui/instances?runtimeStatus=Completed").await;
    assert!(done.contains("seq-0") && done.contains("seq-2") && !done.contains(">w<"));
    let named = ui
        .page("/ui/instances?runtimeStatus=&name=wait-with-timeout&createdFrom=&createdTo=")
        .await;
    assert!(named.contains(">w<") && !named.contains("seq-0"));
    assert!(
        named.contains(r#"data-status="Completed">0<"#),
        "counts follow the name"
    );
    let page = ui.page("/ui/instances?top=2").await;
    assert!(page.contains("seq-0") && page.contains("seq-1") && !page.contains("seq-2"));
    let needle = r#"rel="next" href=""#;
    let at = page.find(needle).expect("a next page") + needle.len();
    let next = page[at..].split('"').next().unwrap().replace("&amp;", "&");
    let page2 = ui.page(&next).await;
    assert!(page2.contains("seq-2") && page2.contains(">w<") && !page2.contains("seq-0"));
    let bad = ui.get("/ui/instances?createdFrom=yesterday").await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(bad.text().await.unwrap().contains("RFC 3339"));
}

#[tokio::test]
async fn entities_and_components_have_their_pages() {
    let weft = Weft::start(Options::new(&["fixtures"]));
    let resp = weft
        .http
        .post(format!("{}/entities/counter/c%3Cb%3E?op=add", weft.url))
        .json(&json!(5))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    common::eventually("the counter holds 5", async || {
        let (_, e) = weft
            .request(reqwest::Method::GET, "/entities/counter/c%3Cb%3E", None)
            .await;
        (e["state"] == json!(5)).then_some(())
    })
    .await;
    weft.start_instance("wait-with-timeout", "w", json!(600.0))
        .await;
    let mut ui = Ui::new(&weft);
    ui.sign_in(TOKEN).await;
    let list = ui.page("/ui/entities").await;
    assert!(
        list.contains(r#"href="/ui/entities/counter/c%3Cb%3E""#),
        "{list}"
    );
    assert!(list.contains("c&lt;b&gt;"));
    let one = ui.page("/ui/entities/counter/c%3Cb%3E").await;
    assert!(one.contains("<code>add</code>"), "the operation log: {one}");
    assert!(one.contains(r#"<pre class="json state">5</pre>"#));

    let (_, components) = weft
        .request(reqwest::Method::GET, "/components", None)
        .await;
    let digest = components["components"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let page = ui.page("/ui/components").await;
    assert!(page.contains(&digest), "each version is listed");
    assert!(page.contains("orchestration wait-with-timeout"));
    assert!(page.contains("1 / 1"), "the instance on it: {page}");
}

/// Runs `retry`, whose first attempt fails and is retried 5 s later, to its end.
async fn retried(weft: &Weft) {
    weft.start_instance(
        "retry-probe",
        "retry",
        json!({"failures": 1, "kind": "busy"}),
    )
    .await;
    weft.history_has("retry", "activity_attempt_failed").await;
    weft.advance(5.0).await;
    weft.finished("retry").await;
}

/// Runs `tests/browser/dashboard.mjs` (playwright-core driving Debian's Chromium) against a
/// server holding a completed, a retried, a waiting and a parent instance.
#[tokio::test]
async fn the_dashboard_works_in_a_real_browser() {
    let weft = Weft::start(Options::new(&["hello-sequence", "fixtures"]));
    weft.start_instance("hello-sequence", "seq", json!(null))
        .await;
    weft.finished("seq").await;
    retried(&weft).await;
    weft.start_instance("wait-with-timeout", "wait", json!(600.0))
        .await;
    weft.history_has("wait", "event_wait_created").await;
    weft.start_instance("parent", "parent", json!(null)).await;
    weft.history_has("the-child", "event_wait_created").await;
    weft.advance(2.0).await;

    let root = common::root();
    let shots = root.join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let mut node = tokio::process::Command::new("node");
    node.arg(root.join("tests/browser/dashboard.mjs"))
        .env("WEFT_URL", &weft.url)
        .env("WEFT_TOKEN", TOKEN)
        .env("SCREENSHOTS", &shots)
        .kill_on_drop(true);
    let run = tokio::time::timeout(Duration::from_secs(180), node.output()).await;
    let out = run
        .expect("the browser test ended within 180 s")
        .expect("node runs (scripts/packages installs it, Chromium and playwright-core)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the browser test failed:\n{said}");
    assert!(said.contains("dashboard: all checks passed"), "{said}");
    // What the browser did is durable.
    let wait = weft.status("wait").await;
    assert_eq!(wait["runtimeStatus"], "Completed", "raised from the form");
    assert_eq!(wait["output"], json!({"code": 1234}));
    assert_eq!(weft.status("parent").await["runtimeStatus"], "Completed");
    for shot in ["instances.png", "instance.png", "signin-refused.png"] {
        let bytes = std::fs::read(shots.join(shot)).expect(shot);
        assert!(bytes.starts_with(b"\x89PNG"), "{shot} is a PNG");
    }
}
