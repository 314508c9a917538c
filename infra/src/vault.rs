//! Per-user keys for personal data (XChaCha20-Poly1305), stored beside the log in `pii_keys`.

use crate::store::Store;
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use cinelog_commands::ports::Vault;
use cinelog_domain::values::Sealed;
use cinelog_projections::pii::PiiReader;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long a key (or its absence) is trusted from memory; bounds how long another replica
/// may still open data after an erasure.
const KEY_TTL: Duration = Duration::from_secs(30);
const PREFIX: &str = "v1.";

/// A key, or its known absence, and when it was read.
type CachedKey = (Option<[u8; 32]>, Instant);

pub struct KeyVault {
    store: Store,
    cache: Mutex<HashMap<Uuid, CachedKey>>,
}

impl KeyVault {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, owner: Uuid) -> Option<Option<[u8; 32]>> {
        let cache = self.cache.lock().ok()?;
        cache
            .get(&owner)
            .filter(|(_, at)| at.elapsed() < KEY_TTL)
            .map(|(k, _)| *k)
    }

    fn remember(&self, owner: Uuid, key: Option<[u8; 32]>) {
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() > 100_000 {
                cache.clear();
            }
            cache.insert(owner, (key, Instant::now()));
        }
    }

    async fn key(&self, owner: Uuid, create: bool) -> anyhow::Result<Option<[u8; 32]>> {
        if let Some(Some(key)) = self.cached(owner) {
            return Ok(Some(key));
        }
        if !create && let Some(None) = self.cached(owner) {
            return Ok(None);
        }
        if create {
            let fresh: [u8; 32] = rand::random();
            self.store
                .insert_pii_key(&owner.to_string(), &hex::encode(fresh))
                .await?;
        }
        let key = match self.store.pii_key(&owner.to_string()).await? {
            Some(hex_key) => Some(
                hex::decode(hex_key)?
                    .try_into()
                    .map_err(|_| anyhow::anyhow!("stored key has the wrong length"))?,
            ),
            None => None,
        };
        self.remember(owner, key);
        Ok(key)
    }
}

fn cipher(key: &[u8; 32]) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(Key::from_slice(key))
}

#[async_trait]
impl Vault for KeyVault {
    async fn seal(&self, owner: Uuid, plaintext: &str) -> Result<Sealed, String> {
        let key = self
            .key(owner, true)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("key missing after creation")?;
        let nonce: [u8; 24] = rand::random();
        let sealed = cipher(&key)
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: owner.as_bytes(),
                },
            )
            .map_err(|e| e.to_string())?;
        Ok(Sealed(format!(
            "{PREFIX}{}",
            URL_SAFE_NO_PAD.encode([&nonce[..], &sealed].concat())
        )))
    }

    async fn open(&self, owner: Uuid, sealed: &Sealed) -> Result<Option<String>, String> {
        PiiReader::open(self, owner, sealed)
            .await
            .map_err(|e| e.to_string())
    }

    async fn destroy(&self, owner: Uuid) -> Result<(), String> {
        self.store
            .delete_pii_key(&owner.to_string())
            .await
            .map_err(|e| e.to_string())?;
        self.remember(owner, None);
        Ok(())
    }
}

#[async_trait]
impl PiiReader for KeyVault {
    async fn open(&self, owner: Uuid, sealed: &Sealed) -> anyhow::Result<Option<String>> {
        // Malformed data cannot be opened by anyone: read it as erased rather than stall a projection.
        let decoded = sealed
            .0
            .strip_prefix(PREFIX)
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok());
        let Some(bytes) = decoded.filter(|b| b.len() > 24) else {
            tracing::warn!(%owner, "malformed sealed data; treating it as erased");
            return Ok(None);
        };
        let Some(key) = self.key(owner, false).await? else {
            return Ok(None);
        };
        let (nonce, ciphertext) = bytes.split_at(24);
        // Data that does not open with the owner's current key was sealed with a destroyed one:
        // it is as erased as data whose key is gone.
        let Ok(plain) = cipher(&key).decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: owner.as_bytes(),
            },
        ) else {
            tracing::warn!(%owner, "sealed data does not open with its owner's key; treating it as erased");
            return Ok(None);
        };
        Ok(Some(String::from_utf8(plain)?))
    }
}
