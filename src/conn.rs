//! What the gate knows about one client connection: learned by the accept
//! loop ([`crate::server`]), read by every handler of its requests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::HeaderValue;

use crate::revocation::CleanMemo;

/// Facts about the client connection a request arrived on.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// `peer`'s address as an X-Forwarded-For value, formatted once.
    pub peer_header: HeaderValue,
    pub tls: bool,
    /// The peer is a configured trusted proxy: its X-Forwarded-* are kept.
    pub trusted: bool,
    /// Request-smuggling verdicts from the raw byte watcher.
    pub framing: Arc<ConnFraming>,
    /// The last tokens on this connection found not revoked.
    pub clean: Arc<CleanMemo>,
}

impl ConnInfo {
    pub fn new(peer: SocketAddr, tls: bool, trusted: bool) -> Self {
        Self {
            peer,
            peer_header: crate::headers::peer_header(peer.ip()),
            tls,
            trusted,
            framing: Arc::default(),
            clean: Arc::default(),
        }
    }
}

/// Shared between the byte watcher and the service of one connection.
#[derive(Debug, Default)]
pub struct ConnFraming {
    /// 1 + index of the first ambiguous request head; 0 = none.
    bad_head: AtomicU64,
    /// Requests the service has started on this connection.
    served: AtomicU64,
}

impl ConnFraming {
    /// Called once per request, in order: is this request the ambiguous one?
    pub fn next_request_is_ambiguous(&self) -> bool {
        let index = self.served.fetch_add(1, Ordering::AcqRel);
        self.bad_head.load(Ordering::Acquire) == index + 1
    }
}

impl ConnFraming {
    /// The byte watcher found request head number `index` (0-based) ambiguous.
    pub fn flag(&self, index: u64) {
        let _ = self
            .bad_head
            .compare_exchange(0, index + 1, Ordering::AcqRel, Ordering::Acquire);
    }

    /// The index of the first ambiguous head, if any.
    pub fn flagged(&self) -> Option<u64> {
        self.bad_head.load(Ordering::Acquire).checked_sub(1)
    }
}
