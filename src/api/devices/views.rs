//! The rows of a device listing and how they are shown: Rocket.Chat's
//! search term and sort order over them, and the JSON shapes of its answers
//! (`DeviceManagementSession`, `_user`, the device object) in Rocket.Chat's
//! field order. Pure, no I/O.

use std::cmp::Ordering;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use super::query::{Sort, SortKey};
use crate::store::{SessionRecord, UserRecord};

/// One session of a listing, with its user when the endpoint populates.
pub(super) struct Row<'a> {
    pub(super) session: &'a SessionRecord,
    /// The `Host` its login came to, when recorded.
    pub(super) host: Option<&'a str>,
    /// `None`: not populated; `Some(None)`: populated, no user record.
    pub(super) user: Option<Option<&'a UserRecord>>,
}

fn device_text<'a>(session: &'a SessionRecord, path: &[&str]) -> Option<&'a str> {
    let mut value = session.device.as_ref()?;
    for part in path {
        value = value.get(part)?;
    }
    value.as_str()
}

/// Rocket.Chat's `searchTerm`: device name, type and OS name, session id and
/// user id, concatenated (here lowercased for the case-insensitive match).
pub(super) fn search_term(session: &SessionRecord) -> String {
    [
        device_text(session, &["name"]),
        device_text(session, &["type"]),
        device_text(session, &["os", "name"]),
        Some(session.id.as_str()),
        Some(session.user_id.as_str()),
    ]
    .into_iter()
    .flatten()
    .collect::<String>()
    .to_lowercase()
}

/// `list.all`'s filter also matches users by username or display name
/// (Rocket.Chat's `findActiveByUsernameOrNameRegexWithExceptionsAndConditions`).
pub(super) fn user_matches(user: &UserRecord, filter: &str) -> bool {
    user.username.to_lowercase().contains(filter)
        || user
            .name
            .as_deref()
            .is_some_and(|n| n.to_lowercase().contains(filter))
}

/// MongoDB order for one key: missing (null) sorts before any string.
/// `Ordering::Less` in `sort` means ascending.
pub(super) fn compare(a: &Row<'_>, b: &Row<'_>, sort: &Sort) -> Ordering {
    for (key, direction) in sort {
        let order = match key {
            SortKey::LoginAt => a.session.login_at_ms.cmp(&b.session.login_at_ms),
            SortKey::DeviceName => text_key(a, b, |r| device_text(r.session, &["name"])),
            SortKey::DeviceOsName => text_key(a, b, |r| device_text(r.session, &["os", "name"])),
            SortKey::DeviceOsVersion => {
                text_key(a, b, |r| device_text(r.session, &["os", "version"]))
            }
            SortKey::UserName => text_key(a, b, |r| {
                r.user
                    .flatten()
                    .and_then(|u| u.name.as_deref())
                    .filter(|n| !n.is_empty())
            }),
            SortKey::UserUsername => text_key(a, b, |r| {
                r.user
                    .flatten()
                    .map(|u| u.username.as_str())
                    .filter(|u| !u.is_empty())
            }),
        };
        let order = if *direction == Ordering::Greater {
            order.reverse()
        } else {
            order
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    Ordering::Equal
}

fn text_key<'a>(a: &Row<'a>, b: &Row<'a>, field: impl Fn(&Row<'a>) -> Option<&'a str>) -> Ordering {
    field(a).cmp(&field(b))
}

/// `DeviceManagementSession` (and `…PopulatedSession` with `_user`), field
/// order as Rocket.Chat's aggregation projects it.
#[derive(serde::Serialize)]
pub(super) struct SessionView<'a> {
    #[serde(rename = "_id")]
    id: &'a str,
    #[serde(rename = "sessionId")]
    session_id: &'a str,
    #[serde(rename = "userId")]
    user_id: &'a str,
    device: Option<RcOrder<'a>>,
    /// The login's `Host` header; `null` when not recorded, as Rocket.Chat's
    /// `$first` of a missing field.
    host: Option<&'a str>,
    ip: Option<&'a str>,
    #[serde(rename = "loginAt")]
    login_at: String,
    #[serde(rename = "logoutAt", skip_serializing_if = "Option::is_none")]
    logout_at: Option<String>,
    #[serde(rename = "logoutBy", skip_serializing_if = "Option::is_none")]
    logout_by: Option<&'a str>,
    #[serde(rename = "_user", skip_serializing_if = "Option::is_none")]
    user: Option<UserView<'a>>,
}

/// `_user`: the fields of Rocket.Chat's projection the gate knows, in the
/// order its user documents store them (a missing field is left out, as
/// `$project` leaves it out).
#[derive(serde::Serialize)]
struct UserView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

impl<'a> SessionView<'a> {
    pub(super) fn of(row: &Row<'a>, with_logout: bool) -> Self {
        let s = row.session;
        Self {
            id: &s.id,
            session_id: &s.id,
            user_id: &s.user_id,
            device: s.device.as_ref().map(RcOrder),
            host: row.host,
            ip: s.ip.as_deref(),
            login_at: crate::clock::iso8601(s.login_at_ms),
            logout_at: s
                .logout_at_ms
                .filter(|_| with_logout)
                .map(crate::clock::iso8601),
            logout_by: s.logout_by.as_deref().filter(|_| with_logout),
            // Rocket.Chat's `$unwind` keeps a session whose user is gone, without `_user`.
            user: row.user.flatten().map(|u| UserView {
                username: Some(u.username.as_str()).filter(|n| !n.is_empty()),
                name: u.name.as_deref().filter(|n| !n.is_empty()),
            }),
        }
    }
}

#[derive(serde::Serialize)]
pub(super) struct PageAnswer<'a> {
    pub(super) sessions: Vec<SessionView<'a>>,
    pub(super) total: usize,
    pub(super) count: i64,
    pub(super) offset: i64,
    pub(super) success: bool,
}

#[derive(serde::Serialize)]
pub(super) struct InfoAnswer<'a> {
    #[serde(flatten)]
    pub(super) session: SessionView<'a>,
    pub(super) success: bool,
}

/// A stored device object written in Rocket.Chat's field order (`type`,
/// `name`, `longVersion`, `os {name, version}`, `version`), any other field
/// after; serde_json's own maps would sort the keys.
struct RcOrder<'a>(&'a Value);

const DEVICE_ORDER: [&str; 5] = ["type", "name", "longVersion", "os", "version"];

impl Serialize for RcOrder<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Value::Object(map) = self.0 else {
            return self.0.serialize(serializer);
        };
        let mut out = serializer.serialize_map(Some(map.len()))?;
        for key in DEVICE_ORDER {
            if let Some(value) = map.get(key) {
                out.serialize_entry(key, &RcOrder(value))?;
            }
        }
        for (key, value) in map {
            if !DEVICE_ORDER.contains(&key.as_str()) {
                out.serialize_entry(key, &RcOrder(value))?;
            }
        }
        out.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{encode_hash, hash_token};

    fn session(id: &str, user: &str, login_at_ms: u64, ua: &str) -> SessionRecord {
        SessionRecord {
            id: id.into(),
            user_id: user.into(),
            token_hash: encode_hash(&hash_token(id)),
            ip: Some("192.0.2.1".into()),
            user_agent: Some(ua.into()),
            device: Some(crate::auth::device_info(ua)),
            login_at_ms,
            logout_at_ms: None,
            logout_by: None,
        }
    }

    #[test]
    fn session_view_has_rocket_chat_fields_in_order() {
        let s = session(
            "S1",
            "u1",
            1_764_064_800_123,
            "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0.6099.71 Safari/537.36",
        );
        let mut user = UserRecord {
            id: "u1".into(),
            username: "alice".into(),
            name: Some("Alice Liddell".into()),
            roles: vec![],
            totp_secret: None,
            backup_codes: vec![],
        };
        let row = Row {
            session: &s,
            host: Some("chat.example.org:3000"),
            user: Some(Some(&user)),
        };
        let text = serde_json::to_string(&SessionView::of(&row, false)).unwrap();
        assert_eq!(
            text,
            r#"{"_id":"S1","sessionId":"S1","userId":"u1","device":{"type":"browser","name":"Chrome","longVersion":"120.0.6099.71","os":{"name":"Linux","version":""},"version":"120.0.6099"},"host":"chat.example.org:3000","ip":"192.0.2.1","loginAt":"2025-11-25T10:00:00.123Z","_user":{"username":"alice","name":"Alice Liddell"}}"#
        );
        // Unknown host and name: `null` and left out, as Rocket.Chat answers them.
        user.name = None;
        let row = Row {
            session: &s,
            host: None,
            user: Some(Some(&user)),
        };
        let text = serde_json::to_string(&SessionView::of(&row, false)).unwrap();
        assert!(
            text.contains(r#""host":null,"ip""#)
                && text.ends_with(r#""_user":{"username":"alice"}}"#),
            "{text}"
        );
        let gone = Row {
            session: &s,
            host: None,
            user: Some(None),
        };
        let text = serde_json::to_string(&SessionView::of(&gone, false)).unwrap();
        assert!(!text.contains("_user"), "{text}");
    }

    #[test]
    fn search_term_is_device_type_os_session_and_user() {
        let s = session(
            "SeSs1",
            "UsEr1",
            0,
            "Mozilla/5.0 (Windows NT 10.0) Firefox/121.0",
        );
        assert_eq!(search_term(&s), "firefoxbrowserwindowssess1user1");
    }

    #[test]
    fn rows_sort_with_missing_values_first_ascending() {
        let a = session("a", "u", 3, "Mozilla/5.0 Firefox/1.0");
        let b = session("b", "u", 2, "curl/8.5.0");
        let mut c = session("c", "u", 1, "");
        c.device = None;
        let rows = || {
            vec![
                Row {
                    session: &a,
                    host: None,
                    user: None,
                },
                Row {
                    session: &b,
                    host: None,
                    user: None,
                },
                Row {
                    session: &c,
                    host: None,
                    user: None,
                },
            ]
        };
        let ids = |rows: &[Row<'_>]| {
            rows.iter()
                .map(|r| r.session.id.clone())
                .collect::<Vec<_>>()
        };
        // Binary string order, as MongoDB's default collation: "Firefox" < "curl".
        let mut asc = rows();
        asc.sort_by(|x, y| compare(x, y, &vec![(SortKey::DeviceName, Ordering::Less)]));
        assert_eq!(ids(&asc), ["c", "a", "b"]);
        let mut desc = rows();
        desc.sort_by(|x, y| compare(x, y, &vec![(SortKey::DeviceName, Ordering::Greater)]));
        assert_eq!(ids(&desc), ["b", "a", "c"]);
        let mut by_login = rows();
        by_login.sort_by(|x, y| compare(x, y, &vec![(SortKey::LoginAt, Ordering::Less)]));
        assert_eq!(ids(&by_login), ["c", "b", "a"]);
    }
}
