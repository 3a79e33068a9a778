//! Signed callback URLs: `{public}/callbacks/{instance}/{event}?expires=MS&sig=HEX`, where `sig`
//! is an HMAC-SHA256, under a server secret, of the instance, the event name and the expiry. The
//! holder can raise that one event on that one instance until it expires.

use crate::clock::Millis;
use crate::history::InstanceId;
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::Sha256;

/// Characters left as they are in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Why a callback is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    #[error("the callback signature does not match")]
    BadSignature,
    #[error("the callback URL has expired")]
    Expired,
}

/// Signs and checks callback URLs.
pub struct Signer {
    key: Vec<u8>,
    public_url: String,
}

impl Signer {
    pub fn new(key: Vec<u8>, public_url: &str) -> Self {
        Self {
            key,
            public_url: public_url.trim_end_matches('/').to_string(),
        }
    }

    fn mac(&self, instance: &str, event: &str, expires_at: Millis) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key size");
        // Lengths first, so no two (instance, event) pairs sign the same bytes.
        mac.update(format!("{}:{}:{}:", instance.len(), event.len(), expires_at).as_bytes());
        mac.update(instance.as_bytes());
        mac.update(event.as_bytes());
        mac
    }

    /// The URL for raising `event` on `instance` until `expires_at`.
    pub fn url(&self, instance: &InstanceId, event: &str, expires_at: Millis) -> String {
        let sig = hex::encode(
            self.mac(instance.as_str(), event, expires_at)
                .finalize()
                .into_bytes(),
        );
        format!(
            "{}/callbacks/{}/{}?expires={expires_at}&sig={sig}",
            self.public_url,
            utf8_percent_encode(instance.as_str(), SEGMENT),
            utf8_percent_encode(event, SEGMENT),
        )
    }

    /// Checks a callback (in constant time over the signature) at time `now`.
    pub fn verify(
        &self,
        instance: &str,
        event: &str,
        expires_at: Millis,
        sig: &str,
        now: Millis,
    ) -> Result<(), CallbackError> {
        let sig = hex::decode(sig).map_err(|_| CallbackError::BadSignature)?;
        self.mac(instance, event, expires_at)
            .verify_slice(&sig)
            .map_err(|_| CallbackError::BadSignature)?;
        if now > expires_at {
            return Err(CallbackError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(url: &str) -> (String, String, Millis, String) {
        let rest = url.split("/callbacks/").nth(1).unwrap();
        let (path, query) = rest.split_once('?').unwrap();
        let (instance, event) = path.split_once('/').unwrap();
        let mut expires = 0;
        let mut sig = String::new();
        for kv in query.split('&') {
            match kv.split_once('=').unwrap() {
                ("expires", v) => expires = v.parse().unwrap(),
                ("sig", v) => sig = v.to_string(),
                _ => {}
            }
        }
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .unwrap()
                .to_string()
        };
        (decode(instance), decode(event), expires, sig)
    }

    #[test]
    fn a_url_raises_one_event_on_one_instance_until_it_expires() {
        let signer = Signer::new(b"secret".to_vec(), "http://h:1/");
        let id: InstanceId = "i-1".parse().unwrap();
        let url = signer.url(&id, "Job Done", 100);
        assert!(url.starts_with("http://h:1/callbacks/i-1/Job%20Done?expires=100&sig="));
        let (i, e, x, sig) = parts(&url);
        assert_eq!(signer.verify(&i, &e, x, &sig, 100), Ok(()));
        assert_eq!(
            signer.verify(&i, &e, x, &sig, 101),
            Err(CallbackError::Expired)
        );
        let bad = CallbackError::BadSignature;
        assert_eq!(signer.verify("i-2", &e, x, &sig, 0), Err(bad.clone()));
        assert_eq!(signer.verify(&i, "Other", x, &sig, 0), Err(bad.clone()));
        assert_eq!(signer.verify(&i, &e, x + 1, &sig, 0), Err(bad.clone()));
        let other_key = Signer::new(b"other".to_vec(), "http://h:1");
        assert_eq!(other_key.verify(&i, &e, x, &sig, 0), Err(bad.clone()));
        let mut tampered = sig.into_bytes();
        tampered[0] = if tampered[0] == b'0' { b'1' } else { b'0' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(signer.verify(&i, &e, x, &tampered, 0), Err(bad));
    }
}
