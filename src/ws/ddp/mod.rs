//! DDP and SockJS message inspection for the websocket gate: pure, no I/O.
//!
//! The gate must find a resume token wherever the chat server would find one.
//! Meteor reads client messages with JavaScript's `JSON.parse`, so the gate
//! reads them with its own lenient reader (`json.rs`), which accepts
//! everything `JSON.parse` does; its module docs say why serde_json will not
//! do.
//!
//! Where a token sits: Meteor's `{"resume":"<token>"}` login option can be
//! wrapped (Rocket.Chat's `totp` handler reruns the handlers on
//! `options.totp.login`; EJSON's `$escape`; `__proto__` keys that
//! `EJSON.clone` turns into prototypes). Rather than model each wrapper, the
//! gate takes every string stored under a key named `resume`, at any depth of
//! any message: a legitimate message that is not a login never carries a
//! revoked token there, so the only messages refused are the ones that try.
//!
//! Messages too big to hold are read as they stream by [`ResumeScanner`]
//! (`scan.rs`), which finds the same tokens a byte at a time with bounded
//! memory.
//!
//! - `mod.rs`: the message API (resume logins, client-message rewriting,
//!   granted logins, SockJS frames).
//! - `json.rs`: the lenient `JSON.parse`-compatible reader.
//! - `scan.rs`: the streaming scanner.

mod json;
mod scan;

use std::fmt;
use std::ops::Range;

use json::Reader;
pub use scan::ResumeScanner;

/// A resume token a client presents, with the DDP call id to answer it on.
#[derive(Clone, PartialEq, Eq)]
pub struct ResumeLogin {
    /// The message's top-level `id`: the string, the raw JSON of any other
    /// scalar, or empty when it has none (the server would reject those).
    pub call_id: String,
    pub token: String,
}

/// A login token the server handed to the client in a login `result`.
#[derive(Clone, PartialEq, Eq)]
pub struct GrantedLogin {
    pub call_id: String,
    pub user_id: String,
    pub token: String,
}

// Tokens are credentials: Debug output must never show them.
impl fmt::Debug for ResumeLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResumeLogin")
            .field("call_id", &self.call_id)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl fmt::Debug for GrantedLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrantedLogin")
            .field("call_id", &self.call_id)
            .field("user_id", &self.user_id)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// Resume tokens in a client message (a websocket message or a SockJS
/// `xhr_send` body). With `sockjs`, the message is a SockJS client frame: a
/// JSON array whose elements are DDP messages (or one JSON string).
///
/// Bytes that are not UTF-8 are decoded as Node does (U+FFFD), because the
/// server parses binary frames too. Malformed input yields nothing.
pub fn resume_logins(data: impl AsRef<[u8]>, sockjs: bool) -> Vec<ResumeLogin> {
    let text = String::from_utf8_lossy(data.as_ref());
    if !may_carry_resume(&text) {
        return Vec::new();
    }
    if sockjs {
        sockjs_client_messages(&text)
            .unwrap_or_default()
            .iter()
            .flat_map(|message| message_resume_logins(message))
            .collect()
    } else {
        message_resume_logins(&text)
    }
}

/// Cheap pre-check run on every client message. The word `resume` can only be
/// spelled without its letters through a `\u` escape, and neither SockJS
/// unwrapping nor lossy decoding can assemble it from other bytes.
pub fn may_carry_resume(text: &str) -> bool {
    text.contains("resume") || text.contains("\\u")
}

/// Resume tokens in one DDP message (already unwrapped from SockJS).
pub fn message_resume_logins(ddp: &str) -> Vec<ResumeLogin> {
    let Some((id, tokens)) = resume_values(ddp) else {
        return Vec::new();
    };
    let call_id = id.unwrap_or_default();
    tokens
        .into_iter()
        // Meteor skips the resume handler for an empty token (`!options.resume`).
        .filter(|token| !token.is_empty())
        .map(|token| ResumeLogin {
            call_id: call_id.clone(),
            token,
        })
        .collect()
}

/// A client message as the gate forwards it (SPEC §11): the live resume
/// tokens it presents and, when it carries revoked ones, the text to send
/// instead, each revoked token replaced by a decoy of the same length so the
/// server answers an unknown token itself (`result` and `updated`, in its own
/// words) and the revoked token never reaches it.
#[derive(Default, PartialEq, Eq)]
pub struct ClientMessage {
    /// Non-empty resume tokens that are not revoked, once each.
    pub live: Vec<String>,
    /// How many revoked resume tokens were replaced.
    pub replaced: usize,
    /// The message to forward instead, when `replaced > 0`.
    pub rewritten: Option<String>,
    /// Decoys already placed, so a second reading does not take them for
    /// live tokens.
    decoys: Vec<String>,
}

// Live tokens are credentials: Debug output must never show them.
impl fmt::Debug for ClientMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientMessage")
            .field("live", &self.live.len())
            .field("replaced", &self.replaced)
            .field("rewritten", &self.rewritten.is_some())
            .finish()
    }
}

/// Inspect one client message under every reading a Meteor server may apply,
/// whatever the path it arrived on: plain DDP (a JSON object, as on
/// `/websocket` and sockjs-node's raw `/sockjs/websocket`) and SockJS client
/// framing (a JSON array of messages or one JSON string, as on
/// `/sockjs/<server>/<session>/websocket` and `xhr_send`). The two readings
/// never find the same token: a SockJS reading of an object is
/// `[object Object]`, and a plain DDP message is an object.
///
/// `is_revoked` decides per token; `decoy` makes a replacement of the given
/// length in characters.
pub fn inspect_client_message(
    data: &[u8],
    is_revoked: impl Fn(&str) -> bool,
    mut decoy: impl FnMut(usize) -> String,
) -> ClientMessage {
    let mut out = ClientMessage::default();
    let text = String::from_utf8_lossy(data);
    if !may_carry_resume(&text) {
        return out;
    }
    let mut current: Option<String> = None;
    // Plain DDP: tokens replaced in place, everything else byte for byte.
    if let Some(plain) = rewrite_ddp(&text, &is_revoked, &mut decoy, &mut out) {
        current = Some(plain);
    }
    // SockJS framing, on the text as it stands: each message is rewritten
    // and the frame rebuilt from the messages sockjs-node would deliver.
    let framed = current.as_deref().unwrap_or(&text);
    if let Some(messages) = sockjs_client_messages(framed) {
        let mut changed = false;
        let messages: Vec<String> = messages
            .into_iter()
            .map(
                |message| match rewrite_ddp(&message, &is_revoked, &mut decoy, &mut out) {
                    Some(rewritten) => {
                        changed = true;
                        rewritten
                    }
                    None => message,
                },
            )
            .collect();
        if changed {
            current = Some(sockjs_client_frame(&messages));
        }
    }
    out.rewritten = current;
    out
}

/// How deep strings inside strings are read as messages: a `jsonp_send`
/// body (a JSON string holding a SockJS frame whose strings are DDP
/// messages) needs two levels; one more costs nothing.
const MAX_NESTING: usize = 3;

/// One DDP message with its revoked resume tokens replaced, also inside
/// strings that are themselves messages; `None` when it carries none. Live
/// tokens are added to `out.live`.
fn rewrite_ddp(
    ddp: &str,
    is_revoked: &impl Fn(&str) -> bool,
    decoy: &mut impl FnMut(usize) -> String,
    out: &mut ClientMessage,
) -> Option<String> {
    rewrite_nested(ddp, is_revoked, decoy, out, MAX_NESTING)
}

fn rewrite_nested(
    ddp: &str,
    is_revoked: &impl Fn(&str) -> bool,
    decoy: &mut impl FnMut(usize) -> String,
    out: &mut ClientMessage,
    depth: usize,
) -> Option<String> {
    let (_, found) = resume_spans(ddp, depth > 0)?;
    let mut rewritten = String::new();
    let mut copied = 0;
    for (found, span) in found {
        let replacement = match found {
            // Meteor skips the resume handler for an empty token.
            Found::Resume(token) if token.is_empty() || out.decoys.contains(&token) => continue,
            Found::Resume(token) if is_revoked(&token) => {
                out.replaced += 1;
                let fresh = decoy(token.chars().count());
                out.decoys.push(fresh.clone());
                fresh
            }
            Found::Resume(token) => {
                if !out.live.contains(&token) {
                    out.live.push(token);
                }
                continue;
            }
            Found::Nested(inner) => {
                match rewrite_nested(&inner, is_revoked, decoy, out, depth - 1) {
                    Some(inner) => inner,
                    None => continue,
                }
            }
        };
        rewritten.push_str(ddp.get(copied..span.start)?);
        push_json_string(&mut rewritten, &replacement);
        copied = span.end;
    }
    if copied == 0 {
        return None;
    }
    rewritten.push_str(ddp.get(copied..)?);
    Some(rewritten)
}

/// The DDP messages a SockJS client frame delivers, exactly as sockjs-node
/// hands them to Meteor: it `JSON.parse`s the frame and, when the text starts
/// with `[`, passes each element on, otherwise the whole value; Meteor then
/// `JSON.parse`s each, which turns a non-string into `String(value)` (so
/// `[["{…}"]]` and ` ["{…}"]` still carry a message). `None` when the frame is
/// not JSON (sockjs-node closes the session on those).
pub fn sockjs_client_messages(text: &str) -> Option<Vec<String>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    let mut reader = Reader::new(text);
    let messages = if text.starts_with('[') {
        reader.pos = 1;
        let mut messages = Vec::new();
        if !reader.eat(b']') {
            loop {
                messages.push(reader.js_string_of_value()?);
                if reader.eat(b',') {
                    continue;
                }
                if reader.eat(b']') {
                    break;
                }
                return None;
            }
        }
        messages
    } else {
        vec![reader.js_string_of_value()?]
    };
    reader.at_end().then_some(messages)
}

/// Tokens the server granted in login results (password or resume logins),
/// plain or inside a SockJS server frame (`a[…]`, `m"…"`): the frame's first
/// byte tells, since a plain DDP message is an object. Runs on every server
/// message, so anything without the word `token` is skipped before parsing.
pub fn granted_logins(data: impl AsRef<[u8]>) -> Vec<GrantedLogin> {
    let text = String::from_utf8_lossy(data.as_ref());
    if !text.contains("token") {
        return Vec::new();
    }
    if matches!(text.as_bytes().first(), Some(b'a' | b'm')) {
        sockjs_server_messages(&text)
            .iter()
            .filter_map(|message| granted_login(message))
            .collect()
    } else {
        granted_login(&text).into_iter().collect()
    }
}

/// A SockJS server frame carrying `messages`: `a["<json-escaped msg>",…]`.
pub fn sockjs_server_frame(messages: &[String]) -> String {
    let mut out = String::from("a");
    push_json_array(&mut out, messages);
    out
}

/// A SockJS client frame carrying `messages`: `["<json-escaped msg>",…]`.
pub fn sockjs_client_frame(messages: &[String]) -> String {
    let mut out = String::new();
    push_json_array(&mut out, messages);
    out
}

fn push_json_array(out: &mut String, messages: &[String]) {
    out.push('[');
    for (i, message) in messages.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(out, message);
    }
    out.push(']');
}

fn push_json_string(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let byte = c as u8;
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 0xF)]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Every string stored under a `resume` key anywhere in the message, and the
/// message's top-level `id`. Iterative: nesting depth costs no stack.
fn resume_values(ddp: &str) -> Option<(Option<String>, Vec<String>)> {
    let (id, found) = resume_spans(ddp, false)?;
    let tokens = found
        .into_iter()
        .filter_map(|(found, _)| match found {
            Found::Resume(token) => Some(token),
            Found::Nested(_) => None,
        })
        .collect();
    Some((id, tokens))
}

/// A string of interest in a message.
enum Found {
    /// Stored under a `resume` key.
    Resume(String),
    /// Any other string that may itself be a message carrying a resume
    /// token: Rocket.Chat's `method.call` wraps a DDP message in a JSON
    /// string, sockjs-node's `jsonp_send` a SockJS frame.
    Nested(String),
}

/// [`resume_values`], with the byte range of each string's JSON literal
/// (quotes included) in `ddp`, so it can be replaced in place. With `nested`,
/// other strings that might carry a resume token are returned too.
#[allow(clippy::type_complexity)]
fn resume_spans(ddp: &str, nested: bool) -> Option<(Option<String>, Vec<(Found, Range<usize>)>)> {
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Container {
        Object,
        Array,
    }
    /// What the value about to be read is stored under.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Slot {
        Resume,
        TopLevelId,
        Other,
    }

    let mut reader = Reader::new(ddp);
    let mut stack: Vec<Container> = Vec::new();
    let mut expect_key = false;
    let mut slot = Slot::Other;
    let mut id = None;
    let mut tokens = Vec::new();
    loop {
        reader.skip_ws();
        match reader.peek()? {
            open @ (b'{' | b'[') => {
                reader.pos += 1;
                let container = if open == b'{' {
                    Container::Object
                } else {
                    Container::Array
                };
                stack.push(container);
                expect_key = container == Container::Object;
                slot = Slot::Other;
            }
            b'}' | b']' => {
                reader.pos += 1;
                stack.pop()?;
                expect_key = false;
                slot = Slot::Other;
            }
            b',' => {
                reader.pos += 1;
                expect_key = stack.last() == Some(&Container::Object);
            }
            b':' => {
                reader.pos += 1;
                expect_key = false;
            }
            b'"' if expect_key && stack.last() == Some(&Container::Object) => {
                let key = reader.string()?;
                slot = match key.as_str() {
                    "resume" => Slot::Resume,
                    "id" if stack.len() == 1 => Slot::TopLevelId,
                    _ => Slot::Other,
                };
                expect_key = false;
            }
            b'"' => {
                match slot {
                    Slot::Resume => {
                        let start = reader.pos;
                        let token = reader.string()?;
                        tokens.push((Found::Resume(token), start..reader.pos));
                    }
                    Slot::TopLevelId => id = Some(reader.string()?),
                    Slot::Other => {
                        let start = reader.pos;
                        reader.skip_string()?;
                        let literal = ddp.get(start..reader.pos).unwrap_or_default();
                        if nested && may_carry_resume(literal) {
                            let mut again = Reader::new(literal);
                            if let Some(text) = again.string() {
                                tokens.push((Found::Nested(text), start..reader.pos));
                            }
                        }
                    }
                }
                slot = Slot::Other;
            }
            _ => {
                let raw = reader.scalar()?;
                if slot == Slot::TopLevelId {
                    id = Some(raw.to_owned());
                }
                slot = Slot::Other;
            }
        }
        if stack.is_empty() {
            break;
        }
    }
    reader.at_end().then_some((id, tokens))
}

/// The DDP messages in a SockJS server frame: `a[…]` (an array of JSON
/// strings) or the legacy single-message `m"…"`. Other frames carry none.
fn sockjs_server_messages(text: &str) -> Vec<String> {
    let mut reader = Reader::new(text);
    let messages = match reader.peek() {
        Some(b'a') => {
            reader.pos = 1;
            reader.string_array()
        }
        Some(b'm') => {
            reader.pos = 1;
            reader.skip_ws();
            if reader.peek() == Some(b'"') {
                reader.string().map(|message| vec![message])
            } else {
                None
            }
        }
        _ => None,
    };
    messages.filter(|_| reader.at_end()).unwrap_or_default()
}

/// `{"msg":"result","id":"<call>","result":{"id":"<user>","token":"<token>",…}}`
fn granted_login(ddp: &str) -> Option<GrantedLogin> {
    let mut reader = Reader::new(ddp);
    let (mut msg, mut call_id, mut grant) = (None, None, None);
    reader.object(|reader, key| {
        match key.as_str() {
            "msg" => msg = reader.string_value()?,
            "id" => call_id = reader.string_value()?,
            "result" => grant = login_result(reader)?,
            _ => reader.skip_value()?,
        }
        Some(())
    })?;
    if !reader.at_end() || msg.as_deref() != Some("result") {
        return None;
    }
    let (user_id, token) = grant?;
    if token.is_empty() {
        return None;
    }
    Some(GrantedLogin {
        call_id: call_id?,
        user_id,
        token,
    })
}

/// `(user id, token)` from a login result object; `Some(None)` otherwise.
fn login_result(reader: &mut Reader<'_>) -> Option<Option<(String, String)>> {
    reader.skip_ws();
    if reader.peek() != Some(b'{') {
        return reader.skip_value().map(|()| None);
    }
    let (mut user_id, mut token) = (None, None);
    reader.object(|reader, key| {
        match key.as_str() {
            "id" => user_id = reader.string_value()?,
            "token" => token = reader.string_value()?,
            _ => reader.skip_value()?,
        }
        Some(())
    })?;
    Some(user_id.zip(token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(super) fn login(call_id: &str, token: &str) -> ResumeLogin {
        ResumeLogin {
            call_id: call_id.to_owned(),
            token: token.to_owned(),
        }
    }

    pub(super) const METEOR_RESUME: &str =
        r#"{"msg":"method","method":"login","params":[{"resume":"Zq3_x-9LkQ"}],"id":"1"}"#;

    #[test]
    fn meteor_resume_login_is_found() {
        assert_eq!(
            resume_logins(METEOR_RESUME, false),
            vec![login("1", "Zq3_x-9LkQ")]
        );
    }

    #[test]
    fn sockjs_frame_with_escaped_resume_login_is_found() {
        let frame = sockjs_client_frame(&[
            r#"{"msg":"connect","version":"1","support":["1","pre2","pre1"]}"#.to_owned(),
            METEOR_RESUME.to_owned(),
        ]);
        assert_eq!(
            frame,
            r#"["{\"msg\":\"connect\",\"version\":\"1\",\"support\":[\"1\",\"pre2\",\"pre1\"]}","{\"msg\":\"method\",\"method\":\"login\",\"params\":[{\"resume\":\"Zq3_x-9LkQ\"}],\"id\":\"1\"}"]"#
        );
        assert_eq!(resume_logins(&frame, true), vec![login("1", "Zq3_x-9LkQ")]);
        // The same text is not a SockJS frame when read as plain DDP.
        assert_eq!(resume_logins(&frame, false), vec![]);
    }

    #[test]
    fn password_login_and_other_methods_carry_no_resume_token() {
        let password = r#"{"msg":"method","method":"login","params":[{"user":{"username":"bob"},"password":{"digest":"5e88","algorithm":"sha-256"}}],"id":"2"}"#;
        assert_eq!(resume_logins(password, false), vec![]);
        let send = r#"{"msg":"method","method":"sendMessage","params":[{"rid":"GENERAL","msg":"I will resume tomorrow"}],"id":"9"}"#;
        assert_eq!(resume_logins(send, false), vec![]);
    }

    #[test]
    fn extra_params_and_key_order_do_not_matter() {
        let text = r#"{"id":"42","params":[{"resume":"tok","extra":{"a":[1,2,{"b":null}]}},{"x":true}],"method":"login","msg":"method","randomSeed":"abc"}"#;
        assert_eq!(resume_logins(text, false), vec![login("42", "tok")]);
    }

    #[test]
    fn wrapped_resume_tokens_are_found() {
        // Rocket.Chat's totp handler reruns the login handlers on totp.login.
        let totp = r#"{"msg":"method","method":"login","params":[{"totp":{"login":{"resume":"t1"},"code":"123456"}}],"id":"3"}"#;
        assert_eq!(resume_logins(totp, false), vec![login("3", "t1")]);
        // EJSON $escape and __proto__ keys.
        let escaped = r#"{"msg":"method","method":"login","params":[{"$escape":{"__proto__":{"resume":"t2"}}}],"id":"4"}"#;
        assert_eq!(resume_logins(escaped, false), vec![login("4", "t2")]);
    }

    #[test]
    fn invalid_utf8_is_decoded_like_node() {
        let mut bytes =
            br#"{"msg":"method","method":"login","params":[{"resume":"t"}],"id":"9"#.to_vec();
        bytes.push(0xFF);
        bytes.extend_from_slice(br#""}"#);
        assert_eq!(resume_logins(&bytes, false), vec![login("9\u{FFFD}", "t")]);
        assert_eq!(resume_logins([0xFF, 0xFE, 0x00].as_slice(), true), vec![]);
    }

    #[test]
    fn non_string_and_missing_ids_still_count() {
        assert_eq!(
            resume_logins(r#"{"id":7,"params":[{"resume":"t"}]}"#, false),
            vec![login("7", "t")]
        );
        assert_eq!(
            resume_logins(r#"{"params":[{"resume":"t"}]}"#, false),
            vec![login("", "t")]
        );
        // An id nested below the top level is not the call id.
        assert_eq!(
            resume_logins(r#"{"params":[{"id":"x","resume":"t"}]}"#, false),
            vec![login("", "t")]
        );
    }

    #[test]
    fn empty_and_non_string_resume_values_are_ignored() {
        assert_eq!(
            resume_logins(r#"{"id":"1","params":[{"resume":""}]}"#, false),
            vec![]
        );
        assert_eq!(
            resume_logins(
                r#"{"id":"1","params":[{"resume":{"$binary":"AA=="}}]}"#,
                false
            ),
            vec![]
        );
    }

    #[test]
    fn sockjs_coerces_non_string_elements_like_javascript() {
        let inner = METEOR_RESUME.replace('"', "\\\"");
        // Nested single-element array: String(["x"]) === "x".
        let nested = format!(r#"[["{inner}"]]"#);
        assert_eq!(resume_logins(&nested, true), vec![login("1", "Zq3_x-9LkQ")]);
        // Leading whitespace: the whole array is one message, String([..]).
        let spaced = format!(r#" ["{inner}"]"#);
        assert_eq!(resume_logins(&spaced, true), vec![login("1", "Zq3_x-9LkQ")]);
        // A bare JSON string is one message too.
        let single = format!(r#""{inner}""#);
        assert_eq!(resume_logins(&single, true), vec![login("1", "Zq3_x-9LkQ")]);
        assert_eq!(
            sockjs_client_messages(r#"[["a",["b",null]],{"x":1},null,1.5,true]"#),
            Some(vec![
                "a,b,".to_owned(),
                "[object Object]".to_owned(),
                "null".to_owned(),
                "1.5".to_owned(),
                "true".to_owned()
            ])
        );
    }

    fn dead(token: &str) -> bool {
        token.starts_with("dead")
    }

    fn inspect(text: &str) -> ClientMessage {
        inspect_client_message(text.as_bytes(), dead, |len| "D".repeat(len))
    }

    #[test]
    fn revoked_resume_token_is_replaced_in_place() {
        let text = r#"{"msg":"method","method":"login","params":[{"resume":"dead-1"}],"id":"1"}"#;
        let out = inspect(text);
        assert_eq!(out.replaced, 1);
        assert_eq!(
            out.rewritten.as_deref(),
            Some(r#"{"msg":"method","method":"login","params":[{"resume":"DDDDDD"}],"id":"1"}"#)
        );
        assert!(out.live.is_empty());
    }

    #[test]
    fn live_tokens_are_reported_and_nothing_is_rewritten() {
        let out = inspect(METEOR_RESUME);
        assert_eq!(out.rewritten, None);
        assert_eq!(out.live, vec!["Zq3_x-9LkQ".to_owned()]);
        assert_eq!(inspect(r#"{"msg":"ping"}"#), ClientMessage::default());
    }

    #[test]
    fn escaped_revoked_token_is_replaced_by_its_decoded_length() {
        let out = inspect(r#"{"id":"1","params":[{"resume":"dead-1"}]}"#);
        assert_eq!(
            out.rewritten.as_deref(),
            Some(r#"{"id":"1","params":[{"resume":"DDDDDD"}]}"#)
        );
    }

    #[test]
    fn sockjs_frames_are_rewritten_message_by_message() {
        let frame = sockjs_client_frame(&[
            r#"{"msg":"connect"}"#.to_owned(),
            r#"{"msg":"method","method":"login","params":[{"resume":"dead-2"}],"id":"2"}"#
                .to_owned(),
        ]);
        let out = inspect(&frame);
        assert_eq!(out.replaced, 1);
        assert_eq!(
            out.rewritten.as_deref(),
            Some(
                r#"["{\"msg\":\"connect\"}","{\"msg\":\"method\",\"method\":\"login\",\"params\":[{\"resume\":\"DDDDDD\"}],\"id\":\"2\"}"]"#
            )
        );
        // A single-string frame and a frame behind whitespace are SockJS too.
        let single = serde_json::to_string(r#"{"params":[{"resume":"dead-3"}]}"#).unwrap();
        assert!(!inspect(&single).rewritten.unwrap().contains("dead"));
        assert!(
            !inspect(&format!(" {frame}"))
                .rewritten
                .unwrap()
                .contains("dead")
        );
    }

    #[test]
    fn messages_wrapped_in_strings_are_rewritten_too() {
        // Rocket.Chat's REST `method.call`: {"message": "<DDP JSON>"}.
        let call = serde_json::json!({
            "message": r#"{"msg":"method","method":"login","params":[{"resume":"dead-4"}],"id":"3"}"#
        })
        .to_string();
        let out = inspect(&call);
        assert_eq!(out.replaced, 1);
        let rewritten: serde_json::Value =
            serde_json::from_str(out.rewritten.as_deref().unwrap()).unwrap();
        let inner = rewritten["message"].as_str().unwrap();
        assert_eq!(
            inner,
            r#"{"msg":"method","method":"login","params":[{"resume":"DDDDDD"}],"id":"3"}"#
        );
        // sockjs-node `jsonp_send` text bodies: a JSON string holding the frame.
        let frame = sockjs_client_frame(&[r#"{"params":[{"resume":"dead-5"}]}"#.to_owned()]);
        let jsonp = serde_json::to_string(&frame).unwrap();
        let out = inspect(&jsonp);
        assert_eq!(out.replaced, 1);
        assert!(!out.rewritten.unwrap().contains("dead"));
    }

    #[test]
    fn chat_text_mentioning_resume_is_left_alone() {
        let send = r#"{"msg":"method","method":"sendMessage","params":[{"rid":"GENERAL","msg":"I will resume tomorrow"}],"id":"9"}"#;
        assert_eq!(inspect(send), ClientMessage::default());
    }

    #[test]
    fn decoys_are_not_mistaken_for_live_tokens_by_the_second_reading() {
        let frame = sockjs_client_frame(&[r#"{"params":[{"resume":"dead-6"}]}"#.to_owned()]);
        let out = inspect_client_message(frame.as_bytes(), dead, |len| "L".repeat(len));
        assert_eq!(out.replaced, 1);
        assert!(out.live.is_empty(), "{:?}", out.live);
    }

    #[test]
    fn granted_login_result_is_read_plain_and_from_sockjs() {
        let result = r#"{"msg":"result","id":"1","result":{"id":"rocket.cat","token":"NewTok_1","tokenExpires":{"$date":1712345678901},"type":"password"}}"#;
        let expected = vec![GrantedLogin {
            call_id: "1".to_owned(),
            user_id: "rocket.cat".to_owned(),
            token: "NewTok_1".to_owned(),
        }];
        assert_eq!(granted_logins(result), expected);
        let framed = sockjs_server_frame(&[
            r#"{"msg":"updated","methods":["1"]}"#.to_owned(),
            result.to_owned(),
        ]);
        assert_eq!(granted_logins(&framed), expected);
        // Legacy single-message frame.
        let mut single = String::from("m");
        push_json_string(&mut single, result);
        assert_eq!(granted_logins(&single), expected);
    }

    #[test]
    fn other_server_messages_grant_nothing() {
        for text in [
            r#"{"msg":"result","id":"2","error":{"error":403,"reason":"token expired"}}"#,
            r#"{"msg":"added","collection":"users","id":"u1","fields":{"token":"x","id":"y"}}"#,
            r#"{"msg":"result","id":"3","result":{"id":"u1"}}"#,
            r#"{"msg":"result","id":"3","result":"token"}"#,
            r#"{"msg":"result","id":"3","result":{"id":"u1","token":""}}"#,
            r#"{"msg":"result","result":{"id":"u1","token":"t"}}"#,
        ] {
            assert_eq!(granted_logins(text), vec![], "{text}");
        }
        assert_eq!(granted_logins("o"), vec![]);
        assert_eq!(granted_logins("h"), vec![]);
        assert_eq!(granted_logins(r#"c[3000,"Go away!"]"#), vec![]);
    }

    #[test]
    fn sockjs_server_frame_escapes_each_message() {
        let message =
            r#"{"msg":"result","id":"1","error":{"reason":"a \"quoted\" word"}}"#.to_owned();
        let frame = sockjs_server_frame(std::slice::from_ref(&message));
        assert!(frame.starts_with(r#"a["{\"msg\":\"result\",\"id\":\"1\","#));
        let parsed: Vec<String> = serde_json::from_str(&frame[1..]).unwrap();
        assert_eq!(parsed, vec![message]);
        assert_eq!(sockjs_server_frame(&[]), "a[]");
    }

    #[test]
    fn debug_output_hides_tokens() {
        let shown = format!("{:?}", login("1", "secret-token"));
        assert!(!shown.contains("secret-token"), "{shown}");
    }

    /// Reference: every string under a `resume` key, found with serde_json.
    fn serde_resume_values(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, child) in map {
                    if key == "resume" {
                        if let Some(text) = child.as_str() {
                            out.push(text.to_owned());
                        }
                    }
                    serde_resume_values(child, out);
                }
            }
            serde_json::Value::Array(items) => {
                for item in items {
                    serde_resume_values(item, out);
                }
            }
            _ => {}
        }
    }

    pub(super) fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(serde_json::Value::from),
            "[a-z\"\\\\\u{0}-\u{1f}é😀]{0,8}".prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("resume".to_owned()),
                        Just("id".to_owned()),
                        "[a-z]{1,4}"
                    ],
                    inner,
                    0..6
                )
                .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
            ]
        })
    }

    /// Tokens under either reading, sorted and deduplicated.
    pub(super) fn both_readings(text: &str) -> Vec<String> {
        let mut tokens = tokens_of(resume_logins(text, false));
        tokens.extend(tokens_of(resume_logins(text, true)));
        tokens.sort();
        tokens.dedup();
        tokens
    }

    fn tokens_of(logins: Vec<ResumeLogin>) -> Vec<String> {
        logins.into_iter().map(|login| login.token).collect()
    }

    proptest! {
        #[test]
        fn rewriting_removes_every_revoked_token_and_keeps_the_rest(
            value in json_value(),
            framed in any::<bool>(),
        ) {
            let plain = serde_json::to_string(&value).unwrap();
            let text = if framed { sockjs_client_frame(std::slice::from_ref(&plain)) } else { plain };
            let before = both_readings(&text);
            let revoked = |token: &str| token.len() % 2 == 0;
            let out = inspect_client_message(text.as_bytes(), revoked, |len| "#".repeat(len));
            let after_text = out.rewritten.clone().unwrap_or_else(|| text.clone());
            let after = both_readings(&after_text);
            for token in &after {
                prop_assert!(!revoked(token) || token.chars().all(|c| c == '#'), "{:?} survived", token);
            }
            let live: Vec<&String> = before.iter().filter(|t| !revoked(t)).collect();
            for token in live {
                prop_assert!(after.contains(token), "{:?} lost", token);
                prop_assert!(out.live.contains(token), "{:?} not reported", token);
            }
            prop_assert_eq!(out.rewritten.is_some(), out.replaced > 0);
            prop_assert_eq!(out.replaced > 0, before.iter().any(|t| revoked(t)));
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,200}", sockjs in any::<bool>()) {
            let _ = inspect_client_message(text.as_bytes(), |_| true, |len| "x".repeat(len));
            let _ = resume_logins(&text, sockjs);
            let _ = granted_logins(&text);
            let _ = sockjs_client_messages(&text);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = resume_logins(&bytes, true);
            let _ = resume_logins(&bytes, false);
            let _ = granted_logins(&bytes);
        }

        #[test]
        fn agrees_with_serde_json_on_well_formed_json(value in json_value(), pretty in any::<bool>()) {
            let text = if pretty {
                serde_json::to_string_pretty(&value).unwrap()
            } else {
                serde_json::to_string(&value).unwrap()
            };
            let mut expected = Vec::new();
            serde_resume_values(&value, &mut expected);
            expected.retain(|token| !token.is_empty());
            let found: Vec<String> = message_resume_logins(&text).into_iter().map(|l| l.token).collect();
            prop_assert_eq!(&found, &expected);

            // The same message inside a SockJS frame.
            let framed = sockjs_client_frame(std::slice::from_ref(&text));
            let found: Vec<String> = resume_logins(&framed, true).into_iter().map(|l| l.token).collect();
            prop_assert_eq!(found, expected);
            prop_assert_eq!(sockjs_client_messages(&framed), Some(vec![text]));
        }
    }
}
