//! `[totp]`: the second factor the logout endpoint demands. The encryption
//! key itself is loaded later (`commands::load_key`), so that
//! `SESSIONGATE_TOTP_KEY` can stand in for `key_file`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::error::ConfigError;
use crate::config::value::{Kind, SectionKeys};

/// SPEC §7: one 30-second step either side absorbs clock drift and the time
/// it takes to type a code (RFC 6238 §5.2 recommends at most one).
pub(super) const DEFAULT_WINDOW: u8 = 1;
/// Ten steps either side already accept 21 codes; wider stops being a second factor.
const MAX_WINDOW: u8 = 10;
/// Authenticator apps show it next to the account (`totp enroll`).
pub(super) const DEFAULT_ISSUER: &str = "sessiongate";
/// Rocket.Chat's `Accounts_TwoFactorAuthentication_RememberFor` default (SPEC §11).
pub(super) const DEFAULT_REMEMBER_SECS: u64 = 1800;
/// Upper bound of `totp.remember_seconds` (one day).
const MAX_REMEMBER_SECS: u64 = 86_400;

pub(super) const KEYS: SectionKeys = SectionKeys {
    section: "totp",
    keys: &[
        ("key_file", Kind::Str),
        ("window", Kind::Int),
        ("issuer", Kind::Str),
        ("remember_seconds", Kind::Int),
    ],
};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTotp {
    key_file: Option<String>,
    window: Option<u8>,
    issuer: Option<String>,
    remember_seconds: Option<u64>,
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

pub(super) fn validate(raw: RawTotp) -> Result<TotpConfig, ConfigError> {
    let totp = TotpConfig {
        key_file: raw.key_file.map(PathBuf::from),
        window: raw.window.unwrap_or(DEFAULT_WINDOW),
        issuer: raw.issuer.unwrap_or_else(|| DEFAULT_ISSUER.to_string()),
        remember: Duration::from_secs(raw.remember_seconds.unwrap_or(DEFAULT_REMEMBER_SECS)),
    };
    // A day at most: past it a stolen token on the same network skips the
    // second factor for longer than any admin session needs.
    if totp.remember > Duration::from_secs(MAX_REMEMBER_SECS) {
        return Err(ConfigError::new(
            "totp.remember_seconds",
            format!("must be between 0 and {MAX_REMEMBER_SECS} (0 disables)"),
        ));
    }
    if totp.window > MAX_WINDOW {
        return Err(ConfigError::new(
            "totp.window",
            format!("must be between 0 and {MAX_WINDOW}"),
        ));
    }
    // The issuer is the `<issuer>:` label prefix of the otpauth:// URI.
    if totp.issuer.is_empty() || totp.issuer.contains(':') {
        return Err(ConfigError::new(
            "totp.issuer",
            "must be non-empty and contain no ':'",
        ));
    }
    Ok(totp)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::testing::env;
    use crate::config::{Config, Overrides};

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
}
