//! Puts the pieces together: stores, services, projections, routes. `build` and `app` are apart
//! from `serve` so tests can run the app in-process on port 0.

use crate::auth::JwtKeys;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::{openapi, routes, web};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use cinelog_commands::accounts::AccountService;
use cinelog_commands::billing::BillingService;
use cinelog_commands::catalog::CatalogService;
use cinelog_commands::identity::{IdentityPorts, IdentityService};
use cinelog_commands::meta::CommandMeta;
use cinelog_commands::playback::{PlaybackPorts, PlaybackService, StreamGrant};
use cinelog_commands::ports::PaymentGateway;
use cinelog_commands::ports::{Clock, Mailer, PhoneVerifier, SystemClock};
use cinelog_commands::store::EventStore;
use cinelog_commands::taste::TasteService;
use cinelog_domain::Actor;
use cinelog_infra::catalog_cache::CatalogCache;
use cinelog_infra::limits::Throttle;
use cinelog_infra::mail::{OutboxMailer, SmtpMailer};
use cinelog_infra::media::{MediaLibrary, bundled_catalog};
use cinelog_infra::payments::paypal::PaypalGateway;
use cinelog_infra::payments::sandbox::SandboxGateway;
use cinelog_infra::payments::stripe::StripeGateway;
use cinelog_infra::phone::{ConsoleVerifier, TwilioVerifier};
use cinelog_infra::reads;
use cinelog_infra::signed::SignedToken;
use cinelog_infra::vault::KeyVault;
use cinelog_infra::{Settings, Store};
use cinelog_projections::accounts::AccountsProjection;
use cinelog_projections::catalog::CatalogProjection;
use cinelog_projections::engagement::EngagementProjection;
use cinelog_projections::recommendations::Recommender;
use cinelog_projections::sessions::{SessionGuard, SessionsProjection};
use cinelog_projections::subscriptions::SubscriptionsProjection;
use cinelog_projections::watching::WatchingProjection;
use cinelog_projections::{EventLog, Projection, Projections, ReadDb};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How long a start waits for its read models to reach the log's head before serving.
pub(crate) const STARTUP_WAIT: Duration = Duration::from_secs(30);

pub struct Services {
    pub settings: Settings,
    pub store: Store,
    pub projections: Projections,
    /// The log as analysts read it.
    pub analyst_log: cinelog_projections::analyst::AnalystLog,
    /// Auditors' reads: history, traces, states as of a moment, integrity.
    pub history: cinelog_infra::history::History,
    /// One reader of the log's tail shared by every live follower.
    pub live_feed: cinelog_projections::analyst::LiveFeed,
    pub identity: IdentityService<Store>,
    pub accounts: AccountService<Store>,
    pub billing: BillingService<Store>,
    pub catalog: CatalogService<Store>,
    pub catalog_cache: CatalogCache,
    pub playback: PlaybackService<Store>,
    pub taste: TasteService<Store>,
    /// Trending in Redis sorted sets (production mode); `None` reads it from SQL.
    pub trending: Option<Arc<cinelog_infra::trending::RedisTrending>>,
    /// Recommendation rows (re-ranked by an LLM when a Groq key is set).
    pub recommender: Recommender,
    pub media: MediaLibrary,
    /// The sandbox payment provider, for its checkout page.
    pub sandbox: Option<Arc<SandboxGateway>>,
    pub clock: Arc<dyn Clock>,
    pub jwt: JwtKeys,
    /// Ended sessions whose access tokens this replica refuses.
    pub sessions: Arc<SessionGuard>,
    /// Limits on login guessing, signups, reset requests and phone codes.
    pub throttle: Throttle,
    pub metrics: Metrics,
    /// Open UI sockets per client.
    pub sockets: Arc<crate::web::SocketCounts>,
    /// Copies of TMDB's posters and backdrops.
    pub images: Arc<cinelog_infra::images::TmdbImages>,
    /// Cancelled when the server stops: open UI sockets close with it.
    pub stopping: tokio_util::sync::CancellationToken,
    /// How long a query waits for `min_position`.
    pub read_wait: Duration,
    /// The API's own base URL, known once the listener is bound; the UI calls it.
    pub api_base: OnceLock<String>,
}

pub type AppState = Arc<Services>;

impl Services {
    /// The base URL people reach this server at: the configured public URL, else the bound address.
    pub fn public_base(&self) -> String {
        match (&self.settings.public_url, self.api_base.get()) {
            (Some(url), _) => url.trim_end_matches('/').to_string(),
            (None, Some(bound)) => bound.clone(),
            (None, None) => self.settings.public_url(),
        }
    }
}

/// Outside services to use instead of the configured ones (tests pass fakes here).
#[derive(Default, Clone)]
pub struct Outside {
    pub phone: Option<Arc<dyn PhoneVerifier>>,
    pub mailer: Option<Arc<dyn Mailer>>,
    pub clock: Option<Arc<dyn Clock>>,
}

/// Every projection the process runs.
pub fn projection_list(vault: Arc<KeyVault>) -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(AccountsProjection { pii: vault }),
        Arc::new(SubscriptionsProjection),
        Arc::new(CatalogProjection),
        Arc::new(WatchingProjection),
        Arc::new(EngagementProjection),
        Arc::new(SessionsProjection),
        Arc::new(cinelog_projections::stats::StatsProjection),
    ]
}

/// Opens the event store and the read database for these settings, running migrations.
pub async fn open_stores(settings: &Settings) -> anyhow::Result<(Store, ReadDb)> {
    open_stores_with(settings, Arc::new(SystemClock)).await
}

/// Like [`open_stores`], the log's `recorded_at` read from `clock`.
async fn open_stores_with(
    settings: &Settings,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<(Store, ReadDb)> {
    let (store, read) = match settings.pool_url().as_deref() {
        Some(url) if settings.is_postgres() => {
            let store = Store::open_postgres(url, settings.max_connections).await?;
            let read = ReadDb::connect(url, settings.max_connections).await?;
            (store, read)
        }
        Some(other) => anyhow::bail!(
            "unsupported database URL {other:?}: use postgres://…, or leave it unset for SQLite in the data directory"
        ),
        None => {
            std::fs::create_dir_all(&settings.data_dir)?;
            let store = Store::open_sqlite(&settings.data_dir.join("events.db")).await?;
            let read_url = format!(
                "sqlite://{}?mode=rwc",
                settings.data_dir.join("read.db").display()
            );
            let read = ReadDb::connect(&read_url, settings.max_connections).await?;
            (store, read)
        }
    };
    let store = match settings.eventstore_url.as_deref() {
        Some(url) => store.on_kurrent(url).await?,
        None => store,
    };
    Ok((store.with_clock(clock), read))
}

/// Opens stores and sets up the projections (no followers started).
pub async fn open_projections(
    settings: &Settings,
) -> anyhow::Result<(Store, Projections, Arc<KeyVault>)> {
    open_projections_with(settings, Arc::new(SystemClock)).await
}

async fn open_projections_with(
    settings: &Settings,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<(Store, Projections, Arc<KeyVault>)> {
    let (store, read) = open_stores_with(settings, clock).await?;
    let vault = Arc::new(KeyVault::new(store.clone()));
    let log: Arc<dyn EventLog> = Arc::new(store.clone());
    let projections = Projections::new(read, log, projection_list(vault.clone()));
    projections.setup().await?;
    Ok((store, projections, vault))
}

/// The access-token key: from settings, else generated once and kept in the data directory.
fn jwt_secret(settings: &Settings) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = &settings.jwt_secret {
        return Ok(secret.expose().as_bytes().to_vec());
    }
    let path = settings.data_dir.join("jwt.key");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return Ok(hex::decode(existing.trim())?);
    }
    std::fs::create_dir_all(&settings.data_dir)?;
    let key: [u8; 32] = rand::random();
    write_private(&path, &hex::encode(key))?;
    Ok(key.to_vec())
}

/// A key for one purpose, derived from the server's secret.
fn derive_key(secret: &[u8], purpose: &str) -> Vec<u8> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    hasher.update(purpose.as_bytes());
    hasher.update([0]);
    hasher.update(secret);
    hasher.finalize().to_vec()
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(contents.as_bytes())
    }
    #[cfg(not(unix))]
    {
        std::fs::write(path, contents)
    }
}

/// Builds the services for these settings.
pub async fn build(settings: Settings, outside: Outside) -> anyhow::Result<AppState> {
    let clock = outside.clock.unwrap_or_else(|| Arc::new(SystemClock));
    let (store, projections, vault) = open_projections_with(&settings, clock.clone()).await?;
    let phone: Arc<dyn PhoneVerifier> = match (outside.phone, &settings.twilio) {
        (Some(p), _) => p,
        (None, Some(t)) => Arc::new(TwilioVerifier::new(
            &t.base_url,
            &t.service_sid,
            &t.account_sid,
            t.auth_token.clone(),
        )),
        (None, None) => Arc::new(ConsoleVerifier::with_outbox(
            settings.data_dir.join("outbox"),
        )),
    };
    let mailer: Arc<dyn Mailer> = match (outside.mailer, &settings.smtp) {
        (Some(m), _) => m,
        (None, Some(smtp)) => Arc::new(SmtpMailer::new(smtp, &settings.public_url())?),
        (None, None) => {
            let dir = settings.data_dir.join("outbox");
            tracing::info!(outbox = %dir.display(), "no [smtp] configured: mail is written to the outbox folder, not sent");
            Arc::new(OutboxMailer {
                dir,
                public_url: settings.public_url(),
            })
        }
    };
    let secret = jwt_secret(&settings)?;
    let jwt = JwtKeys::new(&secret, settings.access_token_ttl_secs);
    let sandbox = Arc::new(SandboxGateway::new(
        derive_key(&secret, "sandbox-payments"),
        clock.clone(),
    ));
    let mut gateways: Vec<Arc<dyn PaymentGateway>> = Vec::new();
    if settings.sandbox_offered() {
        gateways.push(sandbox.clone());
    }
    if let Some(stripe) = &settings.stripe {
        if stripe.webhook_secret.expose().is_empty() || stripe.secret_key.expose().is_empty() {
            anyhow::bail!("[stripe] needs a secret_key and a webhook_secret");
        }
        gateways.push(Arc::new(StripeGateway::new(stripe.clone(), clock.clone())));
    }
    if let Some(paypal) = &settings.paypal {
        if paypal.client_secret.expose().is_empty() || paypal.webhook_id.is_empty() {
            anyhow::bail!("[paypal] needs a client_secret and a webhook_id");
        }
        gateways.push(Arc::new(PaypalGateway::new(paypal.clone())));
    }
    let read_wait = Duration::from_secs(3);
    let directory = Arc::new(reads::ReadDirectory {
        projections: projections.clone(),
        wait: read_wait,
    });
    let catalog_cache = match &settings.redis_url {
        Some(url) => CatalogCache::redis(url, &settings.redis_prefix).await?,
        None => CatalogCache::memory(),
    };
    let throttle = match &settings.redis_url {
        Some(url) => Throttle::redis(url, &settings.redis_prefix, settings.limits.clone()).await?,
        None => Throttle::in_memory(settings.limits.clone()),
    };
    let guard = Arc::new(SessionGuard::new(Duration::from_secs(
        settings.access_token_ttl_secs.max(0) as u64,
    )));
    let registry = Arc::new(reads::ReadSessions {
        projections: projections.clone(),
        guard: guard.clone(),
        wait: read_wait,
    });
    let analyst_log =
        cinelog_projections::analyst::AnalystLog::new(Arc::new(store.clone()), vault.clone());
    let anchor_key = cinelog_infra::audit::AnchorKey::load_or_create(&settings.anchor_key_file())?;
    let history = cinelog_infra::history::History::new(
        store.clone(),
        analyst_log.clone(),
        anchor_key.public(),
    );
    let media = MediaLibrary::new(&settings.data_dir);
    let playback = PlaybackPorts {
        clock: clock.clone(),
        signer: Arc::new(SignedToken::<StreamGrant>::new(
            derive_key(&secret, "stream-urls"),
            "stream",
        )),
        resume: Arc::new(reads::ReadResumePoints {
            projections: projections.clone(),
            wait: read_wait,
        }),
        ladders: Arc::new(media.clone()),
    };
    let trending = match &settings.redis_url {
        Some(url) => Some(Arc::new(cinelog_infra::trending::RedisTrending::new(
            url,
            &settings.redis_prefix,
            Arc::new(store.clone()),
        )?)),
        None => None,
    };
    let identity = IdentityService::new(
        store.clone(),
        IdentityPorts {
            phone,
            mailer,
            clock: clock.clone(),
            vault,
            sessions: registry,
            claim_key: derive_key(&secret, "email-claims"),
        },
    );
    Ok(Arc::new(Services {
        identity,
        live_feed: cinelog_projections::analyst::LiveFeed::new(analyst_log.clone()),
        analyst_log,
        history,
        sessions: guard,
        accounts: AccountService::new(store.clone()),
        billing: BillingService::new(store.clone(), gateways, directory, clock.clone()),
        sandbox: settings.sandbox_offered().then_some(sandbox),
        catalog: CatalogService::new(store.clone()),
        catalog_cache,
        playback: PlaybackService::new(store.clone(), playback),
        taste: TasteService::new(store.clone()),
        recommender: Recommender {
            reranker: settings
                .groq
                .clone()
                .map(|g| Arc::new(cinelog_infra::groq::GroqReranker::new(g)) as _),
            trending: trending.clone().map(|t| t as _),
            ..Recommender::default()
        },
        trending,
        media,
        clock: clock.clone(),
        store,
        projections,
        jwt,
        throttle,
        metrics: Metrics::default(),
        sockets: Arc::default(),
        stopping: tokio_util::sync::CancellationToken::new(),
        images: Arc::new(cinelog_infra::images::TmdbImages::new(
            &settings.tmdb_images,
            &settings.data_dir,
        )?),
        read_wait,
        api_base: OnceLock::new(),
        settings,
    }))
}

/// The HTTP application.
pub fn app(state: AppState) -> Router {
    let ui = dioxus_liveview::LiveViewPool::new();
    let routes = Router::new()
        .merge(routes::auth::router())
        .merge(routes::profiles::router())
        .merge(routes::billing::router())
        .merge(routes::catalog::router())
        .merge(routes::playback::router())
        .merge(routes::engagement::router())
        .merge(routes::audit::router())
        .merge(routes::events::router())
        .merge(routes::stats::router())
        .merge(routes::ops::router())
        .merge(openapi::router())
        .merge(web::router(ui))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::track,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(crate::headers::no_store_for_api));
    crate::headers::secure(routes, &state.settings).with_state(state)
}

/// A running server: where it listens and its services.
pub struct Running {
    pub addr: SocketAddr,
    pub state: AppState,
    pub server: tokio::task::JoinHandle<()>,
    pub followers: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving: new connections are refused, open ones finish their request and close,
    /// UI sockets close, background work ends.
    pub fn stop(&self) {
        self.state.stopping.cancel();
        self.server.abort();
        for f in &self.followers {
            f.abort();
        }
    }
}

/// Builds, binds `settings.addr` (port 0 picks a free one), starts the projection followers and serves.
pub async fn start(settings: Settings, outside: Outside) -> anyhow::Result<Running> {
    let listener = TcpListener::bind(settings.addr).await?;
    let addr = listener.local_addr()?;
    let state = build(settings, outside).await?;
    let _ = state.api_base.set(format!("http://{addr}"));
    seed_catalog(&state).await?;
    state.projections.catch_up_all(STARTUP_WAIT).await?;
    let mut followers = state.projections.spawn_followers();
    followers.push(spawn_billing_scheduler(state.clone()));
    followers.push(spawn_session_guard(state.clone()).await?);
    if let Some(relay) = relay_for(&state.settings, &state.store, state.projections.db()).await? {
        followers.push(tokio::spawn(relay.run()));
    }
    if let Some(trending) = &state.trending {
        followers.push(trending.clone().spawn());
    }
    followers.push(spawn_anchorer(&state.settings, &state.store).await?);
    let router = app(state.clone());
    let server = tokio::spawn(async move {
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, service).await {
            tracing::error!(error = ?e, "server stopped");
        }
    });
    Ok(Running {
        addr,
        state,
        server,
        followers,
    })
}

/// Loads the bundled catalog and its demo media as events (actor: system). Titles already in
/// the log and unchanged append nothing, so this runs at every start.
pub async fn seed_catalog(state: &AppState) -> anyhow::Result<()> {
    let meta = CommandMeta::new(Actor::System);
    let mut added = 0;
    for title in bundled_catalog()? {
        let (outcome, _) = state.catalog.import(&title.id, title.info, &meta).await?;
        added += usize::from(outcome != cinelog_commands::catalog::Imported::Unchanged);
        match state.media.read_ladder(&title.ladder) {
            Ok(media) => {
                // Demo media never replaces a ladder ingested since.
                state
                    .catalog
                    .attach_media(&title.id, media, false, &meta)
                    .await?;
            }
            Err(e) => {
                tracing::warn!(title = %title.id, error = %e, "demo media missing; the title will not play")
            }
        }
    }
    if added > 0 {
        tracing::info!(titles = added, "bundled catalog loaded");
    }
    Ok(())
}

/// What a catalog import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
}

/// Imports the first `pages` pages of popular movies and series from TMDB: new titles are added,
/// changed ones updated, unchanged ones append nothing.
pub async fn import_tmdb(
    state: &AppState,
    client: &cinelog_infra::tmdb::TmdbClient,
    pages: u32,
) -> anyhow::Result<ImportReport> {
    use cinelog_commands::catalog::Imported;
    use cinelog_domain::title::Kind;
    let meta = CommandMeta::new(Actor::System);
    let mut report = ImportReport::default();
    let max = cinelog_infra::tmdb::MAX_PAGE;
    anyhow::ensure!(
        pages <= max,
        "TMDB serves at most {max} pages of a list; ask for {max} or fewer"
    );
    let genres = client.genre_names().await?;
    let pages = pages.max(1);
    let bar = indicatif::ProgressBar::new(u64::from(pages) * 2).with_style(
        indicatif::ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} pages ({eta})")
            .expect("a valid progress template"),
    );
    bar.set_message("importing from TMDB");
    // Page by page: each page's titles are written as they arrive, so memory holds one page.
    for kind in [Kind::Movie, Kind::Series] {
        for page in 1..=pages {
            let (titles, total) = client.page(kind, page, &genres).await?;
            for (id, info) in titles {
                match state.catalog.import(&id, info, &meta).await?.0 {
                    Imported::Added => report.added += 1,
                    Imported::Updated => report.updated += 1,
                    Imported::Unchanged => report.unchanged += 1,
                }
            }
            bar.inc(1);
            if u64::from(page) >= total {
                bar.inc(u64::from(pages - page));
                break;
            }
        }
    }
    bar.finish_and_clear();
    Ok(report)
}

/// Makes an HLS ladder of a video file with ffmpeg and attaches it to the title.
pub async fn ingest_media(
    state: &AppState,
    file: &Path,
    title_id: &str,
) -> anyhow::Result<(cinelog_domain::title::Media, i64)> {
    let known = state
        .store
        .load::<cinelog_domain::title::Title>(title_id)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if known.state.info.is_none() {
        anyhow::bail!("no title {title_id:?} in the catalog");
    }
    let media = state.media.ingest(file, title_id).await?;
    let position = state
        .catalog
        .attach_media(
            title_id,
            media.clone(),
            true,
            &CommandMeta::new(Actor::System),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((media, position))
}

/// The bundled catalog as the recommender sees it.
pub fn bundled_items() -> anyhow::Result<Vec<cinelog_projections::recommend::Item>> {
    Ok(bundled_catalog()?
        .into_iter()
        .map(|t| cinelog_projections::recommend::Item {
            id: t.id,
            name: t.info.name,
            genres: t.info.genres,
            kind: t.info.kind.as_str().to_string(),
            year: i64::from(t.info.year),
            maturity_rank: 0,
            popularity: t.info.popularity,
        })
        .collect())
}

/// `cinelog recs evaluate`: a CSV file's interactions, or the seeded taste model's (20 titles
/// per user), with each user's latest 20% held out.
pub fn evaluate_recommender(
    interactions: Option<&Path>,
    seed: u64,
    users: usize,
) -> anyhow::Result<cinelog_projections::evaluate::Report> {
    use cinelog_projections::evaluate;
    let catalog = bundled_items()?;
    let data = match interactions {
        Some(file) => evaluate::parse_csv(&std::fs::read_to_string(file)?)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?,
        None => evaluate::generate(&catalog, users, 20, seed),
    };
    Ok(evaluate::evaluate(&catalog, &data, 0.2))
}

/// The evaluation as a Markdown table.
pub fn report_table(r: &cinelog_projections::evaluate::Report) -> String {
    format!(
        "{} users, {} interactions, {} held out\n\n| ranker | precision@10 | recall@10 |\n|---|---|---|\n| local recommender | {:.4} | {:.4} |\n| popularity baseline | {:.4} | {:.4} |",
        r.users,
        r.interactions,
        r.held_out,
        r.recommender.0,
        r.recommender.1,
        r.popularity.0,
        r.popularity.1
    )
}

/// The outbox relay to Kafka, when brokers are configured.
pub async fn relay_for(
    settings: &Settings,
    store: &Store,
    db: &ReadDb,
) -> anyhow::Result<Option<cinelog_infra::relay::Relay>> {
    let Some(brokers) = settings.kafka_brokers.clone() else {
        return Ok(None);
    };
    let config = cinelog_infra::relay::RelayConfig {
        brokers,
        partitions: settings.kafka_partitions.max(1),
        replication: 1,
    };
    Ok(Some(
        cinelog_infra::relay::Relay::new(
            config,
            store.clone(),
            db.clone(),
            settings.data_dir.join("relay.lock"),
        )
        .await?,
    ))
}

/// Signs anchors over the log as it grows (see `cinelog_infra::audit`).
async fn spawn_anchorer(
    settings: &Settings,
    store: &Store,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let key = cinelog_infra::audit::AnchorKey::load_or_create(&settings.anchor_key_file())?;
    let anchorer =
        cinelog_infra::audit::Anchorer::new(store.clone(), key, settings.audit.anchor_file.clone())
            .await?;
    Ok(tokio::spawn(anchorer.run(
        settings.audit.anchor_every_events.max(1),
        Duration::from_secs(settings.audit.anchor_every_secs.max(1)),
    )))
}

/// How often a replica reads the sessions other processes ended.
const SESSION_GUARD_TICK: Duration = Duration::from_millis(200);

/// Loads the recently ended sessions before serving, then keeps reading them: the sessions
/// projection's follower brings other processes' ends into the read model.
async fn spawn_session_guard(state: AppState) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    state
        .sessions
        .refresh(state.projections.db(), state.clock.now())
        .await?;
    Ok(tokio::spawn(async move {
        let mut ticker = tokio::time::interval(SESSION_GUARD_TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if let Err(e) = state
                .sessions
                .refresh(state.projections.db(), state.clock.now())
                .await
            {
                tracing::warn!(error = %e, "could not read ended sessions; trying again");
            }
        }
    }))
}

/// Ends periods and grace periods as their moment passes, and bills sandbox renewals.
fn spawn_billing_scheduler(state: AppState) -> tokio::task::JoinHandle<()> {
    let every = Duration::from_secs(state.settings.billing_tick_secs.max(1));
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match state.billing.tick().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(changed = n, "billing scheduler moved subscriptions on"),
                Err(e) => {
                    tracing::warn!(error = %e, "billing scheduler failed; trying again later")
                }
            }
        }
    })
}

/// `cinelog serve`: runs until Ctrl-C or SIGTERM.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let running = start(settings, Outside::default()).await?;
    tracing::info!(url = %running.url(), backend = running.state.store.backend_name(), "Cinelog is serving");
    println!("Cinelog is serving at {}", running.url());
    shutdown_signal().await;
    running.stop();
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
