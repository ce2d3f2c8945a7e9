//! Login tokens in `application/x-www-form-urlencoded` text: query strings
//! and form bodies. Pure: no I/O.
//!
//! Rocket.Chat reads a login token from the query string where a browser
//! cannot send headers: file downloads (`FileUpload.requestCanAccessFiles`),
//! avatars (`userCanAccessAvatar`) and data exports all take
//! `?rc_uid=…&rc_token=…` before the cookies (SPEC §12). A revoked
//! `rc_token` there is removed with every `rc_uid`, as the cookies are, so
//! the server sees an anonymous request; every other parameter is kept byte
//! for byte.
//!
//! Forms are read the way Node's `querystring` and `qs` read them: pairs split
//! on `&`, name and value on the first `=`, `+` is a space, one round of
//! percent-decoding. Names are compared ignoring ASCII case and any `qs`
//! bracket suffix (`rc_token[]`): over-matching only ever removes a revoked
//! token.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode, utf8_percent_encode};

use crate::ws::ddp::{self, ClientMessage};

/// What JavaScript's `encodeURIComponent` escapes: a rewritten value looks
/// like one a browser would send.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

const TOKEN_PARAM: &str = "rc_token";
const USER_PARAM: &str = "rc_uid";

/// Cheap pre-check run on every query: could it name `rc_token` at all?
/// An encoded name needs a `%`.
pub fn may_carry_token(query: &str) -> bool {
    query.contains('%')
        || query
            .as_bytes()
            .windows(3)
            .any(|w| w.eq_ignore_ascii_case(b"rc_"))
}

/// The query without its revoked `rc_token` parameters and, when one was
/// removed, without any `rc_uid`; `None` when no `rc_token` is revoked.
/// The result may be empty (then the request goes without a query).
pub fn strip_revoked_tokens(query: &str, is_revoked: impl Fn(&str) -> bool) -> Option<String> {
    let revoked_token = |pair: &str| {
        let (name, value) = split_pair(pair);
        names(name, TOKEN_PARAM) && value_readings(value).iter().any(|v| is_revoked(v))
    };
    if !query.split('&').any(revoked_token) {
        return None;
    }
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !revoked_token(pair) && !names(split_pair(pair).0, USER_PARAM))
        .collect();
    Some(kept.join("&"))
}

/// A form body with its revoked resume tokens replaced by decoys (SPEC §11):
/// a value named `resume` (Rocket.Chat's REST login reads `resume` from
/// form bodies too) is a token; any other value that may carry one is read
/// as a client message (Rocket.Chat's `method.call` takes `message=<DDP
/// JSON>`, sockjs-node's `jsonp_send` takes `d=<SockJS frame>`).
pub fn rewrite_form_logins(
    body: &str,
    is_revoked: impl Fn(&str) -> bool,
    mut decoy: impl FnMut(usize) -> String,
) -> ClientMessage {
    let mut out = ClientMessage::default();
    let mut pairs: Vec<String> = Vec::new();
    for pair in body.split('&') {
        let (name, raw_value) = split_pair(pair);
        let value = decode(raw_value);
        let is_resume = names(name, "resume") || decode(name).ends_with("[resume]");
        let replacement = if is_resume && !value.is_empty() {
            if is_revoked(&value) {
                out.replaced += 1;
                Some(decoy(value.chars().count()))
            } else {
                if !out.live.contains(&value) {
                    out.live.push(value);
                }
                None
            }
        } else if ddp::may_carry_resume(&value) {
            let inner = ddp::inspect_client_message(value.as_bytes(), &is_revoked, &mut decoy);
            out.replaced += inner.replaced;
            for token in inner.live {
                if !out.live.contains(&token) {
                    out.live.push(token);
                }
            }
            inner.rewritten
        } else {
            None
        };
        pairs.push(match replacement {
            Some(new_value) => {
                let name_end = pair.find('=').unwrap_or(pair.len());
                let name = pair.get(..name_end).unwrap_or(pair);
                format!("{name}={}", utf8_percent_encode(&new_value, COMPONENT))
            }
            None => pair.to_owned(),
        });
    }
    if out.replaced > 0 {
        out.rewritten = Some(pairs.join("&"));
    }
    out
}

fn split_pair(pair: &str) -> (&str, &str) {
    pair.split_once('=').unwrap_or((pair, ""))
}

/// `+` as a space, then one round of percent-decoding (lossy UTF-8).
fn decode(component: &str) -> String {
    let spaced = component.replace('+', " ");
    percent_decode(spaced.as_bytes())
        .decode_utf8_lossy()
        .into_owned()
}

/// Does this raw parameter name mean `wanted` (any case, `qs` brackets ignored)?
fn names(raw_name: &str, wanted: &str) -> bool {
    let name = decode(raw_name);
    let base = name.split('[').next().unwrap_or_default();
    base.trim().eq_ignore_ascii_case(wanted)
}

/// The readings of a value a server might compare: raw, and decoded once.
fn value_readings(raw: &str) -> Vec<String> {
    let decoded = decode(raw);
    if decoded == raw {
        vec![decoded]
    } else {
        vec![raw.to_owned(), decoded]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revoked(token: &str) -> bool {
        token == "dead-token"
    }

    #[test]
    fn revoked_query_token_is_removed_with_its_user() {
        assert_eq!(
            strip_revoked_tokens("rc_uid=u1&rc_token=dead-token&download", revoked).as_deref(),
            Some("download")
        );
        assert_eq!(
            strip_revoked_tokens("rc_token=dead-token&rc_uid=u1", revoked).as_deref(),
            Some("")
        );
    }

    #[test]
    fn live_or_absent_tokens_leave_the_query_alone() {
        assert_eq!(
            strip_revoked_tokens("rc_uid=u1&rc_token=live", revoked),
            None
        );
        assert_eq!(strip_revoked_tokens("q=dead-token", revoked), None);
        assert_eq!(strip_revoked_tokens("", revoked), None);
    }

    #[test]
    fn other_parameters_stay_byte_for_byte() {
        let query = "a=%41+b&rc_token=dead-token&x=%zz&&y";
        assert_eq!(
            strip_revoked_tokens(query, revoked).as_deref(),
            Some("a=%41+b&x=%zz&&y")
        );
    }

    #[test]
    fn encoded_and_bracketed_spellings_are_found() {
        for query in [
            "rc%5Ftoken=dead-token",
            "rc_token=dead%2Dtoken",
            "RC_TOKEN=dead-token",
            "rc_token[]=dead-token",
            "rc_token%5B0%5D=dead-token",
            "rc_token=dead-token&rc_token=live",
        ] {
            let stripped = strip_revoked_tokens(query, revoked);
            assert!(stripped.is_some(), "{query}");
            assert!(!stripped.unwrap_or_default().contains("dead"), "{query}");
        }
    }

    #[test]
    fn precheck_sees_every_spelling_the_parser_would_match() {
        assert!(may_carry_token("rc_token=x"));
        assert!(may_carry_token("RC_TOKEN=x"));
        assert!(may_carry_token("rc%5Ftoken=x"));
        assert!(!may_carry_token("page=2&sort=name"));
    }

    fn fixed_decoy(len: usize) -> String {
        "D".repeat(len)
    }

    #[test]
    fn form_resume_login_gets_a_decoy() {
        let out = rewrite_form_logins("resume=dead-token&x=1", revoked, fixed_decoy);
        assert_eq!(out.replaced, 1);
        assert_eq!(out.rewritten.as_deref(), Some("resume=DDDDDDDDDD&x=1"));
        let live = rewrite_form_logins("resume=live", revoked, fixed_decoy);
        assert_eq!(live.rewritten, None);
        assert_eq!(live.live, vec!["live".to_owned()]);
    }

    #[test]
    fn form_wrapped_messages_are_read_too() {
        // sockjs-node jsonp_send: d=<SockJS frame>
        let frame = r#"["{\"msg\":\"method\",\"method\":\"login\",\"params\":[{\"resume\":\"dead-token\"}],\"id\":\"1\"}"]"#;
        let body = format!("d={}", utf8_percent_encode(frame, COMPONENT));
        let out = rewrite_form_logins(&body, revoked, fixed_decoy);
        assert_eq!(out.replaced, 1);
        let rewritten = out.rewritten.unwrap_or_default();
        let value = decode(rewritten.trim_start_matches("d="));
        assert_eq!(
            value,
            r#"["{\"msg\":\"method\",\"method\":\"login\",\"params\":[{\"resume\":\"DDDDDDDDDD\"}],\"id\":\"1\"}"]"#
        );
    }
}
