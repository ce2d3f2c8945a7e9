//! `[log]`: the tracing output format and filter.

use serde::Deserialize;

use crate::config::error::ConfigError;
use crate::config::value::{Kind, SectionKeys};

/// Human-readable lines; `json` is for log shippers and has to be asked for.
pub(super) const DEFAULT_FORMAT: &str = "text";
/// Startup, shutdown, failures and the audit events, without per-request noise.
pub(super) const DEFAULT_LEVEL: &str = "info";
/// Far longer than any useful directive (see [`log_directive_is_usable`]).
const MAX_DIRECTIVE_LEN: usize = 1024;

pub(super) const KEYS: SectionKeys = SectionKeys {
    section: "log",
    keys: &[("format", Kind::Str), ("level", Kind::Str)],
};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    format: Option<String>,
    level: Option<String>,
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

pub(super) fn validate(raw: RawLog) -> Result<LogConfig, ConfigError> {
    let log = LogConfig {
        format: match raw.format.as_deref().unwrap_or(DEFAULT_FORMAT) {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError::new(
                    "log.format",
                    format!("expected \"text\" or \"json\", got {other:?}"),
                ));
            }
        },
        level: raw.level.unwrap_or_else(|| DEFAULT_LEVEL.to_string()),
    };
    if !log_directive_is_usable(&log.level) {
        return Err(ConfigError::new("log.level", "invalid filter directive"));
    }
    Ok(log)
}

/// Whether a tracing filter directive (`log.level`, `SESSIONGATE_LOG`) is safe
/// to hand to tracing-subscriber. Two of its inputs are refused (found by
/// fuzz/config): non-ASCII text, on which 0.3.23 panics (it slices the
/// untrimmed directive with trimmed offsets), and span field-value filters
/// (`[span{field=value}]`), which compile to regular expressions whose
/// construction took minutes for a 460-byte directive. Levels and targets
/// (`info`, `sessiongate=debug,hyper=warn`) are all a deployment needs.
pub fn log_directive_is_usable(directive: &str) -> bool {
    directive.len() <= MAX_DIRECTIVE_LEN
        && directive.is_ascii()
        && !directive.contains('{')
        && tracing_subscriber::EnvFilter::try_new(directive).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::env;
    use crate::config::{Config, Overrides};

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
}
