//! The query parameters of the device-management endpoints, parsed as
//! Rocket.Chat parses them: pure, no I/O. `offset`/`count`/`filter`/`sort`
//! and `sessionId` as Express's `qs` hands them to ajv (`coerceTypes`),
//! pagination as `getPaginationItems`, and `sort` as `parseJsonQuery` +
//! `validateSortKeys`.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

use crate::answers::ApiError;
use crate::api::body::InvalidParams;

/// Rocket.Chat's `API_Default_Count` and `API_Upper_Count_Limit` defaults.
const DEFAULT_COUNT: i64 = 50;
const MAX_COUNT: i64 = 100;

/// Rocket.Chat's `validateSortKeys`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SortKey {
    LoginAt,
    DeviceName,
    DeviceOsName,
    DeviceOsVersion,
    UserName,
    UserUsername,
}

impl SortKey {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "loginAt" => SortKey::LoginAt,
            "device.name" => SortKey::DeviceName,
            "device.os.name" => SortKey::DeviceOsName,
            "device.os.version" => SortKey::DeviceOsVersion,
            "_user.name" => SortKey::UserName,
            "_user.username" => SortKey::UserUsername,
            _ => return None,
        })
    }
}

pub(super) type Sort = Vec<(SortKey, Ordering)>;

/// Validated query of `list` / `list.all` (step 3); `sort` is parsed by the
/// action, as Rocket.Chat's `parseJsonQuery` runs after the second factor.
#[derive(Debug, Default, PartialEq)]
pub(super) struct PageQuery {
    pub(super) offset: Option<f64>,
    pub(super) count: Option<f64>,
    pub(super) filter: String,
    pub(super) sort: Option<String>,
}

/// A query-string value as Express's `qs` would hand it to ajv.
#[derive(Debug, PartialEq)]
enum QueryValue {
    One(String),
    /// Repeated key or bracket syntax: an array or object, never a scalar.
    Complex,
}

/// Parse a query string the way Express's `qs` presents it to ajv: `+` is a
/// space, percent escapes decode (invalid UTF-8 replaced), a repeated key or
/// `key[...]` makes a non-scalar.
fn query_values(query: Option<&str>) -> BTreeMap<String, QueryValue> {
    let mut values = BTreeMap::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode_component(raw_key);
        let (name, bracketed) = match key.find('[') {
            Some(i) if i > 0 => (key[..i].to_string(), true),
            _ => (key, false),
        };
        if name.is_empty() {
            continue;
        }
        let value = if bracketed || values.contains_key(&name) {
            QueryValue::Complex
        } else {
            QueryValue::One(decode_component(raw_value))
        };
        values.insert(name, value);
    }
    values
}

fn decode_component(raw: &str) -> String {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// ajv's order: required, then additional properties, then types.
pub(super) fn parse_page_query(query: Option<&str>) -> Result<PageQuery, InvalidParams> {
    let values = query_values(query);
    if values
        .keys()
        .any(|k| !matches!(k.as_str(), "offset" | "count" | "filter" | "sort"))
    {
        return Err(InvalidParams::Additional);
    }
    let number = |name: &str| -> Result<Option<f64>, InvalidParams> {
        match values.get(name) {
            None => Ok(None),
            Some(QueryValue::One(text)) => coerce_number(text).map(Some),
            Some(QueryValue::Complex) => Err(InvalidParams::NotNumber),
        }
    };
    let string = |name: &str| -> Result<Option<String>, InvalidParams> {
        match values.get(name) {
            None => Ok(None),
            Some(QueryValue::One(text)) => Ok(Some(text.clone())),
            Some(QueryValue::Complex) => Err(InvalidParams::NotString),
        }
    };
    Ok(PageQuery {
        offset: number("offset")?,
        count: number("count")?,
        filter: string("filter")?.unwrap_or_default(),
        sort: string("sort")?.filter(|s| !s.is_empty()),
    })
}

pub(super) fn parse_session_query(query: Option<&str>) -> Result<String, InvalidParams> {
    let values = query_values(query);
    let Some(value) = values.get("sessionId") else {
        return Err(InvalidParams::Missing);
    };
    if values.len() > 1 {
        return Err(InvalidParams::Additional);
    }
    match value {
        QueryValue::One(id) => Ok(id.clone()),
        QueryValue::Complex => Err(InvalidParams::NotString),
    }
}

/// ajv `coerceTypes` for `type: number`: a non-empty numeric string.
fn coerce_number(text: &str) -> Result<f64, InvalidParams> {
    let trimmed = text.trim();
    let numeric = !trimmed.is_empty()
        && trimmed
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'));
    match trimmed.parse::<f64>() {
        Ok(n) if numeric && n.is_finite() => Ok(n),
        _ => Err(InvalidParams::NotNumber),
    }
}

/// Rocket.Chat's `getPaginationItems` on the defaults: `(offset, count)` as
/// echoed in the answer; a `count` of 0 means every session.
pub(super) fn pagination(offset: Option<f64>, count: Option<f64>) -> (i64, i64) {
    // `parseInt(String(n))` truncates toward zero; `as` saturates.
    let offset = offset.map_or(0, |n| n.trunc() as i64);
    let count = match count.map(|n| n.trunc() as i64) {
        None => DEFAULT_COUNT,
        Some(n) if n < 0 => DEFAULT_COUNT,
        Some(n) => n.min(MAX_COUNT),
    };
    (offset.max(0), count)
}

/// A JSON object with its keys in document order (`JSON.parse` keeps order;
/// a repeated key keeps its first position and its last value).
struct OrderedObject(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for OrderedObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = OrderedObject;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedObject, A::Error> {
                let mut entries: Vec<(String, Value)> = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, Value>()? {
                    match entries.iter_mut().find(|(k, _)| *k == key) {
                        Some(slot) => slot.1 = value,
                        None => entries.push((key, value)),
                    }
                }
                Ok(OrderedObject(entries))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// `sort` as Rocket.Chat's `parseJsonQuery` + `validateSortKeys` read it;
/// absent means `{"loginAt":-1}`.
pub(super) fn parse_sort(text: Option<&str>) -> Result<Sort, ApiError> {
    let Some(text) = text else {
        return Ok(vec![(SortKey::LoginAt, Ordering::Greater)]);
    };
    let bad = || ApiError::InvalidSort(text.to_string());
    let OrderedObject(entries) = serde_json::from_str(text).map_err(|_| bad())?;
    let mut directions = Vec::with_capacity(entries.len());
    for (name, value) in &entries {
        let direction = match value.as_f64() {
            Some(1.0) => Ordering::Less,
            Some(-1.0) => Ordering::Greater,
            _ => return Err(bad()),
        };
        directions.push((name.as_str(), direction));
    }
    directions
        .into_iter()
        .map(|(name, direction)| {
            SortKey::parse(name)
                .map(|key| (key, direction))
                .ok_or(ApiError::InvalidSortKeys)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_validate_like_ajv() {
        assert_eq!(parse_session_query(Some("sessionId=abc")), Ok("abc".into()));
        assert_eq!(
            parse_session_query(Some("sessionId=a%20b+c")),
            Ok("a b c".into())
        );
        assert_eq!(parse_session_query(None), Err(InvalidParams::Missing));
        assert_eq!(
            parse_session_query(Some("id=x")),
            Err(InvalidParams::Missing)
        );
        assert_eq!(
            parse_session_query(Some("sessionId=a&x=1")),
            Err(InvalidParams::Additional)
        );
        assert_eq!(
            parse_session_query(Some("sessionId=a&sessionId=b")),
            Err(InvalidParams::NotString)
        );
        assert_eq!(
            parse_session_query(Some("sessionId[a]=b")),
            Err(InvalidParams::NotString)
        );
        assert_eq!(parse_page_query(None), Ok(PageQuery::default()));
        assert_eq!(
            parse_page_query(Some(
                "offset=2&count=5&filter=Fire&sort=%7B%22loginAt%22%3A1%7D"
            )),
            Ok(PageQuery {
                offset: Some(2.0),
                count: Some(5.0),
                filter: "Fire".into(),
                sort: Some(r#"{"loginAt":1}"#.into()),
            })
        );
        assert_eq!(
            parse_page_query(Some("offset=x")),
            Err(InvalidParams::NotNumber)
        );
        assert_eq!(
            parse_page_query(Some("count=")),
            Err(InvalidParams::NotNumber)
        );
        assert_eq!(
            parse_page_query(Some("count=inf")),
            Err(InvalidParams::NotNumber)
        );
        assert_eq!(
            parse_page_query(Some("query=%7B%7D")),
            Err(InvalidParams::Additional)
        );
        assert_eq!(
            parse_page_query(Some("filter=a&filter=b")),
            Err(InvalidParams::NotString)
        );
    }

    #[test]
    fn pagination_follows_rocket_chat_defaults() {
        assert_eq!(pagination(None, None), (0, 50));
        assert_eq!(pagination(Some(3.9), Some(7.2)), (3, 7));
        assert_eq!(pagination(None, Some(1000.0)), (0, 100));
        assert_eq!(pagination(None, Some(0.0)), (0, 0));
        assert_eq!(pagination(Some(-4.0), Some(-1.0)), (0, 50));
    }

    #[test]
    fn sort_parses_like_parse_json_query() {
        assert_eq!(
            parse_sort(None),
            Ok(vec![(SortKey::LoginAt, Ordering::Greater)])
        );
        assert_eq!(
            parse_sort(Some(r#"{"device.name":1,"loginAt":-1}"#)),
            Ok(vec![
                (SortKey::DeviceName, Ordering::Less),
                (SortKey::LoginAt, Ordering::Greater)
            ])
        );
        assert_eq!(parse_sort(Some("{}")), Ok(vec![]));
        for bad in [r#"{"loginAt":2}"#, r#"{"loginAt":"1"}"#, "[1]", "x", "null"] {
            assert_eq!(
                parse_sort(Some(bad)),
                Err(ApiError::InvalidSort(bad.into())),
                "{bad}"
            );
        }
        assert_eq!(
            parse_sort(Some(r#"{"ip":1}"#)),
            Err(ApiError::InvalidSortKeys)
        );
    }
}
