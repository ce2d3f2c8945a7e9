//! Request classification: canonicalize the path once, in one place, and decide
//! which gate behaviour (if any) a request gets.
//!
//! Security policy (SPEC §1 "Path matching", §8, §12): the logout endpoint must
//! not be bypassable. Whenever a path *might* reach one of the upstream handlers
//! the gate classifies, it is classified (for the logout endpoint: intercepted).
//! The rule is the union of what every Rocket.Chat version routes, read from each
//! stack's source and checked against the real npm packages by `tests/routers.rs`
//! (SECURITY.md, "Routing matrix"):
//!
//! - **5.x – 7.3** (Meteor WebApp + Restivus on `connect-route` 0.1.5): the router
//!   matches `decodeURI(req.url)` cut at `?`, after stripping every leading and
//!   trailing run of `/` and JavaScript whitespace (`/^[\s\/]+|[\s\/]+$/g`), so
//!   `//api/v1/sessions/logout`, `/%20api/…` and `/%E3%80%80/api/…` reach the
//!   handler. Meteor itself only checks that the target starts with `/`.
//! - **7.4 – 7.5** (express 4 `Router()` nested `/api` → `/v1`): express routers
//!   are case-insensitive and take an optional trailing slash, so
//!   `/API/v1/SESSIONS/Logout/` reaches the handler.
//! - **7.6+** (express `.use('/api', …)` handing `req.originalUrl` to hono): WHATWG
//!   URL parsing resolves dot segments (also `%2e`) and reads `\` as `/`, then hono
//!   `decodeURI`s the path.
//!
//! Over-intercepting costs nothing (no legitimate client sends odd spellings of
//! these paths), so where the stacks differ the gate takes the wider reading:
//! ASCII case is ignored everywhere, whitespace is trimmed from both ends of every
//! segment (not only the path's ends), and every escape is decoded.
//!
//! Canonicalization, applied to `uri.path()` only (origin-form, absolute-form and
//! HTTP/2 `:path` alike; the query never matters):
//! 1. Percent-escapes are decoded until none is left (`%2574` → `%74` → `t`),
//!    `%2F` included; a literal or decoded `?`/`#` ends the path; invalid escapes
//!    stay literal. `\` counts as `/` (WHATWG URL parsing and Node's `url.parse`
//!    do so).
//! 2. Each segment loses its `;params` and the whitespace/control characters at
//!    both of its ends (a superset of JavaScript's `\s`).
//! 3. Empty segments collapse (a leading `//`, `//` inside, trailing `/`) and
//!    `.`/`..` resolve (RFC 3986 §5.2.4). Because collapsing before or after
//!    dot-resolution gives different answers for paths like `/websocket//..`,
//!    [`classify`] tries both orders and keeps the most specific route.
//! 4. Likewise for four more reading differences between server stacks: a
//!    decoded `?`/`#` ending the path or not (`/x%3F/../api/…`), `;params`
//!    cut before or after decoding (`…/logout;%2F..`), `\` as a separator
//!    or not (`/api/v1/x\y/../sessions/logout`), and no decoding at all (sockjs:
//!    `/sockjs/x/%2e%2e/websocket`). Every reading is tried; the most specific
//!    route wins (fuzz/route checks this against a model).
//! 5. The canonical path is compared with the known endpoints ignoring ASCII
//!    case (express's `Router()`; JavaScript's `/i` without `u` folds ASCII only).

use std::borrow::Cow;

use http::{HeaderMap, HeaderName, Method, Uri};

const LOGOUT_PATH: &str = "/api/v1/sessions/logout";
const LOGIN_PATH: &str = "/api/v1/login";
const USER_LOGOUT_PATH: &str = "/api/v1/logout";
const DEVICE_API_PREFIX: &str = "/api/v1/sessions/";
const SOCKJS_PREFIX: &str = "/sockjs/";
const METHOD_CALL_PREFIX: &str = "/api/v1/method.call";

/// Headers that common frameworks honour to tunnel a method through another one.
static OVERRIDE_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("x-http-method-override"),
    HeaderName::from_static("x-http-method"),
    HeaderName::from_static("x-method-override"),
];

/// What the gate does with a request; decided once per request by [`classify`].
/// Paths below are canonical (module docs): any spelling that canonicalizes to
/// them, in any ASCII case, gets the same route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /api/v1/sessions/logout` (or a method override to POST): answered by
    /// the gate, never forwarded.
    SessionsLogout,
    /// `POST /api/v1/login`: forwarded; the gate captures sessions from the answer.
    Login,
    /// `POST`, `GET` or `HEAD /api/v1/logout`: a user logging out their own
    /// session (Rocket.Chat answers all three with its logout handler).
    UserLogout,
    /// `GET /websocket` or `/sockjs/websocket` (raw DDP frames, `sockjs: false`),
    /// or `GET /sockjs/<server>/<session>/websocket` (SockJS framing, `sockjs: true`).
    Websocket { sockjs: bool },
    /// `POST /sockjs/<server>/<session>/xhr_send` or `…/jsonp_send`: DDP messages
    /// in a request body. `xhr_send` carries a JSON array of strings; `jsonp_send`
    /// carries the same array either raw or form-encoded as `d=<array>`. Extra
    /// trailing segments are not routed by sockjs-node (its patterns end in `[/]?$`),
    /// so they classify as [`Route::Other`].
    SockJsSend,
    /// The device-management endpoints under `/api/v1/sessions/` (any method).
    DeviceApi(DeviceEndpoint),
    /// `POST /api/v1/method.call/<method>` or `…/method.callAnon/<method>`:
    /// Rocket.Chat's DDP over REST. The body (`{"message":"<DDP JSON>"}`)
    /// names the method itself, whatever the path says, and may be a resume
    /// login: the gate reads it like a websocket message.
    MethodCall,
    /// Everything else: forwarded unchanged.
    Other,
}

/// The `/api/v1/sessions/<name>` endpoints other than `logout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceEndpoint {
    List,
    Info,
    LogoutMe,
    ListAll,
    InfoAdmin,
}

impl Route {
    /// Metrics label: the canonical route name, never the raw path (bounded cardinality).
    pub fn label(&self) -> &'static str {
        match self {
            Route::SessionsLogout => "sessions_logout",
            Route::Login => "login",
            Route::UserLogout => "user_logout",
            Route::Websocket { .. } => "websocket",
            Route::SockJsSend => "sockjs_send",
            Route::DeviceApi(_) => "device_api",
            Route::MethodCall => "method_call",
            Route::Other => "other",
        }
    }

    /// Preference when two canonical forms of one path disagree: the logout
    /// interception wins over everything, `Other` loses to everything. SockJS
    /// framing beats raw DDP framing: sockjs 0.3.24 matches the undecoded
    /// pathname, so `/sockjs/x/%2e%2e/websocket` is its SockJS transport even
    /// though decoding and dot resolution read `/sockjs/websocket`.
    fn precedence(&self) -> u8 {
        match self {
            Route::SessionsLogout => 8,
            Route::UserLogout => 7,
            Route::Login => 6,
            Route::MethodCall => 5,
            Route::DeviceApi(_) => 4,
            Route::SockJsSend => 3,
            Route::Websocket { sockjs: true } => 2,
            Route::Websocket { sockjs: false } => 1,
            Route::Other => 0,
        }
    }
}

/// Classify a request. Pure and cheap: a path without `%`, `;`, `\`, dot segments,
/// `//`, a trailing slash, whitespace or non-ASCII bytes is matched without
/// allocating.
pub fn classify(method: &Method, uri: &Uri, headers: &HeaderMap) -> Route {
    let forms = canonical_forms(uri.path());
    let best = |best: Route, other: Route| {
        if other.precedence() > best.precedence() {
            other
        } else {
            best
        }
    };
    let primary = classify_canonical(&forms.primary, method, uri, headers);
    let route = forms
        .alternatives
        .iter()
        .map(|alt| classify_canonical(alt, method, uri, headers))
        .fold(primary, best);
    if route != Route::Other {
        return route;
    }
    // A chat server served under a path prefix (Meteor's ROOT_URL with a
    // path: `ROOT_URL_PATH_PREFIX=/chat` strips `/chat` before any router
    // runs) routes `/chat/api/v1/sessions/logout` to the handler. The gate
    // does not know the prefix, so it reads every path also without each of
    // its leading segments: when unsure, intercept.
    std::iter::once(forms.primary.as_ref())
        .chain(forms.alternatives.iter().map(String::as_str))
        .flat_map(|form| {
            form.match_indices('/')
                .skip(1)
                .map(move |(at, _)| form.get(at..).unwrap_or_default())
        })
        .map(|suffix| classify_canonical(suffix, method, uri, headers))
        .fold(Route::Other, best)
}

/// The canonical form of a raw request path (see the module docs). Its ASCII case
/// is kept: [`classify`] compares it with the endpoints ignoring case.
///
/// Always `Some` since SPEC §12: no raw path is exempt from canonicalization any
/// more (a leading `//` used to be). The `Option` stays for API stability.
///
/// [`classify`] also considers other readings of the same path (see `Forms`);
/// this function returns the primary one only.
pub fn canonical_path(raw_path: &str) -> Option<String> {
    Some(canonical_forms(raw_path).primary.into_owned())
}

/// The canonical spellings of a path: one per plausible upstream reading.
struct Forms<'a> {
    /// Decoded `?`/`#` end the path, `;params` cut after decoding, empty
    /// segments collapsed before `.`/`..` are resolved (nginx `merge_slashes`).
    primary: Cow<'a, str>,
    /// The other readings, only where they differ from `primary`:
    /// - RFC 3986 §5.2.4 / WHATWG order (`/a//..` → `/a`);
    /// - a decoded `?`/`#` kept as a character: a WHATWG-style parser resolves
    ///   `..` before decoding, so `/x%3F/../api/…` is `/api/…` there;
    /// - `;params` cut from the raw segment before decoding (Tomcat-style), so
    ///   an encoded slash inside them never becomes a separator;
    /// - `\` as an ordinary character: Node's legacy `url.parse` and WHATWG
    ///   read it as `/`, other stacks do not (`/a\b/../logout`);
    /// - nothing decoded: sockjs matches the raw pathname, so
    ///   `/sockjs/x/%2e%2e/websocket` is its SockJS transport.
    alternatives: Vec<String>,
}

fn canonical_forms(raw: &str) -> Forms<'_> {
    if is_already_canonical(raw) {
        return Forms {
            primary: Cow::Borrowed(raw),
            alternatives: Vec::new(),
        };
    }
    let escapes = raw.contains('%');
    let params = raw.contains(';');
    let backslashes = raw.contains('\\') || raw.contains("%5C") || raw.contains("%5c");
    let mut forms: Vec<String> = Vec::with_capacity(2);
    // The raw path, then (only where they can differ) the path with `;params`
    // cut before decoding, params ending at `/` or `\`, or at `/` only.
    // Each also after WHATWG path parsing, which resolves dot segments (and
    // turns `\` into `/`) before anything is decoded.
    let mut bases: Vec<Cow<'_, str>> = vec![Cow::Borrowed(raw)];
    if raw.contains('.') || raw.contains("%2") {
        let whatwg = whatwg_resolve(raw);
        if whatwg != raw {
            bases.push(Cow::Owned(whatwg));
        }
    }
    let mut sources: Vec<Cow<'_, str>> = Vec::with_capacity(bases.len() * 3);
    for base in bases {
        let mut variants: Vec<String> = Vec::new();
        if params && escapes {
            variants.push(strip_raw_params(&base, &['/', '\\']));
            if backslashes {
                variants.push(strip_raw_params(&base, &['/']));
            }
        }
        sources.push(base);
        sources.extend(variants.into_iter().map(Cow::Owned));
    }
    let readings = sources.iter().flat_map(|source| {
        [Decoding::QueryEndsPath, Decoding::Full, Decoding::None]
            .into_iter()
            .flat_map(move |decoding| {
                [true, false]
                    .into_iter()
                    .map(move |backslash_separates| (source, decoding, backslash_separates))
            })
    });
    for (source, decoding, backslash_separates) in readings {
        if (decoding != Decoding::QueryEndsPath && !escapes)
            || (!backslash_separates && !backslashes)
        {
            continue;
        }
        let decoded = match decoding {
            Decoding::QueryEndsPath => percent_decode_fully(source.as_bytes(), true),
            Decoding::Full => percent_decode_fully(source.as_bytes(), false),
            Decoding::None => source.as_bytes().to_vec(),
        };
        let text = String::from_utf8_lossy(&decoded);
        let separators: &[char] = if backslash_separates {
            &['/', '\\']
        } else {
            &['/']
        };
        let mut segments: Vec<&str> = text.split(separators).map(clean_segment).collect();
        // The part before the first slash is the root, not a segment; a path
        // that does not start with a slash is treated as if it did. Further
        // empty segments (`//api`, `/%20/api` once trimmed) are what
        // connect-route strips at the front: they collapse in `resolve`.
        if segments.first().is_some_and(|first| first.is_empty()) {
            segments.remove(0);
        }
        let mixes_dots_and_empties =
            segments.contains(&"..") && segments.iter().any(|segment| segment.is_empty());
        for collapse_first in [true, false] {
            if !collapse_first && !mixes_dots_and_empties {
                continue;
            }
            let form = resolve(&segments, collapse_first);
            if !forms.contains(&form) {
                forms.push(form);
            }
        }
    }
    let mut forms = forms.into_iter();
    let primary = forms.next().unwrap_or_else(|| "/".to_string());
    Forms {
        primary: Cow::Owned(primary),
        alternatives: forms.collect(),
    }
}

/// How much of a path a reading percent-decodes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Decoding {
    /// Until no escape is left; a decoded `?`/`#` ends the path.
    QueryEndsPath,
    /// Until no escape is left; a decoded `?`/`#` is an ordinary character.
    Full,
    /// Not at all: express, sockjs and connect-route match (mostly) undecoded
    /// paths, so `%2e%2e` there is a name, not a dot segment.
    None,
}

/// WHATWG URL path parsing of a raw path (no decoding): `\` is a separator and
/// `.`/`..` segments, also spelled `%2e`, are resolved (RFC 3986 order).
fn whatwg_resolve(raw: &str) -> String {
    let unified = raw.replace('\\', "/");
    let segments: Vec<&str> = unified.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    for (i, segment) in segments.iter().enumerate() {
        let single = segment.eq_ignore_ascii_case(".") || segment.eq_ignore_ascii_case("%2e");
        let double = ["..", ".%2e", "%2e.", "%2e%2e"]
            .iter()
            .any(|dots| segment.eq_ignore_ascii_case(dots));
        if double {
            out.pop();
        }
        if single || double {
            // A trailing dot segment leaves a trailing slash.
            if i == last {
                out.push("");
            }
        } else {
            out.push(segment);
        }
    }
    let mut path = String::with_capacity(raw.len());
    for segment in out {
        path.push('/');
        path.push_str(segment);
    }
    if path.is_empty() {
        path.push('/');
    }
    path
}

/// Cut `;params` from every raw segment, up to the next of `separators`.
fn strip_raw_params(raw: &str, separators: &[char]) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut in_params = false;
    for c in raw.chars() {
        if separators.contains(&c) {
            in_params = false;
            out.push(c);
        } else if c == ';' {
            in_params = true;
        } else if !in_params {
            out.push(c);
        }
    }
    out
}

/// Fast pre-check for the common case: nothing to decode, strip or resolve.
fn is_already_canonical(raw: &str) -> bool {
    if raw == "/" {
        return true;
    }
    let Some(rest) = raw.strip_prefix('/') else {
        return false;
    };
    let plain_bytes = rest
        .bytes()
        .all(|b| !matches!(b, b'%' | b';' | b'\\' | b'?' | b'#') && b > b' ' && b < 0x7f);
    plain_bytes
        && rest
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..")
}

/// Decode `%XX` escapes until none is left, in one linear pass.
///
/// Decoding into a stack and re-checking its tail after every byte reaches the same
/// result as decoding the whole string again and again (escapes cannot overlap, so
/// the order of decoding does not matter), but in O(n) instead of O(n²) for inputs
/// like `%25252525…74`. With `path` set, a literal or decoded `?`/`#` ends the input:
/// whatever follows is a query or fragment, not path.
fn percent_decode_fully(input: &[u8], path: bool) -> Vec<u8> {
    let ends_path = |b: u8| path && (b == b'?' || b == b'#');
    let mut out = Vec::with_capacity(input.len());
    for &byte in input {
        if ends_path(byte) {
            break;
        }
        out.push(byte);
        while let Some(decoded) = trailing_escape(&out) {
            out.truncate(out.len().saturating_sub(3));
            if ends_path(decoded) {
                return out;
            }
            out.push(decoded);
        }
    }
    out
}

/// The byte a buffer's last three bytes encode, if they are a valid `%XX` escape.
fn trailing_escape(buf: &[u8]) -> Option<u8> {
    match buf {
        [.., b'%', high, low] => Some((hex_value(*high)? << 4) | hex_value(*low)?),
        _ => None,
    }
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Drop `;params` and the whitespace/control characters at both ends of one
/// segment. connect-route strips JavaScript whitespace (`\s`) at both ends of the
/// whole decoded path (`/%20api/…`, `…/logout%E3%80%80`); trimming every
/// segment's ends is wider and costs nothing.
fn clean_segment(segment: &str) -> &str {
    let without_params = segment.split_once(';').map_or(segment, |(head, _)| head);
    without_params.trim_matches(is_junk)
}

/// Whitespace in the widest sense: Unicode White_Space (which holds all of
/// JavaScript's `\s` but U+FEFF), controls (NUL, CR, LF, …), and the zero-width
/// characters JavaScript's `trim` or sloppy clients leave behind.
fn is_junk(c: char) -> bool {
    c.is_whitespace() || c.is_control() || c == '\u{feff}' || c == '\u{200b}'
}

/// Resolve `.`/`..` (RFC 3986 §5.2.4) and join the segments into an absolute path.
/// `collapse_first` drops empty segments before resolving; otherwise they count as
/// segments for `..` and are dropped afterwards.
fn resolve(segments: &[&str], collapse_first: bool) -> String {
    let mut stack: Vec<&str> = Vec::with_capacity(segments.len());
    for &segment in segments {
        match segment {
            "." => {}
            ".." => {
                stack.pop();
            }
            "" if collapse_first => {}
            other => stack.push(other),
        }
    }
    let mut path = String::with_capacity(segments.iter().map(|s| s.len() + 1).sum());
    for segment in stack.iter().filter(|segment| !segment.is_empty()) {
        path.push('/');
        path.push_str(segment);
    }
    if path.is_empty() {
        path.push('/');
    }
    path
}

fn classify_canonical(path: &str, method: &Method, uri: &Uri, headers: &HeaderMap) -> Route {
    let post_only = |route: Route| {
        if is_effective_post(method, uri, headers) {
            route
        } else {
            Route::Other
        }
    };
    let is = |endpoint: &str| path.eq_ignore_ascii_case(endpoint);
    if is(LOGOUT_PATH) {
        post_only(Route::SessionsLogout)
    } else if is(LOGIN_PATH) {
        post_only(Route::Login)
    } else if is(USER_LOGOUT_PATH) {
        // Rocket.Chat's `_initAuth` registers `logout` for GET and POST (a
        // Restivus leftover kept through 7.x); express and hono also answer
        // HEAD with the GET handler, which logs the caller out all the same.
        if is_method(method, "GET") || is_method(method, "HEAD") {
            Route::UserLogout
        } else {
            post_only(Route::UserLogout)
        }
    } else if is("/websocket") || is("/sockjs/websocket") {
        // Meteor rewrites `/websocket` (and `/websocket/`) to sockjs-node's raw
        // endpoint `/sockjs/websocket` (ddp-server/stream_server.js).
        if is_method(method, "GET") {
            Route::Websocket { sockjs: false }
        } else {
            Route::Other
        }
    } else if let Some(name) = strip_prefix_ignore_case(path, DEVICE_API_PREFIX) {
        device_endpoint(name).map_or(Route::Other, Route::DeviceApi)
    } else if let Some(rest) = strip_prefix_ignore_case(path, SOCKJS_PREFIX) {
        classify_sockjs(rest, method)
    } else if let Some(rest) = strip_prefix_ignore_case(path, METHOD_CALL_PREFIX) {
        // `method.call/:method` and `method.callAnon/:method`: one segment.
        let rest = strip_prefix_ignore_case(rest, "Anon").unwrap_or(rest);
        match rest.strip_prefix('/') {
            Some(name) if !name.is_empty() && !name.contains('/') => post_only(Route::MethodCall),
            _ => Route::Other,
        }
    } else {
        Route::Other
    }
}

/// `path` without `prefix`, compared ignoring ASCII case.
fn strip_prefix_ignore_case<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let head = path.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        path.get(prefix.len()..)
    } else {
        None
    }
}

/// The request method is `name`, any case (intercepting a lowercase `get` costs
/// nothing; Node itself refuses it).
fn is_method(method: &Method, name: &str) -> bool {
    method.as_str().eq_ignore_ascii_case(name)
}

fn device_endpoint(name: &str) -> Option<DeviceEndpoint> {
    const ENDPOINTS: [(&str, DeviceEndpoint); 5] = [
        ("list", DeviceEndpoint::List),
        ("info", DeviceEndpoint::Info),
        ("logout.me", DeviceEndpoint::LogoutMe),
        ("list.all", DeviceEndpoint::ListAll),
        ("info.admin", DeviceEndpoint::InfoAdmin),
    ];
    ENDPOINTS
        .iter()
        .find(|(known, _)| name.eq_ignore_ascii_case(known))
        .map(|&(_, endpoint)| endpoint)
}

/// `<server>/<session>/<transport>` after the `/sockjs/` prefix. Canonical paths
/// have no empty segments, so three parts means exactly three non-empty segments.
/// sockjs 0.3.24 matches `^/sockjs/([^/.]+)/([^/.]+)/<transport>[/]?$` on the
/// undecoded `url.parse` pathname; the canonical path is wider.
fn classify_sockjs(rest: &str, method: &Method) -> Route {
    let mut parts = rest.split('/');
    let (Some(_server), Some(_session), Some(transport), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::Other;
    };
    let is = |name: &str| transport.eq_ignore_ascii_case(name);
    if is("websocket") && is_method(method, "GET") {
        Route::Websocket { sockjs: true }
    } else if (is("xhr_send") || is("jsonp_send")) && is_method(method, "POST") {
        Route::SockJsSend
    } else {
        Route::Other
    }
}

/// POST, or any method carrying an override to POST (SPEC §8). A POST that carries
/// an override to another method stays a POST: when unsure, intercept. The method
/// is compared ignoring case because intercepting a lowercase `post` costs nothing.
fn is_effective_post(method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
    is_method(method, "POST")
        || OVERRIDE_HEADERS.iter().any(|name| {
            headers
                .get_all(name)
                .iter()
                .any(|value| header_names_post(value.as_bytes()))
        })
        || uri.query().is_some_and(query_overrides_to_post)
}

/// A header value (or any comma-separated item of it) equal to POST, any case.
fn header_names_post(value: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|item| item.trim_ascii().eq_ignore_ascii_case(b"POST"))
}

/// A `_method` query parameter (name any case, also `_method[]`-style array keys)
/// whose value decodes to POST, any case.
fn query_overrides_to_post(query: &str) -> bool {
    query.split(['&', ';']).any(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode_query_component(name);
        let name = name.trim_ascii();
        let is_method_param = name.eq_ignore_ascii_case(b"_method")
            || name
                .get(..8)
                .is_some_and(|head| head.eq_ignore_ascii_case(b"_method["));
        is_method_param
            && decode_query_component(value)
                .trim_ascii()
                .eq_ignore_ascii_case(b"POST")
    })
}

/// Form-style decoding (`+` is a space), repeated until stable like the path.
fn decode_query_component(component: &str) -> Vec<u8> {
    let spaced: Vec<u8> = component
        .bytes()
        .map(|b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_decode_fully(&spaced, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use proptest::prelude::*;

    fn classify_str(method: Method, uri: &str) -> Route {
        let uri: Uri = uri.parse().expect("test URI parses");
        classify(&method, &uri, &HeaderMap::new())
    }

    fn with_header(method: Method, uri: &str, name: &'static str, value: &str) -> Route {
        let uri: Uri = uri.parse().expect("test URI parses");
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).expect("test header value"),
        );
        classify(&method, &uri, &headers)
    }

    fn post(uri: &str) -> Route {
        classify_str(Method::POST, uri)
    }

    // --- SPEC §1 "Path matching" ---

    #[test]
    fn exact_logout_post_is_intercepted() {
        assert_eq!(post("/api/v1/sessions/logout"), Route::SessionsLogout);
    }

    #[test]
    fn percent_encoded_letter_is_intercepted() {
        assert_eq!(post("/api/v1/sessions/logou%74"), Route::SessionsLogout);
        assert_eq!(post("/%61pi/v1/%73essions/logout"), Route::SessionsLogout);
    }

    #[test]
    fn double_encoded_letter_is_intercepted() {
        assert_eq!(post("/api/v1/sessions/logou%2574"), Route::SessionsLogout);
        assert_eq!(post("/api/v1/sessions/logou%252574"), Route::SessionsLogout);
    }

    #[test]
    fn escape_split_by_another_escape_is_intercepted() {
        // `%%37%34` → `%74` → `t`
        assert_eq!(post("/api/v1/sessions/logou%%37%34"), Route::SessionsLogout);
    }

    #[test]
    fn trailing_slashes_are_intercepted() {
        assert_eq!(post("/api/v1/sessions/logout/"), Route::SessionsLogout);
        assert_eq!(post("/api/v1/sessions/logout//"), Route::SessionsLogout);
        assert_eq!(
            post("/api/v1/sessions/logout///%2F/"),
            Route::SessionsLogout
        );
    }

    #[test]
    fn trailing_whitespace_is_intercepted() {
        for tail in [
            "%20",
            "%09",
            "%0D%0A",
            "%00",
            "%C2%A0",
            "%E3%80%80",
            "%EF%BB%BF",
            "%20/%20/",
            "%2520",
        ] {
            let path = format!("/api/v1/sessions/logout{tail}");
            assert_eq!(post(&path), Route::SessionsLogout, "{path}");
        }
    }

    #[test]
    fn query_string_does_not_matter() {
        assert_eq!(post("/api/v1/sessions/logout?x=1"), Route::SessionsLogout);
        assert_eq!(post("/api/v1/sessions/logout/?"), Route::SessionsLogout);
    }

    #[test]
    fn decoded_question_mark_ends_the_path() {
        assert_eq!(post("/api/v1/sessions/logout%3Fx=1"), Route::SessionsLogout);
        assert_eq!(
            post("/api/v1/sessions/logout%23frag"),
            Route::SessionsLogout
        );
    }

    #[test]
    fn absolute_form_target_is_intercepted() {
        assert_eq!(
            post("http://host/api/v1/sessions/logout"),
            Route::SessionsLogout
        );
        assert_eq!(
            post("https://host:8443/api/v1/sessions/logou%74/?a=b"),
            Route::SessionsLogout
        );
    }

    #[test]
    fn http2_path_pseudo_header_is_intercepted() {
        // hyper builds an HTTP/2 request URI from :scheme, :authority and :path.
        let uri = Uri::builder()
            .scheme("https")
            .authority("chat.example")
            .path_and_query("/api/v1/sessions/logout/")
            .build()
            .expect("valid parts");
        assert_eq!(
            classify(&Method::POST, &uri, &HeaderMap::new()),
            Route::SessionsLogout
        );
    }

    /// JavaScript's `\s`, which connect-route strips from both ends of the path.
    const JS_WHITESPACE: [char; 25] = [
        '\t', '\n', '\u{b}', '\u{c}', '\r', ' ', '\u{a0}', '\u{1680}', '\u{2000}', '\u{2001}',
        '\u{2002}', '\u{2003}', '\u{2004}', '\u{2005}', '\u{2006}', '\u{2007}', '\u{2008}',
        '\u{2009}', '\u{200a}', '\u{2028}', '\u{2029}', '\u{202f}', '\u{205f}', '\u{3000}',
        '\u{feff}',
    ];

    fn utf8_escaped(c: char) -> String {
        let mut buf = [0u8; 4];
        c.encode_utf8(&mut buf)
            .bytes()
            .map(|b| format!("%{b:02X}"))
            .collect()
    }

    // --- SPEC §12: what Rocket.Chat's real routers route ---

    #[test]
    fn leading_slashes_are_intercepted() {
        // connect-route (5.x–7.3) strips leading `/` runs: issue #13, class 1.
        for path in [
            "//api/v1/sessions/logout",
            "///api/v1/sessions/logout",
            "//api/v1/sessions/logout?x=1",
            "http://host//api/v1/sessions/logout",
        ] {
            assert_eq!(post(path), Route::SessionsLogout, "{path}");
        }
        assert_eq!(
            canonical_path("//api/v1/sessions/logout").as_deref(),
            Some(LOGOUT_PATH)
        );
    }

    #[test]
    fn javascript_whitespace_glued_to_the_front_is_intercepted() {
        // connect-route strips `^[\s\/]+` after decodeURI: issue #13, class 2.
        for c in JS_WHITESPACE {
            let escaped = utf8_escaped(c);
            for path in [
                format!("/{escaped}api/v1/sessions/logout"),
                format!("/{escaped}/{escaped}api/v1/sessions/logout"),
                format!("/{escaped}/api/v1/sessions/logout{escaped}"),
            ] {
                assert_eq!(post(&path), Route::SessionsLogout, "{path}");
            }
        }
        for path in [
            "/%20api/v1/sessions/logout",
            "/%09api/v1/sessions/logout",
            "/%C2%A0api/v1/sessions/logout",
            "/%E3%80%80api/v1/sessions/logout",
            "/%EF%BB%BFapi/v1/sessions/logout",
            "/%20/%20api/v1/sessions/logout",
            "/%2520api/v1/sessions/logout",
        ] {
            assert_eq!(post(path), Route::SessionsLogout, "{path}");
        }
    }

    #[test]
    fn whitespace_at_either_end_of_any_segment_is_intercepted() {
        // Wider than connect-route (which trims only the path's ends): no
        // router needs it, the gate takes it anyway.
        for path in [
            "/api/%20v1/sessions/logout",
            "/api/v1%09/sessions/logout",
            "/api/v1/%E2%80%A8sessions%E3%80%80/logout",
            "/api/v1/sessions/%C2%A0logout",
        ] {
            assert_eq!(post(path), Route::SessionsLogout, "{path}");
        }
    }

    #[test]
    fn ascii_case_changes_are_intercepted() {
        // express `Router()` (7.4–7.5) is case-insensitive: issue #13, class 3.
        for path in [
            "/API/v1/sessions/logout",
            "/api/V1/sessions/logout",
            "/api/v1/sessions/Logout",
            "/api/V1/SESSIONS/LOGOUT/",
            "/api/v1/sessions/logou%54",
            "/Api/V1/Sessions/LogOut?x=1",
        ] {
            assert_eq!(post(path), Route::SessionsLogout, "{path}");
        }
        assert_eq!(post("/API/V1/LOGIN"), Route::Login);
        assert_eq!(post("/api/v1/LogOut"), Route::UserLogout);
        assert_eq!(
            classify_str(Method::GET, "/api/v1/Sessions/List.All"),
            Route::DeviceApi(DeviceEndpoint::ListAll)
        );
        assert_eq!(
            classify_str(Method::GET, "/SockJS/WebSocket"),
            Route::Websocket { sockjs: false }
        );
        assert_eq!(post("/sockjs/1/a/XHR_SEND"), Route::SockJsSend);
    }

    #[test]
    fn non_ascii_look_alikes_are_not_the_endpoint() {
        // No router folds these to ASCII: full-width letters, the Kelvin sign
        // (U+212A, which Unicode lowercases to `k`), overlong UTF-8.
        for path in [
            "/api/v1/sessions/logou%EF%BD%94",
            "/api/v1/sessions/lo%E2%84%AAout",
            "/api/v1/sessions/logou%C1%B4",
        ] {
            assert_eq!(post(path), Route::Other, "{path}");
        }
    }

    #[test]
    fn whatwg_spellings_are_intercepted() {
        // hono behind express (7.6+) parses `req.originalUrl` as a WHATWG URL.
        for path in [
            "/api/v1/x/../sessions/logout",
            "/api/v1/x/%2e%2e/sessions/logout",
            "/api/v1/sessions/./logout",
            "/api\\v1\\sessions\\logout",
        ] {
            assert_eq!(post(path), Route::SessionsLogout, "{path}");
        }
    }

    #[test]
    fn non_post_methods_are_forwarded() {
        for method in [
            Method::GET,
            Method::PUT,
            Method::DELETE,
            Method::HEAD,
            Method::OPTIONS,
        ] {
            assert_eq!(
                classify_str(method, "/api/v1/sessions/logout"),
                Route::Other
            );
        }
    }

    #[test]
    fn lowercase_post_method_is_intercepted() {
        let method = Method::from_bytes(b"post").expect("extension method");
        assert_eq!(
            classify_str(method, "/api/v1/sessions/logout"),
            Route::SessionsLogout
        );
    }

    // --- SPEC §8 ---

    #[test]
    fn semicolon_params_are_intercepted() {
        assert_eq!(post("/api/v1/sessions/logout;x=1"), Route::SessionsLogout);
        assert_eq!(post("/api;a/v1;b/sessions/logout;"), Route::SessionsLogout);
        assert_eq!(
            post("/api/v1/sessions/logout%3Bjsessionid=1"),
            Route::SessionsLogout
        );
    }

    #[test]
    fn encoded_slashes_are_intercepted() {
        assert_eq!(post("/api%2Fv1%2fsessions%2Flogout"), Route::SessionsLogout);
        assert_eq!(post("/api/v1/sessions%252Flogout"), Route::SessionsLogout);
        // Decoded leading `//` is not the literal `//` the spec exempts: intercept.
        assert_eq!(post("/%2Fapi/v1/sessions/logout"), Route::SessionsLogout);
    }

    #[test]
    fn dot_segments_are_intercepted() {
        assert_eq!(post("/api/v1/./sessions/logout"), Route::SessionsLogout);
        assert_eq!(post("/api/v1/x/../sessions/logout"), Route::SessionsLogout);
        assert_eq!(post("/../api/v1/sessions/logout"), Route::SessionsLogout);
        assert_eq!(post("/api/v1/sessions/logout/."), Route::SessionsLogout);
        assert_eq!(post("/api/v1/sessions/logout/x/.."), Route::SessionsLogout);
        assert_eq!(
            post("/api/v1/%2e/sessions/x/%2E%2E/logout"),
            Route::SessionsLogout
        );
        assert_eq!(
            post("/api/v1/sessions/x/..;y/logout"),
            Route::SessionsLogout
        );
    }

    #[test]
    fn both_dot_resolution_orders_are_intercepted() {
        // Collapse-first: `/api/v1/sessions/logout`.
        assert_eq!(post("/api/v1/sessions/x//../logout"), Route::SessionsLogout);
        // RFC 3986 order (the `..` removes the empty segment): `/api/v1/sessions/logout`.
        assert_eq!(post("/api/v1/sessions/logout//.."), Route::SessionsLogout);
        // A segment that trims to nothing counts as empty for the RFC order too.
        assert_eq!(
            post("/api/v1/sessions/logout/%20/.."),
            Route::SessionsLogout
        );
        assert_eq!(post("/api/v1/sessions/logout/;x/.."), Route::SessionsLogout);
        assert_eq!(
            canonical_path("/api/v1/sessions/logout//.."),
            Some("/api/v1/sessions".into())
        );
    }

    #[test]
    fn encoded_query_marker_inside_a_dot_segment_is_intercepted() {
        // Found by fuzz/route: a WHATWG-style upstream resolves `..` before
        // decoding, so `%3F`/`%23` in a removed segment does not end the path.
        for path in [
            "/x%3F/../api/v1/sessions/logout",
            "/x%23/../api/v1/sessions/logout",
            "/x%253F/../api/v1/sessions/logout",
            "/api/v1/sessions/logout/x%3F/..",
        ] {
            assert_eq!(post(path), Route::SessionsLogout, "{path}");
        }
        // A decoded `?` still ends the path for the primary reading.
        assert_eq!(post("/api/v1/sessions/logout%3Fx=1"), Route::SessionsLogout);
    }

    #[test]
    fn params_cut_before_decoding_are_intercepted() {
        // Found by fuzz/route: a Tomcat-style upstream cuts `;params` from the
        // raw segment, so an encoded slash inside them never becomes a segment.
        for path in [
            "/api/v1/sessions/logout;%2F..",
            "/api/v1/sessions/logout;x%2F..%2F..",
            "/api/v1/sessions/x;%2F../../logout",
        ] {
            assert_eq!(post(path), Route::SessionsLogout, "{path}");
        }
    }

    #[test]
    fn backslash_as_an_ordinary_character_is_intercepted_too() {
        // Found by fuzz/route: a stack that does not split on `\` resolves the
        // `..` against the whole `x\y` segment.
        for path in [
            "/api/v1/xZ\\ZZZ/../sessions/logout;a/",
            "/api/v1/sessions/x\\y/../logout",
            "/api/v1/sessions/x%5Cy/../logout",
        ] {
            assert_eq!(post(path), Route::SessionsLogout, "{path}");
        }
    }

    #[test]
    fn params_cut_up_to_a_slash_only_are_intercepted_too() {
        // Found by fuzz/route: params cut before decoding, ending at `/` only
        // (a `\` inside them is part of the params), then `%5c` decoded to a
        // separator: `logout\` → `logout/`.
        assert_eq!(
            post("/api/v1/Ca0oi/../sessions/logout%5c;a_met]\\]]hod[&mm3"),
            Route::SessionsLogout
        );
        // And the WHATWG-first order: `\` is a separator, then params are cut.
        assert_eq!(
            post("/api/v1/sessions/a;x%00\\..\\logout"),
            Route::SessionsLogout
        );
    }

    #[test]
    fn dots_resolved_before_decoding_are_intercepted_too() {
        // Found by fuzz/route: WHATWG resolves `..` against the raw segment
        // `x%5c|||`, then a decoded `%5c` and a `;params` cut make the endpoint.
        assert_eq!(
            post("/api/v1/x%5c|||/../sessions/logout%5c;a=b4"),
            Route::SessionsLogout
        );
    }

    #[test]
    fn backslash_counts_as_slash() {
        assert_eq!(post("/api\\v1\\sessions\\logout"), Route::SessionsLogout);
        assert_eq!(post("/api/v1/sessions/logout%5C"), Route::SessionsLogout);
    }

    #[test]
    fn duplicate_inner_slashes_are_intercepted() {
        assert_eq!(post("/api/v1//sessions/logout"), Route::SessionsLogout);
        assert_eq!(post("/api///v1/sessions//logout"), Route::SessionsLogout);
    }

    #[test]
    fn override_headers_to_post_are_intercepted() {
        for name in [
            "x-http-method-override",
            "x-http-method",
            "x-method-override",
        ] {
            for value in ["POST", "post", " PoSt ", "GET, POST"] {
                assert_eq!(
                    with_header(Method::GET, "/api/v1/sessions/logout", name, value),
                    Route::SessionsLogout,
                    "{name}: {value}"
                );
            }
            assert_eq!(
                with_header(Method::PUT, "/api/v1/sessions/logout", name, "DELETE"),
                Route::Other
            );
        }
    }

    #[test]
    fn post_with_override_to_other_method_is_still_intercepted() {
        assert_eq!(
            with_header(
                Method::POST,
                "/api/v1/sessions/logout",
                "x-http-method-override",
                "GET"
            ),
            Route::SessionsLogout
        );
    }

    #[test]
    fn method_query_parameter_to_post_is_intercepted() {
        for query in [
            "_method=POST",
            "_method=post",
            "x=1&_METHOD=Post",
            "_method=%50OST",
            "_method=%2550OST",
            "%5Fmethod=POST",
            "_method[]=POST",
            "_method=+POST+",
            "a=1;_method=POST",
        ] {
            let uri = format!("/api/v1/sessions/logout?{query}");
            assert_eq!(
                classify_str(Method::GET, &uri),
                Route::SessionsLogout,
                "{query}"
            );
        }
        assert_eq!(
            classify_str(Method::GET, "/api/v1/sessions/logout?_method=GET"),
            Route::Other
        );
        assert_eq!(
            classify_str(Method::GET, "/api/v1/sessions/logout?method=POST"),
            Route::Other
        );
    }

    #[test]
    fn override_only_matters_on_the_logout_path() {
        assert_eq!(
            with_header(Method::GET, "/api/v1/me", "x-http-method-override", "POST"),
            Route::Other
        );
    }

    // --- other routes ---

    #[test]
    fn login_needs_post() {
        assert_eq!(post("/api/v1/login"), Route::Login);
        assert_eq!(post("/api/v1/logi%6E/"), Route::Login);
        assert_eq!(classify_str(Method::GET, "/api/v1/login"), Route::Other);
    }

    #[test]
    fn user_logout_is_get_head_or_post() {
        // Rocket.Chat's `_initAuth` answers GET and POST with its logout
        // handler; express and hono route HEAD to the GET handler.
        for method in [Method::POST, Method::GET, Method::HEAD] {
            assert_eq!(
                classify_str(method.clone(), "/api/v1/logout"),
                Route::UserLogout,
                "{method}"
            );
        }
        for method in [Method::PUT, Method::DELETE, Method::OPTIONS, Method::PATCH] {
            assert_eq!(
                classify_str(method.clone(), "/api/v1/logout"),
                Route::Other,
                "{method}"
            );
        }
        assert_eq!(
            with_header(
                Method::PUT,
                "/api/v1/logout",
                "x-http-method-override",
                "POST"
            ),
            Route::UserLogout
        );
    }

    #[test]
    fn device_api_endpoints_match_any_method() {
        let cases = [
            ("list", DeviceEndpoint::List),
            ("info", DeviceEndpoint::Info),
            ("logout.me", DeviceEndpoint::LogoutMe),
            ("list.all", DeviceEndpoint::ListAll),
            ("info.admin", DeviceEndpoint::InfoAdmin),
        ];
        for (name, endpoint) in cases {
            let uri = format!("/api/v1/sessions/{name}?count=10");
            assert_eq!(classify_str(Method::GET, &uri), Route::DeviceApi(endpoint));
            assert_eq!(post(&uri), Route::DeviceApi(endpoint));
        }
        assert_eq!(
            classify_str(Method::GET, "/api/v1/sessions/other"),
            Route::Other
        );
    }

    #[test]
    fn websocket_endpoints_need_get() {
        let get = |uri| classify_str(Method::GET, uri);
        assert_eq!(get("/websocket"), Route::Websocket { sockjs: false });
        assert_eq!(get("/websocket/?x=1"), Route::Websocket { sockjs: false });
        assert_eq!(get("/sockjs/websocket"), Route::Websocket { sockjs: false });
        assert_eq!(
            get("/sockjs/123/abcd/websocket"),
            Route::Websocket { sockjs: true }
        );
        assert_eq!(get("/websocket//.."), Route::Websocket { sockjs: false });
        // sockjs matches the undecoded pathname: `%2e%2e` is a session id there.
        assert_eq!(
            get("/sockjs/zz/%2e%2e/websocket"),
            Route::Websocket { sockjs: true }
        );
        assert_eq!(post("/websocket"), Route::Other);
        assert_eq!(get("/sockjs/1/websocket/x"), Route::Other);
    }

    #[test]
    fn sockjs_send_needs_post_and_exact_shape() {
        assert_eq!(post("/sockjs/123/abcd/xhr_send"), Route::SockJsSend);
        assert_eq!(post("/sockjs/123/abcd/xhr_send/"), Route::SockJsSend);
        assert_eq!(post("/sockjs/123/abcd/xhr_sen%64"), Route::SockJsSend);
        assert_eq!(post("/sockjs/123/abcd/jsonp_send"), Route::SockJsSend);
        assert_eq!(
            classify_str(Method::GET, "/sockjs/123/abcd/xhr_send"),
            Route::Other
        );
        assert_eq!(post("/sockjs/123/abcd/xhr_send/extra"), Route::Other);
        assert_eq!(post("/sockjs/abcd/xhr_send"), Route::Other);
        assert_eq!(post("/sockjs/123/abcd/xhr"), Route::Other);
    }

    #[test]
    fn paths_under_a_prefix_are_read_without_it() {
        // Rocket.Chat behind ROOT_URL=https://host/chat serves the API under /chat.
        assert_eq!(post("/chat/api/v1/sessions/logout"), Route::SessionsLogout);
        assert_eq!(
            post("/a/b/API/v1/sessions/logou%74/"),
            Route::SessionsLogout
        );
        assert_eq!(post("/chat//api/v1/sessions/logout"), Route::SessionsLogout);
        assert_eq!(post("/chat/api/v1/login"), Route::Login);
        assert_eq!(post("/chat/sockjs/1/abc/xhr_send"), Route::SockJsSend);
        assert_eq!(
            post("/chat/api/v1/method.callAnon/login"),
            Route::MethodCall
        );
        assert_eq!(
            classify_str(Method::GET, "/chat/websocket"),
            Route::Websocket { sockjs: false }
        );
        // Only whole leading segments go: a longer last segment is not the endpoint.
        assert_eq!(post("/chat/api/v1/sessions/logoutx"), Route::Other);
        assert_eq!(post("/chatapi/v1/sessions/logout"), Route::Other);
        assert_eq!(
            classify_str(Method::GET, "/chat/api/v1/sessions/logout"),
            Route::Other
        );
    }

    #[test]
    fn rest_method_calls_need_post_and_one_method_segment() {
        for path in [
            "/api/v1/method.call/login",
            "/api/v1/method.callAnon/login",
            "/API/v1/method.callanon/sendMessage/",
            "//api/v1/method.call/anything",
        ] {
            assert_eq!(post(path), Route::MethodCall, "{path}");
        }
        assert_eq!(
            classify_str(Method::GET, "/api/v1/method.call/login"),
            Route::Other
        );
        assert_eq!(post("/api/v1/method.call"), Route::Other);
        assert_eq!(post("/api/v1/method.call/a/b"), Route::Other);
        assert_eq!(post("/api/v1/method.callX/login"), Route::Other);
    }

    #[test]
    fn labels_are_stable() {
        let labels: Vec<&str> = [
            Route::SessionsLogout,
            Route::Login,
            Route::UserLogout,
            Route::Websocket { sockjs: true },
            Route::SockJsSend,
            Route::DeviceApi(DeviceEndpoint::List),
            Route::MethodCall,
            Route::Other,
        ]
        .iter()
        .map(Route::label)
        .collect();
        assert_eq!(
            labels,
            [
                "sessions_logout",
                "login",
                "user_logout",
                "websocket",
                "sockjs_send",
                "device_api",
                "method_call",
                "other"
            ]
        );
    }

    // --- canonical_path ---

    #[test]
    fn canonical_path_borrows_plain_paths_unchanged() {
        for path in [
            "/",
            "/api/v1/me",
            "/api/v1/sessions/logout",
            "/a.b/c..d/...",
        ] {
            assert!(is_already_canonical(path), "{path}");
            assert_eq!(canonical_path(path).as_deref(), Some(path));
        }
    }

    #[test]
    fn canonical_path_examples() {
        let cases = [
            ("/api/v1/sessions/logou%74/", "/api/v1/sessions/logout"),
            ("/a/%2e%2e/%2E/b;x/", "/b"),
            ("/a%00b", "/a\0b"),
            ("/a%zz", "/a%zz"),
            ("/a%", "/a%"),
            ("/%FF", "/\u{fffd}"),
            ("*", "/*"),
            ("", "/"),
            ("/..", "/"),
        ];
        for (raw, canonical) in cases {
            assert_eq!(canonical_path(raw).as_deref(), Some(canonical), "{raw:?}");
        }
    }

    #[test]
    fn deeply_nested_encoding_decodes_in_linear_time() {
        // 50k levels of `%25` nesting: quadratic decoding would take seconds.
        let mut path = String::from("/api/v1/sessions/logou%");
        path.push_str(&"25".repeat(50_000));
        path.push_str("74");
        assert_eq!(
            canonical_path(&path).as_deref(),
            Some("/api/v1/sessions/logout")
        );
    }

    // --- property tests ---

    fn flip_ascii_case(c: char) -> char {
        if c.is_ascii_lowercase() {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        }
    }

    /// Percent-encode one character as UTF-8, optionally several times over.
    fn encode_char(c: char, depth: u8, lower: bool) -> String {
        let mut buf = [0u8; 4];
        let mut out: String = c
            .encode_utf8(&mut buf)
            .bytes()
            .map(|b| {
                if lower {
                    format!("%{b:02x}")
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        for _ in 1..depth {
            out = out.replace('%', "%25");
        }
        out
    }

    /// Spell `path` (which starts with `/`) with random escapes, `;params`, dot
    /// segments, inner duplicate slashes and trailing junk. The result parses as a
    /// URI path and means the same to a lenient router.
    fn variant_of(path: &'static str) -> impl Strategy<Value = String> {
        let segments: Vec<&'static str> = path.split('/').skip(1).collect();
        let n = segments.len();
        (
            // Half the characters stay literal, the rest are encoded 1–3 times.
            prop::collection::vec(
                ((0u8..8).prop_map(|d| d.saturating_sub(4)), any::<bool>()),
                path.len(),
            ),
            prop::collection::vec(0u8..6, n),
            prop::collection::vec(0u8..6, 0..6),
            prop::option::of("[a-z0-9=&]{0,12}"),
        )
            .prop_map(move |(char_enc, decorations, tail, query)| {
                let mut out = String::from("/");
                let mut chars = char_enc.iter();
                for (i, segment) in segments.iter().enumerate() {
                    if i > 0 {
                        // The separator itself may be encoded too.
                        match chars.next() {
                            Some(&(d, lower)) if d > 0 => out.push_str(&encode_char('/', d, lower)),
                            _ => out.push('/'),
                        }
                    }
                    for c in segment.chars() {
                        match chars.next() {
                            Some(&(d, lower)) if d > 0 => out.push_str(&encode_char(c, d, lower)),
                            _ => out.push(c),
                        }
                    }
                    match decorations.get(i).copied().unwrap_or(0) {
                        1 => out.push_str(";x=1"),
                        2 => out.push_str("/."),
                        3 => out.push_str("/zz/.."),
                        4 => out.push_str("/%2e/zz/%2E%2e"),
                        5 if i + 1 < n => out.push('/'),
                        _ => {}
                    }
                }
                for junk in tail {
                    out.push_str(match junk {
                        0 => "/",
                        1 => "%20",
                        2 => "%09%0d%0A",
                        3 => "%00",
                        4 => "%C2%A0",
                        _ => "%252F",
                    });
                }
                if let Some(query) = query {
                    out.push('?');
                    out.push_str(&query);
                }
                out
            })
    }

    proptest! {
        #[test]
        fn logout_variants_are_intercepted(
            path in variant_of("/api/v1/sessions/logout"),
            absolute in any::<bool>(),
        ) {
            let target = if absolute { format!("http://chat.example:3000{path}") } else { path };
            let uri: Uri = target.parse().expect("variant parses as a URI");
            prop_assert_eq!(classify(&Method::POST, &uri, &HeaderMap::new()), Route::SessionsLogout);
            let canonical = canonical_path(uri.path());
            prop_assert_eq!(canonical.as_deref(), Some(LOGOUT_PATH));
        }

        #[test]
        fn logout_variants_with_override_are_intercepted(
            path in variant_of("/api/v1/sessions/logout"),
            method in prop::sample::select(vec![Method::GET, Method::PUT, Method::DELETE]),
        ) {
            let uri: Uri = path.parse().expect("variant parses as a URI");
            let mut headers = HeaderMap::new();
            headers.insert("x-http-method-override", HeaderValue::from_static("post"));
            prop_assert_eq!(classify(&method, &uri, &headers), Route::SessionsLogout);
            // Without the override: never the endpoint. (A `;params`-first
            // reading may turn `/api/v1;x%2Fsessions/logout` into
            // `/api/v1/logout`, which a GET reaches as the user's own logout.)
            let route = classify(&method, &uri, &HeaderMap::new());
            let expected = if method == Method::GET { Route::UserLogout } else { Route::Other };
            prop_assert!(route == Route::Other || route == expected, "{:?}", route);
        }

        #[test]
        fn case_changed_variants_are_intercepted(
            path in variant_of("/api/v1/sessions/logout"),
            flips in prop::collection::vec(any::<bool>(), 0..160),
        ) {
            // express `Router()` (7.4–7.5) ignores ASCII case; so does the gate.
            // Flipping hex digits, `;params` or the query changes nothing either.
            let path: String = path
                .chars()
                .zip(flips.iter().copied().chain(std::iter::repeat(false)))
                .map(|(c, flip)| if flip { flip_ascii_case(c) } else { c })
                .collect();
            prop_assert_eq!(post(&path), Route::SessionsLogout);
        }

        #[test]
        fn leading_slashes_and_whitespace_variants_are_intercepted(
            path in variant_of("/api/v1/sessions/logout"),
            lead in prop::collection::vec(
                prop_oneof![
                    Just("/".to_string()),
                    prop::sample::select(JS_WHITESPACE.to_vec()).prop_map(utf8_escaped),
                ],
                1..5,
            ),
            glued in prop::option::of(prop::sample::select(JS_WHITESPACE.to_vec())),
            absolute in any::<bool>(),
        ) {
            // connect-route (5.x–7.3) strips `[\s/]+` runs from the front.
            let mut target = String::from("/");
            target.push_str(&lead.concat());
            if let Some(c) = glued {
                target.push_str(&utf8_escaped(c));
            }
            target.push_str(&path);
            let target = if absolute { format!("http://host{target}") } else { target };
            prop_assert_eq!(post(&target), Route::SessionsLogout, "{}", target);
        }

        #[test]
        fn classify_never_panics(
            raw in prop_oneof!["[!-~]{0,64}", "/[!-~\u{80}-\u{10ffff}]{0,64}", "https?://[a-z]{1,5}/[!-~]{0,48}"],
        ) {
            if let Ok(uri) = raw.parse::<Uri>() {
                let _ = classify(&Method::POST, &uri, &HeaderMap::new());
                let _ = classify(&Method::GET, &uri, &HeaderMap::new());
            }
        }

        #[test]
        fn canonical_path_never_panics(raw in any::<String>()) {
            let _ = canonical_path(&raw);
        }

        #[test]
        fn canonical_path_is_idempotent(raw in "/[a-zA-Z./;%0-9\\\\ ?#\u{a0}\u{3000}\t]{0,40}") {
            let once = canonical_path(&raw);
            prop_assert!(once.is_some(), "every path has a canonical form");
            let once = once.unwrap_or_default();
            prop_assert!(once.starts_with('/'));
            prop_assert!(!once.starts_with("//"));
            prop_assert_eq!(canonical_path(&once), Some(once.clone()));
        }

        #[test]
        fn fast_path_agrees_with_full_canonicalization(raw in "/[a-z./_-]{0,30}") {
            if is_already_canonical(&raw) {
                let decoded = percent_decode_fully(raw.as_bytes(), true);
                let text = String::from_utf8_lossy(&decoded);
                let segments: Vec<&str> = text.split('/').skip(1).map(clean_segment).collect();
                prop_assert_eq!(resolve(&segments, true), raw);
            }
        }
    }
}
