//! The admin CLI (`user`, `totp`, `session`, `revoked`), working against the
//! same Redis the gates use. Output is plain and scriptable: `session add`
//! prints only the id, `totp backup-codes` only the codes.

use std::sync::Arc;

use anyhow::{Context as _, anyhow, bail};

use crate::auth::{encode_hash, hash_token, meteor_id};
use crate::cli::{RevokedCmd, SessionCmd, TotpCmd, UserCmd};
use crate::clock;
use crate::config::{Config, EnvSource};
use crate::store::{RedisOptions, SessionRecord, Store, StoredSession};
use crate::totp::{self, crypto::SecretKey};

/// Open the configured Redis store for an admin command.
pub fn open_store(cfg: &Config) -> anyhow::Result<Store> {
    crate::tls::install_crypto_provider();
    Store::redis(redis_options(cfg)).map_err(|e| anyhow!("redis.url: {e}"))
}

pub fn redis_options(cfg: &Config) -> RedisOptions {
    RedisOptions {
        url: cfg.redis.url.clone(),
        prefix: cfg.redis.prefix.clone(),
        command_timeout: cfg.redis.command_timeout,
        connect_timeout: cfg.redis.connect_timeout,
        tls_ca_file: cfg.redis.tls_ca_file.clone(),
        sentinel_auth: cfg.redis.sentinel_auth.clone(),
    }
}

/// The TOTP encryption key: `SESSIONGATE_TOTP_KEY` wins over `totp.key_file`.
pub fn load_key(cfg: &Config, env: &dyn EnvSource) -> anyhow::Result<Arc<SecretKey>> {
    let env_key = env.get("SESSIONGATE_TOTP_KEY");
    SecretKey::load(cfg.totp.key_file.as_deref(), env_key.as_deref())
        .map(Arc::new)
        .map_err(|e| anyhow!("{e}"))
}

pub async fn user(cfg: &Config, cmd: UserCmd) -> anyhow::Result<()> {
    let store = open_store(cfg)?;
    match cmd {
        UserCmd::Put {
            user_id,
            username,
            name,
            roles,
        } => {
            let roles: Option<Vec<String>> = roles.map(|r| {
                r.into_iter()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            });
            store
                .put_user_named(
                    &user_id,
                    username.as_deref(),
                    name.as_deref(),
                    roles.as_deref(),
                )
                .await?;
            let user = store.get_user(&user_id).await?.context("user vanished")?;
            println!(
                "user {} saved (username: {}, roles: {})",
                user.id,
                user.username,
                user.roles.join(",")
            );
        }
        UserCmd::Show { user_id } => {
            let user = store
                .get_user(&user_id)
                .await?
                .ok_or_else(|| anyhow!("unknown user {user_id:?}"))?;
            let shown = serde_json::json!({
                "id": user.id,
                "username": user.username,
                "name": user.name,
                "roles": user.roles,
                "totpEnrolled": user.totp_secret.is_some(),
                "backupCodesLeft": user.backup_codes.len(),
            });
            println!("{shown}");
        }
    }
    Ok(())
}

pub async fn totp(cfg: &Config, env: &dyn EnvSource, cmd: TotpCmd) -> anyhow::Result<()> {
    let key = load_key(cfg, env)?;
    let store = open_store(cfg)?;
    match cmd {
        TotpCmd::Import { user_id, secret } => {
            let secret =
                totp::decode_base32_secret(&secret).map_err(|e| anyhow!("--secret: {e}"))?;
            store_secret(&store, &key, &user_id, &secret).await?;
            println!("TOTP secret stored for {user_id}");
        }
        TotpCmd::Enroll { user_id } => {
            let secret = totp::generate_secret();
            let user = store_secret(&store, &key, &user_id, &secret).await?;
            let account = if user.is_empty() {
                user_id.as_str()
            } else {
                user.as_str()
            };
            let uri = totp::otpauth_uri(&secret, &cfg.totp.issuer, account);
            println!("{uri}");
            match totp::qr_terminal(&uri) {
                Ok(qr) => println!("{qr}"),
                Err(e) => eprintln!("(no QR code: {e})"),
            }
        }
        TotpCmd::BackupCodes { user_id } => {
            ensure_user(&store, &user_id).await?;
            let codes = totp::backup::generate_backup_codes();
            let hashes: Vec<String> = codes
                .iter()
                .map(|c| totp::backup::hash_backup_code(c))
                .collect();
            if !store.set_backup_codes(&user_id, &hashes).await? {
                bail!("unknown user {user_id:?}");
            }
            for code in codes {
                println!("{code}");
            }
        }
    }
    Ok(())
}

/// Seal and store a secret; creates the user (no roles) when missing.
/// Returns the username.
async fn store_secret(
    store: &Store,
    key: &SecretKey,
    user_id: &str,
    secret: &[u8],
) -> anyhow::Result<String> {
    let username = ensure_user(store, user_id).await?;
    let sealed = key.encrypt(user_id, secret).map_err(|e| anyhow!("{e}"))?;
    if !store.set_totp_secret(user_id, &sealed).await? {
        bail!("unknown user {user_id:?}");
    }
    Ok(username)
}

async fn ensure_user(store: &Store, user_id: &str) -> anyhow::Result<String> {
    if let Some(user) = store.get_user(user_id).await? {
        return Ok(user.username);
    }
    store.put_user(user_id, None, None).await?;
    eprintln!("note: created user {user_id} with no roles (set them with `sessiongate user put`)");
    Ok(String::new())
}

pub async fn session(cfg: &Config, cmd: SessionCmd) -> anyhow::Result<()> {
    let store = open_store(cfg)?;
    match cmd {
        SessionCmd::Add {
            user,
            token,
            id,
            ip,
            user_agent,
            host,
        } => {
            if token.is_empty() {
                bail!("--token: must not be empty");
            }
            let id = id.unwrap_or_else(meteor_id);
            let record = SessionRecord {
                id: id.clone(),
                user_id: user,
                token_hash: encode_hash(&hash_token(&token)),
                ip,
                device: user_agent.as_deref().map(crate::auth::device_info),
                user_agent,
                login_at_ms: clock::unix_ms(),
                logout_at_ms: None,
                logout_by: None,
            };
            store.add_stored_session(&record, host.as_deref()).await?;
            println!("{id}");
        }
        SessionCmd::List { user, json } => {
            let stored = store.list_stored_sessions(user.as_deref()).await?;
            if json {
                let list: Vec<_> = stored.iter().map(session_json).collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                let sessions = stored.iter().map(|s| &s.record);
                println!(
                    "{:<20} {:<20} {:<8} {:<16} LOGIN",
                    "SESSION", "USER", "STATUS", "IP"
                );
                for s in sessions {
                    println!(
                        "{:<20} {:<20} {:<8} {:<16} {}",
                        s.id,
                        s.user_id,
                        if s.logout_at_ms.is_some() {
                            "revoked"
                        } else {
                            "active"
                        },
                        s.ip.as_deref().unwrap_or("-"),
                        crate::clock::iso8601(s.login_at_ms)
                    );
                }
            }
        }
        SessionCmd::Show { session_id } => {
            let s = store
                .get_stored_session(&session_id)
                .await?
                .ok_or_else(|| anyhow!("session {session_id:?} not found"))?;
            println!("{}", session_json(&s));
        }
        SessionCmd::Revoke { session_id } => {
            let revoked = store
                .revoke_session(
                    &session_id,
                    "sessiongate-cli",
                    cfg.revocation.token_lifetime.as_secs(),
                    clock::unix_ms(),
                )
                .await?;
            match revoked {
                Some(_) => println!("session {session_id} revoked"),
                None => bail!("session {session_id:?} not found or already logged out"),
            }
        }
    }
    Ok(())
}

pub async fn revoked(cfg: &Config, cmd: RevokedCmd) -> anyhow::Result<()> {
    let store = open_store(cfg)?;
    match cmd {
        RevokedCmd::Export => {
            for (hash, expires) in store.revoked_snapshot(clock::unix_secs_u32()).await? {
                println!(
                    "{}",
                    serde_json::json!({"tokenHash": encode_hash(&hash), "expiresAt": expires})
                );
            }
        }
    }
    Ok(())
}

/// `probe URL`: exit 0 when a plain-http GET answers 2xx within 2 s
/// (the container HEALTHCHECK; distroless images have no curl).
pub async fn probe(url: &str) -> anyhow::Result<()> {
    let uri: http::Uri = url.parse().map_err(|_| anyhow!("invalid URL {url:?}"))?;
    let authority = uri
        .authority()
        .ok_or_else(|| anyhow!("URL needs a host: {url:?}"))?
        .clone();
    let port = authority.port_u16().unwrap_or(80);
    let addr = format!("{}:{port}", authority.host());
    let path = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(&addr).await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let req = http::Request::get(path)
            .header(http::header::HOST, authority.as_str())
            .body(crate::body::empty())?;
        let status = sender.send_request(req).await?.status();
        anyhow::Ok(status)
    };
    let status = tokio::time::timeout(std::time::Duration::from_secs(2), exchange)
        .await
        .map_err(|_| anyhow!("{url}: no answer within 2 s"))??;
    if !status.is_success() {
        bail!("{url}: {status}");
    }
    Ok(())
}

/// A session as JSON, Rocket.Chat field names; never the token hash.
pub fn session_json(stored: &StoredSession) -> serde_json::Value {
    let s = &stored.record;
    serde_json::json!({
        "sessionId": s.id,
        "userId": s.user_id,
        "host": stored.host,
        "ip": s.ip,
        "userAgent": s.user_agent,
        "device": s.device,
        "loginAt": crate::clock::iso8601(s.login_at_ms),
        "logoutAt": s.logout_at_ms.map(crate::clock::iso8601),
        "logoutBy": s.logout_by,
        "active": s.logout_at_ms.is_none(),
    })
}
