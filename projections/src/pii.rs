use async_trait::async_trait;
use cinelog_domain::values::Sealed;
use uuid::Uuid;

/// Opens personal data sealed with its owner's key; `None` once the key is destroyed.
#[async_trait]
pub trait PiiReader: Send + Sync {
    async fn open(&self, owner: Uuid, sealed: &Sealed) -> anyhow::Result<Option<String>>;
}
