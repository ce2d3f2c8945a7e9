//! The lenient JSON reader the DDP inspection reads client messages with.
//!
//! Meteor reads client messages with JavaScript's `JSON.parse`, which accepts
//! input serde_json refuses: nesting deeper than 128 levels, lone UTF-16
//! surrogates (`"\ud800"`), numbers beyond f64 (`1e400`), and, in binary
//! frames, invalid UTF-8 (Node decodes it with U+FFFD). A message the gate
//! failed to parse but the server accepted would walk past the revocation
//! check, so client messages are read with this small lenient reader: where
//! it differs from `JSON.parse` it accepts *more*, never less, and it walks
//! nesting iteratively, so depth costs no stack.

/// A lenient JSON cursor over text. It never accepts less than `JSON.parse`;
/// on well-formed JSON it reads exactly what `JSON.parse` reads.
pub(super) struct Reader<'a> {
    text: &'a str,
    /// The cursor, a byte offset into `text`.
    pub(super) pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        Self { text, pos: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    pub(super) fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    pub(super) fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// Skip whitespace, then consume `byte` if it comes next.
    pub(super) fn eat(&mut self, byte: u8) -> bool {
        self.skip_ws();
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Only whitespace remains (`JSON.parse` rejects trailing data).
    pub(super) fn at_end(&mut self) -> bool {
        self.skip_ws();
        self.pos >= self.text.len()
    }

    /// Decode the string at the cursor (which must be at its opening quote).
    pub(super) fn string(&mut self) -> Option<String> {
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
    pub(super) fn skip_string(&mut self) -> Option<()> {
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
    pub(super) fn scalar(&mut self) -> Option<&'a str> {
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
    pub(super) fn skip_value(&mut self) -> Option<()> {
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
    pub(super) fn string_value(&mut self) -> Option<Option<String>> {
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
    pub(super) fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, String) -> Option<()>,
    ) -> Option<()> {
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

    /// A JSON array of strings; other elements are skipped.
    pub(super) fn string_array(&mut self) -> Option<Vec<String>> {
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
    pub(super) fn js_string_of_value(&mut self) -> Option<String> {
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
    use super::super::resume_logins;
    use super::super::tests::login;

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
}
