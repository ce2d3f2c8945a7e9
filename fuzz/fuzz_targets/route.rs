//! Route canonicalization against a model of the upstream's routing.
//!
//! Property (SPEC §1 "Path matching"): no request that the upstream could route
//! to its logout handler is forwarded by the gate. The model below is written
//! independently of `route.rs`: instead of one canonical form it tries every
//! plausible way a server stack (Express/connect on Meteor's WebApp, a WHATWG
//! `new URL()`, an nginx-style normalizer, a Tomcat-style `;params` stripper)
//! could turn the raw path it receives into a route, and says "routed" when
//! *any* of them yields `/api/v1/sessions/logout`. The gate must then answer
//! the request itself (`Route::SessionsLogout`).
//!
//! The reverse direction is pinned by the spec too: a raw path starting with
//! `//` is never the endpoint (Meteor reads it as a host), so the gate must
//! forward it.
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
    if raw_path.starts_with("//") {
        assert_ne!(
            route,
            Route::SessionsLogout,
            "a leading `//` is not the endpoint: {raw_path:?}"
        );
        return;
    }
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
    /// Trailing whitespace/control characters trimmed from segments.
    trim: bool,
    /// 0 = dots are names, 1 = RFC 3986 (empty segments count), 2 = collapse first.
    dots: u8,
}

fn readings() -> impl Iterator<Item = Reading> {
    (0u32..(2 * 2 * 3 * 2 * 2 * 2 * 2 * 3)).map(|mut n| {
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
            trim: take(2) == 1,
            dots: take(3) as u8,
        }
    })
}

fn model_routes_to_logout(raw: &str) -> bool {
    readings().any(|reading| read(raw, reading).as_deref() == Some(LOGOUT))
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
        if r.trim {
            let kept = segment
                .trim_end_matches(|c: char| {
                    c.is_whitespace() || c.is_control() || c == '\u{feff}' || c == '\u{200b}'
                })
                .len();
            segment.truncate(kept);
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
