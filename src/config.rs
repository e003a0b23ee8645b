//! Configuration: built-in defaults, overridden by a TOML file (`--config`), then by
//! `HEARTH_*` environment variables, then by command-line flags.

mod email;
mod ip_range;
mod limits;
mod push;
mod server_notices;
mod well_known;

use std::net::SocketAddr;
use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

pub use email::{EMAIL_OPTIONS, EmailConfig, SmtpSecurity};
pub use ip_range::{IpRange, default_ip_range_denylist};
pub use limits::{LIMITS_OPTIONS, LimitsConfig};
pub use push::PushConfig;
pub use server_notices::{SERVER_NOTICES_OPTIONS, ServerNoticesConfig};
pub use well_known::WellKnownConfig;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server_name: String,
    pub listen: SocketAddr,
    pub data: PathBuf,
    pub public_baseurl: Option<String>,
    pub max_request_bytes: usize,
    pub forwarded_for_header: bool,
    pub sync_writes: bool,
    pub log_format: LogFormat,
    pub registration: RegistrationConfig,
    pub login: LoginConfig,
    pub jwt: JwtConfig,
    pub presence: PresenceConfig,
    pub media: MediaConfig,
    pub gifs: GifsConfig,
    pub web_client_dir: PathBuf,
    pub tls: TlsConfig,
    pub federation: FederationConfig,
    pub well_known: WellKnownConfig,
    pub push: PushConfig,
    pub email: EmailConfig,
    pub limits: LimitsConfig,
    pub server_notices: ServerNoticesConfig,
}

/// The listener's certificate. With both set the listener speaks HTTPS only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, leaf first.
    pub certificate: Option<PathBuf>,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub private_key: Option<PathBuf>,
}

impl TlsConfig {
    /// The certificate and key paths, when TLS is configured.
    pub fn paths(&self) -> Option<(&std::path::Path, &std::path::Path)> {
        match (&self.certificate, &self.private_key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FederationConfig {
    /// Serve the server-server API and talk to other servers.
    pub enabled: bool,
    /// Check other servers' certificates. Only test networks turn this off.
    pub verify_tls: bool,
    /// PEM files of certificate authorities trusted besides the built-in roots.
    pub extra_ca_files: Vec<PathBuf>,
    /// Addresses never connected to (the SSRF guard), as CIDR ranges: for federation,
    /// remote media, push gateways and the GIF files Giphy names.
    pub ip_range_denylist: Vec<IpRange>,
    /// Notary servers asked for other servers' keys before the servers themselves.
    pub trusted_key_servers: Vec<String>,
    /// Longest wait between retries of an unreachable destination.
    pub max_retry_interval_secs: u64,
    /// Most PDUs kept queued for a destination that is down; older ones are dropped,
    /// and the destination fetches what it misses (`/get_missing_events`, state).
    pub max_queued_pdus: usize,
    /// Transactions (`PUT /send`) one server may send: a burst, refilled per minute.
    pub transactions_burst: u32,
    pub transactions_per_minute: f64,
    /// Other requests one server may make (queries, event and state fetches, joins).
    pub queries_burst: u32,
    pub queries_per_minute: f64,
    /// Join remote rooms with `send_join?omit_members=true` (a partial-state join): the
    /// room is usable at once and its members are fetched in the background.
    pub partial_state_joins: bool,
    /// Seconds a partial-state room waits before its background resync starts (tests
    /// hold a room partial with it).
    pub partial_state_resync_delay_secs: u64,
}

impl Default for FederationConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            verify_tls: true,
            extra_ca_files: Vec::new(),
            ip_range_denylist: default_ip_range_denylist(),
            trusted_key_servers: Vec::new(),
            max_retry_interval_secs: 3600,
            max_queued_pdus: 10_000,
            transactions_burst: 1000,
            transactions_per_minute: 30000.0,
            queries_burst: 1000,
            queries_per_minute: 6000.0,
            partial_state_joins: true,
            partial_state_resync_delay_secs: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrationConfig {
    pub enabled: bool,
    pub tokens: Vec<String>,
    /// Registration needs a token even when `tokens` is empty: one an admin made.
    pub require_token: bool,
    pub shared_secret: Option<String>,
    pub allow_open_on_public_address: bool,
    pub min_password_length: usize,
    /// `register?kind=guest` makes guest accounts (off by default, as in Synapse).
    pub allow_guest_access: bool,
}

impl RegistrationConfig {
    /// Whether registration takes the `m.login.registration_token` stage.
    pub fn tokens_required(&self) -> bool {
        self.require_token || !self.tokens.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginConfig {
    pub failures_burst: u32,
    pub failures_per_minute: f64,
    pub refreshable_token_lifetime_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    ES256,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    pub enabled: bool,
    pub algorithm: JwtAlgorithm,
    pub secret: Option<String>,
    pub public_key_file: Option<PathBuf>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub subject_claim: String,
    pub create_users: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PresenceConfig {
    pub enabled: bool,
    /// Seconds without an open sync before an online user shows as unavailable.
    pub unavailable_after_secs: f64,
    /// Seconds without an open sync before a user shows as offline.
    pub offline_after_secs: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    pub max_upload_bytes: u64,
    pub uploads_per_minute: f64,
    pub uploads_burst: u32,
    pub max_pending_uploads: u32,
    pub pending_upload_expiry_secs: u64,
    pub legacy_unauthenticated: bool,
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GifsConfig {
    pub giphy_api_key: Option<String>,
    pub giphy_base_url: String,
    pub rating: String,
}

impl Default for GifsConfig {
    fn default() -> Self {
        Self {
            giphy_api_key: None,
            giphy_base_url: "https://api.giphy.com".into(),
            rating: "g".into(),
        }
    }
}

/// By hand so that printing the configuration never prints the Giphy key.
impl std::fmt::Debug for GifsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GifsConfig")
            .field(
                "giphy_api_key",
                &self.giphy_api_key.as_ref().map(|_| "<redacted>"),
            )
            .field("giphy_base_url", &self.giphy_base_url)
            .field("rating", &self.rating)
            .finish()
    }
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            max_upload_bytes: 50 << 20,
            uploads_per_minute: 60.0,
            uploads_burst: 30,
            max_pending_uploads: 5,
            pending_upload_expiry_secs: 24 * 3600,
            legacy_unauthenticated: false,
        }
    }
}

impl Default for PresenceConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            unavailable_after_secs: 30.0,
            offline_after_secs: 300.0,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server_name: "localhost:8008".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8008)),
            data: PathBuf::from("./data"),
            public_baseurl: None,
            max_request_bytes: 1 << 20,
            forwarded_for_header: false,
            sync_writes: true,
            log_format: LogFormat::Pretty,
            registration: RegistrationConfig::default(),
            login: LoginConfig::default(),
            jwt: JwtConfig::default(),
            presence: PresenceConfig::default(),
            media: MediaConfig::default(),
            gifs: GifsConfig::default(),
            web_client_dir: PathBuf::from("web-client/dist"),
            tls: TlsConfig::default(),
            federation: FederationConfig::default(),
            well_known: WellKnownConfig::default(),
            push: PushConfig::default(),
            email: EmailConfig::default(),
            limits: LimitsConfig::default(),
            server_notices: ServerNoticesConfig::default(),
        }
    }
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            tokens: Vec::new(),
            require_token: false,
            shared_secret: None,
            allow_open_on_public_address: false,
            min_password_length: 8,
            allow_guest_access: false,
        }
    }
}

impl Default for LoginConfig {
    fn default() -> Self {
        Self {
            failures_burst: 5,
            failures_per_minute: 6.0,
            refreshable_token_lifetime_secs: 300,
        }
    }
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            algorithm: JwtAlgorithm::HS256,
            secret: None,
            public_key_file: None,
            issuer: None,
            audience: None,
            subject_claim: "sub".into(),
            create_users: false,
        }
    }
}

/// Every option, as `hearth --help` lists it. A test keeps this in step with `Config`.
pub const OPTIONS: &[(&str, &str)] = &[
    (
        "server_name",
        "The server's Matrix name, the part after ':' in user IDs [default: localhost:8008]",
    ),
    (
        "listen",
        "Address and port of the HTTP listener [default: 127.0.0.1:8008]",
    ),
    (
        "data",
        "Data directory (RocksDB, signing key) [default: ./data]",
    ),
    (
        "public_baseurl",
        "URL clients reach the server at, for /.well-known/matrix/client [default: http://<server_name>]",
    ),
    (
        "max_request_bytes",
        "Largest request body accepted, larger ones get M_TOO_LARGE [default: 1048576]",
    ),
    (
        "forwarded_for_header",
        "Behind a reverse proxy on loopback: take client addresses from X-Forwarded-For [default: false]",
    ),
    (
        "sync_writes",
        "fsync every acknowledged write so it survives power loss, not only a crash [default: true]",
    ),
    ("log_format", "pretty or json [default: pretty]"),
    (
        "web_client_dir",
        "Built web client served at / (relative paths start at the working directory; scripts/start builds it) [default: web-client/dist]",
    ),
    (
        "registration.enabled",
        "Whether clients may register accounts [default: true]",
    ),
    (
        "registration.tokens",
        "If non-empty, registration needs one of these tokens (m.login.registration_token) [default: []]",
    ),
    (
        "registration.require_token",
        "Registration needs a token (m.login.registration_token): one of registration.tokens or one an admin made [default: false]",
    ),
    (
        "registration.shared_secret",
        "Enables shared-secret registration at /_synapse/admin/v1/register (used by hearthctl) [default: none]",
    ),
    (
        "registration.allow_open_on_public_address",
        "Allow open registration on a non-loopback listener; otherwise hearth refuses to start [default: false]",
    ),
    (
        "registration.min_password_length",
        "Shorter passwords get M_WEAK_PASSWORD [default: 8]",
    ),
    (
        "registration.allow_guest_access",
        "Guest accounts (register?kind=guest): they preview world-readable rooms and join rooms open to guests [default: false]",
    ),
    (
        "login.failures_burst",
        "Failed logins allowed at once per user and per address before M_LIMIT_EXCEEDED [default: 5]",
    ),
    (
        "login.failures_per_minute",
        "Rate at which that allowance refills [default: 6]",
    ),
    (
        "login.refreshable_token_lifetime_secs",
        "Lifetime of access tokens issued with a refresh token [default: 300]",
    ),
    ("jwt.enabled", "Offer m.login.jwt [default: false]"),
    (
        "jwt.algorithm",
        "HS256, HS384, HS512 (with jwt.secret), RS256 or ES256 (with jwt.public_key_file) [default: HS256]",
    ),
    ("jwt.secret", "Shared secret for HS* tokens [default: none]"),
    (
        "jwt.public_key_file",
        "PEM public key for RS256/ES256 tokens [default: none]",
    ),
    (
        "jwt.issuer",
        "If set, tokens must carry this iss claim [default: none]",
    ),
    (
        "jwt.audience",
        "If set, tokens must carry this aud claim [default: none]",
    ),
    (
        "jwt.subject_claim",
        "Claim that holds the user's localpart [default: sub]",
    ),
    (
        "jwt.create_users",
        "Create the account on first JWT login [default: false]",
    ),
    (
        "presence.enabled",
        "Track and share online/offline presence; when off everyone appears offline [default: true]",
    ),
    (
        "presence.unavailable_after_secs",
        "Seconds after a user's last sync or socket closes before they show as unavailable [default: 30]",
    ),
    (
        "presence.offline_after_secs",
        "Seconds after a user's last sync or socket closes before they show as offline [default: 300]",
    ),
    (
        "media.max_upload_bytes",
        "Largest media upload accepted, larger ones get M_TOO_LARGE [default: 52428800]",
    ),
    (
        "media.uploads_per_minute",
        "Rate at which a user's allowance of uploads and media ID reservations refills [default: 60]",
    ),
    (
        "media.uploads_burst",
        "Uploads and media ID reservations a user may make at once before M_LIMIT_EXCEEDED [default: 30]",
    ),
    (
        "media.max_pending_uploads",
        "Media IDs a user may hold reserved (POST /media/v1/create) without content yet [default: 5]",
    ),
    (
        "media.pending_upload_expiry_secs",
        "Seconds a reserved media ID waits for its content before it lapses [default: 86400]",
    ),
    (
        "media.legacy_unauthenticated",
        "Also serve media without an access token on the deprecated /_matrix/media/v3/download and /thumbnail endpoints; off, they answer M_NOT_FOUND as the spec's freeze asks [default: false]",
    ),
    (
        "gifs.giphy_api_key",
        "Giphy API key; with it the server offers GIF search and imports picked GIFs into the media repository. Never sent to clients [default: none]",
    ),
    (
        "gifs.giphy_base_url",
        "Where the Giphy API is reached [default: https://api.giphy.com]",
    ),
    (
        "gifs.rating",
        "Highest Giphy content rating searched: g, pg, pg-13 or r [default: g]",
    ),
    (
        "tls.certificate",
        "PEM certificate chain; with tls.private_key the listener serves HTTPS only (flag --tls-cert) [default: none]",
    ),
    (
        "tls.private_key",
        "PEM private key of that certificate (flag --tls-key) [default: none]",
    ),
    (
        "federation.enabled",
        "Serve the server-server API (/_matrix/federation, key queries) and contact other servers [default: true]",
    ),
    (
        "federation.verify_tls",
        "Check other servers' TLS certificates; turn off only on a test network [default: true]",
    ),
    (
        "federation.extra_ca_files",
        "PEM files of certificate authorities trusted for federation besides the built-in web roots [default: []]",
    ),
    (
        "federation.ip_range_denylist",
        "CIDR ranges never contacted, whatever a server name resolves to (guards against request forgery into private networks) [default: loopback, private, link-local, CGNAT, unique-local, multicast, documentation and unspecified ranges of IPv4 and IPv6]",
    ),
    (
        "federation.trusted_key_servers",
        "Notary servers asked for other servers' signing keys before those servers themselves [default: []]",
    ),
    (
        "federation.max_retry_interval_secs",
        "Longest wait between retries of a server that cannot be reached [default: 3600]",
    ),
    (
        "federation.max_queued_pdus",
        "Most events kept queued for a server that is down; it fetches older ones itself [default: 10000]",
    ),
    (
        "federation.transactions_burst",
        "Transactions one server may send in a burst before it is rate-limited (429) [default: 1000]",
    ),
    (
        "federation.transactions_per_minute",
        "Transactions per minute one server may send, after its burst [default: 30000]",
    ),
    (
        "federation.queries_burst",
        "Other requests (queries, event and state fetches, joins) one server may make in a burst [default: 1000]",
    ),
    (
        "federation.queries_per_minute",
        "Other requests per minute one server may make, after its burst [default: 6000]",
    ),
    (
        "federation.partial_state_joins",
        "Join rooms of other servers without waiting for their member lists (send_join with omit_members): the room is usable at once and its members arrive in the background [default: true]",
    ),
    (
        "federation.partial_state_resync_delay_secs",
        "Seconds a partially joined room waits before fetching its full state [default: 0]",
    ),
    (
        "well_known.server",
        "Answer /.well-known/matrix/server with this host[:port] (e.g. matrix.example.org:443), so other servers reach this one there instead of at server_name on port 8448 [default: none, the path answers 404]",
    ),
    (
        "push.vapid_subject",
        "The contact (mailto: or https: URI) sent to Web Push services in the VAPID token [default: public_baseurl if https, else https://server_name]",
    ),
];

/// Text appended to `hearth --help`.
pub fn options_help() -> String {
    let mut text = String::from(
        "CONFIGURATION:\n  Every option can be set in the TOML file given with --config, or in an environment\n  variable HEARTH_<SECTION>__<KEY> (e.g. HEARTH_REGISTRATION__ENABLED=false).\n  Precedence: defaults < config file < environment < command-line flags.\n\n",
    );
    for (key, description) in OPTIONS
        .iter()
        .chain(LIMITS_OPTIONS)
        .chain(EMAIL_OPTIONS)
        .chain(SERVER_NOTICES_OPTIONS)
    {
        let env = format!("HEARTH_{}", key.replace('.', "__").to_uppercase());
        text.push_str(&format!("  {key}  ({env})\n      {description}\n"));
    }
    text
}

/// Command-line values that override everything else.
#[derive(Debug, Default)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub data: Option<PathBuf>,
    pub server_name: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Parse(#[from] Box<figment::Error>),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    pub fn load(overrides: Overrides) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = &overrides.config_file {
            if !file.exists() {
                return Err(ConfigError::Invalid(format!(
                    "config file {} does not exist",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file(file));
        }
        figment = figment.merge(Env::prefixed("HEARTH_").split("__").ignore(&["CONFIG"]));
        let mut config: Config = figment.extract().map_err(Box::new)?;
        if let Some(listen) = overrides.listen {
            config.listen = listen;
        }
        if let Some(data) = overrides.data {
            config.data = data;
        }
        if let Some(name) = overrides.server_name {
            config.server_name = name;
        }
        if let Some(cert) = overrides.tls_cert {
            config.tls.certificate = Some(cert);
        }
        if let Some(key) = overrides.tls_key {
            config.tls.private_key = Some(key);
        }
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if ruma::ServerName::parse(&self.server_name).is_err() {
            return Err(ConfigError::Invalid(format!(
                "server_name {:?} is not a valid Matrix server name",
                self.server_name
            )));
        }
        let reg = &self.registration;
        if reg.enabled
            && !reg.tokens_required()
            && !self.listen.ip().is_loopback()
            && !reg.allow_open_on_public_address
        {
            return Err(ConfigError::Invalid(format!(
                "hearth would listen on the public address {} with open registration, letting anyone create accounts. \
                 Set registration.tokens (HEARTH_REGISTRATION__TOKENS) or registration.require_token (and make tokens \
                 with hearthctl), or disable client registration with \
                 registration.enabled = false (and use registration.shared_secret with hearthctl), or, if open \
                 registration is really wanted, set registration.allow_open_on_public_address = true",
                self.listen
            )));
        }
        if reg.shared_secret.as_deref() == Some("") {
            return Err(ConfigError::Invalid(
                "registration.shared_secret must not be empty".into(),
            ));
        }
        if self.jwt.enabled {
            match self.jwt.algorithm {
                JwtAlgorithm::HS256 | JwtAlgorithm::HS384 | JwtAlgorithm::HS512 => {
                    if self.jwt.secret.as_deref().unwrap_or("").is_empty() {
                        return Err(ConfigError::Invalid(
                            "jwt.enabled with an HS* algorithm needs jwt.secret".into(),
                        ));
                    }
                }
                JwtAlgorithm::RS256 | JwtAlgorithm::ES256 => {
                    if self.jwt.public_key_file.is_none() {
                        return Err(ConfigError::Invalid(
                            "jwt.enabled with RS256/ES256 needs jwt.public_key_file".into(),
                        ));
                    }
                }
            }
        }
        let rate_ok =
            self.login.failures_per_minute.is_finite() && self.login.failures_per_minute > 0.0;
        if !rate_ok || self.login.failures_burst == 0 {
            return Err(ConfigError::Invalid(
                "login.failures_burst and login.failures_per_minute must be positive".into(),
            ));
        }
        let p = &self.presence;
        let secs_ok = |s: f64| s.is_finite() && s > 0.0 && s < 1e9;
        if !secs_ok(p.unavailable_after_secs)
            || !secs_ok(p.offline_after_secs)
            || p.offline_after_secs < p.unavailable_after_secs
        {
            return Err(ConfigError::Invalid(
                "presence.unavailable_after_secs and presence.offline_after_secs must be positive, with offline_after_secs >= unavailable_after_secs".into(),
            ));
        }
        let m = &self.media;
        let media_rate_ok = m.uploads_per_minute.is_finite() && m.uploads_per_minute > 0.0;
        if !media_rate_ok
            || m.uploads_burst == 0
            || m.max_upload_bytes == 0
            || m.pending_upload_expiry_secs == 0
        {
            return Err(ConfigError::Invalid(
                "media.max_upload_bytes, media.uploads_per_minute, media.uploads_burst and media.pending_upload_expiry_secs must be positive".into(),
            ));
        }
        if self.tls.certificate.is_some() != self.tls.private_key.is_some() {
            return Err(ConfigError::Invalid(
                "tls.certificate and tls.private_key must be set together (--tls-cert and --tls-key)"
                    .into(),
            ));
        }
        let f = &self.federation;
        let per_minute_ok = |r: f64| r.is_finite() && r > 0.0;
        if !per_minute_ok(f.transactions_per_minute)
            || !per_minute_ok(f.queries_per_minute)
            || f.transactions_burst == 0
            || f.queries_burst == 0
        {
            return Err(ConfigError::Invalid(
                "federation.transactions_burst, transactions_per_minute, queries_burst and queries_per_minute must be positive".into(),
            ));
        }
        for name in &self.federation.trusted_key_servers {
            if ruma::ServerName::parse(name).is_err() {
                return Err(ConfigError::Invalid(format!(
                    "federation.trusted_key_servers: {name:?} is not a valid server name"
                )));
            }
        }
        if self.federation.max_retry_interval_secs == 0 {
            return Err(ConfigError::Invalid(
                "federation.max_retry_interval_secs must be positive".into(),
            ));
        }
        if self.federation.max_queued_pdus == 0 {
            return Err(ConfigError::Invalid(
                "federation.max_queued_pdus must be positive".into(),
            ));
        }
        let g = &self.gifs;
        if g.giphy_api_key.as_deref() == Some("") {
            return Err(ConfigError::Invalid(
                "gifs.giphy_api_key must not be empty; leave it unset to turn GIF search off"
                    .into(),
            ));
        }
        if !(g.giphy_base_url.starts_with("http://") || g.giphy_base_url.starts_with("https://")) {
            return Err(ConfigError::Invalid(
                "gifs.giphy_base_url must be an http:// or https:// URL".into(),
            ));
        }
        if !matches!(g.rating.as_str(), "g" | "pg" | "pg-13" | "r") {
            return Err(ConfigError::Invalid(
                "gifs.rating must be one of g, pg, pg-13, r".into(),
            ));
        }
        self.limits.validate()?;
        self.push.validate()?;
        self.email.validate()?;
        self.server_notices.validate()?;
        self.well_known.validate()
    }

    /// The VAPID `sub` claim of Web Push requests.
    pub fn vapid_subject(&self) -> String {
        if let Some(subject) = &self.push.vapid_subject {
            return subject.clone();
        }
        let base = self.public_baseurl();
        if base.starts_with("https://") {
            base
        } else {
            format!("https://{}", self.server_name)
        }
    }

    pub fn public_baseurl(&self) -> String {
        match &self.public_baseurl {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None if self.tls.paths().is_some() => format!("https://{}", self.server_name),
            None => format!("http://{}", self.server_name),
        }
    }
}

#[cfg(test)]
mod tests;
