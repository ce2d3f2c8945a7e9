//! Route canonicalization against a model of the upstream's routing.
//!
//! Property (SPEC §1 "Path matching", §12): no request that the upstream could
//! route to its logout handler is forwarded by the gate. The model below is
//! written independently of `route.rs`: instead of one canonical form it tries
//! every plausible way a server stack could turn the raw path it receives into
//! a route, and says "routed" when *any* of them yields
//! `/api/v1/sessions/logout`. The gate must then answer the request itself
//! (`Route::SessionsLogout`). Stacks modelled (tests/routers.rs runs the real
//! ones; this is the fast, exhaustive-by-fuzzing counterpart):
//! - Rocket.Chat 5.x – 7.3, connect-route 0.1.5: `decodeURI` (reserved
//!   characters stay encoded, a malformed escape is a URIError, i.e. not
//!   routed), cut at `?`, strip `/^[\s\/]+|[\s\/]+$/g` (JavaScript whitespace
//!   and slashes at both ends of the whole path), exact segments. So
//!   `//api/…`, `/%20api/…`, `/%E3%80%80/api/…` are the handler.
//! - Rocket.Chat 7.4 – 7.5, express 4 `Router()`: case-insensitive, optional
//!   trailing slash, no decoding. The model compares every reading ignoring
//!   ASCII case.
//! - Rocket.Chat 7.6+, hono behind express: WHATWG URL parsing first (`\` is
//!   `/`, `.`/`%2e` dot segments resolve), then `decodeURI`.
//! - Generic readings: raw/once/fully decoded, a decoded `?`/`#` ending the
//!   path, `;params` cut before or after decoding (Tomcat), `\` as a separator,
//!   whitespace trimmed at segment ends (none, trailing, both), both dot orders.
//!
//! Input: byte 0 picks the method, byte 1 an override header, the rest is the
//! request target (origin- or absolute-form) as hyper would hand it over.
#![no_main]

use http::{HeaderMap, HeaderValue, Method, Uri};
use libfuzzer_sys::fuzz_target;
use sessiongate::route::{Route, classify};

const LOGOUT: &str = "/api/v1/sessions/logout";

fuzz_target!(|data: &[u8]| {
    let [m, o, target @ ..] = data else { return };
    let Ok(uri) = Uri::try_from(target) else {
        return;
    };
    let method = match m % 6 {
        0 => Method::POST,
        1 => Method::GET,
        2 => Method::PUT,
        3 => Method::from_bytes(b"post").expect("lowercase post is a valid token"),
        4 => Method::DELETE,
        _ => Method::OPTIONS,
    };
    let mut headers = HeaderMap::new();
    let override_value = match o % 5 {
        1 => Some("POST"),
        2 => Some(" post "),
        3 => Some("GET, PoSt"),
        4 => Some("DELETE"),
        _ => None,
    };
    if let Some(value) = override_value {
        let name = match (o / 5) % 3 {
            0 => "x-http-method-override",
            1 => "x-http-method",
            _ => "x-method-override",
        };
        headers.insert(name, HeaderValue::from_static(value));
    }

    let route = classify(&method, &uri, &headers);
    assert_eq!(route, classify(&method, &uri, &headers), "deterministic");

    let raw_path = uri.path();
    let effective_post = method.as_str().eq_ignore_ascii_case("POST")
        || override_value
            .is_some_and(|v| v.split(',').any(|i| i.trim().eq_ignore_ascii_case("POST")))
        || uri.query().is_some_and(model_query_overrides_to_post);
    if effective_post && model_routes_to_logout(raw_path) {
        assert_eq!(
            route,
            Route::SessionsLogout,
            "upstream could route {raw_path:?} ({method}) to the logout handler but the gate forwards it"
        );
    }
});

/// One way a server could read a raw path.
#[derive(Clone, Copy, Debug)]
struct Reading {
    /// WHATWG URL parsing before anything else: `\` is `/`, `.`/`%2e` dot
    /// segments resolve, other escapes stay encoded.
    whatwg_first: bool,
    /// Tomcat-style: `;params` cut from raw segments before decoding.
    params_before_decode: bool,
    /// 0 = no decoding, 1 = one pass, 2 = until stable.
    decode: u8,
    /// A decoded `?` or `#` ends the path (sloppy query splitting after decoding).
    decoded_query_ends_path: bool,
    /// `\` counts as a separator after decoding.
    backslash: bool,
    /// `;params` cut from decoded segments.
    params_after_decode: bool,
    /// Whitespace/control characters trimmed from segments: 0 = none,
    /// 1 = trailing only, 2 = both ends.
    trim: u8,
    /// 0 = dots are names, 1 = RFC 3986 (empty segments count), 2 = collapse first.
    dots: u8,
}

fn readings() -> impl Iterator<Item = Reading> {
    (0u32..(2 * 2 * 3 * 2 * 2 * 2 * 3 * 3)).map(|mut n| {
        let mut take = |k: u32| {
            let v = n % k;
            n /= k;
            v
        };
        Reading {
            whatwg_first: take(2) == 1,
            params_before_decode: take(2) == 1,
            decode: take(3) as u8,
            decoded_query_ends_path: take(2) == 1,
            backslash: take(2) == 1,
            params_after_decode: take(2) == 1,
            trim: take(3) as u8,
            dots: take(3) as u8,
        }
    })
}

fn model_routes_to_logout(raw: &str) -> bool {
    let is_logout = |path: Option<String>| path.is_some_and(|p| p.eq_ignore_ascii_case(LOGOUT));
    is_logout(connect_route(raw))
        || is_logout(whatwg_normalize_str(raw).and_then(|p| connect_route(&p)))
        || readings().any(|reading| is_logout(read(raw, reading)))
}

/// JavaScript's `\s` (ECMA-262 WhiteSpace + LineTerminator).
fn is_js_whitespace(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n'
            | '\u{b}'
            | '\u{c}'
            | '\r'
            | ' '
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
            | '\u{feff}'
    )
}

/// connect-route 0.1.5 `Router.match`: `decodeURI(url).split('?', 1)[0]
/// .replace(/^[\s\/]+|[\s\/]+$/g, '').split('/')`, segments matched exactly.
fn connect_route(raw: &str) -> Option<String> {
    let decoded = decode_uri(raw)?;
    let path = decoded.split('?').next().unwrap_or("");
    let stripped = path.trim_matches(|c: char| c == '/' || is_js_whitespace(c));
    Some(format!("/{stripped}"))
}

/// ECMAScript `decodeURI`: escapes of the reserved set `;/?:@&=+$,#` stay as
/// they are; anything malformed (bad hex, bad or overlong UTF-8) throws,
/// which for a router means "not routed" (`None`).
fn decode_uri(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let escape_at = |i: usize| -> Option<u8> {
        if bytes.get(i) != Some(&b'%') {
            return None;
        }
        Some(hex(*bytes.get(i + 1)?)? << 4 | hex(*bytes.get(i + 2)?)?)
    };
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            let c = raw[i..].chars().next()?;
            out.push(c);
            i += c.len_utf8();
            continue;
        }
        let first = escape_at(i)?;
        if first < 0x80 {
            if b";/?:@&=+$,#".contains(&first) {
                out.push_str(&raw[i..i + 3]);
            } else {
                out.push(first as char);
            }
            i += 3;
            continue;
        }
        let len = match first {
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf7 => 4,
            _ => return None,
        };
        let mut utf8 = vec![first];
        for k in 1..len {
            utf8.push(escape_at(i + 3 * k)?);
        }
        out.push_str(std::str::from_utf8(&utf8).ok()?);
        i += 3 * len;
    }
    Some(out)
}

fn read(raw: &str, r: Reading) -> Option<String> {
    let mut path: Vec<u8> = raw.as_bytes().to_vec();
    if r.whatwg_first {
        path = whatwg_normalize(&path);
    }
    if r.params_before_decode {
        path = strip_params(&path);
    }
    path = match r.decode {
        0 => path,
        1 => decode_once(&path),
        _ => {
            // Until stable; deeper nestings than this are not something a real
            // server decodes, so the model stops (the gate goes further).
            let mut current = path;
            for _ in 0..16 {
                let next = decode_once(&current);
                if next == current {
                    break;
                }
                current = next;
            }
            current
        }
    };
    if r.decode > 0 && r.decoded_query_ends_path {
        if let Some(end) = path.iter().position(|&b| b == b'?' || b == b'#') {
            path.truncate(end);
        }
    }
    let text = String::from_utf8_lossy(&path).into_owned();
    let text = if r.backslash {
        text.replace('\\', "/")
    } else {
        text
    };
    let mut segments: Vec<String> = text.split('/').skip(1).map(str::to_string).collect();
    for segment in &mut segments {
        if r.params_after_decode {
            if let Some(i) = segment.find(';') {
                segment.truncate(i);
            }
        }
        let junk =
            |c: char| c.is_whitespace() || c.is_control() || c == '\u{feff}' || c == '\u{200b}';
        match r.trim {
            1 => {
                let kept = segment.trim_end_matches(junk).len();
                segment.truncate(kept);
            }
            2 => *segment = segment.trim_matches(junk).to_string(),
            _ => {}
        }
    }
    let resolved: Vec<String> = match r.dots {
        0 => segments,
        1 => resolve_dots(segments.into_iter()),
        _ => resolve_dots(segments.into_iter().filter(|s| !s.is_empty())),
    };
    // Any number of empty segments (inner or trailing) is ignored by lenient
    // routers; a strict one would match the exact path, which this includes.
    let joined: String = resolved
        .iter()
        .filter(|s| !s.is_empty())
        .flat_map(|s| ["/", s.as_str()])
        .collect();
    Some(if joined.is_empty() {
        "/".into()
    } else {
        joined
    })
}

fn resolve_dots(segments: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for segment in segments {
        match segment.as_str() {
            "." => {}
            ".." => {
                out.pop();
            }
            _ => out.push(segment),
        }
    }
    out
}

/// [`whatwg_normalize`] on text (hono's `new URL()` before its `decodeURI`).
fn whatwg_normalize_str(path: &str) -> Option<String> {
    String::from_utf8(whatwg_normalize(path.as_bytes())).ok()
}

/// WHATWG URL path parsing of an origin-form path: `\` is a separator and
/// single/double dot segments (also spelled `%2e`) are resolved, RFC order.
fn whatwg_normalize(path: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(path).replace('\\', "/");
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = text.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (i, segment) in segments.iter().enumerate() {
        let lower = segment.to_ascii_lowercase();
        let single = lower == "." || lower == "%2e";
        let double = matches!(lower.as_str(), ".." | ".%2e" | "%2e." | "%2e%2e");
        if double {
            out.pop();
            if i == last {
                out.push("");
            }
        } else if single {
            if i == last {
                out.push("");
            }
        } else {
            out.push(segment);
        }
    }
    let mut result = String::new();
    for segment in out {
        result.push('/');
        result.push_str(segment);
    }
    if result.is_empty() {
        result.push('/');
    }
    result.into_bytes()
}

fn strip_params(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    let mut in_params = false;
    for &b in path {
        match b {
            b'/' => {
                in_params = false;
                out.push(b);
            }
            b';' => in_params = true,
            _ if !in_params => out.push(b),
            _ => {}
        }
    }
    out
}

fn decode_once(input: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' && i + 2 < input.len() {
            if let (Some(h), Some(l)) = (hex(input[i + 1]), hex(input[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

/// `_method=POST` (any case, form-decoded, also `_method[]`) in the query.
fn model_query_overrides_to_post(query: &str) -> bool {
    query.split(['&', ';']).any(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            let mut current = s.replace('+', " ").into_bytes();
            for _ in 0..16 {
                let next = decode_once(&current);
                if next == current {
                    break;
                }
                current = next;
            }
            String::from_utf8_lossy(&current)
                .trim()
                .to_ascii_lowercase()
        };
        let name = decode(name);
        (name == "_method" || name.starts_with("_method[")) && decode(value) == "post"
    })
}
