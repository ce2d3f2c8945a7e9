//! Behaviour of the session store, on the in-memory backend and on a real,
//! private `redis-server` (see `tests/common/redis_server.rs`).
//!
//! Tests in `on_both_backends!` run the same body on both; the rest need
//! Redis itself (restarts, outages, topologies).

use crate::common;

use std::time::{Duration, Instant};

use common::eventually;
use common::redis_server::{RedisServer, Reply, ServerConfig, free_port};
use sessiongate::auth::{TokenHash, encode_hash, hash_token};
use sessiongate::store::{
    Commit, CommitOutcome, FeedEvent, Precheck, PrecheckOutcome, Proof, RedisOptions, Remember,
    SessionRecord, Store, StoreError, StoredSession, UserRecord,
};
use tokio::sync::mpsc;

const DAY: u64 = 86_400;
/// Short timeouts so outage tests finish quickly.
const TIMEOUT: Duration = Duration::from_millis(500);

fn options(url: &str) -> RedisOptions {
    RedisOptions {
        url: url.to_owned(),
        command_timeout: TIMEOUT,
        connect_timeout: TIMEOUT,
        ..RedisOptions::default()
    }
}

fn redis_store(server: &RedisServer) -> Store {
    Store::redis(options(&server.url())).expect("valid redis options")
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

fn now_secs() -> u32 {
    (now_ms() / 1000) as u32
}

fn h(token: &str) -> String {
    encode_hash(&hash_token(token))
}

fn session(id: &str, user: &str, token: &str, login_at_ms: u64) -> SessionRecord {
    SessionRecord {
        id: id.into(),
        user_id: user.into(),
        token_hash: h(token),
        ip: None,
        user_agent: None,
        device: None,
        login_at_ms,
        logout_at_ms: None,
        logout_by: None,
    }
}

/// `admin1` (user record, role admin, sealed secret) with session `s-admin`;
/// `user2` (no user record) with sessions `s-victim` and `s-other`.
async fn seed(store: &Store) {
    store
        .put_user("admin1", Some("root"), Some(&["admin".to_owned()]))
        .await
        .expect("put user");
    assert_eq!(store.set_totp_secret("admin1", "sealed").await, Ok(true));
    store
        .add_session(&session("s-admin", "admin1", "tok-admin", 1_000))
        .await
        .expect("add session");
    store
        .add_session(&session("s-victim", "user2", "tok-victim", 2_000))
        .await
        .expect("add session");
    store
        .add_session(&session("s-other", "user2", "tok-other", 3_000))
        .await
        .expect("add session");
}

fn precheck<'a>(user: &'a str, hash: &'a str) -> Precheck<'a> {
    Precheck {
        user_id: user,
        token_hash_b64: hash,
        rate_limit: None,
        lockout: (5, 300),
    }
}

fn commit<'a>(user: &'a str, proof: Proof, target: &'a str) -> Commit<'a> {
    Commit {
        user_id: user,
        proof,
        target_session_id: target,
        logout_by: user,
        revoked_ttl_secs: 90 * DAY,
        step_marker_ttl_secs: 90,
        lockout_window_secs: 300,
        now_ms: now_ms(),
        remember: None,
    }
}

fn expiry_after(now_ms: u64, ttl: u64) -> u32 {
    (now_ms / 1000 + ttl) as u32
}

async fn next_event(rx: &mut mpsc::Receiver<FeedEvent>, within: Duration) -> FeedEvent {
    tokio::time::timeout(within, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("no feed event within {within:?}"))
        .expect("feed task ended")
}

async fn expect_snapshot(
    rx: &mut mpsc::Receiver<FeedEvent>,
    within: Duration,
) -> Vec<(TokenHash, u32)> {
    match next_event(rx, within).await {
        FeedEvent::Snapshot(entries) => entries,
        other => panic!("expected a snapshot, got {other:?}"),
    }
}

async fn expect_down(rx: &mut mpsc::Receiver<FeedEvent>, within: Duration) {
    match next_event(rx, within).await {
        FeedEvent::Down(_) => {}
        other => panic!("expected Down, got {other:?}"),
    }
}

/// Poll until the store answers PING again.
async fn wait_until_up(store: &Store, within: Duration) {
    assert!(
        eventually(within, async || store.ping().await.is_ok()).await,
        "store did not recover within {within:?}"
    );
}

fn assert_unavailable<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "expected Unavailable, got {result:?}"
    );
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;

            #[tokio::test]
            async fn memory() {
                super::$name(Store::memory()).await;
            }

            #[tokio::test]
            async fn redis() {
                let server = RedisServer::start();
                super::$name(redis_store(&server)).await;
            }
        }
    )*};
}

on_both_backends!(
    precheck_authorizes_the_owner_of_an_active_token,
    precheck_refuses_unknown_foreign_logged_out_and_revoked_tokens,
    rate_limit_counts_authorized_requests_in_a_fixed_window,
    five_failures_lock_the_user_out,
    accepted_totp_step_is_never_accepted_again,
    a_code_shared_by_two_steps_uses_the_first_unused_one,
    backup_code_is_single_use,
    good_code_on_missing_or_logged_out_session_is_not_found_and_stays_used,
    revoke_logs_out_drops_the_index_and_records_the_hash,
    snapshot_leaves_out_expired_revocations,
    user_updates_keep_secret_and_backup_codes,
    sessions_list_newest_first_and_replacing_a_session_reindexes_it,
    feed_sends_snapshot_first_then_each_revocation,
    remembered_second_factor_covers_one_token_and_client_until_revoked,
    remember_window_ends_on_time_and_use_never_extends_it,
    sessions_keep_their_host_and_users_their_display_name,
);

async fn precheck_authorizes_the_owner_of_an_active_token(store: Store) {
    seed(&store).await;
    // Backup-code hashes never travel with the precheck answer.
    assert_eq!(
        store.set_backup_codes("admin1", &["aa11".to_owned()]).await,
        Ok(true)
    );
    assert_eq!(
        store
            .logout_precheck(&precheck("admin1", &h("tok-admin")))
            .await,
        Ok(PrecheckOutcome::Authorized {
            user: Some(UserRecord {
                id: "admin1".into(),
                username: "root".into(),
                name: None,
                roles: vec!["admin".into()],
                totp_secret: Some("sealed".into()),
                backup_codes: vec![],
            }),
            session_id: "s-admin".into(),
        })
    );
    assert_eq!(
        store
            .logout_precheck(&precheck("user2", &h("tok-victim")))
            .await,
        Ok(PrecheckOutcome::Authorized {
            user: None,
            session_id: "s-victim".into()
        })
    );
}

async fn precheck_refuses_unknown_foreign_logged_out_and_revoked_tokens(store: Store) {
    seed(&store).await;
    let unauthorized = Ok(PrecheckOutcome::Unauthorized);
    // Unknown token.
    assert_eq!(
        store.logout_precheck(&precheck("admin1", &h("nope"))).await,
        unauthorized
    );
    // Another user's token.
    assert_eq!(
        store
            .logout_precheck(&precheck("admin1", &h("tok-victim")))
            .await,
        unauthorized
    );
    // Logged out (and its index entry gone).
    assert!(
        store
            .revoke_session("s-victim", "admin1", DAY, now_ms())
            .await
            .expect("revoke")
            .is_some()
    );
    assert_eq!(
        store
            .logout_precheck(&precheck("user2", &h("tok-victim")))
            .await,
        unauthorized
    );
    // Indexed again by a new active session, but the hash is revoked.
    store
        .add_session(&session("s-again", "user2", "tok-victim", 4_000))
        .await
        .expect("add session");
    assert_eq!(
        store
            .logout_precheck(&precheck("user2", &h("tok-victim")))
            .await,
        unauthorized
    );
    // Imported already logged out: never indexed.
    let mut old = session("s-old", "user2", "tok-old", 500);
    old.logout_at_ms = Some(600);
    store.add_session(&old).await.expect("add session");
    assert_eq!(
        store
            .logout_precheck(&precheck("user2", &h("tok-old")))
            .await,
        unauthorized
    );
}

async fn rate_limit_counts_authorized_requests_in_a_fixed_window(store: Store) {
    seed(&store).await;
    let limited = |user, hash| Precheck {
        rate_limit: Some((3, 60)),
        ..precheck(user, hash)
    };
    let admin_hash = h("tok-admin");
    let bad_hash = h("nope");
    // Refused callers do not use up the owner's budget.
    for _ in 0..2 {
        assert_eq!(
            store.logout_precheck(&limited("admin1", &bad_hash)).await,
            Ok(PrecheckOutcome::Unauthorized)
        );
    }
    for _ in 0..3 {
        assert!(matches!(
            store.logout_precheck(&limited("admin1", &admin_hash)).await,
            Ok(PrecheckOutcome::Authorized { .. })
        ));
    }
    for _ in 0..2 {
        assert_eq!(
            store.logout_precheck(&limited("admin1", &admin_hash)).await,
            Ok(PrecheckOutcome::RateLimited {
                retry_after_secs: 60
            })
        );
    }
    // Another user has a window of their own.
    assert!(matches!(
        store
            .logout_precheck(&limited("user2", &h("tok-victim")))
            .await,
        Ok(PrecheckOutcome::Authorized { .. })
    ));
    // Rate limiting off: no limit, or a limit of 0.
    let zero = Precheck {
        rate_limit: Some((0, 60)),
        ..precheck("admin1", &admin_hash)
    };
    assert!(matches!(
        store.logout_precheck(&zero).await,
        Ok(PrecheckOutcome::Authorized { .. })
    ));
    assert!(matches!(
        store
            .logout_precheck(&precheck("admin1", &admin_hash))
            .await,
        Ok(PrecheckOutcome::Authorized { .. })
    ));
}

async fn five_failures_lock_the_user_out(store: Store) {
    seed(&store).await;
    let admin_hash = h("tok-admin");
    for _ in 0..4 {
        assert_eq!(
            store
                .logout_commit(&commit("admin1", Proof::Invalid, "s-victim"))
                .await,
            Ok(CommitOutcome::TotpInvalid)
        );
    }
    assert!(matches!(
        store
            .logout_precheck(&precheck("admin1", &admin_hash))
            .await,
        Ok(PrecheckOutcome::Authorized { .. })
    ));
    assert_eq!(
        store
            .logout_commit(&commit("admin1", Proof::Invalid, "s-victim"))
            .await,
        Ok(CommitOutcome::TotpInvalid)
    );
    assert_eq!(
        store
            .logout_precheck(&precheck("admin1", &admin_hash))
            .await,
        Ok(PrecheckOutcome::RateLimited {
            retry_after_secs: 300
        })
    );
    // Lockout off.
    let no_lockout = Precheck {
        lockout: (0, 300),
        ..precheck("admin1", &admin_hash)
    };
    assert!(matches!(
        store.logout_precheck(&no_lockout).await,
        Ok(PrecheckOutcome::Authorized { .. })
    ));
}

async fn accepted_totp_step_is_never_accepted_again(store: Store) {
    seed(&store).await;
    let first = commit("admin1", Proof::TotpSteps(vec![1000]), "s-victim");
    assert_eq!(
        store.logout_commit(&first).await,
        Ok(CommitOutcome::Revoked {
            token_hash_b64: h("tok-victim"),
            expires_at_secs: expiry_after(first.now_ms, 90 * DAY),
            remembered: false,
        })
    );
    // Replay of the same step, even against another session.
    assert_eq!(
        store
            .logout_commit(&commit("admin1", Proof::TotpSteps(vec![1000]), "s-other"))
            .await,
        Ok(CommitOutcome::TotpInvalid)
    );
    let other = store
        .get_session("s-other")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(other.logout_at_ms, None);
    // The replay counted as a failure.
    let admin_hash = h("tok-admin");
    let strict = Precheck {
        lockout: (1, 300),
        ..precheck("admin1", &admin_hash)
    };
    assert_eq!(
        store.logout_precheck(&strict).await,
        Ok(PrecheckOutcome::RateLimited {
            retry_after_secs: 300
        })
    );
    // The next step is fresh; the same step is fresh for another user.
    assert!(matches!(
        store
            .logout_commit(&commit("admin1", Proof::TotpSteps(vec![1001]), "s-other"))
            .await,
        Ok(CommitOutcome::Revoked { .. })
    ));
    assert_eq!(
        store
            .logout_commit(&commit("user2", Proof::TotpSteps(vec![1000]), "s-missing"))
            .await,
        Ok(CommitOutcome::SessionNotFound { remembered: false })
    );
}

/// Two steps of the window can share a six-digit code: once the older step is
/// used, the same code is still good for the newer one, and then for neither.
async fn a_code_shared_by_two_steps_uses_the_first_unused_one(store: Store) {
    seed(&store).await;
    assert!(matches!(
        store
            .logout_commit(&commit("admin1", Proof::TotpSteps(vec![1000]), "s-victim"))
            .await,
        Ok(CommitOutcome::Revoked { .. })
    ));
    assert!(matches!(
        store
            .logout_commit(&commit(
                "admin1",
                Proof::TotpSteps(vec![1000, 1001]),
                "s-other"
            ))
            .await,
        Ok(CommitOutcome::Revoked { .. })
    ));
    assert_eq!(
        store
            .logout_commit(&commit(
                "admin1",
                Proof::TotpSteps(vec![1000, 1001]),
                "s-admin"
            ))
            .await,
        Ok(CommitOutcome::TotpInvalid)
    );
}

async fn backup_code_is_single_use(store: Store) {
    seed(&store).await;
    let codes = vec!["aa11".to_owned(), "bb22".to_owned()];
    assert_eq!(store.set_backup_codes("admin1", &codes).await, Ok(true));
    assert_eq!(store.set_backup_codes("ghost", &codes).await, Ok(false));
    assert!(matches!(
        store
            .logout_commit(&commit(
                "admin1",
                Proof::BackupCode("aa11".into()),
                "s-victim"
            ))
            .await,
        Ok(CommitOutcome::Revoked { .. })
    ));
    assert_eq!(
        store
            .logout_commit(&commit(
                "admin1",
                Proof::BackupCode("aa11".into()),
                "s-other"
            ))
            .await,
        Ok(CommitOutcome::TotpInvalid)
    );
    assert_eq!(
        store
            .logout_commit(&commit(
                "admin1",
                Proof::BackupCode("ffff".into()),
                "s-other"
            ))
            .await,
        Ok(CommitOutcome::TotpInvalid)
    );
    let user = store
        .get_user("admin1")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(user.backup_codes, vec!["bb22".to_owned()]);
    // A new set replaces the old one.
    assert_eq!(
        store.set_backup_codes("admin1", &["cc33".to_owned()]).await,
        Ok(true)
    );
    let user = store
        .get_user("admin1")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(user.backup_codes, vec!["cc33".to_owned()]);
}

async fn good_code_on_missing_or_logged_out_session_is_not_found_and_stays_used(store: Store) {
    seed(&store).await;
    assert_eq!(
        store
            .logout_commit(&commit("admin1", Proof::TotpSteps(vec![5]), "nope"))
            .await,
        Ok(CommitOutcome::SessionNotFound { remembered: false })
    );
    assert_eq!(
        store
            .logout_commit(&commit("admin1", Proof::TotpSteps(vec![5]), "s-victim"))
            .await,
        Ok(CommitOutcome::TotpInvalid)
    );
    assert!(
        store
            .revoke_session("s-victim", "cli", DAY, now_ms())
            .await
            .expect("revoke")
            .is_some()
    );
    assert_eq!(
        store
            .logout_commit(&commit("admin1", Proof::TotpSteps(vec![6]), "s-victim"))
            .await,
        Ok(CommitOutcome::SessionNotFound { remembered: false })
    );
}

async fn revoke_logs_out_drops_the_index_and_records_the_hash(store: Store) {
    seed(&store).await;
    let at = now_ms();
    let expiry = expiry_after(at, 3600);
    assert_eq!(
        store.revoke_session("s-victim", "admin1", 3600, at).await,
        Ok(Some((h("tok-victim"), expiry)))
    );
    assert_eq!(store.session_by_token(&h("tok-victim")).await, Ok(None));
    let revoked = store
        .get_session("s-victim")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(revoked.logout_at_ms, Some(at));
    assert_eq!(revoked.logout_by.as_deref(), Some("admin1"));
    assert_eq!(
        store.revoke_session("s-victim", "admin1", 3600, at).await,
        Ok(None)
    );
    assert_eq!(
        store.revoke_session("ghost", "admin1", 3600, at).await,
        Ok(None)
    );
    // Other sessions are untouched.
    assert_eq!(
        store
            .session_by_token(&h("tok-other"))
            .await
            .expect("get")
            .map(|s| s.id),
        Some("s-other".to_owned())
    );
    assert_eq!(
        store.revoked_snapshot(now_secs()).await,
        Ok(vec![(hash_token("tok-victim"), expiry)])
    );
    assert_eq!(store.revoked_snapshot(expiry).await, Ok(vec![]));
}

async fn snapshot_leaves_out_expired_revocations(store: Store) {
    seed(&store).await;
    let two_hours_ago = now_ms() - 2 * 3600 * 1000;
    store
        .revoke_session("s-victim", "cli", 3600, two_hours_ago)
        .await
        .expect("revoke");
    let at = now_ms();
    store
        .revoke_session("s-other", "cli", 3600, at)
        .await
        .expect("revoke");
    assert_eq!(
        store.revoked_snapshot(now_secs()).await,
        Ok(vec![(hash_token("tok-other"), expiry_after(at, 3600))])
    );
}

async fn user_updates_keep_secret_and_backup_codes(store: Store) {
    let admin = vec!["admin".to_owned()];
    store
        .put_user("u", Some("alice"), Some(&admin))
        .await
        .expect("put");
    assert_eq!(store.set_totp_secret("u", "sealed-1").await, Ok(true));
    assert_eq!(
        store.set_backup_codes("u", &["c1".to_owned()]).await,
        Ok(true)
    );
    store.put_user("u", None, None).await.expect("put");
    store
        .put_user("u", Some("alice2"), None)
        .await
        .expect("put");
    assert_eq!(
        store.get_user("u").await,
        Ok(Some(UserRecord {
            id: "u".into(),
            username: "alice2".into(),
            name: None,
            roles: admin.clone(),
            totp_secret: Some("sealed-1".into()),
            backup_codes: vec!["c1".into()],
        }))
    );
    store.put_user("u", None, Some(&[])).await.expect("put");
    assert_eq!(
        store.get_user("u").await.expect("get").map(|u| u.roles),
        Some(vec![])
    );
    // A user created without details; unknown users.
    store.put_user("bare", None, None).await.expect("put");
    assert_eq!(
        store.get_user("bare").await,
        Ok(Some(UserRecord {
            id: "bare".into(),
            username: String::new(),
            name: None,
            roles: vec![],
            totp_secret: None,
            backup_codes: vec![],
        }))
    );
    assert_eq!(store.get_user("ghost").await, Ok(None));
    assert_eq!(store.set_totp_secret("ghost", "x").await, Ok(false));
    // An id that looks like another key type stays a plain user.
    store
        .put_user("u:backup", Some("tricky"), None)
        .await
        .expect("put");
    assert_eq!(
        store
            .get_user("u")
            .await
            .expect("get")
            .map(|u| u.backup_codes),
        Some(vec!["c1".into()])
    );
}

async fn sessions_list_newest_first_and_replacing_a_session_reindexes_it(store: Store) {
    let mut first = session("s1", "u1", "t1", 1_000);
    first.ip = Some("10.0.0.1".into());
    first.user_agent = Some("Mozilla/5.0".into());
    first.device = Some(serde_json::json!({"os": {"name": "Linux"}, "type": "browser"}));
    store.add_session(&first).await.expect("add");
    store
        .add_session(&session("s2", "u2", "t2", 3_000))
        .await
        .expect("add");
    store
        .add_session(&session("s3", "u1", "t3", 2_000))
        .await
        .expect("add");
    let ids = |sessions: Vec<SessionRecord>| sessions.into_iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list_sessions(None).await.expect("list")),
        ["s2", "s3", "s1"]
    );
    assert_eq!(
        ids(store.list_sessions(Some("u1")).await.expect("list")),
        ["s3", "s1"]
    );
    assert_eq!(store.get_session("s1").await, Ok(Some(first.clone())));
    assert_eq!(store.get_session("nope").await, Ok(None));
    // Same id, new token and new owner.
    let replaced = session("s1", "u2", "t1-new", 1_000);
    store.add_session(&replaced).await.expect("add");
    assert_eq!(store.session_by_token(&h("t1")).await, Ok(None));
    assert_eq!(
        store.session_by_token(&h("t1-new")).await,
        Ok(Some(replaced))
    );
    assert_eq!(
        ids(store.list_sessions(Some("u1")).await.expect("list")),
        ["s3"]
    );
    assert_eq!(
        ids(store.list_sessions(Some("u2")).await.expect("list")),
        ["s2", "s1"]
    );
    assert_eq!(
        ids(store.list_sessions(Some("nobody")).await.expect("list")),
        Vec::<String>::new()
    );
}

async fn feed_sends_snapshot_first_then_each_revocation(store: Store) {
    seed(&store).await;
    let at = now_ms();
    store
        .revoke_session("s-victim", "cli", DAY, at)
        .await
        .expect("revoke");
    let mut feed = store.revocation_feed();
    assert_eq!(
        expect_snapshot(&mut feed, Duration::from_secs(5)).await,
        vec![(hash_token("tok-victim"), expiry_after(at, DAY))]
    );
    let at2 = now_ms();
    store
        .revoke_session("s-other", "cli", DAY, at2)
        .await
        .expect("revoke");
    assert_eq!(
        next_event(&mut feed, Duration::from_secs(5)).await,
        FeedEvent::Revoked {
            hash: hash_token("tok-other"),
            expires_at_secs: expiry_after(at2, DAY),
            published_at_ms: at2,
        }
    );
    let via_commit = commit("admin1", Proof::TotpSteps(vec![77]), "s-admin");
    assert!(matches!(
        store.logout_commit(&via_commit).await,
        Ok(CommitOutcome::Revoked { .. })
    ));
    assert_eq!(
        next_event(&mut feed, Duration::from_secs(5)).await,
        FeedEvent::Revoked {
            hash: hash_token("tok-admin"),
            expires_at_secs: expiry_after(via_commit.now_ms, 90 * DAY),
            published_at_ms: via_commit.now_ms,
        }
    );
}

fn remember<'a>(token_hash: &'a str, client: &'a str, ttl_secs: u64) -> Option<Remember<'a>> {
    Some(Remember {
        token_hash_b64: token_hash,
        client,
        ttl_secs,
    })
}

fn remembering<'a>(proof: Proof, target: &'a str, window: Option<Remember<'a>>) -> Commit<'a> {
    Commit {
        remember: window,
        ..commit("admin1", proof, target)
    }
}

async fn remembered_second_factor_covers_one_token_and_client_until_revoked(store: Store) {
    seed(&store).await;
    let admin = h("tok-admin");
    let here = remember(&admin, "client-a", 1800);
    // No window yet: no code is 5a, and no failure is counted for it.
    assert_eq!(
        store
            .logout_commit(&remembering(Proof::Missing, "s-victim", here.clone()))
            .await,
        Ok(CommitOutcome::TotpRequired)
    );
    // A verified code opens the window (even when the target is not found).
    assert_eq!(
        store
            .logout_commit(&remembering(
                Proof::TotpSteps(vec![100]),
                "nope",
                here.clone()
            ))
            .await,
        Ok(CommitOutcome::SessionNotFound { remembered: false })
    );
    assert!(matches!(
        store
            .logout_commit(&remembering(Proof::Missing, "s-victim", here.clone()))
            .await,
        Ok(CommitOutcome::Revoked {
            remembered: true,
            ..
        })
    ));
    // Inside the window a code is ignored: neither consumed nor counted.
    for proof in [Proof::TotpSteps(vec![101]), Proof::Invalid] {
        assert_eq!(
            store
                .logout_commit(&remembering(proof, "nope", here.clone()))
                .await,
            Ok(CommitOutcome::SessionNotFound { remembered: true })
        );
    }
    assert_eq!(
        store
            .logout_commit(&commit("admin1", Proof::TotpSteps(vec![101]), "nope"))
            .await,
        Ok(CommitOutcome::SessionNotFound { remembered: false }),
        "step 101 was not used up inside the window"
    );
    let strict = Precheck {
        lockout: (1, 300),
        ..precheck("admin1", &admin)
    };
    assert!(matches!(
        store.logout_precheck(&strict).await,
        Ok(PrecheckOutcome::Authorized { .. })
    ));
    // Another client of the same token, another token from the same client.
    let other_hash = h("tok-other");
    for elsewhere in [
        remember(&admin, "client-b", 1800),
        remember(&other_hash, "client-a", 1800),
    ] {
        assert_eq!(
            store
                .logout_commit(&remembering(Proof::Missing, "s-other", elsewhere))
                .await,
            Ok(CommitOutcome::TotpRequired)
        );
    }
    // A code verified from another client moves the token's window there,
    // as Rocket.Chat keeps one fingerprint per token.
    let there = remember(&admin, "client-b", 1800);
    assert_eq!(
        store
            .logout_commit(&remembering(
                Proof::TotpSteps(vec![102]),
                "nope",
                there.clone()
            ))
            .await,
        Ok(CommitOutcome::SessionNotFound { remembered: false })
    );
    assert_eq!(
        store
            .logout_commit(&remembering(Proof::Missing, "nope", there))
            .await,
        Ok(CommitOutcome::SessionNotFound { remembered: true })
    );
    assert_eq!(
        store
            .logout_commit(&remembering(Proof::Missing, "nope", here.clone()))
            .await,
        Ok(CommitOutcome::TotpRequired)
    );
    // Revoking the caller's own session ends its window.
    let there = remember(&admin, "client-b", 1800);
    assert!(
        store
            .revoke_session("s-admin", "cli", DAY, now_ms())
            .await
            .expect("revoke")
            .is_some()
    );
    assert_eq!(
        store
            .logout_commit(&remembering(Proof::Missing, "s-other", there))
            .await,
        Ok(CommitOutcome::TotpRequired)
    );
}

async fn remember_window_ends_on_time_and_use_never_extends_it(store: Store) {
    seed(&store).await;
    let admin = h("tok-admin");
    let here = remember(&admin, "client-a", 1);
    let opened = Instant::now();
    assert_eq!(
        store
            .logout_commit(&remembering(
                Proof::TotpSteps(vec![200]),
                "nope",
                here.clone()
            ))
            .await,
        Ok(CommitOutcome::SessionNotFound { remembered: false })
    );
    // Used every 50 ms: a window that use extended would never end.
    let deadline = opened + Duration::from_secs(5);
    let mut uses = 0;
    let ended = loop {
        match store
            .logout_commit(&remembering(Proof::Missing, "nope", here.clone()))
            .await
        {
            Ok(CommitOutcome::SessionNotFound { remembered: true }) => uses += 1,
            Ok(CommitOutcome::TotpRequired) => break opened.elapsed(),
            other => panic!("unexpected {other:?}"),
        }
        assert!(Instant::now() < deadline, "window still open after 5 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(uses > 0, "the window let calls through first");
    assert!(
        ended >= Duration::from_millis(900) && ended < Duration::from_millis(1900),
        "window of 1 s ended after {ended:?}"
    );
    // A fresh code opens a fresh window.
    assert_eq!(
        store
            .logout_commit(&remembering(
                Proof::TotpSteps(vec![201]),
                "nope",
                here.clone()
            ))
            .await,
        Ok(CommitOutcome::SessionNotFound { remembered: false })
    );
    assert_eq!(
        store
            .logout_commit(&remembering(Proof::Missing, "nope", here))
            .await,
        Ok(CommitOutcome::SessionNotFound { remembered: true })
    );
}

async fn sessions_keep_their_host_and_users_their_display_name(store: Store) {
    let plain = session("s1", "u1", "t1", 1_000);
    let hosted = session("s2", "u1", "t2", 2_000);
    store.add_session(&plain).await.expect("add");
    store
        .add_stored_session(&hosted, Some("chat.example.org:8443"))
        .await
        .expect("add");
    assert_eq!(
        store.get_stored_session("s2").await,
        Ok(Some(StoredSession {
            record: hosted.clone(),
            host: Some("chat.example.org:8443".into()),
        }))
    );
    assert_eq!(store.get_session("s2").await, Ok(Some(hosted.clone())));
    let listed: Vec<(String, Option<String>)> = store
        .list_stored_sessions(Some("u1"))
        .await
        .expect("list")
        .into_iter()
        .map(|s| (s.record.id, s.host))
        .collect();
    assert_eq!(
        listed,
        [
            ("s2".to_owned(), Some("chat.example.org:8443".to_owned())),
            ("s1".to_owned(), None)
        ]
    );
    // Re-adding a session without a host forgets the old one.
    store.add_session(&hosted).await.expect("add");
    assert_eq!(
        store
            .get_stored_session("s2")
            .await
            .map(|s| s.and_then(|s| s.host)),
        Ok(None)
    );

    store
        .put_user_named("u1", Some("alice"), Some("Alice Liddell"), None)
        .await
        .expect("put");
    // Updates that do not name it keep it.
    store
        .put_user("u1", Some("alice2"), None)
        .await
        .expect("put");
    let user = store.get_user("u1").await.expect("get").expect("exists");
    assert_eq!(
        (user.username.as_str(), user.name.as_deref()),
        ("alice2", Some("Alice Liddell"))
    );
}

// ---------------------------------------------------------------------------
// Redis only.

#[tokio::test]
async fn remember_window_key_holds_hashes_only_and_dies_with_the_session() {
    let server = RedisServer::start();
    let store = redis_store(&server);
    seed(&store).await;
    let admin = h("tok-admin");
    let client = sessiongate::auth::client_fingerprint(
        "203.0.113.7".parse().expect("ip"),
        Some("Mozilla/5.0 Firefox/121.0"),
    );
    let window = remember(&admin, &client, 1800);
    assert_eq!(
        store
            .logout_commit(&remembering(Proof::TotpSteps(vec![300]), "nope", window))
            .await,
        Ok(CommitOutcome::SessionNotFound { remembered: false })
    );
    let key = format!("sg:totp:remember:{admin}");
    let Reply::Array(Some(fields)) = server.cmd(&["HGETALL", &key]) else {
        panic!("HGETALL failed");
    };
    assert_eq!(fields.len(), 2, "one client: {fields:?}");
    assert_eq!(fields[0].text(), Some(client.as_str()));
    let ends: u64 = fields[1].text().and_then(|t| t.parse().ok()).expect("ms");
    let now = now_ms();
    assert!(
        ends > now + 1_700_000 && ends <= now + 1_800_000 + 1_000,
        "window ends at {ends}, now {now}"
    );
    let Reply::Int(pttl) = server.cmd(&["PTTL", &key]) else {
        panic!("PTTL failed");
    };
    assert!((1_700_000..=1_800_000).contains(&pttl), "pttl {pttl}");
    // No clear token, address or agent anywhere in Redis.
    let Reply::Array(Some(keys)) = server.cmd(&["KEYS", "*"]) else {
        panic!("KEYS failed");
    };
    for k in keys.iter().filter_map(|k| k.text()) {
        assert!(
            !k.contains("tok-admin") && !k.contains("203.0.113.7"),
            "{k}"
        );
    }
    // Revocation deletes it in the same script.
    store
        .revoke_session("s-admin", "cli", DAY, now_ms())
        .await
        .expect("revoke");
    assert_eq!(server.cmd(&["EXISTS", &key]), Reply::Int(0));
}

#[tokio::test]
async fn keys_follow_the_documented_schema_and_windows_expire() {
    let server = RedisServer::start();
    let store = redis_store(&server);
    seed(&store).await;
    store
        .set_backup_codes("admin1", &["c1".to_owned()])
        .await
        .expect("codes");
    let admin_hash = h("tok-admin");
    let limited = Precheck {
        rate_limit: Some((10, 60)),
        ..precheck("admin1", &admin_hash)
    };
    store.logout_precheck(&limited).await.expect("precheck");
    store
        .logout_commit(&commit("admin1", Proof::Invalid, "s-victim"))
        .await
        .expect("commit");
    store
        .logout_commit(&commit("admin1", Proof::TotpSteps(vec![42]), "s-victim"))
        .await
        .expect("commit");
    let Reply::Array(Some(keys)) = server.cmd(&["KEYS", "*"]) else {
        panic!("KEYS failed");
    };
    let mut keys: Vec<String> = keys
        .iter()
        .filter_map(|k| k.text().map(str::to_owned))
        .collect();
    keys.sort();
    let mut expected = vec![
        "sg:revoked".to_owned(),
        "sg:rl:logout:admin1".into(),
        "sg:session:s-admin".into(),
        "sg:session:s-other".into(),
        "sg:session:s-victim".into(),
        "sg:sessions".into(),
        format!("sg:token:{}", h("tok-admin")),
        format!("sg:token:{}", h("tok-other")),
        "sg:totp:fail:admin1".into(),
        "sg:totp:used:42:admin1".into(),
        "sg:user-backup:admin1".into(),
        "sg:user-sessions:admin1".into(),
        "sg:user-sessions:user2".into(),
        "sg:user:admin1".into(),
    ];
    expected.sort();
    assert_eq!(keys, expected);
    assert_eq!(server.cmd(&["TTL", "sg:rl:logout:admin1"]).int(), Some(60));
    assert_eq!(server.cmd(&["TTL", "sg:totp:fail:admin1"]).int(), Some(300));
    assert_eq!(
        server.cmd(&["TTL", "sg:totp:used:42:admin1"]).int(),
        Some(90)
    );
    assert_eq!(server.cmd(&["TTL", "sg:revoked"]).int(), Some(-1));
    assert_eq!(
        server.cmd(&["TYPE", "sg:user-sessions:user2"]).text(),
        Some("zset")
    );
}

#[tokio::test]
async fn revocations_survive_a_redis_restart_with_appendonly() {
    let mut server = RedisServer::start_persistent();
    let store = redis_store(&server);
    seed(&store).await;
    let at = now_ms();
    store
        .revoke_session("s-victim", "cli", DAY, at)
        .await
        .expect("revoke");
    server.kill();
    server.restart();
    wait_until_up(&store, Duration::from_secs(5)).await;
    assert_eq!(
        store.revoked_snapshot(now_secs()).await,
        Ok(vec![(hash_token("tok-victim"), expiry_after(at, DAY))])
    );
    assert_eq!(
        store
            .logout_precheck(&precheck("user2", &h("tok-victim")))
            .await,
        Ok(PrecheckOutcome::Unauthorized)
    );
}

#[tokio::test]
async fn feed_reports_down_and_resyncs_with_revocations_made_while_it_was_down() {
    let mut server = RedisServer::start_persistent();
    let store = redis_store(&server);
    seed(&store).await;
    let mut feed = store.revocation_feed();
    assert_eq!(
        expect_snapshot(&mut feed, Duration::from_secs(5)).await,
        vec![]
    );

    server.kill();
    expect_down(&mut feed, Duration::from_secs(5)).await;
    // Back, but refusing this feed's (password-less) connections: Redis is
    // up while the feed is still down, deterministically.
    server.restart_with(&["--requirepass", "pw"]);
    let writer = Store::redis(options(&format!(
        "redis://:pw@127.0.0.1:{}/0",
        server.port()
    )))
    .expect("options");
    let at = now_ms();
    assert!(
        writer
            .revoke_session("s-victim", "cli", DAY, at)
            .await
            .expect("revoke")
            .is_some()
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), feed.recv())
            .await
            .is_err(),
        "no event while the feed cannot reconnect (Down is reported once per outage)"
    );

    assert_eq!(
        server
            .cmd_auth("pw", &["CONFIG", "SET", "requirepass", ""])
            .text(),
        Some("OK")
    );
    let reopened = Instant::now();
    assert_eq!(
        expect_snapshot(&mut feed, Duration::from_secs(5)).await,
        vec![(hash_token("tok-victim"), expiry_after(at, DAY))]
    );
    assert!(
        reopened.elapsed() < Duration::from_millis(1500),
        "resync took {:?}",
        reopened.elapsed()
    );
    // And it follows live revocations again.
    let at2 = now_ms();
    writer
        .revoke_session("s-other", "cli", DAY, at2)
        .await
        .expect("revoke");
    assert_eq!(
        next_event(&mut feed, Duration::from_secs(5)).await,
        FeedEvent::Revoked {
            hash: hash_token("tok-other"),
            expires_at_secs: expiry_after(at2, DAY),
            published_at_ms: at2,
        }
    );
}

#[tokio::test]
async fn feed_resyncs_within_a_second_of_redis_returning() {
    let mut server = RedisServer::start();
    let store = redis_store(&server);
    let mut feed = store.revocation_feed();
    expect_snapshot(&mut feed, Duration::from_secs(5)).await;
    server.kill();
    expect_down(&mut feed, Duration::from_secs(5)).await;
    // Long enough for the backoff to reach its 1 s cap.
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.restart();
    let back = Instant::now();
    expect_snapshot(&mut feed, Duration::from_secs(5)).await;
    assert!(
        back.elapsed() < Duration::from_millis(1300),
        "resync took {:?}",
        back.elapsed()
    );
}

#[tokio::test]
async fn paused_redis_answers_unavailable_within_the_timeout_and_the_feed_notices() {
    let server = RedisServer::start();
    let store = redis_store(&server);
    seed(&store).await;
    let mut feed = store.revocation_feed();
    expect_snapshot(&mut feed, Duration::from_secs(5)).await;

    server.pause();
    let started = Instant::now();
    assert_unavailable(
        store
            .logout_precheck(&precheck("admin1", &h("tok-admin")))
            .await,
    );
    assert!(
        started.elapsed() < TIMEOUT * 2,
        "took {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    assert_unavailable(store.revoke_session("s-victim", "cli", DAY, now_ms()).await);
    assert!(
        started.elapsed() < TIMEOUT * 3,
        "took {:?}",
        started.elapsed()
    );
    // Ping every second, answer due within the command timeout.
    expect_down(&mut feed, Duration::from_secs(3)).await;

    server.resume();
    wait_until_up(&store, Duration::from_secs(5)).await;
    expect_snapshot(&mut feed, Duration::from_secs(5)).await;
    assert!(matches!(
        store
            .logout_precheck(&precheck("admin1", &h("tok-admin")))
            .await,
        Ok(PrecheckOutcome::Authorized { .. })
    ));
}

#[tokio::test]
async fn killed_redis_answers_unavailable_and_the_store_reconnects_by_itself() {
    let mut server = RedisServer::start();
    let store = redis_store(&server);
    seed(&store).await;
    server.kill();
    let started = Instant::now();
    assert_unavailable(store.get_session("s-admin").await);
    assert_unavailable(store.ping().await);
    assert!(
        started.elapsed() < TIMEOUT * 2,
        "took {:?}",
        started.elapsed()
    );
    server.restart();
    wait_until_up(&store, Duration::from_secs(3)).await;
    // Not persistent: the restarted Redis is empty, and the store works.
    assert_eq!(store.get_session("s-admin").await, Ok(None));
}

#[tokio::test]
async fn store_built_while_redis_is_down_comes_up_with_it() {
    let mut server = RedisServer::start();
    server.kill();
    let store = redis_store(&server);
    assert_unavailable(store.ping().await);
    let mut feed = store.revocation_feed();
    expect_down(&mut feed, Duration::from_secs(3)).await;
    server.restart();
    wait_until_up(&store, Duration::from_secs(3)).await;
    assert_eq!(
        expect_snapshot(&mut feed, Duration::from_secs(3)).await,
        vec![]
    );
    seed(&store).await;
    assert!(matches!(
        store
            .logout_precheck(&precheck("admin1", &h("tok-admin")))
            .await,
        Ok(PrecheckOutcome::Authorized { .. })
    ));
}

#[tokio::test]
async fn nothing_listening_is_unavailable_not_a_hang() {
    let store =
        Store::redis(options(&format!("redis://127.0.0.1:{}/0", free_port()))).expect("options");
    let started = Instant::now();
    assert_unavailable(store.logout_precheck(&precheck("u", "h")).await);
    assert_unavailable(store.revoked_snapshot(0).await);
    assert!(started.elapsed() < TIMEOUT * 2);
}

#[tokio::test]
async fn acl_credentials_come_from_the_url() {
    let server = RedisServer::start_with(ServerConfig {
        args: ["--user", "app", "on", ">apppw", "~sg:*", "&sg:*", "+@all"]
            .map(String::from)
            .to_vec(),
        ..ServerConfig::default()
    });
    server.cmd(&["ACL", "SETUSER", "default", "off"]);
    let good = Store::redis(options(&format!(
        "redis://app:apppw@127.0.0.1:{}/0",
        server.port()
    )))
    .expect("options");
    seed(&good).await;
    let mut feed = good.revocation_feed();
    expect_snapshot(&mut feed, Duration::from_secs(5)).await;
    assert!(
        good.revoke_session("s-victim", "cli", DAY, now_ms())
            .await
            .expect("revoke")
            .is_some()
    );
    assert!(matches!(
        next_event(&mut feed, Duration::from_secs(5)).await,
        FeedEvent::Revoked { .. }
    ));
    let wrong = Store::redis(options(&format!(
        "redis://app:nope@127.0.0.1:{}/0",
        server.port()
    )))
    .expect("options");
    assert_unavailable(wrong.ping().await);
}

#[tokio::test]
async fn tls_with_a_private_ca() {
    let server = RedisServer::start_with(ServerConfig {
        tls: true,
        ..ServerConfig::default()
    });
    let store = Store::redis(RedisOptions {
        tls_ca_file: Some(server.ca_file()),
        ..options(&server.url())
    })
    .expect("options");
    seed(&store).await;
    let mut feed = store.revocation_feed();
    expect_snapshot(&mut feed, Duration::from_secs(5)).await;
    assert!(
        store
            .revoke_session("s-victim", "cli", DAY, now_ms())
            .await
            .expect("revoke")
            .is_some()
    );
    assert!(matches!(
        next_event(&mut feed, Duration::from_secs(5)).await,
        FeedEvent::Revoked { .. }
    ));
    // Without the CA the server's certificate is not trusted.
    let untrusted = Store::redis(options(&server.url())).expect("options");
    assert_unavailable(untrusted.ping().await);
}

#[tokio::test]
async fn snapshot_reads_a_million_revocations_in_batches() {
    let server = RedisServer::start();
    let store = redis_store(&server);
    let expiry = now_secs() + 3600;
    let expiry_text = expiry.to_string();
    let hashes: Vec<TokenHash> = (0..1_000_000)
        .map(|i| hash_token(&format!("token-{i}")))
        .collect();
    for chunk in hashes.chunks(10_000) {
        let members: Vec<String> = chunk.iter().map(encode_hash).collect();
        let mut args = vec!["ZADD", "sg:revoked"];
        for member in &members {
            args.push(&expiry_text);
            args.push(member);
        }
        assert_eq!(server.cmd(&args).int(), Some(10_000));
    }
    let started = Instant::now();
    let snapshot = store.revoked_snapshot(now_secs()).await.expect("snapshot");
    eprintln!(
        "snapshot of {} entries in {:?}",
        snapshot.len(),
        started.elapsed()
    );
    let mut expected: Vec<(TokenHash, u32)> =
        hashes.into_iter().map(|hash| (hash, expiry)).collect();
    expected.sort_unstable();
    assert_eq!(snapshot.len(), 1_000_000);
    assert!(
        snapshot == expected,
        "snapshot differs from what was stored"
    );
}

fn info_field(server: &RedisServer, section: &str, field: &str) -> Option<String> {
    let info = server.cmd(&["INFO", section]);
    let text = info.text()?.to_owned();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .map(str::to_owned)
}

#[tokio::test]
async fn sentinel_url_follows_a_failover() {
    let mut master = RedisServer::start();
    let master_port = master.port().to_string();
    let replica = RedisServer::start_with(ServerConfig {
        args: ["--replicaof", "127.0.0.1", &master_port]
            .map(String::from)
            .to_vec(),
        ..ServerConfig::default()
    });
    assert!(
        eventually(Duration::from_secs(10), async || {
            info_field(&replica, "replication", "master_link_status").as_deref() == Some("up")
        })
        .await,
        "replica sync did not happen within {:?}",
        Duration::from_secs(10)
    );
    let sentinel = RedisServer::start_with(ServerConfig {
        sentinel_of: Some(("mymaster".into(), master.port())),
        ..ServerConfig::default()
    });
    assert!(
        eventually(Duration::from_secs(15), async || {
        matches!(sentinel.cmd(&["SENTINEL", "REPLICAS", "mymaster"]), Reply::Array(Some(r)) if !r.is_empty())
    })
        .await,
        "sentinel to discover the replica did not happen within {:?}",
        Duration::from_secs(15)
    );

    let url = format!("redis+sentinel://127.0.0.1:{}/mymaster/0", sentinel.port());
    let store = Store::redis(options(&url)).expect("options");
    seed(&store).await;
    let mut feed = store.revocation_feed();
    assert_eq!(
        expect_snapshot(&mut feed, Duration::from_secs(5)).await,
        vec![]
    );
    let at = now_ms();
    assert!(
        store
            .revoke_session("s-victim", "cli", DAY, at)
            .await
            .expect("revoke")
            .is_some()
    );
    assert!(matches!(
        next_event(&mut feed, Duration::from_secs(5)).await,
        FeedEvent::Revoked { .. }
    ));
    assert_eq!(master.cmd(&["WAIT", "1", "5000"]).int(), Some(1));

    master.kill();
    expect_down(&mut feed, Duration::from_secs(5)).await;
    // Sentinel promotes the replica; the store finds it by itself.
    let deadline = Instant::now() + Duration::from_secs(30);
    let revoked_after = loop {
        match store.revoke_session("s-other", "cli", DAY, now_ms()).await {
            Ok(result) => break result,
            Err(StoreError::Unavailable(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("no failover within 30 s: {e}"),
        }
    };
    assert!(
        revoked_after.is_some(),
        "the replicated session was revoked on the new master"
    );
    assert_eq!(
        info_field(&replica, "replication", "role").as_deref(),
        Some("master")
    );
    // The feed resyncs from the new master: the old revocation is there.
    let snapshot = loop {
        match next_event(&mut feed, Duration::from_secs(10)).await {
            FeedEvent::Snapshot(entries) => break entries,
            FeedEvent::Down(_) | FeedEvent::Revoked { .. } => {}
        }
    };
    assert!(
        snapshot
            .iter()
            .any(|(hash, _)| *hash == hash_token("tok-victim")),
        "{snapshot:?}"
    );
}

#[tokio::test]
async fn cluster_url_runs_the_scripts_on_the_slot_owner_and_feeds_from_any_node() {
    // The bus port is given explicitly: port + 10000 may be taken or invalid.
    let buses: Vec<String> = (0..3).map(|_| free_port().to_string()).collect();
    let nodes: Vec<RedisServer> = buses
        .iter()
        .map(|bus| {
            RedisServer::start_with(ServerConfig {
                args: [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-port",
                    bus,
                    "--cluster-node-timeout",
                    "2000",
                ]
                .map(String::from)
                .to_vec(),
                ..ServerConfig::default()
            })
        })
        .collect();
    let ranges = [("0", "5460"), ("5461", "10922"), ("10923", "16383")];
    for (node, (from, to)) in nodes.iter().zip(ranges) {
        assert_eq!(
            node.cmd(&["CLUSTER", "ADDSLOTSRANGE", from, to]).text(),
            Some("OK")
        );
    }
    for (other, bus) in nodes.iter().zip(&buses).skip(1) {
        let port = other.port().to_string();
        let meet = nodes[0].cmd(&["CLUSTER", "MEET", "127.0.0.1", &port, bus]);
        assert_eq!(meet.text(), Some("OK"));
    }
    for node in &nodes {
        assert!(
            eventually(Duration::from_secs(20), async || {
                info_field_cluster(node).as_deref() == Some("ok")
            })
            .await,
            "cluster_state:ok did not happen within {:?}",
            Duration::from_secs(20)
        );
    }
    // The store's keys all hash to the slot of the `{sg:}` tag.
    let slot = nodes[0]
        .cmd(&["CLUSTER", "KEYSLOT", "{sg:}user:admin1"])
        .int();
    assert_eq!(
        nodes[0].cmd(&["CLUSTER", "KEYSLOT", "{sg:}revoked"]).int(),
        slot
    );

    let hosts: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port()))
        .collect();
    let store =
        Store::redis(options(&format!("redis+cluster://{}", hosts.join(",")))).expect("options");
    seed(&store).await;
    let mut feed = store.revocation_feed();
    assert_eq!(
        expect_snapshot(&mut feed, Duration::from_secs(5)).await,
        vec![]
    );
    assert!(matches!(
        store
            .logout_precheck(&precheck("admin1", &h("tok-admin")))
            .await,
        Ok(PrecheckOutcome::Authorized { .. })
    ));
    let step = commit("admin1", Proof::TotpSteps(vec![9]), "s-victim");
    assert_eq!(
        store.logout_commit(&step).await,
        Ok(CommitOutcome::Revoked {
            token_hash_b64: h("tok-victim"),
            expires_at_secs: expiry_after(step.now_ms, 90 * DAY),
            remembered: false,
        })
    );
    assert_eq!(
        next_event(&mut feed, Duration::from_secs(5)).await,
        FeedEvent::Revoked {
            hash: hash_token("tok-victim"),
            expires_at_secs: expiry_after(step.now_ms, 90 * DAY),
            published_at_ms: step.now_ms,
        }
    );
    assert_eq!(
        store
            .logout_commit(&commit("admin1", Proof::TotpSteps(vec![9]), "s-other"))
            .await,
        Ok(CommitOutcome::TotpInvalid)
    );
    assert_eq!(
        store.revoked_snapshot(now_secs()).await.map(|s| s.len()),
        Ok(1)
    );
    let ids: Vec<String> = store
        .list_sessions(None)
        .await
        .expect("list")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, ["s-other", "s-victim", "s-admin"]);
}

fn info_field_cluster(server: &RedisServer) -> Option<String> {
    let info = server.cmd(&["CLUSTER", "INFO"]);
    info.text()?
        .lines()
        .find_map(|line| line.strip_prefix("cluster_state:"))
        .map(|s| s.trim().to_owned())
}
