//! A KurrentDB (EventStoreDB) server for tests: KurrentDB's own gRPC protocol, generated with
//! `tonic`/`prost` from the `.proto` files the `kurrentdb` client crate ships, with the log kept
//! in memory. The `kurrentdb` client talks to it exactly as it talks to a real node.
//!
//! What it covers, as KurrentDB's gRPC documentation and the client's tests describe the server:
//! - `ServerFeatures.GetSupportedMethods`, asked by the client when it connects: it lists `read`
//!   and `append` of the streams service (no batch append, no persistent subscriptions).
//! - `Streams.Append` (client streaming: options, then proposed messages): the expected revision
//!   (`revision`, `no_stream`, `any`, `stream_exists`) is checked atomically with the write; a
//!   mismatch answers `wrong_expected_version` with the stream's current revision (both the
//!   current and the 20.6.0 fields); success answers the stream's revision and the last event's
//!   position. Events carry the id, `type` and `content-type` sent, and the server's `created`
//!   (100 ns ticks since the Unix epoch) in their system metadata.
//! - Positions: each event takes its own place in the transaction log, so its commit and prepare
//!   positions are equal; they grow by the record's size (not by one), and the log starts with a
//!   system event (`$settings`), as a fresh node's does.
//! - `Streams.Read` of a stream, forwards or backwards, from the start, the end or a revision,
//!   with a count; a stream never written answers `stream_not_found`.
//! - `Streams.Read` of `$all`, forwards (from a position inclusive) or backwards (before a
//!   position), from the start, the end or a position, in commit order, with a count.
//! - Catch-up subscriptions (`count_option = subscription`) to a stream or to `$all`: a
//!   confirmation, the events after the starting point, `caught_up`, then each new event live;
//!   the call stays open until the client leaves.
//! - Event ids as the client asked (`uuid_option` string or structured).
//!
//! What it does not: server-side filters (answered `Unimplemented`), link resolution, stream
//! deletion and tombstones, stream metadata (`$$` streams, max age/count), idempotent
//! re-appends of the same event ids, explicit transactions (where commit and prepare differ),
//! batch append, persistent subscriptions, projections, users, gossip and clusters,
//! authentication, TLS, `fell_behind` and checkpoints in subscriptions, and persistence: the log
//! lives as long as the server.

#![allow(clippy::result_large_err)]

use futures::StreamExt;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// The code generated from KurrentDB's protocol (see `build.rs`), in its packages' layout.
#[allow(clippy::all)]
pub mod proto {
    pub mod event_store {
        pub mod client {
            tonic::include_proto!("event_store.client");
            pub mod streams {
                tonic::include_proto!("event_store.client.streams");
            }
            pub mod server_features {
                tonic::include_proto!("event_store.client.server_features");
            }
        }
    }
    pub mod google {
        pub mod rpc {
            tonic::include_proto!("google.rpc");
        }
    }
}

use proto::event_store::client as shared;
use proto::event_store::client::server_features::{
    SupportedMethod, SupportedMethods,
    server_features_server::{ServerFeatures, ServerFeaturesServer},
};
use proto::event_store::client::streams::{
    self as streams, AppendReq, AppendResp, BatchAppendReq, BatchAppendResp, DeleteReq, DeleteResp,
    ReadReq, ReadResp, TombstoneReq, TombstoneResp,
    streams_server::{Streams, StreamsServer},
};

/// An event as an append proposes it: id, system metadata, custom metadata, data.
type Proposed = (uuid::Uuid, HashMap<String, String>, Vec<u8>, Vec<u8>);

/// One event as the fake's log holds it.
#[derive(Clone)]
struct Stored {
    id: uuid::Uuid,
    stream: Vec<u8>,
    revision: u64,
    position: u64,
    metadata: HashMap<String, String>,
    custom_metadata: Vec<u8>,
    data: Vec<u8>,
}

#[derive(Default)]
struct Log {
    events: Vec<Stored>,
    /// Each stream's events, as indexes into `events`.
    streams: HashMap<Vec<u8>, Vec<usize>>,
    /// Where the next record goes in the transaction log.
    next_position: u64,
}

impl Log {
    fn new() -> Log {
        let mut log = Log {
            next_position: 128,
            ..Log::default()
        };
        let settings = br#"{"$userStreamAcl":{"$r":"$all","$w":"$all"}}"#.to_vec();
        log.write(
            b"$settings",
            vec![(
                uuid::Uuid::new_v4(),
                meta("update-default-acl"),
                Vec::new(),
                settings,
            )],
        );
        log
    }

    fn current(&self, stream: &[u8]) -> Option<u64> {
        self.streams
            .get(stream)
            .and_then(|s| s.last())
            .map(|&i| self.events[i].revision)
    }

    /// Writes events to a stream and answers the last one's position.
    fn write(&mut self, stream: &[u8], events: Vec<Proposed>) -> u64 {
        let created = chrono::Utc::now();
        let ticks = (created.timestamp() as u64) * 10_000_000
            + u64::from(created.timestamp_subsec_nanos()) / 100;
        let first = self.current(stream).map_or(0, |r| r + 1);
        let mut last = 0;
        for (revision, (id, mut metadata, custom_metadata, data)) in (first..).zip(events) {
            metadata.insert("created".into(), ticks.to_string());
            let position = self.next_position;
            self.next_position += 64 + (stream.len() + custom_metadata.len() + data.len()) as u64;
            self.streams
                .entry(stream.to_vec())
                .or_default()
                .push(self.events.len());
            self.events.push(Stored {
                id,
                stream: stream.to_vec(),
                revision,
                position,
                metadata,
                custom_metadata,
                data,
            });
            last = position;
        }
        last
    }
}

fn meta(event_type: &str) -> HashMap<String, String> {
    HashMap::from([
        ("type".to_string(), event_type.to_string()),
        ("content-type".to_string(), "application/json".to_string()),
    ])
}

/// The fake server's state, shared by its services.
#[derive(Clone)]
pub struct FakeKurrent {
    log: Arc<Mutex<Log>>,
    /// How many events the log holds; subscriptions wait on it.
    written: watch::Sender<usize>,
}

impl Default for FakeKurrent {
    fn default() -> Self {
        let log = Log::new();
        let (written, _) = watch::channel(log.events.len());
        FakeKurrent {
            log: Arc::new(Mutex::new(log)),
            written,
        }
    }
}

/// A fake server listening on a local port; stops when dropped.
pub struct RunningKurrent {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl RunningKurrent {
    /// The connection string the `kurrentdb` client takes. A single node is found after one
    /// discovery interval, so it is short here.
    pub fn url(&self) -> String {
        format!(
            "esdb://127.0.0.1:{}?tls=false&discoveryInterval=10",
            self.addr.port()
        )
    }
}

/// Starts a fake server that serves for as long as the calling test's runtime runs; answers
/// its connection string.
pub async fn start_for_test() -> String {
    let mut running = FakeKurrent::start(([127, 0, 0, 1], 0).into())
        .await
        .expect("the fake KurrentDB starts");
    let url = running.url();
    let stop = running.stop.take();
    // The stop signal is held by a task of the same runtime: the server stops with the runtime
    // (at the end of the test, passed or failed), not before.
    tokio::spawn(async move {
        let _stop = stop;
        std::future::pending::<()>().await
    });
    url
}

impl Drop for RunningKurrent {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl FakeKurrent {
    /// Serves on `addr` (port 0 picks a free one) until the answer is dropped.
    pub async fn start(addr: SocketAddr) -> std::io::Result<RunningKurrent> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let fake = FakeKurrent::default();
        tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .add_service(StreamsServer::new(fake.clone()))
                .add_service(ServerFeaturesServer::new(fake))
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    async {
                        let _ = stopped.await;
                    },
                )
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "the fake KurrentDB stopped");
            }
        });
        Ok(RunningKurrent {
            addr,
            stop: Some(stop),
        })
    }
}

fn uuid_of(id: Option<shared::Uuid>) -> Result<uuid::Uuid, Status> {
    use shared::uuid::Value;
    match id.and_then(|u| u.value) {
        Some(Value::String(s)) => {
            uuid::Uuid::parse_str(&s).map_err(|_| Status::invalid_argument("bad event id"))
        }
        Some(Value::Structured(s)) => Ok(uuid::Uuid::from_u64_pair(
            s.most_significant_bits as u64,
            s.least_significant_bits as u64,
        )),
        None => Err(Status::invalid_argument("an event id is required")),
    }
}

fn proto_uuid(id: uuid::Uuid, structured: bool) -> shared::Uuid {
    use shared::uuid::{Structured, Value};
    let value = if structured {
        let (most, least) = id.as_u64_pair();
        Value::Structured(Structured {
            most_significant_bits: most as i64,
            least_significant_bits: least as i64,
        })
    } else {
        Value::String(id.to_string())
    };
    shared::Uuid { value: Some(value) }
}

fn read_event(e: &Stored, structured: bool) -> ReadResp {
    use streams::read_resp::{Content, ReadEvent, read_event};
    ReadResp {
        content: Some(Content::Event(ReadEvent {
            event: Some(read_event::RecordedEvent {
                id: Some(proto_uuid(e.id, structured)),
                stream_identifier: Some(shared::StreamIdentifier {
                    stream_name: e.stream.clone(),
                }),
                stream_revision: e.revision,
                prepare_position: e.position,
                commit_position: e.position,
                metadata: e.metadata.clone(),
                custom_metadata: e.custom_metadata.clone(),
                data: e.data.clone(),
            }),
            link: None,
            position: Some(read_event::Position::CommitPosition(e.position)),
        })),
    }
}

type Answers = Pin<Box<dyn futures::Stream<Item = Result<ReadResp, Status>> + Send>>;

/// Where a read or subscription starts, resolved against the log.
enum From {
    /// A stream's events from this index of its list (forwards) or up to it (backwards).
    Stream {
        stream: Vec<u8>,
        revision: Bound,
    },
    All(Bound),
}

enum Bound {
    Start,
    End,
    At(u64),
}

impl FakeKurrent {
    /// The indexes (into the log) of the events a read answers, in the order it answers them.
    fn select(&self, from: &From, backwards: bool, count: u64) -> Result<Vec<usize>, Vec<u8>> {
        let log = self.log.lock().expect("log");
        let take = count.min(usize::MAX as u64) as usize;
        let picked: Vec<usize> = match from {
            From::Stream { stream, revision } => {
                let Some(list) = log.streams.get(stream) else {
                    return Err(stream.clone());
                };
                let at = |r: u64| list.iter().position(|&i| log.events[i].revision >= r);
                match (revision, backwards) {
                    (Bound::Start, false) => list.iter().take(take).copied().collect(),
                    (Bound::End, false) => Vec::new(),
                    (Bound::At(r), false) => match at(*r) {
                        Some(k) => list[k..].iter().take(take).copied().collect(),
                        None => Vec::new(),
                    },
                    (Bound::Start, true) => list.iter().take(1).take(take).copied().collect(),
                    (Bound::End, true) => list.iter().rev().take(take).copied().collect(),
                    (Bound::At(r), true) => list
                        .iter()
                        .rev()
                        .filter(|&&i| log.events[i].revision <= *r)
                        .take(take)
                        .copied()
                        .collect(),
                }
            }
            From::All(bound) => {
                let first_at = |p: u64| log.events.partition_point(|e| e.position < p);
                let n = log.events.len();
                match (bound, backwards) {
                    (Bound::Start, false) => (0..n).take(take).collect(),
                    (Bound::End, false) => Vec::new(),
                    (Bound::At(p), false) => (first_at(*p)..n).take(take).collect(),
                    (Bound::Start, true) => Vec::new(),
                    (Bound::End, true) => (0..n).rev().take(take).collect(),
                    (Bound::At(p), true) => (0..first_at(*p)).rev().take(take).collect(),
                }
            }
        };
        Ok(picked)
    }

    fn events(&self, picked: &[usize], structured: bool) -> Vec<ReadResp> {
        let log = self.log.lock().expect("log");
        picked
            .iter()
            .map(|&i| read_event(&log.events[i], structured))
            .collect()
    }

    /// A catch-up subscription: the events after the starting point, `caught_up`, then live
    /// events until the client leaves.
    fn subscribe(&self, from: From, structured: bool) -> Answers {
        use streams::read_resp::{CaughtUp, Content, SubscriptionConfirmation};
        let (send, answers) = mpsc::channel::<Result<ReadResp, Status>>(256);
        let fake = self.clone();
        let mut written = self.written.subscribe();
        tokio::spawn(async move {
            let confirmation = ReadResp {
                content: Some(Content::Confirmation(SubscriptionConfirmation {
                    subscription_id: uuid::Uuid::new_v4().to_string(),
                })),
            };
            if send.send(Ok(confirmation)).await.is_err() {
                return;
            }
            // The first log index not yet considered.
            let mut next = {
                let log = fake.log.lock().expect("log");
                match &from {
                    From::All(Bound::Start)
                    | From::Stream {
                        revision: Bound::Start,
                        ..
                    } => 0,
                    From::All(Bound::End)
                    | From::Stream {
                        revision: Bound::End,
                        ..
                    } => log.events.len(),
                    // Subscriptions start after the position or revision given.
                    From::All(Bound::At(p)) => log.events.partition_point(|e| e.position <= *p),
                    From::Stream {
                        stream,
                        revision: Bound::At(r),
                    } => log
                        .events
                        .iter()
                        .position(|e| &e.stream == stream && e.revision > *r)
                        .unwrap_or(log.events.len()),
                }
            };
            let mut caught_up = false;
            loop {
                let batch: Vec<ReadResp> = {
                    let log = fake.log.lock().expect("log");
                    let wanted = |e: &Stored| match &from {
                        From::All(_) => true,
                        From::Stream { stream, .. } => &e.stream == stream,
                    };
                    let batch = log.events[next..]
                        .iter()
                        .filter(|e| wanted(e))
                        .map(|e| read_event(e, structured))
                        .collect();
                    next = log.events.len();
                    batch
                };
                for answer in batch {
                    if send.send(Ok(answer)).await.is_err() {
                        return;
                    }
                }
                if !caught_up {
                    caught_up = true;
                    let now = std::time::SystemTime::now();
                    let answer = ReadResp {
                        content: Some(Content::CaughtUp(CaughtUp {
                            timestamp: Some(prost_types::Timestamp::from(now)),
                            stream_revision: None,
                            position: None,
                        })),
                    };
                    if send.send(Ok(answer)).await.is_err() {
                        return;
                    }
                }
                tokio::select! {
                    changed = written.changed() => if changed.is_err() { return },
                    _ = send.closed() => return,
                }
            }
        });
        Box::pin(ReceiverStream::new(answers))
    }
}

#[tonic::async_trait]
impl Streams for FakeKurrent {
    type ReadStream = Answers;

    async fn read(&self, request: Request<ReadReq>) -> Result<Response<Answers>, Status> {
        use streams::read_req::options::{
            CountOption, FilterOption, ReadDirection, StreamOption, all_options::AllOption,
            stream_options::RevisionOption, uuid_option,
        };
        let options = request
            .into_inner()
            .options
            .ok_or_else(|| Status::invalid_argument("read options are required"))?;
        if let Some(FilterOption::Filter(_)) = options.filter_option {
            return Err(Status::unimplemented(
                "the fake server does not filter reads",
            ));
        }
        let structured = matches!(
            options.uuid_option.and_then(|u| u.content),
            Some(uuid_option::Content::Structured(_))
        );
        let backwards = options.read_direction == ReadDirection::Backwards as i32;
        let from = match options.stream_option {
            Some(StreamOption::Stream(s)) => From::Stream {
                stream: s
                    .stream_identifier
                    .ok_or_else(|| Status::invalid_argument("a stream is required"))?
                    .stream_name,
                revision: match s.revision_option {
                    Some(RevisionOption::Revision(r)) => Bound::At(r),
                    Some(RevisionOption::End(_)) => Bound::End,
                    Some(RevisionOption::Start(_)) | None => Bound::Start,
                },
            },
            Some(StreamOption::All(a)) => From::All(match a.all_option {
                Some(AllOption::Position(p)) => Bound::At(p.commit_position),
                Some(AllOption::End(_)) => Bound::End,
                Some(AllOption::Start(_)) | None => Bound::Start,
            }),
            None => return Err(Status::invalid_argument("a stream or $all is required")),
        };
        let count = match options.count_option {
            Some(CountOption::Subscription(_)) => {
                return Ok(Response::new(self.subscribe(from, structured)));
            }
            Some(CountOption::Count(n)) => n,
            None => u64::MAX,
        };
        let answers: Vec<Result<ReadResp, Status>> = match self.select(&from, backwards, count) {
            Ok(picked) => self
                .events(&picked, structured)
                .into_iter()
                .map(Ok)
                .collect(),
            Err(stream) => {
                use streams::read_resp::{Content, StreamNotFound};
                vec![Ok(ReadResp {
                    content: Some(Content::StreamNotFound(StreamNotFound {
                        stream_identifier: Some(shared::StreamIdentifier {
                            stream_name: stream,
                        }),
                    })),
                })]
            }
        };
        Ok(Response::new(Box::pin(futures::stream::iter(answers))))
    }

    async fn append(
        &self,
        request: Request<Streaming<AppendReq>>,
    ) -> Result<Response<AppendResp>, Status> {
        use streams::append_req::{Content, options::ExpectedStreamRevision};
        use streams::append_resp::{self, success, wrong_expected_version as wrong};
        let mut parts = request.into_inner();
        let Some(Content::Options(options)) =
            parts.next().await.transpose()?.and_then(|r| r.content)
        else {
            return Err(Status::invalid_argument(
                "an append starts with its options",
            ));
        };
        let stream = options
            .stream_identifier
            .ok_or_else(|| Status::invalid_argument("a stream is required"))?
            .stream_name;
        let mut events = Vec::new();
        while let Some(part) = parts.next().await.transpose()? {
            let Some(Content::ProposedMessage(m)) = part.content else {
                return Err(Status::invalid_argument(
                    "only events may follow the options",
                ));
            };
            if !m.metadata.contains_key("type") {
                return Err(Status::invalid_argument("an event needs a type"));
            }
            events.push((uuid_of(m.id)?, m.metadata, m.custom_metadata, m.data));
        }
        let expected = options.expected_stream_revision;
        let mut log = self.log.lock().expect("log");
        let current = log.current(&stream);
        let fits = match expected {
            Some(ExpectedStreamRevision::Revision(r)) => current == Some(r),
            Some(ExpectedStreamRevision::NoStream(_)) => current.is_none(),
            Some(ExpectedStreamRevision::StreamExists(_)) => current.is_some(),
            Some(ExpectedStreamRevision::Any(_)) | None => true,
        };
        let result = if !fits {
            append_resp::Result::WrongExpectedVersion(append_resp::WrongExpectedVersion {
                current_revision_option_20_6_0: Some(match current {
                    Some(r) => wrong::CurrentRevisionOption2060::CurrentRevision2060(r),
                    None => wrong::CurrentRevisionOption2060::NoStream2060(shared::Empty {}),
                }),
                expected_revision_option_20_6_0: Some(match expected {
                    Some(ExpectedStreamRevision::Revision(r)) => {
                        wrong::ExpectedRevisionOption2060::ExpectedRevision2060(r)
                    }
                    Some(ExpectedStreamRevision::StreamExists(_)) => {
                        wrong::ExpectedRevisionOption2060::StreamExists2060(shared::Empty {})
                    }
                    _ => wrong::ExpectedRevisionOption2060::Any2060(shared::Empty {}),
                }),
                current_revision_option: Some(match current {
                    Some(r) => wrong::CurrentRevisionOption::CurrentRevision(r),
                    None => wrong::CurrentRevisionOption::CurrentNoStream(shared::Empty {}),
                }),
                expected_revision_option: Some(match expected {
                    Some(ExpectedStreamRevision::Revision(r)) => {
                        wrong::ExpectedRevisionOption::ExpectedRevision(r)
                    }
                    Some(ExpectedStreamRevision::NoStream(_)) => {
                        wrong::ExpectedRevisionOption::ExpectedNoStream(shared::Empty {})
                    }
                    Some(ExpectedStreamRevision::StreamExists(_)) => {
                        wrong::ExpectedRevisionOption::ExpectedStreamExists(shared::Empty {})
                    }
                    Some(ExpectedStreamRevision::Any(_)) | None => {
                        wrong::ExpectedRevisionOption::ExpectedAny(shared::Empty {})
                    }
                }),
            })
        } else if events.is_empty() {
            append_resp::Result::Success(append_resp::Success {
                current_revision_option: Some(match current {
                    Some(r) => success::CurrentRevisionOption::CurrentRevision(r),
                    None => success::CurrentRevisionOption::NoStream(shared::Empty {}),
                }),
                position_option: Some(success::PositionOption::NoPosition(shared::Empty {})),
            })
        } else {
            let position = log.write(&stream, events);
            let revision = log.current(&stream).unwrap_or_default();
            let total = log.events.len();
            drop(log);
            self.written.send_replace(total);
            append_resp::Result::Success(append_resp::Success {
                current_revision_option: Some(success::CurrentRevisionOption::CurrentRevision(
                    revision,
                )),
                position_option: Some(success::PositionOption::Position(append_resp::Position {
                    commit_position: position,
                    prepare_position: position,
                })),
            })
        };
        Ok(Response::new(AppendResp {
            result: Some(result),
        }))
    }

    async fn delete(&self, _: Request<DeleteReq>) -> Result<Response<DeleteResp>, Status> {
        Err(Status::unimplemented(
            "the fake server does not delete streams",
        ))
    }

    async fn tombstone(&self, _: Request<TombstoneReq>) -> Result<Response<TombstoneResp>, Status> {
        Err(Status::unimplemented(
            "the fake server does not tombstone streams",
        ))
    }

    type BatchAppendStream =
        Pin<Box<dyn futures::Stream<Item = Result<BatchAppendResp, Status>> + Send>>;

    async fn batch_append(
        &self,
        _: Request<Streaming<BatchAppendReq>>,
    ) -> Result<Response<Self::BatchAppendStream>, Status> {
        Err(Status::unimplemented(
            "the fake server does not batch appends",
        ))
    }
}

#[tonic::async_trait]
impl ServerFeatures for FakeKurrent {
    async fn get_supported_methods(
        &self,
        _: Request<shared::Empty>,
    ) -> Result<Response<SupportedMethods>, Status> {
        let method = |name: &str| SupportedMethod {
            method_name: name.to_string(),
            service_name: "event_store.client.streams.streams".to_string(),
            features: Vec::new(),
        };
        Ok(Response::new(SupportedMethods {
            methods: vec![method("read"), method("append")],
            event_store_server_version: "25.0.0".to_string(),
        }))
    }
}
