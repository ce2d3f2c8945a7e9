//! Identity facts the gate derives from a request: token hashes and permissions.

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// SHA-256 digest of a login token. Rocket.Chat stores `base64(sha256(token))`;
/// the gate keeps the raw 32 bytes in memory and the base64 form in Redis.
pub type TokenHash = [u8; 32];

/// Hash a login token the way Rocket.Chat does (`Accounts._hashLoginToken`).
pub fn hash_token(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
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
}
