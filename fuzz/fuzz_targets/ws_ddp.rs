//! DDP / SockJS inspection (`ws::ddp`) against serde_json.
//!
//! The gate reads client messages with a lenient reader that must accept
//! everything `JSON.parse` accepts. serde_json is stricter than `JSON.parse`,
//! so: whenever serde_json reads a message, every non-empty string stored under
//! a `resume` key at any depth must be among the gate's resume tokens, plain
//! and inside a SockJS client frame. Never panics on any bytes; the SockJS
//! frame writer and reader round-trip.
//!
//! Needs the ws branch (`--features ws`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sessiongate::ws::ddp::{
    granted_logins, inspect_client_message, resume_logins, sockjs_client_frame,
    sockjs_client_messages,
};

fuzz_target!(|data: &[u8]| {
    let plain = resume_logins(data, false);
    let framed = resume_logins(data, true);
    let _ = granted_logins(data);
    // Every token under either reading is replaced when revoked: none is
    // left in the rewritten message.
    let rewritten = inspect_client_message(data, |_| true, |len| "\u{1}".repeat(len));
    if let Some(text) = &rewritten.rewritten {
        for login in resume_logins(text, false).iter().chain(&resume_logins(text, true)) {
            assert!(
                login.token.chars().all(|c| c == '\u{1}'),
                "a revoked token survived the rewrite"
            );
        }
    }

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        let gate: Vec<&str> = plain.iter().map(|l| l.token.as_str()).collect();
        for token in resume_strings(&value) {
            assert!(
                gate.contains(&token.as_str()),
                "missed resume token {token:?}"
            );
        }
        // SockJS: an array whose string elements are DDP messages.
        if let Value::Array(items) = &value {
            let gate: Vec<&str> = framed.iter().map(|l| l.token.as_str()).collect();
            for item in items {
                let Value::String(inner) = item else { continue };
                let Ok(inner) = serde_json::from_str::<Value>(inner) else {
                    continue;
                };
                for token in resume_strings(&inner) {
                    assert!(
                        gate.contains(&token.as_str()),
                        "missed framed token {token:?}"
                    );
                }
            }
        }
    }

    // Writer → reader round trip, and the wrapped message is still inspected.
    let messages = vec![text.to_string()];
    let frame = sockjs_client_frame(&messages);
    assert_eq!(sockjs_client_messages(&frame), Some(messages));
    let mut a: Vec<String> = plain.iter().map(|l| l.token.clone()).collect();
    let mut b: Vec<String> = resume_logins(&frame, true)
        .into_iter()
        .map(|l| l.token)
        .collect();
    a.sort();
    b.sort();
    assert_eq!(a, b, "SockJS wrapping changes what is seen");
});

fn resume_strings(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("resume", Value::String(s)) if !s.is_empty() => out.push(s.clone()),
                        _ => stack.push(v),
                    }
                }
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    out
}
