//! TOTP (RFC 6238): code verification, secret encoding, enrolment URI and QR code.
//!
//! Pure: no I/O, no tokio, no clock. Callers pass `now` so tests and the demo control
//! time. Replay protection (RFC 6238 §5.2, "the verifier MUST NOT accept the second
//! attempt of the OTP after the successful validation") is the caller's job: it records
//! a step [`matching_steps`] returns, atomically in the store.
//!
//! Parameters are fixed to what every authenticator app supports: HMAC-SHA-1,
//! 6 digits, 30 second step.

pub mod backup;
pub mod crypto;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use qrcode::QrCode;
use qrcode::render::unicode::Dense1x2;
use rand::Rng as _;
use totp_rs::{Algorithm, Builder, Totp};

/// RFC 6238 §5.2 recommends a 30 second time step.
pub const STEP_SECS: u64 = 30;

/// Number of digits in a code.
pub const DIGITS: usize = 6;

/// Bytes in a secret made by [`generate_secret`]: RFC 4226 §4 recommends 160 bits.
pub const SECRET_BYTES: usize = 20;

/// Shortest secret accepted on import. RFC 4226 §4 says a shared secret "MUST be at least
/// 128 bits", but older enrolments (Google Authenticator's historic 16-character base32
/// secrets) carry 80 bits; refusing them would force users to re-enrol, so imports accept
/// 80 bits and newly generated secrets are always 160.
pub const MIN_SECRET_BYTES: usize = 10;

/// Why a secret or an enrolment artefact could not be produced. Messages describe the
/// problem only; they never repeat any part of the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    /// The base32 text held no characters besides spaces and padding.
    #[error("TOTP secret is empty")]
    EmptySecret,
    /// A character outside the RFC 4648 base32 alphabet, misplaced padding, or a length
    /// that no byte string encodes to.
    #[error(
        "TOTP secret is not valid base32 (RFC 4648: letters A-Z and digits 2-7, optional '=' padding at the end)"
    )]
    InvalidBase32,
    /// Fewer than [`MIN_SECRET_BYTES`] bytes once decoded.
    #[error("TOTP secret is too short: {bytes} bytes, at least {MIN_SECRET_BYTES} required")]
    SecretTooShort {
        /// Decoded length; the length alone reveals nothing useful about the secret.
        bytes: usize,
    },
    /// The otpauth URI does not fit in the largest QR code.
    #[error("otpauth URI is too long to draw as a QR code")]
    QrTooLong,
}

/// Check `code` against the steps within `±window` of `now_secs`.
///
/// Returns the matched time step (`unix_secs / 30`) so the caller can refuse its reuse.
/// The code must be exactly six ASCII digits once surrounding whitespace is trimmed;
/// anything else is `None`, never a panic. Every candidate step is compared in constant
/// time and the loop does not stop early, so timing does not reveal which digits matched.
/// A secret shorter than [`MIN_SECRET_BYTES`] never verifies (fail closed: an empty or
/// truncated secret would make codes guessable).
pub fn verify_code(secret: &[u8], code: &str, now_secs: u64, window: u8) -> Option<u64> {
    matching_steps(secret, code, now_secs, window)
        .first()
        .copied()
}

/// Every step within `±window` whose code is `code`, oldest first (usually
/// none or one). Two steps of a window can share a six-digit code: when the
/// older one was already used, the newer one must still be accepted, so the
/// store consumes the first unused step of this list.
pub fn matching_steps(secret: &[u8], code: &str, now_secs: u64, window: u8) -> Vec<u64> {
    let mut matched = Vec::new();
    let code = code.trim().as_bytes();
    if code.len() != DIGITS || !code.iter().all(u8::is_ascii_digit) {
        return matched;
    }
    if secret.len() < MIN_SECRET_BYTES {
        return matched;
    }
    let totp = totp(secret);
    let now_step = now_secs / STEP_SECS;
    let first = now_step.saturating_sub(u64::from(window));
    let last = now_step.saturating_add(u64::from(window));
    for step in first..=last {
        // `now_secs / 30 + 255` times 30 can exceed u64 only for absurd clocks; such a
        // step has no code, so skip it rather than overflow.
        let Some(at) = step.checked_mul(STEP_SECS) else {
            continue;
        };
        let expected = totp.generate(at).to_string();
        if constant_time_eq(expected.as_bytes(), code) {
            matched.push(step);
        }
    }
    matched
}

/// The code for the step containing `unix_secs` (six digits, zero padded).
pub fn code_at(secret: &[u8], unix_secs: u64) -> String {
    totp(secret).generate(unix_secs).to_string()
}

/// A fresh 160-bit secret from the thread-local CSPRNG (RFC 4226 §4).
pub fn generate_secret() -> Vec<u8> {
    let mut secret = vec![0u8; SECRET_BYTES];
    rand::rng().fill(secret.as_mut_slice());
    secret
}

/// Decode a base32 secret as users paste it: any case, spaces (or other whitespace)
/// between groups, and trailing `=` padding are accepted.
///
/// # Errors
/// [`TotpError::EmptySecret`], [`TotpError::InvalidBase32`], or
/// [`TotpError::SecretTooShort`] below [`MIN_SECRET_BYTES`].
pub fn decode_base32_secret(text: &str) -> Result<Vec<u8>, TotpError> {
    let compact: Vec<u8> = text
        .bytes()
        .filter(|byte| !byte.is_ascii_whitespace())
        .collect();
    // Padding may only trail the data (RFC 4648 §6).
    let data_len = compact
        .iter()
        .rposition(|&byte| byte != b'=')
        .map_or(0, |last| last + 1);
    let (data, padding) = compact.split_at(data_len);
    if data.is_empty() {
        return Err(TotpError::EmptySecret);
    }
    if padding.len() >= 8 || (!padding.is_empty() && (data.len() + padding.len()) % 8 != 0) {
        return Err(TotpError::InvalidBase32);
    }
    let secret = base32_decode(data).ok_or(TotpError::InvalidBase32)?;
    if secret.len() < MIN_SECRET_BYTES {
        return Err(TotpError::SecretTooShort {
            bytes: secret.len(),
        });
    }
    Ok(secret)
}

/// RFC 4648 base32, upper case, without padding (what authenticator apps expect in
/// the otpauth URI).
pub fn encode_base32_secret(secret: &[u8]) -> String {
    let mut out = String::with_capacity(secret.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for &byte in secret {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(base32_char(buffer >> bits));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(base32_char(buffer << (5 - bits)));
    }
    out
}

/// Characters escaped in the otpauth label and issuer: everything except RFC 3986
/// unreserved characters, so `:` (the label separator), `&`, `?`, `#`, `/`, `@` and
/// spaces (as `%20`, which Google's Key URI Format asks for) can never alter the URI.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The enrolment URI in Google's Key URI Format, all parameters explicit:
/// `otpauth://totp/<issuer>:<username>?secret=<BASE32>&issuer=<issuer>&algorithm=SHA1&digits=6&period=30`.
pub fn otpauth_uri(secret: &[u8], issuer: &str, username: &str) -> String {
    let issuer = utf8_percent_encode(issuer, URI_COMPONENT).to_string();
    let username = utf8_percent_encode(username, URI_COMPONENT);
    format!(
        "otpauth://totp/{issuer}:{username}?secret={secret}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        secret = encode_base32_secret(secret),
    )
}

/// Draw `uri` as a QR code with Unicode half blocks (two modules per character cell).
///
/// Colours are inverted (dark modules drawn as spaces) because most terminals have a
/// dark background: the light quiet zone then frames the code, and phone scanners read it.
///
/// # Errors
/// [`TotpError::QrTooLong`] when the URI exceeds a version 40 QR code's capacity.
pub fn qr_terminal(uri: &str) -> Result<String, TotpError> {
    let code = QrCode::new(uri.as_bytes()).map_err(|_| TotpError::QrTooLong)?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .build())
}

/// HMAC-SHA-1, 6 digits, 30 s; skew is handled by [`verify_code`] itself.
fn totp(secret: &[u8]) -> Totp {
    // `build_noncompliant` because `build` refuses secrets under 128 bits, and imports
    // accept 80 (see MIN_SECRET_BYTES); the other parameters are RFC defaults.
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS as u8)
        .with_step_duration(STEP_SECS)
        .with_skew(0)
        .with_secret(secret.to_vec())
        .build_noncompliant()
}

/// Compare without an early exit so the time taken does not depend on where the first
/// differing byte is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

const BASE32_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

fn base32_char(index: u32) -> char {
    // The mask keeps the index inside the 32-entry alphabet.
    char::from(BASE32_ALPHABET[(index & 31) as usize])
}

fn base32_value(symbol: u8) -> Option<u32> {
    match symbol.to_ascii_uppercase() {
        upper @ b'A'..=b'Z' => Some(u32::from(upper - b'A')),
        digit @ b'2'..=b'7' => Some(u32::from(digit - b'2') + 26),
        _ => None,
    }
}

/// Decode unpadded RFC 4648 base32. Lengths that leave 1, 3 or 6 characters in the
/// last group encode no whole byte (RFC 4648 §6) and are rejected.
fn base32_decode(data: &[u8]) -> Option<Vec<u8>> {
    if matches!(data.len() % 8, 1 | 3 | 6) {
        return None;
    }
    let mut out = Vec::with_capacity(data.len() * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for &symbol in data {
        buffer = (buffer << 5) | base32_value(symbol)?;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            // Truncation to the low byte is the point: `buffer >> bits` holds 8 bits.
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B SHA-1 seed: the ASCII string "12345678901234567890".
    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn a_code_shared_by_two_steps_names_both_oldest_first() {
        // Steps 153567 and 153569 share the code 468457 for the RFC secret
        // (found by search); from step 153568 with window 1 both are in range.
        let now = 153_568 * 30;
        assert_eq!(code_at(RFC_SECRET, 153_567 * 30), "468457");
        assert_eq!(code_at(RFC_SECRET, 153_569 * 30), "468457");
        assert_eq!(
            matching_steps(RFC_SECRET, "468457", now, 1),
            vec![153_567, 153_569]
        );
        assert_eq!(verify_code(RFC_SECRET, "468457", now, 1), Some(153_567));
        assert!(matching_steps(RFC_SECRET, "468458", now, 1).is_empty());
    }

    #[test]
    fn rfc6238_sha1_vectors_truncated_to_six_digits() {
        // Appendix B gives 8-digit codes; the 6-digit code is the same value mod 10^6.
        let vectors = [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        for (time, eight_digits) in vectors {
            assert_eq!(code_at(RFC_SECRET, time), eight_digits[2..], "time {time}");
        }
        assert_eq!(code_at(RFC_SECRET, 59), "287082");
    }

    #[test]
    fn code_is_accepted_in_its_own_step_and_returns_that_step() {
        assert_eq!(verify_code(RFC_SECRET, "287082", 59, 1), Some(1));
        assert_eq!(verify_code(RFC_SECRET, "287082", 30, 0), Some(1));
    }

    #[test]
    fn neighbouring_steps_are_accepted_within_window_one() {
        let now = 1_111_111_111; // step 37_037_037
        let step = now / STEP_SECS;
        let previous = code_at(RFC_SECRET, now - STEP_SECS);
        let next = code_at(RFC_SECRET, now + STEP_SECS);
        assert_eq!(verify_code(RFC_SECRET, &previous, now, 1), Some(step - 1));
        assert_eq!(verify_code(RFC_SECRET, &next, now, 1), Some(step + 1));
    }

    #[test]
    fn steps_two_away_are_rejected_with_window_one() {
        let now = 1_111_111_111;
        let two_back = code_at(RFC_SECRET, now - 2 * STEP_SECS);
        let two_ahead = code_at(RFC_SECRET, now + 2 * STEP_SECS);
        assert_eq!(verify_code(RFC_SECRET, &two_back, now, 1), None);
        assert_eq!(verify_code(RFC_SECRET, &two_ahead, now, 1), None);
        assert_eq!(
            verify_code(RFC_SECRET, &two_back, now, 2),
            Some(now / STEP_SECS - 2)
        );
    }

    #[test]
    fn window_zero_accepts_only_the_current_step() {
        let now = 1_234_567_890;
        let previous = code_at(RFC_SECRET, now - STEP_SECS);
        assert_eq!(verify_code(RFC_SECRET, &previous, now, 0), None);
        assert_eq!(
            verify_code(RFC_SECRET, "005924", now, 0),
            Some(now / STEP_SECS)
        );
    }

    #[test]
    fn window_at_the_epoch_does_not_underflow() {
        let code = code_at(RFC_SECRET, 0);
        assert_eq!(verify_code(RFC_SECRET, &code, 0, 255), Some(0));
        assert_eq!(verify_code(RFC_SECRET, &code, 10, 1), Some(0));
    }

    #[test]
    fn far_future_clock_does_not_overflow() {
        assert_eq!(verify_code(RFC_SECRET, "123456", u64::MAX, 255), None);
    }

    #[test]
    fn surrounding_whitespace_is_trimmed() {
        assert_eq!(verify_code(RFC_SECRET, " 287082\n", 59, 1), Some(1));
        assert_eq!(verify_code(RFC_SECRET, "\t287082 ", 59, 1), Some(1));
    }

    #[test]
    fn malformed_codes_are_rejected_without_panicking() {
        for code in [
            "",
            " ",
            "28708",
            "2870820",
            "94287082",
            "28708a",
            "+87082",
            "-87082",
            "287 082",
            "２８７０８２",
            "287082\0",
            "28708٢",
            "💥💥💥",
        ] {
            assert_eq!(verify_code(RFC_SECRET, code, 59, 1), None, "{code:?}");
        }
    }

    #[test]
    fn wrong_code_is_rejected() {
        assert_eq!(verify_code(RFC_SECRET, "287083", 59, 1), None);
    }

    #[test]
    fn too_short_secret_never_verifies() {
        let code = code_at(&[], 59);
        assert_eq!(verify_code(&[], &code, 59, 1), None);
        let nine = [7u8; 9];
        assert_eq!(verify_code(&nine, &code_at(&nine, 59), 59, 1), None);
        let ten = [7u8; 10];
        assert_eq!(verify_code(&ten, &code_at(&ten, 59), 59, 1), Some(1));
    }

    #[test]
    fn generated_secrets_are_twenty_random_bytes() {
        let first = generate_secret();
        let second = generate_secret();
        assert_eq!(first.len(), 20);
        assert_ne!(first, second);
    }

    #[test]
    fn base32_encodes_rfc4648_vectors_without_padding() {
        // RFC 4648 §10 test vectors, padding removed.
        let vectors: [(&[u8], &str); 7] = [
            (b"", ""),
            (b"f", "MY"),
            (b"fo", "MZXQ"),
            (b"foo", "MZXW6"),
            (b"foob", "MZXW6YQ"),
            (b"fooba", "MZXW6YTB"),
            (b"foobar", "MZXW6YTBOI"),
        ];
        for (bytes, text) in vectors {
            assert_eq!(encode_base32_secret(bytes), text);
        }
        assert_eq!(
            encode_base32_secret(RFC_SECRET),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
    }

    #[test]
    fn base32_round_trips_every_length() {
        for len in MIN_SECRET_BYTES..=40 {
            let secret: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let text = encode_base32_secret(&secret);
            assert_eq!(decode_base32_secret(&text), Ok(secret), "len {len}");
        }
    }

    #[test]
    fn base32_accepts_lower_case_spaces_and_padding() {
        let expected = Ok(RFC_SECRET.to_vec());
        assert_eq!(
            decode_base32_secret("gezd gnbv gy3t qojq gezd gnbv gy3t qojq"),
            expected
        );
        assert_eq!(
            decode_base32_secret("  GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n"),
            expected
        );
        // 11 bytes encode to 18 characters, padded to 24.
        let eleven = b"hello world";
        assert_eq!(encode_base32_secret(eleven), "NBSWY3DPEB3W64TMMQ");
        assert_eq!(
            decode_base32_secret("NBSWY3DPEB3W64TMMQ======"),
            Ok(eleven.to_vec())
        );
    }

    #[test]
    fn base32_rejects_bad_input_with_clear_errors() {
        assert_eq!(decode_base32_secret(""), Err(TotpError::EmptySecret));
        assert_eq!(decode_base32_secret("  = = "), Err(TotpError::EmptySecret));
        for bad in [
            "GEZDGNBVGY3TQOJ1GEZDGNBVGY3TQOJQ", // '1' is not base32
            "GEZDGNBVGY3TQOJ0GEZDGNBVGY3TQOJQ", // '0' either
            "GEZDGNBV-GY3TQOJQGEZDGNBVGY3TQOJQ",
            "GEZDGNBVGY3TQOJQ=GEZDGNBVGY3TQOJQ", // padding inside
            "NBSWY3DPEB3W64TMMQ==",              // padding to a non-multiple of 8
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQG", // 33 chars: 1 left over
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZ",
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGN",
            "GEZDGNBVGY3TQOJQ\u{e9}EZDGNBVGY3TQOJQ",
        ] {
            assert_eq!(
                decode_base32_secret(bad),
                Err(TotpError::InvalidBase32),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn base32_rejects_secrets_under_eighty_bits() {
        assert_eq!(
            decode_base32_secret("MZXW6YTBOI"),
            Err(TotpError::SecretTooShort { bytes: 6 })
        );
        assert_eq!(
            decode_base32_secret("JBSWY3DPEHPK3PXP"),
            Ok(b"Hello!\xde\xad\xbe\xef".to_vec())
        );
    }

    #[test]
    fn error_messages_never_repeat_the_secret() {
        let input = "SECRETSECRETSECRET1";
        let err = decode_base32_secret(input).err();
        assert_eq!(err, Some(TotpError::InvalidBase32));
        let shown = format!(
            "{} {:?}",
            TotpError::InvalidBase32,
            TotpError::InvalidBase32
        );
        assert!(!shown.contains("SECRET"), "{shown}");
        assert_eq!(
            TotpError::SecretTooShort { bytes: 6 }.to_string(),
            "TOTP secret is too short: 6 bytes, at least 10 required"
        );
    }

    #[test]
    fn otpauth_uri_has_exact_shape() {
        assert_eq!(
            otpauth_uri(RFC_SECRET, "sessiongate", "alice"),
            "otpauth://totp/sessiongate:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=sessiongate&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn otpauth_uri_percent_encodes_issuer_and_username() {
        assert_eq!(
            otpauth_uri(RFC_SECRET, "Acme Chat", "bob:x@example.com&y?z#w/é"),
            "otpauth://totp/Acme%20Chat:bob%3Ax%40example.com%26y%3Fz%23w%2F%C3%A9\
             ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Acme%20Chat&algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(
            otpauth_uri(RFC_SECRET, "a-b.c_d~e", "u"),
            "otpauth://totp/a-b.c_d~e:u?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=a-b.c_d~e&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn qr_code_is_drawn_with_half_blocks() {
        let uri = otpauth_uri(RFC_SECRET, "sessiongate", "alice");
        let drawing = qr_terminal(&uri).expect("a short URI fits in a QR code");
        let lines: Vec<&str> = drawing.lines().collect();
        let width = lines.first().map_or(0, |line| line.chars().count());
        assert!(width > 21, "width {width}");
        assert!(lines.iter().all(|line| line.chars().count() == width));
        assert!(
            drawing
                .chars()
                .all(|c| matches!(c, ' ' | '\u{2580}' | '\u{2584}' | '\u{2588}' | '\n'))
        );
        // The quiet zone is drawn light (full blocks) for dark terminals.
        assert!(
            lines
                .first()
                .is_some_and(|line| line.chars().all(|c| c == '\u{2588}'))
        );
    }

    #[test]
    fn qr_code_refuses_an_oversized_uri() {
        let uri = "x".repeat(8000);
        assert_eq!(qr_terminal(&uri), Err(TotpError::QrTooLong));
    }
}
