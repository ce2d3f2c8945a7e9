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
//!
//! - `mod.rs`: the handler: the checks, in order, and the actions.
//! - `query.rs`: the query parameters, parsed as Rocket.Chat parses them.
//! - `views.rs`: the rows of a listing (search, sort) and the JSON answers.

mod query;
mod views;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde::ser::Serialize;

use self::query::{PageQuery, pagination, parse_page_query, parse_session_query, parse_sort};
use self::views::{InfoAnswer, PageAnswer, Row, SessionView, compare, search_term, user_matches};
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
    CommitOutcome, Precheck, Proof, Remember, Store, StoreError, StoredSession, UserRecord,
};
use crate::totp::crypto::SecretKey;
use crate::verify::CallerAuth;

/// Target of the store's commit step when only the second factor is to be
/// consumed: no session can have this id (a NUL cannot reach the CLI's argv,
/// and captured ids are Meteor ids), so the commit consumes the proof and
/// reports "not found" without touching any session.
const SECOND_FACTOR_ONLY: &str = "\u{0}second-factor-only";

/// Users fetched concurrently when a listing needs usernames.
const USER_BATCH: usize = 256;

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

enum Params {
    Page(PageQuery),
    Session(String),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_documented_methods_are_answered() {
        assert!(DevicesApi::answers(DeviceEndpoint::List, &Method::GET));
        assert!(!DevicesApi::answers(DeviceEndpoint::List, &Method::POST));
        assert!(DevicesApi::answers(DeviceEndpoint::LogoutMe, &Method::POST));
        assert!(!DevicesApi::answers(DeviceEndpoint::LogoutMe, &Method::GET));
        assert!(DevicesApi::answers(DeviceEndpoint::InfoAdmin, &Method::GET));
    }
}
