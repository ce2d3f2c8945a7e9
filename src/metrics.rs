//! What the admin listener reports: Prometheus metrics (prometheus-client)
//! and the readiness latch. Route labels are canonical route names, never raw
//! paths, so a client cannot blow up cardinality.

use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::encoding::{EncodeLabelSet, text::encode};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatus {
    pub route: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabel {
    pub endpoint: &'static str,
}

/// Endpoints the gate answers with a second factor (`endpoint` label of
/// `totp_remembered`), pre-registered so they read 0 before the first use.
pub const SECOND_FACTOR_ENDPOINTS: [&str; 3] = [
    "sessions_logout",
    "sessions_list_all",
    "sessions_info_admin",
];

/// Route classes (`route::Route::label`), pre-registered.
const ROUTE_LABELS: [&str; 8] = [
    "other",
    "sessions_logout",
    "login",
    "user_logout",
    "websocket",
    "sockjs_send",
    "device_api",
    "method_call",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FileOutcome {
    pub file: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FileLabel {
    pub file: &'static str,
}

/// All the gate's metrics; one instance per process, shared by `Arc`.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RouteStatus, Counter>,
    pub request_duration: Family<RouteLabel, Histogram>,
    /// The histograms of the known route classes, resolved once: the hot
    /// path then skips the family's lock and label hashing.
    durations: Vec<(&'static str, Histogram)>,
    pub upstream_errors: Family<KindLabel, Counter>,
    pub open_connections: Gauge,
    pub refused_connections: Counter,
    pub logout_outcomes: Family<OutcomeLabel, Counter>,
    pub revoked_set_size: Gauge,
    /// 1 while the revocation feed is connected and synced.
    pub redis_up: Gauge,
    pub redis_reconnects: Counter,
    pub revocation_syncs: Counter,
    pub revocation_lag: Histogram,
    pub websockets_open: Gauge,
    pub websockets_closed_by_revocation: Counter,
    pub revoked_requests: Family<KindLabel, Counter>,
    pub sessions_captured: Family<KindLabel, Counter>,
    /// Certificate / CA files re-read while running (`crate::reload`).
    pub tls_reloads: Family<FileOutcome, Counter>,
    /// 1 while the latest reload of that file failed (the previous one is in use).
    pub tls_reload_failing: Family<FileLabel, Gauge>,
    /// Captures lost to a Redis failure (the login was relayed anyway).
    pub capture_failures: Family<KindLabel, Counter>,
    /// Unknown-token lookups against the upstream's `/api/v1/me`, by outcome.
    pub token_verifications: Family<OutcomeLabel, Counter>,
    /// Calls a remembered second factor let through without a code, by endpoint.
    pub totp_remembered: Family<EndpointLabel, Counter>,
    pub last_sync_unix: Gauge,
    /// 1 while `/readyz` answers 200; set from the readiness latch at each
    /// scrape (`admin::metrics_text`), so it never disagrees with `/readyz`.
    pub ready: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sessiongate");
        let requests = Family::<RouteStatus, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by route class and status",
            requests.clone(),
        );
        let request_duration = Family::<RouteLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 18))
        });
        registry.register(
            "request_duration_seconds",
            "Time from request head to response head, by route class",
            request_duration.clone(),
        );
        let upstream_errors = Family::<KindLabel, Counter>::default();
        registry.register(
            "upstream_errors",
            "Upstream failures answered 502/504, by kind",
            upstream_errors.clone(),
        );
        let open_connections = Gauge::default();
        registry.register(
            "open_connections",
            "Client connections currently open",
            open_connections.clone(),
        );
        let refused_connections = Counter::default();
        registry.register(
            "refused_connections",
            "Client connections refused at the connection limit",
            refused_connections.clone(),
        );
        let logout_outcomes = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "logout_outcomes",
            "POST /api/v1/sessions/logout answers by outcome (errorType)",
            logout_outcomes.clone(),
        );
        let revoked_set_size = Gauge::default();
        registry.register(
            "revoked_tokens",
            "Revoked token hashes held in memory",
            revoked_set_size.clone(),
        );
        let redis_up = Gauge::default();
        registry.register(
            "redis_up",
            "1 while the revocation feed is connected to Redis and synced",
            redis_up.clone(),
        );
        let redis_reconnects = Counter::default();
        registry.register(
            "redis_reconnects",
            "Times the revocation feed lost Redis",
            redis_reconnects.clone(),
        );
        let revocation_syncs = Counter::default();
        registry.register(
            "revocation_full_syncs",
            "Full resyncs of the revoked set from Redis",
            revocation_syncs.clone(),
        );
        let revocation_lag = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "revocation_propagation_seconds",
            "Delay from a revocation's publish to its enforcement here",
            revocation_lag.clone(),
        );
        let websockets_open = Gauge::default();
        registry.register(
            "websockets_open",
            "Websocket tunnels currently open",
            websockets_open.clone(),
        );
        let websockets_closed_by_revocation = Counter::default();
        registry.register(
            "websockets_closed_by_revocation",
            "Websockets closed because their token was revoked",
            websockets_closed_by_revocation.clone(),
        );
        let revoked_requests = Family::<KindLabel, Counter>::default();
        registry.register(
            "revoked_token_requests",
            "Requests carrying a revoked token, by where it was (header, cookie, query: removed; ddp, sockjs, rest: resume login sent with a decoy)",
            revoked_requests.clone(),
        );
        let sessions_captured = Family::<KindLabel, Counter>::default();
        registry.register(
            "sessions_captured",
            "Sessions recorded from passing login traffic",
            sessions_captured.clone(),
        );
        let capture_failures = Family::<KindLabel, Counter>::default();
        registry.register(
            "session_capture_failures",
            "Sessions seen but not recorded because the store failed",
            capture_failures.clone(),
        );
        let token_verifications = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "upstream_token_verifications",
            "Unknown caller tokens checked with the upstream's /api/v1/me, by outcome",
            token_verifications.clone(),
        );
        let totp_remembered = Family::<EndpointLabel, Counter>::default();
        registry.register(
            "totp_remembered",
            "Calls let through by a remembered second factor (totp.remember_seconds) instead of a code, by endpoint",
            totp_remembered.clone(),
        );
        for endpoint in SECOND_FACTOR_ENDPOINTS {
            let _ = totp_remembered.get_or_create(&EndpointLabel { endpoint });
        }
        let last_sync_unix = Gauge::default();
        registry.register(
            "last_full_sync_timestamp_seconds",
            "Unix time of the last full revocation sync",
            last_sync_unix.clone(),
        );
        let tls_reloads = Family::<FileOutcome, Counter>::default();
        registry.register(
            "tls_reloads",
            "Certificate and CA files re-read while running, by file and outcome (ok, error)",
            tls_reloads.clone(),
        );
        let tls_reload_failing = Family::<FileLabel, Gauge>::default();
        registry.register(
            "tls_reload_failing",
            "1 while the latest reload of that file failed and the previous contents stay in use",
            tls_reload_failing.clone(),
        );
        let ready = Gauge::default();
        registry.register(
            "ready",
            "1 while /readyz answers 200 (listener bound, revoked set synced), else 0",
            ready.clone(),
        );
        let durations = ROUTE_LABELS
            .iter()
            .map(|route| {
                (
                    *route,
                    request_duration.get_or_create(&RouteLabel { route }),
                )
            })
            .map(|(route, h)| (route, h.clone()))
            .collect();
        Self {
            registry,
            requests,
            request_duration,
            durations,
            upstream_errors,
            open_connections,
            refused_connections,
            logout_outcomes,
            revoked_set_size,
            redis_up,
            redis_reconnects,
            revocation_syncs,
            revocation_lag,
            websockets_open,
            websockets_closed_by_revocation,
            revoked_requests,
            sessions_captured,
            capture_failures,
            token_verifications,
            totp_remembered,
            last_sync_unix,
            ready,
            tls_reloads,
            tls_reload_failing,
        }
    }

    pub fn record_request(&self, route: &'static str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RouteStatus { route, status })
            .inc();
        match self.durations.iter().find(|(known, _)| *known == route) {
            Some((_, histogram)) => histogram.observe(seconds),
            None => self
                .request_duration
                .get_or_create(&RouteLabel { route })
                .observe(seconds),
        }
    }

    pub fn upstream_error(&self, kind: &'static str) {
        self.upstream_errors
            .get_or_create(&KindLabel { kind })
            .inc();
    }

    /// One call let through by a remembered second factor.
    pub fn remembered_call(&self, endpoint: &'static str) {
        self.totp_remembered
            .get_or_create(&EndpointLabel { endpoint })
            .inc();
    }

    /// One reload of a watched file (`crate::reload`).
    pub fn tls_reload(&self, file: &'static str, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.tls_reloads
            .get_or_create(&FileOutcome { file, outcome })
            .inc();
        self.tls_reload_failing
            .get_or_create(&FileLabel { file })
            .set(i64::from(!ok));
    }

    pub fn logout_outcome(&self, outcome: &'static str) {
        self.logout_outcomes
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Readiness is a latch: it turns true once the gate's listener is bound and
/// the revoked set has had its first full sync, and no Redis blip turns it
/// false again — that must not pull every replica out of the Service at once
/// (the gate keeps enforcing its last known set), and the upstream's health
/// is not ours to report. Only shutting down does: from SIGTERM on the gate
/// reports not ready while it keeps serving, so load balancers stop sending
/// before the listener closes.
#[derive(Default)]
pub struct Readiness {
    listener_bound: AtomicBool,
    revocations_synced: AtomicBool,
    draining: AtomicBool,
}

impl Readiness {
    pub fn set_listener_bound(&self) {
        self.listener_bound.store(true, Ordering::Release);
    }
    pub fn set_revocations_synced(&self) {
        self.revocations_synced.store(true, Ordering::Release);
    }
    pub fn revocations_synced(&self) -> bool {
        self.revocations_synced.load(Ordering::Acquire)
    }
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
    pub fn is_ready(&self) -> bool {
        self.listener_bound.load(Ordering::Acquire) && self.revocations_synced() && !self.draining()
    }
}
