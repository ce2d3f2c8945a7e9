//! Cookie parsing against the upstream's cookie parser.
//!
//! Model: Node hands header values to the app as latin1 strings; Rocket.Chat
//! reads cookies with the npm `cookie` package, old (`.trim()`, `slice(1,-1)`
//! after a leading quote) or new (space/tab trim, quotes stripped only when both
//! ends have one), and percent-decodes a value containing `%` when it is a
//! valid `decodeURIComponent` input. Properties:
//! 1. every value the upstream could read for `rc_token` is among the gate's
//!    `cookie_values` (so a revoked token is always recognised);
//! 2. after `strip_cookies(["rc_token", "rc_uid"])` the upstream reads neither.
//!
//! Input: split on `\n` into Cookie header values (each must be a valid
//! header value, as hyper would have parsed it).
#![no_main]

use http::header::{COOKIE, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use sessiongate::headers::{cookie_values, strip_cookies};

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(COOKIE, value);
        }
    }
    let gate: Vec<String> = cookie_values(&headers, "rc_token")
        .into_iter()
        .map(|v| v.to_string())
        .collect();
    for value in model_values(&headers, "rc_token") {
        assert!(
            gate.contains(&value),
            "upstream reads rc_token={value:?}; gate saw {gate:?}"
        );
    }
    let mut stripped = headers.clone();
    strip_cookies(&mut stripped, &["rc_token", "rc_uid"]);
    for name in ["rc_token", "rc_uid"] {
        let left = model_values(&stripped, name);
        assert!(left.is_empty(), "{name} survives stripping: {left:?}");
    }
    // Other cookies survive byte for byte (as a set of pairs).
    let before = model_values(&headers, "other");
    assert_eq!(before, model_values(&stripped, "other"));
});

/// Every value either npm `cookie` version would read for `name`.
fn model_values(headers: &HeaderMap, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for value in headers.get_all(COOKIE) {
        // latin1: each byte is the code point of the same value.
        let text: String = value.as_bytes().iter().map(|&b| char::from(b)).collect();
        for pair in text.split(';') {
            let Some(eq) = pair.find('=') else { continue };
            let (key, rest) = (&pair[..eq], &pair[eq + 1..]);
            // old: String.prototype.trim
            if js_trim(key) == name {
                let mut v: String = js_trim(rest).to_string();
                if v.starts_with('"') {
                    let chars: Vec<char> = v.chars().collect();
                    v = chars
                        .get(1..chars.len().saturating_sub(1))
                        .map(|c| c.iter().collect())
                        .unwrap_or_default();
                }
                out.push(try_decode(&v));
            }
            // new: only space and tab are skipped
            let st = |s: &str| s.trim_matches([' ', '\t']).to_string();
            if st(key) == name {
                let mut v = st(rest);
                if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
                    v = v[1..v.len() - 1].to_string();
                }
                out.push(try_decode(&v));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn js_trim(s: &str) -> &str {
    s.trim_matches(|c: char| {
        matches!(
            c,
            '\t' | '\u{b}'
                | '\u{c}'
                | ' '
                | '\u{a0}'
                | '\u{feff}'
                | '\n'
                | '\r'
                | '\u{2028}'
                | '\u{2029}'
        ) || (c.is_whitespace() && c != '\u{85}')
    })
}

/// `decodeURIComponent`, or the input unchanged when it throws (npm tryDecode).
fn try_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let mut bytes = Vec::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            let (Some(h), Some(l)) = (chars.next(), chars.next()) else {
                return s.to_string();
            };
            let (Some(h), Some(l)) = (h.to_digit(16), l.to_digit(16)) else {
                return s.to_string();
            };
            bytes.push((h * 16 + l) as u8);
        } else {
            let mut buf = [0; 4];
            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    String::from_utf8(bytes).unwrap_or_else(|_| s.to_string())
}
