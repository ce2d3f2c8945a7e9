//! Request-head rules of a transparent proxy (pure functions, no I/O):
//! hop-by-hop fields, X-Forwarded-*, smuggling checks, session cookies, and
//! login tokens in query strings and forms ([`query`]).

pub mod query;

use std::borrow::Cow;
use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// RFC 9110 §7.6.1: hop-by-hop fields end at the proxy; `Proxy-Connection` and
/// `Keep-Alive` are the legacy forms of the same.
///
/// `Trailer` is NOT removed: it is an end-to-end declaration (RFC 9110 §6.6.2)
/// and hyper only relays trailer fields that it declares.
static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Why a request head is refused before anything is forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Smuggling {
    /// RFC 9112 §6.3: both framing headers; a front and back end could disagree.
    ContentLengthAndTransferEncoding,
    /// More than one Content-Length field, or a list value.
    DuplicateContentLength,
}

/// Refuse heads whose body framing two parsers could read differently.
pub fn check_framing(headers: &HeaderMap) -> Result<(), Smuggling> {
    let mut lengths = headers.get_all(header::CONTENT_LENGTH).iter();
    let first = lengths.next();
    if lengths.next().is_some() {
        return Err(Smuggling::DuplicateContentLength);
    }
    if let Some(value) = first {
        if value.as_bytes().contains(&b',') {
            return Err(Smuggling::DuplicateContentLength);
        }
        if headers.contains_key(header::TRANSFER_ENCODING) {
            return Err(Smuggling::ContentLengthAndTransferEncoding);
        }
    }
    Ok(())
}

/// Is this a websocket upgrade request (RFC 6455 §4.1)?
pub fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    let upgrade = headers
        .get_all(header::UPGRADE)
        .iter()
        .any(|v| has_token(v, "websocket"));
    upgrade
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .any(|v| has_token(v, "upgrade"))
}

fn has_token(value: &HeaderValue, token: &str) -> bool {
    value
        .to_str()
        .map(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        .unwrap_or(false)
}

/// Remove hop-by-hop headers, including every field the Connection header names.
/// With `keep_upgrade`, the websocket handshake fields survive so the next hop
/// sees the upgrade. `TE: trailers` survives: it says the client accepts trailers,
/// which the gate relays.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    let upgrade = if keep_upgrade {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    };
    let te_trailers = headers
        .get_all(header::TE)
        .iter()
        .any(|v| has_token(v, "trailers"));
    for name in named {
        // A client must not get end-to-end framing or Host dropped this way.
        if name != header::HOST && name != header::CONTENT_LENGTH {
            headers.remove(&name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if let Some(upgrade) = upgrade {
        headers.insert(header::UPGRADE, upgrade);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// X-Forwarded-* for the upstream. From a trusted proxy the incoming chain is
/// extended; from anyone else it is replaced, so a client cannot forge its
/// address or scheme.
///
/// `peer` is the client address as a header value ([`peer_header`], made once
/// per connection).
pub fn set_forwarded(
    headers: &mut HeaderMap,
    peer: &HeaderValue,
    https: bool,
    host: Option<&HeaderValue>,
    trusted: bool,
) {
    static XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
    static XFP: HeaderName = HeaderName::from_static("x-forwarded-proto");
    static XFH: HeaderName = HeaderName::from_static("x-forwarded-host");
    let proto = HeaderValue::from_static(if https { "https" } else { "http" });
    if trusted {
        let chain: Vec<&str> = headers
            .get_all(&XFF)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if chain.is_empty() {
            headers.insert(&XFF, peer.clone());
        } else {
            let value = format!(
                "{}, {}",
                chain.join(", "),
                peer.to_str().unwrap_or("unknown")
            );
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(&XFF, value);
            }
        }
        if !headers.contains_key(&XFP) {
            headers.insert(&XFP, proto);
        }
        if !headers.contains_key(&XFH) {
            if let Some(host) = host {
                headers.insert(&XFH, host.clone());
            }
        }
    } else {
        headers.insert(&XFF, peer.clone());
        headers.insert(&XFP, proto);
        match host {
            Some(host) => {
                headers.insert(&XFH, host.clone());
            }
            None => {
                headers.remove(&XFH);
            }
        }
    }
}

/// The client address as an X-Forwarded-For value.
pub fn peer_header(peer: IpAddr) -> HeaderValue {
    // An IP address is always a valid header value.
    HeaderValue::from_str(&peer.to_string()).unwrap_or(HeaderValue::from_static("unknown"))
}

/// Every value the upstream could read for cookie `name`, across all Cookie
/// headers (HTTP/2 splits them), most likely first.
///
/// Read the way Rocket.Chat reads it (found by fuzz/cookie): Node hands header
/// bytes over as latin1, so a non-ASCII byte elsewhere in the header must not
/// hide the token; the npm `cookie` parser trims names and values (`.trim()`
/// in old versions: NBSP too), strips surrounding quotes (`slice(1, -1)` after
/// a leading quote in old versions) and percent-decodes values. Every such
/// reading is returned, so a revoked token is recognised in any spelling.
pub fn cookie_values(headers: &HeaderMap, name: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for value in headers.get_all(header::COOKIE) {
        for pair in value.as_bytes().split(|&b| b == b';') {
            let text = latin1(pair);
            let Some((key, raw)) = text.split_once('=') else {
                continue;
            };
            if key.trim() != name {
                continue;
            }
            // Rust's trim, JavaScript's (old npm), and space/tab only (new npm)
            // disagree on NEL and NBSP: take every trimmed spelling.
            let trims = [
                raw.trim(),
                raw.trim_matches(|c: char| c.is_whitespace() && c != '\u{85}'),
                raw.trim_matches([' ', '\t']),
            ];
            for reading in trims.into_iter().flat_map(value_readings) {
                if !out.contains(&reading) {
                    out.push(reading);
                }
            }
        }
    }
    out
}

/// Header bytes as Node reads them: each byte is the code point of its value.
fn latin1(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) if text.is_ascii() => Cow::Borrowed(text),
        _ => Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect()),
    }
}

/// The values npm `cookie` (old and new) could make of one trimmed raw value.
fn value_readings(value: &str) -> Vec<String> {
    let mut unquoted: Vec<&str> = Vec::with_capacity(3);
    // New versions: quotes stripped only when both ends have one.
    let both = value
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'));
    unquoted.push(both.unwrap_or(value));
    // Old versions: `val.slice(1, -1)` whenever the value starts with a quote.
    if let Some(rest) = value.strip_prefix('"') {
        let mut chars = rest.chars();
        chars.next_back();
        unquoted.push(chars.as_str());
    }
    unquoted.push(value.trim_matches('"'));
    let mut out: Vec<String> = Vec::with_capacity(unquoted.len() * 2);
    for candidate in unquoted {
        let decoded = decode_uri_component(candidate);
        for reading in [decoded, Some(candidate.to_string())].into_iter().flatten() {
            if !out.contains(&reading) {
                out.push(reading);
            }
        }
    }
    out
}

/// JavaScript's `decodeURIComponent`; `None` when it would throw (npm
/// `cookie` then keeps the raw value) or when there is nothing to decode.
fn decode_uri_component(value: &str) -> Option<String> {
    if !value.contains('%') {
        return None;
    }
    let mut bytes = Vec::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            let high = chars.next()?.to_digit(16)?;
            let low = chars.next()?.to_digit(16)?;
            bytes.push(u8::try_from(high * 16 + low).ok()?);
        } else {
            let mut buf = [0u8; 4];
            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    String::from_utf8(bytes).ok()
}

/// Remove the named cookies, keeping every other cookie byte for byte. Names
/// are matched as in [`cookie_values`], so no spelling of them survives.
pub fn strip_cookies(headers: &mut HeaderMap, names: &[&str]) {
    let mut kept: Vec<u8> = Vec::new();
    for value in headers.get_all(header::COOKIE) {
        for pair in value.as_bytes().split(|&b| b == b';') {
            let pair = pair.trim_ascii();
            if pair.is_empty() {
                continue;
            }
            let text = latin1(pair);
            let name = text.split_once('=').map_or(&*text, |(k, _)| k).trim();
            if names.contains(&name) {
                continue;
            }
            if !kept.is_empty() {
                kept.extend_from_slice(b"; ");
            }
            kept.extend_from_slice(pair);
        }
    }
    headers.remove(header::COOKIE);
    if !kept.is_empty() {
        // Every kept byte came from a valid header value.
        if let Ok(value) = HeaderValue::from_bytes(&kept) {
            headers.insert(header::COOKIE, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn framing_conflicts_are_refused() {
        assert_eq!(
            check_framing(&map(&[
                ("content-length", "5"),
                ("transfer-encoding", "chunked")
            ])),
            Err(Smuggling::ContentLengthAndTransferEncoding)
        );
        assert_eq!(
            check_framing(&map(&[("content-length", "5"), ("content-length", "5")])),
            Err(Smuggling::DuplicateContentLength)
        );
        assert_eq!(
            check_framing(&map(&[("content-length", "5, 6")])),
            Err(Smuggling::DuplicateContentLength)
        );
        assert_eq!(check_framing(&map(&[("content-length", "5")])), Ok(()));
        assert_eq!(
            check_framing(&map(&[("transfer-encoding", "chunked")])),
            Ok(())
        );
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "gzip"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "x"),
            ("x-kept", "yes"),
            ("trailer", "x-checksum"),
        ]);
        strip_hop_by_hop(&mut h, false);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-kept", "trailer"]);
    }

    #[test]
    fn websocket_handshake_survives_with_keep_upgrade() {
        let mut h = map(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("te", "trailers"),
        ]);
        assert!(is_websocket_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h["te"], "trailers");
        assert!(!is_websocket_upgrade(&map(&[
            ("upgrade", "h2c"),
            ("connection", "upgrade")
        ])));
    }

    #[test]
    fn forwarded_headers_are_replaced_for_untrusted_peers() {
        let mut h = map(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
        ]);
        let host = HeaderValue::from_static("chat.example:8443");
        set_forwarded(
            &mut h,
            &peer_header("10.0.0.1".parse().unwrap()),
            false,
            Some(&host),
            false,
        );
        assert_eq!(h["x-forwarded-for"], "10.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "chat.example:8443");
    }

    #[test]
    fn forwarded_chain_is_extended_for_trusted_peers() {
        let mut h = map(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-proto", "https"),
        ]);
        set_forwarded(
            &mut h,
            &peer_header("10.0.0.1".parse().unwrap()),
            false,
            None,
            true,
        );
        assert_eq!(h["x-forwarded-for"], "1.1.1.1, 10.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "https");
    }

    fn raw_cookie(bytes: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_bytes(bytes).unwrap());
        h
    }

    #[test]
    fn token_cookie_is_found_next_to_non_ascii_bytes() {
        // Found by fuzz/cookie: one obs-text byte anywhere in the header hid the
        // revoked token from the gate, while Node reads the header as latin1.
        let h = raw_cookie(b"rc_token=tok; othe\xf2=x");
        assert_eq!(cookie_values(&h, "rc_token"), ["tok"]);
        let h = raw_cookie(b"\xa0rc_token=tok");
        assert_eq!(cookie_values(&h, "rc_token"), ["tok"]);
    }

    #[test]
    fn token_cookie_is_found_in_every_spelling_the_upstream_decodes() {
        // npm `cookie` percent-decodes values and strips one pair of quotes.
        let h = raw_cookie(b"rc_token=t%6Fk");
        assert!(cookie_values(&h, "rc_token").contains(&"tok".to_string()));
        let h = raw_cookie(br#"rc_token="tok""#);
        assert_eq!(cookie_values(&h, "rc_token"), ["tok"]);
        let h = raw_cookie(br#"rc_token="t%6Fk""#);
        assert_eq!(cookie_values(&h, "rc_token")[0], "tok");
        // Old npm `cookie`: `slice(1, -1)` after a leading quote, whatever ends it.
        let h = raw_cookie(br#"rc_token="tokx"#);
        assert!(cookie_values(&h, "rc_token").contains(&"tok".to_string()));
        // A value decodeURIComponent refuses stays as it is.
        let h = raw_cookie(b"rc_token=a%zz");
        assert_eq!(cookie_values(&h, "rc_token"), ["a%zz"]);
        let h = raw_cookie(b"rc_token=; rc_token=\"");
        assert_eq!(cookie_values(&h, "rc_token"), ["", "\""]);
    }

    #[test]
    fn stripping_keeps_non_ascii_cookies_and_removes_every_token_spelling() {
        let mut h = raw_cookie(b"a=\xe9; \xa0rc_token=t; rc_uid=u; \trc_token=v; b=2");
        strip_cookies(&mut h, &["rc_token", "rc_uid"]);
        assert_eq!(h["cookie"].as_bytes(), b"a=\xe9; b=2");
        assert!(cookie_values(&h, "rc_token").is_empty());
    }

    #[test]
    fn cookies_are_found_and_stripped_precisely() {
        let mut h = map(&[("cookie", "a=1; rc_token=tok; rc_uid=u"), ("cookie", "b=2")]);
        assert_eq!(cookie_values(&h, "rc_token"), ["tok"]);
        strip_cookies(&mut h, &["rc_token", "rc_uid"]);
        assert_eq!(h.get_all("cookie").iter().count(), 1);
        assert_eq!(h["cookie"], "a=1; b=2");
        let mut only = map(&[("cookie", "rc_token=x")]);
        strip_cookies(&mut only, &["rc_token", "rc_uid"]);
        assert!(!only.contains_key("cookie"));
    }
}
