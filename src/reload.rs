//! Files re-read while the gate runs: the listener's certificate and key, the
//! upstream's CA bundle and Redis's CA bundle. Each is checked every
//! [`POLL_EVERY`] (modification time, size and inode, so a Kubernetes Secret
//! update — a symlink swap — counts) and on SIGHUP. A change that loads
//! replaces the old contents for new connections; one that does not keeps the
//! old contents, logs one line and counts in
//! `sessiongate_tls_reloads_total{file,outcome="error"}` until the file
//! changes again (no log flood while a bad file sits there).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// How often watched files are looked at: a renewed certificate is in use
/// within this, without a signal.
pub const POLL_EVERY: Duration = Duration::from_secs(5);

/// One set of files and what to do when they change.
pub struct Watched {
    /// Metric label and log name: `listener`, `upstream_ca`, `redis_ca`.
    pub name: &'static str,
    pub files: Vec<PathBuf>,
    /// Load the files again; `Err` keeps the previous contents.
    pub reload: Box<dyn Fn() -> Result<(), String> + Send + Sync>,
}

/// What a file looked like when last seen; `None` when it could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp(Option<(SystemTime, u64, u64)>);

fn stamp(path: &PathBuf) -> Stamp {
    Stamp(std::fs::metadata(path).ok().map(|meta| {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        (
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            meta.len(),
            inode,
        )
    }))
}

/// Watch `items` until `stop`.
pub async fn watch(items: Vec<Watched>, metrics: Arc<Metrics>, stop: CancellationToken) {
    if items.is_empty() {
        return;
    }
    let mut seen: Vec<Vec<Stamp>> = items
        .iter()
        .map(|item| item.files.iter().map(stamp).collect())
        .collect();
    let mut hangups = Hangups::install();
    let mut tick = tokio::time::interval(POLL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let forced = tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => false,
            () = hangups.next() => true,
        };
        for (item, last) in items.iter().zip(seen.iter_mut()) {
            let now: Vec<Stamp> = item.files.iter().map(stamp).collect();
            if !forced && now == *last {
                continue;
            }
            *last = now;
            match (item.reload)() {
                Ok(()) => {
                    tracing::info!(file = item.name, "reloaded");
                    metrics.tls_reload(item.name, true);
                }
                Err(error) => {
                    tracing::warn!(file = item.name, %error, "reload failed; keeping the previous one");
                    metrics.tls_reload(item.name, false);
                }
            }
        }
    }
}

/// SIGHUP, installed once.
struct Hangups {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangups {
    fn install() -> Self {
        Self {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok(),
        }
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some(signal) = &mut self.signal {
            if signal.recv().await.is_some() {
                return;
            }
        }
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewritten_file_gets_a_new_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cert.pem");
        assert_eq!(stamp(&path), Stamp(None));
        std::fs::write(&path, "one").unwrap();
        let first = stamp(&path);
        assert!(first.0.is_some());
        // A swap to a new file (as a Secret update does) changes the inode.
        let other = dir.path().join("new.pem");
        std::fs::write(&other, "two!").unwrap();
        std::fs::rename(&other, &path).unwrap();
        assert_ne!(stamp(&path), first);
    }
}
