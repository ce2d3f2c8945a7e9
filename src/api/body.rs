//! The logout request body (SPEC §1 row 3, §8): exactly one property `sessionId`
//! of type string, in any of the body forms Rocket.Chat accepts.
//!
//! Accepted forms:
//! - `application/json` (any parameters, any case), or no Content-Type at all;
//! - `application/x-www-form-urlencoded` (`sessionId=...`, `+` is a space), read as
//!   JSON instead when its first non-whitespace byte is `{` (`curl -d '{…}'` sends
//!   the form type by default);
//! - either of the above wrapping the real body as `{"payload":"<json>"}` /
//!   `payload=<json>` (Rocket.Chat's `bodyParams.payload` unwrapping), one level only.
//!
//! Decisions: an empty (or whitespace-only) body is [`InvalidParams::Missing`]
//! whatever its type, as Rocket.Chat's empty `bodyParams` would be; any other
//! Content-Type is [`InvalidParams::Malformed`]. Duplicate JSON keys: the last one
//! wins, as with JavaScript's `JSON.parse`. Numbers are never coerced to strings.
//! Nesting depth is bounded by serde_json's recursion limit (128), so hostile
//! input cannot overflow the stack.

use serde_json::{Map, Value};

/// Why a logout body was refused; each maps to one exact Rocket.Chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidParams {
    /// No `sessionId` property (also: empty body).
    #[error("must have required property 'sessionId' [invalid-params]")]
    Missing,
    /// `sessionId` is present but not a string (number, array, repeated form key…).
    #[error("must be string [invalid-params]")]
    NotString,
    /// A property other than `sessionId`.
    #[error("must NOT have additional properties [invalid-params]")]
    Additional,
    /// Valid JSON, but not an object.
    #[error("must be object [invalid-params]")]
    NotObject,
    /// A query parameter declared a number (`offset`, `count`) is not one
    /// (ajv with `coerceTypes`, as Rocket.Chat validates query strings).
    #[error("must be number [invalid-params]")]
    NotNumber,
    /// Malformed JSON, bad UTF-8, or an unsupported content type.
    #[error("Invalid request body [invalid-params]")]
    Malformed,
}

impl InvalidParams {
    /// The exact `error` text of the 400 answer.
    pub fn message(&self) -> &'static str {
        match self {
            InvalidParams::Missing => "must have required property 'sessionId' [invalid-params]",
            InvalidParams::NotString => "must be string [invalid-params]",
            InvalidParams::Additional => "must NOT have additional properties [invalid-params]",
            InvalidParams::NotObject => "must be object [invalid-params]",
            InvalidParams::NotNumber => "must be number [invalid-params]",
            InvalidParams::Malformed => "Invalid request body [invalid-params]",
        }
    }
}

/// Extract the `sessionId` from a logout request body.
///
/// # Errors
/// The [`InvalidParams`] case the body violates, checked in ajv's order: missing
/// property, then additional properties, then the property's type.
pub fn parse_logout_body(content_type: Option<&str>, body: &[u8]) -> Result<String, InvalidParams> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        return Err(InvalidParams::Missing);
    }
    match BodyKind::of(content_type) {
        BodyKind::Json => parse_json(trimmed, true),
        BodyKind::Form if trimmed.starts_with(b"{") => parse_json(trimmed, true),
        BodyKind::Form => parse_form(trimmed),
        BodyKind::Unsupported => Err(InvalidParams::Malformed),
    }
}

enum BodyKind {
    Json,
    Form,
    Unsupported,
}

impl BodyKind {
    fn of(content_type: Option<&str>) -> BodyKind {
        let Some(content_type) = content_type else {
            return BodyKind::Json;
        };
        let media_type = content_type
            .split_once(';')
            .map_or(content_type, |(media_type, _)| media_type)
            .trim();
        if media_type.is_empty() || media_type.eq_ignore_ascii_case("application/json") {
            BodyKind::Json
        } else if media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            BodyKind::Form
        } else {
            BodyKind::Unsupported
        }
    }
}

fn parse_json(bytes: &[u8], unwrap_payload: bool) -> Result<String, InvalidParams> {
    let value: Value = serde_json::from_slice(bytes).map_err(|_| InvalidParams::Malformed)?;
    let Value::Object(mut object) = value else {
        return Err(InvalidParams::NotObject);
    };
    if unwrap_payload && object.len() == 1 {
        if let Some(Value::String(inner)) = object.get("payload") {
            if !inner.is_empty() {
                return parse_json(inner.as_bytes(), false);
            }
        }
    }
    session_id_from_object(&mut object)
}

fn session_id_from_object(object: &mut Map<String, Value>) -> Result<String, InvalidParams> {
    let session_id = object.remove("sessionId").ok_or(InvalidParams::Missing)?;
    if !object.is_empty() {
        return Err(InvalidParams::Additional);
    }
    match session_id {
        Value::String(id) => Ok(id),
        _ => Err(InvalidParams::NotString),
    }
}

/// `application/x-www-form-urlencoded`, read the way Rocket.Chat's `qs` parser
/// would shape it: a repeated key or a bracketed key (`sessionId[]`, `sessionId[a]`)
/// becomes an array or object, i.e. not a string.
fn parse_form(bytes: &[u8]) -> Result<String, InvalidParams> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for pair in bytes.split(|&b| b == b'&') {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (
                pair.get(..eq).unwrap_or_default(),
                pair.get(eq + 1..).unwrap_or_default(),
            ),
            None => (pair, &b""[..]),
        };
        let name = form_decode(name)?;
        if name.is_empty() {
            continue;
        }
        fields.push((name, form_decode(value)?));
    }
    if let [(name, inner)] = fields.as_slice() {
        if name == "payload" && !inner.is_empty() {
            return parse_json(inner.as_bytes(), false);
        }
    }
    let is_session_id = |name: &str| name == "sessionId" || name.starts_with("sessionId[");
    let mut session_fields = fields.iter().filter(|(name, _)| is_session_id(name));
    let Some((first_name, first_value)) = session_fields.next() else {
        return Err(InvalidParams::Missing);
    };
    if fields.iter().any(|(name, _)| !is_session_id(name)) {
        return Err(InvalidParams::Additional);
    }
    if session_fields.next().is_some() || first_name != "sessionId" {
        return Err(InvalidParams::NotString);
    }
    Ok(first_value.clone())
}

/// One form component: `+` is a space, then a single percent-decoding pass.
fn form_decode(component: &[u8]) -> Result<String, InvalidParams> {
    let spaced: Vec<u8> = component
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    let decoded: Vec<u8> = percent_encoding::percent_decode(&spaced).collect();
    String::from_utf8(decoded).map_err(|_| InvalidParams::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: Option<&str> = Some("application/json");
    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

    fn json(body: &str) -> Result<String, InvalidParams> {
        parse_logout_body(JSON, body.as_bytes())
    }

    fn form(body: &str) -> Result<String, InvalidParams> {
        parse_logout_body(FORM, body.as_bytes())
    }

    #[test]
    fn messages_are_exact() {
        assert_eq!(
            InvalidParams::Missing.message(),
            "must have required property 'sessionId' [invalid-params]"
        );
        assert_eq!(
            InvalidParams::NotString.message(),
            "must be string [invalid-params]"
        );
        assert_eq!(
            InvalidParams::Additional.message(),
            "must NOT have additional properties [invalid-params]"
        );
        assert_eq!(
            InvalidParams::NotObject.message(),
            "must be object [invalid-params]"
        );
        assert_eq!(
            InvalidParams::Malformed.message(),
            "Invalid request body [invalid-params]"
        );
        for case in [
            InvalidParams::Missing,
            InvalidParams::NotString,
            InvalidParams::Additional,
            InvalidParams::NotObject,
            InvalidParams::Malformed,
        ] {
            assert_eq!(case.to_string(), case.message());
        }
    }

    #[test]
    fn json_session_id_is_accepted() {
        assert_eq!(json(r#"{"sessionId":"abc123"}"#), Ok("abc123".into()));
        assert_eq!(
            json(" \n{ \"sessionId\" : \"a\\u0062c\" }\r\n"),
            Ok("abc".into())
        );
        assert_eq!(json(r#"{"sessionId":""}"#), Ok(String::new()));
    }

    #[test]
    fn json_content_type_parameters_and_case_are_ignored() {
        for content_type in [
            "application/json; charset=utf-8",
            "Application/JSON",
            " application/json ;charset=UTF-8",
            "",
        ] {
            assert_eq!(
                parse_logout_body(Some(content_type), br#"{"sessionId":"s"}"#),
                Ok("s".into()),
                "{content_type}"
            );
        }
    }

    #[test]
    fn missing_content_type_is_read_as_json() {
        assert_eq!(
            parse_logout_body(None, br#"{"sessionId":"s"}"#),
            Ok("s".into())
        );
        assert_eq!(
            parse_logout_body(None, b"sessionId=s"),
            Err(InvalidParams::Malformed)
        );
    }

    #[test]
    fn byte_order_mark_is_skipped() {
        assert_eq!(
            parse_logout_body(JSON, b"\xEF\xBB\xBF{\"sessionId\":\"s\"}"),
            Ok("s".into())
        );
    }

    #[test]
    fn empty_body_is_missing_property() {
        assert_eq!(json(""), Err(InvalidParams::Missing));
        assert_eq!(json(" \r\n"), Err(InvalidParams::Missing));
        assert_eq!(form(""), Err(InvalidParams::Missing));
        assert_eq!(
            parse_logout_body(Some("text/plain"), b""),
            Err(InvalidParams::Missing)
        );
        assert_eq!(parse_logout_body(None, b""), Err(InvalidParams::Missing));
    }

    #[test]
    fn json_without_session_id_is_missing_property() {
        assert_eq!(json("{}"), Err(InvalidParams::Missing));
        assert_eq!(json(r#"{"sessionid":"s"}"#), Err(InvalidParams::Missing));
        // Missing is reported before additional properties, like ajv.
        assert_eq!(json(r#"{"other":"s"}"#), Err(InvalidParams::Missing));
    }

    #[test]
    fn json_extra_property_is_additional() {
        assert_eq!(
            json(r#"{"sessionId":"s","x":1}"#),
            Err(InvalidParams::Additional)
        );
        // Additional is reported before the wrong type.
        assert_eq!(
            json(r#"{"sessionId":1,"x":1}"#),
            Err(InvalidParams::Additional)
        );
    }

    #[test]
    fn json_non_string_session_id_is_not_string() {
        for body in [
            r#"{"sessionId":123}"#,
            r#"{"sessionId":1.5}"#,
            r#"{"sessionId":null}"#,
            r#"{"sessionId":true}"#,
            r#"{"sessionId":["s"]}"#,
            r#"{"sessionId":{"$ne":""}}"#,
        ] {
            assert_eq!(json(body), Err(InvalidParams::NotString), "{body}");
        }
    }

    #[test]
    fn json_non_object_is_not_object() {
        for body in ["[]", r#"["sessionId"]"#, r#""s""#, "1", "null", "true"] {
            assert_eq!(json(body), Err(InvalidParams::NotObject), "{body}");
        }
    }

    #[test]
    fn malformed_json_is_malformed() {
        for body in [
            "{",
            r#"{"sessionId":"s"} trailing"#,
            r#"{"sessionId":'s'}"#,
            r#"{"sessionId":"s",}"#,
            r#"{"sessionId":"s"}{"sessionId":"t"}"#,
            "{\"sessionId\":\"\u{1}\"}",
        ] {
            assert_eq!(json(body), Err(InvalidParams::Malformed), "{body:?}");
        }
    }

    #[test]
    fn invalid_utf8_is_malformed() {
        assert_eq!(
            parse_logout_body(JSON, b"{\"sessionId\":\"\xFF\"}"),
            Err(InvalidParams::Malformed)
        );
        assert_eq!(
            parse_logout_body(FORM, b"sessionId=%FF"),
            Err(InvalidParams::Malformed)
        );
        assert_eq!(
            parse_logout_body(FORM, b"sessionId=\xC3"),
            Err(InvalidParams::Malformed)
        );
    }

    #[test]
    fn duplicate_json_keys_last_one_wins() {
        assert_eq!(json(r#"{"sessionId":"a","sessionId":"b"}"#), Ok("b".into()));
        assert_eq!(json(r#"{"sessionId":1,"sessionId":"b"}"#), Ok("b".into()));
        assert_eq!(
            json(r#"{"sessionId":"a","sessionId":2}"#),
            Err(InvalidParams::NotString)
        );
    }

    #[test]
    fn deeply_nested_json_is_malformed_not_a_stack_overflow() {
        let deep_array = "[".repeat(200_000);
        assert_eq!(json(&deep_array), Err(InvalidParams::Malformed));
        let deep_object = format!("{}{}", r#"{"sessionId":"#.repeat(100_000), "\"s\"");
        assert_eq!(json(&deep_object), Err(InvalidParams::Malformed));
    }

    #[test]
    fn unsupported_content_type_is_malformed() {
        for content_type in [
            "text/plain",
            "application/xml",
            "multipart/form-data; boundary=x",
            "application/vnd.api+json",
        ] {
            assert_eq!(
                parse_logout_body(Some(content_type), br#"{"sessionId":"s"}"#),
                Err(InvalidParams::Malformed),
                "{content_type}"
            );
        }
    }

    #[test]
    fn payload_wrapper_is_unwrapped_once() {
        assert_eq!(
            json(r#"{"payload":"{\"sessionId\":\"s\"}"}"#),
            Ok("s".into())
        );
        assert_eq!(
            json(r#"{"payload":"{\"sessionId\":\"s\",\"x\":1}"}"#),
            Err(InvalidParams::Additional)
        );
        assert_eq!(
            json(r#"{"payload":"{\"sessionId\":5}"}"#),
            Err(InvalidParams::NotString)
        );
        assert_eq!(json(r#"{"payload":"[1]"}"#), Err(InvalidParams::NotObject));
        assert_eq!(json(r#"{"payload":"{"}"#), Err(InvalidParams::Malformed));
        // One level only: a nested payload is just an object without sessionId.
        assert_eq!(
            json(r#"{"payload":"{\"payload\":\"{\\\"sessionId\\\":\\\"s\\\"}\"}"}"#),
            Err(InvalidParams::Missing)
        );
    }

    #[test]
    fn payload_wrapper_needs_a_lone_non_empty_string() {
        assert_eq!(json(r#"{"payload":""}"#), Err(InvalidParams::Missing));
        assert_eq!(
            json(r#"{"payload":{"sessionId":"s"}}"#),
            Err(InvalidParams::Missing)
        );
        assert_eq!(
            json(r#"{"payload":"{\"sessionId\":\"s\"}","sessionId":"t"}"#),
            Err(InvalidParams::Additional)
        );
    }

    #[test]
    fn form_session_id_is_decoded() {
        assert_eq!(form("sessionId=abc"), Ok("abc".into()));
        assert_eq!(form("sessionId=a+b%2Bc%20d"), Ok("a b+c d".into()));
        assert_eq!(form("session%49d=x&"), Ok("x".into()));
        assert_eq!(form("&&sessionId=x"), Ok("x".into()));
        assert_eq!(form("sessionId="), Ok(String::new()));
        assert_eq!(form("sessionId"), Ok(String::new()));
        assert_eq!(form("sessionId=a=b"), Ok("a=b".into()));
        assert_eq!(
            parse_logout_body(
                Some("Application/X-WWW-Form-Urlencoded; charset=utf-8"),
                b"sessionId=s"
            ),
            Ok("s".into())
        );
    }

    #[test]
    fn form_errors_follow_ajv_order() {
        assert_eq!(form("other=x"), Err(InvalidParams::Missing));
        assert_eq!(form("sessionId=x&other=y"), Err(InvalidParams::Additional));
        assert_eq!(
            form("sessionId=x&sessionId=y"),
            Err(InvalidParams::NotString)
        );
        assert_eq!(
            form("sessionId=x&sessionId=y&z=1"),
            Err(InvalidParams::Additional)
        );
        assert_eq!(form("sessionId[]=x"), Err(InvalidParams::NotString));
        assert_eq!(form("sessionId%5Ba%5D=x"), Err(InvalidParams::NotString));
    }

    #[test]
    fn form_typed_json_body_is_read_as_json() {
        assert_eq!(form(r#"  {"sessionId":"s"}"#), Ok("s".into()));
        assert_eq!(form(r#"{"sessionId":7}"#), Err(InvalidParams::NotString));
        assert_eq!(form("{bad"), Err(InvalidParams::Malformed));
    }

    #[test]
    fn form_payload_wrapper_is_unwrapped() {
        assert_eq!(
            form("payload=%7B%22sessionId%22%3A%22s%22%7D"),
            Ok("s".into())
        );
        assert_eq!(form("payload=not-json"), Err(InvalidParams::Malformed));
        assert_eq!(
            form("payload=x&sessionId=s"),
            Err(InvalidParams::Additional)
        );
    }
}
