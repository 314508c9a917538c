//! One typed settings struct, layered: defaults, then `cinelog.toml` (if present), then
//! `CINELOG_*` environment variables and command-line flags (the binary merges those two).

use cinelog_domain::plan::PlanId;
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A secret value: usable, never printed.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Twilio Verify credentials; with them set, phone codes go out by SMS.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct TwilioSettings {
    #[serde(default = "TwilioSettings::default_base_url")]
    pub base_url: String,
    pub account_sid: String,
    pub auth_token: Secret,
    pub service_sid: String,
}

impl TwilioSettings {
    fn default_base_url() -> String {
        "https://verify.twilio.com/v2".into()
    }
}

/// A price or plan id per Cinelog plan, as the provider knows it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlanIds {
    pub basic: Option<String>,
    pub standard: Option<String>,
    pub premium: Option<String>,
}

impl PlanIds {
    /// The plan the provider's id sells.
    pub fn plan_of(&self, id: &str) -> Option<PlanId> {
        PlanId::ALL.into_iter().find(|p| self.get(*p) == Some(id))
    }

    pub fn get(&self, plan: PlanId) -> Option<&str> {
        match plan {
            PlanId::Basic => self.basic.as_deref(),
            PlanId::Standard => self.standard.as_deref(),
            PlanId::Premium => self.premium.as_deref(),
        }
    }
}

/// Stripe keys; with them set, Stripe is offered at checkout.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StripeSettings {
    #[serde(default = "StripeSettings::default_api_base")]
    pub api_base: String,
    pub secret_key: Secret,
    /// The webhook endpoint's signing secret (`whsec_…`).
    pub webhook_secret: Secret,
    /// Stripe price ids (`price_…`) of the plans.
    pub prices: PlanIds,
}

impl StripeSettings {
    fn default_api_base() -> String {
        "https://api.stripe.com".into()
    }

    pub fn price_for(&self, plan: PlanId) -> Option<&str> {
        self.prices.get(plan)
    }
}

/// PayPal REST credentials; with them set, PayPal is offered at checkout.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PaypalSettings {
    #[serde(default = "PaypalSettings::default_api_base")]
    pub api_base: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// The id PayPal gave the webhook endpoint (used in signature verification).
    pub webhook_id: String,
    /// PayPal billing plan ids (`P-…`) of the plans.
    pub plans: PlanIds,
}

impl PaypalSettings {
    fn default_api_base() -> String {
        "https://api-m.paypal.com".into()
    }

    pub fn plan_for(&self, plan: PlanId) -> Option<&str> {
        self.plans.get(plan)
    }
}

/// TMDB read access token, for `cinelog catalog import --tmdb`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TmdbSettings {
    #[serde(default = "TmdbSettings::default_api_base")]
    pub api_base: String,
    pub token: Secret,
}

impl TmdbSettings {
    fn default_api_base() -> String {
        "https://api.themoviedb.org/3".into()
    }
}

/// Groq credentials; with them set, recommendations are re-ranked by an LLM.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GroqSettings {
    #[serde(default = "GroqSettings::default_api_base")]
    pub api_base: String,
    pub api_key: Secret,
    #[serde(default = "GroqSettings::default_model")]
    pub model: String,
    /// How long to wait for an answer before keeping the local order.
    #[serde(default = "GroqSettings::default_timeout_ms")]
    pub timeout_ms: u64,
}

impl GroqSettings {
    fn default_api_base() -> String {
        "https://api.groq.com/openai/v1".into()
    }
    fn default_model() -> String {
        "llama-3.1-8b-instant".into()
    }
    fn default_timeout_ms() -> u64 {
        2000
    }
}

/// An SMTP relay for outgoing mail; without it mail is written to `<data-dir>/outbox`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    #[serde(default = "SmtpSettings::default_port")]
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The sender, e.g. `Cinelog <no-reply@example.com>`.
    pub from: String,
    /// `starttls` (default), `tls` (implicit TLS, port 465) or `none` (a local relay only).
    #[serde(default)]
    pub security: SmtpSecurity,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    #[default]
    Starttls,
    Tls,
    None,
}

impl SmtpSettings {
    fn default_port() -> u16 {
        587
    }
}

/// Signed anchors over the log (see `audit`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// The Ed25519 signing key (hex seed), outside the database; made on first use. Default:
    /// `<data-dir>/anchor.key`.
    pub key_file: Option<PathBuf>,
    /// Sign an anchor once this many events arrived since the last one...
    pub anchor_every_events: i64,
    /// ...or this many seconds passed with any.
    pub anchor_every_secs: u64,
    /// Also append each anchor, as one JSON line, to this file.
    pub anchor_file: Option<PathBuf>,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            key_file: None,
            anchor_every_events: 1000,
            anchor_every_secs: 5,
            anchor_file: None,
        }
    }
}

/// How many attempts a client, an account or a user gets before answering 429.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    /// The window every count below runs over, in seconds.
    pub window_secs: u64,
    /// Failed logins from one client on one account.
    pub login_per_client_account: u32,
    /// The same while the account is under attack (many failures from many clients), for
    /// clients that have never signed in to it.
    pub login_per_client_account_under_attack: u32,
    /// Failed logins from one client across all accounts (credential stuffing).
    pub login_per_client: u32,
    /// Failed logins on one account from all clients after which it counts as under attack.
    pub login_account_attack: u32,
    /// Signups from one client.
    pub signup_per_client: u32,
    /// Password-reset requests from one client.
    pub reset_per_client: u32,
    /// Password-reset requests for one address.
    pub reset_per_email: u32,
    /// Phone codes sent for one user.
    pub phone_codes_per_user: u32,
    /// Open UI sockets per client.
    pub sockets_per_client: u32,
    /// Tries at a profile's PIN, or at the account password to leave a kids profile.
    pub unlock_attempts: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            window_secs: 15 * 60,
            login_per_client_account: 5,
            login_per_client_account_under_attack: 1,
            login_per_client: 30,
            login_account_attack: 20,
            signup_per_client: 20,
            reset_per_client: 10,
            reset_per_email: 3,
            phone_codes_per_user: 5,
            sockets_per_client: 20,
            unlock_attempts: 5,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Where `serve` listens.
    pub addr: SocketAddr,
    /// Where the embedded default keeps its SQLite files and keys.
    pub data_dir: PathBuf,
    /// `postgres://…` for production; `None` is SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// `esdb://…` (or `kurrentdb://…`) keeps the log in KurrentDB; the read models stay in
    /// `database_url` (or SQLite in `data_dir`).
    pub eventstore_url: Option<String>,
    pub redis_url: Option<String>,
    /// Prefix of every Redis key, so deployments can share a Redis.
    pub redis_prefix: String,
    pub kafka_brokers: Option<String>,
    /// Partitions of each `cinelog.<stream_type>` topic the relay creates.
    pub kafka_partitions: i32,
    /// Base URL users reach the server at (for links); defaults to `http://{addr}`.
    pub public_url: Option<String>,
    /// HMAC key for access tokens; by default generated once and kept in `data_dir`.
    pub jwt_secret: Option<Secret>,
    pub twilio: Option<TwilioSettings>,
    pub stripe: Option<StripeSettings>,
    pub paypal: Option<PaypalSettings>,
    pub tmdb: Option<TmdbSettings>,
    /// Where TMDB's images are fetched from (once each; the server keeps copies in
    /// `data_dir/images`).
    pub tmdb_images: String,
    pub groq: Option<GroqSettings>,
    /// Offer the sandbox provider (no money moves). Unset: only while no real provider is
    /// configured, so a production deployment never gives plans away.
    pub sandbox_payments: Option<bool>,
    /// Seconds between the billing scheduler's looks at ended periods.
    pub billing_tick_secs: u64,
    /// Database connections per pool.
    pub max_connections: u32,
    /// Lifetime of access tokens; clients refresh them with their refresh token.
    pub access_token_ttl_secs: i64,
    /// Outgoing mail; `None` writes messages to `<data-dir>/outbox`.
    pub smtp: Option<SmtpSettings>,
    pub limits: LimitSettings,
    pub audit: AuditSettings,
    /// Proxies (addresses or CIDR ranges) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("data"),
            database_url: None,
            eventstore_url: None,
            redis_url: None,
            redis_prefix: "cinelog".into(),
            kafka_brokers: None,
            kafka_partitions: 3,
            public_url: None,
            jwt_secret: None,
            twilio: None,
            stripe: None,
            paypal: None,
            tmdb: None,
            tmdb_images: "https://image.tmdb.org/t/p".into(),
            groq: None,
            sandbox_payments: None,
            billing_tick_secs: 30,
            max_connections: 16,
            access_token_ttl_secs: 15 * 60,
            smtp: None,
            limits: LimitSettings::default(),
            audit: AuditSettings::default(),
            trusted_proxies: Vec::new(),
        }
    }
}

/// Any subset of the settings: one layer.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    pub addr: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub eventstore_url: Option<String>,
    pub redis_url: Option<String>,
    pub redis_prefix: Option<String>,
    pub kafka_brokers: Option<String>,
    pub kafka_partitions: Option<i32>,
    pub public_url: Option<String>,
    pub jwt_secret: Option<Secret>,
    pub twilio: Option<TwilioSettings>,
    pub stripe: Option<StripeSettings>,
    pub paypal: Option<PaypalSettings>,
    pub tmdb: Option<TmdbSettings>,
    pub tmdb_images: Option<String>,
    pub groq: Option<GroqSettings>,
    pub sandbox_payments: Option<bool>,
    pub billing_tick_secs: Option<u64>,
    pub max_connections: Option<u32>,
    pub access_token_ttl_secs: Option<i64>,
    pub smtp: Option<SmtpSettings>,
    pub limits: Option<LimitSettings>,
    pub audit: Option<AuditSettings>,
    pub trusted_proxies: Option<Vec<ipnet::IpNet>>,
}

impl Settings {
    /// Where the anchors' signing key lives.
    pub fn anchor_key_file(&self) -> PathBuf {
        self.audit
            .key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("anchor.key"))
    }

    /// Applies a layer over these settings.
    pub fn with(mut self, layer: Layer) -> Self {
        macro_rules! take {
            ($($field:ident),*) => { $(if let Some(v) = layer.$field { self.$field = v; })* };
        }
        macro_rules! take_opt {
            ($($field:ident),*) => { $(if layer.$field.is_some() { self.$field = layer.$field; })* };
        }
        take!(
            addr,
            data_dir,
            max_connections,
            redis_prefix,
            access_token_ttl_secs,
            billing_tick_secs,
            kafka_partitions,
            limits,
            audit,
            trusted_proxies,
            tmdb_images
        );
        take_opt!(
            database_url,
            eventstore_url,
            redis_url,
            kafka_brokers,
            public_url,
            jwt_secret,
            twilio,
            stripe,
            paypal,
            tmdb,
            groq,
            sandbox_payments,
            smtp
        );
        self
    }

    /// Defaults, then the TOML file if it exists, then `overrides` (environment and flags).
    pub fn load(file: &Path, overrides: Layer) -> anyhow::Result<Settings> {
        let mut settings = Settings::default();
        if file.exists() {
            let text = std::fs::read_to_string(file)?;
            let layer: Layer =
                toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            settings = settings.with(layer);
        }
        Ok(settings.with(overrides))
    }

    /// The public base URL.
    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.addr))
    }

    /// Whether the sandbox payment provider is offered.
    pub fn sandbox_offered(&self) -> bool {
        self.sandbox_payments
            .unwrap_or(self.stripe.is_none() && self.paypal.is_none())
    }

    /// The database URL the server's pools connect with. A Postgres on this machine is reached
    /// without TLS unless the URL (or `PGSSLMODE`) asks for it: loopback traffic never leaves
    /// the host, and both sides would otherwise pay for encryption on every query.
    pub fn pool_url(&self) -> Option<String> {
        let url = self.database_url.clone()?;
        let Ok(mut parsed) = reqwest::Url::parse(&url) else {
            return Some(url);
        };
        // `postgres:` is not a special scheme, so its host stays text.
        let local = parsed.host_str().is_some_and(|h| {
            h == "localhost"
                || h.trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        });
        let chosen = parsed.query_pairs().any(|(k, _)| k == "sslmode")
            || std::env::var_os("PGSSLMODE").is_some();
        if !self.is_postgres() || !local || chosen {
            return Some(url);
        }
        parsed.query_pairs_mut().append_pair("sslmode", "disable");
        Some(parsed.to_string())
    }

    /// Whether events and read models live in Postgres.
    pub fn is_postgres(&self) -> bool {
        self.database_url
            .as_deref()
            .is_some_and(|u| u.starts_with("postgres"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_postgres_is_reached_without_tls_unless_the_url_asks() {
        let pool = |url: &str| {
            Settings {
                database_url: Some(url.to_string()),
                ..Settings::default()
            }
            .pool_url()
            .unwrap()
        };
        assert_eq!(
            pool("postgres://postgres@127.0.0.1:5432/cinelog"),
            "postgres://postgres@127.0.0.1:5432/cinelog?sslmode=disable"
        );
        assert_eq!(
            pool("postgres://u:p@localhost/c?application_name=x"),
            "postgres://u:p@localhost/c?application_name=x&sslmode=disable"
        );
        for kept in [
            "postgres://postgres@127.0.0.1:5432/cinelog?sslmode=require",
            "postgres://postgres@db.internal:5432/cinelog",
        ] {
            assert_eq!(pool(kept), kept);
        }
        assert_eq!(Settings::default().pool_url(), None);
    }

    #[test]
    fn layers_override_in_order_and_secrets_do_not_print() {
        let dir = std::env::temp_dir().join(format!("cinelog-settings-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("cinelog.toml");
        std::fs::write(
            &file,
            "addr = \"127.0.0.1:9000\"\ndata_dir = \"/tmp/x\"\njwt_secret = \"hunter2\"\n",
        )
        .unwrap();
        let s = Settings::load(
            &file,
            Layer {
                addr: Some("127.0.0.1:9100".parse().unwrap()),
                ..Layer::default()
            },
        )
        .unwrap();
        assert_eq!(s.addr.port(), 9100);
        assert_eq!(s.data_dir, PathBuf::from("/tmp/x"));
        assert!(!format!("{s:?}").contains("hunter2"));
        std::fs::write(&file, "nonsense = 1\n").unwrap();
        assert!(Settings::load(&file, Layer::default()).is_err());
        assert_eq!(
            Settings::load(&dir.join("missing.toml"), Layer::default()).unwrap(),
            Settings::default()
        );
    }
}
