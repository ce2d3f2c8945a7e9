//! The revocation feed: a task that follows the `revocations` pub/sub channel
//! on a connection of its own and resyncs from the `revoked` set (a batched
//! snapshot) at start, after every reconnect and after a malformed message.

use std::time::Duration;

use ::redis::{PushInfo, PushKind, Value};
use tokio::sync::mpsc;
use tokio::time::{MissedTickBehavior, timeout};

use crate::auth::TokenHash;
use crate::store::keys::Keys;
use crate::store::record::{FEED_CAPACITY, FeedEvent, StoreError, unix_now_secs};
use crate::store::redis::connection::{BACKOFF_MAX, BACKOFF_MIN, Connector, Via};
use crate::store::redis::error::{corrupt, describe};
use crate::store::redis::reply::{array, member_hash, score_secs, text};

/// How often the feed pings its pub/sub connection: a connection that died
/// without a FIN (host gone, network partition) is noticed within this plus
/// the command timeout, and a fresh snapshot follows the reconnect.
const FEED_PING_EVERY: Duration = Duration::from_secs(1);
/// ZSCAN batch size for snapshots: 1,000,000 entries take ~100 round trips.
const SNAPSHOT_BATCH: usize = 10_000;

/// What the feed task holds: the deployment and the key names.
pub(super) struct Feed {
    connector: Connector,
    keys: Keys,
}

enum FeedEnd {
    ReceiverGone,
    /// `synced`: a snapshot went out on this connection, so the outage is new.
    Lost {
        synced: bool,
        error: String,
    },
}

impl Feed {
    pub(super) fn new(connector: Connector, keys: Keys) -> Self {
        Self { connector, keys }
    }

    /// Follow revocations on a dedicated RESP3 connection.
    ///
    /// Each round: connect, SUBSCRIBE, then snapshot (after the subscription,
    /// so nothing published in between is missed), send `Snapshot`, then
    /// forward every message as `Revoked`. A closed socket is noticed at once
    /// (disconnection push); a silently dead one (host gone, partition,
    /// SIGSTOPped Redis) by a PING every second that must answer within the
    /// command timeout. On loss: one `Down` per outage (not per failed
    /// attempt), then reconnect with backoff (50 ms doubling, capped at 1 s)
    /// and snapshot again. A malformed message also triggers a snapshot. The
    /// task ends when the receiver is dropped.
    pub(super) fn spawn(self) -> mpsc::Receiver<FeedEvent> {
        let (tx, rx) = mpsc::channel(FEED_CAPACITY);
        tokio::spawn(async move { self.run(tx).await });
        rx
    }

    async fn run(self, tx: mpsc::Sender<FeedEvent>) {
        let mut delay = BACKOFF_MIN;
        let mut down_reported = false;
        loop {
            let error = match self.follow(&tx).await {
                FeedEnd::ReceiverGone => return,
                FeedEnd::Lost { synced, error } => {
                    if synced {
                        delay = BACKOFF_MIN;
                        down_reported = false;
                    }
                    error
                }
            };
            tracing::debug!(%error, "revocation feed lost redis");
            if !down_reported {
                if tx.send(FeedEvent::Down(error)).await.is_err() {
                    return;
                }
                down_reported = true;
            }
            tokio::select! {
                _ = tx.closed() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(BACKOFF_MAX);
        }
    }

    async fn follow(&self, tx: &mpsc::Sender<FeedEvent>) -> FeedEnd {
        let lost = |synced: bool, error: String| FeedEnd::Lost { synced, error };
        let timeouts = self.connector.timeouts();
        let (push_tx, mut pushes) = mpsc::unbounded_channel::<PushInfo>();
        let connect = self.connector.subscriber(push_tx);
        let mut conn = match timeout(timeouts.connect, connect).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return lost(false, format!("cannot connect to redis: {}", describe(&e))),
            Err(_) => return lost(false, "redis connect timed out".to_owned()),
        };
        let channel = self.keys.channel();
        match timeout(timeouts.command, conn.subscribe(&channel)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return lost(false, format!("redis SUBSCRIBE failed: {}", describe(&e))),
            Err(_) => return lost(false, "redis SUBSCRIBE timed out".to_owned()),
        }
        // Single node and Sentinel: snapshot on the subscribed connection
        // itself (same server, strictly after SUBSCRIBE). Cluster: the slot
        // owner may be another node; the pool finds it.
        let via = if self.connector.is_cluster() {
            Via::Pool { force: true }
        } else {
            Via::Conn(conn.clone())
        };
        match snapshot(&self.connector, &self.keys, unix_now_secs(), &via).await {
            Ok(entries) => {
                if tx.send(FeedEvent::Snapshot(entries)).await.is_err() {
                    return FeedEnd::ReceiverGone;
                }
            }
            Err(e) => return lost(false, e.to_string()),
        }
        let mut ping = tokio::time::interval(FEED_PING_EVERY);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ping.tick().await;
        loop {
            tokio::select! {
                _ = tx.closed() => return FeedEnd::ReceiverGone,
                push = pushes.recv() => {
                    let Some(push) = push else {
                        return lost(true, "redis connection closed".to_owned());
                    };
                    let event = match push.kind {
                        PushKind::Disconnection => {
                            return lost(true, "redis connection closed".to_owned());
                        }
                        PushKind::Message => announcement(&push.data, &channel),
                        _ => continue,
                    };
                    let event = match event {
                        Some(event) => event,
                        None => {
                            tracing::warn!("malformed revocation message; resyncing");
                            match snapshot(&self.connector, &self.keys, unix_now_secs(), &via).await {
                                Ok(entries) => FeedEvent::Snapshot(entries),
                                Err(e) => return lost(true, e.to_string()),
                            }
                        }
                    };
                    if tx.send(event).await.is_err() {
                        return FeedEnd::ReceiverGone;
                    }
                }
                _ = ping.tick() => {
                    let ping = ::redis::cmd("PING");
                    match timeout(timeouts.command, ping.query_async::<Value>(&mut conn)).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => {
                            return lost(true, format!("redis ping failed: {}", describe(&e)));
                        }
                        Err(_) => return lost(true, "redis ping timed out".to_owned()),
                    }
                }
            }
        }
    }
}

/// Every unexpired revoked hash, purging expired ones first.
///
/// ZSCAN in batches: it returns every member present for the whole scan
/// (what a subscriber that subscribed first needs), each batch is its own
/// bounded round trip, and it never blocks Redis for long.
pub(super) async fn snapshot(
    connector: &Connector,
    keys: &Keys,
    now_secs: u32,
    via: &Via,
) -> Result<Vec<(TokenHash, u32)>, StoreError> {
    let key = keys.revoked();
    let mut purge = ::redis::cmd("ZREMRANGEBYSCORE");
    purge.arg(&key).arg("-inf").arg(now_secs);
    connector.query(via, &purge).await?;
    let mut entries = Vec::new();
    let mut skipped = 0usize;
    let mut cursor = "0".to_owned();
    loop {
        let mut scan = ::redis::cmd("ZSCAN");
        scan.arg(&key).arg(&cursor).arg("COUNT").arg(SNAPSHOT_BATCH);
        let reply = connector.query(via, &scan).await?;
        let mut parts = array(reply)?.into_iter();
        let next = text(&parts.next().unwrap_or(Value::Nil))
            .ok_or_else(|| corrupt("ZSCAN reply without a cursor"))?;
        let flat = array(parts.next().unwrap_or(Value::Nil))?;
        let mut pairs = flat.into_iter();
        while let (Some(member), Some(score)) = (pairs.next(), pairs.next()) {
            match (member_hash(&member), score_secs(&score)) {
                (Some(hash), Some(expiry)) if expiry > now_secs => entries.push((hash, expiry)),
                (Some(_), Some(_)) => {}
                _ => skipped += 1,
            }
        }
        if next == "0" {
            break;
        }
        cursor = next;
    }
    if skipped > 0 {
        tracing::warn!(
            skipped,
            "revoked set holds members that are not token hashes"
        );
    }
    // ZSCAN may repeat members while the set is rehashed.
    entries.sort_unstable();
    entries.dedup_by(|a, b| a.0 == b.0);
    Ok(entries)
}

/// A `message` push is `[channel, payload]`; anything else is malformed.
fn announcement(data: &[Value], channel: &str) -> Option<FeedEvent> {
    match data {
        [from, payload] if text(from).as_deref() == Some(channel) => {
            parse_announcement(&text(payload)?)
        }
        _ => None,
    }
}

/// Parse a published revocation: `<hash_b64> <expires_at_secs> <published_at_ms>`
/// (what the revoke script PUBLISHes).
fn parse_announcement(payload: &str) -> Option<FeedEvent> {
    let mut parts = payload.split(' ');
    let hash = crate::auth::decode_hash(parts.next()?)?;
    let expires_at_secs = parts.next()?.parse().ok()?;
    let published_at_ms = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some(FeedEvent::Revoked {
        hash,
        expires_at_secs,
        published_at_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{encode_hash, hash_token};

    #[test]
    fn announcement_round_trips_and_rejects_garbage() {
        let h = hash_token("t");
        let payload = format!("{} 1700000000 1699999999123", encode_hash(&h));
        assert_eq!(
            parse_announcement(&payload),
            Some(FeedEvent::Revoked {
                hash: h,
                expires_at_secs: 1_700_000_000,
                published_at_ms: 1_699_999_999_123
            })
        );
        assert_eq!(parse_announcement("nothash 1 2"), None);
        assert_eq!(
            parse_announcement(&format!("{} x 2", encode_hash(&h))),
            None
        );
        assert_eq!(
            parse_announcement(&format!("{} 1 2 3", encode_hash(&h))),
            None
        );
        assert_eq!(parse_announcement(""), None);
    }
}
