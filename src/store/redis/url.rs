//! Redis URLs: which topology they name (single node, Sentinel, Cluster; plain
//! or TLS), with which credentials and database, and how to print them without
//! the password. Pure: parsing only, no sockets; [`super::connection`] builds
//! the clients from a [`Topology`].

use ::redis::{
    ConnectionAddr, ConnectionInfo, IntoConnectionInfo, ProtocolVersion, RedisConnectionInfo,
};

use crate::store::record::StoreError;
use crate::store::redis::error::{config, describe};

/// RESP3: connections report their own loss (a disconnection push), and the
/// feed's subscribed connection can still run commands (PING, ZSCAN).
/// Redis 6+ speaks it; the scripts need 6.2 anyway (`ZADD GT`).
pub(super) const RESP3: ProtocolVersion = ProtocolVersion::RESP3;

/// The URL with any password replaced, fit for logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<unparsable url>".to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{scheme}://{user}:***@{hosts}{path}")
        }
        None => url.to_owned(),
    }
}

/// Where the data nodes are, as the URL says.
#[derive(Clone)]
pub(super) enum Topology {
    /// `redis://`, `rediss://`, `unix://`, `redis+unix://`: one node, RESP3.
    Single(ConnectionInfo),
    Sentinel(SentinelSpec),
    Cluster(ClusterSpec),
}

/// `redis+sentinel://` / `rediss+sentinel://`.
#[derive(Clone)]
pub(super) struct SentinelSpec {
    pub sentinels: Vec<ConnectionAddr>,
    pub master: String,
    pub db: i64,
    /// For the data nodes, from the URL.
    pub username: Option<String>,
    pub password: Option<String>,
    /// For the Sentinels themselves (`redis.sentinel_username` /
    /// `sentinel_password`); `None`: contacted without credentials.
    pub sentinel_auth: Option<(Option<String>, String)>,
    /// TLS to the Sentinels and to the master.
    pub tls: bool,
}

/// `redis+cluster://` / `rediss+cluster://`.
#[derive(Clone)]
pub(super) struct ClusterSpec {
    /// The seed nodes, with credentials, database 0 and RESP3.
    pub nodes: Vec<ConnectionInfo>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub tls: bool,
}

impl Topology {
    /// Add the Sentinels' own credentials.
    ///
    /// # Errors
    /// [`StoreError::Config`] when they are given for a URL that is not a
    /// Sentinel one (they would be silently unused).
    pub(super) fn with_sentinel_auth(
        self,
        auth: &Option<(Option<String>, String)>,
    ) -> Result<Self, StoreError> {
        match (self, auth) {
            (topology, None) => Ok(topology),
            (Topology::Sentinel(spec), Some(auth)) => Ok(Topology::Sentinel(SentinelSpec {
                sentinel_auth: Some(auth.clone()),
                ..spec
            })),
            (_, Some(_)) => Err(config(
                "redis.sentinel_password is only for redis+sentinel:// urls",
            )),
        }
    }

    /// # Errors
    /// [`StoreError::Config`] for an unknown scheme or a malformed URL. The
    /// message never contains the URL.
    pub(super) fn parse(url: &str) -> Result<Self, StoreError> {
        let url = url.trim();
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| config("redis url has no scheme"))?;
        let scheme = scheme.to_ascii_lowercase();
        match scheme.as_str() {
            "redis" | "rediss" | "unix" | "redis+unix" => {
                let info = url
                    .into_connection_info()
                    .map_err(|e| config(&format!("invalid redis url: {}", describe(&e))))?;
                let settings = info.redis_settings().clone().set_protocol(RESP3);
                Ok(Topology::Single(info.set_redis_settings(settings)))
            }
            "redis+sentinel" | "rediss+sentinel" => {
                let spec = MultiHost::parse(rest, 26379)?;
                let tls = scheme.starts_with("rediss");
                let mut segments = spec.path.split('/').filter(|s| !s.is_empty());
                let master = segments
                    .next()
                    .ok_or_else(|| config("sentinel url needs /<master_name>"))?;
                let master = percent_decode(master)?;
                let db = parse_db(segments.next())?;
                if segments.next().is_some() {
                    return Err(config("sentinel url path is /<master_name>[/db]"));
                }
                let sentinels = spec
                    .hosts
                    .iter()
                    .map(|(host, port)| node_addr(host, *port, tls))
                    .collect();
                Ok(Topology::Sentinel(SentinelSpec {
                    sentinels,
                    master,
                    db,
                    username: spec.username,
                    password: spec.password,
                    sentinel_auth: None,
                    tls,
                }))
            }
            "redis+cluster" | "rediss+cluster" => {
                let spec = MultiHost::parse(rest, 6379)?;
                if !matches!(spec.path.trim_matches('/'), "" | "0") {
                    return Err(config("cluster mode has only database 0"));
                }
                let tls = scheme.starts_with("rediss");
                let nodes = spec
                    .hosts
                    .iter()
                    .map(|(host, port)| {
                        let (user, password) = (spec.username.as_deref(), spec.password.as_deref());
                        node_info(host, *port, tls, user, password, 0)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Topology::Cluster(ClusterSpec {
                    nodes,
                    username: spec.username,
                    password: spec.password,
                    tls,
                }))
            }
            _ => Err(config(
                "redis url scheme must be redis, rediss, redis+sentinel, rediss+sentinel, redis+cluster or rediss+cluster",
            )),
        }
    }
}

/// The host list of a Sentinel or Cluster URL.
struct MultiHost {
    username: Option<String>,
    password: Option<String>,
    hosts: Vec<(String, u16)>,
    path: String,
}

impl MultiHost {
    fn parse(rest: &str, default_port: u16) -> Result<Self, StoreError> {
        if rest.contains(['?', '#']) {
            return Err(config(
                "redis url query and fragment are not supported here",
            ));
        }
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let (authority, path) = rest.split_at(authority_end);
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (Some(userinfo), hosts),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            Some(userinfo) => {
                let (user, password) = match userinfo.split_once(':') {
                    Some((user, password)) => (user, Some(password)),
                    None => (userinfo, None),
                };
                let user = Some(percent_decode(user)?).filter(|u| !u.is_empty());
                let password = password.map(percent_decode).transpose()?;
                (user, password)
            }
            None => (None, None),
        };
        let hosts = hosts
            .split(',')
            .map(|host| parse_host_port(host, default_port))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            username,
            password,
            hosts,
            path: path.to_owned(),
        })
    }
}

fn parse_host_port(text: &str, default_port: u16) -> Result<(String, u16), StoreError> {
    let text = text.trim();
    let (host, port) = if let Some(bracketed) = text.strip_prefix('[') {
        // [v6]:port
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| config("redis url has an unclosed [ in a host"))?;
        (host, after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(config("redis url has an empty host"));
    }
    let port = match port {
        Some(port) => port
            .parse()
            .map_err(|_| config("redis url has an invalid port"))?,
        None => default_port,
    };
    Ok((host.to_owned(), port))
}

fn parse_db(segment: Option<&str>) -> Result<i64, StoreError> {
    segment.map_or(Ok(0), |db| {
        db.parse()
            .map_err(|_| config("redis url database must be a number"))
    })
}

fn percent_decode(text: &str) -> Result<String, StoreError> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| config("redis url credentials are not UTF-8"))
}

fn node_addr(host: &str, port: u16, tls: bool) -> ConnectionAddr {
    if tls {
        ConnectionAddr::TcpTls {
            host: host.to_owned(),
            port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(host.to_owned(), port)
    }
}

fn node_info(
    host: &str,
    port: u16,
    tls: bool,
    username: Option<&str>,
    password: Option<&str>,
    db: i64,
) -> Result<ConnectionInfo, StoreError> {
    let mut redis = RedisConnectionInfo::default()
        .set_db(db)
        .set_protocol(RESP3);
    if let Some(username) = username {
        redis = redis.set_username(username);
    }
    if let Some(password) = password {
        redis = redis.set_password(password);
    }
    node_addr(host, port, tls)
        .into_connection_info()
        .map(|info| info.set_redis_settings(redis))
        .map_err(|e| config(&format!("invalid redis node address: {}", describe(&e))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_password_is_redacted() {
        assert_eq!(
            redact_url("redis://app:s3cret@h:6379/0"),
            "redis://app:***@h:6379/0"
        );
        assert_eq!(
            redact_url("redis+sentinel://:pw@a:1,b:2/mymaster"),
            "redis+sentinel://:***@a:1,b:2/mymaster"
        );
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
    }

    #[test]
    fn multi_host_urls_parse_hosts_credentials_and_path() {
        let spec = MultiHost::parse("u%40x:p%3Aw@a:1,[::1]:2,c/mymaster/3", 26379);
        let spec = spec.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.username.as_deref(), Some("u@x"));
        assert_eq!(spec.password.as_deref(), Some("p:w"));
        assert_eq!(
            spec.hosts,
            vec![("a".into(), 1), ("::1".into(), 2), ("c".into(), 26379)]
        );
        assert_eq!(spec.path, "/mymaster/3");
        assert!(MultiHost::parse("a:notaport", 1).is_err());
        assert!(MultiHost::parse(":1", 1).is_err());
    }

    #[test]
    fn urls_name_their_topology_credentials_and_database() {
        let tls = |host: &str, port| ConnectionAddr::TcpTls {
            host: host.into(),
            port,
            insecure: false,
            tls_params: None,
        };
        let Ok(Topology::Single(info)) = Topology::parse(" redis://h:7000/4 ") else {
            panic!("expected a single node");
        };
        assert_eq!(info.addr(), &ConnectionAddr::Tcp("h".into(), 7000));
        assert_eq!(info.redis_settings().db(), 4);
        assert_eq!(info.redis_settings().protocol(), RESP3);

        let url = "RediSS+Sentinel://u:p%40w@a:1,b/my%20master/2";
        let Ok(Topology::Sentinel(sentinel)) = Topology::parse(url) else {
            panic!("expected sentinel");
        };
        assert_eq!(sentinel.sentinels, vec![tls("a", 1), tls("b", 26379)]);
        assert_eq!(sentinel.master, "my master");
        assert_eq!(sentinel.db, 2);
        assert_eq!(sentinel.username.as_deref(), Some("u"));
        assert_eq!(sentinel.password.as_deref(), Some("p@w"));
        assert!(sentinel.tls);

        let Ok(Topology::Cluster(cluster)) = Topology::parse("redis+cluster://:pw@h1,h2:7001/0")
        else {
            panic!("expected cluster");
        };
        let addrs: Vec<_> = cluster.nodes.iter().map(|n| n.addr().clone()).collect();
        let tcp = |host: &str, port| ConnectionAddr::Tcp(host.into(), port);
        assert_eq!(addrs, vec![tcp("h1", 6379), tcp("h2", 7001)]);
        let node = cluster.nodes[1].redis_settings();
        assert_eq!((node.username(), node.password()), (None, Some("pw")));
        assert_eq!((node.db(), node.protocol()), (0, RESP3));
        assert_eq!(cluster.password.as_deref(), Some("pw"));
        assert!(!cluster.tls);
    }
}
