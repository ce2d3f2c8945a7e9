//! `[devices]`: who answers the device-management endpoints.

use serde::Deserialize;

use crate::config::error::ConfigError;
use crate::config::value::{Kind, SectionKeys};

/// Rocket.Chat CE has no device-management API: the gate answers it from the
/// sessions it captured unless told the upstream has one (EE).
pub(super) const DEFAULT_ANSWER: bool = true;

pub(super) const KEYS: SectionKeys = SectionKeys {
    section: "devices",
    keys: &[("answer", Kind::Bool)],
};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDevices {
    answer: Option<bool>,
}

#[derive(Clone, Debug)]
pub struct DevicesConfig {
    /// The gate answers `/api/v1/sessions/{list,info,logout.me,list.all,info.admin}`
    /// from its own records; `false` forwards them to an upstream that has them.
    pub answer: bool,
}

/// Nothing to check yet (a boolean is valid once it parses); a `Result` like
/// every section's, so a future bound is an edit here alone.
pub(super) fn validate(raw: RawDevices) -> Result<DevicesConfig, ConfigError> {
    Ok(DevicesConfig {
        answer: raw.answer.unwrap_or(DEFAULT_ANSWER),
    })
}

#[cfg(test)]
mod tests {
    use crate::config::testing::env;
    use crate::config::{Config, Overrides};

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
}
