//! The device-management family, answered by the gate from the sessions it
//! holds, for legacy servers that lack it (Rocket.Chat EE's
//! `ee/server/api/sessions.ts`):
//!
//! | endpoint | method | who | 2FA |
//! |---|---|---|---|
//! | `/api/v1/sessions/list` | GET | the caller's active sessions | no |
//! | `/api/v1/sessions/info?sessionId=` | GET | one of the caller's sessions (also logged-out ones) | no |
//! | `/api/v1/sessions/logout.me` | POST `{"sessionId"}` | log out one of the caller's sessions | no |
//! | `/api/v1/sessions/list.all` | GET | every active session, with `_user` | `view-device-management` + TOTP |
//! | `/api/v1/sessions/info.admin?sessionId=` | GET | one active session, with `_user` | `view-device-management` + TOTP |
//!
//! Checks run in Rocket.Chat's order: token (401, with the unknown-token
//! fallback of [`CallerAuth`]) → TOTP lockout (429, admin endpoints) → params
//! (400 `invalid-params`, ajv with `coerceTypes` over the query string) →
//! permission (403) → second factor (403/400) → the action (sort errors 400,
//! unknown session 404). Other methods on these paths are forwarded.
//!
//! Rocket.Chat behaviours kept on purpose: `count` defaults to 50, is capped
//! at 100, and `0` means "all"; the answer echoes the `count` and `offset`
//! asked for; the page is taken newest login first and `sort` then orders
//! that page only (Rocket.Chat's `$skip`/`$limit` precede its custom
//! `$sort`); `filter` is a case-insensitive substring of
//! device name + type + OS name + session id + user id (and, for `list.all`,
//! of the username or display name). `host` is the `Host` header the login
//! came with (`null` for sessions added without one, as Rocket.Chat's `$first`
//! of a missing field); `_user` carries `username` then `name`, the order of
//! Rocket.Chat's user documents (its `$project` keeps the stored order, and
//! accounts are inserted with `username`, `name` set after). Differences:
//! `_user` has no `avatarETag`/`avatarOrigin` (the gate does not know them),
//! `info.admin` matches the session id exactly, and `info` returns the session
//! fields of `DeviceManagementSession` (plus `logoutAt`/`logoutBy`), not
//! Rocket.Chat's whole internal document.
//!
//! `list.all` and `info.admin` honour the remembered second factor
//! (`totp.remember_seconds`) exactly as the logout endpoint does: a code
//! verified on any of the three opens the window for all of them.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use crate::answers::{ApiError, json_response, logout_success};
use crate::api::body::{InvalidParams, parse_logout_body};
use crate::api::logout::{
    ReadBody, caller_or_refusal, commit_for, deny_delay, header_text, read_body, remembered,
    second_factor_proof, store_error, truncate,
};
use crate::auth::{
    Permissions, VIEW_DEVICE_MANAGEMENT, client_fingerprint, decode_hash, encode_hash, hash_token,
};
use crate::body::Body;
use crate::capture::ClientFacts;
use crate::config::Config;
use crate::conn::ConnInfo;
use crate::metrics::Metrics;
use crate::revocation::RevokedSet;
use crate::route::DeviceEndpoint;
use crate::store::{
    CommitOutcome, Precheck, Proof, Remember, SessionRecord, Store, StoreError, StoredSession,
    UserRecord,
};
use crate::totp::crypto::SecretKey;
use crate::verify::CallerAuth;

/// Rocket.Chat's `API_Default_Count` and `API_Upper_Count_Limit` defaults.
const DEFAULT_COUNT: i64 = 50;
const MAX_COUNT: i64 = 100;

/// Target of the store's commit step when only the second factor is to be
/// consumed: no session can have this id (a NUL cannot reach the CLI's argv,
/// and captured ids are Meteor ids), so the commit consumes the proof and
/// reports "not found" without touching any session.
const SECOND_FACTOR_ONLY: &str = "\u{0}second-factor-only";

/// Users fetched concurrently when a listing needs usernames.
const USER_BATCH: usize = 256;

/// Rocket.Chat's `validateSortKeys`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SortKey {
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

type Sort = Vec<(SortKey, Ordering)>;

#[derive(Clone)]
pub struct DevicesApi {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    caller: CallerAuth,
    key: Arc<SecretKey>,
    permissions: Permissions,
    revoked: RevokedSet,
    metrics: Arc<Metrics>,
    deny_delay: Duration,
    max_body_bytes: usize,
    totp_max_failures: u32,
    totp_lockout_secs: u64,
    totp_window: u8,
    token_lifetime_secs: u64,
    /// `totp.remember_seconds`; 0: every admin call needs a code.
    remember_secs: u64,
}

/// Validated query of `list` / `list.all` (step 3); `sort` is parsed by the
/// action, as Rocket.Chat's `parseJsonQuery` runs after the second factor.
#[derive(Debug, Default, PartialEq)]
struct PageQuery {
    offset: Option<f64>,
    count: Option<f64>,
    filter: String,
    sort: Option<String>,
}

enum Params {
    Page(PageQuery),
    Session(String),
}

/// A query-string value as Express's `qs` would hand it to ajv.
#[derive(Debug, PartialEq)]
enum QueryValue {
    One(String),
    /// Repeated key or bracket syntax: an array or object, never a scalar.
    Complex,
}

impl DevicesApi {
    pub fn new(
        cfg: &Config,
        store: Store,
        key: Arc<SecretKey>,
        revoked: RevokedSet,
        caller: CallerAuth,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                caller,
                key,
                permissions: Permissions::new(&cfg.permissions),
                revoked,
                metrics,
                deny_delay: cfg.logout.deny_delay,
                max_body_bytes: cfg.logout.max_body_bytes,
                totp_max_failures: cfg.logout.totp_max_failures,
                totp_lockout_secs: cfg.logout.totp_lockout.as_secs(),
                totp_window: cfg.totp.window,
                token_lifetime_secs: cfg.revocation.token_lifetime.as_secs(),
                remember_secs: cfg.totp.remember.as_secs(),
            }),
        }
    }

    /// Does the gate answer this method on this endpoint? Other methods are
    /// forwarded (the upstream answers them as it always did).
    pub fn answers(endpoint: DeviceEndpoint, method: &Method) -> bool {
        let expected = match endpoint {
            DeviceEndpoint::LogoutMe => Method::POST,
            _ => Method::GET,
        };
        *method == expected
    }

    pub async fn handle(
        &self,
        endpoint: DeviceEndpoint,
        req: Request<Incoming>,
        conn: ConnInfo,
    ) -> Response<Body> {
        let inner = &self.inner;
        let (parts, body) = req.into_parts();
        let body = match endpoint {
            DeviceEndpoint::LogoutMe => Some(read_body(body, inner.max_body_bytes).await),
            _ => None,
        };
        let client = ClientFacts::of(&parts.headers, &conn);
        let result = self.answer(endpoint, &parts, body.as_ref(), &client).await;
        let (outcome, mut response) = match result {
            Ok(response) => ("success", response),
            Err(err) => (err.outcome(), err.into_response()),
        };
        if let Some(event) = audit_event(endpoint) {
            tracing::info!(
                target: "sessiongate::audit",
                event,
                caller = ?truncate(header_text(&parts.headers, "x-user-id").unwrap_or_default()),
                outcome,
                status = response.status().as_u16(),
                client_ip = %client.ip,
            );
        }
        deny_delay(response.status(), inner.deny_delay).await;
        if matches!(body, Some(ReadBody::TooLarge)) {
            // The rest of the body is unread: the connection cannot be reused.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }

    async fn answer(
        &self,
        endpoint: DeviceEndpoint,
        parts: &Parts,
        body: Option<&ReadBody>,
        client: &ClientFacts,
    ) -> Result<Response<Body>, ApiError> {
        let inner = &self.inner;
        let headers = &parts.headers;
        let admin = matches!(
            endpoint,
            DeviceEndpoint::ListAll | DeviceEndpoint::InfoAdmin
        );

        // 1 + 2: who is calling; the TOTP lockout only where a code is asked.
        let user_id = header_text(headers, "x-user-id").ok_or(ApiError::Unauthorized)?;
        let token = header_text(headers, "x-auth-token").ok_or(ApiError::Unauthorized)?;
        let token_hash_b64 = encode_hash(&hash_token(token));
        let precheck = Precheck {
            user_id,
            token_hash_b64: &token_hash_b64,
            rate_limit: None,
            lockout: if admin {
                (inner.totp_max_failures, inner.totp_lockout_secs)
            } else {
                (0, 1)
            },
        };
        let user = inner
            .caller
            .precheck(&precheck, token, client)
            .await
            .map_err(store_error)
            .and_then(caller_or_refusal)?;

        // 3. Parameters.
        let query = parts.uri.query();
        let params = match (endpoint, body) {
            (DeviceEndpoint::List | DeviceEndpoint::ListAll, _) => {
                Params::Page(parse_page_query(query).map_err(invalid)?)
            }
            (DeviceEndpoint::Info | DeviceEndpoint::InfoAdmin, _) => {
                Params::Session(parse_session_query(query).map_err(invalid)?)
            }
            (DeviceEndpoint::LogoutMe, Some(ReadBody::Bytes(bytes))) => {
                let content_type = header_text(headers, header::CONTENT_TYPE.as_str());
                Params::Session(parse_logout_body(content_type, bytes).map_err(invalid)?)
            }
            (DeviceEndpoint::LogoutMe, Some(ReadBody::TooLarge)) => {
                return Err(ApiError::BodyTooLarge);
            }
            (DeviceEndpoint::LogoutMe, _) => return Err(invalid(InvalidParams::Malformed)),
        };

        // 4 + 5: permission and second factor for the admin views.
        if admin {
            let user = user.as_ref().ok_or(ApiError::Forbidden)?;
            if !inner
                .permissions
                .allows(&user.roles, VIEW_DEVICE_MANAGEMENT)
            {
                return Err(ApiError::Forbidden);
            }
            let remembering = inner.remember_secs > 0;
            let proof =
                second_factor_proof(&inner.key, user, headers, inner.totp_window, remembering)?;
            let fingerprint = client_fingerprint(client.ip, client.user_agent.as_deref());
            let remember = remembering.then(|| Remember {
                token_hash_b64: &token_hash_b64,
                client: &fingerprint,
                ttl_secs: inner.remember_secs,
            });
            if self
                .consume_second_factor(&user.id, proof, remember)
                .await?
            {
                inner.metrics.remembered_call(match endpoint {
                    DeviceEndpoint::ListAll => "sessions_list_all",
                    _ => "sessions_info_admin",
                });
            }
        }

        // 6. The action.
        match (endpoint, params) {
            (DeviceEndpoint::List, Params::Page(page)) => self.list(Some(user_id), &page).await,
            (DeviceEndpoint::ListAll, Params::Page(page)) => self.list(None, &page).await,
            (DeviceEndpoint::Info, Params::Session(id)) => self.info(user_id, &id).await,
            (DeviceEndpoint::InfoAdmin, Params::Session(id)) => self.info_admin(&id).await,
            (DeviceEndpoint::LogoutMe, Params::Session(id)) => self.logout_me(user_id, &id).await,
            // Every endpoint got its own parameter kind above.
            _ => Err(invalid(InvalidParams::Malformed)),
        }
    }

    /// Make the proof single-use (and count a bad one) without revoking
    /// anything, or let a remembered second factor through. `Ok(true)`: the
    /// remembered second factor did.
    async fn consume_second_factor(
        &self,
        user_id: &str,
        proof: Proof,
        remember: Option<Remember<'_>>,
    ) -> Result<bool, ApiError> {
        let inner = &self.inner;
        let commit = commit_for(
            user_id,
            proof,
            SECOND_FACTOR_ONLY,
            inner.totp_window,
            inner.token_lifetime_secs,
            inner.totp_lockout_secs,
            remember,
        );
        let outcome = inner
            .store
            .logout_commit(&commit)
            .await
            .map_err(store_error)?;
        let through_window = remembered(&outcome);
        match outcome {
            CommitOutcome::TotpRequired => Err(ApiError::TotpRequired),
            CommitOutcome::TotpInvalid => Err(ApiError::TotpInvalid),
            CommitOutcome::SessionNotFound { .. } => Ok(through_window),
            CommitOutcome::Revoked { .. } => {
                tracing::error!("second-factor check revoked a session named like its sentinel");
                Ok(through_window)
            }
        }
    }

    /// `list` (`owner` = the caller) and `list.all` (`owner` = `None`).
    async fn list(
        &self,
        owner: Option<&str>,
        page: &PageQuery,
    ) -> Result<Response<Body>, ApiError> {
        let store = &self.inner.store;
        let sort = parse_sort(page.sort.as_deref())?;
        let (offset, count) = pagination(page.offset, page.count);
        let sessions = store
            .list_stored_sessions(owner)
            .await
            .map_err(store_error)?;
        let active: Vec<&StoredSession> = sessions
            .iter()
            .filter(|s| s.record.logout_at_ms.is_none())
            .collect();
        let filter = page.filter.to_lowercase();
        let populate = owner.is_none();
        let mut users = HashMap::new();
        if populate && !filter.is_empty() {
            users = self
                .users(active.iter().map(|s| s.record.user_id.as_str()))
                .await
                .map_err(store_error)?;
        }
        let matching: Vec<&StoredSession> = active
            .into_iter()
            .filter(|s| {
                filter.is_empty()
                    || search_term(&s.record).contains(&filter)
                    || (populate
                        && users
                            .get(&s.record.user_id)
                            .is_some_and(|u| user_matches(u, &filter)))
            })
            .collect();
        let total = matching.len();
        let skip = usize::try_from(offset).unwrap_or(0);
        let take = if count == 0 {
            usize::MAX
        } else {
            usize::try_from(count).unwrap_or(usize::MAX)
        };
        let paged: Vec<&StoredSession> = matching.into_iter().skip(skip).take(take).collect();
        if populate && filter.is_empty() {
            users = self
                .users(paged.iter().map(|s| s.record.user_id.as_str()))
                .await
                .map_err(store_error)?;
        }
        let mut rows: Vec<Row<'_>> = paged
            .into_iter()
            .map(|stored| Row {
                session: &stored.record,
                host: stored.host.as_deref(),
                user: populate.then(|| users.get(&stored.record.user_id)),
            })
            .collect();
        // Rocket.Chat sorts the page it already cut, not the whole set.
        rows.sort_by(|a, b| compare(a, b, &sort));
        let answer = PageAnswer {
            sessions: rows.iter().map(|row| SessionView::of(row, false)).collect(),
            total,
            count,
            offset,
            success: true,
        };
        Ok(ok_json(&answer))
    }

    async fn info(&self, caller: &str, session_id: &str) -> Result<Response<Body>, ApiError> {
        let stored = self
            .inner
            .store
            .get_stored_session(session_id)
            .await
            .map_err(store_error)?
            .filter(|s| s.record.user_id == caller)
            .ok_or(ApiError::SessionNotFound)?;
        let row = Row {
            session: &stored.record,
            host: stored.host.as_deref(),
            user: None,
        };
        Ok(ok_json(&InfoAnswer {
            session: SessionView::of(&row, true),
            success: true,
        }))
    }

    async fn info_admin(&self, session_id: &str) -> Result<Response<Body>, ApiError> {
        let store = &self.inner.store;
        let stored = store
            .get_stored_session(session_id)
            .await
            .map_err(store_error)?
            .filter(|s| s.record.logout_at_ms.is_none())
            .ok_or(ApiError::SessionNotFound)?;
        let user = store
            .get_user(&stored.record.user_id)
            .await
            .map_err(store_error)?;
        let row = Row {
            session: &stored.record,
            host: stored.host.as_deref(),
            user: Some(user.as_ref()),
        };
        Ok(ok_json(&InfoAnswer {
            session: SessionView::of(&row, false),
            success: true,
        }))
    }

    /// Log out one of the caller's own sessions. Like Rocket.Chat, a session
    /// already logged out answers success again.
    async fn logout_me(&self, caller: &str, session_id: &str) -> Result<Response<Body>, ApiError> {
        let inner = &self.inner;
        let session = inner
            .store
            .get_session(session_id)
            .await
            .map_err(store_error)?
            .filter(|s| s.user_id == caller)
            .ok_or(ApiError::SessionNotFound)?;
        if session.logout_at_ms.is_none() {
            let revoked = inner
                .store
                .revoke_session(
                    session_id,
                    caller,
                    inner.token_lifetime_secs,
                    crate::clock::unix_ms(),
                )
                .await
                .map_err(store_error)?;
            if let Some((hash_b64, expires_at_secs)) = revoked {
                // Enforce here at once; other replicas learn it from the feed.
                if let Some(hash) = decode_hash(&hash_b64) {
                    inner.revoked.insert(&hash, expires_at_secs);
                }
            }
        }
        Ok(logout_success(session_id))
    }

    /// The user records of `ids` (deduplicated), fetched concurrently.
    async fn users<'a>(
        &self,
        ids: impl Iterator<Item = &'a str>,
    ) -> Result<HashMap<String, UserRecord>, StoreError> {
        let ids: Vec<&str> = ids.collect::<BTreeSet<_>>().into_iter().collect();
        let mut users = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(USER_BATCH) {
            let fetched = futures_util::future::join_all(
                chunk.iter().map(|id| self.inner.store.get_user(id)),
            )
            .await;
            for user in fetched {
                if let Some(user) = user? {
                    users.insert(user.id.clone(), user);
                }
            }
        }
        Ok(users)
    }
}

fn audit_event(endpoint: DeviceEndpoint) -> Option<&'static str> {
    match endpoint {
        DeviceEndpoint::LogoutMe => Some("sessions.logout.me"),
        DeviceEndpoint::ListAll => Some("sessions.list.all"),
        DeviceEndpoint::InfoAdmin => Some("sessions.info.admin"),
        DeviceEndpoint::List | DeviceEndpoint::Info => None,
    }
}

fn invalid(e: InvalidParams) -> ApiError {
    ApiError::InvalidParams(e.message())
}

fn ok_json(value: &impl Serialize) -> Response<Body> {
    // Plain structs of strings and numbers always serialize.
    let body = serde_json::to_vec(value).expect("device answers serialize");
    json_response(StatusCode::OK, body)
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
fn parse_page_query(query: Option<&str>) -> Result<PageQuery, InvalidParams> {
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

fn parse_session_query(query: Option<&str>) -> Result<String, InvalidParams> {
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
fn pagination(offset: Option<f64>, count: Option<f64>) -> (i64, i64) {
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
fn parse_sort(text: Option<&str>) -> Result<Sort, ApiError> {
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

/// One session of a listing, with its user when the endpoint populates.
struct Row<'a> {
    session: &'a SessionRecord,
    /// The `Host` its login came to, when recorded.
    host: Option<&'a str>,
    /// `None`: not populated; `Some(None)`: populated, no user record.
    user: Option<Option<&'a UserRecord>>,
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
fn search_term(session: &SessionRecord) -> String {
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
fn user_matches(user: &UserRecord, filter: &str) -> bool {
    user.username.to_lowercase().contains(filter)
        || user
            .name
            .as_deref()
            .is_some_and(|n| n.to_lowercase().contains(filter))
}

/// MongoDB order for one key: missing (null) sorts before any string.
/// `Ordering::Less` in `sort` means ascending.
fn compare(a: &Row<'_>, b: &Row<'_>, sort: &Sort) -> Ordering {
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
struct SessionView<'a> {
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
    fn of(row: &Row<'a>, with_logout: bool) -> Self {
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
struct PageAnswer<'a> {
    sessions: Vec<SessionView<'a>>,
    total: usize,
    count: i64,
    offset: i64,
    success: bool,
}

#[derive(serde::Serialize)]
struct InfoAnswer<'a> {
    #[serde(flatten)]
    session: SessionView<'a>,
    success: bool,
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

    #[test]
    fn only_the_documented_methods_are_answered() {
        assert!(DevicesApi::answers(DeviceEndpoint::List, &Method::GET));
        assert!(!DevicesApi::answers(DeviceEndpoint::List, &Method::POST));
        assert!(DevicesApi::answers(DeviceEndpoint::LogoutMe, &Method::POST));
        assert!(!DevicesApi::answers(DeviceEndpoint::LogoutMe, &Method::GET));
        assert!(DevicesApi::answers(DeviceEndpoint::InfoAdmin, &Method::GET));
    }
}
