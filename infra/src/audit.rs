//! Integrity an auditor can prove: every stream's hash chain, and signed anchors over the log.
//!
//! An anchor covers the log up to a checkpoint: how many events it held, a digest over every
//! stream's head (type, id, version, hash; sorted), and the heads that changed since the anchor
//! before, all signed with an Ed25519 key kept outside the database. Verification folds the log
//! once, checking each event's hash and link, and at each anchor's checkpoint compares what the
//! log holds with what was signed: edits, deletions (also of the newest events of a stream, or
//! of the whole tail), swaps and insertions show, each with its stream, version and position.

use crate::store::Store;
use chrono::Utc;
use cinelog_domain::RecordedEvent;
use cinelog_domain::envelope::GENESIS_HASH;
use cinelog_projections::{Checkpoint, EventLog};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Events read per round while folding the log.
const BATCH: i64 = 5000;

/// The key anchors are signed with: a 32-byte seed in a file outside the database.
pub struct AnchorKey {
    signing: SigningKey,
}

impl AnchorKey {
    /// Loads the key at `path`, creating it (readable by its owner only) the first time.
    pub fn load_or_create(path: &Path) -> anyhow::Result<AnchorKey> {
        if let Ok(text) = std::fs::read_to_string(path) {
            let seed: [u8; 32] = hex::decode(text.trim())?
                .try_into()
                .map_err(|_| anyhow::anyhow!("{} does not hold a 32-byte key", path.display()))?;
            return Ok(AnchorKey {
                signing: SigningKey::from_bytes(&seed),
            });
        }
        let mut seed = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(path) {
            Ok(mut file) => {
                std::io::Write::write_all(&mut file, hex::encode(seed).as_bytes())?;
                Ok(AnchorKey {
                    signing: SigningKey::from_bytes(&seed),
                })
            }
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load_or_create(path),
            Err(e) => Err(e.into()),
        }
    }

    pub fn public(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }
}

/// A public key in its exported form (hex of the 32 bytes).
pub fn public_key_hex(key: &VerifyingKey) -> String {
    hex::encode(key.as_bytes())
}

pub fn parse_public_key(text: &str) -> anyhow::Result<VerifyingKey> {
    let bytes: [u8; 32] = hex::decode(text.trim())?
        .try_into()
        .map_err(|_| anyhow::anyhow!("a public key is 32 bytes, hex-encoded"))?;
    Ok(VerifyingKey::from_bytes(&bytes)?)
}

/// One stream's newest event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub stream_type: String,
    pub stream_id: String,
    pub version: i64,
    pub hash: String,
}

type Heads = BTreeMap<(String, String), (i64, String)>;

/// The digest over every stream's head: SHA-256 over the length-prefixed fields of each head,
/// in (type, id) order.
pub fn heads_digest(heads: &Heads) -> String {
    let mut h = Sha256::new();
    for ((stream_type, stream_id), (version, hash)) in heads {
        for field in [
            stream_type.as_str(),
            stream_id.as_str(),
            &version.to_string(),
            hash.as_str(),
        ] {
            h.update((field.len() as u64).to_be_bytes());
            h.update(field.as_bytes());
        }
    }
    hex::encode(h.finalize())
}

/// A signed statement about the log up to a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    pub id: i64,
    pub tx: i64,
    pub position: i64,
    /// Events in the log up to the checkpoint.
    pub events: i64,
    /// Streams in the log up to the checkpoint.
    pub streams: i64,
    /// [`heads_digest`] of every stream's head.
    pub root: String,
    /// JSON array of the [`Head`]s that changed since the anchor before.
    pub heads: String,
    pub signed_at: String,
    pub public_key: String,
    pub signature: String,
}

impl Anchor {
    /// The bytes the signature covers.
    fn message(&self) -> Vec<u8> {
        let heads = hex::encode(Sha256::digest(self.heads.as_bytes()));
        format!(
            "cinelog-anchor/1\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
            self.tx, self.position, self.events, self.streams, self.root, heads, self.signed_at
        )
        .into_bytes()
    }

    fn signature_holds(&self, key: &VerifyingKey) -> bool {
        let Ok(bytes) = hex::decode(&self.signature) else {
            return false;
        };
        let Ok(signature) = Signature::from_slice(&bytes) else {
            return false;
        };
        key.verify(&self.message(), &signature).is_ok()
    }
}

/// Every anchor, oldest first.
pub async fn anchors(store: &Store) -> anyhow::Result<Vec<Anchor>> {
    Ok(store
        .anchor_rows()
        .await?
        .into_iter()
        .map(
            |(id, tx, position, events, streams, root, heads, signed_at, public_key, signature)| {
                Anchor {
                    id,
                    tx,
                    position,
                    events,
                    streams,
                    root,
                    heads,
                    signed_at,
                    public_key,
                    signature,
                }
            },
        )
        .collect())
}

/// Signs anchors as the log grows.
pub struct Anchorer {
    store: Store,
    key: AnchorKey,
    heads: Heads,
    events: i64,
    after: Checkpoint,
    /// Streams changed since the newest anchor.
    changed: BTreeSet<(String, String)>,
    /// Where each anchor is also appended as one JSON line, if anywhere.
    file: Option<PathBuf>,
}

impl Anchorer {
    /// Folds the log once to learn every stream's head.
    pub async fn new(store: Store, key: AnchorKey, file: Option<PathBuf>) -> anyhow::Result<Self> {
        let last = anchors(&store).await?.last().map(|a| Checkpoint {
            tx: a.tx,
            position: a.position,
        });
        let mut this = Anchorer {
            store,
            key,
            heads: Heads::new(),
            events: 0,
            after: Checkpoint::START,
            changed: BTreeSet::new(),
            file,
        };
        this.read_log().await?;
        // Only the streams changed after the newest anchor go into the next one.
        if let Some(last) = last {
            this.changed.clear();
            let mut after = last;
            loop {
                let batch = this.store.read_after(after, BATCH).await?;
                let Some(end) = batch.last() else { break };
                after = Checkpoint::of(end);
                this.changed.extend(
                    batch
                        .iter()
                        .map(|e| (e.stream_type.clone(), e.stream_id.clone())),
                );
            }
        }
        Ok(this)
    }

    /// Reads what was appended since the last read; answers how many events.
    async fn read_log(&mut self) -> anyhow::Result<i64> {
        let mut read = 0;
        loop {
            let batch = self.store.read_after(self.after, BATCH).await?;
            let Some(end) = batch.last() else {
                return Ok(read);
            };
            self.after = Checkpoint::of(end);
            read += batch.len() as i64;
            for e in batch {
                let key = (e.stream_type, e.stream_id);
                self.heads.insert(key.clone(), (e.version, e.meta.hash));
                self.changed.insert(key);
                self.events += 1;
            }
        }
    }

    /// Signs the log as it stands, if it changed since the newest anchor; answers the anchor.
    pub async fn anchor(&mut self) -> anyhow::Result<Option<Anchor>> {
        self.read_log().await?;
        if self.changed.is_empty() {
            return Ok(None);
        }
        let heads: Vec<Head> = self
            .changed
            .iter()
            .map(|key| {
                let (version, hash) = &self.heads[key];
                Head {
                    stream_type: key.0.clone(),
                    stream_id: key.1.clone(),
                    version: *version,
                    hash: hash.clone(),
                }
            })
            .collect();
        let mut anchor = Anchor {
            id: 0,
            tx: self.after.tx,
            position: self.after.position,
            events: self.events,
            streams: self.heads.len() as i64,
            root: heads_digest(&self.heads),
            heads: serde_json::to_string(&heads)?,
            signed_at: cinelog_domain::envelope::format_time(Utc::now()),
            public_key: public_key_hex(&self.key.public()),
            signature: String::new(),
        };
        anchor.signature = hex::encode(self.key.signing.sign(&anchor.message()).to_bytes());
        anchor.id = self
            .store
            .insert_anchor((
                anchor.tx,
                anchor.position,
                anchor.events,
                anchor.streams,
                anchor.root.clone(),
                anchor.heads.clone(),
                anchor.signed_at.clone(),
                anchor.public_key.clone(),
                anchor.signature.clone(),
            ))
            .await?;
        if let Some(file) = &self.file {
            let mut line = serde_json::to_string(&anchor)?;
            line.push('\n');
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(file)?;
            std::io::Write::write_all(&mut f, line.as_bytes())?;
        }
        self.changed.clear();
        Ok(Some(anchor))
    }

    /// Anchors whenever `every_events` events arrived or `every` passed with any, until dropped.
    pub async fn run(mut self, every_events: i64, every: std::time::Duration) {
        let mut since = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            let due = since.elapsed() >= every
                || self
                    .store
                    .arrived_since(self.after, every_events)
                    .await
                    .unwrap_or(0)
                    >= every_events;
            if !due {
                continue;
            }
            match self.anchor().await {
                Ok(_) => since = tokio::time::Instant::now(),
                Err(e) => tracing::warn!(error = %e, "could not sign an anchor; trying again"),
            }
        }
    }
}

/// Something verification found wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Broken {
    pub stream_type: String,
    pub stream_id: String,
    pub version: i64,
    pub position: i64,
    pub problem: String,
}

/// What verification checked and found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub intact: bool,
    pub events_checked: i64,
    pub streams_checked: i64,
    pub anchors_checked: i64,
    /// The first problem in log order.
    pub first_broken: Option<Broken>,
    /// Every problem found, at most [`MAX_PROBLEMS`].
    pub broken: Vec<Broken>,
    pub public_key: String,
    /// Events whose payload an export withheld: their links and anchored heads were checked,
    /// their content not recomputed.
    pub withheld: i64,
}

/// Problems listed in one report.
pub const MAX_PROBLEMS: usize = 100;

/// Recomputes every stream's chain and checks every anchor with the trusted `key`.
pub async fn verify(store: &Store, key: &VerifyingKey) -> anyhow::Result<Report> {
    let anchors = anchors(store).await?;
    let mut check = Check::new(key);
    let mut pending = anchors.iter().peekable();
    // The next batch is read while this one is hashed, and hashing is spread over the cores.
    let read = |after: Checkpoint| {
        let store = store.clone();
        tokio::spawn(async move { store.read_after(after, BATCH).await })
    };
    let mut next = read(Checkpoint::START);
    loop {
        let batch = next.await??;
        let Some(end) = batch.last() else { break };
        next = read(Checkpoint::of(end));
        let (batch, hashes) = tokio::task::spawn_blocking(move || {
            let hashes = hash_all(&batch);
            (batch, hashes)
        })
        .await?;
        for (e, computed) in batch.iter().zip(hashes) {
            while let Some(a) = pending.next_if(|a| {
                Checkpoint {
                    tx: a.tx,
                    position: a.position,
                } < Checkpoint::of(e)
            }) {
                check.anchor(a);
            }
            check.event(e, Some(&computed));
        }
    }
    for a in pending {
        check.anchor(a);
    }
    Ok(check.report(anchors.len() as i64, key))
}

/// Each event's recomputed hash, on every core.
fn hash_all(events: &[RecordedEvent]) -> Vec<String> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = events.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let parts: Vec<_> = events
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(RecordedEvent::computed_hash)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().expect("hashing does not panic"))
            .collect()
    })
}

/// The fold verification runs: heads so far, and problems found.
struct Check<'a> {
    key: &'a VerifyingKey,
    heads: Heads,
    events: i64,
    broken: Vec<Broken>,
    first: Option<Broken>,
    /// An export of a time range: a stream may start past its first version.
    partial: bool,
    /// The first version of each stream seen (partial checks).
    starts: BTreeMap<(String, String), i64>,
    /// Events whose payload was withheld (credentials, personal data): linked, not recomputed.
    withheld: i64,
}

impl<'a> Check<'a> {
    fn new(key: &'a VerifyingKey) -> Self {
        Check {
            key,
            heads: Heads::new(),
            events: 0,
            broken: Vec::new(),
            first: None,
            partial: false,
            starts: BTreeMap::new(),
            withheld: 0,
        }
    }

    fn found(&mut self, b: Broken) {
        if self.first.is_none() {
            self.first = Some(b.clone());
        }
        if self.broken.len() < MAX_PROBLEMS {
            self.broken.push(b);
        }
    }

    /// Checks one event, given its recomputed hash (`None`: its content was withheld).
    fn event(&mut self, e: &RecordedEvent, computed: Option<&str>) {
        self.events += 1;
        let key = (e.stream_type.clone(), e.stream_id.clone());
        let start = *self.starts.entry(key.clone()).or_insert(e.version);
        let (version, prev) = match self.heads.get(&key) {
            Some(head) => head.clone(),
            // A range may begin inside a stream: its first event's own link starts the chain.
            None if self.partial && start > 1 => (e.version - 1, e.meta.prev_hash.clone()),
            None => (0, GENESIS_HASH.to_string()),
        };
        let at = |problem: String| Broken {
            stream_type: e.stream_type.clone(),
            stream_id: e.stream_id.clone(),
            version: e.version,
            position: e.position,
            problem,
        };
        if e.version != version + 1 {
            self.found(at(format!(
                "version {} follows version {version}: an event is missing, inserted or out of place",
                e.version
            )));
        } else if e.meta.prev_hash != prev {
            self.found(at(
                "does not link to the event before it: an event was replaced or inserted".into(),
            ));
        }
        match computed {
            None => self.withheld += 1,
            Some(hash) if hash != e.meta.hash => {
                self.found(at(
                    "its content does not match its hash: the event was edited".into(),
                ));
            }
            Some(_) => {}
        }
        self.heads.insert(key, (e.version, e.meta.hash.clone()));
    }

    fn anchor(&mut self, a: &Anchor) {
        let at = |stream_type: &str, stream_id: &str, version: i64, problem: String| Broken {
            stream_type: stream_type.into(),
            stream_id: stream_id.into(),
            version,
            position: a.position,
            problem,
        };
        if !a.signature_holds(self.key) {
            self.found(at(
                "anchor",
                &a.id.to_string(),
                0,
                format!(
                    "anchor {} at position {} is not signed by the trusted key: forged or altered",
                    a.id, a.position
                ),
            ));
            return;
        }
        let heads: Vec<Head> = serde_json::from_str(&a.heads).unwrap_or_default();
        let mut named = false;
        for h in heads {
            let key = (h.stream_type.clone(), h.stream_id.clone());
            let problem = match self.heads.get(&key) {
                Some((version, hash)) if *version == h.version && *hash == h.hash => continue,
                Some((version, _)) if *version < h.version => format!(
                    "anchor {} signed this stream at version {}, the log holds it up to version {version}: newer events were deleted",
                    a.id, h.version
                ),
                Some((version, _)) => format!(
                    "anchor {} signed this stream at version {} with another head (the log has version {version} there)",
                    a.id, h.version
                ),
                None => format!(
                    "anchor {} signed this stream at version {}; the log no longer holds it",
                    a.id, h.version
                ),
            };
            named = true;
            self.found(at(&h.stream_type, &h.stream_id, h.version, problem));
        }
        let root = heads_digest(&self.heads);
        if !named && (root != a.root || self.events != a.events) {
            self.found(at(
                "log",
                "",
                0,
                format!(
                    "anchor {} signed {} events in {} streams up to position {}; the log holds {} in {} streams there",
                    a.id,
                    a.events,
                    a.streams,
                    a.position,
                    self.events,
                    self.heads.len()
                ),
            ));
        }
    }

    fn report(self, anchors: i64, key: &VerifyingKey) -> Report {
        Report {
            intact: self.first.is_none(),
            events_checked: self.events,
            streams_checked: self.heads.len() as i64,
            anchors_checked: anchors,
            first_broken: self.first,
            broken: self.broken,
            public_key: public_key_hex(key),
            withheld: self.withheld,
        }
    }
}

/// What a verifiable export holds, signed with the anchor key when it was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// `ndjson`, `cloudevents` or `parquet`.
    pub format: String,
    /// SHA-256 of the export file's bytes.
    pub sha256: String,
    pub events: u64,
    pub last_position: Option<i64>,
    /// Whether every event of each exported stream within the range is in the file (no type
    /// or stream-type filter), so its chains can be checked.
    pub whole_streams: bool,
    pub written_at: String,
}

impl Manifest {
    fn message(&self) -> Vec<u8> {
        let mut text = b"cinelog-export/1\n".to_vec();
        text.extend(serde_json::to_vec(self).expect("a manifest serializes"));
        text
    }
}

/// The proof beside an export (`FILE.proof.json`): its signed manifest and every anchor up to
/// its last event, so a third party can check the file with the public key alone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Proof {
    pub manifest: Manifest,
    pub signature: String,
    pub public_key: String,
    pub anchors: Vec<Anchor>,
}

/// Where an export's proof is written.
pub fn proof_path(export: &Path) -> PathBuf {
    let mut name = export.as_os_str().to_owned();
    name.push(".proof.json");
    PathBuf::from(name)
}

fn file_sha256(path: &Path) -> anyhow::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut file, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

/// Signs a finished export and writes its proof beside it; answers the proof's path.
pub async fn write_proof(
    store: &Store,
    key: &AnchorKey,
    export: &Path,
    format: &str,
    events: u64,
    last_position: Option<i64>,
    whole_streams: bool,
) -> anyhow::Result<PathBuf> {
    let manifest = Manifest {
        format: format.into(),
        sha256: file_sha256(export)?,
        events,
        last_position,
        whole_streams,
        written_at: cinelog_domain::envelope::format_time(Utc::now()),
    };
    let end = last_position.unwrap_or(0);
    let proof = Proof {
        signature: hex::encode(key.signing.sign(&manifest.message()).to_bytes()),
        public_key: public_key_hex(&key.public()),
        manifest,
        anchors: anchors(store)
            .await?
            .into_iter()
            .filter(|a| a.position <= end)
            .collect(),
    };
    let path = proof_path(export);
    std::fs::write(&path, serde_json::to_vec_pretty(&proof)?)?;
    Ok(path)
}

/// One NDJSON export line, read back.
#[derive(Deserialize)]
struct Line {
    position: i64,
    stream_type: String,
    stream_id: String,
    version: i64,
    event_type: String,
    schema_version: String,
    payload: serde_json::Value,
    event_id: uuid::Uuid,
    correlation_id: uuid::Uuid,
    causation_id: Option<uuid::Uuid>,
    actor: cinelog_domain::Actor,
    recorded_at: chrono::DateTime<Utc>,
    hash: String,
    prev_hash: String,
}

/// Whether an export withheld part of a payload (credentials, personal data).
fn withheld(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => {
            matches!(s.as_str(), "[redacted]" | "[personal data]" | "[erased]")
        }
        serde_json::Value::Array(items) => items.iter().any(withheld),
        serde_json::Value::Object(map) => map.values().any(withheld),
        _ => false,
    }
}

/// Checks an export with its proof and a trusted public key, with no database: the proof's
/// signature, the file's digest, and (NDJSON) every chain link and anchored head it holds.
pub fn verify_export(export: &Path, key: &VerifyingKey) -> anyhow::Result<Report> {
    let proof: Proof =
        serde_json::from_slice(&std::fs::read(proof_path(export)).map_err(|e| {
            anyhow::anyhow!(
                "no proof beside the export ({}): {e}",
                proof_path(export).display()
            )
        })?)?;
    let mut check = Check::new(key);
    check.partial = true;
    let whole = |problem: String| Broken {
        stream_type: "export".into(),
        stream_id: export.display().to_string(),
        version: 0,
        position: proof.manifest.last_position.unwrap_or(0),
        problem,
    };
    let signed = Signature::from_slice(&hex::decode(&proof.signature).unwrap_or_default())
        .is_ok_and(|sig| key.verify(&proof.manifest.message(), &sig).is_ok());
    if !signed {
        check.found(whole(
            "the export's manifest is not signed by the trusted key".into(),
        ));
        return Ok(check.report(0, key));
    }
    if file_sha256(export)? != proof.manifest.sha256 {
        check.found(whole(
            "the file differs from the one signed: it was edited or truncated".into(),
        ));
        return Ok(check.report(0, key));
    }
    if proof.manifest.format != "ndjson" || !proof.manifest.whole_streams {
        // The digest and signature stand for the whole file; chains need whole NDJSON streams.
        return Ok(check.report(0, key));
    }
    let mut versions: BTreeMap<(String, String), BTreeMap<i64, String>> = BTreeMap::new();
    for line in std::fs::read_to_string(export)?.lines() {
        let l: Line = serde_json::from_str(line)?;
        let held = withheld(&l.payload);
        let e = RecordedEvent {
            position: l.position,
            tx: 0,
            stream_type: l.stream_type,
            stream_id: l.stream_id,
            version: l.version,
            event_type: l.event_type,
            schema_version: l.schema_version,
            payload: l.payload,
            meta: cinelog_domain::EventMeta {
                event_id: l.event_id,
                correlation_id: l.correlation_id,
                causation_id: l.causation_id,
                actor: l.actor,
                recorded_at: l.recorded_at,
                hash: l.hash,
                prev_hash: l.prev_hash,
            },
        };
        versions
            .entry((e.stream_type.clone(), e.stream_id.clone()))
            .or_default()
            .insert(e.version, e.meta.hash.clone());
        let computed = (!held).then(|| e.computed_hash());
        check.event(&e, computed.as_deref());
    }
    for a in &proof.anchors {
        check.anchor_offline(a, &versions);
    }
    Ok(check.report(proof.anchors.len() as i64, key))
}

impl Check<'_> {
    /// An anchor against an export: each head it signed for a stream the export holds (from
    /// that stream's first exported version on) must be there with the signed hash.
    fn anchor_offline(
        &mut self,
        a: &Anchor,
        versions: &BTreeMap<(String, String), BTreeMap<i64, String>>,
    ) {
        if !a.signature_holds(self.key) {
            self.found(Broken {
                stream_type: "anchor".into(),
                stream_id: a.id.to_string(),
                version: 0,
                position: a.position,
                problem: format!("anchor {} is not signed by the trusted key", a.id),
            });
            return;
        }
        let heads: Vec<Head> = serde_json::from_str(&a.heads).unwrap_or_default();
        for h in heads {
            let Some(held) = versions.get(&(h.stream_type.clone(), h.stream_id.clone())) else {
                continue;
            };
            let first = held.keys().next().copied().unwrap_or(0);
            if h.version < first {
                continue;
            }
            let problem = match held.get(&h.version) {
                Some(hash) if *hash == h.hash => continue,
                Some(_) => format!("anchor {} signed another event at this version", a.id),
                None => format!(
                    "anchor {} signed this version; the export ends this stream at version {}",
                    a.id,
                    held.keys().last().copied().unwrap_or(0)
                ),
            };
            self.found(Broken {
                stream_type: h.stream_type,
                stream_id: h.stream_id,
                version: h.version,
                position: a.position,
                problem,
            });
        }
    }
}
