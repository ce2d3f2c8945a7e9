//! Configuration: TOML file → environment overlay → flags → validated [`Config`].
//!
//! Every value is parsed and checked once, before anything binds; an invalid
//! value is reported as one line naming its key (`redis.url: …`). The same path
//! serves `serve`, `check-config`, `demo` and the admin commands.
//!
//! Environment overrides are `SESSIONGATE_<SECTION>_<KEY>` in upper case
//! (`SESSIONGATE_REDIS_URL`, `SESSIONGATE_ADMIN_LISTEN`, `SESSIONGATE_LISTEN`).
//! `SESSIONGATE_TOTP_KEY` carries the TOTP encryption key itself (see
//! [`crate::totp::crypto`]), not a path.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A configuration problem, always naming the key it is about.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Where environment values come from; tests pass a map instead of mutating
/// the process environment.
pub trait EnvSource {
    fn get(&self, name: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl EnvSource for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        BTreeMap::get(self, name).cloned()
    }
}

/// The fully validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where clients connect.
    pub listen: SocketAddr,
    /// The chat server.
    pub upstream: Upstream,
    pub admin: AdminConfig,
    pub redis: RedisConfig,
    pub logout: LogoutConfig,
    pub totp: TotpConfig,
    /// permission name → roles that hold it.
    pub permissions: BTreeMap<String, Vec<String>>,
    pub server: ServerConfig,
    pub proxy: ProxyConfig,
    pub revocation: RevocationConfig,
    pub devices: DevicesConfig,
    pub log: LogConfig,
}

#[derive(Clone, Debug)]
pub struct Upstream {
    /// `http` or `https`.
    pub scheme: http::uri::Scheme,
    /// host[:port] as written in the config.
    pub authority: http::uri::Authority,
}

impl Upstream {
    pub fn is_https(&self) -> bool {
        self.scheme == http::uri::Scheme::HTTPS
    }
}

#[derive(Clone, Debug)]
pub struct AdminConfig {
    pub listen: SocketAddr,
}

#[derive(Clone, Debug)]
pub struct RedisConfig {
    pub url: String,
    pub prefix: String,
    /// Bound on every Redis command: a hanging Redis becomes a 503, not a hang.
    pub command_timeout: Duration,
    pub connect_timeout: Duration,
    /// CA bundle (PEM) for `rediss://` servers signed by a private CA.
    pub tls_ca_file: Option<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct LogoutConfig {
    /// Max random delay added to 401/403 answers (timing-attack blunting).
    pub deny_delay: Duration,
    /// Logout requests per user per minute; 0 disables rate limiting.
    pub rate_limit_per_minute: u32,
    pub max_body_bytes: usize,
    /// Failed TOTP checks per user before the lockout 429.
    pub totp_max_failures: u32,
    pub totp_lockout: Duration,
    /// Verify a caller's unknown token with the upstream's `GET /api/v1/me`
    /// (endpoints the gate answers only, never the forwarding path). On by
    /// default: a gate dropped in front of a running server must learn the
    /// sessions that logged in before it arrived.
    pub verify_unknown_tokens: bool,
    /// Take the caller's roles from the `/api/v1/me` answer (only when
    /// verifying). Off by default: roles then come from the CLI alone, so the
    /// upstream cannot grant the gate's permissions.
    pub roles_from_upstream: bool,
}

#[derive(Clone, Debug)]
pub struct DevicesConfig {
    /// The gate answers `/api/v1/sessions/{list,info,logout.me,list.all,info.admin}`
    /// from its own records; `false` forwards them to an upstream that has them.
    pub answer: bool,
}

#[derive(Clone, Debug)]
pub struct TotpConfig {
    pub key_file: Option<PathBuf>,
    /// Accepted time steps either side of now.
    pub window: u8,
    /// Issuer shown by authenticator apps (`totp enroll`).
    pub issuer: String,
    /// How long a verified second factor is remembered for the same login
    /// token, client IP and User-Agent (Rocket.Chat's
    /// `Accounts_TwoFactorAuthentication_RememberFor`); zero disables it.
    pub remember: Duration,
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Runtime worker threads; 0 = one per core.
    pub workers: usize,
    /// Open client connections beyond this are refused.
    pub max_connections: usize,
    /// How long SIGTERM waits for in-flight requests and streams.
    pub shutdown_grace: Duration,
    /// Slowloris bound: the whole request head must arrive within this.
    pub header_read_timeout: Duration,
    pub tls: Option<TlsFiles>,
    /// Peers whose X-Forwarded-* headers are trusted and extended.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Clone, Debug)]
pub struct ProxyConfig {
    pub connect_timeout: Duration,
    /// Time to the upstream's response head; past it the client gets a 504.
    pub response_timeout: Duration,
    /// Pooled connections idle longer than this are closed (below Node's 5 s).
    pub pool_idle_timeout: Duration,
    /// Extra CA bundle (PEM) for an https upstream, added to the system roots.
    pub ca_file: Option<PathBuf>,
    /// Bound on SockJS `xhr_send` bodies the gate inspects.
    pub max_inspect_bytes: usize,
}

#[derive(Clone, Debug)]
pub struct RevocationConfig {
    /// How long a revoked token stays refused (Rocket.Chat's token lifetime).
    pub token_lifetime: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug)]
pub struct LogConfig {
    pub format: LogFormat,
    /// tracing EnvFilter directive, e.g. `info` or `sessiongate=debug`.
    pub level: String,
}

impl Default for Config {
    fn default() -> Self {
        // The defaults are valid by construction.
        Config::from_toml_str("", &BTreeMap::new(), &Overrides::default())
            .expect("built-in defaults are valid")
    }
}

/// Values given on the command line; they win over file and environment.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub upstream: Option<String>,
    pub admin_listen: Option<String>,
    pub redis_url: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Raw {
    listen: Option<String>,
    upstream: Option<String>,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    redis: RawRedis,
    #[serde(default)]
    logout: RawLogout,
    #[serde(default)]
    totp: RawTotp,
    permissions: Option<BTreeMap<String, Vec<String>>>,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    proxy: RawProxy,
    #[serde(default)]
    revocation: RawRevocation,
    #[serde(default)]
    devices: RawDevices,
    #[serde(default)]
    log: RawLog,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRedis {
    url: Option<String>,
    prefix: Option<String>,
    command_timeout_ms: Option<u64>,
    connect_timeout_ms: Option<u64>,
    tls_ca_file: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLogout {
    deny_delay_ms: Option<u64>,
    rate_limit_per_minute: Option<u32>,
    max_body_bytes: Option<usize>,
    totp_max_failures: Option<u32>,
    totp_lockout_secs: Option<u64>,
    verify_unknown_tokens: Option<bool>,
    roles_from_upstream: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTotp {
    key_file: Option<String>,
    window: Option<u8>,
    issuer: Option<String>,
    remember_seconds: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    workers: Option<usize>,
    max_connections: Option<usize>,
    shutdown_grace_secs: Option<u64>,
    header_read_timeout_ms: Option<u64>,
    tls_cert_file: Option<String>,
    tls_key_file: Option<String>,
    trusted_proxies: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawProxy {
    connect_timeout_ms: Option<u64>,
    response_timeout_ms: Option<u64>,
    pool_idle_timeout_ms: Option<u64>,
    ca_file: Option<String>,
    max_inspect_bytes: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRevocation {
    token_lifetime_days: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDevices {
    answer: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Option<String>,
    level: Option<String>,
}

/// The keys an environment variable may override, with their TOML types.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    Bool,
    List,
}

const ENV_KEYS: &[(&str, Kind)] = &[
    ("listen", Kind::Str),
    ("upstream", Kind::Str),
    ("admin.listen", Kind::Str),
    ("redis.url", Kind::Str),
    ("redis.prefix", Kind::Str),
    ("redis.command_timeout_ms", Kind::Int),
    ("redis.connect_timeout_ms", Kind::Int),
    ("redis.tls_ca_file", Kind::Str),
    ("logout.deny_delay_ms", Kind::Int),
    ("logout.rate_limit_per_minute", Kind::Int),
    ("logout.max_body_bytes", Kind::Int),
    ("logout.totp_max_failures", Kind::Int),
    ("logout.totp_lockout_secs", Kind::Int),
    ("logout.verify_unknown_tokens", Kind::Bool),
    ("logout.roles_from_upstream", Kind::Bool),
    ("totp.key_file", Kind::Str),
    ("totp.window", Kind::Int),
    ("totp.issuer", Kind::Str),
    ("totp.remember_seconds", Kind::Int),
    ("server.workers", Kind::Int),
    ("server.max_connections", Kind::Int),
    ("server.shutdown_grace_secs", Kind::Int),
    ("server.header_read_timeout_ms", Kind::Int),
    ("server.tls_cert_file", Kind::Str),
    ("server.tls_key_file", Kind::Str),
    ("server.trusted_proxies", Kind::List),
    ("proxy.connect_timeout_ms", Kind::Int),
    ("proxy.response_timeout_ms", Kind::Int),
    ("proxy.pool_idle_timeout_ms", Kind::Int),
    ("proxy.ca_file", Kind::Str),
    ("proxy.max_inspect_bytes", Kind::Int),
    ("revocation.token_lifetime_days", Kind::Int),
    ("devices.answer", Kind::Bool),
    ("log.format", Kind::Str),
    ("log.level", Kind::Str),
];

/// `redis.url` → `SESSIONGATE_REDIS_URL`.
pub fn env_name(key: &str) -> String {
    format!("SESSIONGATE_{}", key.replace('.', "_").to_ascii_uppercase())
}

impl Config {
    /// Load from an optional file, then the environment, then flags.
    pub fn load(
        path: Option<&Path>,
        env: &dyn EnvSource,
        flags: &Overrides,
    ) -> Result<Config, ConfigError> {
        let text = match path {
            Some(path) => std::fs::read_to_string(path).map_err(|e| {
                ConfigError::new("config", format!("cannot read {}: {e}", path.display()))
            })?,
            None => String::new(),
        };
        Self::from_toml_str(&text, env, flags)
    }

    pub fn from_toml_str(
        text: &str,
        env: &dyn EnvSource,
        flags: &Overrides,
    ) -> Result<Config, ConfigError> {
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e
                .span()
                .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
            let at = line.map(|l| format!(" at line {l}")).unwrap_or_default();
            ConfigError::new(
                "config",
                format!("TOML syntax error{at}: {}", one_line(e.message())),
            )
        })?;
        overlay_env(&mut table, env)?;
        overlay_flags(&mut table, flags);
        let raw: Raw =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let path = e.path().to_string();
                let message = one_line(e.inner().message());
                ConfigError::new(error_key(&path, &message), message)
            })?;
        validate(raw)
    }
}

/// Whether a tracing filter directive (`log.level`, `SESSIONGATE_LOG`) is safe
/// to hand to tracing-subscriber. Two of its inputs are refused (found by
/// fuzz/config): non-ASCII text, on which 0.3.23 panics (it slices the
/// untrimmed directive with trimmed offsets), and span field-value filters
/// (`[span{field=value}]`), which compile to regular expressions whose
/// construction took minutes for a 460-byte directive. Levels and targets
/// (`info`, `sessiongate=debug,hyper=warn`) are all a deployment needs.
pub fn log_directive_is_usable(directive: &str) -> bool {
    directive.len() <= 1024
        && directive.is_ascii()
        && !directive.contains('{')
        && tracing_subscriber::EnvFilter::try_new(directive).is_ok()
}

/// The dotted key an error is about; serde names unknown fields only in the message.
fn error_key(path: &str, message: &str) -> String {
    let parent = if path == "." { "" } else { path };
    let unknown = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next());
    match (parent, unknown) {
        // An empty TOML key (`"" = 1`) still gets a name in the one-line error.
        (_, Some("")) => format!("{parent}{}\"\"", if parent.is_empty() { "" } else { "." }),
        // serde_path_to_error already ends the path with the unknown field.
        (parent, Some(field)) if parent == field || parent.ends_with(&format!(".{field}")) => {
            parent.to_string()
        }
        ("", Some(field)) => field.to_string(),
        (parent, Some(field)) => format!("{parent}.{field}"),
        ("", None) => "config".to_string(),
        (parent, None) => parent.to_string(),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn overlay_env(table: &mut toml::Table, env: &dyn EnvSource) -> Result<(), ConfigError> {
    for (key, kind) in ENV_KEYS {
        let name = env_name(key);
        let Some(raw) = env.get(&name) else { continue };
        let value = match kind {
            Kind::Str => toml::Value::String(raw),
            Kind::Int => raw
                .trim()
                .parse::<i64>()
                .map(toml::Value::Integer)
                .map_err(|_| ConfigError::new(name.clone(), "expected an integer"))?,
            Kind::Bool => match raw.trim() {
                "true" | "1" | "yes" => toml::Value::Boolean(true),
                "false" | "0" | "no" => toml::Value::Boolean(false),
                _ => return Err(ConfigError::new(name, "expected true or false")),
            },
            Kind::List => toml::Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| toml::Value::String(s.to_string()))
                    .collect(),
            ),
        };
        set_path(table, key, value, &name)?;
    }
    Ok(())
}

fn overlay_flags(table: &mut toml::Table, flags: &Overrides) {
    let pairs = [
        ("listen", &flags.listen),
        ("upstream", &flags.upstream),
        ("admin.listen", &flags.admin_listen),
        ("redis.url", &flags.redis_url),
    ];
    for (key, value) in pairs {
        if let Some(value) = value {
            // Flag keys are all one or two plain levels, so this cannot fail
            // except on a file that made the section a non-table, which
            // deserialization reports.
            let _ = set_path(table, key, toml::Value::String(value.clone()), key);
        }
    }
}

fn set_path(
    table: &mut toml::Table,
    key: &str,
    value: toml::Value,
    source: &str,
) -> Result<(), ConfigError> {
    match key.split_once('.') {
        None => {
            table.insert(key.to_string(), value);
            Ok(())
        }
        Some((section, field)) => {
            let entry = table
                .entry(section.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(t) => {
                    t.insert(field.to_string(), value);
                    Ok(())
                }
                _ => Err(ConfigError::new(
                    section,
                    format!("must be a table (while applying {source})"),
                )),
            }
        }
    }
}

fn parse_addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| {
        ConfigError::new(
            key,
            format!("invalid socket address {value:?} (expected IP:PORT, e.g. 0.0.0.0:8080)"),
        )
    })
}

fn parse_upstream(value: &str) -> Result<Upstream, ConfigError> {
    let bad = |why: &str| ConfigError::new("upstream", format!("{why}: {value:?}"));
    let uri: http::Uri = value.parse().map_err(|_| bad("invalid URL"))?;
    let scheme = uri.scheme().cloned().ok_or_else(|| bad("missing scheme"))?;
    if scheme != http::uri::Scheme::HTTP && scheme != http::uri::Scheme::HTTPS {
        return Err(bad("scheme must be http or https"));
    }
    let authority = uri
        .authority()
        .cloned()
        .ok_or_else(|| bad("missing host"))?;
    if authority.as_str().contains('@') {
        return Err(bad("credentials in the upstream URL are not supported"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(bad(
            "must not have a path or query (the gate forwards paths unchanged)",
        ));
    }
    Ok(Upstream { scheme, authority })
}

fn ms(value: Option<u64>, default: u64) -> Duration {
    Duration::from_millis(value.unwrap_or(default))
}

fn positive(key: &str, value: Option<u64>, default: u64) -> Result<u64, ConfigError> {
    match value.unwrap_or(default) {
        0 => Err(ConfigError::new(key, "must be greater than 0")),
        v => Ok(v),
    }
}

fn validate(raw: Raw) -> Result<Config, ConfigError> {
    let listen = parse_addr("listen", raw.listen.as_deref().unwrap_or("0.0.0.0:8080"))?;
    let upstream = parse_upstream(raw.upstream.as_deref().unwrap_or("http://127.0.0.1:3000"))?;
    let admin = AdminConfig {
        listen: parse_addr(
            "admin.listen",
            raw.admin.listen.as_deref().unwrap_or("127.0.0.1:9901"),
        )?,
    };
    if admin.listen == listen {
        return Err(ConfigError::new("admin.listen", "must differ from listen"));
    }

    let url = raw
        .redis
        .url
        .unwrap_or_else(|| "redis://127.0.0.1:6379/0".to_string());
    let known = [
        "redis://",
        "rediss://",
        "redis+sentinel://",
        "rediss+sentinel://",
        "redis+cluster://",
        "rediss+cluster://",
        "unix://",
        "redis+unix://",
    ];
    if !known.iter().any(|p| url.starts_with(p)) {
        // Never echo the URL: it may hold a password.
        return Err(ConfigError::new(
            "redis.url",
            "unsupported scheme (use redis://, rediss://, redis+sentinel://, redis+cluster://)",
        ));
    }
    let redis = RedisConfig {
        url,
        prefix: raw.redis.prefix.unwrap_or_else(|| "sg:".to_string()),
        command_timeout: Duration::from_millis(positive(
            "redis.command_timeout_ms",
            raw.redis.command_timeout_ms,
            2000,
        )?),
        connect_timeout: Duration::from_millis(positive(
            "redis.connect_timeout_ms",
            raw.redis.connect_timeout_ms,
            1000,
        )?),
        tls_ca_file: raw.redis.tls_ca_file.map(PathBuf::from),
    };
    if redis.prefix.is_empty() {
        return Err(ConfigError::new("redis.prefix", "must not be empty"));
    }

    let logout = LogoutConfig {
        deny_delay: ms(raw.logout.deny_delay_ms, 1000),
        rate_limit_per_minute: raw.logout.rate_limit_per_minute.unwrap_or(10),
        max_body_bytes: raw.logout.max_body_bytes.unwrap_or(64 * 1024),
        totp_max_failures: raw.logout.totp_max_failures.unwrap_or(5),
        totp_lockout: Duration::from_secs(positive(
            "logout.totp_lockout_secs",
            raw.logout.totp_lockout_secs,
            300,
        )?),
        verify_unknown_tokens: raw.logout.verify_unknown_tokens.unwrap_or(true),
        roles_from_upstream: raw.logout.roles_from_upstream.unwrap_or(false),
    };
    if logout.deny_delay > Duration::from_secs(10) {
        return Err(ConfigError::new(
            "logout.deny_delay_ms",
            "must be at most 10000",
        ));
    }
    if logout.max_body_bytes == 0 || logout.max_body_bytes > 16 * 1024 * 1024 {
        return Err(ConfigError::new(
            "logout.max_body_bytes",
            "must be between 1 and 16777216",
        ));
    }
    if logout.totp_max_failures == 0 {
        return Err(ConfigError::new(
            "logout.totp_max_failures",
            "must be greater than 0",
        ));
    }

    let totp = TotpConfig {
        key_file: raw.totp.key_file.map(PathBuf::from),
        window: raw.totp.window.unwrap_or(1),
        issuer: raw.totp.issuer.unwrap_or_else(|| "sessiongate".to_string()),
        remember: Duration::from_secs(raw.totp.remember_seconds.unwrap_or(1800)),
    };
    // A day at most: past it a stolen token on the same network skips the
    // second factor for longer than any admin session needs.
    if totp.remember > Duration::from_secs(MAX_REMEMBER_SECS) {
        return Err(ConfigError::new(
            "totp.remember_seconds",
            format!("must be between 0 and {MAX_REMEMBER_SECS} (0 disables)"),
        ));
    }
    if totp.window > 10 {
        return Err(ConfigError::new("totp.window", "must be between 0 and 10"));
    }
    if totp.issuer.is_empty() || totp.issuer.contains(':') {
        return Err(ConfigError::new(
            "totp.issuer",
            "must be non-empty and contain no ':'",
        ));
    }

    // Permissions the file does not name keep their defaults, so adding one
    // entry never silently denies the others; `name = []` denies everyone.
    let mut permissions = default_permissions();
    permissions.extend(raw.permissions.unwrap_or_default());

    let tls = match (raw.server.tls_cert_file, raw.server.tls_key_file) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert_file: cert.into(),
            key_file: key.into(),
        }),
        (Some(_), None) => {
            return Err(ConfigError::new(
                "server.tls_key_file",
                "required when server.tls_cert_file is set",
            ));
        }
        (None, Some(_)) => {
            return Err(ConfigError::new(
                "server.tls_cert_file",
                "required when server.tls_key_file is set",
            ));
        }
    };
    let mut trusted_proxies = Vec::new();
    for entry in raw.server.trusted_proxies.unwrap_or_default() {
        let net = entry
            .parse::<ipnet::IpNet>()
            .or_else(|_| entry.parse::<IpAddr>().map(ipnet::IpNet::from))
            .map_err(|_| {
                ConfigError::new(
                    "server.trusted_proxies",
                    format!("invalid IP or CIDR {entry:?}"),
                )
            })?;
        trusted_proxies.push(net);
    }
    let server = ServerConfig {
        workers: raw.server.workers.unwrap_or(0),
        max_connections: positive(
            "server.max_connections",
            raw.server.max_connections.map(|v| v as u64),
            10_000,
        )? as usize,
        shutdown_grace: Duration::from_secs(raw.server.shutdown_grace_secs.unwrap_or(10)),
        header_read_timeout: Duration::from_millis(positive(
            "server.header_read_timeout_ms",
            raw.server.header_read_timeout_ms,
            10_000,
        )?),
        tls,
        trusted_proxies,
    };
    // tokio's Semaphore panics past 2^61 permits; no host holds 10M sockets anyway.
    if server.max_connections > 10_000_000 {
        return Err(ConfigError::new(
            "server.max_connections",
            "must be between 1 and 10000000",
        ));
    }
    if server.workers > 1024 {
        return Err(ConfigError::new("server.workers", "must be at most 1024"));
    }

    let proxy = ProxyConfig {
        connect_timeout: Duration::from_millis(positive(
            "proxy.connect_timeout_ms",
            raw.proxy.connect_timeout_ms,
            5_000,
        )?),
        response_timeout: Duration::from_millis(positive(
            "proxy.response_timeout_ms",
            raw.proxy.response_timeout_ms,
            60_000,
        )?),
        pool_idle_timeout: Duration::from_millis(positive(
            "proxy.pool_idle_timeout_ms",
            raw.proxy.pool_idle_timeout_ms,
            4_000,
        )?),
        ca_file: raw.proxy.ca_file.map(PathBuf::from),
        max_inspect_bytes: raw.proxy.max_inspect_bytes.unwrap_or(1024 * 1024),
    };

    // 100 years: beyond it `days * 86400` and Redis expiry times stop making sense.
    let lifetime_days = raw.revocation.token_lifetime_days.unwrap_or(90);
    if !(1..=36_500).contains(&lifetime_days) {
        return Err(ConfigError::new(
            "revocation.token_lifetime_days",
            "must be between 1 and 36500",
        ));
    }
    let revocation = RevocationConfig {
        token_lifetime: Duration::from_secs(lifetime_days * 86_400),
    };

    let devices = DevicesConfig {
        answer: raw.devices.answer.unwrap_or(true),
    };

    let log = LogConfig {
        format: match raw.log.format.as_deref().unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError::new(
                    "log.format",
                    format!("expected \"text\" or \"json\", got {other:?}"),
                ));
            }
        },
        level: raw.log.level.unwrap_or_else(|| "info".to_string()),
    };
    if !log_directive_is_usable(&log.level) {
        return Err(ConfigError::new("log.level", "invalid filter directive"));
    }

    Ok(Config {
        listen,
        upstream,
        admin,
        redis,
        logout,
        totp,
        permissions,
        server,
        proxy,
        revocation,
        devices,
        log,
    })
}

/// Upper bound of `totp.remember_seconds` (one day).
const MAX_REMEMBER_SECS: u64 = 86_400;

/// The permissions the gate checks, each held by `admin` unless configured.
fn default_permissions() -> BTreeMap<String, Vec<String>> {
    crate::auth::CHECKED_PERMISSIONS
        .into_iter()
        .map(|name| (name.to_string(), vec!["admin".to_string()]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_match_the_spec() {
        let c = Config::default();
        assert_eq!(c.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(c.admin.listen.to_string(), "127.0.0.1:9901");
        assert_eq!(c.redis.prefix, "sg:");
        assert_eq!(c.logout.deny_delay, Duration::from_millis(1000));
        assert_eq!(c.logout.rate_limit_per_minute, 10);
        assert_eq!(c.totp.window, 1);
        assert_eq!(c.totp.remember, Duration::from_secs(1800));
        assert_eq!(c.permissions["logout-device-management"], vec!["admin"]);
        assert_eq!(c.permissions["view-device-management"], vec!["admin"]);
        assert_eq!(c.proxy.pool_idle_timeout, Duration::from_secs(4));
        assert!(c.logout.verify_unknown_tokens);
        assert!(!c.logout.roles_from_upstream);
        assert!(c.devices.answer);
    }

    #[test]
    fn configured_permissions_keep_the_defaults_they_do_not_name() {
        let c = Config::from_toml_str(
            "[permissions]\nlogout-device-management = [\"security\"]\n",
            &env(&[]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.permissions["logout-device-management"], vec!["security"]);
        assert_eq!(c.permissions["view-device-management"], vec!["admin"]);
        let none = Config::from_toml_str(
            "[permissions]\nview-device-management = []\n",
            &env(&[]),
            &Overrides::default(),
        )
        .unwrap();
        assert!(none.permissions["view-device-management"].is_empty());
    }

    #[test]
    fn remember_window_is_configurable_and_bounded() {
        let off = Config::from_toml_str(
            "[totp]\nremember_seconds = 0\n",
            &env(&[]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(off.totp.remember, Duration::ZERO);
        let from_env = Config::from_toml_str(
            "[totp]\nremember_seconds = 60\n",
            &env(&[("SESSIONGATE_TOTP_REMEMBER_SECONDS", "5")]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(from_env.totp.remember, Duration::from_secs(5));
        for (text, vars, expected) in [
            (
                "[totp]\nremember_seconds = 86401",
                vec![],
                "totp.remember_seconds: must be between 0 and 86400 (0 disables)",
            ),
            (
                "",
                vec![("SESSIONGATE_TOTP_REMEMBER_SECONDS", "soon")],
                "SESSIONGATE_TOTP_REMEMBER_SECONDS: expected an integer",
            ),
        ] {
            let err = Config::from_toml_str(text, &env(&vars), &Overrides::default())
                .expect_err(text)
                .to_string();
            assert_eq!(err, expected);
        }
        let err = Config::from_toml_str(
            "[totp]\nremember_seconds = -1",
            &env(&[]),
            &Overrides::default(),
        )
        .expect_err("negative")
        .to_string();
        assert!(err.starts_with("totp.remember_seconds: "), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn device_answers_and_verification_can_be_turned_off() {
        let c = Config::from_toml_str(
            "[devices]\nanswer = false\n[logout]\nverify_unknown_tokens = false\n",
            &env(&[("SESSIONGATE_LOGOUT_ROLES_FROM_UPSTREAM", "true")]),
            &Overrides::default(),
        )
        .unwrap();
        assert!(!c.devices.answer);
        assert!(!c.logout.verify_unknown_tokens);
        assert!(c.logout.roles_from_upstream);
    }

    #[test]
    fn env_overrides_file_and_flags_override_env() {
        let file = "listen = \"127.0.0.1:1\"\n[redis]\nurl = \"redis://a:1\"\n";
        let e = env(&[
            ("SESSIONGATE_REDIS_URL", "redis://b:2"),
            ("SESSIONGATE_LOGOUT_DENY_DELAY_MS", "0"),
            ("SESSIONGATE_LISTEN", "127.0.0.1:2"),
        ]);
        let flags = Overrides {
            listen: Some("127.0.0.1:3".into()),
            ..Default::default()
        };
        let c = Config::from_toml_str(file, &e, &flags).unwrap();
        assert_eq!(c.redis.url, "redis://b:2");
        assert_eq!(c.logout.deny_delay, Duration::ZERO);
        assert_eq!(c.listen.to_string(), "127.0.0.1:3");
    }

    #[test]
    fn values_the_runtime_cannot_hold_are_refused() {
        // Found by fuzz/config: these passed check-config, then overflowed
        // (days * 86400) or panicked in tokio's Semaphore::new at startup.
        let cases = [
            (
                "[revocation]\ntoken_lifetime_days = 333333333333333",
                "revocation.token_lifetime_days: must be between 1 and 36500",
            ),
            (
                "[server]\nmax_connections = 4611686018427387904",
                "server.max_connections: must be between 1 and 10000000",
            ),
        ];
        for (text, expected) in cases {
            let err = Config::from_toml_str(text, &env(&[]), &Overrides::default())
                .expect_err(text)
                .to_string();
            assert_eq!(err, expected, "{text}");
        }
        let ok = "[revocation]\ntoken_lifetime_days = 36500\n[server]\nmax_connections = 10000000";
        let c = Config::from_toml_str(ok, &env(&[]), &Overrides::default()).unwrap();
        assert_eq!(
            c.revocation.token_lifetime,
            Duration::from_secs(36_500 * 86_400)
        );
        assert_eq!(c.server.max_connections, 10_000_000);
    }

    #[test]
    fn non_ascii_log_directive_is_an_error_not_a_panic() {
        for level in [" a\u{e9}=info", "info, x\u{2014}y=debug"] {
            let text = format!("[log]\nlevel = {level:?}");
            let err = Config::from_toml_str(&text, &env(&[]), &Overrides::default())
                .expect_err(level)
                .to_string();
            assert_eq!(err, "log.level: invalid filter directive");
        }
    }

    #[test]
    fn empty_toml_key_is_named_in_the_error() {
        // Found by fuzz/config: `''=''` gave the error line ": unknown field ``…".
        let err = Config::from_toml_str("''=''", &env(&[]), &Overrides::default())
            .expect_err("empty key");
        assert_eq!(err.key, "\"\"");
        assert!(err.to_string().starts_with("\"\": unknown field"), "{err}");
    }

    #[test]
    fn field_value_log_filters_are_refused_before_they_reach_the_regex_engine() {
        // Found by fuzz/config (a timeout): building this filter took minutes.
        let slow = format!("[tr{{011{{011&0\n\n\n\rc=\"\\{}", ".".repeat(70));
        assert!(!log_directive_is_usable(&slow));
        assert!(!log_directive_is_usable("[span{user=admin}]=debug"));
        assert!(!log_directive_is_usable(&"a".repeat(2000)));
        assert!(log_directive_is_usable("info"));
        assert!(log_directive_is_usable("sessiongate=debug,hyper=warn"));
        assert!(log_directive_is_usable("[request]=trace"));
        let text = "[log]\nlevel = \"[span{a=b}]=debug\"";
        let err = Config::from_toml_str(text, &env(&[]), &Overrides::default())
            .expect_err("field filter");
        assert_eq!(err.to_string(), "log.level: invalid filter directive");
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("listen = \"nope\"", "listen: "),
            ("upstream = \"ftp://x\"", "upstream: "),
            ("[admin]\nlisten = \"1\"", "admin.listen: "),
            ("[redis]\nurl = \"http://x\"", "redis.url: "),
            ("[log]\nformat = \"xml\"", "log.format: "),
            ("bogus = 1", "bogus: "),
            ("[totp]\nwindow = 99", "totp.window: "),
            ("[server]\ntls_cert_file = \"a\"", "server.tls_key_file: "),
        ];
        for (text, prefix) in cases {
            let err = Config::from_toml_str(text, &env(&[]), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(prefix), "{text:?} gave {err:?}");
            assert!(!err.contains('\n'), "{err:?}");
        }
    }

    #[test]
    fn wrong_type_is_reported_in_one_line() {
        let err = Config::from_toml_str(
            "[logout]\ndeny_delay_ms = \"x\"",
            &env(&[]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("logout.deny_delay_ms: invalid type"),
            "{err}"
        );
        let err = Config::from_toml_str("[redis]\nurll = 1", &env(&[]), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("redis.urll: unknown field"), "{err}");
        let err = Config::from_toml_str("listen = ", &env(&[]), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("config: TOML syntax error at line 1"),
            "{err}"
        );
    }

    #[test]
    fn bad_env_value_names_the_variable() {
        let err = Config::from_toml_str(
            "",
            &env(&[("SESSIONGATE_TOTP_WINDOW", "x")]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(err, "SESSIONGATE_TOTP_WINDOW: expected an integer");
    }

    #[test]
    fn redis_url_is_never_echoed() {
        let err = Config::from_toml_str(
            "[redis]\nurl = \"http://user:hunter2@x\"",
            &env(&[]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(!err.contains("hunter2"));
    }
}
