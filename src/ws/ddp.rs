//! DDP and SockJS message inspection for the websocket gate: pure, no I/O.
//!
//! The gate must find a resume token wherever the chat server would find one.
//! Meteor reads client messages with JavaScript's `JSON.parse`, which accepts
//! input serde_json refuses: nesting deeper than 128 levels, lone UTF-16
//! surrogates (`"\ud800"`), numbers beyond f64 (`1e400`), and, in binary
//! frames, invalid UTF-8 (Node decodes it with U+FFFD). A message the gate
//! failed to parse but the server accepted would walk past the revocation
//! check, so client messages are read with the small lenient reader below:
//! where it differs from `JSON.parse` it accepts *more*, never less, and it
//! walks nesting iteratively, so depth costs no stack.
//!
//! Where a token sits: Meteor's `{"resume":"<token>"}` login option can be
//! wrapped (Rocket.Chat's `totp` handler reruns the handlers on
//! `options.totp.login`; EJSON's `$escape`; `__proto__` keys that
//! `EJSON.clone` turns into prototypes). Rather than model each wrapper, the
//! gate takes every string stored under a key named `resume`, at any depth of
//! any message: a legitimate message that is not a login never carries a
//! revoked token there, so the only messages refused are the ones that try.
//!
//! Messages too big to hold are read as they stream by [`ResumeScanner`],
//! which finds the same tokens a byte at a time with bounded memory.

use std::fmt;
use std::ops::Range;

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
            "result" => grant = reader.login_result()?,
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

/// Longest resume value the streaming scanner keeps. Real tokens are short
/// (Meteor's are 43 characters): a longer value cannot be a revoked token.
const MAX_STREAMED_TOKEN: usize = 4096;

/// Finds resume tokens in a message too big to hold, fed in pieces as it
/// streams past. On well-formed input it finds the same tokens as
/// [`resume_logins`]; it checks no JSON syntax at all, so a malformed message
/// can only yield more tokens, never fewer. Memory stays small whatever the
/// message size: one bit per open bracket plus the strings it keeps.
/// Like [`inspect_client_message`], it reads every message both as plain DDP
/// and as a SockJS client frame.
#[derive(Default)]
pub struct ResumeScanner {
    plain: DdpScan,
    sockjs: SockJsUnwrap,
    framed: DdpScan,
    tokens: Vec<String>,
}

impl ResumeScanner {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next piece of the (unmasked) message.
    pub fn feed(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.plain.push(byte, &mut self.tokens);
            self.sockjs.push(byte, &mut self.framed, &mut self.tokens);
        }
    }

    /// The resume tokens seen so far (under either reading).
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }
}

/// One bit per open container: objects are `true`.
#[derive(Default)]
struct BitStack {
    words: Vec<u64>,
    len: usize,
}

impl BitStack {
    fn push(&mut self, bit: bool) {
        let (word, shift) = (self.len / 64, self.len % 64);
        if word == self.words.len() {
            self.words.push(0);
        }
        if let Some(slot) = self.words.get_mut(word) {
            *slot = (*slot & !(1 << shift)) | (u64::from(bit) << shift);
        }
        self.len += 1;
    }

    fn pop(&mut self) {
        self.len = self.len.saturating_sub(1);
        if self.len % 64 == 0 {
            self.words.truncate(self.len / 64);
        }
    }

    fn top_is_object(&self) -> bool {
        let Some(last) = self.len.checked_sub(1) else {
            return false;
        };
        self.words
            .get(last / 64)
            .is_some_and(|word| word >> (last % 64) & 1 == 1)
    }
}

/// JSON string unescaping, a byte at a time; emits UTF-8 bytes.
#[derive(Default)]
struct Unescape {
    state: EscapeState,
    /// A high surrogate waiting for its low half.
    high: Option<u16>,
}

#[derive(Default, Clone, Copy)]
enum EscapeState {
    #[default]
    Plain,
    Backslash,
    Hex {
        digits: u8,
        value: u16,
    },
}

impl Unescape {
    /// Feed one byte after the opening quote; true once the closing quote is seen.
    fn push(&mut self, byte: u8, emit: &mut impl FnMut(u8)) -> bool {
        match self.state {
            EscapeState::Plain => match byte {
                b'"' => {
                    self.flush_high(emit);
                    return true;
                }
                b'\\' => self.state = EscapeState::Backslash,
                _ => {
                    self.flush_high(emit);
                    emit(byte);
                }
            },
            EscapeState::Backslash => {
                self.state = EscapeState::Plain;
                let decoded = match byte {
                    b'u' => {
                        self.state = EscapeState::Hex {
                            digits: 0,
                            value: 0,
                        };
                        return false;
                    }
                    b'b' => 0x08,
                    b'f' => 0x0C,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    // `"`, `\`, `/`, and (leniently) anything else stand for themselves.
                    other => other,
                };
                self.flush_high(emit);
                emit(decoded);
            }
            EscapeState::Hex { digits, value } => {
                let Some(digit) = char::from(byte).to_digit(16) else {
                    // Not an escape JSON.parse accepts; read on leniently.
                    self.state = EscapeState::Plain;
                    self.flush_high(emit);
                    return self.push(byte, emit);
                };
                let value = (value << 4) | digit as u16;
                if digits < 3 {
                    self.state = EscapeState::Hex {
                        digits: digits + 1,
                        value,
                    };
                } else {
                    self.state = EscapeState::Plain;
                    self.code_unit(value, emit);
                }
            }
        }
        false
    }

    /// Same surrogate rules as [`Reader::unicode_escape`].
    fn code_unit(&mut self, unit: u16, emit: &mut impl FnMut(u8)) {
        let decoded = match unit {
            0xD800..=0xDBFF => {
                self.flush_high(emit);
                self.high = Some(unit);
                return;
            }
            0xDC00..=0xDFFF => match self.high.take() {
                Some(high) => char::from_u32(
                    0x10000 + ((u32::from(high) - 0xD800) << 10) + (u32::from(unit) - 0xDC00),
                ),
                None => None,
            },
            _ => {
                self.flush_high(emit);
                char::from_u32(u32::from(unit))
            }
        };
        emit_char(decoded.unwrap_or('\u{FFFD}'), emit);
    }

    fn flush_high(&mut self, emit: &mut impl FnMut(u8)) {
        if self.high.take().is_some() {
            emit_char('\u{FFFD}', emit);
        }
    }
}

fn emit_char(c: char, emit: &mut impl FnMut(u8)) {
    let mut utf8 = [0u8; 4];
    for &byte in c.encode_utf8(&mut utf8).as_bytes() {
        emit(byte);
    }
}

/// The streaming twin of [`resume_values`] for one DDP message.
#[derive(Default)]
struct DdpScan {
    containers: BitStack,
    expect_key: bool,
    /// The next value is stored under a `resume` key.
    resume_slot: bool,
    string: Option<StringScan>,
}

struct StringScan {
    key: bool,
    /// Keep at most this many bytes of the decoded string.
    limit: usize,
    text: Vec<u8>,
    overflow: bool,
    unescape: Unescape,
}

impl DdpScan {
    fn push(&mut self, byte: u8, tokens: &mut Vec<String>) {
        if let Some(scan) = &mut self.string {
            let StringScan {
                limit,
                text,
                overflow,
                unescape,
                ..
            } = scan;
            let closed = unescape.push(byte, &mut |b| {
                if text.len() < *limit {
                    text.push(b);
                } else {
                    *overflow = true;
                }
            });
            if closed {
                self.end_string(tokens);
            }
            return;
        }
        match byte {
            b' ' | b'\t' | b'\n' | b'\r' => {}
            b'{' | b'[' => {
                self.containers.push(byte == b'{');
                self.expect_key = byte == b'{';
                self.resume_slot = false;
            }
            b'}' | b']' => {
                self.containers.pop();
                self.expect_key = false;
                self.resume_slot = false;
            }
            b',' => self.expect_key = self.containers.top_is_object(),
            b':' => self.expect_key = false,
            b'"' => {
                let key = self.expect_key && self.containers.top_is_object();
                let limit = match (key, self.resume_slot) {
                    (true, _) => "resume".len() + 1,
                    (false, true) => MAX_STREAMED_TOKEN,
                    (false, false) => 0,
                };
                self.string = Some(StringScan {
                    key,
                    limit,
                    text: Vec::new(),
                    overflow: false,
                    unescape: Unescape::default(),
                });
            }
            _ => self.resume_slot = false,
        }
    }

    fn end_string(&mut self, tokens: &mut Vec<String>) {
        let Some(scan) = self.string.take() else {
            return;
        };
        if scan.key {
            self.resume_slot = scan.text == b"resume";
            self.expect_key = false;
            return;
        }
        if self.resume_slot && !scan.overflow && !scan.text.is_empty() {
            tokens.push(String::from_utf8_lossy(&scan.text).into_owned());
        }
        self.resume_slot = false;
    }
}

/// The streaming twin of [`sockjs_client_messages`]: turns a SockJS client
/// frame into the text of each DDP message it carries, fed to a [`DdpScan`].
#[derive(Default)]
struct SockJsUnwrap {
    started: bool,
    /// The frame starts with `[`: its top-level commas separate messages.
    array_frame: bool,
    depth: usize,
    string: Option<Unescape>,
    object: Option<ObjectSkip>,
    done: bool,
}

#[derive(Default)]
struct ObjectSkip {
    depth: usize,
    in_string: bool,
    escaped: bool,
}

impl SockJsUnwrap {
    fn push(&mut self, byte: u8, ddp: &mut DdpScan, tokens: &mut Vec<String>) {
        if !self.started {
            self.started = true;
            if byte == b'[' {
                self.array_frame = true;
                self.depth = 1;
                return;
            }
        }
        if self.done {
            return;
        }
        if let Some(skip) = &mut self.object {
            if skip.in_string {
                if skip.escaped {
                    skip.escaped = false;
                } else if byte == b'\\' {
                    skip.escaped = true;
                } else if byte == b'"' {
                    skip.in_string = false;
                }
                return;
            }
            match byte {
                b'"' => skip.in_string = true,
                b'{' | b'[' => skip.depth += 1,
                b'}' | b']' => {
                    skip.depth = skip.depth.saturating_sub(1);
                    if skip.depth == 0 {
                        self.object = None;
                        for &b in b"[object Object]" {
                            ddp.push(b, tokens);
                        }
                        self.done = self.depth == 0;
                    }
                }
                _ => {}
            }
            return;
        }
        if let Some(unescape) = &mut self.string {
            if unescape.push(byte, &mut |b| ddp.push(b, tokens)) {
                self.string = None;
                self.done = self.depth == 0;
            }
            return;
        }
        match byte {
            b' ' | b'\t' | b'\n' | b'\r' => {}
            b'"' => self.string = Some(Unescape::default()),
            b'{' => {
                self.object = Some(ObjectSkip {
                    depth: 1,
                    ..ObjectSkip::default()
                })
            }
            b'[' => self.depth += 1,
            b']' => {
                self.depth = self.depth.saturating_sub(1);
                self.done = self.depth == 0;
            }
            b',' if self.array_frame && self.depth == 1 => *ddp = DdpScan::default(),
            other => ddp.push(other, tokens),
        }
    }
}

/// A lenient JSON cursor over text. It never accepts less than `JSON.parse`;
/// on well-formed JSON it reads exactly what `JSON.parse` reads.
struct Reader<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(text: &'a str) -> Self {
        Self { text, pos: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// Skip whitespace, then consume `byte` if it comes next.
    fn eat(&mut self, byte: u8) -> bool {
        self.skip_ws();
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Only whitespace remains (`JSON.parse` rejects trailing data).
    fn at_end(&mut self) -> bool {
        self.skip_ws();
        self.pos >= self.text.len()
    }

    /// Decode the string at the cursor (which must be at its opening quote).
    fn string(&mut self) -> Option<String> {
        if self.peek() != Some(b'"') {
            return None;
        }
        self.pos += 1;
        let mut out = String::new();
        loop {
            let rest = self.bytes().get(self.pos..)?;
            let run = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
            // Both ends are ASCII bytes, so the slice is on char boundaries.
            out.push_str(self.text.get(self.pos..self.pos + run)?);
            self.pos += run;
            if self.peek()? == b'"' {
                self.pos += 1;
                return Some(out);
            }
            self.pos += 1;
            let escape = self.peek()?;
            self.pos += 1;
            out.push(match escape {
                b'"' => '"',
                b'\\' => '\\',
                b'/' => '/',
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                b'u' => self.unicode_escape()?,
                _ => return None,
            });
        }
    }

    /// The character of a `\uXXXX` escape (cursor after the `u`). A lone
    /// surrogate becomes U+FFFD: `JSON.parse` keeps it, and Node turns it into
    /// U+FFFD when it hashes or sends the string as UTF-8.
    fn unicode_escape(&mut self) -> Option<char> {
        let first = self.hex4()?;
        match first {
            0xD800..=0xDBFF => {
                if self.bytes().get(self.pos..self.pos + 2) == Some(b"\\u".as_slice()) {
                    let before = self.pos;
                    self.pos += 2;
                    if let Some(low @ 0xDC00..=0xDFFF) = self.hex4() {
                        let code = 0x10000
                            + ((u32::from(first) - 0xD800) << 10)
                            + (u32::from(low) - 0xDC00);
                        return Some(char::from_u32(code).unwrap_or('\u{FFFD}'));
                    }
                    self.pos = before;
                }
                Some('\u{FFFD}')
            }
            0xDC00..=0xDFFF => Some('\u{FFFD}'),
            other => Some(char::from_u32(u32::from(other)).unwrap_or('\u{FFFD}')),
        }
    }

    fn hex4(&mut self) -> Option<u16> {
        let digits = self.bytes().get(self.pos..self.pos + 4)?;
        // from_str_radix alone would accept a leading '+'.
        if !digits.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        let value = u16::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()?;
        self.pos += 4;
        Some(value)
    }

    /// Skip the string at the cursor without decoding it.
    fn skip_string(&mut self) -> Option<()> {
        if self.peek() != Some(b'"') {
            return None;
        }
        self.pos += 1;
        loop {
            let rest = self.bytes().get(self.pos..)?;
            let run = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
            let stop = *rest.get(run)?;
            self.pos += run + 1;
            if stop == b'"' {
                return Some(());
            }
            // The escaped byte, whatever it is.
            self.pos += 1;
        }
    }

    /// A number or literal, as its raw text.
    fn scalar(&mut self) -> Option<&'a str> {
        let start = self.pos;
        while matches!(
            self.peek(),
            Some(b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'+' | b'-')
        ) {
            self.pos += 1;
        }
        if self.pos == start {
            None
        } else {
            self.text.get(start..self.pos)
        }
    }

    /// Skip one value of any depth, iteratively.
    fn skip_value(&mut self) -> Option<()> {
        let mut depth = 0usize;
        loop {
            self.skip_ws();
            match self.peek()? {
                b'"' => self.skip_string()?,
                b'{' | b'[' => {
                    self.pos += 1;
                    depth += 1;
                    continue;
                }
                b'}' | b']' if depth > 0 => {
                    self.pos += 1;
                    depth -= 1;
                }
                b',' | b':' if depth > 0 => {
                    self.pos += 1;
                    continue;
                }
                _ => {
                    self.scalar()?;
                }
            }
            if depth == 0 {
                return Some(());
            }
        }
    }

    /// `Some(Some(s))` for a string value, `Some(None)` for any other value.
    fn string_value(&mut self) -> Option<Option<String>> {
        self.skip_ws();
        if self.peek() == Some(b'"') {
            self.string().map(Some)
        } else {
            self.skip_value().map(|()| None)
        }
    }

    /// Walk the members of the object at the cursor; `member` gets each key
    /// and must consume its value. Duplicate keys reach `member` in order, so
    /// the last one wins, as in `JSON.parse`.
    fn object(&mut self, mut member: impl FnMut(&mut Self, String) -> Option<()>) -> Option<()> {
        if !self.eat(b'{') {
            return None;
        }
        if self.eat(b'}') {
            return Some(());
        }
        loop {
            self.skip_ws();
            let key = self.string()?;
            if !self.eat(b':') {
                return None;
            }
            member(self, key)?;
            if self.eat(b',') {
                continue;
            }
            return self.eat(b'}').then_some(());
        }
    }

    /// `(user id, token)` from a login result object; `Some(None)` otherwise.
    fn login_result(&mut self) -> Option<Option<(String, String)>> {
        self.skip_ws();
        if self.peek() != Some(b'{') {
            return self.skip_value().map(|()| None);
        }
        let (mut user_id, mut token) = (None, None);
        self.object(|reader, key| {
            match key.as_str() {
                "id" => user_id = reader.string_value()?,
                "token" => token = reader.string_value()?,
                _ => reader.skip_value()?,
            }
            Some(())
        })?;
        Some(user_id.zip(token))
    }

    /// A JSON array of strings; other elements are skipped.
    fn string_array(&mut self) -> Option<Vec<String>> {
        if !self.eat(b'[') {
            return None;
        }
        let mut out = Vec::new();
        if self.eat(b']') {
            return Some(out);
        }
        loop {
            if let Some(text) = self.string_value()? {
                out.push(text);
            }
            if self.eat(b',') {
                continue;
            }
            return self.eat(b']').then_some(out);
        }
    }

    /// JavaScript's `String(value)` for the JSON value at the cursor.
    fn js_string_of_value(&mut self) -> Option<String> {
        self.skip_ws();
        match self.peek()? {
            b'"' => self.string(),
            b'[' => self.js_string_of_array(),
            b'{' => {
                self.skip_value()?;
                Some("[object Object]".to_owned())
            }
            // Numbers keep their JSON spelling (JS may respell `1.0` as `1`):
            // only the text inside strings could differ, never whether a token
            // is found, because tokens contain no commas and joins add them.
            _ => self.scalar().map(str::to_owned),
        }
    }

    /// `String(array)`: elements joined by `,` at every level, nested arrays
    /// flattened, `null` as empty, objects as `[object Object]`. Iterative.
    fn js_string_of_array(&mut self) -> Option<String> {
        let mut out = String::new();
        let mut depth = 0usize;
        loop {
            self.skip_ws();
            match self.peek()? {
                b'[' => {
                    self.pos += 1;
                    depth += 1;
                }
                b']' => {
                    self.pos += 1;
                    depth = depth.checked_sub(1)?;
                    if depth == 0 {
                        return Some(out);
                    }
                }
                b',' => {
                    self.pos += 1;
                    out.push(',');
                }
                b'"' => out.push_str(&self.string()?),
                b'{' => {
                    self.skip_value()?;
                    out.push_str("[object Object]");
                }
                _ => {
                    let raw = self.scalar()?;
                    if raw != "null" {
                        out.push_str(raw);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn login(call_id: &str, token: &str) -> ResumeLogin {
        ResumeLogin {
            call_id: call_id.to_owned(),
            token: token.to_owned(),
        }
    }

    const METEOR_RESUME: &str =
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
    fn unicode_escaped_key_and_token_are_decoded() {
        let text =
            r#"{"msg":"method","method":"login","params":[{"\u0072esume":"a\u0062c\/"}],"id":"5"}"#;
        assert_eq!(resume_logins(text, false), vec![login("5", "abc/")]);
        let pair = r#"{"id":"6","resume":"\ud83d\ude00"}"#;
        assert_eq!(resume_logins(pair, false), vec![login("6", "\u{1F600}")]);
    }

    #[test]
    fn inputs_serde_json_refuses_are_still_inspected() {
        let deep = format!(
            r#"{{"msg":"method","method":"login","params":[{{"resume":"t"}},{}{}],"id":"7"}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert!(serde_json::from_str::<serde_json::Value>(&deep).is_err());
        assert_eq!(resume_logins(&deep, false), vec![login("7", "t")]);

        let odd = r#"{"msg":"method","method":"login","x":"\ud800","y":1e400,"params":[{"resume":"t"}],"id":"8"}"#;
        assert!(serde_json::from_str::<serde_json::Value>(odd).is_err());
        assert_eq!(resume_logins(odd, false), vec![login("8", "t")]);
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

    #[test]
    fn malformed_json_yields_nothing() {
        for text in [
            "",
            "not json",
            r#"{"msg":"method","params":[{"resume":"t"}]"#,
            r#"{"msg":"method","params":[{"resume":"t"}]}}"#,
            r#"{"params":[{"resume":"t\x"}]}"#,
            r#"{"params":[{"resume":"t\u12"}]}"#,
            r#"{"params":[{"resume":"t"#,
            r#"{"params":[{"resume":"t"}]} trailing"#,
        ] {
            assert_eq!(resume_logins(text, false), vec![], "{text}");
        }
        for text in [
            r#"["{\"params\":[{\"resume\":\"t\"}]}""#,
            r#"["{\"params\":[{\"resume\":\"t\"}]}"]x"#,
            r#"["#,
        ] {
            assert_eq!(resume_logins(text, true), vec![], "{text}");
        }
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

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
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

    /// What the scanner finds when fed in pieces, sorted and deduplicated.
    fn streamed(text: &[u8], cuts: &[usize]) -> Vec<String> {
        let mut scanner = ResumeScanner::new();
        let mut start = 0;
        for &cut in cuts {
            let cut = cut.clamp(start, text.len());
            scanner.feed(&text[start..cut]);
            start = cut;
        }
        scanner.feed(&text[start..]);
        let mut tokens = scanner.tokens().to_vec();
        tokens.sort();
        tokens.dedup();
        tokens
    }

    /// Tokens under either reading, sorted and deduplicated.
    fn both_readings(text: &str) -> Vec<String> {
        let mut tokens = tokens_of(resume_logins(text, false));
        tokens.extend(tokens_of(resume_logins(text, true)));
        tokens.sort();
        tokens.dedup();
        tokens
    }

    fn tokens_of(logins: Vec<ResumeLogin>) -> Vec<String> {
        logins.into_iter().map(|login| login.token).collect()
    }

    #[test]
    fn scanner_finds_tokens_in_pieces() {
        let text = r#"{"msg":"method","method":"login","params":[{"totp":{"login":{"\u0072esume":"t\ud83d\ude00"}}}],"id":"1"}"#;
        assert_eq!(
            streamed(text.as_bytes(), &[3, 50, 51, 52, 90]),
            vec!["t\u{1F600}"]
        );
        let frame = format!(r#"[["{}"]]"#, METEOR_RESUME.replace('"', "\\\""));
        assert_eq!(streamed(frame.as_bytes(), &[1, 2, 7]), vec!["Zq3_x-9LkQ"]);
        let huge = format!(
            r#"{{"pad":"{}","deep":{}{},"params":[{{"resume":"t"}}]}}"#,
            "x".repeat(100_000),
            "[".repeat(50_000),
            "]".repeat(50_000)
        );
        assert_eq!(streamed(huge.as_bytes(), &[]), vec!["t"]);
    }

    #[test]
    fn scanner_is_lenient_where_the_reader_gives_up() {
        // Truncated JSON: the server would not run it, the scanner still reports it.
        let text = r#"{"params":[{"resume":"t"}"#;
        assert_eq!(resume_logins(text, false), vec![]);
        assert_eq!(streamed(text.as_bytes(), &[]), vec!["t"]);
    }

    proptest! {
        #[test]
        fn scanner_agrees_with_reader_on_well_formed_json(
            value in json_value(),
            other in json_value(),
            cuts in proptest::collection::vec(0usize..400, 0..6),
        ) {
            let text = serde_json::to_string(&value).unwrap();
            let mut cuts = cuts;
            cuts.sort_unstable();
            prop_assert_eq!(streamed(text.as_bytes(), &cuts), both_readings(&text));
            let other = serde_json::to_string(&other).unwrap();
            let frame = sockjs_client_frame(&[text.clone(), other.clone()]);
            prop_assert_eq!(streamed(frame.as_bytes(), &cuts), both_readings(&frame));
            // Single-element nested arrays stringify to their element.
            let nested = format!(
                "[{},[{}]] ",
                sockjs_client_frame(&[text]),
                sockjs_client_frame(&[other])
            );
            prop_assert_eq!(streamed(nested.as_bytes(), &cuts), both_readings(&nested));
        }

        #[test]
        fn scanner_finds_at_least_what_the_reader_finds(text in ".{0,200}") {
            let found = streamed(text.as_bytes(), &[]);
            for token in both_readings(&text) {
                prop_assert!(found.contains(&token), "{:?} not in {:?}", token, found);
            }
        }

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
