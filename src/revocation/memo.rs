//! Per-connection memo of the last tokens found not revoked.
//!
//! A keep-alive connection carries the same token on request after request.
//! As long as the revoked set has not grown since (every new entry bumps its
//! generation), tokens that were not revoked still are not: comparing the raw
//! header bytes replaces hashing and looking them up again. Only "not revoked"
//! is remembered; a refusal or a stripped cookie is always decided afresh.

use std::sync::Mutex;

use http::HeaderMap;
use http::header::{self, HeaderName};

static X_AUTH_TOKEN: HeaderName = HeaderName::from_static("x-auth-token");

/// Token headers larger than this are checked every time, not copied.
const MAX_FINGERPRINT: usize = 8 * 1024;

#[derive(Debug, Default)]
pub struct CleanMemo {
    last: Mutex<Memo>,
}

#[derive(Debug, Default)]
struct Memo {
    /// `None` until a clean verdict is remembered.
    generation: Option<u64>,
    /// The `X-Auth-Token` and `Cookie` values it was made for, with separators.
    fingerprint: Vec<u8>,
}

impl CleanMemo {
    /// Were these exact token headers found not revoked at `generation`?
    pub fn is_clean(&self, generation: u64, headers: &HeaderMap) -> bool {
        let memo = self.lock();
        if memo.generation != Some(generation) {
            return false;
        }
        let mut rest = memo.fingerprint.as_slice();
        let same = for_each_part(headers, |part| match rest.strip_prefix(part) {
            Some(after) => {
                rest = after;
                true
            }
            None => false,
        });
        same && rest.is_empty()
    }

    /// These token headers were checked against the set at `generation`
    /// (read before the check) and none is revoked.
    pub fn remember(&self, generation: u64, headers: &HeaderMap) {
        let mut memo = self.lock();
        memo.fingerprint.clear();
        let fingerprint = &mut memo.fingerprint;
        let fits = for_each_part(headers, |part| {
            fingerprint.extend_from_slice(part);
            fingerprint.len() <= MAX_FINGERPRINT
        });
        memo.generation = fits.then_some(generation);
        if !fits {
            memo.fingerprint = Vec::new();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memo> {
        // A memo cut short by a panic only costs a fresh check.
        self.last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Feed every token-carrying header value to `f`, with separators no header
/// value can contain (`\n` after each value, `\0` between the two names), so
/// two different header sets never produce the same sequence. Stops (false)
/// as soon as `f` says so.
fn for_each_part(headers: &HeaderMap, mut f: impl FnMut(&[u8]) -> bool) -> bool {
    for value in headers.get_all(&X_AUTH_TOKEN) {
        if !(f(value.as_bytes()) && f(b"\n")) {
            return false;
        }
    }
    if !f(b"\0") {
        return false;
    }
    for value in headers.get_all(header::COOKIE) {
        if !(f(value.as_bytes()) && f(b"\n")) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn same_tokens_at_the_same_generation_are_clean() {
        let memo = CleanMemo::default();
        let h = headers(&[("x-auth-token", "abc"), ("cookie", "rc_token=x; a=b")]);
        assert!(!memo.is_clean(7, &h), "nothing remembered yet");
        memo.remember(7, &h);
        assert!(memo.is_clean(7, &h));
        // Other headers do not matter.
        let mut more = h.clone();
        more.insert("accept", HeaderValue::from_static("*/*"));
        assert!(memo.is_clean(7, &more));
    }

    #[test]
    fn a_grown_set_or_different_tokens_need_a_fresh_check() {
        let memo = CleanMemo::default();
        let h = headers(&[("x-auth-token", "abc"), ("cookie", "rc_token=x")]);
        memo.remember(7, &h);
        assert!(!memo.is_clean(8, &h), "the set grew");
        for other in [
            headers(&[("x-auth-token", "abd"), ("cookie", "rc_token=x")]),
            headers(&[("x-auth-token", "ab"), ("cookie", "rc_token=x")]),
            headers(&[("x-auth-token", "abc")]),
            headers(&[("cookie", "rc_token=x")]),
            headers(&[
                ("x-auth-token", "abc"),
                ("x-auth-token", "zzz"),
                ("cookie", "rc_token=x"),
            ]),
            headers(&[
                ("x-auth-token", "abc"),
                ("cookie", "rc_token=x"),
                ("cookie", "rc_token=y"),
            ]),
            // The same bytes split differently between the two names.
            headers(&[("x-auth-token", "abcrc_token=x")]),
        ] {
            assert!(!memo.is_clean(7, &other), "{other:?}");
        }
    }

    #[test]
    fn requests_without_tokens_are_remembered_too() {
        let memo = CleanMemo::default();
        let none = HeaderMap::new();
        memo.remember(1, &none);
        assert!(memo.is_clean(1, &none));
        assert!(!memo.is_clean(1, &headers(&[("x-auth-token", "abc")])));
    }

    #[test]
    fn oversized_token_headers_are_never_remembered() {
        let memo = CleanMemo::default();
        let big: &'static str = Box::leak("a".repeat(MAX_FINGERPRINT + 1).into_boxed_str());
        let h = headers(&[("cookie", big)]);
        memo.remember(1, &h);
        assert!(!memo.is_clean(1, &h));
    }
}
