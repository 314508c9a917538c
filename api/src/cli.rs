//! The `cinelog` command line.

use crate::app::{self, Outside};
use cinelog_commands::CommandMeta;
use cinelog_domain::Actor;
use cinelog_domain::values::Role;
use cinelog_infra::settings::Layer;
use cinelog_infra::{Secret, Settings};
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser, Debug)]
#[command(
    name = "cinelog",
    version,
    about = "Cinelog: event-sourced video streaming"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Settings that may come from flags or `CINELOG_*` variables (flags win), over `cinelog.toml`.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Settings file (optional).
    #[arg(
        long,
        env = "CINELOG_CONFIG",
        default_value = "cinelog.toml",
        global = true
    )]
    pub config: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "CINELOG_ADDR", global = true)]
    pub addr: Option<SocketAddr>,
    /// Directory for the embedded SQLite files and keys.
    #[arg(long, env = "CINELOG_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// postgres://… to use Postgres; unset means SQLite in the data directory.
    #[arg(long, env = "CINELOG_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// esdb://host:2113?tls=false to keep the log in KurrentDB (EventStoreDB); the read models
    /// stay in --database-url, or SQLite in the data directory.
    #[arg(long, env = "CINELOG_EVENTSTORE_URL", global = true)]
    pub eventstore_url: Option<String>,
    #[arg(long, env = "CINELOG_REDIS_URL", global = true)]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key.
    #[arg(long, env = "CINELOG_REDIS_PREFIX", global = true)]
    pub redis_prefix: Option<String>,
    #[arg(long, env = "CINELOG_KAFKA_BROKERS", global = true)]
    pub kafka_brokers: Option<String>,
    /// Base URL users reach this server at.
    #[arg(long, env = "CINELOG_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// Access-token signing key (shared by all replicas in production).
    #[arg(
        long,
        env = "CINELOG_JWT_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub jwt_secret: Option<String>,
}

#[derive(Args, Debug)]
pub struct ProjectArgs {
    /// Where events come from: `log` or `kafka` (needs `--kafka-brokers`).
    #[arg(long, default_value = "log", value_parser = ["log", "kafka"])]
    pub source: String,
    /// The consumer group the Kafka workers share.
    #[arg(long, default_value = "cinelog-projections")]
    pub group: String,
    /// Only these projections (comma-separated); all of them when left out.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the API and the web UI (the default).
    Serve,
    /// Run the database migrations and set up the read models, then exit.
    Migrate,
    /// Keep the read models current without serving HTTP: follow the log (the default), or
    /// consume the relay's Kafka topics as one worker of a consumer group.
    Project(ProjectArgs),
    /// Publish the log to Kafka (`--kafka-brokers`), in log order, one relay at a time.
    Relay,
    /// Rebuild a projection from the start of the log beside the live one, then swap.
    Rebuild { projection: String },
    /// Manage the catalog.
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
    /// Manage video.
    Media {
        #[command(subcommand)]
        command: MediaCommand,
    },
    /// Recommendations.
    Recs {
        #[command(subcommand)]
        command: RecsCommand,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// SQL access for analysts (Postgres).
    Analyst {
        #[command(subcommand)]
        command: AnalystCommand,
    },
    /// Read the log out.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Integrity of the log: verify chains and anchors, sign an anchor, export the public key.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Recompute every stream's hash chain and check every signed anchor; exits non-zero and
    /// names the stream, version and position of each broken link.
    Verify {
        /// The trusted public key (hex); by default the one of this deployment's signing key.
        #[arg(long)]
        public_key: Option<String>,
        /// Check this export file (with `FILE.proof.json` beside it) instead of the database:
        /// no database and no network are used.
        #[arg(long)]
        export: Option<PathBuf>,
    },
    /// Sign an anchor over the log as it stands now.
    Anchor,
    /// Print the public key anchors are verified with.
    PublicKey,
}

#[derive(Subcommand, Debug)]
pub enum AnalystCommand {
    /// Create (or update) a Postgres login role that can read the `analytics` schema (views over
    /// the log and the read models) and nothing else.
    Grant {
        #[arg(long)]
        role: String,
        /// The role's password (optional where the server trusts local connections).
        #[arg(long, env = "CINELOG_ANALYST_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum EventsCommand {
    /// Write the log, in log order, to a file: NDJSON envelopes, CloudEvents (one JSON per
    /// line), or Parquet with typed envelope columns and the payload as JSON text. Password
    /// hashes are left out and personal data stays sealed, as in the analysts' API.
    Export {
        /// ndjson, cloudevents or parquet.
        #[arg(long, default_value = "ndjson")]
        format: cinelog_infra::export::Format,
        /// Only events recorded at or after this time (RFC 3339).
        #[arg(long)]
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// Only events recorded before this time (RFC 3339).
        #[arg(long)]
        to: Option<chrono::DateTime<chrono::Utc>>,
        /// Only these event types (comma-separated).
        #[arg(long, value_delimiter = ',')]
        types: Vec<String>,
        /// Only this stream type.
        #[arg(long)]
        stream_type: Option<String>,
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum CatalogCommand {
    /// Import popular movies and series (needs `[tmdb] token` in cinelog.toml). Re-importing an
    /// unchanged title appends nothing; a changed one appends an update.
    Import {
        /// Import from TMDB (the only source so far).
        #[arg(long)]
        tmdb: bool,
        /// Pages of discover results per kind (20 titles a page).
        #[arg(long, default_value_t = 1)]
        pages: u32,
    },
}

#[derive(Subcommand, Debug)]
pub enum MediaCommand {
    /// Make an HLS ladder (240p–1080p, shared 2-second segments) of a video file with ffmpeg and
    /// attach it to a title.
    Ingest {
        file: PathBuf,
        #[arg(long)]
        title: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum RecsCommand {
    /// Precision@10 and recall@10 of the local recommender and of a popularity baseline, on
    /// the latest 20% of each user's interactions held out.
    Evaluate {
        /// A CSV of `user,item,value,timestamp` (value: a rating, or a watch fraction 0–1).
        /// Without it, interactions come from the seeded taste model over the bundled catalog.
        #[arg(long)]
        interactions: Option<PathBuf>,
        /// Seed of the taste model.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Synthetic users.
        #[arg(long, default_value_t = 400)]
        users: usize,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user with a role (viewer, analyst, auditor).
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, env = "CINELOG_NEW_USER_PASSWORD", hide_env_values = true)]
        password: String,
        #[arg(long, default_value = "viewer")]
        role: String,
    },
    /// Erase a user's personal data: destroys their key, so their email and phone in the log can
    /// never be read again, and removes them from read models.
    Erase {
        #[arg(long)]
        email: String,
    },
}

impl Global {
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let layer = Layer {
            addr: self.addr,
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone().filter(|s| !s.is_empty()),
            eventstore_url: self.eventstore_url.clone().filter(|s| !s.is_empty()),
            redis_url: self.redis_url.clone().filter(|s| !s.is_empty()),
            redis_prefix: self.redis_prefix.clone(),
            kafka_brokers: self.kafka_brokers.clone().filter(|s| !s.is_empty()),
            public_url: self.public_url.clone(),
            jwt_secret: self.jwt_secret.clone().map(Secret::new),
            ..Layer::default()
        };
        Settings::load(&self.config, layer)
    }
}

/// Resolves on Ctrl-C or SIGTERM, the ways operators and orchestrators stop a worker.
async fn stopped() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = cli.global.settings()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => app::serve(settings).await,
        Command::Migrate => {
            let (store, projections, _) = app::open_projections(&settings).await?;
            println!(
                "migrated: event store on {}, projections {}",
                store.backend_name(),
                projections.names().join(", ")
            );
            Ok(())
        }
        Command::Project(args) if args.source == "kafka" => {
            let (_, projections, _) = app::open_projections(&settings).await?;
            let Some(brokers) = settings.kafka_brokers.as_deref() else {
                anyhow::bail!("say which Kafka brokers to consume from: --kafka-brokers HOST:PORT");
            };
            let worker = cinelog_infra::consumer::KafkaProjector::new(
                brokers,
                &args.group,
                projections,
                &args.only,
            )?;
            println!(
                "consuming cinelog.* from {brokers} in group {} for: {}",
                args.group,
                worker.names().join(", ")
            );
            tokio::select! {
                () = worker.run() => {}
                () = stopped() => {}
            }
            // Dropping the worker leaves the group, so its partitions move at once.
            Ok(())
        }
        Command::Project(args) => {
            anyhow::ensure!(
                args.only.is_empty(),
                "--only applies to --source kafka; log followers run every projection"
            );
            let (_, projections, _) = app::open_projections(&settings).await?;
            let followers = projections.spawn_followers();
            println!("following the log for: {}", projections.names().join(", "));
            stopped().await;
            followers.iter().for_each(|f| f.abort());
            Ok(())
        }
        Command::Relay => {
            let (store, projections, _) = app::open_projections(&settings).await?;
            let Some(relay) = app::relay_for(&settings, &store, projections.db()).await? else {
                anyhow::bail!("say which Kafka brokers to publish to: --kafka-brokers HOST:PORT");
            };
            println!(
                "relaying the log to Kafka at {}",
                settings.kafka_brokers.as_deref().unwrap_or_default()
            );
            tokio::select! {
                () = relay.run() => {}
                () = stopped() => {}
            }
            Ok(())
        }
        Command::Rebuild { projection } => {
            let (_, projections, _) = app::open_projections(&settings).await?;
            let generation = projections.rebuild(&projection).await?;
            println!("rebuilt {projection}: generation {generation} is live");
            Ok(())
        }
        Command::User {
            command:
                UserCommand::Create {
                    email,
                    password,
                    role,
                },
        } => {
            let role: Role = role.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
            let state = app::build(settings, Outside::default()).await?;
            let done = state
                .identity
                .signup(
                    &email,
                    &password,
                    None,
                    role,
                    &CommandMeta::new(Actor::System),
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "created {} user {} (account {})",
                role.as_str(),
                done.user_id,
                done.account_id
            );
            Ok(())
        }
        Command::Catalog {
            command: CatalogCommand::Import { tmdb, pages },
        } => {
            if !tmdb {
                anyhow::bail!("say where to import from: --tmdb");
            }
            let Some(tmdb) = settings.tmdb.clone() else {
                anyhow::bail!("set [tmdb] token = \"…\" in cinelog.toml to import from TMDB");
            };
            let state = app::build(settings, Outside::default()).await?;
            let client = cinelog_infra::tmdb::TmdbClient::new(tmdb);
            let report = app::import_tmdb(&state, &client, pages).await?;
            println!(
                "imported from TMDB: {} added, {} updated, {} unchanged",
                report.added, report.updated, report.unchanged
            );
            Ok(())
        }
        Command::Media {
            command: MediaCommand::Ingest { file, title },
        } => {
            let state = app::build(settings, Outside::default()).await?;
            let (media, position) = app::ingest_media(&state, &file, &title).await?;
            let names: Vec<&str> = media.renditions.iter().map(|r| r.name.as_str()).collect();
            println!(
                "attached {} ({:.1} s, {}) to {title} at position {position}",
                media.ladder,
                media.duration_secs,
                names.join(", ")
            );
            Ok(())
        }
        Command::Recs {
            command:
                RecsCommand::Evaluate {
                    interactions,
                    seed,
                    users,
                },
        } => {
            let report = app::evaluate_recommender(interactions.as_deref(), seed, users)?;
            println!("{}", app::report_table(&report));
            Ok(())
        }
        Command::Analyst {
            command: AnalystCommand::Grant { role, password },
        } => {
            let (_, projections, _) = app::open_projections(&settings).await?;
            cinelog_projections::analytics::grant(projections.db(), &role, password.as_deref())
                .await?;
            println!(
                "role {role} can read the analytics schema (views: {}) and nothing else",
                cinelog_projections::analytics::views(projections.db())
                    .await?
                    .join(", ")
            );
            Ok(())
        }
        Command::Events {
            command:
                EventsCommand::Export {
                    format,
                    from,
                    to,
                    types,
                    stream_type,
                    out,
                },
        } => {
            let (store, _, vault) = app::open_projections(&settings).await?;
            let head = cinelog_projections::EventLog::head(&store).await?;
            let log = cinelog_projections::analyst::AnalystLog::new(Arc::new(store.clone()), vault);
            let filter = cinelog_projections::analyst::LogFilter {
                stream_type,
                event_types: types,
                from,
                to,
            };
            let filters = serde_json::json!({
                "format": format!("{format:?}").to_lowercase(), "out": out,
                "stream_type": filter.stream_type, "types": filter.event_types,
                "from": filter.from, "to": filter.to,
            });
            let bar = indicatif::ProgressBar::new(u64::try_from(head).unwrap_or(0)).with_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {bar:40} {pos}/{len} positions {per_sec} eta {eta}",
                )?,
            );
            let done = cinelog_infra::export::export(&log, &filter, format, &out, |p| {
                bar.set_position(p.min(bar.length().unwrap_or(p)))
            })
            .await?;
            bar.finish_and_clear();
            // A proof beside the file lets anyone holding the public key check it offline.
            let whole_streams = filter.stream_type.is_none() && filter.event_types.is_empty();
            let proof = cinelog_infra::audit::write_proof(
                &store,
                &cinelog_infra::audit::AnchorKey::load_or_create(&settings.anchor_key_file())?,
                &out,
                filters["format"].as_str().unwrap_or_default(),
                done.events,
                done.last_position,
                whole_streams,
            )
            .await?;
            // The operator's read is audited like an analyst's.
            let mut filters = filters;
            filters["exported"] = done.events.into();
            cinelog_infra::history::record_read(
                &store,
                &CommandMeta::new(Actor::System),
                "events.export",
                filters,
            )
            .await?;
            println!(
                "exported {} events to {} (up to position {}); proof in {}",
                done.events,
                out.display(),
                done.last_position.unwrap_or(0),
                proof.display()
            );
            Ok(())
        }
        Command::Audit { command } => audit(&settings, command).await,
        Command::User {
            command: UserCommand::Erase { email },
        } => {
            let state = app::build(settings, Outside::default()).await?;
            // No followers run here: the read models the erasure asks (open sessions) are
            // brought to the log's head first.
            state.projections.catch_up_all(app::STARTUP_WAIT).await?;
            let user_id = state
                .identity
                .erase_personal_data(&email, &CommandMeta::new(Actor::System))
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            state.projections.catch_up_all(app::STARTUP_WAIT).await?;
            println!("erased the personal data of user {user_id}");
            Ok(())
        }
    }
}

async fn audit(settings: &Settings, command: AuditCommand) -> anyhow::Result<()> {
    use cinelog_infra::audit::{self, AnchorKey};
    let key = || AnchorKey::load_or_create(&settings.anchor_key_file());
    match command {
        AuditCommand::PublicKey => {
            println!("{}", audit::public_key_hex(&key()?.public()));
            Ok(())
        }
        AuditCommand::Anchor => {
            let (store, _) = app::open_stores(settings).await?;
            let mut anchorer =
                audit::Anchorer::new(store, key()?, settings.audit.anchor_file.clone()).await?;
            match anchorer.anchor().await? {
                Some(a) => println!(
                    "anchor {} signed: {} events in {} streams up to position {}",
                    a.id, a.events, a.streams, a.position
                ),
                None => println!("the log has not changed since the newest anchor"),
            }
            Ok(())
        }
        AuditCommand::Verify { public_key, export } => {
            let trusted = match public_key {
                Some(text) => audit::parse_public_key(&text)?,
                None => key()?.public(),
            };
            let report = match &export {
                Some(file) => audit::verify_export(file, &trusted)?,
                None => {
                    let (store, _) = app::open_stores(settings).await?;
                    audit::verify(&store, &trusted).await?
                }
            };
            println!(
                "checked {} events in {} streams and {} anchors (public key {})",
                report.events_checked,
                report.streams_checked,
                report.anchors_checked,
                report.public_key
            );
            if report.withheld > 0 {
                println!(
                    "{} events carry withheld personal data or credentials: their links and anchored hashes were checked, their content is not recomputable",
                    report.withheld
                );
            }
            if report.intact {
                println!("intact: every chain and every anchor holds");
                return Ok(());
            }
            for b in &report.broken {
                println!(
                    "BROKEN {}/{} version {} at position {}: {}",
                    b.stream_type, b.stream_id, b.version, b.position, b.problem
                );
            }
            anyhow::bail!(
                "the log fails verification ({} problems)",
                report.broken.len()
            )
        }
    }
}
