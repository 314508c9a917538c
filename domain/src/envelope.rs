//! The envelope around every stored event (ids, actor, time, hash chain) and the hashing that
//! makes each stream tamper-evident.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Actor {
    /// A signed-in (or signing-up) user.
    User(Uuid),
    /// Cinelog itself: seeding, schedulers, operators' commands.
    System,
    /// An outside provider speaking through a verified webhook, e.g. `stripe`.
    Provider(String),
    /// An unauthenticated caller (login attempts, password-reset requests).
    Anonymous,
}

impl From<Actor> for String {
    fn from(actor: Actor) -> String {
        actor.to_string()
    }
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::User(id) => write!(f, "user:{id}"),
            Actor::System => f.write_str("system"),
            Actor::Provider(name) => write!(f, "provider:{name}"),
            Actor::Anonymous => f.write_str("anonymous"),
        }
    }
}

impl TryFrom<String> for Actor {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.split_once(':') {
            None if s == "system" => Ok(Actor::System),
            None if s == "anonymous" => Ok(Actor::Anonymous),
            Some(("user", id)) => Uuid::parse_str(id)
                .map(Actor::User)
                .map_err(|e| e.to_string()),
            Some(("provider", name)) if !name.is_empty() => Ok(Actor::Provider(name.to_string())),
            _ => Err(format!("unknown actor {s:?}")),
        }
    }
}

/// The envelope fields every stored event carries besides its payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMeta {
    /// Unique id of this event.
    pub event_id: Uuid,
    /// Shared by every event one request or process caused, so a trace can gather them.
    pub correlation_id: Uuid,
    /// The event that caused this one, if any; links a trace into a tree.
    pub causation_id: Option<Uuid>,
    /// Who caused the event.
    pub actor: Actor,
    /// When the log stored the event.
    pub recorded_at: DateTime<Utc>,
    /// SHA-256 of this event's immutable fields and `prev_hash`.
    pub hash: String,
    /// Hash of the previous event of the same stream (all zeros for the first).
    pub prev_hash: String,
}

/// One event as read back from the log, with its envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// Global position in the log.
    pub position: i64,
    /// Committing transaction (Postgres); 0 on single-writer backends.
    pub tx: i64,
    /// The aggregate kind the event belongs to, e.g. `account`.
    pub stream_type: String,
    /// The aggregate instance within its type, e.g. an account id.
    pub stream_id: String,
    /// 1-based version of the event within its stream.
    pub version: i64,
    /// The event's name, e.g. `ProfileCreated`.
    pub event_type: String,
    /// Version of the payload's shape, so readers can upgrade old events.
    pub schema_version: String,
    /// The event itself, as JSON.
    pub payload: Value,
    /// Ids, actor, time and hash chain.
    #[serde(flatten)]
    pub meta: EventMeta,
}

/// The hash of the empty chain.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The immutable fields a stored event's hash covers.
pub struct HashInput<'a> {
    /// Hash of the previous event of the same stream, or [`GENESIS_HASH`].
    pub prev_hash: &'a str,
    /// The aggregate kind, e.g. `account`.
    pub stream_type: &'a str,
    /// The aggregate instance within its type.
    pub stream_id: &'a str,
    /// 1-based version of the event within its stream.
    pub version: i64,
    /// The event's name, e.g. `ProfileCreated`.
    pub event_type: &'a str,
    /// Version of the payload's shape.
    pub schema_version: &'a str,
    /// The event itself, as JSON.
    pub payload: &'a Value,
    /// Unique id of the event.
    pub event_id: Uuid,
    /// The request or process the event belongs to.
    pub correlation_id: Uuid,
    /// The event that caused this one, if any.
    pub causation_id: Option<Uuid>,
    /// Who caused the event.
    pub actor: &'a Actor,
    /// When the log stored the event.
    pub recorded_at: DateTime<Utc>,
}

impl HashInput<'_> {
    /// Hex SHA-256 over the fields, each length-prefixed so no two inputs collide by concatenation.
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        let causation = self.causation_id.map(|c| c.to_string()).unwrap_or_default();
        let fields: [&str; 12] = [
            self.prev_hash,
            self.stream_type,
            self.stream_id,
            &self.version.to_string(),
            self.event_type,
            self.schema_version,
            &self.payload.to_string(),
            &self.event_id.to_string(),
            &self.correlation_id.to_string(),
            &causation,
            &self.actor.to_string(),
            &format_time(self.recorded_at),
        ];
        for field in fields {
            h.update((field.len() as u64).to_be_bytes());
            h.update(field.as_bytes());
        }
        hex::encode(h.finalize())
    }
}

/// The one text form of timestamps in the log (RFC 3339, microseconds, `Z`).
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl RecordedEvent {
    /// Recomputes this event's hash from its fields and its stored `prev_hash`.
    pub fn computed_hash(&self) -> String {
        HashInput {
            prev_hash: &self.meta.prev_hash,
            stream_type: &self.stream_type,
            stream_id: &self.stream_id,
            version: self.version,
            event_type: &self.event_type,
            schema_version: &self.schema_version,
            payload: &self.payload,
            event_id: self.meta.event_id,
            correlation_id: self.meta.correlation_id,
            causation_id: self.meta.causation_id,
            actor: &self.meta.actor,
            recorded_at: self.meta.recorded_at,
        }
        .hash()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actor_round_trips_through_text() {
        for actor in [
            Actor::User(Uuid::now_v7()),
            Actor::System,
            Actor::Provider("stripe".into()),
            Actor::Anonymous,
        ] {
            assert_eq!(Actor::try_from(actor.to_string()).unwrap(), actor);
        }
        assert!(Actor::try_from("nobody:1".to_string()).is_err());
    }

    #[test]
    fn hash_changes_with_any_field() {
        let actor = Actor::System;
        let payload = serde_json::json!({"a": 1});
        let base = HashInput {
            prev_hash: GENESIS_HASH,
            stream_type: "account",
            stream_id: "x",
            version: 1,
            event_type: "AccountOpened",
            schema_version: "1",
            payload: &payload,
            event_id: Uuid::nil(),
            correlation_id: Uuid::nil(),
            causation_id: None,
            actor: &actor,
            recorded_at: DateTime::<Utc>::UNIX_EPOCH,
        };
        let h = base.hash();
        assert_eq!(h.len(), 64);
        let other = serde_json::json!({"a": 2});
        assert_ne!(
            HashInput {
                payload: &other,
                ..base
            }
            .hash(),
            h
        );
        let base = HashInput {
            payload: &payload,
            ..base
        };
        assert_ne!(HashInput { version: 2, ..base }.hash(), h);
        let base = HashInput { version: 1, ..base };
        assert_ne!(
            HashInput {
                prev_hash: "1",
                ..base
            }
            .hash(),
            h
        );
    }
}
