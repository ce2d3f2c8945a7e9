//! The fake upstream's DDP side: answers DDP messages the way Meteor's
//! `ddp-server` does, over plain websockets, SockJS-framed websockets and
//! SockJS xhr polling, so real DDP client libraries can be driven through the
//! gate.
//!
//! Meteor's rules kept here: `connect` → `connected`; `ping` → `pong`;
//! every method call ends with `result` and then `updated` (the client's
//! callback waits for both); a resume login with a token the server does not
//! hold fails with Meteor's 403 "You've been logged out by the server"; `sub`
//! → `ready`. Text that is not a DDP message is echoed (plain websockets) so
//! byte-transparency tests keep working.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};

use serde_json::{Value, json};

/// Meteor's answer to a resume login with an unknown or expired token
/// (`accounts-base`, `Accounts._loginUser` / resume handler).
pub const LOGGED_OUT_ERROR: &str = r#"{"isClientSafe":true,"error":403,"reason":"You've been logged out by the server. Please log in again.","message":"You've been logged out by the server. Please log in again. [403]","errorType":"Meteor.Error"}"#;

#[derive(Default)]
pub struct Meteor {
    /// Login tokens the server holds: token → user id.
    tokens: HashMap<String, String>,
    /// SockJS xhr sessions: session id → messages waiting for the next poll.
    sessions: HashMap<String, VecDeque<String>>,
    /// Every DDP message received, unwrapped from any SockJS framing.
    pub received: Vec<String>,
}

impl Meteor {
    pub fn hold_token(&mut self, user_id: &str, token: &str) {
        self.tokens.insert(token.to_owned(), user_id.to_owned());
    }

    /// The answers to one DDP message, or `None` when it is not one. Keys
    /// come in Meteor's order (`msg` first), as its server writes them.
    pub fn answer(&mut self, text: &str) -> Option<Vec<String>> {
        let message: Value = serde_json::from_str(text).ok()?;
        let kind = message.get("msg")?.as_str()?.to_owned();
        self.received.push(text.to_owned());
        let id = message
            .get("id")
            .map(Value::to_string)
            .unwrap_or_else(|| "null".to_owned());
        let answers = match kind.as_str() {
            "connect" => vec![r#"{"msg":"connected","session":"fakeSessionId0001"}"#.to_owned()],
            "ping" => match message.get("id") {
                Some(_) => vec![format!(r#"{{"msg":"pong","id":{id}}}"#)],
                None => vec![r#"{"msg":"pong"}"#.to_owned()],
            },
            "sub" => vec![format!(r#"{{"msg":"ready","subs":[{id}]}}"#)],
            "method" => {
                let method = message.get("method").and_then(Value::as_str).unwrap_or("");
                let params = message.get("params").cloned().unwrap_or(json!([]));
                let result = if method == "login" {
                    self.login(&id, &params)
                } else {
                    format!(r#"{{"msg":"result","id":{id}}}"#)
                };
                vec![result, format!(r#"{{"msg":"updated","methods":[{id}]}}"#)]
            }
            _ => return None,
        };
        Some(answers)
    }

    /// `id` is the call id as JSON text.
    fn login(&self, id: &str, params: &Value) -> String {
        let resume = params
            .get(0)
            .and_then(|p| p.get("resume"))
            .and_then(Value::as_str);
        match resume.and_then(|token| self.tokens.get(token).map(|user| (user, token))) {
            Some((user, token)) => format!(
                r#"{{"msg":"result","id":{id},"result":{{"id":{},"token":{},"tokenExpires":{{"$date":4102444800000}},"type":"resume"}}}}"#,
                Value::from(user.as_str()),
                Value::from(token)
            ),
            None => format!(r#"{{"msg":"result","id":{id},"error":{LOGGED_OUT_ERROR}}}"#),
        }
    }

    /// Answers to a SockJS client frame (a JSON array of DDP messages), as
    /// one `a[…]` server frame; `None` when the frame is not an array.
    pub fn answer_sockjs(&mut self, frame: &str) -> Option<Option<String>> {
        let messages: Vec<Value> = serde_json::from_str(frame).ok()?;
        let answers = self.answer_all(messages);
        Some((!answers.is_empty()).then(|| sockjs_frame(&answers)))
    }

    /// Answers to each DDP message of a SockJS frame (strings, or objects
    /// some clients send unencoded).
    fn answer_all(&mut self, messages: Vec<Value>) -> Vec<String> {
        let mut answers = Vec::new();
        for message in messages {
            let text = match message {
                Value::String(text) => text,
                other => other.to_string(),
            };
            answers.extend(self.answer(&text).unwrap_or_default());
        }
        answers
    }

    /// `POST …/xhr`: open the session (`o`), or hand over what waits for it.
    pub fn poll(&mut self, session: &str) -> Option<String> {
        match self.sessions.get_mut(session) {
            None => {
                self.sessions.insert(session.to_owned(), VecDeque::new());
                Some("o\n".to_owned())
            }
            Some(queue) if queue.is_empty() => None,
            Some(queue) => {
                let waiting: Vec<String> = queue.drain(..).collect();
                Some(format!("{}\n", sockjs_frame(&waiting)))
            }
        }
    }

    /// `POST …/xhr_send`: `Some(status)` — 404 for an unknown session, 500 for
    /// a body that is not a JSON array, else 204 with the answers queued.
    pub fn send(&mut self, session: &str, body: &str) -> u16 {
        if !self.sessions.contains_key(session) {
            return 404;
        }
        let Ok(messages) = serde_json::from_str::<Vec<Value>>(body) else {
            return 500;
        };
        let answers = self.answer_all(messages);
        if let Some(queue) = self.sessions.get_mut(session) {
            queue.extend(answers);
        }
        204
    }
}

/// `a["<json-escaped msg>",…]`
pub fn sockjs_frame(messages: &[String]) -> String {
    format!(
        "a{}",
        serde_json::to_string(messages).expect("strings serialize")
    )
}

/// `/sockjs/<server>/<session>/<transport>` → (session, transport).
pub fn sockjs_session(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/sockjs/")?;
    let mut parts = rest.split('/');
    let (_server, session, transport) = (parts.next()?, parts.next()?, parts.next()?);
    parts.next().is_none().then_some((session, transport))
}
