//! Phone verification, from the person's side: the forms an answer may take, and the tries
//! used so far shown in the custom status.

mod common;

use common::sms::SmsProvider;
use common::{Options, Weft};
use serde_json::{Value, json};

const PHONE: &str = "+14255550123";

async fn start(id: &str) -> (SmsProvider, Weft, u32) {
    let provider = SmsProvider::start().await;
    let mut options = Options::new(&["phone-verification"]);
    for (k, v) in provider.settings() {
        options = options.env(&k, &v);
    }
    let weft = Weft::start(options);
    weft.start_instance("phone-verification", id, json!(PHONE))
        .await;
    let code = provider.nth(1).await.code();
    (provider, weft, code)
}

/// A 4-digit code that is not `code`.
fn wrong(code: u32) -> u32 {
    if code == 1000 { 9999 } else { 1000 }
}

/// Waits until the instance's custom status is `expected`.
async fn custom_status_becomes(weft: &Weft, id: &str, expected: Value) {
    weft.eventually(&format!("{id}'s custom status is {expected}"), async || {
        let (status, body) = weft
            .request(reqwest::Method::GET, &format!("/instances/{id}"), None)
            .await;
        assert_eq!(status, 200, "{body}");
        (body["customStatus"] == expected).then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_right_code_sent_as_a_string_verifies() {
    let (_provider, weft, code) = start("as-string").await;
    weft.raise("as-string", "SmsChallengeResponse", json!(code.to_string()))
        .await;
    let status = weft.finished("as-string").await;
    assert_eq!(status["runtimeStatus"], "Completed", "{status}");
    assert_eq!(status["output"], true, "{status}");
}

#[tokio::test]
async fn each_wrong_answer_shows_in_the_custom_status() {
    let (_provider, weft, code) = start("tries").await;

    weft.raise("tries", "SmsChallengeResponse", json!(wrong(code)))
        .await;
    custom_status_becomes(&weft, "tries", json!({ "triesUsed": 1, "triesLeft": 3 })).await;

    // Something that is no code at all is a wrong try too.
    weft.raise("tries", "SmsChallengeResponse", json!("the code, I think"))
        .await;
    custom_status_becomes(&weft, "tries", json!({ "triesUsed": 2, "triesLeft": 2 })).await;

    weft.raise("tries", "SmsChallengeResponse", json!(code))
        .await;
    let status = weft.finished("tries").await;
    assert_eq!(status["output"], true, "{status}");
}
