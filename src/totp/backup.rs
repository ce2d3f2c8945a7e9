//! Backup codes: single-use fallbacks for a lost authenticator.
//!
//! A code is 8 characters from a 32-symbol alphabet (40 bits). Only
//! `hex(sha256(normalized code))` is stored; the plaintext is shown once, when the set
//! is generated. A plain hash (no salt, no slow KDF) is enough because the codes are
//! uniformly random with 40 bits of entropy, used once, and guarded by the failure
//! lockout; there is no dictionary to precompute against.

use rand::Rng as _;
use sha2::{Digest, Sha256};

/// Codes in a fresh set.
pub const BACKUP_CODE_COUNT: usize = 10;

/// Characters in a code.
pub const BACKUP_CODE_LEN: usize = 8;

/// Lower-case letters and digits without the look-alikes `0`/`o` and `1`/`l`:
/// 32 symbols, so each character carries exactly 5 bits.
const ALPHABET: &[u8; 32] = b"23456789abcdefghijkmnpqrstuvwxyz";

/// A fresh set of [`BACKUP_CODE_COUNT`] codes, each [`BACKUP_CODE_LEN`] characters drawn
/// uniformly from the thread-local CSPRNG.
pub fn generate_backup_codes() -> Vec<String> {
    let mut rng = rand::rng();
    (0..BACKUP_CODE_COUNT)
        .map(|_| {
            (0..BACKUP_CODE_LEN)
                // In bounds: `random_range` stays below the alphabet's length.
                .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
                .collect()
        })
        .collect()
}

/// The canonical form that is hashed: ASCII lower case, with spaces (any whitespace)
/// and hyphens removed, so `ABCD-EFGH` and `abcd efgh` are the same code.
pub fn normalize_backup_code(input: &str) -> String {
    input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// What the store keeps: lower-case hex of SHA-256 over the normalized code.
pub fn hash_backup_code(input: &str) -> String {
    hex::encode(Sha256::digest(normalize_backup_code(input).as_bytes()))
}

/// Whether `input` has the shape of a backup code (8 ASCII letters or digits once
/// normalized). A 6-digit TOTP code never does, so the two can share the
/// `x-2fa-code` header without ambiguity.
pub fn looks_like_backup_code(input: &str) -> bool {
    let normalized = normalize_backup_code(input);
    normalized.len() == BACKUP_CODE_LEN && normalized.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn fresh_set_has_ten_distinct_codes_of_eight_unambiguous_characters() {
        let codes = generate_backup_codes();
        assert_eq!(codes.len(), 10);
        for code in &codes {
            assert_eq!(code.len(), 8, "{code}");
            assert!(code.bytes().all(|b| ALPHABET.contains(&b)), "{code}");
            assert!(!code.contains(['0', 'o', '1', 'l']), "{code}");
            assert!(looks_like_backup_code(code));
        }
        let distinct: HashSet<&String> = codes.iter().collect();
        assert_eq!(distinct.len(), 10);
        assert_ne!(generate_backup_codes(), codes);
    }

    #[test]
    fn generated_characters_cover_the_whole_alphabet() {
        // 800 draws from 32 symbols: the chance that one never appears is ~32·(31/32)^800,
        // about 3e-10.
        let seen: HashSet<char> = (0..10)
            .flat_map(|_| generate_backup_codes())
            .flat_map(|code| code.chars().collect::<Vec<_>>())
            .collect();
        assert_eq!(seen.len(), 32);
    }

    #[test]
    fn normalization_ignores_case_spaces_and_hyphens() {
        assert_eq!(normalize_backup_code("AbCd-EfGh"), "abcdefgh");
        assert_eq!(normalize_backup_code(" abcd efgh\t"), "abcdefgh");
        assert_eq!(normalize_backup_code("a-b-c-d e-f-g-h"), "abcdefgh");
        assert_eq!(normalize_backup_code(""), "");
    }

    #[test]
    fn hash_is_hex_sha256_of_the_normalized_code() {
        // echo -n abcdefgh | sha256sum
        let expected = "9c56cc51b374c3ba189210d5b6d4bf57790d351c96c47c02190ecf1e430635ab";
        assert_eq!(hash_backup_code("abcdefgh"), expected);
        assert_eq!(hash_backup_code("ABCD-EFGH"), expected);
        assert_eq!(hash_backup_code(" abcd efgh "), expected);
        assert_ne!(hash_backup_code("abcdefgi"), expected);
    }

    #[test]
    fn only_eight_alphanumerics_look_like_a_backup_code() {
        assert!(looks_like_backup_code("abcd2345"));
        assert!(looks_like_backup_code("ABCD-2345"));
        assert!(looks_like_backup_code("abcd 2345"));
        assert!(looks_like_backup_code("12345678"));
        for input in [
            "123456",
            "",
            "abcd234",
            "abcd23456",
            "abcd_234",
            "abcd.234",
            "abcdé234",
            "abcd+234",
        ] {
            assert!(!looks_like_backup_code(input), "{input:?}");
        }
    }
}
