//! TOTP secrets encrypted at rest.
//!
//! The operator supplies a 256-bit key (`totp.key_file` or `SESSIONGATE_TOTP_KEY`, 64 hex
//! characters). Each secret is sealed with ChaCha20-Poly1305 under a fresh random 96-bit
//! nonce and stored as `v1.` + base64url(nonce ‖ ciphertext ‖ tag). The associated data
//! binds the ciphertext to its user, so a value copied onto another user's record in
//! Redis fails to open instead of granting that user someone else's authenticator.
//! Random nonces are safe here: a key seals one value per enrolment, far below the 2^32
//! messages at which 96-bit random nonces start to risk a collision.
//!
//! A missing or malformed key is always an error naming its source; there is no
//! plaintext fallback.

use std::fmt;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom as _, SystemRandom};
use zeroize::{Zeroize as _, Zeroizing};

/// Key length in bytes (ChaCha20 takes a 256-bit key).
pub const KEY_LEN: usize = 32;

/// Configuration key named in errors about the key file.
const KEY_FILE_SETTING: &str = "totp.key_file";

/// Environment variable named in errors about the env value.
const KEY_ENV_VAR: &str = "SESSIONGATE_TOTP_KEY";

/// A key file is 64 hex characters plus whitespace; anything near this size is a
/// mistake (wrong path, `/dev/urandom`), so reading stops here instead of exhausting memory.
const MAX_KEY_FILE_BYTES: u64 = 1024;

/// Version tag of the sealed format, so a future format can coexist with this one.
const SEALED_PREFIX: &str = "v1.";

/// Prefix of the associated data: the purpose and format version, then the user id.
/// It keeps a sealed TOTP secret from being accepted anywhere else the key might be used.
const AAD_CONTEXT: &[u8] = b"sessiongate/totp-secret/v1:";

/// Poly1305 tag length.
const TAG_LEN: usize = 16;

/// Why the key could not be loaded or a sealed secret could not be opened. Messages name
/// the key's source but never contain key material or secrets.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Neither the env var nor the key file is configured.
    #[error("{KEY_FILE_SETTING}: not set (set {KEY_FILE_SETTING} or {KEY_ENV_VAR})")]
    Missing,
    /// The key file could not be opened or read.
    #[error("{KEY_FILE_SETTING}: cannot read {}: {reason}", path.display())]
    Read {
        /// The configured path.
        path: PathBuf,
        /// Shown in the message rather than chained as a source, so one-line error
        /// reports do not repeat it.
        reason: io::Error,
    },
    /// The key file is far larger than a key.
    #[error(
        "{KEY_FILE_SETTING}: {} is larger than {MAX_KEY_FILE_BYTES} bytes; expected 64 hex characters (32 bytes)",
        path.display()
    )]
    FileTooLarge {
        /// The configured path.
        path: PathBuf,
    },
    /// The trimmed key text is not 64 characters long.
    #[error("{origin}: expected 64 hex characters (32 bytes), got {found} characters")]
    WrongLength {
        /// `totp.key_file`, `SESSIONGATE_TOTP_KEY`, or `TOTP key` for [`SecretKey::from_hex`].
        origin: &'static str,
        /// Character count after trimming; a length reveals nothing about the key.
        found: usize,
    },
    /// The key text has 64 characters but not all are hex digits (or it is not UTF-8).
    #[error("{origin}: expected 64 hex characters (32 bytes), found a non-hex character")]
    NotHex {
        /// Where the key came from.
        origin: &'static str,
    },
    /// The system random number generator failed, so no nonce could be drawn.
    #[error("cannot encrypt TOTP secret: system random number generator failed")]
    Encrypt,
    /// The stored value is not `v1.` followed by base64url of at least a nonce and a tag.
    #[error("stored TOTP secret is not in the sealed v1 format")]
    Format,
    /// Authentication failed: wrong key, a value copied from another user, or tampering.
    #[error("stored TOTP secret cannot be decrypted (wrong key, wrong user, or corrupted value)")]
    Decrypt,
}

/// The 256-bit key that seals TOTP secrets. Debug output is redacted and the bytes are
/// zeroed on drop.
pub struct SecretKey([u8; KEY_LEN]);

impl SecretKey {
    /// Parse exactly 64 hex characters (either case) after trimming surrounding whitespace.
    ///
    /// # Errors
    /// [`KeyError::WrongLength`] or [`KeyError::NotHex`], with origin `TOTP key`.
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        parse_hex(text.as_bytes(), "TOTP key")
    }

    /// Load the key: `env_value` (`SESSIONGATE_TOTP_KEY`), when set and not blank, wins
    /// over `key_file` (`totp.key_file`). Errors name the source they came from.
    ///
    /// # Errors
    /// [`KeyError::Missing`] when neither is given, [`KeyError::Read`] or
    /// [`KeyError::FileTooLarge`] for the file, [`KeyError::WrongLength`] or
    /// [`KeyError::NotHex`] for malformed contents.
    pub fn load(key_file: Option<&Path>, env_value: Option<&str>) -> Result<Self, KeyError> {
        if let Some(value) = env_value.filter(|value| !value.trim().is_empty()) {
            return parse_hex(value.as_bytes(), KEY_ENV_VAR);
        }
        let path = key_file.ok_or(KeyError::Missing)?;
        let contents = read_key_file(path)?;
        parse_hex(&contents, KEY_FILE_SETTING)
    }

    /// A fresh random key (for the demo and for operators: `to_hex` prints the file content).
    pub fn generate() -> Self {
        let mut bytes = [0u8; KEY_LEN];
        rand::Rng::fill(&mut rand::rng(), &mut bytes);
        Self(bytes)
    }

    /// The 64 lower-case hex characters [`SecretKey::from_hex`] accepts.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Seal `plaintext` for `user_id`: `v1.` + base64url(nonce ‖ ciphertext ‖ tag).
    ///
    /// # Errors
    /// [`KeyError::Encrypt`] if the system RNG fails.
    pub fn encrypt(&self, user_id: &str, plaintext: &[u8]) -> Result<String, KeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| KeyError::Encrypt)?;
        let mut in_out = Zeroizing::new(plaintext.to_vec());
        let tag = self
            .aead_key()
            .map_err(|_| KeyError::Encrypt)?
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(associated_data(user_id)),
                in_out.as_mut_slice(),
            )
            .map_err(|_| KeyError::Encrypt)?;
        let sealed = [nonce.as_slice(), in_out.as_slice(), tag.as_ref()].concat();
        Ok(format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(sealed)))
    }

    /// Open a value made by [`SecretKey::encrypt`] for the same `user_id`.
    ///
    /// # Errors
    /// [`KeyError::Format`] for anything not shaped like a sealed value;
    /// [`KeyError::Decrypt`] when authentication fails.
    pub fn decrypt(&self, user_id: &str, sealed: &str) -> Result<Vec<u8>, KeyError> {
        let encoded = sealed.strip_prefix(SEALED_PREFIX).ok_or(KeyError::Format)?;
        // Opened in place, so this buffer ends up holding the plaintext: zero it after.
        let mut bytes = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(encoded)
                .map_err(|_| KeyError::Format)?,
        );
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return Err(KeyError::Format);
        }
        let (nonce, in_out) = bytes.as_mut_slice().split_at_mut(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KeyError::Format)?;
        let plaintext = self
            .aead_key()
            .map_err(|_| KeyError::Decrypt)?
            .open_in_place(nonce, Aad::from(associated_data(user_id)), in_out)
            .map_err(|_| KeyError::Decrypt)?;
        Ok(plaintext.to_vec())
    }

    /// Built per call: key setup for ChaCha20 is a copy, and keeping only our own
    /// zeroed-on-drop bytes long-lived limits where the key sits in memory.
    fn aead_key(&self) -> Result<LessSafeKey, ring::error::Unspecified> {
        UnboundKey::new(&CHACHA20_POLY1305, &self.0).map(LessSafeKey::new)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

fn associated_data(user_id: &str) -> Vec<u8> {
    [AAD_CONTEXT, user_id.as_bytes()].concat()
}

fn read_key_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let read_error = |reason| KeyError::Read {
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut contents = Zeroizing::new(Vec::new());
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut contents)
        .map_err(read_error)?;
    if contents.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(KeyError::FileTooLarge {
            path: path.to_path_buf(),
        });
    }
    Ok(contents)
}

fn parse_hex(text: &[u8], origin: &'static str) -> Result<SecretKey, KeyError> {
    let text = std::str::from_utf8(text).map_err(|_| KeyError::NotHex { origin })?;
    let text = text.trim();
    let found = text.chars().count();
    if found != 2 * KEY_LEN {
        return Err(KeyError::WrongLength { origin, found });
    }
    let mut bytes = [0u8; KEY_LEN];
    // The hex crate's own error names the offending character, which is key material.
    hex::decode_to_slice(text, &mut bytes).map_err(|_| KeyError::NotHex { origin })?;
    Ok(SecretKey(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const OTHER_HEX: &str = "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn key() -> SecretKey {
        SecretKey::from_hex(KEY_HEX).expect("valid test key")
    }

    fn key_file(contents: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(contents).expect("write temp file");
        file
    }

    #[test]
    fn sealed_secret_round_trips_for_its_user() {
        let key = key();
        let sealed = key
            .encrypt("user-1", b"12345678901234567890")
            .expect("seal");
        assert!(sealed.starts_with("v1."), "{sealed}");
        // 12 nonce + 20 plaintext + 16 tag = 48 bytes = 64 base64 characters.
        assert_eq!(sealed.len(), 3 + 64);
        assert_eq!(
            key.decrypt("user-1", &sealed).expect("open"),
            b"12345678901234567890"
        );
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce() {
        let key = key();
        let first = key.encrypt("u", b"secret").expect("seal");
        let second = key.encrypt("u", b"secret").expect("seal");
        assert_ne!(first, second);
    }

    #[test]
    fn empty_plaintext_round_trips() {
        let key = key();
        let sealed = key.encrypt("u", b"").expect("seal");
        assert_eq!(key.decrypt("u", &sealed).expect("open"), b"");
    }

    #[test]
    fn wrong_key_is_rejected() {
        let sealed = key().encrypt("u", b"secret").expect("seal");
        let other = SecretKey::from_hex(OTHER_HEX).expect("valid key");
        assert!(matches!(
            other.decrypt("u", &sealed),
            Err(KeyError::Decrypt)
        ));
    }

    #[test]
    fn secret_copied_to_another_user_is_rejected() {
        let key = key();
        let sealed = key.encrypt("alice", b"secret").expect("seal");
        assert!(matches!(
            key.decrypt("bob", &sealed),
            Err(KeyError::Decrypt)
        ));
        assert!(matches!(
            key.decrypt("alic", &sealed),
            Err(KeyError::Decrypt)
        ));
        assert!(matches!(key.decrypt("", &sealed), Err(KeyError::Decrypt)));
    }

    #[test]
    fn any_flipped_byte_is_rejected() {
        let key = key();
        let sealed = key.encrypt("u", b"secret").expect("seal");
        let raw = URL_SAFE_NO_PAD.decode(&sealed[3..]).expect("base64");
        for index in 0..raw.len() {
            let mut tampered = raw.clone();
            tampered[index] ^= 0x01;
            let text = format!("v1.{}", URL_SAFE_NO_PAD.encode(&tampered));
            assert!(
                matches!(key.decrypt("u", &text), Err(KeyError::Decrypt)),
                "byte {index}"
            );
        }
        let truncated = format!("v1.{}", URL_SAFE_NO_PAD.encode(&raw[..raw.len() - 1]));
        assert!(matches!(
            key.decrypt("u", &truncated),
            Err(KeyError::Decrypt)
        ));
    }

    #[test]
    fn malformed_sealed_values_are_format_errors() {
        let key = key();
        let short = format!("v1.{}", URL_SAFE_NO_PAD.encode([0u8; 27]));
        for bad in [
            "", "v1.", "v2.AAAA", "V1.AAAA", "v1.!!!!", "v1.AAAA=", "plain", &short,
        ] {
            assert!(
                matches!(key.decrypt("u", bad), Err(KeyError::Format)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn hex_key_is_parsed_after_trimming_in_either_case() {
        let upper = format!("  {}\n", KEY_HEX.to_uppercase());
        assert_eq!(
            SecretKey::from_hex(&upper).expect("valid").to_hex(),
            KEY_HEX
        );
        let generated = SecretKey::generate();
        let hex = generated.to_hex();
        assert_eq!(hex.len(), 64);
        assert_eq!(SecretKey::from_hex(&hex).expect("valid").to_hex(), hex);
        assert_ne!(SecretKey::generate().to_hex(), hex);
    }

    #[test]
    fn malformed_hex_keys_say_what_is_wrong() {
        let message = |text: &str| {
            SecretKey::from_hex(text)
                .err()
                .map(|error| error.to_string())
        };
        assert_eq!(
            message(&KEY_HEX[..63]).as_deref(),
            Some("TOTP key: expected 64 hex characters (32 bytes), got 63 characters")
        );
        assert_eq!(
            message(&format!("{KEY_HEX}0")).as_deref(),
            Some("TOTP key: expected 64 hex characters (32 bytes), got 65 characters")
        );
        assert_eq!(
            message("").as_deref(),
            Some("TOTP key: expected 64 hex characters (32 bytes), got 0 characters")
        );
        let with_space = format!("{} {}", &KEY_HEX[..31], &KEY_HEX[32..]);
        let non_hex = format!("zz{}", &KEY_HEX[2..]);
        for bad in [with_space.as_str(), non_hex.as_str()] {
            assert_eq!(
                message(bad).as_deref(),
                Some("TOTP key: expected 64 hex characters (32 bytes), found a non-hex character")
            );
        }
    }

    #[test]
    fn key_file_with_surrounding_whitespace_loads() {
        let file = key_file(format!("\n  {KEY_HEX}  \r\n").as_bytes());
        let key = SecretKey::load(Some(file.path()), None).expect("valid key file");
        assert_eq!(key.to_hex(), KEY_HEX);
    }

    #[test]
    fn env_value_wins_over_key_file() {
        let file = key_file(KEY_HEX.as_bytes());
        let key = SecretKey::load(Some(file.path()), Some(OTHER_HEX)).expect("valid env key");
        assert_eq!(key.to_hex(), OTHER_HEX);
        let key = SecretKey::load(None, Some(&format!(" {OTHER_HEX}\n"))).expect("valid");
        assert_eq!(key.to_hex(), OTHER_HEX);
    }

    #[test]
    fn blank_env_value_falls_back_to_key_file() {
        let file = key_file(KEY_HEX.as_bytes());
        for blank in ["", "  \n"] {
            let key = SecretKey::load(Some(file.path()), Some(blank)).expect("file key");
            assert_eq!(key.to_hex(), KEY_HEX);
        }
    }

    #[test]
    fn missing_key_is_an_error_not_a_plaintext_fallback() {
        let error = SecretKey::load(None, None).err().map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some("totp.key_file: not set (set totp.key_file or SESSIONGATE_TOTP_KEY)")
        );
        let error = SecretKey::load(None, Some("")).err().map(|e| e.to_string());
        assert!(error.is_some_and(|e| e.starts_with("totp.key_file: not set")));
    }

    #[test]
    fn unreadable_key_file_error_names_setting_and_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("absent-key");
        let error = SecretKey::load(Some(&path), None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        let expected = format!(
            "totp.key_file: cannot read {}: No such file or directory",
            path.display()
        );
        assert!(error.starts_with(&expected), "{error}");
    }

    #[test]
    fn malformed_key_file_and_env_errors_name_their_source() {
        let file = key_file(b"not a key\n");
        let error = SecretKey::load(Some(file.path()), None)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some("totp.key_file: expected 64 hex characters (32 bytes), got 9 characters")
        );
        let file = key_file(&[0xff; 64]);
        let error = SecretKey::load(Some(file.path()), None)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some("totp.key_file: expected 64 hex characters (32 bytes), found a non-hex character")
        );
        let error = SecretKey::load(None, Some("abc"))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some("SESSIONGATE_TOTP_KEY: expected 64 hex characters (32 bytes), got 3 characters")
        );
    }

    #[test]
    fn oversized_key_file_is_refused_without_reading_it_all() {
        let file = key_file(&vec![b'a'; 4096]);
        let error = SecretKey::load(Some(file.path()), None)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            error,
            Some(format!(
                "totp.key_file: {} is larger than 1024 bytes; expected 64 hex characters (32 bytes)",
                file.path().display()
            ))
        );
    }

    #[test]
    fn key_material_never_appears_in_debug_or_errors() {
        let key = key();
        assert_eq!(format!("{key:?}"), "SecretKey(..)");
        // A near-valid key with one bad character: the message must not echo it.
        let leaky = format!("{}g", &KEY_HEX[..63]);
        let error = SecretKey::load(None, Some(&leaky)).expect_err("malformed");
        assert_eq!(
            error.to_string(),
            "SESSIONGATE_TOTP_KEY: expected 64 hex characters (32 bytes), found a non-hex character"
        );
        assert_eq!(
            format!("{error:?}"),
            r#"NotHex { origin: "SESSIONGATE_TOTP_KEY" }"#
        );
        let sealed = key.encrypt("u", b"TOPSECRET").expect("seal");
        let error = SecretKey::from_hex(OTHER_HEX)
            .expect("valid")
            .decrypt("u", &sealed)
            .expect_err("wrong key");
        for shown in [error.to_string(), format!("{error:?}")] {
            assert!(!shown.contains("TOPSECRET"), "{shown}");
            assert!(!shown.contains(&sealed[3..]), "{shown}");
        }
    }
}
