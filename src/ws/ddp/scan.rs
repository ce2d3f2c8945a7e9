//! The streaming resume-token scanner: [`ResumeScanner`] reads a client
//! message too big to hold a byte at a time, as it streams past, with bounded
//! memory. It is built from byte-at-a-time twins of the whole-message
//! readings in the parent module: [`DdpScan`] (plain DDP), [`SockJsUnwrap`]
//! (SockJS client framing), [`Unescape`] (JSON strings) and [`BitStack`]
//! (the open containers, one bit each).

/// Longest resume value the streaming scanner keeps. Real tokens are short
/// (Meteor's are 43 characters): a longer value cannot be a revoked token.
const MAX_STREAMED_TOKEN: usize = 4096;

/// Finds resume tokens in a message too big to hold, fed in pieces as it
/// streams past. On well-formed input it finds the same tokens as
/// [`resume_logins`](super::resume_logins); it checks no JSON syntax at all, so a malformed message
/// can only yield more tokens, never fewer. Memory stays small whatever the
/// message size: one bit per open bracket plus the strings it keeps.
/// Like [`inspect_client_message`](super::inspect_client_message), it reads every message both as plain DDP
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

    /// Same surrogate rules as [`Reader::unicode_escape`](super::json::Reader::unicode_escape).
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

/// The streaming twin of [`resume_values`](super::resume_values) for one DDP message.
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

/// The streaming twin of [`sockjs_client_messages`](super::sockjs_client_messages): turns a SockJS client
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

#[cfg(test)]
mod tests {
    use super::super::tests::{METEOR_RESUME, both_readings, json_value};
    use super::super::{resume_logins, sockjs_client_frame};
    use super::*;
    use proptest::prelude::*;

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
    }
}
