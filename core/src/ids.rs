//! Typed ids.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} '{value}': {why}")]
pub struct InvalidId {
    pub what: &'static str,
    pub value: String,
    pub why: &'static str,
}

/// An instance's id: 1 to 128 characters of `A-Z a-z 0-9 - _ . :`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InstanceId(String);

impl InstanceId {
    /// What an instance id may be.
    pub const RULE: &'static str = "must be 1 to 128 characters, each an ASCII letter (A-Z, a-z), \
        a digit (0-9) or one of - _ . :";

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id made of 16 random bytes: 32 lowercase hex digits, like Durable Functions'. The
    /// caller brings the randomness.
    pub fn from_random(bytes: [u8; 16]) -> Self {
        Self(lower_hex(&bytes))
    }
}

impl FromStr for InstanceId {
    type Err = InvalidId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |why| InvalidId {
            what: "instance id",
            value: s.chars().take(140).collect(),
            why,
        };
        // One rule, said whole whichever part of it was broken.
        let ok = (1..=128).contains(&s.len())
            && s.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'));
        if !ok {
            return Err(invalid(Self::RULE));
        }
        Ok(Self(s.to_string()))
    }
}

impl TryFrom<String> for InstanceId {
    type Error = InvalidId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<InstanceId> for String {
    fn from(id: InstanceId) -> String {
        id.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn lower_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A component's identity: the lowercase hex sha256 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ComponentDigest(String);

impl ComponentDigest {
    /// The digest of a component whose bytes hash to `sha256`. The caller computes the hash.
    pub fn from_sha256(sha256: [u8; 32]) -> Self {
        Self(lower_hex(&sha256))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 hex digits, for messages.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

impl FromStr for ComponentDigest {
    type Err = InvalidId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == 64 && s.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
            Ok(Self(s.to_string()))
        } else {
            Err(InvalidId {
                what: "component digest",
                value: s.chars().take(80).collect(),
                why: "must be 64 lowercase hex digits",
            })
        }
    }
}

impl TryFrom<String> for ComponentDigest {
    type Error = InvalidId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ComponentDigest> for String {
    fn from(d: ComponentDigest) -> String {
        d.0
    }
}

impl fmt::Display for ComponentDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_are_checked() {
        assert!("abc-123_x.y:z".parse::<InstanceId>().is_ok());
        assert!("".parse::<InstanceId>().is_err());
        assert!("a/b".parse::<InstanceId>().is_err());
        assert!("x".repeat(129).parse::<InstanceId>().is_err());
        assert!("x".repeat(128).parse::<InstanceId>().is_ok());
        // Letters outside ASCII are not allowed, and the message says so.
        let e = "café".parse::<InstanceId>().unwrap_err();
        assert!(e.to_string().contains("ASCII letter"), "{e}");
    }

    #[test]
    fn digests_are_lowercase_hex() {
        let mut sha = [0u8; 32];
        sha[0] = 0xba;
        sha[31] = 0x0f;
        let d = ComponentDigest::from_sha256(sha);
        assert_eq!(d.as_str().len(), 64);
        assert!(d.as_str().starts_with("ba00") && d.as_str().ends_with("000f"));
        assert!(d.as_str().parse::<ComponentDigest>().is_ok());
        assert!("BA78".parse::<ComponentDigest>().is_err());
    }
}
