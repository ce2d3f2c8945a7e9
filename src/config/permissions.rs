//! `[permissions]`: permission name → the roles that hold it. The names are
//! the ones the gate checks ([`crate::auth::CHECKED_PERMISSIONS`]); the table
//! is free-form, so it has no environment keys.

use std::collections::BTreeMap;

use crate::config::error::ConfigError;

/// Only administrators manage other people's devices until told otherwise,
/// as in Rocket.Chat.
pub(super) const DEFAULT_HOLDERS: &[&str] = &["admin"];

pub(super) type RawPermissions = BTreeMap<String, Vec<String>>;

/// Permissions the file does not name keep their defaults, so adding one
/// entry never silently denies the others; `name = []` denies everyone.
/// Unknown names are kept (and never checked), so nothing fails yet.
pub(super) fn validate(
    raw: Option<RawPermissions>,
) -> Result<BTreeMap<String, Vec<String>>, ConfigError> {
    let mut permissions = default_permissions();
    permissions.extend(raw.unwrap_or_default());
    Ok(permissions)
}

/// The permissions the gate checks, each held by [`DEFAULT_HOLDERS`].
fn default_permissions() -> BTreeMap<String, Vec<String>> {
    crate::auth::CHECKED_PERMISSIONS
        .into_iter()
        .map(|name| {
            let holders = DEFAULT_HOLDERS.iter().map(|role| role.to_string());
            (name.to_string(), holders.collect())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::config::testing::env;
    use crate::config::{Config, Overrides};

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
}
