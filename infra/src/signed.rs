//! Signed tokens: a value carried in a URL (a stream grant, a sandbox checkout link) that comes
//! back unaltered or not at all. The token is the value's JSON in base64url, a dot, and a
//! truncated HMAC-SHA256 over it keyed per purpose.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cinelog_commands::playback::StreamGrant;
use cinelog_commands::ports::StreamSigner;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;

/// Bytes of the tag kept: 128 bits.
const TAG_BYTES: usize = 16;

/// Signs values of one type for one purpose, and opens the tokens again.
pub struct SignedToken<T> {
    key: Vec<u8>,
    purpose: &'static str,
    value: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> SignedToken<T> {
    /// Tokens keyed by `key` for `purpose`: a token made for one purpose never opens as another.
    pub fn new(key: Vec<u8>, purpose: &'static str) -> Self {
        Self {
            key,
            purpose,
            value: PhantomData,
        }
    }

    fn mac(&self, payload: &str) -> Hmac<sha2::Sha256> {
        let mut mac =
            Hmac::<sha2::Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(self.purpose.as_bytes());
        mac.update(b":");
        mac.update(payload.as_bytes());
        mac
    }

    /// The value as a token.
    pub fn sign(&self, value: &T) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("serializable"));
        let tag = self.mac(&payload).finalize().into_bytes();
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(&tag[..TAG_BYTES]))
    }

    /// The value in a token, if it was signed with this key for this purpose and not altered.
    pub fn open(&self, token: &str) -> Option<T> {
        let (payload, tag) = token.split_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        if tag.len() != TAG_BYTES {
            return None;
        }
        self.mac(payload).verify_truncated_left(&tag).ok()?;
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
    }
}

impl StreamSigner for SignedToken<StreamGrant> {
    fn sign(&self, grant: &StreamGrant) -> String {
        SignedToken::sign(self, grant)
    }

    fn open(&self, token: &str) -> Option<StreamGrant> {
        SignedToken::open(self, token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn grant(max_height: u32) -> StreamGrant {
        StreamGrant {
            account: Uuid::nil(),
            session: Uuid::nil(),
            ladder: "bundled/aurora".into(),
            max_height,
            expires: 1_000,
        }
    }

    #[test]
    fn tokens_refuse_tampering_other_keys_and_other_purposes() {
        let grants = SignedToken::<StreamGrant>::new(b"key".to_vec(), "stream");
        let token = grants.sign(&grant(720));
        assert_eq!(grants.open(&token), Some(grant(720)));
        let other_key = SignedToken::<StreamGrant>::new(b"other".to_vec(), "stream");
        assert_eq!(other_key.open(&token), None);
        let other_purpose = SignedToken::<StreamGrant>::new(b"key".to_vec(), "checkout");
        assert_eq!(other_purpose.open(&token), None);
        // A richer grant signed by someone else, wearing this token's tag.
        let richer =
            SignedToken::<StreamGrant>::new(b"attacker".to_vec(), "stream").sign(&grant(2160));
        let forged = format!(
            "{}.{}",
            richer.split_once('.').unwrap().0,
            token.split_once('.').unwrap().1
        );
        assert_eq!(grants.open(&forged), None);
        assert_eq!(grants.open("garbage"), None);
        assert_eq!(grants.open(&format!("{token}A")), None);
    }
}
