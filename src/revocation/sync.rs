//! Keeps the in-memory [`RevokedSet`] current from the store's revocation feed.
//!
//! The feed sends a full snapshot first and again after every reconnect
//! (pub/sub drops messages while disconnected), then each revocation as it is
//! published. Snapshots are merged, never replacing: a revocation learned
//! locally or from a message can never be forgotten by a lagging snapshot.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock;
use crate::metrics::{Metrics, Readiness};
use crate::revocation::RevokedSet;
use crate::store::{FeedEvent, Store};

/// How often expired entries are dropped from memory.
const PURGE_EVERY: Duration = Duration::from_secs(600);

/// Follow the store's feed until `shutdown`.
pub async fn run(
    store: Store,
    revoked: RevokedSet,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    shutdown: CancellationToken,
) {
    let mut feed = store.revocation_feed();
    let mut purge = tokio::time::interval(PURGE_EVERY);
    purge.tick().await;
    let mut synced_once = false;
    loop {
        let event = tokio::select! {
            event = feed.recv() => event,
            _ = purge.tick() => {
                let removed = revoked.purge_expired(clock::unix_secs_u32());
                if removed > 0 {
                    tracing::debug!(removed, "expired revocations dropped");
                }
                metrics.revoked_set_size.set(revoked.len() as i64);
                continue;
            }
            _ = shutdown.cancelled() => return,
        };
        let Some(event) = event else {
            tracing::error!("revocation feed ended unexpectedly");
            return;
        };
        match event {
            FeedEvent::Snapshot(entries) => {
                let total = entries.len();
                let fresh = revoked.merge(entries.iter().map(|(h, e)| (h, *e)));
                metrics.revocation_syncs.inc();
                metrics.redis_up.set(1);
                metrics.last_sync_unix.set(clock::unix_secs() as i64);
                metrics.revoked_set_size.set(revoked.len() as i64);
                if synced_once {
                    tracing::info!(total, new = fresh, "revoked set resynced after reconnect");
                } else {
                    tracing::info!(total, "revoked set synced");
                    synced_once = true;
                }
                readiness.set_revocations_synced();
            }
            FeedEvent::Revoked {
                hash,
                expires_at_secs,
                published_at_ms,
            } => {
                revoked.insert(&hash, expires_at_secs);
                let lag_ms = clock::unix_ms().saturating_sub(published_at_ms);
                metrics.revocation_lag.observe(lag_ms as f64 / 1000.0);
                metrics.revoked_set_size.set(revoked.len() as i64);
            }
            FeedEvent::Down(reason) => {
                metrics.redis_up.set(0);
                metrics.redis_reconnects.inc();
                tracing::warn!(%reason, "revocation feed lost Redis; enforcing the last known set while reconnecting");
            }
        }
    }
}
