//! Identity facts the gate derives from a request: token hashes and permissions.

pub mod device;

pub use device::device_info;

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// SHA-256 digest of a login token. Rocket.Chat stores `base64(sha256(token))`;
/// the gate keeps the raw 32 bytes in memory and the base64 form in Redis.
pub type TokenHash = [u8; 32];

/// Hash a login token the way Rocket.Chat does (`Accounts._hashLoginToken`).
pub fn hash_token(token: &str) -> TokenHash {
    hash_token_bytes(token.as_bytes())
}

/// [`hash_token`] of a raw header value (not necessarily UTF-8).
pub fn hash_token_bytes(token: &[u8]) -> TokenHash {
    Sha256::digest(token).into()
}

/// The `base64(sha256(token))` text form used in Redis keys and values.
pub fn encode_hash(hash: &TokenHash) -> String {
    base64::engine::general_purpose::STANDARD.encode(hash)
}

/// Parse the text form back; `None` for anything that is not 32 bytes of base64.
pub fn decode_hash(text: &str) -> Option<TokenHash> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.as_bytes())
        .ok()?;
    bytes.try_into().ok()
}

/// The client a remembered second factor is bound to: hex SHA-256 of the
/// client IP and the User-Agent, as Rocket.Chat's `getFingerprintFromConnection`
/// binds it to `{userAgent, clientAddress}` (an MD5 there). Neither is stored
/// in clear under the remember key. A header value cannot hold a NUL, so the
/// separator keeps the two parts apart.
pub fn client_fingerprint(ip: std::net::IpAddr, user_agent: Option<&str>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(ip.to_string().as_bytes());
    hasher.update([0u8]);
    hasher.update(user_agent.unwrap_or("").as_bytes());
    hex::encode(hasher.finalize())
}

/// Meteor's id alphabet (no 0/1/I/O/l lookalikes).
const METEOR_ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz";

/// A 17-character Meteor-style id for sessions the upstream did not name.
pub fn meteor_id() -> String {
    use rand::Rng as _;
    let mut rng = rand::rng();
    (0..17)
        .map(|_| char::from(METEOR_ALPHABET[rng.random_range(0..METEOR_ALPHABET.len())]))
        .collect()
}

/// Meteor's `Random.secret()` alphabet: the characters of a real login token.
const TOKEN_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A random token of `len` characters that no server has issued, sent
/// upstream in place of a revoked one (SPEC §11): the server then answers an
/// unknown token in its own words, and the revoked one never reaches it.
pub fn decoy_token(len: usize) -> String {
    use rand::Rng as _;
    let mut rng = rand::rng();
    (0..len.max(1))
        .map(|_| char::from(TOKEN_ALPHABET[rng.random_range(0..TOKEN_ALPHABET.len())]))
        .collect()
}

/// The permission `POST /api/v1/sessions/logout` requires (SPEC §1 row 4).
pub const LOGOUT_DEVICE_MANAGEMENT: &str = "logout-device-management";

/// The permission Rocket.Chat's `sessions/list.all` and `info.admin` require.
pub const VIEW_DEVICE_MANAGEMENT: &str = "view-device-management";

/// Every permission the gate checks; each is held by `admin` unless configured.
pub const CHECKED_PERMISSIONS: [&str; 2] = [LOGOUT_DEVICE_MANAGEMENT, VIEW_DEVICE_MANAGEMENT];

/// Role → permission lookup from the `[permissions]` config table
/// (permission name → roles holding it).
#[derive(Clone, Debug, Default)]
pub struct Permissions {
    by_permission: std::collections::BTreeMap<String, Vec<String>>,
}

impl Permissions {
    pub fn new(table: &std::collections::BTreeMap<String, Vec<String>>) -> Self {
        Self {
            by_permission: table.clone(),
        }
    }

    /// Does any of `roles` hold `permission`? Unknown permissions are denied.
    pub fn allows(&self, roles: &[String], permission: &str) -> bool {
        self.by_permission
            .get(permission)
            .is_some_and(|holders| roles.iter().any(|r| holders.contains(r)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_matches_rocket_chat_form() {
        // echo -n 'abc' | openssl dgst -sha256 -binary | base64
        assert_eq!(
            encode_hash(&hash_token("abc")),
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
        assert_eq!(
            decode_hash(&encode_hash(&hash_token("x"))),
            Some(hash_token("x"))
        );
        assert_eq!(decode_hash("not base64!"), None);
    }

    #[test]
    fn client_fingerprint_separates_address_and_agent() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let a = client_fingerprint(ip("10.0.0.1"), Some("curl/8"));
        assert_eq!(a.len(), 64);
        assert_eq!(a, client_fingerprint(ip("10.0.0.1"), Some("curl/8")));
        assert_ne!(a, client_fingerprint(ip("10.0.0.2"), Some("curl/8")));
        assert_ne!(a, client_fingerprint(ip("10.0.0.1"), Some("curl/9")));
        assert_ne!(a, client_fingerprint(ip("10.0.0.1"), None));
        assert!(!a.contains("10.0.0.1"));
    }

    #[test]
    fn permissions_come_from_the_role_map() {
        let table = std::collections::BTreeMap::from([(
            "logout-device-management".to_string(),
            vec!["admin".to_string(), "security".to_string()],
        )]);
        let p = Permissions::new(&table);
        let roles = |r: &[&str]| r.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(p.allows(&roles(&["user", "security"]), "logout-device-management"));
        assert!(!p.allows(&roles(&["user"]), "logout-device-management"));
        assert!(!p.allows(&roles(&["admin"]), "view-device-management"));
    }
}
