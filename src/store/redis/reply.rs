//! Redis replies decoded into the store's records and outcomes. Pure: every
//! reply the gate did not write (wrong shape, bad number, malformed JSON) is
//! [`StoreError::Corrupt`], never a panic.

use std::collections::HashMap;

use ::redis::Value;

use crate::auth::{TokenHash, decode_hash};
use crate::store::record::{
    CommitOutcome, PrecheckOutcome, SessionRecord, StoreError, StoredSession, UserRecord,
    retry_after_secs,
};
use crate::store::redis::error::corrupt;

/// The get-user script's reply: the user hash and the backup-code set.
pub(super) fn user(id: &str, reply: Value) -> Result<Option<UserRecord>, StoreError> {
    let mut parts = array(reply)?.into_iter();
    let fields = hash_fields(parts.next().unwrap_or(Value::Nil))?;
    let codes = strings(parts.next().unwrap_or(Value::Nil))?;
    user_record(id, fields, codes)
}

/// The session-by-token script's reply: nil, or the session id and its hash.
pub(super) fn session_by_token(reply: Value) -> Result<Option<SessionRecord>, StoreError> {
    if reply == Value::Nil {
        return Ok(None);
    }
    let mut parts = array(reply)?.into_iter();
    let id = text(&parts.next().unwrap_or(Value::Nil))
        .ok_or_else(|| corrupt("token index without a session id"))?;
    session_record(&id, hash_fields(parts.next().unwrap_or(Value::Nil))?)
}

/// The precheck script's reply: `{'unauthorized'}`, `{'limited', pttl_ms}` or
/// `{'ok', session_id, user_hash}`.
pub(super) fn precheck(user_id: &str, reply: Value) -> Result<PrecheckOutcome, StoreError> {
    let mut parts = array(reply)?.into_iter();
    let tag = text(&parts.next().unwrap_or(Value::Nil)).unwrap_or_default();
    match tag.as_str() {
        "unauthorized" => Ok(PrecheckOutcome::Unauthorized),
        "limited" => Ok(PrecheckOutcome::RateLimited {
            retry_after_secs: retry_after_secs(int(&parts.next().unwrap_or(Value::Nil))?),
        }),
        "ok" => {
            let session_id = text(&parts.next().unwrap_or(Value::Nil))
                .ok_or_else(|| corrupt("token index without a session id"))?;
            let fields = hash_fields(parts.next().unwrap_or(Value::Nil))?;
            Ok(PrecheckOutcome::Authorized {
                // Backup codes stay in Redis: the commit script consumes one.
                user: user_record(user_id, fields, Vec::new())?,
                session_id,
            })
        }
        _ => Err(corrupt("unexpected precheck reply")),
    }
}

/// The commit script's reply.
pub(super) fn commit(reply: Value) -> Result<CommitOutcome, StoreError> {
    Ok(match revoke_reply(reply)? {
        Revocation::Required => CommitOutcome::TotpRequired,
        Revocation::Invalid => CommitOutcome::TotpInvalid,
        Revocation::NotFound { remembered } => CommitOutcome::SessionNotFound { remembered },
        Revocation::Revoked {
            hash,
            expiry,
            remembered,
        } => CommitOutcome::Revoked {
            token_hash_b64: hash,
            expires_at_secs: expiry,
            remembered,
        },
    })
}

/// The revoke script's reply: the revoked hash and its expiry, or `None` when
/// the session is unknown or already logged out.
pub(super) fn revoke(reply: Value) -> Result<Option<(String, u32)>, StoreError> {
    match revoke_reply(reply)? {
        Revocation::Revoked { hash, expiry, .. } => Ok(Some((hash, expiry))),
        Revocation::NotFound { .. } => Ok(None),
        Revocation::Invalid | Revocation::Required => Err(corrupt("unexpected revoke reply")),
    }
}

enum Revocation {
    Required,
    Invalid,
    NotFound {
        remembered: bool,
    },
    Revoked {
        hash: String,
        expiry: u32,
        remembered: bool,
    },
}

fn revoke_reply(reply: Value) -> Result<Revocation, StoreError> {
    let mut parts = array(reply)?.into_iter();
    let tag = text(&parts.next().unwrap_or(Value::Nil)).unwrap_or_default();
    // The commit script appends 1 when a remembered second factor let the call
    // through; the revoke script appends nothing.
    let flag = |item: Option<Value>| item.is_some_and(|v| text(&v).as_deref() == Some("1"));
    match tag.as_str() {
        "required" => Ok(Revocation::Required),
        "invalid" => Ok(Revocation::Invalid),
        "notfound" => Ok(Revocation::NotFound {
            remembered: flag(parts.next()),
        }),
        "revoked" => {
            let hash = text(&parts.next().unwrap_or(Value::Nil))
                .ok_or_else(|| corrupt("revoke reply without a hash"))?;
            let expiry = u32::try_from(int(&parts.next().unwrap_or(Value::Nil))?)
                .map_err(|_| corrupt("revoke reply expiry out of range"))?;
            Ok(Revocation::Revoked {
                hash,
                expiry,
                remembered: flag(parts.next()),
            })
        }
        "corrupt" => Err(StoreError::Corrupt(
            text(&parts.next().unwrap_or(Value::Nil)).unwrap_or_default(),
        )),
        _ => Err(corrupt("unexpected revoke reply")),
    }
}

pub(super) fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        Value::Okay => Some("OK".to_owned()),
        Value::Double(d) => Some(d.to_string()),
        _ => None,
    }
}

pub(super) fn int(value: &Value) -> Result<i64, StoreError> {
    match value {
        Value::Int(n) => Ok(*n),
        other => text(other)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| corrupt("expected an integer")),
    }
}

pub(super) fn array(value: Value) -> Result<Vec<Value>, StoreError> {
    match value {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        _ => Err(corrupt("expected an array")),
    }
}

pub(super) fn strings(value: Value) -> Result<Vec<String>, StoreError> {
    array(value)?
        .iter()
        .map(|v| text(v).ok_or_else(|| corrupt("expected text")))
        .collect()
}

/// HGETALL in RESP2 (flat array) or RESP3 (map) form.
pub(super) fn hash_fields(value: Value) -> Result<HashMap<String, String>, StoreError> {
    let pairs: Vec<(Value, Value)> = match value {
        Value::Map(pairs) => pairs,
        other => {
            let flat = array(other)?;
            if flat.len() % 2 != 0 {
                return Err(corrupt("hash reply with an odd number of items"));
            }
            let mut items = flat.into_iter();
            let mut pairs = Vec::new();
            while let (Some(k), Some(v)) = (items.next(), items.next()) {
                pairs.push((k, v));
            }
            pairs
        }
    };
    pairs
        .into_iter()
        .map(|(k, v)| match (text(&k), text(&v)) {
            (Some(k), Some(v)) => Ok((k, v)),
            _ => Err(corrupt("hash field is not text")),
        })
        .collect()
}

fn user_record(
    id: &str,
    mut fields: HashMap<String, String>,
    mut backup_codes: Vec<String>,
) -> Result<Option<UserRecord>, StoreError> {
    if fields.is_empty() {
        return Ok(None);
    }
    let roles = match fields.get("roles") {
        Some(json) => serde_json::from_str(json)
            .map_err(|_| corrupt("user roles are not a JSON array of strings"))?,
        None => Vec::new(),
    };
    backup_codes.sort();
    Ok(Some(UserRecord {
        id: id.to_owned(),
        username: fields.remove("username").unwrap_or_default(),
        name: fields.remove("name").filter(|n| !n.is_empty()),
        roles,
        totp_secret: fields.remove("totp"),
        backup_codes,
    }))
}

fn session_record(
    id: &str,
    fields: HashMap<String, String>,
) -> Result<Option<SessionRecord>, StoreError> {
    Ok(stored_session(id, fields)?.map(|s| s.record))
}

pub(super) fn stored_session(
    id: &str,
    mut fields: HashMap<String, String>,
) -> Result<Option<StoredSession>, StoreError> {
    if fields.is_empty() {
        return Ok(None);
    }
    let host = fields.remove("host");
    let number = |value: Option<String>, what: &str| -> Result<Option<u64>, StoreError> {
        value
            .map(|v| {
                v.parse()
                    .map_err(|_| corrupt(&format!("session {what} is not a number")))
            })
            .transpose()
    };
    let device = fields
        .remove("device")
        .map(|json| serde_json::from_str(&json).map_err(|_| corrupt("session device is not JSON")))
        .transpose()?;
    let record = SessionRecord {
        id: id.to_owned(),
        user_id: fields
            .remove("userId")
            .ok_or_else(|| corrupt("session without userId"))?,
        token_hash: fields
            .remove("tokenHash")
            .ok_or_else(|| corrupt("session without tokenHash"))?,
        ip: fields.remove("ip"),
        user_agent: fields.remove("userAgent"),
        device,
        login_at_ms: number(fields.remove("loginAt"), "loginAt")?
            .ok_or_else(|| corrupt("session without loginAt"))?,
        logout_at_ms: number(fields.remove("logoutAt"), "logoutAt")?,
        logout_by: fields.remove("logoutBy"),
    };
    Ok(Some(StoredSession { record, host }))
}

/// A revoked-set member as a token hash, without copying the reply.
pub(super) fn member_hash(value: &Value) -> Option<TokenHash> {
    match value {
        Value::BulkString(bytes) => decode_hash(std::str::from_utf8(bytes).ok()?),
        other => decode_hash(&text(other)?),
    }
}

/// A revoked-set score (expiry, Unix seconds).
pub(super) fn score_secs(value: &Value) -> Option<u32> {
    let score: f64 = match value {
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok()?.parse().ok()?,
        Value::Double(d) => *d,
        other => text(other)?.parse().ok()?,
    };
    Some(score_to_u32(score))
}

fn score_to_u32(score: f64) -> u32 {
    if score >= f64::from(u32::MAX) {
        u32::MAX
    } else if score <= 0.0 {
        0
    } else {
        // In range: the cast cannot truncate beyond the fraction.
        score as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_hash_parses_and_rejects_bad_numbers() {
        let fields: HashMap<String, String> = [
            ("userId", "u1"),
            ("tokenHash", "h"),
            ("loginAt", "5"),
            ("device", "{\"os\":\"x\"}"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let session = session_record("s1", fields.clone());
        assert_eq!(
            session,
            Ok(Some(SessionRecord {
                id: "s1".into(),
                user_id: "u1".into(),
                token_hash: "h".into(),
                ip: None,
                user_agent: None,
                device: Some(serde_json::json!({"os": "x"})),
                login_at_ms: 5,
                logout_at_ms: None,
                logout_by: None,
            }))
        );
        let mut bad = fields;
        bad.insert("loginAt".into(), "soon".into());
        assert!(matches!(
            session_record("s1", bad),
            Err(StoreError::Corrupt(_))
        ));
        assert_eq!(session_record("s1", HashMap::new()), Ok(None));
    }
}
