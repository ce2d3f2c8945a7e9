//! Reading the upstream's answer to `POST /api/v1/login` (SPEC §2) without
//! changing it: which answers are worth reading, Rocket.Chat's login success
//! shape, and the frames read so far, kept exactly so the answer is relayed
//! byte for byte (trailers and a mid-body failure included) whether or not
//! it was a login. Also [`plausible_id`], the check every id read from the
//! upstream (login answers, DDP results, `/api/v1/me`) passes before it is
//! recorded.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, stream};
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, BodyStream, StreamBody};
use hyper::body::Frame;

use crate::body::{Body, BoxError, full};
use crate::upstream::UpstreamBody;

/// Login answers larger than this are relayed untouched and not captured (SPEC §2).
pub const MAX_LOGIN_ANSWER: usize = 64 * 1024;

/// Longest user id, token or username the gate records. Rocket.Chat's are
/// 17–43 characters; anything past this is not a Rocket.Chat login.
pub(super) const MAX_ID_LEN: usize = 256;

/// The user id and token of a successful login answer.
#[derive(Clone, PartialEq, Eq)]
pub struct LoginAnswer {
    pub user_id: String,
    pub token: String,
    pub username: Option<String>,
    /// `data.me.name`: the display name Rocket.Chat's device page shows.
    pub name: Option<String>,
}

impl std::fmt::Debug for LoginAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginAnswer")
            .field("user_id", &self.user_id)
            .field("token", &"<redacted>")
            .field("username", &self.username)
            .field("name", &self.name)
            .finish()
    }
}

/// Parse Rocket.Chat's login success shape; `None` for anything else.
pub fn parse_login_answer(body: &[u8]) -> Option<LoginAnswer> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    if value.get("status")?.as_str()? != "success" {
        return None;
    }
    let data = value.get("data")?;
    let user_id = data.get("userId")?.as_str().filter(|s| plausible_id(s))?;
    let token = data
        .get("authToken")?
        .as_str()
        .filter(|s| plausible_id(s))?;
    let me_text = |field: &str| {
        data.get("me")
            .and_then(|me| me.get(field))
            .and_then(|v| v.as_str())
            .filter(|v| plausible_id(v))
            .map(str::to_string)
    };
    Some(LoginAnswer {
        user_id: user_id.to_string(),
        token: token.to_string(),
        username: me_text("username"),
        name: me_text("name"),
    })
}

/// Non-empty, bounded, no control characters: safe to store and index.
pub fn plausible_id(text: &str) -> bool {
    !text.is_empty() && text.len() <= MAX_ID_LEN && !text.chars().any(char::is_control)
}

/// Only a 200 with an unencoded body that may fit the bound is read.
pub(super) fn worth_reading(response: &Response<UpstreamBody>) -> bool {
    if response.status() != StatusCode::OK {
        return false;
    }
    let headers = response.headers();
    let encoded = headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    let too_long = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|len| len > MAX_LOGIN_ANSWER as u64);
    !encoded && !too_long
}

/// The frames of an answer read so far, kept exactly for the relay.
#[derive(Default)]
pub(super) struct Prefix {
    frames: VecDeque<Frame<Bytes>>,
    data_len: usize,
    /// The body ended (all frames, trailers included, are in `frames`).
    ended: bool,
    error: Option<hyper::Error>,
}

impl Prefix {
    /// Read frames until the body ends, fails, or passes `limit` data bytes.
    pub(super) async fn fill(&mut self, body: &mut UpstreamBody, limit: usize) {
        while self.data_len <= limit {
            match body.frame().await {
                None => {
                    self.ended = true;
                    return;
                }
                Some(Err(e)) => {
                    self.error = Some(e);
                    return;
                }
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        self.data_len += data.len();
                    }
                    let trailers = frame.is_trailers();
                    self.frames.push_back(frame);
                    if trailers {
                        self.ended = true;
                        return;
                    }
                }
            }
        }
    }

    /// The whole body's data, when it ended cleanly within `limit`.
    pub(super) fn complete_data(&self, limit: usize) -> Option<Bytes> {
        if !self.ended || self.error.is_some() || self.data_len > limit {
            return None;
        }
        let mut data = BytesMut::with_capacity(self.data_len);
        for frame in &self.frames {
            if let Some(chunk) = frame.data_ref() {
                data.extend_from_slice(chunk);
            }
        }
        Some(data.freeze())
    }

    /// The body to relay: the frames read, then whatever is left unread.
    pub(super) fn into_body(self, rest: UpstreamBody) -> Body {
        let Prefix {
            frames,
            data_len,
            ended,
            error,
        } = self;
        if ended && error.is_none() && frames.iter().all(Frame::is_data) {
            // Whole and trailer-free: one exact-length buffer.
            let mut data = BytesMut::with_capacity(data_len);
            for frame in frames {
                if let Ok(chunk) = frame.into_data() {
                    data.extend_from_slice(&chunk);
                }
            }
            return full(data.freeze());
        }
        let head = stream::iter(frames.into_iter().map(Ok::<_, BoxError>));
        match error {
            Some(e) => {
                let failed = stream::once(async move { Err::<Frame<Bytes>, BoxError>(e.into()) });
                BodyExt::boxed(StreamBody::new(head.chain(failed)))
            }
            None if ended => BodyExt::boxed(StreamBody::new(head)),
            None => {
                let tail = BodyStream::new(rest).map(|frame| frame.map_err(BoxError::from));
                BodyExt::boxed(StreamBody::new(head.chain(tail)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_success_shape_is_parsed() {
        let body = br#"{"status":"success","data":{"userId":"u1","authToken":"tok","me":{"_id":"u1","username":"alice","name":"Alice L."}}}"#;
        let login = parse_login_answer(body).unwrap();
        assert_eq!(login.user_id, "u1");
        assert_eq!(login.token, "tok");
        assert_eq!(login.username.as_deref(), Some("alice"));
        assert_eq!(login.name.as_deref(), Some("Alice L."));
        assert!(!format!("{login:?}").contains("tok\""));
    }

    #[test]
    fn other_answers_are_not_logins() {
        for body in [
            &br#"{"status":"error","error":"Unauthorized"}"#[..],
            br#"{"status":"success","data":{"userId":"u1"}}"#,
            br#"{"status":"success","data":{"userId":"","authToken":"t"}}"#,
            br#"{"status":"success","data":{"userId":5,"authToken":"t"}}"#,
            br#"{"status":"success","data":{"userId":"u\n1","authToken":"t"}}"#,
            br#"{"status":"success","data":"x"}"#,
            b"not json",
            b"",
        ] {
            assert!(parse_login_answer(body).is_none(), "{body:?}");
        }
        let long = format!(
            r#"{{"status":"success","data":{{"userId":"u","authToken":"{}"}}}}"#,
            "t".repeat(MAX_ID_LEN + 1)
        );
        assert!(parse_login_answer(long.as_bytes()).is_none());
        let no_me = br#"{"status":"success","data":{"userId":"u1","authToken":"tok"}}"#;
        assert_eq!(parse_login_answer(no_me).unwrap().username, None);
        assert_eq!(parse_login_answer(no_me).unwrap().name, None);
    }
}
