//! The domain (crate `weft-core`), and the two constructors that need the outside world: a
//! random instance id and the digest of a component's bytes.

pub use weft_core::*;

/// A fresh random instance id (32 hex digits).
pub fn new_instance_id() -> InstanceId {
    InstanceId::from_random(*uuid::Uuid::new_v4().as_bytes())
}

/// The digest of a component: the sha256 of its bytes.
pub fn digest_of(bytes: &[u8]) -> ComponentDigest {
    use sha2::Digest;
    ComponentDigest::from_sha256(sha2::Sha256::digest(bytes).into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn digests_are_the_sha256_of_the_bytes() {
        assert_eq!(
            super::digest_of(b"abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
