//! SMS phone verification: a human has 90 seconds and four tries to send back the code.

use std::time::Duration;
use weft_sdk::http::Request;
use weft_sdk::{Context, Error};

/// How long the person has to answer, from the moment the SMS was sent.
const WINDOW: Duration = Duration::from_secs(90);
/// How many answers the person may send.
const TRIES: usize = 4;

/// Input: the phone number. Output: whether the person answered with the right code in time.
/// The custom status shows the tries used so far: `{"triesUsed": N, "triesLeft": M}`.
fn phone_verification(ctx: &Context, phone_number: String) -> Result<bool, Error> {
    let code: u32 = ctx
        .call_activity("send-sms-challenge", &phone_number)
        .get()?;
    let deadline = ctx.timer(WINDOW);
    for used in 1..=TRIES {
        let answer = ctx.wait_event::<serde_json::Value>("SmsChallengeResponse");
        if ctx.when_any(&[&answer, &deadline]) == 1 {
            ctx.log("the challenge timed out");
            return Ok(false);
        }
        let answer = answer.get()?;
        if as_code(&answer) == Some(code) {
            return Ok(true);
        }
        ctx.log(format_args!(
            "wrong answer {answer} (try {used} of {TRIES})"
        ));
        ctx.set_custom_status(&serde_json::json!({
            "triesUsed": used,
            "triesLeft": TRIES - used,
        }))?;
    }
    Ok(false)
}

/// The code in an answer: a number (`1234`) or a string of digits (`"1234"`); anything else is
/// no code, and counts as a wrong try.
fn as_code(answer: &serde_json::Value) -> Option<u32> {
    match answer {
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        serde_json::Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()
        }
        _ => None,
    }
}

/// Sends a random 4-digit code to the phone number through Twilio's REST API and returns it.
///
/// App settings: `TwilioAccountSid`, `TwilioAuthToken`, `TwilioPhoneNumber`, and
/// `TwilioBaseUrl` (defaults to Twilio's API).
fn send_sms_challenge(phone_number: String) -> Result<u32, Error> {
    let setting = |name: &str| {
        std::env::var(name).map_err(|_| Error::with_kind("config", format!("{name} is not set")))
    };
    let sid = setting("TwilioAccountSid")?;
    let token = setting("TwilioAuthToken")?;
    let from = setting("TwilioPhoneNumber")?;
    let base = std::env::var("TwilioBaseUrl").unwrap_or_else(|_| "https://api.twilio.com".into());

    let code = 1000 + (weft_sdk::activity::random_u64() % 9000) as u32;
    let body = format!("Your verification code is {code}");
    let url = format!(
        "{}/2010-04-01/Accounts/{sid}/Messages.json",
        base.trim_end_matches('/')
    );
    let response = Request::post(url)
        .basic_auth(&sid, &token)
        .form(&[("To", &phone_number), ("From", &from), ("Body", &body)])
        .send()?;
    if !response.is_success() {
        return Err(Error::with_kind(
            "sms",
            format!("provider answered {}: {}", response.status, response.text()),
        ));
    }
    Ok(code)
}

weft_sdk::workflow! {
    orchestrations: { "phone-verification" => phone_verification },
    activities: { "send-sms-challenge" => send_sms_challenge },
}
