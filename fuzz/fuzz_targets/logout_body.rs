//! Logout body parsing (JSON, form, `payload` wrapper): never panics, and
//! agrees with serde_json / a form encoder on what the `sessionId` is.
//!
//! Input: byte 0 picks the Content-Type, the rest is the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sessiongate::api::body::{InvalidParams, parse_logout_body};

const TYPES: [Option<&str>; 6] = [
    Some("application/json"),
    Some("application/x-www-form-urlencoded"),
    None,
    Some("text/plain"),
    Some("Application/JSON; charset=utf-8"),
    Some(""),
];

fuzz_target!(|data: &[u8]| {
    let [selector, body @ ..] = data else { return };
    let content_type = TYPES[usize::from(*selector) % TYPES.len()];
    let result = parse_logout_body(content_type, body);
    let is_json = matches!(*selector as usize % TYPES.len(), 0 | 2 | 4 | 5);

    // A plain JSON object `{"sessionId": "<s>"}` that serde_json reads must
    // give `s` (duplicate keys: last wins in both).
    if is_json {
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
            if map.len() == 1 {
                if let Some(Value::String(s)) = map.get("sessionId") {
                    assert_eq!(result, Ok(s.clone()), "serde_json reads sessionId {s:?}");
                }
                if let Some(v) = map.get("sessionId") {
                    if !v.is_string() {
                        assert_eq!(result, Err(InvalidParams::NotString));
                    }
                }
            }
        }
    }

    // Whatever came back, an accepted id is a real string of the body: the
    // same bytes encoded as a JSON body and as a form body read back equal.
    if let Ok(id) = &result {
        let json = serde_json::json!({ "sessionId": id }).to_string();
        assert_eq!(
            parse_logout_body(Some("application/json"), json.as_bytes()).as_ref(),
            Ok(id)
        );
        let form = format!("sessionId={}", form_encode(id));
        assert_eq!(
            parse_logout_body(Some("application/x-www-form-urlencoded"), form.as_bytes()).as_ref(),
            Ok(id),
            "form {form:?}"
        );
        let wrapped = serde_json::json!({ "payload": json }).to_string();
        assert_eq!(
            parse_logout_body(Some("application/json"), wrapped.as_bytes()).as_ref(),
            Ok(id)
        );
    }
});

fn form_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
