//! The connection to the data nodes: the topology-specific clients, the one
//! shared connection and its lifecycle (connect, forget, reconnect, back off),
//! and the timeout on every round trip.
//!
//! Connection policy:
//! - Lazy: construction never touches the network, so a gate that starts
//!   during a Redis outage comes up and recovers by itself.
//! - One multiplexed RESP3 connection (a cluster connection in Cluster mode)
//!   shared by all callers. It is forgotten the moment its socket closes (the
//!   RESP3 disconnection push), after any I/O error or timeout, and on a
//!   `READONLY`/`MASTERDOWN` answer (a Sentinel failover demoted our master);
//!   the next command reconnects, asking the Sentinels for the master again.
//! - Failed connects back off exponentially (50 ms doubling, capped at 1 s);
//!   commands in the backoff window fail fast with `Unavailable`.
//! - Every command is bounded by `command_timeout`, every connect by
//!   `connect_timeout`, so a paused or black-holed Redis yields `Unavailable`,
//!   never a hang. A command that timed out may still run later (Redis was
//!   only slow); every step is safe to observe late.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ::redis::aio::{ConnectionLike, MultiplexedConnection};
use ::redis::cluster::{ClusterClient, ClusterClientBuilder};
use ::redis::cluster_async::ClusterConnection;
use ::redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use ::redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind, Pipeline,
    PushInfo, PushKind, RedisError, RedisFuture, RedisResult, TlsCertificates, TlsMode, Value,
};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout, timeout_at};

use crate::store::record::StoreError;
use crate::store::redis::error::{classify, config, describe, unavailable};
use crate::store::redis::url::{ClusterSpec, RESP3, SentinelSpec, Topology};
use crate::swap::Swap;

/// Reconnect backoff: first retry after 50 ms, doubling, capped at 1 s.
pub(super) const BACKOFF_MIN: Duration = Duration::from_millis(50);
pub(super) const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The two bounds of [`super::RedisOptions`].
#[derive(Clone, Copy, Debug)]
pub(super) struct Timeouts {
    /// Bound on every command, including each snapshot batch.
    pub command: Duration,
    /// Bound on every connection attempt (TCP, TLS, AUTH, Sentinel lookup).
    pub connect: Duration,
}

/// Cheap-to-clone handle on the shared connection to one Redis deployment.
#[derive(Clone)]
pub(super) struct Connector {
    shared: Arc<Shared>,
}

struct Shared {
    /// Replaced when the CA bundle changes ([`Connector::replace_ca`]):
    /// the next connection uses the new one, the open one is left alone.
    target: Swap<Arc<Target>>,
    /// What `target` is built from, kept to build it again.
    topology: Topology,
    timeouts: Timeouts,
    link: Mutex<Link>,
    /// Serialises connection attempts: concurrent callers wait for the one in
    /// flight instead of each opening a socket.
    connecting: tokio::sync::Mutex<()>,
}

impl Shared {
    fn link(&self) -> MutexGuard<'_, Link> {
        self.link.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forget connection `generation` so the next command reconnects (unless
    /// it was already replaced).
    fn invalidate(&self, generation: u64) {
        let mut link = self.link();
        if link.conn.as_ref().is_some_and(|(g, _)| *g == generation) {
            link.conn = None;
        }
    }
}

/// The shared connection and the reconnect backoff state.
#[derive(Default)]
struct Link {
    conn: Option<(u64, Conn)>,
    generation: u64,
    failures: u32,
    retry_at: Option<Instant>,
    last_error: String,
}

/// Where the data nodes are.
enum Target {
    Single(Client),
    Sentinel(tokio::sync::Mutex<SentinelClient>),
    /// `seeds` serve the pub/sub connection: cluster PUBLISH reaches every node.
    Cluster {
        client: ClusterClient,
        seeds: Vec<Client>,
    },
}

#[derive(Clone)]
pub(super) enum Conn {
    Plain(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Plain(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Plain(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Plain(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Where a multi-round-trip read runs.
pub(super) enum Via {
    /// The shared connection; `force` connects right away, skipping the
    /// backoff wait (the caller just reached Redis on its own connection).
    Pool { force: bool },
    /// A given connection (the feed's own).
    Conn(MultiplexedConnection),
}

/// The PEM bytes of a private CA for the Redis server certificates.
///
/// # Errors
/// [`StoreError::Config`] when the file cannot be read.
pub(super) fn read_ca(path: &Path) -> Result<Vec<u8>, StoreError> {
    let pem = std::fs::read(path).map_err(|e| {
        StoreError::Config(format!(
            "cannot read redis TLS CA file {}: {e}",
            path.display()
        ))
    })?;
    // Checked here so a broken bundle is refused (at start, or on a reload,
    // which then keeps the previous one), not found at the next reconnect.
    use rustls_pki_types::{CertificateDer, pem::PemObject};
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StoreError::Config(format!("redis TLS CA file {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(StoreError::Config(format!(
            "no certificate in redis TLS CA file {}",
            path.display()
        )));
    }
    Ok(pem)
}

impl Connector {
    /// Build the clients for `topology`; never connects.
    ///
    /// # Errors
    /// [`StoreError::Config`] when the redis crate refuses a client.
    pub(super) fn new(
        topology: Topology,
        ca: Option<&[u8]>,
        timeouts: Timeouts,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            shared: Arc::new(Shared {
                target: Swap::new(Arc::new(Target::new(topology.clone(), ca, timeouts)?)),
                topology,
                timeouts,
                link: Mutex::new(Link::default()),
                connecting: tokio::sync::Mutex::new(()),
            }),
        })
    }

    pub(super) fn timeouts(&self) -> Timeouts {
        self.shared.timeouts
    }

    pub(super) fn is_cluster(&self) -> bool {
        matches!(*self.shared.target.get(), Target::Cluster { .. })
    }

    /// Build the clients again with a new CA bundle; used from the next
    /// connect, the open connection is left alone.
    pub(super) fn replace_ca(&self, ca: &[u8]) -> Result<(), StoreError> {
        let fresh = Target::new(self.shared.topology.clone(), Some(ca), self.shared.timeouts)?;
        self.shared.target.set(Arc::new(fresh));
        Ok(())
    }

    fn link(&self) -> MutexGuard<'_, Link> {
        self.shared.link()
    }

    /// The shared connection, connecting if there is none. `force` skips the
    /// backoff wait: the feed uses it right after its own connect succeeded.
    async fn acquire(&self, force: bool) -> Result<(u64, Conn), StoreError> {
        if let Some(conn) = self.link().conn.clone() {
            return Ok(conn);
        }
        let deadline = Instant::now() + self.shared.timeouts.connect;
        let _turn = timeout_at(deadline, self.shared.connecting.lock())
            .await
            .map_err(|_| unavailable("timed out waiting for a redis connection"))?;
        let generation = {
            let link = self.link();
            if let Some(conn) = link.conn.clone() {
                return Ok(conn);
            }
            if let Some(retry_at) = link.retry_at {
                if !force && Instant::now() < retry_at {
                    return Err(unavailable(&link.last_error));
                }
            }
            // Stable while we hold `connecting`.
            link.generation + 1
        };
        let config = self.connection_config(generation);
        let target = self.shared.target.get();
        let attempt = timeout_at(deadline, target.connect(config))
            .await
            .unwrap_or_else(|_| Err(RedisError::from((ErrorKind::Io, "connect timed out"))));
        let mut link = self.link();
        match attempt {
            Ok(conn) => {
                link.generation = generation;
                link.failures = 0;
                link.retry_at = None;
                link.conn = Some((generation, conn.clone()));
                Ok((generation, conn))
            }
            Err(e) => {
                link.failures = link.failures.saturating_add(1);
                link.retry_at = Some(Instant::now() + backoff(link.failures));
                link.last_error = format!("cannot connect to redis: {}", describe(&e));
                Err(unavailable(&link.last_error))
            }
        }
    }

    /// Timeouts, and a hook that forgets the connection the moment its socket
    /// closes (Redis restarted, killed the client): the next command then
    /// reconnects instead of failing on a dead socket first.
    fn connection_config(&self, generation: u64) -> AsyncConnectionConfig {
        let shared = Arc::downgrade(&self.shared);
        AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.shared.timeouts.connect))
            .set_response_timeout(Some(self.shared.timeouts.command))
            .set_push_sender(move |info: PushInfo| {
                if info.kind == PushKind::Disconnection {
                    if let Some(shared) = shared.upgrade() {
                        shared.invalidate(generation);
                    }
                }
                Ok::<(), std::convert::Infallible>(())
            })
    }

    /// Run one round trip on the shared connection, bounded by the command
    /// timeout, mapping errors and dropping a connection that failed.
    pub(super) async fn run<T, F, Fut>(&self, force_connect: bool, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let (generation, conn) = self.acquire(force_connect).await?;
        match timeout(self.shared.timeouts.command, op(conn)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                let (error, reconnect) = classify(&e);
                if reconnect {
                    self.shared.invalidate(generation);
                }
                Err(error)
            }
            Err(_) => {
                self.shared.invalidate(generation);
                Err(unavailable("redis command timed out"))
            }
        }
    }

    /// One command on the shared connection or a given one, bounded by the
    /// command timeout.
    pub(super) async fn query(&self, via: &Via, cmd: &Cmd) -> Result<Value, StoreError> {
        match via {
            Via::Pool { force } => {
                self.run(*force, |mut conn| async move {
                    cmd.query_async::<Value>(&mut conn).await
                })
                .await
            }
            Via::Conn(conn) => {
                let mut conn = conn.clone();
                match timeout(self.shared.timeouts.command, cmd.query_async(&mut conn)).await {
                    Ok(Ok(value)) => Ok(value),
                    Ok(Err(e)) => Err(classify(&e).0),
                    Err(_) => Err(unavailable("redis command timed out")),
                }
            }
        }
    }

    /// A dedicated RESP3 connection for the revocation feed (subscribed, so
    /// never shared), reporting its pushes to `pushes`. Not bounded here: the
    /// feed bounds it, with its own message.
    pub(super) async fn subscriber(
        &self,
        pushes: mpsc::UnboundedSender<PushInfo>,
    ) -> RedisResult<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.shared.timeouts.connect))
            .set_response_timeout(Some(self.shared.timeouts.command))
            .set_push_sender(pushes);
        let target = self.shared.target.get();
        target.feed_connection(config).await
    }
}

impl Target {
    fn new(topology: Topology, ca: Option<&[u8]>, timeouts: Timeouts) -> Result<Self, StoreError> {
        match topology {
            Topology::Single(info) => Ok(Target::Single(node_client(info, ca)?)),
            Topology::Sentinel(spec) => sentinel_client(spec, ca),
            Topology::Cluster(spec) => cluster_client(spec, ca, timeouts),
        }
    }

    async fn connect(&self, config: AsyncConnectionConfig) -> RedisResult<Conn> {
        match self {
            Target::Single(client) => client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map(Conn::Plain),
            Target::Sentinel(sentinel) => {
                let client = sentinel.lock().await.async_get_client().await?;
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map(Conn::Plain)
            }
            Target::Cluster { client, .. } => {
                client.get_async_connection().await.map(Conn::Cluster)
            }
        }
    }

    /// A dedicated RESP3 connection for the feed (subscribed, so never shared).
    async fn feed_connection(
        &self,
        config: AsyncConnectionConfig,
    ) -> RedisResult<MultiplexedConnection> {
        match self {
            Target::Single(client) => {
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
            }
            Target::Sentinel(sentinel) => {
                let client = sentinel.lock().await.async_get_client().await?;
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
            }
            // Cluster PUBLISH reaches every node: any reachable seed will do.
            Target::Cluster { seeds, .. } => {
                let mut last = RedisError::from((ErrorKind::Io, "no cluster node reachable"));
                for seed in seeds {
                    match seed
                        .get_multiplexed_async_connection_with_config(&config)
                        .await
                    {
                        Ok(conn) => return Ok(conn),
                        Err(e) => last = e,
                    }
                }
                Err(last)
            }
        }
    }
}

fn sentinel_client(spec: SentinelSpec, ca: Option<&[u8]>) -> Result<Target, StoreError> {
    let mut builder =
        SentinelClientBuilder::new(spec.sentinels, spec.master, SentinelServerType::Master)
            .map_err(|e| config(&describe(&e)))?
            .set_client_to_redis_db(spec.db)
            .set_client_to_redis_protocol(RESP3);
    if let Some(user) = &spec.username {
        builder = builder.set_client_to_redis_username(user);
    }
    if let Some(password) = &spec.password {
        builder = builder.set_client_to_redis_password(password);
    }
    if let Some((username, password)) = &spec.sentinel_auth {
        if let Some(username) = username {
            builder = builder.set_client_to_sentinel_username(username);
        }
        builder = builder.set_client_to_sentinel_password(password);
    }
    if spec.tls {
        builder = builder
            .set_client_to_redis_tls_mode(TlsMode::Secure)
            .set_client_to_sentinel_tls_mode(TlsMode::Secure);
        if let Some(ca) = ca {
            builder = builder
                .set_client_to_redis_certificates(certificates(ca))
                .set_client_to_sentinel_certificates(certificates(ca));
        }
    }
    let client = builder.build().map_err(|e| config(&describe(&e)))?;
    Ok(Target::Sentinel(tokio::sync::Mutex::new(client)))
}

fn cluster_client(
    spec: ClusterSpec,
    ca: Option<&[u8]>,
    timeouts: Timeouts,
) -> Result<Target, StoreError> {
    let seeds = spec
        .nodes
        .iter()
        .map(|info| node_client(info.clone(), ca))
        .collect::<Result<Vec<_>, _>>()?;
    let mut builder = ClusterClientBuilder::new(spec.nodes)
        .use_protocol(RESP3)
        .connection_timeout(timeouts.connect)
        .response_timeout(timeouts.command);
    if let Some(user) = &spec.username {
        builder = builder.username(user);
    }
    if let Some(password) = &spec.password {
        builder = builder.password(password);
    }
    if spec.tls {
        builder = builder.tls(TlsMode::Secure);
        if let Some(ca) = ca {
            builder = builder.certs(certificates(ca));
        }
    }
    let client = builder.build().map_err(|e| config(&describe(&e)))?;
    Ok(Target::Cluster { client, seeds })
}

fn certificates(ca: &[u8]) -> TlsCertificates {
    TlsCertificates {
        client_tls: None,
        root_cert: Some(ca.to_vec()),
    }
}

fn node_client(info: ConnectionInfo, ca: Option<&[u8]>) -> Result<Client, StoreError> {
    let tls = matches!(info.addr(), ConnectionAddr::TcpTls { .. });
    let client = match ca {
        Some(ca) if tls => Client::build_with_tls(info, certificates(ca)),
        _ => Client::open(info),
    };
    client.map_err(|e| config(&format!("invalid redis url: {}", describe(&e))))
}

fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(10);
    (BACKOFF_MIN * 2u32.pow(exponent)).min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_one_second() {
        assert_eq!(backoff(1), Duration::from_millis(50));
        assert_eq!(backoff(2), Duration::from_millis(100));
        assert_eq!(backoff(5), Duration::from_millis(800));
        assert_eq!(backoff(6), Duration::from_secs(1));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(1));
    }
}
