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
//!
//! Each section lives in a file of its own (`redis.rs` for `[redis]`, `root.rs`
//! for the top-level `listen` and `upstream`) holding everything about its
//! keys: the raw serde struct, the `DEFAULT_*` values and why, the `KEYS` the
//! environment may set, the typed section and the `validate` that turns one
//! into the other. This file only composes them. Adding a key is an edit to
//! its section's file plus the docs (`config.toml`, the README table); the
//! tests below fail when the raw struct, `KEYS`, `config.toml` and the README
//! disagree.
//!
//! The only crate module this one reads is `auth` (the permission names);
//! every other layer reads its own section from here.

mod admin;
mod devices;
mod error;
mod log;
mod logout;
mod permissions;
mod proxy;
mod redis;
mod revocation;
mod root;
mod server;
mod totp;
mod value;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

pub use crate::config::admin::AdminConfig;
pub use crate::config::devices::DevicesConfig;
pub use crate::config::error::ConfigError;
pub use crate::config::log::{LogConfig, LogFormat, log_directive_is_usable};
pub use crate::config::logout::LogoutConfig;
pub use crate::config::proxy::ProxyConfig;
pub use crate::config::redis::RedisConfig;
pub use crate::config::revocation::RevocationConfig;
pub use crate::config::root::Upstream;
pub use crate::config::server::{ServerConfig, TlsFiles};
pub use crate::config::totp::TotpConfig;
use crate::config::value::{Kind, SectionKeys};

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

/// The file as written: the top-level keys and one table per section, each
/// section's struct in its own file.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Raw {
    listen: Option<String>,
    upstream: Option<String>,
    #[serde(default)]
    admin: admin::RawAdmin,
    #[serde(default)]
    redis: redis::RawRedis,
    #[serde(default)]
    logout: logout::RawLogout,
    #[serde(default)]
    totp: totp::RawTotp,
    permissions: Option<permissions::RawPermissions>,
    #[serde(default)]
    server: server::RawServer,
    #[serde(default)]
    proxy: proxy::RawProxy,
    #[serde(default)]
    revocation: revocation::RawRevocation,
    #[serde(default)]
    devices: devices::RawDevices,
    #[serde(default)]
    log: log::RawLog,
}

/// The keys an environment variable may override, section by section, in the
/// order they are applied (the first bad value in this order is the one
/// reported). `[permissions]` is free-form and has none.
const ENV_SECTIONS: &[&SectionKeys] = &[
    &root::KEYS,
    &admin::KEYS,
    &redis::KEYS,
    &logout::KEYS,
    &totp::KEYS,
    &server::KEYS,
    &proxy::KEYS,
    &revocation::KEYS,
    &devices::KEYS,
    &log::KEYS,
];

/// Every environment-overridable key as `(dotted key, kind)`.
fn env_keys() -> impl Iterator<Item = (String, Kind)> {
    ENV_SECTIONS.iter().flat_map(|section| {
        section
            .keys
            .iter()
            .map(|&(key, kind)| (section.dotted(key), kind))
    })
}

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
    for (key, kind) in env_keys() {
        let name = env_name(&key);
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
        set_path(table, &key, value, &name)?;
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

/// Each section in the order it always has been checked (with several bad
/// values, the first in this order is the one reported).
fn validate(raw: Raw) -> Result<Config, ConfigError> {
    let listen = root::validate_listen(raw.listen)?;
    let upstream = root::validate_upstream(raw.upstream)?;
    let admin = admin::validate(raw.admin, listen)?;
    let redis = redis::validate(raw.redis)?;
    let logout = logout::validate(raw.logout)?;
    let totp = totp::validate(raw.totp)?;
    let permissions = permissions::validate(raw.permissions)?;
    let server = server::validate(raw.server)?;
    let proxy = proxy::validate(raw.proxy)?;
    let revocation = revocation::validate(raw.revocation)?;
    let devices = devices::validate(raw.devices)?;
    let log = log::validate(raw.log)?;
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

/// What the sections' tests share.
#[cfg(test)]
mod testing {
    use std::collections::BTreeMap;

    /// An environment holding exactly these variables.
    pub(super) fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use super::testing::env;
    use super::*;

    /// The commented example every operator starts from.
    const EXAMPLE: &str = include_str!("../../config.toml");
    /// Its configuration reference table is checked against the keys too.
    const README: &str = include_str!("../../README.md");
    /// Variables the process reads that are not config keys: no key may map
    /// onto one of them.
    const RESERVED_ENV: [&str; 4] = [
        "SESSIONGATE_TOTP_KEY",
        "SESSIONGATE_LOG",
        "SESSIONGATE_CONFIG",
        "SESSIONGATE_COMMIT",
    ];

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
    fn empty_toml_key_is_named_in_the_error() {
        // Found by fuzz/config: `''=''` gave the error line ": unknown field ``…".
        let err = Config::from_toml_str("''=''", &env(&[]), &Overrides::default())
            .expect_err("empty key");
        assert_eq!(err.key, "\"\"");
        assert!(err.to_string().starts_with("\"\": unknown field"), "{err}");
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
    fn every_env_key_reaches_a_field_of_its_kind() {
        let mut names = BTreeSet::new();
        for (key, kind) in env_keys() {
            let name = env_name(&key);
            assert!(!RESERVED_ENV.contains(&name.as_str()), "{key} → {name}");
            assert!(names.insert(name.clone()), "{name} declared twice");
            // A value of the declared kind must deserialize into the raw
            // structs: deny_unknown_fields refuses a key with no field, and
            // a field of another type refuses the value.
            let sample = match kind {
                Kind::Str => "x",
                Kind::Int => "1",
                Kind::Bool => "true",
                Kind::List => "a,b",
            };
            let mut table = toml::Table::new();
            overlay_env(&mut table, &env(&[(&name, sample)])).expect(&key);
            let raw: Result<Raw, _> = serde_path_to_error::deserialize(toml::Value::Table(table));
            if let Err(e) = raw {
                panic!("{name}={sample:?} does not reach {key}: {e}");
            }
        }
    }

    /// The field names serde derived for `T`: its `deserialize_struct` call
    /// carries them.
    fn fields_of<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
        struct Fields<'a>(&'a mut &'static [&'static str]);
        impl<'de> serde::Deserializer<'de> for Fields<'_> {
            type Error = serde::de::value::Error;
            fn deserialize_any<V: serde::de::Visitor<'de>>(
                self,
                _: V,
            ) -> Result<V::Value, Self::Error> {
                Err(serde::de::Error::custom("not a struct"))
            }
            fn deserialize_struct<V: serde::de::Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Self::Error> {
                *self.0 = fields;
                Err(serde::de::Error::custom("fields recorded"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
                bytes byte_buf option unit unit_struct newtype_struct seq tuple
                tuple_struct map enum identifier ignored_any
            }
        }
        let mut fields: &'static [&'static str] = &[];
        let _ = T::deserialize(Fields(&mut fields));
        fields
    }

    fn key_names(section: &SectionKeys) -> BTreeSet<&'static str> {
        section.keys.iter().map(|&(key, _)| key).collect()
    }

    #[test]
    fn every_raw_field_is_a_declared_env_key() {
        let sections: [(&SectionKeys, &[&str]); 9] = [
            (&admin::KEYS, fields_of::<admin::RawAdmin>()),
            (&redis::KEYS, fields_of::<redis::RawRedis>()),
            (&logout::KEYS, fields_of::<logout::RawLogout>()),
            (&totp::KEYS, fields_of::<totp::RawTotp>()),
            (&server::KEYS, fields_of::<server::RawServer>()),
            (&proxy::KEYS, fields_of::<proxy::RawProxy>()),
            (&revocation::KEYS, fields_of::<revocation::RawRevocation>()),
            (&devices::KEYS, fields_of::<devices::RawDevices>()),
            (&log::KEYS, fields_of::<log::RawLog>()),
        ];
        for (keys, fields) in sections {
            assert_eq!(keys.keys.len(), key_names(keys).len(), "[{}]", keys.section);
            let fields: BTreeSet<&str> = fields.iter().copied().collect();
            assert_eq!(
                key_names(keys),
                fields,
                "[{}] KEYS vs raw fields",
                keys.section
            );
        }
        // The top level: root's keys, every section's table, and [permissions].
        let mut top = key_names(&root::KEYS);
        top.extend(
            ENV_SECTIONS
                .iter()
                .map(|s| s.section)
                .filter(|s| !s.is_empty()),
        );
        top.insert("permissions");
        let fields: BTreeSet<&str> = fields_of::<Raw>().iter().copied().collect();
        assert_eq!(top, fields);
        assert_eq!(
            ENV_SECTIONS.len(),
            sections.len() + 1,
            "a section missing here"
        );
    }

    /// The example with its commented-out keys (`# ca_file = "…"`) put back.
    fn example_with_every_key() -> String {
        let one_key = |line: &str| {
            line.parse::<toml::Table>()
                .is_ok_and(|t| t.len() == 1 && !t.values().any(toml::Value::is_table))
        };
        EXAMPLE
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest) if one_key(rest) => rest,
                _ => line,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `(dotted key, value)` of every key outside `[permissions]`.
    fn leaves(table: &toml::Table) -> Vec<(String, toml::Value)> {
        let mut out = Vec::new();
        for (key, value) in table {
            match value {
                toml::Value::Table(_) if key == "permissions" => {}
                toml::Value::Table(section) => {
                    out.extend(
                        section
                            .iter()
                            .map(|(k, v)| (format!("{key}.{k}"), v.clone())),
                    );
                }
                value => out.push((key.clone(), value.clone())),
            }
        }
        out
    }

    #[test]
    fn every_key_in_the_example_round_trips_through_the_environment() {
        let text = example_with_every_key();
        let full: toml::Table = text.parse().expect("config.toml parses");
        let declared: BTreeSet<String> = env_keys().map(|(key, _)| key).collect();
        let mut documented = BTreeSet::new();
        for (key, value) in leaves(&full) {
            assert!(
                declared.contains(&key),
                "config.toml has {key}, no section declares it"
            );
            let as_env = match &value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Array(items) => items
                    .iter()
                    .map(|item| item.as_str().expect("lists hold strings"))
                    .collect::<Vec<_>>()
                    .join(","),
                other => panic!("{key}: no environment form for {other}"),
            };
            // The file minus this key, plus its variable, is the file again.
            let mut table = full.clone();
            match key.split_once('.') {
                Some((section, field)) => table[section].as_table_mut().unwrap().remove(field),
                None => table.remove(&key),
            };
            overlay_env(&mut table, &env(&[(&env_name(&key), &as_env)])).expect(&key);
            assert_eq!(
                table, full,
                "{key} = {value} does not round-trip as {as_env:?}"
            );
            documented.insert(key);
        }
        let missing: Vec<_> = declared.difference(&documented).collect();
        assert!(missing.is_empty(), "not in config.toml: {missing:?}");
        // With every key in, the example is still a valid configuration.
        Config::from_toml_str(&text, &env(&[]), &Overrides::default()).expect("full example");
    }

    #[test]
    fn the_example_shows_the_defaults() {
        // Only the TOTP key file has no default (the key is a secret).
        let mut example = Config::from_toml_str(EXAMPLE, &env(&[]), &Overrides::default())
            .expect("config.toml is valid");
        assert!(example.totp.key_file.take().is_some());
        assert_eq!(format!("{example:?}"), format!("{:?}", Config::default()));
    }

    #[test]
    fn every_key_is_in_the_readme_table() {
        let section = README
            .split("\n## Configuration\n")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("README has a Configuration section");
        let mut documented = BTreeSet::new();
        for row in section.lines().filter(|l| l.starts_with("| `")) {
            let cell = row.split('|').nth(1).unwrap_or_default();
            // `redis.command_timeout_ms` / `connect_timeout_ms`: the first
            // name gives the section to the others.
            let names: Vec<&str> = cell.split('`').skip(1).step_by(2).collect();
            let prefix = names
                .first()
                .and_then(|first| first.split_once('.'))
                .map(|(section, _)| section);
            for name in names {
                documented.insert(match (name.contains('.'), prefix) {
                    (false, Some(section)) => format!("{section}.{name}"),
                    _ => name.to_string(),
                });
            }
        }
        documented.remove("permissions.<name>");
        let declared: BTreeSet<String> = env_keys().map(|(key, _)| key).collect();
        let missing: Vec<_> = declared.difference(&documented).collect();
        assert!(missing.is_empty(), "not in the README table: {missing:?}");
        let stale: Vec<_> = documented.difference(&declared).collect();
        assert!(
            stale.is_empty(),
            "in the README table, declared nowhere: {stale:?}"
        );
    }
}
